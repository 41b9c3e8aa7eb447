"""The run store: one directory per run (the source of truth) plus an SQLite index (a cache).

Layout::

    <store>/
      index.sqlite                 cache for fast listing; `weightlab reindex` rebuilds it
      runs/<run-id>/
        config.yaml                the fully resolved config of this one run
        run.json                   id, experiment, batch, seed, status, final metrics, timing, ...
        history.jsonl              one JSON object per epoch: metrics and per-variable statistics
        snapshots/epochs.npy       every variable at every epoch: row k = epoch k, flattened
        snapshots/layout.json      which columns of epochs.npy hold which variable
        snapshots/epoch-0000.npz   instead, with `snapshots.compress` (and in runs of older
                                   versions): one file per epoch, 0 (initial values), 1, 2, ...
        snapshots/steps-0001.npz   with `snapshots.every: N`: the steps of epoch 1 taken every N
                                   batches, stacked (`step` plus each variable, step axis first)
        error.txt                  the traceback of a failed run
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypedDict, cast

from weightlab import jsonio, lifecycle, runfiles, runlock, trajectory, yamlio
from weightlab.config import flatten
from weightlab.errors import (
    ConfigError,
    DamagedSnapshot,
    RunNotFound,
    StoreError,
    StoreReadOnly,
    UsageError,
)
from weightlab.runfiles import DamagedRun
from weightlab.text import did_you_mean, now_iso
from weightlab.trajectory import TRAJECTORY, TrajectoryWriter

if TYPE_CHECKING:  # numpy is slow to import, and `ls` never needs it
    import numpy as np

DEFAULT_STORE = "weightlab-runs"
# Run ids are generated (see new_id), but they also arrive from the command line and from index
# rows: nothing with a path separator or a leading dot may become a path under runs/.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
ENV_VAR = "WEIGHTLAB_STORE"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    batch TEXT NOT NULL,
    seed INTEGER,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    record TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment);
CREATE INDEX IF NOT EXISTS runs_batch ON runs(batch);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at);
"""


def _sql_int(value: Any) -> int | None:
    """``value`` if SQLite can hold it as an INTEGER, else NULL: one run.json's oversized seed
    (``18446744073709551616``) must not break the index for every other run."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


def new_id(at: Any = None) -> str:
    """A run or batch id: UTC time to the second and 4 random hex digits: ``261129-082601-a3f9``.

    ``at``: the ISO time the id is to carry (a run's ``started_at``, for a run trained on a Dask
    worker and written here later); default now.
    """
    stamp = time.strftime("%y%m%d-%H%M%S", time.gmtime())
    if isinstance(at, str):
        with contextlib.suppress(ValueError):
            stamp = (
                datetime.fromisoformat(at.replace("Z", "+00:00"))
                .astimezone(UTC)
                .strftime("%y%m%d-%H%M%S")
            )
    return stamp + "-" + secrets.token_hex(2)


class RunRecord(TypedDict):
    """A new run's record (``run.json``), as :func:`new_record` lists its fields.

    mypy checks the keys where a record is built (:func:`weightlab.runstart.spec_record` and its
    callers); once a writer holds it, the record is a plain dict that training fills in.
    """

    id: str | None
    experiment: str
    batch: str
    index: int
    seed: int
    cell: dict[str, Any]
    status: str
    epochs: int
    epochs_completed: int
    batches_seen: int
    diverged_at_epoch: int | None
    divergence: dict[str, Any] | None
    final: dict[str, Any]
    best: dict[str, Any] | None
    weights: dict[str, Any] | None
    timing: dict[str, float]
    snapshots: dict[str, Any]
    execution: dict[str, Any] | None
    data: dict[str, Any]
    started_at: str
    finished_at: str | None
    pid: int
    pid_started: float | None
    host: str
    versions: dict[str, str]
    source: dict[str, Any]
    error: str | None
    resumed: list[dict[str, Any]]


def new_record(
    *,
    experiment: str,
    batch: str,
    index: int,
    seed: int,
    cell: dict[str, Any],
    epochs: int,
    snapshots_every: str | int,
    data: dict[str, Any],
    versions: dict[str, str],
    source: dict[str, Any] | None = None,
) -> RunRecord:
    """A new run's ``run.json`` record, status ``running``: the one place its fields are listed."""
    return {
        "id": None,
        "experiment": experiment,
        "batch": batch,
        "index": index,
        "seed": seed,
        "cell": cell,
        "status": "running",
        "epochs": epochs,
        "epochs_completed": 0,
        "batches_seen": 0,
        "diverged_at_epoch": None,
        "divergence": None,
        "final": {},
        "best": None,
        "weights": None,
        "timing": {
            "train_seconds": 0.0,
            "snapshot_seconds": 0.0,
            "state_seconds": 0.0,
            "total_seconds": 0.0,
        },
        "snapshots": {"every": snapshots_every, "count": 0, "bytes": 0},
        "execution": None,
        "data": data,
        "started_at": now_iso(),
        "finished_at": None,
        "pid": os.getpid(),
        "pid_started": lifecycle.process_start_time(),
        "host": socket.gethostname(),
        "versions": versions,
        "source": source or {},
        "error": None,
        "resumed": [],
    }


