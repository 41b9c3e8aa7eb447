"""`weightlab run CONFIG --smoke` end to end, per example config: the issue asks for well under a
minute, TensorFlow import included.

Run: .venv/bin/python benchmarks/bench_smoke.py [REPEATS]   (or `make bench`)
Each repeat runs every config of configs/ in a fresh process (so the TensorFlow import is paid
each time, as in CI), interleaved; it prints the median wall time per config and, for scale, the
median of a fresh process that only imports TensorFlow.
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


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1: an unmet expectation is still a finished smoke run
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return time.perf_counter() - start


def main(repeats: int = 5) -> None:
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    times: dict[str, list[float]] = {p.name: [] for p in configs}
    tf_import: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WEIGHTLAB_STORE": str(Path(tmp) / "store"), "PYTHONPATH": str(ROOT)}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        for _ in range(repeats):
            tf_import.append(timed([sys.executable, "-c", "import tensorflow"], env))
            for path in configs:
                args = [sys.executable, "-m", "weightlab", "run", str(path), "--smoke", "-q"]
                times[path.name].append(timed(args, env))
    print(f"{'config (--smoke)':<28} {'runs':>4} {'median s':>9} {'max s':>7}")
    from weightlab.config import load_experiment

    for path in configs:
        n = len(load_experiment(path).runs)
        t = times[path.name]
        print(f"{path.name:<28} {n:>4} {statistics.median(t):>9.1f} {max(t):>7.1f}")
    print(f"{'import tensorflow alone':<28} {'':>4} {statistics.median(tf_import):>9.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
