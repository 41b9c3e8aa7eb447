"""Wall time of a sweep of 8 small runs: --jobs 1, --jobs 2, 8 separate invocations, and Dask.

Run: .venv/bin/python benchmarks/bench_sweeps.py [--repeat 5]   (or `make bench`)

The sweep: a 2-8-1 model on 1,000 samples for 30 epochs, seeds 0-7 (8 runs). Every variant is a
fresh `weightlab run` process (so each pays its TensorFlow imports, as a user would), the variants
are interleaved round by round, and the medians are compared. Targets (issue 4):

- `--jobs 2` at least 1.6x faster than `--jobs 1` (on a 2-core machine);
- `--jobs 1` no slower than 8 separate invocations minus 7 TensorFlow imports;
- `--executor dask` with a LocalCluster of 2 workers within 15% of `--jobs 2`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """\
name: bench-sweep
seeds: [0, 1, 2, 3, 4, 5, 6, 7]
data: {kind: linear, samples: 1000, features: 2, offset: 1.0}
model:
  layers:
    - {units: 8, activation: relu}
    - {units: 1}
train: {optimizer: sgd, loss: mse, epochs: 30, batch_size: 32}
"""


def weightlab(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "weightlab", *args], env=env, check=True, capture_output=True
    )


def separate(run: list[str], env: dict[str, str]) -> None:
    """The sweep as 8 `weightlab run` commands, one seed each, one after another."""
    for seed in range(8):
        weightlab("run", *run, f"--seeds={seed}", env=env)


def timed(fn: Callable[[], None]) -> Callable[[], float]:
    """``fn`` as a measurement: its wall time in seconds."""

    def measure() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return measure


# The import itself, timed inside the process: not the interpreter's start-up, nor its teardown
# of TensorFlow at exit (which `weightlab run` skips), neither of which an invocation saves.
IMPORT = (
    "import os, time; t = time.perf_counter(); import weightlab.training; "
    "print(time.perf_counter() - t, flush=True); os._exit(0)"
)


def tf_import(env: dict[str, str]) -> float:
    """Seconds to import weightlab's training package (TensorFlow and Keras) in a new process."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORT], env=env, check=True, capture_output=True, text=True
    )
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds (median over them)")
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sweep.yaml"
        cfg.write_text(CONFIG)
        env = {
            **os.environ,
            "WEIGHTLAB_STORE": str(Path(tmp) / "store"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        run = [str(cfg), "--quiet", "--format", "json"]
        variants: dict[str, Callable[[], float]] = {
            "import TensorFlow (in a fresh process)": lambda: tf_import(env),
            "--jobs 1": timed(lambda: weightlab("run", *run, env=env)),
            "--jobs 2": timed(lambda: weightlab("run", *run, "--jobs", "2", env=env)),
            "8 separate invocations": timed(lambda: separate(run, env)),
            "--executor dask --jobs 2": timed(
                lambda: weightlab("run", *run, "--executor", "dask", "--jobs", "2", env=env)
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(repeat):
            for name, fn in variants.items():
                times[name].append(fn())
            done = ", ".join(f"{name} {t[-1]:.1f} s" for name, t in times.items())
            print(f"round {round_ + 1}/{repeat}: {done}", file=sys.stderr)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{'variant (8 runs, 2-8-1, 1000 samples, 30 epochs)':<50} {'median s':>9} {'min s':>7}")
    for name, t in times.items():
        print(f"{name:<50} {med[name]:>9.2f} {min(t):>7.2f}")
    imported = med["import TensorFlow (in a fresh process)"]
    budget = med["8 separate invocations"] - 7 * imported
    # Two workers can split the runs, not the import each of them pays (Amdahl's law).
    ideal = imported + (med["--jobs 1"] - imported) / 2
    print()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.1f}")
    print(f"jobs 1 / jobs 2 = {med['--jobs 1'] / med['--jobs 2']:.2f}x   (target >= 1.6x)")
    print(
        f"  bound with 2 ideal workers, each paying the import: {med['--jobs 1'] / ideal:.2f}x "
        f"(jobs 2 >= {ideal:.2f} s)"
    )
    print(
        f"jobs 1 = {med['--jobs 1']:.2f} s vs 8 invocations - 7 imports = {budget:.2f} s   "
        f"(target: jobs 1 <= that)"
    )
    print(
        f"dask / jobs 2 = {med['--executor dask --jobs 2'] / med['--jobs 2']:.2f}   "
        "(target <= 1.15)"
    )


if __name__ == "__main__":
    main()
