"""What a run's status really is when read back, and how termination signals end a run.

A run marked ``running`` whose process is gone shows as ``crashed``: the process is identified by
its pid *and* its start time, since pids are reused. A run directory that cannot be read shows as
``corrupt`` with the reason. Neither is written back: run.json stays what the writer left, so
a later ``weightlab resume`` still sees the truth. No TensorFlow, no numpy here.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

from weightlab import trajectory

# Process start times come from /proc with a resolution of one clock tick; a reused pid starts
# later than the original process by at least that process's lifetime.
_START_TOLERANCE = 0.5
RESUMABLE = ("interrupted", "crashed")


def process_start_time(pid: int | None = None) -> float | None:
    """The start time (seconds since the epoch) of process ``pid`` (default: this one)."""
    import psutil  # slow to import: only when a run is written or a `running` one is read

    try:
        process = psutil.Process(pid if pid is not None else os.getpid())
        if process.status() == psutil.STATUS_ZOMBIE:
            return None  # exited, only not yet reaped by its parent
        return float(process.create_time())
    except (psutil.Error, OSError):
        return None


def writer_alive(record: dict[str, Any]) -> bool:
    """Whether the process that wrote a ``running`` record is still that same process.

    A record from another host cannot be checked from here and counts as alive.
    """
    if record.get("host") not in (None, socket.gethostname()):
        return True
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    started = process_start_time(pid)
    if started is None:
        return False
    recorded = record.get("pid_started")
    return recorded is None or abs(started - float(recorded)) < _START_TOLERANCE


def derive(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with status ``crashed`` if it says ``running`` but its process is gone."""
    if record.get("status") == "running" and not writer_alive(record):
        return {
            **record,
            "status": "crashed",
            "error": record.get("error")
            or f"process {record.get('pid')} on {record.get('host')} ended without finishing "
            f"the run (killed or crashed) after epoch {record.get('epochs_completed', 0)}",
        }
    return record


def started_from_id(run_id: str) -> str:
    """The UTC start time encoded in a run id (``261129-082601-a3f9``), as ISO text."""
    d, t = (run_id.split("-") + ["", ""])[:2]
    if len(d) == 6 and len(t) == 6 and (d + t).isdigit():
        return f"20{d[:2]}-{d[2:4]}-{d[4:]}T{t[:2]}:{t[2:4]}:{t[4:]}.000Z"
    return "0000-00-00T00:00:00.000Z"


def corrupt_record(run_id: str, reason: str) -> dict[str, Any]:
    """A stand-in record for a run directory that cannot be read, so listings still show it."""
    return {
        "id": run_id,
        "experiment": "?",
        "batch": "",
        "index": 0,
        "seed": None,
        "cell": {},
        "status": "corrupt",
        "epochs": None,
        "epochs_completed": 0,
        "diverged_at_epoch": None,
        "final": {},
        "best": None,
        "weights": None,
        "started_at": started_from_id(run_id),
        "error": reason,
        "config": {},
    }


def scan(run_dir: str, record: dict[str, Any] | None = None) -> tuple[list[int] | None, str | None]:
    """One look at a run directory, cheap enough for ``ls``: run.json's ``[size, mtime_ns]``
    (to tell whether the index's copy is current) and what is visibly wrong, if anything.

    Always whether ``snapshots/epochs.npy`` is as long as its header says (one small read).
    With ``record``, also whether the snapshot files add up to the bytes it records (a truncated
    or deleted ``.npz``): one stat per file, so ``compare`` asks for it and ``ls`` does not.
    ``weightlab check`` reads every file; this only looks at headers, names and sizes.
    """
    try:
        entries = {e.name: e for e in os.scandir(run_dir)}
    except OSError as e:
        return None, f"cannot read the run directory: {e.strerror or e}"
    if "run.json" not in entries:
        return None, "run.json is missing"
    try:
        st = entries["run.json"].stat()
    except OSError as e:  # a link loop, a link to nowhere
        return None, f"cannot read run.json: {e.strerror or e}"
    signature = [st.st_size, st.st_mtime_ns]
    if st.st_size == 0:
        return signature, "run.json is empty"
    for name in ("config.yaml", "history.jsonl"):
        if name not in entries:
            return signature, f"{name} is missing"
    snap_dir = os.path.join(run_dir, "snapshots")
    damaged = trajectory.damage(snap_dir)
    if damaged:
        return signature, damaged
    recorded = ((record or {}).get("snapshots") or {}).get("bytes") or 0
    if recorded and record and record.get("status") != "running":
        on_disk = snapshot_bytes(snap_dir)
        if on_disk < recorded:
            return signature, (
                f"snapshot files hold {on_disk} bytes, run.json records {recorded} "
                "(truncated or deleted); `weightlab check` names them"
            )
    return signature, None


def snapshot_bytes(snap_dir: str) -> int:
    """Total size of the finished snapshot files (temporary files start with a dot)."""
    own = (trajectory.TRAJECTORY, trajectory.LAYOUT)
    try:
        return sum(
            e.stat().st_size
            for e in os.scandir(snap_dir)
            if (e.name.endswith(".npz") and not e.name.startswith(".")) or e.name in own
        )
    except OSError:
        return 0