def resolve_root(path: str | os.PathLike[str] | None = None) -> Path:
    """``--store`` if given, else ``$WEIGHTLAB_STORE``, else ``./weightlab-runs``."""
    return Path(path or os.environ.get(ENV_VAR) or DEFAULT_STORE)


@dataclass
class Store:
    """A run store rooted at ``root``. Creating the object touches nothing on disk."""

    root: Path

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Store:
        return cls(resolve_root(path))

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def index_path(self) -> Path:
        return self.root / "index.sqlite"

    def run_dir(self, run_id: str) -> Path:
        """The directory of run ``run_id``; an id that would lead outside the store is refused."""
        if not _SAFE_ID.match(run_id):
            raise RunNotFound(
                f"{run_id!r} is not a run id (letters, digits, '-' and '_' only; "
                "`weightlab ls` lists them)"
            )
        return self.runs_dir / run_id

    # ---- index -----------------------------------------------------------------------------------

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.index_path, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the index {self.index_path}: {e}") from None
        try:
            con.execute("PRAGMA busy_timeout = 30000")
            _initialize(con)
            if write:
                con.execute("BEGIN IMMEDIATE")
            yield con
            if write:
                con.execute("COMMIT")
        except sqlite3.Error as e:
            if write and con.in_transaction:
                con.execute("ROLLBACK")
            raise StoreError(
                f"index {self.index_path}: {e}; `weightlab reindex` rebuilds it "
                "from the run directories"
            ) from None
        finally:
            con.close()

    def _upsert(
        self, con: sqlite3.Connection, record: dict[str, Any], flat_config: dict[str, Any]
    ) -> None:
        # The size and mtime of run.json ride along in the cached record: when they no longer
        # match the file (edited, replaced, damaged), the row is re-read from the directory.
        cached = {**record, _SIGNATURE: self._signature(record["id"])}
        con.execute(
            "INSERT OR REPLACE INTO runs (id, experiment, batch, seed, status, started_at, record,"
            " config) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record["id"],
                record["experiment"],
                record["batch"],
                _sql_int(record.get("seed")),
                record["status"],
                record["started_at"],
                jsonio.dumps(cached),
                jsonio.dumps(flat_config),
            ),
        )

    def _signature(self, run_id: str) -> list[int] | None:
        try:
            st = (self.run_dir(run_id) / "run.json").stat()
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns]

    def index_run(self, record: dict[str, Any], flat_config: dict[str, Any]) -> None:
        """Write one run's record into the index (called by the writer at each status change)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store {self.root}: {e.strerror or e}") from None
        with self._db(write=True) as con:
            self._upsert(con, record, flat_config)

    def check_writable(self, what: str) -> None:
        """Refuse, before any work, a store this process cannot write into.

        Raises:
            StoreReadOnly: the store (or the folder it would be made in) is not writable.
        """
        probe = self.root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent  # a new store: the folder it will be created in
        paths = [probe] + [p for p in (self.runs_dir, self.index_path) if p.exists()]
        for path in paths:
            if not os.access(path, os.W_OK):
                raise StoreReadOnly(
                    f"the store {self.root} is read-only here ({path} cannot be written), so "
                    f"{what} cannot be written; `ls`, `show`, `compare` and `check` still read it"
                )

    def reindex(self, skipped: list[tuple[str, str]] | None = None) -> int:
        """Rebuild the index from the run directories. Returns the number of runs indexed.

        Args:
            skipped: filled with ``(run id, reason)`` for each damaged run left out.

        Raises:
            StoreReadOnly: the store cannot be written.
        """
        self.check_writable("the index")
        self.root.mkdir(parents=True, exist_ok=True)
        names = [d.name for d in self.run_dirs()]
        loaded = [self._load(name) for name in names]
        rows = [r for r in loaded if not isinstance(r, str)]
        if skipped is not None:
            skipped += [(n, r) for n, r in zip(names, loaded, strict=True) if isinstance(r, str)]
        try:
            self._write_index(rows)
        except StoreError:
            # Not a database any more (a bad copy, a disk error): it is only a cache, so it is
            # moved aside, never deleted, and built anew.
            for suffix in ("", "-wal", "-shm"):
                path = Path(f"{self.index_path}{suffix}")
                if path.exists():
                    path.replace(path.with_name(path.name + ".damaged"))
            self._write_index(rows)
        return len(rows)

    def _write_index(self, rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        with self._db(write=True) as con:
            con.execute("DELETE FROM runs")
            for record, flat in rows:
                self._upsert(con, record, flat)

    def run_dirs(self) -> list[Path]:
        """Every run directory (hidden ones, being created or left by a killed writer, skipped)."""
        dirs, broken = self.listing()
        return [self.runs_dir / name for name in sorted(dirs | set(broken))]

    def listing(self) -> tuple[set[str], dict[str, str]]:
        """The names of the run directories, and of run-named entries that cannot be entered
        (a symbolic link loop, a dangling link), each with the reason."""
        dirs: set[str] = set()
        broken: dict[str, str] = {}
        try:
            entries = list(os.scandir(self.runs_dir))
        except (FileNotFoundError, NotADirectoryError):
            return dirs, broken
        except OSError as e:
            raise StoreError(f"cannot list {self.runs_dir}: {e.strerror or e}") from None
        # scandir knows directories from the listing itself: no Path and no stat per run.
        for entry in entries:
            if not _SAFE_ID.match(entry.name):
                continue  # hidden .new-* directories (being created, or left by a killed writer)
            try:
                if entry.is_dir():
                    dirs.add(entry.name)
                elif entry.is_symlink():
                    os.stat(entry.path)  # raises for a loop; a link to a file is no run
            except OSError as err:
                broken[entry.name] = f"runs/{entry.name} cannot be entered: {err.strerror or err}"
        return dirs, broken

    def _load(self, run_id: str) -> tuple[dict[str, Any], dict[str, Any]] | str:
        """A run's record and flat config from its directory, or why they cannot be read."""
        try:
            record = self.stored_record(run_id)
            return record, flatten(self.config(run_id))
        except DamagedRun as e:
            return e.reason
        except Exception as e:  # a damaged run is reported, never fatal to a listing
            return _reason(e, run_id)

    # ---- reading ---------------------------------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        """Every run's record, newest first; the index is brought up to date on the way.

        A run whose writer died shows as ``crashed``, a damaged one as ``corrupt`` with the reason
        in ``error`` (see :mod:`weightlab.lifecycle`); neither hides the other runs.
        """
        if not self.runs_dir.is_dir():
            return []
        base = str(self.runs_dir)
        on_disk, broken = self.listing()
        try:
            with self._db() as con:
                rows = con.execute("SELECT id, status, record, config FROM runs").fetchall()
        except StoreError:
            rows = []  # an unreadable index is only a lost cache: list from the directories
        records: dict[str, dict[str, Any]] = {
            run_id: lifecycle.corrupt_record(run_id, reason) for run_id, reason in broken.items()
        }
        damage: dict[str, str | None] = {}
        stale: list[str] = []
        changed: set[str] = set()  # run.json differs from what the index cached
        for run_id, status, record_text, config_text in rows:
            if run_id not in on_disk:
                continue  # deleted by hand; reindex drops the row
            try:
                record = jsonio.loads(record_text)
                record["config"] = jsonio.loads(config_text)
                if not _listable(record, run_id, status):
                    raise ValueError(run_id)
            except (ValueError, TypeError, RecursionError):
                stale.append(run_id)  # a damaged cache row: read the directory instead
                continue
            signature, damage[run_id] = lifecycle.scan(os.path.join(base, run_id))
            if record.pop(_SIGNATURE, None) != signature:
                changed.add(run_id)
            if status == "running" or run_id in changed:
                stale.append(run_id)  # the writer may have died, or run.json changed since
            records[run_id] = record
        refresh = []
        for run_id in stale + [r for r in on_disk if r not in records and r not in stale]:
            loaded = self._load(run_id)
            if isinstance(loaded, str):
                records[run_id] = lifecycle.corrupt_record(run_id, loaded)
                continue
            record, flat = loaded
            same = run_id in records and records[run_id]["status"] == record["status"]
            if not same or run_id in changed:
                refresh.append((record, flat))  # a listing writes only what really changed
            records[run_id] = {**record, "config": flat}
            damage[run_id] = lifecycle.scan(os.path.join(base, run_id))[1]
        if refresh:
            try:
                with self._db(write=True) as con:
                    for record, flat in refresh:
                        self._upsert(con, record, flat)
            except StoreError:
                pass  # a read never fails because the cache could not be refreshed
        out = [_derived(self.progress(r), damage.get(r["id"])) for r in records.values()]
        return sorted(out, key=lambda r: (r["started_at"], r["id"]), reverse=True)

    def progress(self, record: dict[str, Any]) -> dict[str, Any]:
        """A ``running`` record with the epochs its history has committed and their last metrics.

        run.json is written when a run starts and when it ends; in between, ``history.jsonl``
        gets a line after each epoch (after its snapshot), so its last complete line says how far
        the run is. Any other record is returned as it is.
        """
        if record.get("status") != "running":
            return record
        row = last_row(self.run_dir(record["id"]) / "history.jsonl")
        if row is None or runfiles.row_problem(row):
            return record
        if row["epoch"] <= (record.get("epochs_completed") or 0):
            return record
        final = {k: v for k, v in row.items() if k not in ("epoch", "weights")}
        return {**record, "epochs_completed": row["epoch"], "final": final}

    def verified(
        self, records: list[dict[str, Any]], *, histories: bool = False
    ) -> list[dict[str, Any]]:
        """``records`` with those whose snapshot files fall short of run.json marked corrupt.

        One stat per snapshot file: for the few runs ``compare`` shows, not for every ``ls``.
        ``histories``: also read each history and mark a damaged one (``plot`` and ``export``,
        which read every history anyway).
        """
        out = []
        for r in records:
            damage = None
            if r["status"] not in ("corrupt", "running"):
                damage = lifecycle.scan(str(self.run_dir(r["id"])), r)[1]
            if histories and r["status"] != "corrupt" and not damage:
                damage = self.history_damage(r["id"])
            out.append(_derived(r, damage))
        return out

    def select(
        self, selectors: Sequence[str] = (), *, default: str = "all"
    ) -> list[dict[str, Any]]:
        """Runs matching any selector, newest first.

        A selector is a full run id, a unique id prefix, ``latest`` (the newest run), a batch id
        (all runs of one ``weightlab run``), or an experiment name (all its runs).

        Args:
            selectors: the selectors; empty means ``default``.
            default: ``"all"`` or ``"latest-batch"`` when no selector is given.

        Raises:
            RunNotFound: a selector matches nothing, or the store is empty.
        """
        records = self.runs()
        if not selectors:
            if default == "latest-batch" and records:
                batch = records[0]["batch"]
                return [r for r in records if r["batch"] == batch]
            return records
        if not records:
            raise RunNotFound(f"no runs in {self.root} yet; start one with `weightlab run CONFIG`")
        chosen: dict[str, dict[str, Any]] = {}
        for sel in selectors:
            for r in self._match(sel, records):
                chosen[r["id"]] = r
        return sorted(chosen.values(), key=lambda r: (r["started_at"], r["id"]), reverse=True)

    def _match(self, sel: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not sel.strip():  # '' is a prefix of every id: it would select every run
            raise UsageError(
                f"an empty selector {sel!r} selects nothing; give a run id, 'latest', a batch "
                "id or an experiment name (or no selector at all)"
            )
        if sel == "latest":
            return records[:1]
        exact = [r for r in records if r["id"] == sel]
        if exact:
            return exact
        by_batch = [r for r in records if r["batch"] == sel]
        if by_batch:
            return by_batch
        by_exp = [r for r in records if r["experiment"] == sel]
        if by_exp:
            return by_exp
        by_prefix = [r for r in records if r["id"].startswith(sel)]
        if by_prefix:
            return by_prefix
        # Tables show an id's last 4 characters (its random part): those select it too.
        by_suffix = [r for r in records if len(sel) >= 4 and r["id"].endswith(sel)]
        if by_suffix:
            return by_suffix
        names = sorted({r["experiment"] for r in records}) + [r["id"] for r in records]
        raise RunNotFound(
            f"no run matches {sel!r}{did_you_mean(sel, names)} (a selector is a run "
            "id, its first characters or its last 4 as tables show them, 'latest', a batch id "
            "or an experiment name; `weightlab ls` lists them)"
        )

    def get(self, selector: str, *, live: bool = False) -> dict[str, Any]:
        """Exactly one run's record (from its run.json) for ``selector``.

        ``live``: a running run's record with its progress so far (see :meth:`progress`).
        """
        found = self.select([selector])
        if len(found) > 1:
            ids = ", ".join(r["id"] for r in found[:5])
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise RunNotFound(
                f"{selector!r} matches {len(found)} runs ({ids}{more}); give one run id or a "
                f"longer prefix (`weightlab ls {selector}` lists them)"
            )
        if live:
            return lifecycle.derive(self.progress(self.stored_record(found[0]["id"])))
        return self.record(found[0]["id"])

    def record(self, run_id: str) -> dict[str, Any]:
        """A run's record from its run.json, with ``crashed`` derived (see :mod:`lifecycle`).

        A ``running`` record counts the epochs its history has committed (:meth:`progress`), so
        a run killed after epoch 68 reads ``crashed`` after epoch 68, not after 0.
        """
        return lifecycle.derive(self.progress(self.stored_record(run_id)))

    def stored_record(self, run_id: str) -> dict[str, Any]:
        """run.json exactly as the writer left it (no derived status), checked against the
        schema of a run record (:mod:`weightlab.runfiles`).

        Raises:
            DamagedRun: run.json is missing, unreadable or not a run record of this run.
        """
        path = self.run_dir(run_id) / "run.json"
        try:
            record = jsonio.read_json(path)
        except FileNotFoundError:
            raise DamagedRun(run_id, "run.json is missing") from None
        except (OSError, ValueError, RecursionError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else e
            if isinstance(e, RecursionError):
                why = "nested too deeply"
            raise DamagedRun(run_id, f"cannot read run.json: {why}") from None
        return runfiles.check_record(record, run_id)

    def config(self, run_id: str, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """A run's ``config.yaml``, checked to be a valid config of one run, resolved (see
        :func:`weightlab.runfiles.resolve_config`); with ``record`` (``check`` gives it), also
        that it agrees with that run.json.

        Raises:
            DamagedRun: the file is missing, unreadable, invalid, or disagrees with run.json.
        """
        path = self.run_dir(run_id) / "config.yaml"
        try:
            # Bounded, like any config: never read a planted FIFO (it would block) or a huge file.
            text = yamlio.read_bounded(path).decode("utf-8")
        except yamlio.Unreadable as e:
            why = {
                "missing": "config.yaml is missing",
                "not a file": f"config.yaml cannot be read: it is {e.detail}",
                "too large": "config.yaml is larger than a config may be "
                f"({e.size:,} bytes, at most {yamlio.MAX_BYTES:,})",
            }.get(e.kind, f"config.yaml cannot be read: {e.detail}")
            raise DamagedRun(run_id, why) from None
        except UnicodeDecodeError as e:
            raise DamagedRun(run_id, f"config.yaml cannot be read: {e}") from None
        try:
            data, lines = yamlio.load(text, "config.yaml")
        except ConfigError as e:
            raise DamagedRun(run_id, str(e).splitlines()[0]) from None
        except (RecursionError, MemoryError) as e:
            raise DamagedRun(run_id, f"config.yaml cannot be read: {type(e).__name__}") from None
        resolved, problem = runfiles.resolve_config(data, lines, path.parent)
        if resolved is None:
            raise DamagedRun(run_id, problem or "config.yaml is not a config")
        if record is not None:
            problem = runfiles.config_disagreement(resolved, data, record)
            if problem:
                raise DamagedRun(run_id, problem)
        return resolved

    def history(self, run_id: str) -> list[dict[str, Any]]:
        """The per-epoch rows of a run, up to the first damaged line (:meth:`history_damage`
        says why); a torn last line (a crash mid-write) is ignored."""
        return self._history(run_id)[0]

    def history_damage(self, run_id: str) -> str | None:
        """What is wrong with a run's ``history.jsonl``, or None (a torn last line is not)."""
        return self.read_history(run_id)[1]

    def read_history(self, run_id: str) -> tuple[list[dict[str, Any]], str | None]:
        """:meth:`history` and :meth:`history_damage` from one read of the file."""
        return self._history(run_id)

    def _history(self, run_id: str) -> tuple[list[dict[str, Any]], str | None]:
        path = self.run_dir(run_id) / "history.jsonl"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return [], "history.jsonl is missing"
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else e
            return [], f"history.jsonl cannot be read: {why}"
        lines = [line for line in text.splitlines() if line.strip()]
        try:  # one parse for the whole file beats one per line (compare reads many histories)
            rows: list[Any] = jsonio.loads("[" + ",".join(lines) + "]")
        except (ValueError, RecursionError):
            rows = []
            for n, line in enumerate(lines, 1):
                try:
                    rows.append(jsonio.decode(json.loads(line)))
                except (ValueError, RecursionError):
                    if n == len(lines):
                        break  # torn by a kill mid-write: readers ignore it
                    return rows, f"history.jsonl line {n} is not valid JSON"
        for i, row in enumerate(rows):
            problem = runfiles.row_problem(row)
            if problem is None and row["epoch"] != i:
                problem = f"epoch {row['epoch']} where epoch {i} belongs"
            if problem:
                return rows[:i], f"history.jsonl line {i + 1}: {problem}"
        return rows, None

    def snapshot_epochs(self, run_id: str) -> list[int]:
        """The epochs with a snapshot: the trajectory's committed rows, else the ``.npz`` files.

        Raises:
            DamagedSnapshot: the trajectory's header cannot be read.
        """
        snap_dir = self.run_dir(run_id) / "snapshots"
        try:  # plain names, not Path.glob: compare lists the snapshots of hundreds of runs
            names = os.listdir(snap_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise _damaged(run_id, "directory", e) from None
        if TRAJECTORY in names:
            try:
                return list(range(trajectory.committed(snap_dir / TRAJECTORY).rows))
            except (OSError, ValueError) as e:
                raise _damaged(run_id, TRAJECTORY, e) from None
        return sorted(
            int(n[6:-4])
            for n in names
            if n.startswith("epoch-") and n.endswith(".npz") and n[6:-4].isdigit()
        )

    def snapshot(self, run_id: str, epoch: int) -> dict[str, np.ndarray]:
        """Every variable of a run at ``epoch``, as ``{"dense_1/kernel": array, ...}``.

        From a trajectory only that epoch's row is read: compare reads one epoch of many runs.
        """
        snap_dir = self.run_dir(run_id) / "snapshots"
        if (snap_dir / TRAJECTORY).exists():
            try:
                return trajectory.read_epoch(snap_dir, epoch)
            except IndexError:
                pass  # named below
            except (OSError, ValueError) as e:
                raise _damaged(run_id, TRAJECTORY, e) from None
        else:
            path = snap_dir / snapshot_name(epoch)
            if path.exists():
                return load_snapshot(path, run_id)
        have = self.snapshot_epochs(run_id)
        span = f"{have[0]}..{have[-1]}" if have else "none"
        raise RunNotFound(f"run {run_id} has no snapshot for epoch {epoch} (epochs: {span})")

    def trajectory(self, run_id: str, variable: str) -> np.ndarray:
        """One variable at every snapshot epoch, stacked: shape ``(epochs, *shape)``.

        One column range of the trajectory file (memory-mapped), or every ``.npz`` of an older
        or compressed run.

        Raises:
            UsageError: the run has no such variable (the message lists those it has), or no
                snapshots at all.
            DamagedSnapshot: a snapshot file cannot be read.
        """
        import numpy as np

        snap_dir = self.run_dir(run_id) / "snapshots"
        if (snap_dir / TRAJECTORY).exists():
            try:
                values = trajectory.read_variable(snap_dir, variable)
                if values is not None:
                    return values
                names = trajectory.variable_names(snap_dir)
            except (OSError, ValueError) as e:
                raise _damaged(run_id, TRAJECTORY, e) from None
        else:
            epochs = self.snapshot_epochs(run_id)
            if not epochs:
                raise UsageError(f"run {run_id} has no weight snapshots (snapshots.every: never?)")
            first = self.snapshot(run_id, epochs[0])
            if variable in first:
                rest = [self.snapshot(run_id, e)[variable] for e in epochs[1:]]
                return np.stack([first[variable], *rest])
            names = list(first)
        raise UsageError(
            f"run {run_id} has no variable {variable!r}{did_you_mean(variable, names)} "
            f"(variables: {', '.join(names)})"
        )

    def step_snapshots(self, run_id: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A run's per-step snapshots (``snapshots.every: N``), all epochs stacked.

        Returns:
            ``(steps, {"dense_1/kernel": array of shape (len(steps), ...), ...})``; empty when the
            run took none.
        """
        import numpy as np

        chunks = []
        for path in sorted((self.run_dir(run_id) / "snapshots").glob("steps-*.npz")):
            chunks.append(load_snapshot(path, run_id))
        if not chunks:
            return np.zeros(0, dtype=np.int64), {}
        keys = [k for k in chunks[0] if k != "step"]
        steps = np.concatenate([c["step"] for c in chunks])
        order = np.argsort(steps, kind="stable")  # the parts of an epoch sort after its first file
        return steps[order], {k: np.concatenate([c[k] for c in chunks])[order] for k in keys}


def last_row(path: Path, block: int = 1 << 16) -> dict[str, Any] | None:
    """The last complete line of a ``history.jsonl``, read from its end; a torn line is skipped.

    Reads one block from the end (more only when a single row is longer), not the whole file:
    ``ls`` does this for every running run.
    """
    try:
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            while True:
                start = max(0, size - block)
                fh.seek(start)
                lines = fh.read(size - start).split(b"\n")
                complete = lines[:-1] if start == 0 else lines[1:-1]  # [0]: maybe cut; [-1]: torn
                for line in reversed(complete):
                    if line.strip():
                        try:
                            row = jsonio.loads(line.decode("utf-8"))
                        except ValueError:
                            continue
                        return row if isinstance(row, dict) else None
                if start == 0:
                    return None
                block *= 4
    except OSError:
        return None


def _initialize(con: sqlite3.Connection, patience: float = 30.0) -> None:
    """WAL mode and the schema, retried while other processes hold the database.

    Processes that open a new store at the same moment (the workers of a sweep starting their
    first runs) race to switch it to WAL, and SQLite answers "database is locked" at once
    rather than waiting out the busy timeout for that switch.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode = WAL")
            con.executescript(_SCHEMA)
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


_SIGNATURE = "_run_json"  # key of run.json's [size, mtime_ns] in the index's cached record


def _listable(record: Any, run_id: str, status: Any) -> bool:
    """Whether an index row holds what a listing sorts and shows (a cheap check: the full one
    ran when the row was written from run.json)."""
    return (
        isinstance(record, dict)
        and record.get("id") == run_id
        and status in runfiles.STATUSES
        and all(isinstance(record.get(k), str) for k in runfiles.REQUIRED)
        and isinstance(record.get("config"), dict)
    )


def _reason(error: Exception, run_id: str) -> str:
    text = str(error).removeprefix(f"run {run_id}: ")
    if isinstance(error, FileNotFoundError):
        return f"{Path(error.filename or '?').name} is missing"
    return text.splitlines()[0] if text else type(error).__name__


def _derived(record: dict[str, Any], damage: str | None) -> dict[str, Any]:
    """``record`` with the status derived when reading: corrupt (``damage``) or crashed."""
    if record["status"] == "corrupt":
        return record
    if damage:
        return {**lifecycle.corrupt_record(record["id"], damage), **_identity(record)}
    return lifecycle.derive(record)


def _identity(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of a readable record worth keeping when its run turns out damaged."""
    keep = ("experiment", "batch", "index", "seed", "cell", "epochs", "started_at", "config")
    return {k: record[k] for k in keep if k in record}


def _damaged(run_id: str, name: str, error: Exception) -> DamagedSnapshot:
    return DamagedSnapshot(f"run {run_id}: snapshot {name} is damaged: {error}", str(error))


def load_snapshot(path: Path, run_id: str = "") -> dict[str, np.ndarray]:
    """Every array of one snapshot file; pickled objects are refused, damage is a StoreError."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
    ) as e:
        where = f"run {run_id}: " if run_id else ""
        raise DamagedSnapshot(f"{where}snapshot {path.name} is damaged: {e}", str(e)) from None
    for key, array in arrays.items():
        if not np.issubdtype(array.dtype, np.number):
            why = f"array {key!r} is not numeric ({array.dtype})"
            raise DamagedSnapshot(f"snapshot {path.name}: {why}", why)
    return arrays


def snapshot_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}.npz"


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = False) -> bytes:
    """The ``.npz`` file of ``arrays``, zip-deflated when ``compress`` (``snapshots.compress``)."""
    buf = io.BytesIO()
    save_npz(buf, arrays, compress)
    return buf.getvalue()


