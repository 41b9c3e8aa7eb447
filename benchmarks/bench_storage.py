"""Target 4: a snapshot costs at most its raw float32 bytes + 10%; history grows linearly.

Run: .venv/bin/python benchmarks/bench_storage.py   (or `make bench`)
Trains small runs (sizes on disk do not depend on the amount of data) and divides the bytes of
their snapshot files by the number of snapshots, against the raw float32 bytes of the weights:
the tiny 2-8-1 model (33 numbers) and the 20-64-64-1 MLP of target 1, each per epoch (one
`epochs.npy` trajectory plus its `layout.json`: a fixed 128-byte header and the layout per run,
then exactly the raw bytes per epoch) and with `snapshots.compress: true` (one zip-deflated
`.npz` per epoch), and the MLP per step (`every: 1`, one stacked `steps-EEEE.npz` per epoch);
then history.jsonl after 10, 20 and 40 epochs. Bytes are deterministic: no repetitions needed.
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
train: {epochs: 10, batch_size: 64}
"""
TINY = """
name: tiny
data: {kind: linear, samples: 64, features: 2, validation_split: 0.0}
model: {layers: [{units: 8, activation: relu}, {units: 1}]}
train: {epochs: 50, batch_size: 32}
"""


def snapshot_sizes(lab: Lab, record: dict[str, Any], steps: bool) -> tuple[int, int, int]:
    """(bytes on disk, raw float32 bytes, snapshots) of a run's epoch or step snapshots."""
    store, run_id = lab.store, record["id"]
    params = sum(a.size for a in store.snapshot(run_id, 0).values())
    snaps = store.run_dir(run_id) / "snapshots"
    if steps:
        files = list(snaps.glob("steps-*.npz"))
        count = len(store.step_snapshots(run_id)[0])
    else:
        files = [p for p in snaps.iterdir() if not p.name.startswith("steps-")]
        count = len(store.snapshot_epochs(run_id))
    return sum(p.stat().st_size for p in files), count * params * 4, count


def main() -> None:
    print("\nTarget 4: snapshot bytes against the raw float32 bytes of the weights")
    print(f"{'snapshots':<56} {'count':>5} {'bytes each':>10} {'raw each':>9} {'overhead':>9}")
    mlp, tiny = Lab(MLP), Lab(TINY)
    rows = [
        ("2-8-1 tiny model, every epoch, 10 epochs", tiny, ["train.epochs=10"], False),
        ("2-8-1 tiny model, every epoch, 50 epochs", tiny, [], False),
        ("2-8-1 tiny model, every epoch, 200 epochs", tiny, ["train.epochs=200"], False),
        (
            "2-8-1 tiny model, every epoch, 50 epochs, compressed",
            tiny,
            ["snapshots.compress=true"],
            False,
        ),
        ("20-64-64-1 MLP, every epoch, 10 epochs", mlp, [], False),
        (
            "20-64-64-1 MLP, every epoch, 10 epochs, compressed",
            mlp,
            ["snapshots.compress=true"],
            False,
        ),
        (
            "20-64-64-1 MLP, every: 1 (stacked per epoch, per step)",
            mlp,
            ["snapshots.every=1"],
            True,
        ),
    ]
    fixed = {}
    for label, lab, overrides, steps in rows:
        record = lab.run(*overrides)
        on_disk, raw, count = snapshot_sizes(lab, record, steps)
        layout = lab.store.run_dir(record["id"]) / "snapshots" / "layout.json"
        if layout.exists():
            fixed[label.split(",")[0]] = 128 + layout.stat().st_size
        overhead = on_disk / raw - 1
        print(
            f"{label:<56} {count:>5} {on_disk / count:>10.0f} {raw / count:>9.0f} {overhead:>+9.1%}"
        )
    print(
        "target: overhead <= +10%. Per epoch the overhead is the fixed 128-byte header and "
        "layout.json shared by all epochs of a run; every row is exactly the raw bytes"
    )
    print("fixed bytes per run: " + ", ".join(f"{k} {v}" for k, v in fixed.items()))

    print(f"\n{'history.jsonl of the MLP':<30} {'bytes':>8} {'bytes per epoch':>16}")
    for epochs in (10, 20, 40):
        record = mlp.run(f"train.epochs={epochs}", "snapshots.every=never")
        size = Path(mlp.store.run_dir(record["id"]) / "history.jsonl").stat().st_size
        print(f"{f'{epochs} epochs':<30} {size:>8} {size / (epochs + 1):>16.0f}")
    mlp.close()
    tiny.close()


if __name__ == "__main__":
    main()
