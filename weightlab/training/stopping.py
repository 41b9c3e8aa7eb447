"""The callback that ends ``fit`` soon after a stop was asked for (a signal, or a Dask sweep)."""

from __future__ import annotations

from typing import Any

import keras

from weightlab import lifecycle


class StopOnRequest(keras.callbacks.Callback):
    """Checks :func:`weightlab.lifecycle.stop_requested` at every batch and epoch end.

    A signal handler only sets a flag while ``fit`` runs (see :mod:`weightlab.lifecycle`); this
    callback turns it into :class:`~weightlab.lifecycle.Terminated`, raised from an ordinary
    callback in the training loop, where nothing swallows it. With ``steps_per_execution`` a
    batch end comes once per compiled call, a fraction of a second (``WORK_PER_EXECUTION``).
    Put it after the snapshot callbacks: an epoch that ended is recorded before the stop.
    """

    def _check(self) -> None:
        signum = lifecycle.stop_requested()
        if signum is not None:
            if self.model is not None:
                self.model.stop_training = True
            raise lifecycle.Terminated(signum)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._check()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._check()

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._check()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._check()
