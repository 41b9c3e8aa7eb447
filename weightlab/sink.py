"""What training writes a run through: the seam between the training package and the store.

:class:`~weightlab.store.RunWriter` writes into a run directory of the store;
:class:`~weightlab.executors.MemoryWriter` keeps the run in memory on a Dask worker and the client
writes it. Training (``weightlab.training``) is written against :class:`RunSink` only, so mypy
checks that both offer everything it calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from weightlab.store import RunRecord


class RunSink(Protocol):
    """One run's writer, as training uses it."""

    record: dict[str, Any]  # run.json, updated in place as the run trains
    dir: Path  # a directory for what Keras callbacks write themselves (TensorBoard, resume state)

    @property
    def id(self) -> str: ...

    def save(self) -> None:
        """Write the record (run.json), and index it."""

    def append_history(self, row: dict[str, Any]) -> None:
        """Add one epoch's line to history.jsonl."""

    def write_snapshot(self, filename: str, arrays: dict[str, np.ndarray]) -> int:
        """Write one ``.npz`` snapshot file under ``snapshots/``; returns its size in bytes."""
        ...

    def append_epoch_snapshot(self, epoch: int, arrays: dict[str, np.ndarray]) -> int:
        """Record every variable at ``epoch``; returns the bytes this added."""
        ...

    def drop_snapshots_after(self, epoch: int) -> None:
        """Remove what was recorded after ``epoch`` (a resumed run writes it again)."""

    def write_text(self, filename: str, text: str) -> None:
        """Write a text file into the run (``error.txt``)."""

    def close(self) -> None:
        """Close what is open; :meth:`save` may still follow."""


# make_writer(store, record, config): a RunWriter into the store, or a Dask worker's MemoryWriter.
MakeSink = Callable[[Any, "RunRecord", dict[str, Any]], RunSink]
