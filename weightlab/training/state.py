"""Training state for ``weightlab resume`` and for locating where a run diverged.

After every completed epoch the model's variables and the optimizer's (iterations, moments, ...)
go to one ``resume.npz`` in the run directory, replaced atomically: a few kilobytes for the models
weightlab trains. The same state, kept in memory, lets a diverged epoch be replayed batch by batch
to find the first batch and the first variable that went non-finite.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from weightlab import jsonio
from weightlab.errors import StoreError
from weightlab.sink import RunSink
from weightlab.training.model import variables

_INIT = "init:"  # epoch-0 arrays by variable key, for the distance-from-init statistics


def reader(model: keras.Model) -> Callable[[], dict[str, np.ndarray]]:
    """A function that reads every model and optimizer variable, keyed for the state file.

    One eager read per variable. A compiled read of all of them is cheaper per epoch but is traced
    once per run, which pays off only for long runs (docs/benchmarks.md, "Figures behind the
    code").
    """
    keyed = [(f"w{i:04d}", v) for i, v in enumerate(model.weights)]
    keyed += [(f"o{i:04d}", v) for i, v in enumerate(model.optimizer.variables)]

    def arrays() -> dict[str, np.ndarray]:
        return {name: np.array(v.numpy()) for name, v in keyed}

    return arrays


def _capture(
    read: Callable[[], dict[str, np.ndarray]], epoch: int, initial: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    arrays = read() | {_INIT + k: a for k, a in initial.items()}
    arrays["epoch"] = np.array(epoch, dtype=np.int64)
    return arrays


def initial(saved: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The epoch-0 arrays kept in a resume state."""
    return {k.removeprefix(_INIT): a for k, a in saved.items() if k.startswith(_INIT)}


def restore(model: keras.Model, state: dict[str, np.ndarray]) -> int:
    """Put saved model and optimizer variables back; returns the epoch they belong to."""
    if not model.optimizer.built:  # build() has no guard: a second call adds variables
        model.optimizer.build(model.trainable_variables)
    targets = [("w", model.weights), ("o", model.optimizer.variables)]
    for prefix, variables_ in targets:
        saved = sorted(k for k in state if k.startswith(prefix) and k[1:].isdigit())
        if len(saved) != len(variables_):
            raise StoreError(
                f"resume state holds {len(saved)} {'model' if prefix == 'w' else 'optimizer'} "
                f"variables, the model has {len(variables_)}"
            )
        for key, var in zip(saved, variables_, strict=True):
            if tuple(state[key].shape) != tuple(var.shape):
                raise StoreError(f"resume state: {var.path} has shape {state[key].shape}")
            var.assign(state[key])
    return int(state["epoch"])


def load(path: Path) -> dict[str, np.ndarray]:
    """Read a resume state (no pickles); a damaged file is a StoreError."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError) as e:
        raise StoreError(f"{path} is damaged: {e}") from None


class ResumeState(keras.callbacks.Callback):
    """Save model + optimizer state at the start and after each completed, finite epoch.

    Args:
        writer: the run's writer (the state file goes into its directory).
        snap: the run's snapshot callback, listed before this one: it knows whether the epoch
            just recorded was finite, and holds the epoch-0 arrays.
    """

    def __init__(self, writer: RunSink, snap: Any):
        super().__init__()
        self.path = writer.dir / "resume.npz"
        self.snap = snap
        self.last: dict[str, np.ndarray] = {}  # the last finite state, for the divergence replay
        self.seconds = 0.0
        self.bytes = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.read = reader(self.model)
        if not self.last:  # a fresh run: even one stopped in its first epoch can resume
            self.save(0)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.snap.diverged_at_epoch is None:
            self.save(epoch + 1)

    def save(self, epoch: int) -> None:
        """Capture the state of ``epoch`` (kept for the divergence replay) and write it."""
        start = time.perf_counter()
        self.last = arrays = _capture(self.read, epoch, self.snap.initial)
        # On the snapshot writer's thread, after this epoch's snapshot and history line: a state
        # on disk never runs ahead of the history a resume continues from.
        self.snap.jobs.submit(lambda: self._write(arrays))
        self.seconds += time.perf_counter() - start

    def _write(self, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        data = buf.getvalue()
        # No fsync: a kill cannot tear it (rename), and after a power cut resume refuses a damaged
        # state cleanly; an fsync per epoch can cost more than the epoch (docs/benchmarks.md).
        jsonio.atomic_write_bytes(self.path, data, fsync=False)
        self.bytes = len(data)


def first_nonfinite(
    model: keras.Model,
    state: dict[str, np.ndarray],
    batches: Iterable[tuple[Any, Any]],
) -> dict[str, Any] | None:
    """Replay one epoch from ``state`` batch by batch; where did it first go non-finite?

    Returns:
        ``{"batch": n (1-based within the epoch), "variable": "dense_1/kernel" or "loss"}``, or
        None if the replay stayed finite.
    """
    restore(model, state)
    for n, (x, y) in enumerate(batches, 1):
        loss = model.train_on_batch(x, y, return_dict=True).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return {"batch": n, "variable": "loss"}
        for key, var in variables(model):
            if not np.all(np.isfinite(var.numpy())):
                return {"batch": n, "variable": key}
    return None
