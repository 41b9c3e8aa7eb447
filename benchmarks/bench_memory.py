"""Target 5: a run's peak memory does not grow with its number of epochs.

Run: .venv/bin/python benchmarks/bench_memory.py   (or `make bench`)
Each run trains in a fresh process (peak RSS is per process) and reports its peak resident set
size and its RSS after each epoch: the 20-64-64-1 MLP on 2,000 samples (32 steps per epoch) for
10 and 100 epochs, with snapshots every epoch and every step (every: 1, 3,200 snapshots at 100
epochs, 70 MB if they were kept in memory).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from common import Lab

MLP = """
name: mlp
data: {kind: linear, samples: 2000, features: 20, validation_split: 0.0}
model:
  layers: [{units: 64, activation: relu}, {units: 64, activation: relu}, {units: 1}]
train: {batch_size: 64}
"""


def child(epochs: int, every: str) -> None:
    """Train one run; print peak RSS and the RSS after epochs 10 and the last, in MB."""
    import psutil

    proc = psutil.Process()
    rss: dict[int, float] = {}

    def sample(event: dict[str, object]) -> None:
        if event["type"] == "epoch":
            rss[int(event["epoch"])] = proc.memory_info().rss / 2**20  # type: ignore[call-overload]

    lab = Lab(MLP)
    lab.run(f"train.epochs={epochs}", f"snapshots.every={every}", on_event=sample)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(json.dumps({"peak": peak, "at_10": rss[10], "at_end": rss[epochs]}))
    lab.close()


def main() -> None:
    print("\nTarget 5: peak RSS (MB) against the number of epochs, one fresh process per run")
    print(f"{'run':<42} {'peak':>7} {'RSS @10':>8} {'RSS @end':>9}")
    peaks: dict[str, list[float]] = {}
    for every in ("epoch", "1"):
        for epochs in (10, 100):
            out = subprocess.run(
                [sys.executable, str(Path(__file__)), "--child", str(epochs), every],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            m = json.loads(out.strip().splitlines()[-1])
            peaks.setdefault(every, []).append(m["peak"])
            label = f"MLP, {epochs} epochs, snapshots.every={every}"
            print(f"{label:<42} {m['peak']:>7.0f} {m['at_10']:>8.0f} {m['at_end']:>9.0f}")
    for every, (short, long) in peaks.items():
        print(f"every={every}: peak at 100 epochs - peak at 10 epochs = {long - short:+.0f} MB")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]), sys.argv[3])
    else:
        main()
