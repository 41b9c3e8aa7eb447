"""Cost of recording: per-epoch snapshots against `snapshots.every: never` (statistics only).

Run: .venv/bin/python benchmarks/bench_snapshots.py   (or `make bench`)
Both variants train configs/bias-vs-no-bias.yaml (one run, use_bias=true) in this one process,
interleaved, 5 times each; the ratio of the medians is the price of the snapshots.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(repeats: int = 5) -> None:
    from weightlab.config import load_experiment
    from weightlab.store import Store
    from weightlab.training.runner import run_experiment

    config = ROOT / "configs" / "bias-vs-no-bias.yaml"
    variants = {"snapshots every epoch": "epoch", "snapshots never": "never"}
    fit: dict[str, list[float]] = {k: [] for k in variants}
    snap: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        # One warm-up run so that TensorFlow's first-use costs fall on neither variant.
        run_experiment(load_experiment(config, ["matrix={}", "train.epochs=2"]), store)
        for _ in range(repeats):
            for label, every in variants.items():
                exp = load_experiment(config, ["matrix={}", f"snapshots.every={every}"])
                (record,) = run_experiment(exp, store)
                t = record["timing"]
                fit[label].append(t["train_seconds"] + t["snapshot_seconds"])
                snap[label].append(t["snapshot_seconds"])
    print(
        f"{'variant (50 epochs, 800 samples)':<34} {'fit median s':>12} {'of it snapshots s':>18}"
    )
    for label in variants:
        print(
            f"{label:<34} {statistics.median(fit[label]):>12.3f} "
            f"{statistics.median(snap[label]):>18.3f}"
        )
    ratio = statistics.median(fit["snapshots every epoch"]) / statistics.median(
        fit["snapshots never"]
    )
    print(f"ratio every-epoch / never: {ratio:.3f}")


if __name__ == "__main__":
    main()
