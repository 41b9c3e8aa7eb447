"""One owner per run: the process that trains or resumes a run holds ``runs/<id>/run.lock``.

The lock is an ``flock`` on that file, held for as long as the process writes the run, and the
file says who holds it (``{"pid", "host", "started", "purpose"}``). The kernel drops the lock
when its process ends, however it ends (SIGKILL included), so a crashed run is never left locked
on its own host. A second ``weightlab resume`` of the same run finds the lock taken and is
refused at once, before it writes anything; so is a ``resume`` of a run that a process on
another host is training (``flock`` may not reach across a network file system, so there the
file's contents decide). Releasing removes the file: a lock file no process holds is what a
killed writer leaves, and the next owner takes it over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from weightlab.errors import UsageError
from weightlab.text import now_iso

LOCK = "run.lock"


class RunBusy(UsageError):
    """The run is owned by another process (exit code 2, like every refusal of ``resume``)."""


class RunLock:
    """A held lock on one run directory; :meth:`release` (or garbage collection) drops it."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent).

        Removed while still locked: a process that opened the file before and locks it after
        finds it is no longer the file at that path, and starts again (see :func:`acquire`).
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only store: the lock goes with the descriptor anyway
        finally:
            os.close(fd)

    def __del__(self) -> None:
        self.release()


def holder(path: Path) -> dict[str, Any] | None:
    """Who the lock file says holds the run, or None (empty, missing or unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
        found = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _who(h: dict[str, Any] | None) -> str:
    if not h:
        return "another process"
    since = f" since {h['started']}" if h.get("started") else ""
    return f"process {h.get('pid')} on {h.get('host')} ({h.get('purpose', 'training')}{since})"


def acquire(run_dir: Path, run_id: str, purpose: str, *, status: str | None = None) -> RunLock:
    """Take the lock of run ``run_id`` for this process, or refuse.

    Args:
        run_dir: the run's directory.
        run_id: for messages.
        purpose: ``"training"`` or ``"resuming"``, written into the lock file.
        status: the status run.json holds; with ``"running"``, a lock file that names another
            host counts as held even where ``flock`` does not reach that host.

    Raises:
        RunBusy: another process holds the run.
    """

    path = run_dir / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)  # the umask applies
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except BlockingIOError:
            os.close(fd)
            raise RunBusy(
                f"run {run_id} is in use: {_who(holder(path))} holds it; a run is trained by "
                f"one process at a time (`weightlab show {run_id} --follow` follows it)"
            ) from None
        except FileNotFoundError:
            same = False  # released (removed) between our open and our lock
        except OSError:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    lock = RunLock(path, fd)
    found = holder(path)
    here = socket.gethostname()
    if found and found.get("host") not in (None, here) and status == "running":
        lock._fd = None  # keep what the other host wrote
        os.close(fd)
        raise RunBusy(
            f"run {run_id} is in use: {_who(found)} holds it ({path}); a process on another "
            f"host cannot be checked from here: if it is gone, delete {path} and try again"
        )
    text = json.dumps({"pid": os.getpid(), "host": here, "started": now_iso(), "purpose": purpose})
    os.ftruncate(fd, 0)
    os.pwrite(fd, (text + "\n").encode(), 0)
    return lock


__all__ = ["LOCK", "RunBusy", "RunLock", "acquire", "holder"]
