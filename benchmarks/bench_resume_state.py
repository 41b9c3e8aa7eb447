"""Cost of the per-epoch resume state (model + optimizer variables in resume.npz, fsynced).

Run: .venv/bin/python benchmarks/bench_resume_state.py
Trains configs/bias-vs-no-bias.yaml (one run, use_bias=true, Adam so that the optimizer has
moments to save) with the state written after every epoch and with the write switched off,
interleaved in this one process, 5 times each; prints the medians and their ratio.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(repeats: int = 5) -> None:
    from weightlab.config import load_experiment
    from weightlab.store import Store
    from weightlab.training import state
    from weightlab.training.sweep import run_experiment

    config = ROOT / "configs" / "bias-vs-no-bias.yaml"
    overrides = ["matrix={}", "train.optimizer=adam"]
    save = state.ResumeState.on_epoch_end
    fit: dict[str, list[float]] = {"state every epoch": [], "no state": []}
    per_epoch: list[float] = []
    size = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        run_experiment(load_experiment(config, [*overrides, "train.epochs=2"]), store)  # warm-up
        for _ in range(repeats):
            for label in fit:
                state.ResumeState.on_epoch_end = (
                    save
                    if label == "state every epoch"
                    # type: ignore[method-assign]
                    else (lambda self, epoch, logs=None: None)
                )
                (record,) = run_experiment(load_experiment(config, overrides), store)
                t = record["timing"]
                fit[label].append(t["train_seconds"] + t["snapshot_seconds"] + t["state_seconds"])
                if label == "state every epoch":
                    per_epoch.append(t["state_seconds"] / record["epochs_completed"])
                    size = (store.run_dir(record["id"]) / "resume.npz").stat().st_size
        state.ResumeState.on_epoch_end = save  # type: ignore[method-assign]
    a, b = (statistics.median(v) for v in fit.values())
    print(f"fit median, state every epoch: {a:.3f} s; without: {b:.3f} s; ratio {a / b:.3f}")
    print(
        f"state write per epoch: median {statistics.median(per_epoch) * 1000:.2f} ms, "
        f"{size} bytes (50 epochs, 800 samples, 8-1 MLP, Adam)"
    )


if __name__ == "__main__":
    main()
