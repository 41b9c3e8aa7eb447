"""Wall time of explain, plot, export and the Python API on a small store (no TensorFlow).

Run: .venv/bin/python benchmarks/bench_see.py
Prints the median and minimum of 5 runs of each command, each in a fresh process, interleaved
(one round runs every command once), with `python -c pass` as the baseline.
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
ROUNDS = 5


def main() -> None:
    from conftest import write_run  # the test suite's TensorFlow-free run writer

    from weightlab.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        for i in range(10):
            cell = {"model.use_bias": bool(i % 2)}  # layout: as these figures were measured
            write_run(store, batch="b", seed=i, epochs=50, cell=cell, layout="npz")
        env = {**os.environ, "WEIGHTLAB_STORE": str(store.root), "COLUMNS": "100"}
        env["PYTHONPATH"] = str(ROOT)
        api = "import weightlab; r = weightlab.open_store().runs()[0]; r.trajectory('out/kernel')"
        commands = {
            "python -c pass (baseline)": ["-c", "pass"],
            "import weightlab": ["-c", "import weightlab"],
            "API: open_store, runs, trajectory": ["-c", api],
            "explain latest": ["-m", "weightlab", "explain", "latest"],
            "plot (loss, 10 runs) -o x.png": ["-m", "weightlab", "plot", "-o", f"{tmp}/x.png"],
            "plot --what biases -o x.png": [
                "-m", "weightlab", "plot", "--what", "biases", "-o", f"{tmp}/b.png",
            ],
            "export --to csv (10 runs)": ["-m", "weightlab", "export", "--to", "csv", f"{tmp}/c"],
            "export --to tensorboard (10 runs)": [
                "-m", "weightlab", "export", "--to", "tensorboard", f"{tmp}/tb",
            ],
        }  # fmt: skip
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(ROUNDS):
            for label, args in commands.items():
                start = time.perf_counter()
                subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
                times[label].append(time.perf_counter() - start)
        print(f"{'command (10 runs × 50 epochs in the store)':<44} {'median s':>9} {'min s':>7}")
        for label, t in times.items():
            print(f"{label:<44} {statistics.median(t):>9.3f} {min(t):>7.3f}")


if __name__ == "__main__":
    main()
