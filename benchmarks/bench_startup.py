"""Target 3: the read commands finish in under 0.5 s on a small store (never importing TensorFlow).

Run: .venv/bin/python benchmarks/bench_startup.py   (or `make bench`)
Prints the median of 7 runs of each command, in a fresh process each time, interleaved, against
the 0.5 s target and against a bare `python -c pass`.

Then (issue 16) how long `weightlab run` takes to exit after its last line of output, installed
command against `python -m weightlab` against the old console script (`weightlab.cli:cli`, which
skipped main()'s exit without TensorFlow's teardown): 5 interleaved rounds of a 1-epoch run.
`--exit-only` runs only that part.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    if "--exit-only" not in sys.argv:
        startup()
    exit_after_training()


def startup() -> None:
    from conftest import write_run  # the test suite's TensorFlow-free run writer

    from weightlab.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        for i in range(20):
            write_run(
                store,
                batch=f"b{i // 2}",
                seed=i % 2,
                epochs=50,
                cell={"model.use_bias": bool(i % 2)},
                layout="npz",  # one .npz per epoch, as these figures were measured
            )
        env = {**os.environ, "WEIGHTLAB_STORE": str(store.root), "COLUMNS": "100"}
        # An installed weightlab has its bytecode cached; without this, a shell that sets
        # PYTHONDONTWRITEBYTECODE recompiles every weightlab module on every start (~0.1 s).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        commands = {
            "weightlab --help": ["--help"],
            "weightlab ls": ["ls"],
            "weightlab show latest": ["show", "latest"],
            "weightlab compare": ["compare"],
            "weightlab validate": ["validate", str(ROOT / "configs" / "initializers.yaml")],
            "python -c pass (baseline)": None,
        }
        argvs = {
            label: [sys.executable, "-c", "pass"]
            if args is None
            else [sys.executable, "-m", "weightlab", *args]
            for label, args in commands.items()
        }
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(7):
            for label, argv in argvs.items():
                start = time.perf_counter()
                subprocess.run(argv, env=env, check=True, capture_output=True)
                times[label].append(time.perf_counter() - start)
        print("\nTarget 3: start-up of the read commands (< 0.5 s)")
        print(f"{'command (20 runs in the store)':<34} {'median s':>9} {'min s':>7} {'< 0.5 s':>8}")
        for label, values in times.items():
            med = statistics.median(values)
            ok = "" if commands[label] is None else ("met" if med < 0.5 else "NOT met")
            print(f"{label:<34} {med:>9.3f} {min(values):>7.3f} {ok:>8}")


TINY = """\
name: tiny
data: {kind: linear, samples: 40, features: 2}
model: {layers: [{units: 2, activation: relu}, {units: 1}]}
train: {epochs: 1, batch_size: 20}
"""


def _after_last_line(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds from the last byte of output to the exit, whole wall time) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    last = start
    assert proc.stdout is not None
    while chunk := proc.stdout.read1(65536):
        last = time.perf_counter()
        del chunk
    code = proc.wait()
    end = time.perf_counter()
    if code != 0:
        raise SystemExit(f"{argv} exited {code}")
    return end - last, end - start


def exit_after_training(repeats: int = 5) -> None:
    installed = Path(sys.executable).parent / "weightlab"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "tiny.yaml"
        config.write_text(TINY)
        env = {**os.environ, "WEIGHTLAB_STORE": str(Path(tmp) / "store"), "COLUMNS": "100"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        run = ["run", str(config), "--quiet"]
        old = "import sys; from weightlab.cli import cli; sys.exit(cli(prog_name='weightlab'))"
        variants = {
            "installed .venv/bin/weightlab (weightlab.cli:main)": [str(installed), *run],
            "python -m weightlab": [sys.executable, "-m", "weightlab", *run],
            "old console script (weightlab.cli:cli)": [sys.executable, "-c", old, *run],
        }
        after: dict[str, list[float]] = {label: [] for label in variants}
        wall: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(repeats):
            for label, argv in variants.items():
                a, w = _after_last_line(argv, env)
                after[label].append(a)
                wall[label].append(w)
    base = "old console script (weightlab.cli:cli)"
    print(f"\nExit after training: `weightlab run` of a 1-epoch run, median of {repeats}")
    print(f"{'variant':<52} {'after last line s':>18} {'whole run s':>12} {'ratio':>6}")
    for label in variants:
        med = statistics.median(after[label])
        ratio = med / statistics.median(after[base])
        print(f"{label:<52} {med:>18.3f} {statistics.median(wall[label]):>12.2f} {ratio:>6.3f}")


if __name__ == "__main__":
    main()
