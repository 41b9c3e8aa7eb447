"""``weightlab check``: read every file of every run, compare the index with the directories.

Like fsck it reports, and with ``repair`` rebuilds the index (a cache); it never deletes or
rewrites anything in a run directory.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from weightlab import jsonio, trajectory
from weightlab.errors import StoreError
from weightlab.store import Store, load_snapshot, snapshot_usage, temp_files


@dataclass(frozen=True)
class Finding:
    """One thing ``check`` found: a run (or ``""`` for the store), a kind and the details."""

    run: str
    kind: str  # corrupt | unindexed | index-only | stale-index | index | leftover | crashed | note
    detail: str


# Kinds that only inform: a crashed run is a state (resume it), a leftover temporary file of a
# killed writer is never read, a note says what could not be verified; none is damage.
NOTES = ("crashed", "leftover", "note")
FINAL = ("completed", "diverged", "interrupted", "failed")


def damage(store: Store, run_id: str) -> list[str]:
    """Everything wrong inside one run directory, reading every file."""
    return [text for kind, text in _inspect(store, run_id) if kind == "corrupt"]


def _inspect(store: Store, run_id: str) -> list[tuple[str, str]]:
    """``[(kind, text)]`` for one run directory: ``corrupt`` damage and ``note`` findings.

    Never raises: whatever cannot be read is itself the finding.
    """
    try:
        return _findings(store, run_id)
    except Exception as e:  # a check that crashes on one run checks no other
        return [("corrupt", f"cannot be checked: {type(e).__name__}: {e}")]


def _findings(store: Store, run_id: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    run_dir = store.run_dir(run_id)
    record: dict[str, Any] | None
    try:
        record = store.stored_record(run_id)
    except StoreError as e:
        out.append(("corrupt", getattr(e, "reason", str(e))))
        record = None
    try:
        store.config(run_id, record)
    except StoreError as e:
        out.append(("corrupt", getattr(e, "reason", str(e))))
    rows = store.history(run_id)
    broken = store.history_damage(run_id)
    if broken:
        out.append(("corrupt", broken))
    status = (record or {}).get("status")
    final = status in FINAL
    if record is not None and not broken:
        out += [("corrupt", p) for p in _epochs_agree(record, len(rows))]
    snap_dir = run_dir / "snapshots"
    kept = _snapshots_expected(record)
    if snap_dir.is_symlink() or os.path.lexists(snap_dir) and not snap_dir.is_dir():
        out.append(("corrupt", "snapshots is not a directory"))
        return out
    if not snap_dir.exists():
        if kept:
            out.append(("corrupt", f"snapshots/ is missing; run.json records {kept} snapshots"))
        return out
    out += [("corrupt", p) for p in trajectory.problems(snap_dir)]
    note = trajectory.checksum_note(snap_dir, final)
    if note:
        out.append(note)
    for path in sorted(snap_dir.glob("*.npz")):
        try:
            load_snapshot(path, run_id)
        except StoreError as e:
            out.append(("corrupt", str(e).removeprefix(f"run {run_id}: ")))
    damaged = any(kind == "corrupt" and "snapshot" in text for kind, text in out)
    if record is not None and final and not damaged and "count" in (record.get("snapshots") or {}):
        out += [("corrupt", p) for p in _usage_agrees(record, snap_dir)]
    return out


def _snapshots_expected(record: dict[str, Any] | None) -> int:
    return int(((record or {}).get("snapshots") or {}).get("count") or 0)


def _epochs_agree(record: dict[str, Any], rows: int) -> list[str]:
    """What run.json says about the epochs against the history's complete lines."""
    status, done, epochs = record["status"], record.get("epochs_completed", 0), record.get("epochs")
    last = f"epochs 0..{rows - 1}" if rows else "no epoch"
    if status == "completed" and epochs is not None and (done != epochs or rows != epochs + 1):
        return [
            f"run.json says completed {done}/{epochs}, history.jsonl holds {last} "
            f"(expected epochs 0..{epochs})"
        ]
    if status in FINAL and done and rows < done + 1:
        return [f"run.json records {done} epochs ({status}), history.jsonl holds {last}"]
    return []


def _usage_agrees(record: dict[str, Any], snap_dir: Path) -> list[str]:
    """The snapshot files against what run.json records of them (count and bytes)."""
    snapshots = record["snapshots"]
    try:
        count, size = snapshot_usage(snap_dir)
        npy = snap_dir / trajectory.TRAJECTORY
        if npy.exists():  # bytes past the committed rows are not the run's (a torn append)
            size -= npy.stat().st_size - trajectory.committed(npy).end()
    except (OSError, ValueError):
        return []  # the trajectory's own damage is named already
    if (count, size) == (snapshots.get("count"), snapshots.get("bytes", size)):
        return []
    return [
        f"snapshots: run.json records {snapshots.get('count')} snapshots of "
        f"{snapshots.get('bytes')} bytes, the disk holds {count} of {size} bytes"
    ]


