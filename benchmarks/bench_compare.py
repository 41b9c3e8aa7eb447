"""Read-path speed and memory: `ls` over 1,000 runs, `compare` over 200, trajectory distances.

Run: .venv/bin/python benchmarks/bench_compare.py   (or `make bench`)
Synthetic stores are written directly (run dirs + `reindex`, no TensorFlow). Wall times are the
median of 5 fresh processes (`python -m weightlab ...`, what a user types); then the same work
in this process without the imports, and the peak memory of a trajectory compare (tracemalloc).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, fresh_median

REPEATS = 5


def write_store(
    root: Path, cells: list[dict[str, Any]], seeds: int, epochs: int, units: int
) -> None:
    """One run per cell and seed: run.json, config.yaml, history.jsonl, the epochs' trajectory
    (snapshots/epochs.npy and layout.json, as training writes them)."""
    import numpy as np

    from weightlab import stats, yamlio
    from weightlab.store import Store, new_record
    from weightlab.trajectory import TrajectoryWriter

    store = Store(root)
    n = 0
    for cell in cells:
        for seed in range(seeds):
            n += 1
            run_id = f"261129-{n // 3600:02d}{n // 60 % 60:02d}{n % 60:02d}-{n % 65536:04x}"
            run = store.run_dir(run_id)
            (run / "snapshots").mkdir(parents=True)
            bias = cell.get("model.use_bias", True)
            config = {
                "name": "bench",
                "seed": seed,
                "model": {
                    "use_bias": bias,
                    "kernel_initializer": cell.get("model.kernel_initializer", "glorot_uniform"),
                    "layers": [{"units": units, "name": "hidden"}, {"units": 1, "name": "out"}],
                },
                "train": {"epochs": epochs},
            }
            rng = np.random.default_rng(seed)
            shapes = {"hidden/kernel": (9, units), "out/kernel": (units, 1)}
            if bias:
                shapes |= {"hidden/bias": (units,), "out/bias": (1,)}
            w = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
            initial = dict(w)
            lines = []
            snapshots = TrajectoryWriter(run / "snapshots")
            for epoch in range(epochs + 1):
                w = {k: a + np.float32(0.01) * a for k, a in w.items()}
                snapshots.append(epoch, w)
                row: dict[str, Any] = {"epoch": epoch}
                if epoch:
                    row["loss"] = (25.0 if not bias else 0.01) + 1 / epoch + seed * 1e-3
                row["weights"] = {
                    k: stats.variable_stats(a, initial[k], None) for k, a in w.items()
                }
                lines.append(json.dumps(row))
            (run / "history.jsonl").write_text("\n".join(lines) + "\n")
            record = new_record(
                experiment="bench",
                batch="b",
                index=n,
                seed=seed,
                cell=cell,
                epochs=epochs,
                snapshots_every="epoch",
                data={},
                versions={},
            )
            history = [json.loads(line) for line in lines]
            record.update(stats.summarize(history), id=run_id, status="completed")
            record.update(epochs_completed=epochs, final={"loss": history[-1]["loss"]})
            (run / "run.json").write_text(json.dumps(record))
            (run / "config.yaml").write_text(yamlio.dump(config))
    store.reindex()


def wall(argv: list[str], store: Path) -> float:
    """Median wall seconds of ``argv`` in a fresh process (``weightlab`` = python -m weightlab)."""
    env = {**os.environ, "WEIGHTLAB_STORE": str(store), "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's installed package has its .pyc files
    if argv[0] == "weightlab":
        argv = ["-m", *argv]
    return fresh_median(argv, env, REPEATS)


def median_seconds(fn: Callable[[], object]) -> float:
    fn()  # warm-up: imports (scipy.stats, numpy) and the page cache
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(big: Path, two: Path, pair: Path) -> None:
    """The work itself, imports excluded: ls (select + table), compare, the trajectory distance."""
    import io

    from rich.console import Console

    from weightlab import analysis, render
    from weightlab.store import Store

    def ls() -> None:
        store = Store(big)
        Console(file=io.StringIO(), width=100).print(
            render.runs_list(store.select(), str(big), 100)
        )

    def compare(root: Path, **kwargs: Any) -> Callable[[], dict[str, Any]]:
        store = Store(root)
        return lambda: analysis.compare(store, store.select(), **kwargs)

    for label, fn in (
        ("ls: select + render, 1,000 runs", ls),
        ("analysis.compare, 200 runs x 20 epochs", compare(two, by="model.use_bias")),
        ("analysis.compare(per_epoch), 2 runs x 101 snapshots", compare(pair, per_epoch=True)),
    ):
        print(f"{label + ' (in-process)':<60} {median_seconds(fn):>8.3f}")
    run = compare(pair, per_epoch=True)
    tracemalloc.start()
    result = run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(result["pairs"][0]["seeds"][0]["epochs"]) == 101
    store = Store(pair)
    epoch_bytes = sum(a.nbytes for a in store.snapshot(store.select()[0]["id"], 0).values())
    print(
        f"peak traced memory of that compare {peak / 1e6:.2f} MB; one epoch of one run "
        f"{epoch_bytes / 1e6:.3f} MB; the whole trajectory of both runs "
        f"{2 * 101 * epoch_bytes / 1e6:.1f} MB"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "ls1000"
        write_store(big, [{"model.use_bias": b} for b in (True, False)], 500, 3, 8)
        two = Path(tmp) / "compare200"
        write_store(
            two,
            [
                {"model.use_bias": b, "model.kernel_initializer": init}
                for init in ("glorot_uniform", "he_normal", "zeros", "ones")
                for b in (True, False)
            ],
            25,
            20,
            8,
        )
        pair = Path(tmp) / "pair"
        # 9 inputs x 1000 hidden + 1000 outputs (+ 1001 biases): about 10,000 parameters.
        write_store(pair, [{"model.use_bias": b} for b in (True, False)], 1, 100, 1000)
        print(f"{'benchmark (median of 5 fresh processes)':<60} {'seconds':>8}")
        for label, argv, store in (
            ("python -c pass (interpreter start-up)", ["-c", "pass"], big),
            ("python -c 'import scipy.stats' (part of compare)", ["-c", "import scipy.stats"], big),
            ("weightlab --help", ["weightlab", "--help"], big),
            ("weightlab ls, 1,000 runs", ["weightlab", "ls"], big),
            (
                "weightlab compare --by use_bias, 200 runs x 20 epochs",
                ["weightlab", "compare", "--by", "model.use_bias"],
                two,
            ),
            (
                "weightlab compare --per-epoch, 2 runs x 100 epochs x 10k",
                ["weightlab", "compare", "--per-epoch"],
                pair,
            ),
        ):
            print(f"{label:<60} {wall(argv, store):>8.3f}")
        in_process(big, two, pair)


if __name__ == "__main__":
    main()