# ---- termination signals -------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) turned into the same clean stop as Ctrl-C, with its own exit code."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 for Ctrl-C (SIGINT), 128 + the signal number for :class:`Terminated`."""
    return getattr(interrupt, "exit_code", 128 + signal.SIGINT)


def signal_name(interrupt: KeyboardInterrupt) -> str:
    return signal.Signals(getattr(interrupt, "signum", signal.SIGINT)).name


class _StopState:
    """What the signal handler knows: the first stop signal, how many came, who polls for it.

    A handler that raises can have its exception swallowed when the signal lands inside a
    finalizer or a callback that catches everything (1 SIGTERM in about 22 was lost that way while
    training). So while training polls (a Keras callback at every batch and epoch end, see
    :func:`polling`), the first signal only sets a flag and training stops itself, at a point of
    its own choosing; the second raises at once; the third leaves without recording anything
    (the run then shows as ``crashed``, resumable). Outside polling the first signal raises as
    before, and the flag stays set, so a swallowed raise is still honoured at the next check.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self.polling = 0
        self.depth = 0
        self.remote: Callable[[], bool] | None = None  # another stop request (a Dask sweep's)
        self.remote_checked = 0.0


_STOP = _StopState()
REMOTE_POLL_SECONDS = 0.5  # how often a remote stop request is asked for (a round trip)


def stop_requested() -> int | None:
    """The signal number of a stop that was asked for and not yet honoured, else None."""
    if _STOP.signum is None and _STOP.remote is not None:
        now = time.monotonic()
        if now - _STOP.remote_checked >= REMOTE_POLL_SECONDS:
            _STOP.remote_checked = now
            try:
                if _STOP.remote():
                    _STOP.signum = signal.SIGTERM
            except Exception:  # an unreachable scheduler is no reason to stop, nor to fail
                pass
    return _STOP.signum


def check_stop() -> None:
    """Raise :class:`Terminated` if a stop was asked for (a signal, or :func:`remote_stop`)."""
    signum = stop_requested()
    if signum is not None:
        raise Terminated(signum)


@contextmanager
def polling() -> Iterator[None]:
    """Within this block something calls :func:`check_stop` often (training's callback), so the
    first signal only sets the flag."""
    _STOP.polling += 1
    try:
        yield
    finally:
        _STOP.polling -= 1


@contextmanager
def remote_stop(requested: Callable[[], bool]) -> Iterator[None]:
    """Within this block :func:`stop_requested` also asks ``requested()`` (at most every
    :data:`REMOTE_POLL_SECONDS`): how a Dask worker's training learns that its sweep stopped."""
    _STOP.remote, _STOP.remote_checked = requested, 0.0
    try:
        yield
    finally:
        _STOP.remote = None
        _STOP.signum = None  # this process goes on to serve other tasks


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _STOP.count += 1
    if _STOP.signum is None:
        _STOP.signum = signum
    if _STOP.count >= 3:
        with suppress(OSError):
            os.write(2, f"\n{signal.Signals(signum).name} a third time: exiting now\n".encode())
        os._exit(128 + signum)
    if _STOP.count >= 2 or not _STOP.polling:
        raise Terminated(signum)


def _catchable(signals: tuple[signal.Signals, ...]) -> list[signal.Signals]:
    """Those of ``signals`` that may be handled here: main thread only, and never one the
    user chose to ignore (``nohup`` ignores SIGHUP)."""
    if threading.current_thread() is not threading.main_thread():
        return []  # a Dask worker thread cannot set handlers; its process handles them
    return [s for s in signals if signal.getsignal(s) is not signal.SIG_IGN]


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within this block SIGINT, SIGTERM and SIGHUP stop training cleanly (see
    :class:`_StopState`): the run is recorded ``interrupted`` instead of left ``running``, and
    :class:`Terminated` carries the signal's exit code."""
    wanted = _catchable((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    if (
        signal.SIGINT in wanted
        and signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        wanted.remove(signal.SIGINT)  # someone else's Ctrl-C handler (a test runner): keep it
    previous = {s: signal.signal(s, _on_signal) for s in wanted}
    if _STOP.depth == 0:
        _STOP.signum, _STOP.count = None, 0
    _STOP.depth += 1
    try:
        yield
    finally:
        _STOP.depth -= 1
        for s, handler in previous.items():
            signal.signal(s, handler)
        if _STOP.depth == 0:
            _STOP.signum, _STOP.count = None, 0


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP while the final record is written, then deliver the first.

    A second Ctrl-C while run.json is being saved would otherwise leave it saying ``running``.
    Python-level handlers, not a signal mask: a mask covers one thread, and TensorFlow's threads
    would take the signal instead.
    """
    pending: list[int] = []
    wanted = _catchable((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    previous = {s: signal.signal(s, lambda n, _f: pending.append(n)) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])
