"""The vectorized engine against the keras engine (issue 13).

Run: .venv/bin/python benchmarks/bench_vectorized.py [--repeat 3] [--skip-cli] [--skip-memory]

- In one process, interleaved, medians: N runs of the 2-8-1 model (xor, 1,000 samples, batch 32,
  30 epochs, Adam, a snapshot every epoch) on the keras engine (one fit per run) and as one
  vectorized group, for N = 8 and 32; and one keras run. Targets: 8 runs >= 4x, 32 runs >= 5x,
  32 vectorized runs <= 3x one run (stretch). Also 2 runs (a group padded to 16 members), and 8
  runs without the padding (what it costs).
- The whole `weightlab run` of 32 runs, TensorFlow import included (fresh processes,
  `--engine keras` against `--engine auto`): >= 3x.
- Peak RSS of a fresh process training a 64-member group of the 20-64-64-1 MLP against one run of
  it: <= 1.5x.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, interleave, median

CONFIG = """\
name: bench-vectorized
seeds: {seeds}
data: {{kind: xor, samples: 1000}}
model:
  layers:
    - {{units: 8, activation: relu}}
    - {{units: 1, activation: sigmoid, name: out}}
train:
  optimizer: adam
  loss: binary_crossentropy
  epochs: 30
  batch_size: 32
snapshots: {{every: epoch}}
"""

MLP = """\
name: bench-mlp
seeds: {seeds}
data: {{kind: linear, samples: 2000, features: 20}}
model:
  layers:
    - {{units: 64, activation: relu}}
    - {{units: 64, activation: relu}}
    - {{units: 1}}
train: {{optimizer: adam, loss: mse, epochs: 5, batch_size: 32}}
"""


def in_process(repeats: int) -> None:
    import weightlab.training  # noqa: F401  (TensorFlow, before the clock starts)
    from weightlab.config import load_experiment
    from weightlab.runstart import data_key, load_datasets
    from weightlab.store import Store
    from weightlab.training import runner, vectorized

    tmp = Path(tempfile.mkdtemp())
    store = Store(tmp / "store")
    cases = {}
    for n in (1, 2, 8, 32):
        path = tmp / f"c{n}.yaml"
        path.write_text(CONFIG.format(seeds=list(range(n))))
        exp = load_experiment(path)
        cases[n] = (exp.runs, load_datasets(exp))

    def keras_engine(n: int) -> float:
        specs, data = cases[n]
        start = time.perf_counter()
        for s in specs:
            runner.train_run(s, data[data_key(s)], store, "k")
        return time.perf_counter() - start

    def vectorized_engine(n: int, pad: int = vectorized.PAD) -> float:
        specs, data = cases[n]
        saved, vectorized.PAD = vectorized.PAD, pad
        try:
            start = time.perf_counter()
            vectorized.train_group(specs, [data[data_key(s)] for s in specs], store, "v")
            return time.perf_counter() - start
        finally:
            vectorized.PAD = saved

    variants = {
        "keras engine, 1 run": lambda: keras_engine(1),
        "keras engine, 8 runs": lambda: keras_engine(8),
        "vectorized, 8 runs": lambda: vectorized_engine(8),
        "keras engine, 32 runs": lambda: keras_engine(32),
        "vectorized, 32 runs": lambda: vectorized_engine(32),
        "vectorized, 1 run": lambda: vectorized_engine(1),
        "keras engine, 2 runs": lambda: keras_engine(2),
        "vectorized, 2 runs": lambda: vectorized_engine(2),
        # What the stack's padding to 16 members costs (PAD = 1: no phantoms; the bits of a
        # member would then depend on its group, see weightlab/training/vectorized.py).
        "vectorized, 8 runs, no pad": lambda: vectorized_engine(8, pad=1),
    }
    vectorized_engine(1)  # the first trace of the process pays for TensorFlow's lazy set-up
    keras_engine(1)
    times = interleave(variants, repeats)
    m = {k: median(v) for k, v in times.items()}
    print(f"\nIn one process, {repeats} interleaved rounds, median seconds (min):")
    for label, values in times.items():
        print(f"  {label:<28} {m[label]:>8.2f} ({min(values):.2f})")
    k8, v8 = m["keras engine, 8 runs"], m["vectorized, 8 runs"]
    k32, v32 = m["keras engine, 32 runs"], m["vectorized, 32 runs"]
    one = m["keras engine, 1 run"]
    print(f"  8 runs:  keras / vectorized = {k8 / v8:.1f}x (target >= 4x)")
    print(f"  32 runs: keras / vectorized = {k32 / v32:.1f}x (target >= 5x)")
    print(f"  32 vectorized runs / one keras run = {v32 / one:.2f} (stretch target <= 3)")
    k2, v2 = m["keras engine, 2 runs"], m["vectorized, 2 runs"]
    print(f"  2 runs:  keras / vectorized = {k2 / v2:.1f}x (a group of 2 trains 16 members)")
    pad = m["vectorized, 8 runs"] / m["vectorized, 8 runs, no pad"]
    print(f"  8 runs padded to 16 / unpadded = {pad:.2f} (the price of the padding)")


def cli(repeats: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    config = tmp / "c32.yaml"
    config.write_text(CONFIG.format(seeds=list(range(32))))

    def run(engine: str) -> float:
        store = tempfile.mkdtemp(dir=tmp)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "weightlab", "run", "-q", str(config), "--store", store]
            + ["--engine", engine],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        return time.perf_counter() - start

    times = interleave({"keras": lambda: run("keras"), "auto": lambda: run("auto")}, repeats)
    k, a = median(times["keras"]), median(times["auto"])
    print(f"\nWhole `weightlab run` of 32 runs (fresh processes, {repeats} rounds, median s):")
    print(f"  --engine keras {k:.2f}, --engine auto (vectorized) {a:.2f}: {k / a:.1f}x (>= 3x)")


def peak(seeds: list[int], engine: str) -> int:
    """Peak RSS (kB) of a fresh `weightlab run` of the MLP with these seeds."""
    tmp = Path(tempfile.mkdtemp())
    config = tmp / "mlp.yaml"
    config.write_text(MLP.format(seeds=seeds))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [sys.executable, "-m", "weightlab", "run", "-q", str(config), "--store", str(tmp / "s")]
        + ["--engine", engine],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before)


def memory() -> None:
    # ru_maxrss of children is the largest child so far: the small run first.
    one = peak([0], "keras")
    group = peak(list(range(64)), "vectorized")
    print("\nPeak RSS, 20-64-64-1 MLP (2,000 samples, 5 epochs), fresh processes:")
    print(f"  one run (keras engine) {one / 1024:.0f} MB; a 64-member group {group / 1024:.0f} MB")
    print(f"  ratio {group / one:.2f} (target <= 1.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if not args.skip_memory:
        memory()
    in_process(args.repeat)
    if not args.skip_cli:
        cli(args.repeat)


if __name__ == "__main__":
    main()
