"""Target 3: the read commands finish in under 0.5 s on a small store (never importing TensorFlow).

Run: .venv/bin/python benchmarks/bench_startup.py   (or `make bench`)
Prints the median of 7 runs of each command, in a fresh process each time, interleaved, against
the 0.5 s target and against a bare `python -c pass`.
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


if __name__ == "__main__":
    main()