def save_npz(fh: IO[bytes], arrays: dict[str, np.ndarray], compress: bool = False) -> None:
    """Write the ``.npz`` file of ``arrays`` into ``fh`` (seekable: the same bytes as in memory)."""
    import numpy as np

    save = np.savez_compressed if compress else np.savez
    save(fh, **arrays)  # type: ignore[arg-type]


def steps_name(epoch: int, part: int = 0) -> str:
    """The file of the per-step snapshots taken during ``epoch`` (counted from 1).

    An epoch with more copies than the writer holds in memory has parts 1, 2, ... as well.
    """
    return f"steps-{epoch:04d}.npz" if part == 0 else f"steps-{epoch:04d}.{part}.npz"


def snapshot_usage(snap_dir: Path) -> tuple[int, int]:
    """``(snapshots, bytes)`` in a snapshots directory: epochs (trajectory rows or ``.npz``
    files) plus steps files, and the bytes of every finished file."""
    try:
        names = [n for n in os.listdir(snap_dir) if n.endswith(".npz") and not n.startswith(".")]
    except FileNotFoundError:
        return 0, 0
    rows = 0
    if (snap_dir / TRAJECTORY).exists():
        rows = trajectory.committed(snap_dir / TRAJECTORY).rows
    return rows + len(names), lifecycle.snapshot_bytes(str(snap_dir))


