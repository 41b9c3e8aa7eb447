"""``weightlab check``: read every file of every run, compare the index with the directories.

Like fsck it reports, and with ``repair`` rebuilds the index (a cache); it never deletes or
rewrites anything in a run directory.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from weightlab import jsonio, trajectory
from weightlab.errors import StoreError
from weightlab.store import Store, load_snapshot


@dataclass(frozen=True)
class Finding:
    """One thing ``check`` found: a run (or ``""`` for the store), a kind and the details."""

    run: str
    kind: str  # corrupt | unindexed | index-only | stale-index | index | leftover | crashed
    detail: str


# Kinds that only inform: a crashed run is a state (resume it), a leftover temporary file of a
# killed writer is never read; neither is damage.
NOTES = ("crashed", "leftover")


def damage(store: Store, run_id: str) -> list[str]:
    """Everything wrong inside one run directory, reading every file."""
    problems: list[str] = []
    run_dir = store.run_dir(run_id)
    try:
        record = store.stored_record(run_id)
        if not isinstance(record, dict) or record.get("id") != run_id:
            problems.append("run.json does not describe this run")
    except StoreError as e:
        problems.append(str(e).removeprefix(f"run {run_id}: "))
        record = {}
    try:
        store.config(run_id)
    except Exception as e:
        problems.append(f"config.yaml: {str(e).splitlines()[0]}")
    problems += _history_problems(run_dir / "history.jsonl", record.get("status") == "running")
    problems += trajectory.problems(run_dir / "snapshots")
    for path in sorted((run_dir / "snapshots").glob("*.npz")):
        try:
            load_snapshot(path, run_id)
        except StoreError as e:
            problems.append(str(e).removeprefix(f"run {run_id}: "))
    return problems


def _history_problems(path: Path, running: bool) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return ["history.jsonl is missing"]
    except (OSError, UnicodeDecodeError) as e:
        return [f"history.jsonl cannot be read: {e}"]
    for n, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except ValueError:
            # A torn last line is what a killed writer leaves; readers ignore it.
            if n == len(lines):
                return []
            return [f"history.jsonl line {n} is not valid JSON"]
    return []


def check(store: Store, *, repair: bool = False) -> dict[str, Any]:
    """Verify every run directory and the index.

    Args:
        store: the store to check.
        repair: rebuild the index from the run directories afterwards.

    Returns:
        ``{"store", "runs", "findings": [{run, kind, detail}], "problems", "repaired"}`` where
        ``problems`` counts findings that are damage (crashed runs are notes).
    """
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
    for run_id in dirs:
        for problem in damage(store, run_id):
            findings.append(Finding(run_id, "corrupt", problem))
        findings += _leftovers(store.run_dir(run_id), run_id)
        try:
            record = store.record(run_id)
        except StoreError:
            continue
        if record["status"] == "crashed":
            findings.append(
                Finding(run_id, "crashed", f"{record['error']}; `weightlab resume {run_id}`")
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


def _leftovers(run_dir: Path, run_id: str) -> list[Finding]:
    tmp = [p for p in (*run_dir.glob(".*.tmp"), *run_dir.glob("snapshots/.*.tmp"))]
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
        con = sqlite3.connect(f"file:{store.index_path}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute("SELECT id, status, record FROM runs").fetchall()
        finally:
            con.close()
    except sqlite3.Error as e:
        return [Finding("", "index", f"index.sqlite cannot be read ({e}); `--repair` rebuilds it")]
    indexed = {run_id: (status, text) for run_id, status, text in rows}
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
        except (OSError, ValueError):
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


__all__ = ["Finding", "check", "damage"]