def check(store: Store, *, repair: bool = False) -> dict[str, Any]:
    """Verify every run directory and the index.

    Args:
        store: the store to check.
        repair: rebuild the index from the run directories afterwards.

    Returns:
        ``{"store", "runs", "findings": [{run, kind, detail}], "problems", "repaired"}`` where
        ``problems`` counts findings that are damage (crashed runs are notes).
    """
    if repair and store.root.is_dir():
        store.check_writable("a rebuilt index")  # refused before anything is read
    findings: list[Finding] = []
    runs_dir = store.runs_dir
    dirs = sorted(d.name for d in store.run_dirs())
    if runs_dir.is_dir():
        for d in sorted(runs_dir.iterdir()):
            if d.name.startswith(".new-"):
                findings.append(
                    Finding(
                        "",
                        "leftover",
                        f"{d.name}: a run directory whose writer was killed "
                        "while creating it (never listed; safe to delete)",
                    )
                )
    broken = store.listing()[1] if runs_dir.is_dir() else {}
    for run_id in dirs:
        if run_id in broken:
            findings.append(Finding(run_id, "corrupt", broken[run_id]))
            continue
        for kind, text in _inspect(store, run_id):
            findings.append(Finding(run_id, kind, text))
        findings += _leftovers(store.run_dir(run_id), run_id)
        try:
            record = store.record(run_id)
        except StoreError:
            continue
        if record["status"] == "crashed":
            findings.append(
                Finding(run_id, "crashed", f"{record['error']}; {_next_step(store, record)}")
            )
    findings += _index_findings(store, dirs)
    repaired = False
    if repair and store.root.is_dir():
        store.reindex()  # moves an unreadable index aside first
        repaired = True
        findings = [
            f for f in findings if f.kind not in ("unindexed", "index-only", "stale-index", "index")
        ]
    return {
        "store": str(store.root),
        "runs": len(dirs),
        "findings": [asdict(f) for f in findings],
        "problems": sum(f.kind not in NOTES for f in findings),
        "repaired": repaired,
    }


def _next_step(store: Store, record: dict[str, Any]) -> str:
    """What to do with a crashed run: resume it only when `resume` would accept it."""
    from weightlab.resume import STATE_FILE

    if (store.run_dir(record["id"]) / STATE_FILE).is_file():
        return f"`weightlab resume {record['id']}`"
    return (
        f"it has no {STATE_FILE}, so `weightlab resume` cannot continue it; run its config "
        "again with `weightlab run`"
    )


def _leftovers(run_dir: Path, run_id: str) -> list[Finding]:
    tmp = temp_files(run_dir)
    return [
        Finding(
            run_id,
            "leftover",
            f"{p.relative_to(run_dir)}: temporary file of an "
            "interrupted write (never read; safe to delete)",
        )
        for p in sorted(tmp)
    ]


def _index_findings(store: Store, dirs: list[str]) -> list[Finding]:
    if not store.index_path.exists():
        return (
            [Finding("", "index", "index.sqlite is missing; `--repair` rebuilds it")]
            if dirs
            else []
        )
    try:
        rows = _index_rows(store)
    except sqlite3.Error as e:
        return [Finding("", "index", f"index.sqlite cannot be read ({e}); `--repair` rebuilds it")]
    indexed = {run_id: (status, text) for run_id, status, text in rows if isinstance(run_id, str)}
    out = [
        Finding(r, "index-only", "in the index but its directory is gone")
        for r in sorted(set(indexed) - set(dirs))
    ]
    out += [Finding(r, "unindexed", "directory not in the index") for r in dirs if r not in indexed]
    for run_id in dirs:
        if run_id not in indexed:
            continue
        try:
            on_disk = jsonio.read_json(store.run_dir(run_id) / "run.json")
        except (OSError, ValueError, RecursionError):
            continue  # reported as corrupt already
        if isinstance(on_disk, dict) and on_disk.get("status") != indexed[run_id][0]:
            out.append(
                Finding(
                    run_id,
                    "stale-index",
                    f"index says {indexed[run_id][0]!r}, run.json says {on_disk.get('status')!r}",
                )
            )
    return out


def _index_rows(store: Store) -> list[tuple[Any, ...]]:
    """Every row of the index, read only. A read-only store cannot hold the ``-shm`` file that
    WAL readers need, so there the file is opened as immutable (nothing writes it anyway)."""
    modes = ["mode=ro"]
    if not os.access(store.root, os.W_OK):
        modes.append("mode=ro&immutable=1")
    for i, mode in enumerate(modes):
        try:
            con = sqlite3.connect(f"file:{store.index_path}?{mode}", uri=True, timeout=30)
            try:
                return con.execute("SELECT id, status, record FROM runs").fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            if i == len(modes) - 1:
                raise
    return []  # pragma: no cover


__all__ = ["Finding", "check", "damage"]
