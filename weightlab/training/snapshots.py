"""The Keras callback that records every weight and bias tensor as training goes.

Recording never waits on the disk: the training thread only copies the variables (and checks them
for NaN); a writer thread turns the copies into files and history lines, in order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from weightlab.background import BackgroundWriter
from weightlab.sink import RunSink
from weightlab.stats import variable_stats
from weightlab.store import snapshot_usage, steps_name
from weightlab.training.model import Sequential, variables

# Per-step buffers inside the compiled step are capped at this many bytes; the runner shortens
# steps_per_execution to fit (see runner.plan_execution).
STEP_BUFFER_BYTES = 64 * 2**20


class WeightSnapshots(keras.callbacks.Callback):
    """Snapshot every variable at epoch 0 and after each epoch.

    The training thread only copies the variables and checks them for non-finite values; the
    statistics, the snapshot file and then the history line are made on a
    :class:`~weightlab.background.BackgroundWriter` thread, so a line on disk means its snapshot
    is complete. Memory holds the epoch-0 and the previous arrays (for the distance-from-init and
    change-per-epoch statistics) and the few epochs queued for writing, never the whole run.
    A non-finite loss or weight stops training and marks the run diverged; the non-finite arrays
    are not written as a snapshot. Call :meth:`close` after ``fit`` (also after an exception) to
    wait for the writes.

    Args:
        writer: the run directory writer.
        every: ``"epoch"``, ``"never"`` or a number of batches.
        on_epoch: called with ``(epoch, logs)`` after each epoch is recorded.
        background: write on a thread (``False``: inline, same files).
    """

    def __init__(
        self,
        writer: RunSink,
        every: str | int,
        on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
        *,
        background: bool = True,
    ):
        super().__init__()
        if not (every in ("epoch", "never") or (isinstance(every, int) and every >= 1)):
            raise ValueError(
                f"`every` must be 'epoch', 'never' or an integer >= 1. Received: every={every}"
            )
        self.writer = writer
        self.every = every
        self.on_epoch = on_epoch
        self.jobs = BackgroundWriter(background)
        self.initial: dict[str, np.ndarray] = {}
        self.previous: dict[str, np.ndarray] | None = None
        self.diverged_at_epoch: int | None = None
        self.nonfinite: str | None = None
        self.first_bad: str | None = None  # "loss" or the first non-finite variable at epoch end
        self.epochs_completed = 0
        self.snapshot_seconds = 0.0  # time the training thread spent recording
        self.earlier_snapshot_seconds = 0.0  # of the sessions before a resume
        self.resumed = False
        self.batches_seen = 0  # optimizer steps so far, restored with the state on resume
        self.snapshot_count = 0  # epoch snapshots and steps files written
        self.snapshot_bytes = 0
        self.step_count = 0  # per-step snapshots written (inside the steps files)
        self.last_logs: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []  # history rows (statistics only); whole after close

    def _arrays(self) -> dict[str, np.ndarray]:
        return {key: np.array(v.numpy()) for key, v in variables(self.model)}

    def _save(self, filename: str, arrays: dict[str, np.ndarray]) -> None:
        """Write one snapshot file (on the writer thread)."""
        self.snapshot_bytes += self.writer.write_snapshot(filename, arrays)
        self.snapshot_count += 1

    def _save_epoch(self, epoch: int, arrays: dict[str, np.ndarray]) -> None:
        """Append one epoch's snapshot to the run's trajectory (on the writer thread)."""
        self.snapshot_bytes += self.writer.append_epoch_snapshot(epoch, arrays)
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
        finite = bad_metric is None and bad_var is None
        previous = self.previous
        self.jobs.submit(lambda: self._history_row(epoch, metrics, arrays, previous, finite))
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

    def _history_row(
        self,
        epoch: int,
        metrics: dict[str, float],
        arrays: dict[str, np.ndarray],
        previous: dict[str, np.ndarray] | None,
        finite: bool,
    ) -> None:
        """The snapshot file, then the statistics line (on the writer thread)."""
        if finite and self.every != "never":
            self._save_epoch(epoch, arrays)
        stats = {
            k: variable_stats(a, self.initial[k], None if previous is None else previous[k])
            for k, a in arrays.items()
        }
        row = {"epoch": epoch, **metrics, "weights": stats}
        self.rows.append(row)
        self.writer.append_history(row)

    def close(self) -> None:
        """Wait for every queued write; raises the first write error."""
        start = time.perf_counter()
        try:
            self.jobs.close()
        finally:
            self.snapshot_seconds += time.perf_counter() - start

    @property
    def session_snapshot_seconds(self) -> float:
        """Snapshot time of this process only (a resumed run adds to the earlier sessions')."""
        return self.snapshot_seconds - self.earlier_snapshot_seconds

    def resume_from(
        self,
        epoch: int,
        rows: list[dict[str, Any]],
        initial: dict[str, np.ndarray],
        record: dict[str, Any],
    ) -> None:
        """Continue after ``epoch`` of a stopped run: its history rows and epoch-0 arrays.

        Snapshots of later epochs (written after the resume state was) are removed: the resumed
        run writes them again, bit for bit.
        """
        self.resumed = True
        self.epochs_completed = epoch
        self.rows = list(rows)
        self.initial = initial
        self.previous = self._arrays()
        self.batches_seen = int(self.model.optimizer.iterations.numpy())
        self.last_logs = {
            k: v for k, v in (rows[-1] if rows else {}).items() if k not in ("epoch", "weights")
        }
        self.snapshot_seconds = self.earlier_snapshot_seconds = float(
            record["timing"].get("snapshot_seconds", 0.0)
        )
        self.writer.drop_snapshots_after(epoch)
        snap_dir = self.writer.dir / "snapshots"
        self.snapshot_count, self.snapshot_bytes = snapshot_usage(snap_dir)
        for path in snap_dir.glob("steps-*.npz"):
            with np.load(path, allow_pickle=False) as npz:
                self.step_count += len(npz["step"])

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


class StepCapture:
    """Copies every variable into a buffer inside the compiled train step, every ``every`` steps.

    Keras calls batch hooks once per ``steps_per_execution`` steps, so a hook cannot see the
    steps in between; the copy has to happen in the step itself: the model's ``train_step``
    calls :meth:`after_step` (:meth:`~weightlab.training.model.Sequential.capture_steps`). It
    costs one read of the optimizer's step counter and one write of all variables, flattened,
    into a ring buffer row: each extra op in a step costs time on small models. Steps that are
    not a multiple of ``every`` write into a scratch row rather than branching. :meth:`drain`
    hands the copies taken since the last drain to Python; the ring holds one execution's copies.

    Args:
        model: a compiled :class:`~weightlab.training.model.Sequential`.
        every: copy after every ``every``-th step (steps counted from 1 over the whole run).
    """

    def __init__(self, model: keras.Model, every: int):
        if not isinstance(model, Sequential):
            raise TypeError(f"per-step capture needs a weightlab Sequential, not {type(model)}")
        self.every = every
        self.named = variables(model)
        self.shapes = [tuple(v.shape) for _, v in self.named]
        self.sizes = [int(np.prod(shape)) for shape in self.shapes]
        spe = int(getattr(model, "steps_per_execution", 1) or 1)
        self.ring = -(-spe // every) + 1  # more rows than copies in one execution
        self.buffer = tf.Variable(tf.zeros((self.ring + 1, sum(self.sizes))), trainable=False)
        self.counter = model.optimizer.iterations  # steps taken, incremented by the step itself
        self.drained = int(self.counter.numpy())
        model.capture_steps(self)

    def after_step(self) -> None:
        """Inside the compiled step, after its update: copy the variables into the ring."""
        every = self.every
        step = tf.convert_to_tensor(self.counter)
        slot = (step // every) % self.ring
        if every > 1:
            slot = tf.where(step % every == 0, slot, self.ring)
        flat = tf.concat([_flat(v) for _, v in self.named], 0)
        # A scatter, not `buffer[slot].assign`: a slice assignment costs several times more.
        self.buffer.scatter_nd_update(tf.reshape(slot, [1, 1]), flat[None])

    def drain(self) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        """``(steps, {name: stacked arrays})`` copied since the last drain, or None."""
        now = int(self.counter.numpy())
        first = self.drained // self.every + 1
        steps = np.arange(first, now // self.every + 1, dtype=np.int64) * self.every
        self.drained = now
        if not len(steps):
            return None
        rows = tf.gather(self.buffer, (steps // self.every) % self.ring).numpy()
        arrays, start = {}, 0
        for (name, _), shape, size in zip(self.named, self.shapes, self.sizes, strict=True):
            arrays[name] = rows[:, start : start + size].reshape(len(steps), *shape)
            start += size
        return steps, arrays


def _flat(variable: Any) -> Any:
    return tf.reshape(tf.cast(tf.convert_to_tensor(variable), tf.float32), [-1])


class BatchWeightSnapshots(WeightSnapshots):
    """:class:`WeightSnapshots` plus one snapshot every ``every`` batches.

    The copies are taken inside the compiled step (:class:`StepCapture`), so any
    ``steps_per_execution`` works, and written once per epoch as one file of stacked arrays
    (``steps-EEEE.npz``: ``step`` plus each variable with a leading step axis). An epoch whose
    copies outgrow :data:`STEP_BUFFER_BYTES` is written in parts as it goes (``steps-EEEE.1.npz``,
    ...), so memory does not grow with the steps of an epoch either. Copies with non-finite
    values are dropped. A separate class because defining a batch hook makes Keras call it after
    every execution; runs that snapshot per epoch should not pay for that.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.capture: StepCapture | None = None
        self.pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        self.pending_bytes = 0
        self.epoch = 1  # the epoch being trained, counted from 1
        self.part = 0

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        if self.capture is None:
            assert isinstance(self.every, int)
            self.capture = StepCapture(model, self.every)

    def _drain(self) -> None:
        start = time.perf_counter()
        taken = self.capture.drain() if self.capture is not None else None
        if taken is not None:
            self.pending.append(taken)
            self.pending_bytes += sum(a.nbytes for a in taken[1].values())
        self.snapshot_seconds += time.perf_counter() - start

    def _flush_steps(self) -> None:
        if self.pending:
            chunks, name = self.pending, steps_name(self.epoch, self.part)
            self.jobs.submit(lambda: self._save_steps(name, chunks))
            self.pending, self.pending_bytes, self.part = [], 0, self.part + 1

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch, self.part = epoch + 1, 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._drain()
        if self.pending_bytes >= STEP_BUFFER_BYTES:
            self._flush_steps()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._drain()
        self._flush_steps()
        super().on_epoch_end(epoch, logs)

    def _save_steps(
        self, name: str, chunks: list[tuple[np.ndarray, dict[str, np.ndarray]]]
    ) -> None:
        steps, arrays = stack_finite(chunks)
        if len(steps):
            self._save(name, {"step": steps, **arrays})
            self.step_count += len(steps)


def stack_finite(
    chunks: list[tuple[np.ndarray, dict[str, np.ndarray]]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Concatenate drained chunks along the step axis, keeping only all-finite steps.

    The usual case, one chunk (one compiled call per epoch) with nothing non-finite, is returned
    as it is: these are megabytes per epoch, copied on the writer thread while training goes on.
    """
    if len(chunks) == 1:
        steps, arrays = chunks[0]
    else:
        steps = np.concatenate([s for s, _ in chunks])
        arrays = {k: np.concatenate([a[k] for _, a in chunks]) for k in chunks[0][1]}
    if all(np.isfinite(a).all() for a in arrays.values()):
        return steps, arrays
    keep = np.ones(len(steps), dtype=bool)
    for a in arrays.values():
        keep &= np.isfinite(a.reshape(len(steps), -1)).all(axis=1)
    return steps[keep], {k: a[keep] for k, a in arrays.items()}


def snapshot_callback(
    writer: RunSink,
    every: str | int,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    *,
    background: bool = True,
) -> WeightSnapshots:
    """The snapshot callback for ``snapshots.every``."""
    cls = BatchWeightSnapshots if isinstance(every, int) else WeightSnapshots
    return cls(writer, every, on_epoch, background=background)
