"""A writer thread: file writes happen in order, off the training thread (no TensorFlow here)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

Job = Callable[[], None]


class BackgroundWriter:
    """Runs write jobs on one thread, in the order submitted; ``background=False`` runs them inline.

    The queue is bounded: when the disk falls behind, training waits rather than holding every
    epoch's arrays in memory. A job's exception stops later jobs and is raised by the next
    :meth:`submit`, :meth:`flush` or :meth:`close`.
    """

    def __init__(self, background: bool = True, depth: int = 8):
        self.error: BaseException | None = None
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._work, name="weightlab-writer", daemon=True)
            self._thread.start()

    def _run(self, job: Job) -> None:
        if self.error is not None:
            return
        try:
            job()
        except BaseException as e:  # handed to the training thread, which decides
            self.error = e

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._run(job)
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, job: Job) -> None:
        self._raise()
        if self._thread is None:
            self._run(job)
            self._raise()
        else:
            self._queue.put(job)

    def flush(self) -> None:
        """Wait until every submitted job has run."""
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def close(self) -> None:
        """Flush and stop the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()