class EpochSnapshots:
    """Where a writer puts each epoch's snapshot: a row of ``epochs.npy``, or an ``.npz`` file
    with ``snapshots.compress`` (zip-deflated, as before) and for variables that are not float32.

    Shared by :class:`RunWriter` and the Dask worker's in-memory writer, so both write the same
    bytes.
    """

    dir: Path
    epochs: TrajectoryWriter | None  # None: one .npz per epoch

    def write_snapshot(self, filename: str, arrays: dict[str, np.ndarray]) -> int:
        raise NotImplementedError

    def append_epoch_snapshot(self, epoch: int, arrays: dict[str, np.ndarray]) -> int:
        """Record every variable at ``epoch`` (epochs arrive in order, from 0).

        Returns:
            The bytes this added on disk.
        """
        if self.epochs is not None:
            added = self.epochs.append(epoch, arrays)
            if added is not None:
                return added
            self.epochs = None  # not float32: this run keeps one .npz per epoch
        return self.write_snapshot(snapshot_name(epoch), arrays)


def temp_files(run_dir: Path) -> list[Path]:
    """The temporary files of interrupted writes in a run directory (``.NAME.*.tmp``)."""
    return [*run_dir.glob(".*.tmp"), *run_dir.glob("snapshots/.*.tmp")]


