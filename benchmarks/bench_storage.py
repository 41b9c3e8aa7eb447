"""Target 4: a snapshot costs at most its raw float32 bytes + 10%; history grows linearly.

Run: .venv/bin/python benchmarks/bench_storage.py   (or `make bench`)
Trains small runs (sizes on disk do not depend on the amount of data) and compares the snapshot
files with the raw bytes of the arrays in them: the 20-64-64-1 MLP of target 1 per epoch, with
`snapshots.compress: true`, and per step (`every: 1`, one stacked file per epoch); the tiny 2-8-1
model, whose 33 numbers are smaller than the fixed ~250 bytes of zip and .npy headers per array;
and history.jsonl after 10, 20 and 40 epochs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import Lab

MLP = """
name: mlp
data: {kind: linear, samples: 2048, features: 20, validation_split: 0.0}
model:
  layers: [{units: 64, activation: relu}, {units: 64, activation: relu}, {units: 1}]
train: {epochs: 3, batch_size: 64}
"""
TINY = """
name: tiny
data: {kind: linear, samples: 64, features: 2, validation_split: 0.0}
model: {layers: [{units: 8, activation: relu}, {units: 1}]}
train: {epochs: 3, batch_size: 32}
"""


def snapshot_sizes(lab: Lab, record: dict[str, Any], pattern: str) -> tuple[int, int, int]:
    """(file bytes, raw array bytes, snapshots) over the run's files matching ``pattern``."""
    import numpy as np

    on_disk = raw = count = 0
    for path in sorted((lab.store.run_dir(record["id"]) / "snapshots").glob(pattern)):
        on_disk += path.stat().st_size
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "step"}
            count += len(npz["step"]) if "step" in npz.files else 1
        raw += sum(a.size * 4 for a in arrays.values())  # as float32
    return on_disk, raw, count


def main() -> None:
    print("\nTarget 4: snapshot bytes against the raw float32 bytes of the weights")
    print(f"{'snapshots':<52} {'bytes each':>10} {'raw each':>9} {'overhead':>9}")
    mlp, tiny = Lab(MLP), Lab(TINY)
    rows = [
        ("20-64-64-1 MLP, every epoch", mlp, [], "epoch-*.npz"),
        ("20-64-64-1 MLP, every epoch, compressed", mlp, ["snapshots.compress=true"], "epoch-*"),
        ("20-64-64-1 MLP, every: 1 (stacked, per step)", mlp, ["snapshots.every=1"], "steps-*"),
        ("2-8-1 tiny model, every epoch (33 numbers)", tiny, [], "epoch-*.npz"),
    ]
    for label, lab, overrides, pattern in rows:
        on_disk, raw, count = snapshot_sizes(lab, lab.run(*overrides), pattern)
        overhead = on_disk / raw - 1
        print(f"{label:<52} {on_disk / count:>10.0f} {raw / count:>9.0f} {overhead:>+9.1%}")
    print("target: overhead <= +10% (the MLP); the tiny model's files are header-sized")

    print(f"\n{'history.jsonl of the MLP':<30} {'bytes':>8} {'bytes per epoch':>16}")
    for epochs in (10, 20, 40):
        record = mlp.run(f"train.epochs={epochs}", "snapshots.every=never")
        size = Path(mlp.store.run_dir(record["id"]) / "history.jsonl").stat().st_size
        print(f"{f'{epochs} epochs':<30} {size:>8} {size / (epochs + 1):>16.0f}")
    mlp.close()
    tiny.close()


if __name__ == "__main__":
    main()
