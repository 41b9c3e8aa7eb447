"""The run store: one directory per run (the source of truth) plus an SQLite index (a cache).

Layout::

    <store>/
      index.sqlite                 cache for fast listing; `weightlab reindex` rebuilds it
      runs/<run-id>/
        config.yaml                the fully resolved config of this one run
        run.json                   id, experiment, batch, seed, status, final metrics, timing, ...
        history.jsonl              one JSON object per epoch: metrics and per-variable statistics
        snapshots/epoch-0000.npz   every variable at epoch 0 (initial values), 1, 2, ...
        snapshots/steps-0001.npz   with `snapshots.every: N`: the steps of epoch 1 taken every N
                                   batches, stacked (`step` plus each variable, step axis first)
        error.txt                  the traceback of a failed run
"""

from __future__ import annotations

import io
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weightlab import jsonio, yamlio
from weightlab.config import did_you_mean, flatten
from weightlab.errors import RunNotFound, StoreError

if TYPE_CHECKING:  # numpy costs ~0.15 s to import; `ls` never needs it
    import numpy as np

DEFAULT_STORE = "weightlab-runs"
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


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """A run or batch id: UTC time to the second and 4 random hex digits: ``261129-082601-a3f9``."""
    return time.strftime("%y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


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
) -> dict[str, Any]:
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
        "diverged_at_epoch": None,
        "final": {},
        "best": None,
        "weights": None,
        "timing": {"train_seconds": 0.0, "snapshot_seconds": 0.0, "total_seconds": 0.0},
        "snapshots": {"every": snapshots_every, "count": 0, "bytes": 0},
        "execution": None,
        "data": data,
        "started_at": now_iso(),
        "finished_at": None,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "versions": versions,
        "source": source or {},
        "error": None,
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
            con.execute("PRAGMA journal_mode = WAL")
            con.executescript(_SCHEMA)
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
        con.execute(
            "INSERT OR REPLACE INTO runs (id, experiment, batch, seed, status, started_at, record,"
            " config) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record["id"],
                record["experiment"],
                record["batch"],
                record.get("seed"),
                record["status"],
                record["started_at"],
                jsonio.dumps(record),
                jsonio.dumps(flat_config),
            ),
        )

    def index_run(self, record: dict[str, Any], flat_config: dict[str, Any]) -> None:
        """Write one run's record into the index (called by the writer at each status change)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store {self.root}: {e.strerror or e}") from None
        with self._db(write=True) as con:
            self._upsert(con, record, flat_config)

    def reindex(self) -> int:
        """Rebuild the index from the run directories. Returns the number of runs indexed."""
        self.root.mkdir(parents=True, exist_ok=True)
        loaded = [self._load_for_index(d.name) for d in self._run_dirs()]
        rows = [r for r in loaded if r is not None]
        with self._db(write=True) as con:
            con.execute("DELETE FROM runs")
            for record, flat in rows:
                self._upsert(con, record, flat)
        return len(rows)

    def _run_dirs(self) -> list[Path]:
        if not self.runs_dir.is_dir():
            return []
        return [d for d in self.runs_dir.iterdir() if d.is_dir() and not d.name.startswith(".")]

    def _load_for_index(self, run_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        try:
            record = self.record(run_id)
            return record, flatten(self.config(run_id))
        except Exception:  # a damaged run is skipped here, never fatal to a listing
            return None

    # ---- reading ---------------------------------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        """Every run's record, newest first; the index is brought up to date on the way."""
        if not self.runs_dir.is_dir():
            return []
        # scandir knows directories from the listing itself: no Path and no stat per run.
        with os.scandir(self.runs_dir) as entries:
            on_disk = {e.name for e in entries if e.is_dir() and not e.name.startswith(".")}
        with self._db() as con:
            rows = con.execute("SELECT id, status, record, config FROM runs").fetchall()
        records: dict[str, dict[str, Any]] = {}
        stale: list[str] = []
        for run_id, status, record_text, config_text in rows:
            if run_id not in on_disk:
                continue  # deleted by hand; reindex drops the row
            record = jsonio.loads(record_text)
            record["config"] = jsonio.loads(config_text)
            if status == "running":
                stale.append(run_id)  # the writer may have died before updating the index
            records[run_id] = record
        missing = [r for r in on_disk if r not in records]
        refresh = []
        for run_id in stale + missing:
            loaded = self._load_for_index(run_id)
            if loaded is None:
                records.pop(run_id, None)
                continue
            record, flat = loaded
            if run_id in records and records[run_id]["status"] == record["status"]:
                continue
            refresh.append((record, flat))
            records[run_id] = {**record, "config": flat}
        if refresh:
            try:
                with self._db(write=True) as con:
                    for record, flat in refresh:
                        self._upsert(con, record, flat)
            except StoreError:
                pass  # a read never fails because the cache could not be refreshed
        return sorted(records.values(), key=lambda r: (r["started_at"], r["id"]), reverse=True)

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
        names = sorted({r["experiment"] for r in records}) + [r["id"] for r in records]
        raise RunNotFound(
            f"no run matches {sel!r}{did_you_mean(sel, names)} (a selector is a run "
            "id or id prefix, 'latest', a batch id or an experiment name; "
            "`weightlab ls` lists them)"
        )

    def get(self, selector: str) -> dict[str, Any]:
        """Exactly one run's record (from its run.json) for ``selector``."""
        found = self.select([selector])
        if len(found) > 1:
            ids = ", ".join(r["id"] for r in found[:5])
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise RunNotFound(
                f"{selector!r} matches {len(found)} runs ({ids}{more}); give one run id or a "
                f"longer prefix (`weightlab ls {selector}` lists them)"
            )
        return self.record(found[0]["id"])

    def record(self, run_id: str) -> dict[str, Any]:
        try:
            record: dict[str, Any] = jsonio.read_json(self.run_dir(run_id) / "run.json")
        except (OSError, ValueError) as e:
            raise StoreError(f"run {run_id}: cannot read run.json: {e}") from None
        return record

    def config(self, run_id: str) -> dict[str, Any]:
        path = self.run_dir(run_id) / "config.yaml"
        data, _ = yamlio.load(path.read_text(encoding="utf-8"), str(path))
        return dict(data)

    def history(self, run_id: str) -> list[dict[str, Any]]:
        """The per-epoch rows of a run; a torn last line (a crash mid-write) is ignored."""
        path = self.run_dir(run_id) / "history.jsonl"
        rows = []
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        lines = [line for line in text.splitlines() if line.strip()]
        try:  # one parse for the whole file is ~3× faster than one per line (compare reads many)
            whole: list[dict[str, Any]] = jsonio.loads("[" + ",".join(lines) + "]")
            return whole
        except ValueError:
            pass
        for line in lines:
            try:
                rows.append(jsonio.decode(json.loads(line)))
            except ValueError:
                break
        return rows

    def snapshot_epochs(self, run_id: str) -> list[int]:
        try:  # plain names, not Path.glob: compare lists the snapshots of hundreds of runs
            names = os.listdir(self.run_dir(run_id) / "snapshots")
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(int(n[6:-4]) for n in names if n.startswith("epoch-") and n.endswith(".npz"))

    def snapshot(self, run_id: str, epoch: int) -> dict[str, np.ndarray]:
        """Every variable of a run at ``epoch``, as ``{"dense_1/kernel": array, ...}``."""
        path = self.run_dir(run_id) / "snapshots" / snapshot_name(epoch)
        if not path.exists():
            have = self.snapshot_epochs(run_id)
            span = f"{have[0]}..{have[-1]}" if have else "none"
            raise RunNotFound(f"run {run_id} has no snapshot for epoch {epoch} (epochs: {span})")
        import numpy as np

        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def step_snapshots(self, run_id: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A run's per-step snapshots (``snapshots.every: N``), all epochs stacked.

        Returns:
            ``(steps, {"dense_1/kernel": array of shape (len(steps), ...), ...})``; empty when the
            run took none.
        """
        import numpy as np

        chunks = []
        for path in sorted((self.run_dir(run_id) / "snapshots").glob("steps-*.npz")):
            with np.load(path, allow_pickle=False) as npz:
                chunks.append({k: npz[k] for k in npz.files})
        if not chunks:
            return np.zeros(0, dtype=np.int64), {}
        keys = [k for k in chunks[0] if k != "step"]
        steps = np.concatenate([c["step"] for c in chunks])
        order = np.argsort(steps, kind="stable")  # the parts of an epoch sort after its first file
        return steps[order], {k: np.concatenate([c[k] for c in chunks])[order] for k in keys}


def snapshot_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}.npz"


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = False) -> bytes:
    """The ``.npz`` file of ``arrays``, zip-deflated when ``compress`` (``snapshots.compress``)."""
    import numpy as np

    buf = io.BytesIO()
    save = np.savez_compressed if compress else np.savez
    save(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def steps_name(epoch: int, part: int = 0) -> str:
    """The file of the per-step snapshots taken during ``epoch`` (counted from 1).

    An epoch with more copies than the writer holds in memory has parts 1, 2, ... as well.
    """
    return f"steps-{epoch:04d}.npz" if part == 0 else f"steps-{epoch:04d}.{part}.npz"


class RunWriter:
    """Writes one run's directory. Every file is replaced atomically; history is appended."""

    def __init__(self, store: Store, record: dict[str, Any], config: dict[str, Any]):
        self.store = store
        self.record = record
        self.flat = flatten(config)
        self.compress = bool(config.get("snapshots", {}).get("compress", False))
        try:
            self.dir = self._allocate(store)
            record["id"] = self.dir.name
            (self.dir / "snapshots").mkdir()
            jsonio.atomic_write_bytes(self.dir / "config.yaml", yamlio.dump(config).encode())
            self._history = (self.dir / "history.jsonl").open("a", encoding="utf-8")
        except OSError as e:
            raise StoreError(f"cannot write runs into {store.root}: {e.strerror or e}") from None
        self.save()

    @staticmethod
    def _allocate(store: Store) -> Path:
        store.runs_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            path = store.runs_dir / new_id()
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise StoreError("could not allocate a run id")  # pragma: no cover - 65536 per second

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def save(self) -> None:
        """Write run.json, then the index row (the index is only a cache of run.json)."""
        jsonio.atomic_write_json(self.dir / "run.json", self.record)
        self.store.index_run(self.record, self.flat)

    def append_history(self, row: dict[str, Any]) -> None:
        self._history.write(jsonio.dumps(row) + "\n")
        self._history.flush()

    def write_snapshot(self, filename: str, arrays: dict[str, np.ndarray]) -> int:
        """Write one snapshot file atomically (zip-deflated with ``snapshots.compress``).

        Returns:
            The file's size in bytes.
        """
        data = npz_bytes(arrays, self.compress)
        jsonio.atomic_write_bytes(self.dir / "snapshots" / filename, data)
        return len(data)

    def write_text(self, filename: str, text: str) -> None:
        jsonio.atomic_write_bytes(self.dir / filename, text.encode())

    def close(self) -> None:
        self._history.close()