class RunWriter(EpochSnapshots):
    """Writes one run's directory. Every file is replaced atomically; history and the epochs'
    trajectory are appended (see :mod:`weightlab.trajectory`)."""

    def __init__(
        self,
        store: Store,
        record: RunRecord | dict[str, Any],
        config: dict[str, Any],
        *,
        id_time: str | None = None,
    ):
        self.store = store
        self.record = cast(dict[str, Any], record)  # the same object: callers keep theirs
        self.flat = flatten(config)
        self.compress = bool(config.get("snapshots", {}).get("compress", False))
        self.lock: runlock.RunLock | None = None
        try:
            self.dir = self._create(store, self.record, yamlio.dump(config).encode(), id_time)
            self.lock = runlock.acquire(self.dir, self.id, "training")  # released when final
            self.epochs = None if self.compress else TrajectoryWriter(self.dir / "snapshots")
            self._history = (self.dir / "history.jsonl").open("a", encoding="utf-8")
        except OSError as e:
            raise StoreError(f"cannot write runs into {store.root}: {e.strerror or e}") from None
        self.store.index_run(self.record, self.flat)

    @staticmethod
    def _create(
        store: Store, record: dict[str, Any], config_yaml: bytes, id_time: str | None = None
    ) -> Path:
        """Build the run directory under a hidden name, then rename it to its id in one step.

        A process killed half-way leaves a hidden ``.new-*`` directory that listings skip, never
        a run directory without its run.json.
        """
        store.runs_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=store.runs_dir))
        try:
            tmp.chmod(0o777 & ~jsonio.umask())  # mkdtemp makes it 0700; follow the umask
            (tmp / "snapshots").mkdir()
            (tmp / "history.jsonl").touch()
            jsonio.atomic_write_bytes(tmp / "config.yaml", config_yaml)
            for _ in range(100):
                record["id"] = new_id(id_time) if id_time else new_id()
                jsonio.atomic_write_json(tmp / "run.json", record)
                path = store.runs_dir / record["id"]
                try:
                    # A taken id is a non-empty directory: rename refuses to replace it.
                    os.rename(tmp, path)
                    return path
                except OSError as e:
                    if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # pragma: no cover - 65536 ids per second
        raise StoreError("could not allocate a run id")  # pragma: no cover

    @classmethod
    def reopen(cls, store: Store, run_id: str, lock: runlock.RunLock | None = None) -> RunWriter:
        """A writer for an existing run (``weightlab resume``); its record is read as written.

        ``lock``: the run's lock, taken by :func:`weightlab.resume.prepare`; without it the
        lock is taken here (:class:`~weightlab.runlock.RunBusy` when another process has it).
        """
        self = cls.__new__(cls)
        self.store = store
        self.lock = None
        self.record = store.stored_record(run_id)
        if lock is None or not lock.held:
            status = self.record["status"]
            lock = runlock.acquire(store.run_dir(run_id), run_id, "resuming", status=status)
        self.lock = lock
        # What a killed writer left half-written (never read): with the lock held, nobody else's.
        for leftover in temp_files(store.run_dir(run_id)):
            with contextlib.suppress(OSError):
                leftover.unlink()
        config = store.config(run_id)
        self.flat = flatten(config)
        self.compress = bool(config.get("snapshots", {}).get("compress", False))
        self.dir = store.run_dir(run_id)
        # A run goes on as it began: older runs and compressed ones with one .npz per epoch.
        npz = self.compress or any((self.dir / "snapshots").glob("epoch-*.npz"))
        self.epochs = None if npz else TrajectoryWriter(self.dir / "snapshots")
        self._history = (self.dir / "history.jsonl").open("a", encoding="utf-8")
        return self

    def drop_snapshots_after(self, epoch: int) -> None:
        """Remove what was recorded after ``epoch`` (``resume`` trains those epochs again)."""
        for path in (self.dir / "snapshots").glob("*.npz"):
            # epoch-EEEE.npz, steps-EEEE.npz, steps-EEEE.P.npz: the epoch is the first number
            if int(path.name.split(".")[0].split("-")[1]) > epoch:
                path.unlink()
        if self.epochs is not None:
            self.epochs.truncate(epoch + 1)

    def rewrite_history(self, rows: list[dict[str, Any]]) -> None:
        """Replace history.jsonl by ``rows`` atomically (resume drops rows past its epoch)."""
        self._history.close()
        text = "".join(jsonio.dumps(row) + "\n" for row in rows)
        jsonio.atomic_write_bytes(self.dir / "history.jsonl", text.encode())
        self._history = (self.dir / "history.jsonl").open("a", encoding="utf-8")

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def save(self) -> None:
        """Write run.json, then the index row (the index is only a cache of run.json).

        Once the record is final (not ``running``), the run's lock is released.
        """
        try:
            jsonio.atomic_write_json(self.dir / "run.json", self.record)
            self.store.index_run(self.record, self.flat)
        finally:
            if self.record.get("status") != "running" and self.lock is not None:
                self.lock.release()

    def append_history(self, row: dict[str, Any]) -> None:
        self._history.write(jsonio.dumps(row) + "\n")
        self._history.flush()

    def write_snapshot(self, filename: str, arrays: dict[str, np.ndarray]) -> int:
        """Write one ``.npz`` snapshot file atomically (zip-deflated with ``snapshots.compress``).

        Returns:
            The file's size in bytes.
        """
        return jsonio.atomic_write(
            self.dir / "snapshots" / filename, lambda fh: save_npz(fh, arrays, self.compress)
        )

    def write_text(self, filename: str, text: str) -> None:
        jsonio.atomic_write_bytes(self.dir / filename, text.encode())

    def close(self) -> None:
        self._history.close()
