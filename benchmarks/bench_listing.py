"""Cost of the crash and damage checks when listing: `Store.select()` with and without them.

Run: .venv/bin/python benchmarks/bench_listing.py
200 runs of 30 epochs (31 snapshots each, in epochs.npy) written with the test suite's fake-run
writer (no TensorFlow); times the listing and, alone, what it spends on the per-run directory scan
(run.json's signature, missing or empty files, the epochs.npy header against the file size) and
the crashed derivation; medians of 9.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(runs: int = 200, repeats: int = 9) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import write_run

    from weightlab import lifecycle
    from weightlab.store import Store

    listing: list[float] = []
    checks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        for i in range(runs):
            write_run(store, seed=i, epochs=30)  # ls reads each epochs.npy header
        records = store.select()
        dirs = [str(store.run_dir(r["id"])) for r in records]
        for _ in range(repeats):
            start = time.perf_counter()
            store.select()
            listing.append(time.perf_counter() - start)
            start = time.perf_counter()
            for d, r in zip(dirs, records, strict=True):
                lifecycle.scan(d)
                lifecycle.derive(r)
            checks.append(time.perf_counter() - start)
    a, b = statistics.median(listing) * 1000, statistics.median(checks) * 1000
    print(
        f"Store.select() over {runs} runs: {a:.1f} ms, of which the per-run directory scan and "
        f"crash check {b:.1f} ms ({b / a:.0%})"
    )


if __name__ == "__main__":
    main()
