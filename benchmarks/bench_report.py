"""`weightlab report`: size and time of the page of 40 runs x 100 epochs of a 4-16-16-1 model.

Run: .venv/bin/python benchmarks/bench_report.py   (or `make bench`)
The store is written with the store's own writer (RunWriter: run.json, config.yaml, history,
the epochs' trajectory), no training: 2 settings (use_bias true/false) x 20 seeds. Figures: the
page's size, the median wall time of 5 fresh `python -m weightlab report` processes (what a user
types; a fake tensorflow package that refuses import comes first on PYTHONPATH), the
interpreter start-up and `import scipy.stats` beside it, and the in-process time of each step.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, fresh_median

REPEATS = 5
RUNS_PER_SETTING, EPOCHS, SHAPE = 20, 100, (4, 16, 16, 1)


def write_store(root: Path) -> None:
    import numpy as np

    from weightlab import stats
    from weightlab.store import RunWriter, Store, new_record, now_iso

    store = Store(root)
    for use_bias in (True, False):
        for seed in range(RUNS_PER_SETTING):
            layers = [
                {"units": u, "name": f"dense_{i + 1}", "activation": "relu", "use_bias": use_bias}
                for i, u in enumerate(SHAPE[1:-1])
            ] + [{"units": 1, "name": "out", "activation": None, "use_bias": use_bias}]
            config = {
                "name": "bench-report",
                "seed": seed,
                "data": {"kind": "linear", "samples": 200, "features": SHAPE[0]},
                "model": {"use_bias": use_bias, "layers": layers},
                "train": {"epochs": EPOCHS, "loss": "mse"},
                "snapshots": {"every": "epoch"},
            }
            record = new_record(
                experiment="bench-report",
                batch="bench",
                index=seed,
                seed=seed,
                cell={"model.use_bias": use_bias},
                epochs=EPOCHS,
                snapshots_every="epoch",
                data={"kind": "linear"},
                versions={},
            )
            writer = RunWriter(store, record, config)
            rng = np.random.default_rng(seed)
            arrays = {}
            for i, (n_in, n_out) in enumerate(zip(SHAPE[:-1], SHAPE[1:], strict=True)):
                name = layers[i]["name"]
                arrays[f"{name}/kernel"] = rng.normal(size=(n_in, n_out)).astype(np.float32)
                if use_bias:
                    arrays[f"{name}/bias"] = np.zeros(n_out, dtype=np.float32)
            initial, previous = dict(arrays), None
            for epoch in range(EPOCHS + 1):
                if epoch:
                    arrays = {
                        k: (a + rng.normal(scale=0.02, size=a.shape)).astype(np.float32)
                        for k, a in arrays.items()
                    }
                writer.append_epoch_snapshot(epoch, arrays)
                row: dict[str, Any] = {"epoch": epoch}
                if epoch:
                    loss = (2.0 if use_bias else 5.0) / epoch + 0.01 * seed
                    row.update(loss=loss, val_loss=loss * 1.1)
                before = previous or {}
                row["weights"] = {
                    k: stats.variable_stats(a, initial[k], before.get(k)) for k, a in arrays.items()
                }
                writer.append_history(row)
                previous = arrays
            writer.close()
            history = store.history(writer.id)
            record.update(stats.summarize(history), status="completed", epochs_completed=EPOCHS)
            record["final"] = {"loss": history[-1]["loss"], "val_loss": history[-1]["val_loss"]}
            record["finished_at"] = now_iso()
            record["snapshots"].update(count=EPOCHS + 1)
            writer.save()


def fake_tensorflow(root: Path) -> Path:
    for name in ("tensorflow", "keras"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f"raise ImportError('{name} imported')\n")
    return root


def wall(argv: list[str], store: Path, fake: Path) -> float:
    env = {**os.environ, "WEIGHTLAB_STORE": str(store)}
    env["PYTHONPATH"] = os.pathsep.join([str(fake), str(ROOT)])
    return fresh_median(argv, env, REPEATS)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        write_store(store)
        fake = fake_tensorflow(Path(tmp) / "fake")
        page = Path(tmp) / "report.html"
        runs = 2 * RUNS_PER_SETTING
        print(f"report of {runs} runs x {EPOCHS} epochs, model {'-'.join(map(str, SHAPE))}")
        print(f"{'median of 5 fresh processes':<58} {'seconds':>8}")
        for label, argv in (
            ("python -c pass (interpreter start-up)", ["-c", "pass"]),
            ("python -c 'import scipy.stats' (compare's t-test)", ["-c", "import scipy.stats"]),
            ("weightlab report -o report.html (no TensorFlow)", ["-m", "weightlab", "report"]),
        ):
            if argv[-1] == "report":
                argv = [*argv, "-o", str(page)]
            print(f"{label:<58} {wall(argv, store, fake):>8.3f}")
        size = page.stat().st_size
        from weightlab import report

        plotly = len(report.plotly_js().encode())
        print(
            f"page size {size / 1e6:.2f} MB (limit 10 MB): plotly.js {plotly / 1e6:.2f} MB, "
            f"data and page {(size - plotly) / 1e6:.2f} MB"
        )

        from weightlab.store import Store

        s = Store(store)
        records = s.verified(s.select([], default="latest-batch"))
        import scipy.stats  # noqa: F401  (its import is the line above; here the work alone)

        steps: dict[str, list[float]] = {"build": [], "html": []}
        for _ in range(REPEATS):
            start = time.perf_counter()
            data = report.build(s, records)
            steps["build"].append(time.perf_counter() - start)
            start = time.perf_counter()
            text = report.html(data)
            steps["html"].append(time.perf_counter() - start)
        for label, key in (
            ("report.build: compare, histograms, bands, distances", "build"),
            ("report.html: the JSON and the page's text", "html"),
        ):
            print(f"{label + ' (in-process)':<58} {statistics.median(steps[key]):>8.3f}")
        assert len(text.encode()) < 10_000_000
        assert "tensorflow" not in sys.modules


if __name__ == "__main__":
    main()
