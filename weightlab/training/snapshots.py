"""The Keras callback that records every weight and bias tensor as training goes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from weightlab.stats import variable_stats
from weightlab.store import RunWriter, snapshot_name
from weightlab.training.model import variables


class WeightSnapshots(keras.callbacks.Callback):
    """Snapshot every variable at epoch 0 and after each epoch (and every N batches).

    Arrays go to disk as they are taken; only the epoch-0 and the previous arrays stay in memory
    (for the distance-from-init and change-per-epoch statistics). A non-finite loss or weight stops
    training and marks the run diverged; the non-finite arrays are not written as a snapshot.

    Args:
        writer: the run directory writer.
        every: ``"epoch"``, ``"never"`` or a number of batches.
        on_epoch: called with ``(epoch, logs)`` after each epoch is recorded.
    """

    def __init__(
        self,
        writer: RunWriter,
        every: str | int,
        on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    ):
        super().__init__()
        if not (every in ("epoch", "never") or (isinstance(every, int) and every >= 1)):
            raise ValueError(
                f"`every` must be 'epoch', 'never' or an integer >= 1. Received: every={every}"
            )
        self.writer = writer
        self.every = every
        self.on_epoch = on_epoch
        self.initial: dict[str, np.ndarray] = {}
        self.previous: dict[str, np.ndarray] | None = None
        self.diverged_at_epoch: int | None = None
        self.nonfinite: str | None = None
        self.first_bad: str | None = None  # "loss" or the first non-finite variable at epoch end
        self.epochs_completed = 0
        self.snapshot_seconds = 0.0
        self.earlier_snapshot_seconds = 0.0  # of the sessions before a resume
        self.resumed = False
        self.batches_seen = 0  # optimizer steps so far, restored with the state on resume
        self.snapshot_count = 0
        self.snapshot_bytes = 0
        self.steps = 0
        self.last_logs: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []  # the history rows (statistics only, no arrays)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {key: np.array(v.numpy()) for key, v in variables(self.model)}

    def _write(self, filename: str, arrays: dict[str, np.ndarray]) -> None:
        self.snapshot_bytes += self.writer.write_snapshot(filename, arrays)
        self.snapshot_count += 1

    def record(self, epoch: int, logs: dict[str, Any]) -> bool:
        """Record epoch ``epoch``; returns False when the run has diverged."""
        start = time.perf_counter()
        arrays = self._arrays()
        if epoch == 0:
            self.initial = arrays
        metrics = {k: float(v) for k, v in logs.items()}
        bad_metric = next(
            (k for k, v in metrics.items() if k == "loss" and not math.isfinite(v)), None
        )
        bad_var = next((k for k, a in arrays.items() if not np.all(np.isfinite(a))), None)
        row = {
            "epoch": epoch,
            **metrics,
            "weights": {
                k: variable_stats(
                    a, self.initial[k], None if self.previous is None else self.previous[k]
                )
                for k, a in arrays.items()
            },
        }
        self.writer.append_history(row)
        self.rows.append(row)
        finite = bad_metric is None and bad_var is None
        if finite and self.every != "never":
            self._write(snapshot_name(epoch), arrays)
        self.previous = arrays
        self.snapshot_seconds += time.perf_counter() - start
        if not finite:
            self.diverged_at_epoch = epoch
            self.first_bad = "loss" if bad_metric else bad_var
            self.nonfinite = (
                f"epoch loss {metrics['loss']}"
                if bad_metric
                else f"{bad_var} has non-finite values"
            )
        return finite

    @property
    def session_snapshot_seconds(self) -> float:
        """Snapshot time of this process only (a resumed run adds to the earlier sessions')."""
        return self.snapshot_seconds - self.earlier_snapshot_seconds

    def resume_from(
        self,
        epoch: int,
        rows: list[dict[str, Any]],
        initial: dict[str, np.ndarray],
        steps_per_epoch: int,
        record: dict[str, Any],
    ) -> None:
        """Continue after ``epoch`` of a stopped run: its history rows and epoch-0 arrays.

        Snapshot files past ``epoch`` (written after the resume state was) are removed: the
        resumed run writes them again, bit for bit.
        """
        self.resumed = True
        self.epochs_completed = epoch
        self.rows = list(rows)
        self.initial = initial
        self.previous = self._arrays()
        self.steps = epoch * steps_per_epoch
        self.batches_seen = int(self.model.optimizer.iterations.numpy())
        self.last_logs = {
            k: v for k, v in (rows[-1] if rows else {}).items() if k not in ("epoch", "weights")
        }
        self.snapshot_seconds = self.earlier_snapshot_seconds = float(
            record["timing"].get("snapshot_seconds", 0.0)
        )
        for path in sorted((self.writer.dir / "snapshots").glob("*.npz")):
            kind, number = path.stem.split("-")
            limit = epoch if kind == "epoch" else self.steps
            if int(number) > limit:
                path.unlink()
                continue
            self.snapshot_count += 1
            self.snapshot_bytes += path.stat().st_size

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.resumed:
            self.record(0, {})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.last_logs = {k: float(v) for k, v in logs.items()}
        finite = self.record(epoch + 1, logs)
        self.epochs_completed = epoch + 1
        self.batches_seen = int(self.model.optimizer.iterations.numpy())
        if self.on_epoch is not None:
            self.on_epoch(epoch + 1, self.last_logs)
        if not finite:
            self.model.stop_training = True


class BatchWeightSnapshots(WeightSnapshots):
    """:class:`WeightSnapshots` plus one snapshot every ``every`` batches (``step-XXXXXXXX.npz``).

    A separate class because defining a batch hook at all makes Keras call it synchronously after
    every step; runs that snapshot per epoch should not pay for that.
    """

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.steps += 1
        if isinstance(self.every, int) and self.steps % self.every == 0:
            start = time.perf_counter()
            arrays = self._arrays()
            if all(np.all(np.isfinite(a)) for a in arrays.values()):
                self._write(f"step-{self.steps:08d}.npz", arrays)
            self.snapshot_seconds += time.perf_counter() - start


def snapshot_callback(
    writer: RunWriter,
    every: str | int,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> WeightSnapshots:
    """The snapshot callback for ``snapshots.every``."""
    cls = BatchWeightSnapshots if isinstance(every, int) else WeightSnapshots
    return cls(writer, every, on_epoch)
