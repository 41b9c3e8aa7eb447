"""The schema of a run directory's files, checked once where they are read.

A run directory is untrusted input: edited by hand, half-copied, written by another version,
damaged on disk. Every reader goes through these checks, so that one bad value (``"started_at":
null``, a ``run.json`` holding a JSON array, ``"loss": "abc"`` in a history line) is reported as
that run's damage, with the file, the key and what was expected, instead of crashing a listing
of every run. No numpy, no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

from weightlab.errors import StoreError

STATUSES = ("running", "completed", "diverged", "interrupted", "failed")


class DamagedRun(StoreError):
    """A run's files do not hold what a run directory holds. Exit code 2: the input is bad.

    ``reason`` names the file and what is wrong with it (``"run.json: started_at is null,
    expected text"``), without the run id.
    """

    exit_code = 2

    def __init__(self, run_id: str, reason: str):
        super().__init__(
            f"run {run_id} is damaged: {reason}; `weightlab check` lists every problem"
        )
        self.run_id = run_id
        self.reason = reason


def _got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# (key, what it must be, test); keys a record may lack (older versions) are checked when present
_TEXT = ("text", lambda v: isinstance(v, str))
_OPT_TEXT = ("text or null", lambda v: v is None or isinstance(v, str))
_COUNT = ("a whole number >= 0", lambda v: is_int(v) and v >= 0)
_OPT_COUNT = ("a whole number >= 0 or null", lambda v: v is None or (is_int(v) and v >= 0))
_OBJECT = ("an object", lambda v: isinstance(v, dict))
_OPT_OBJECT = ("an object or null", lambda v: v is None or isinstance(v, dict))
_OPT_NUMBER = ("a number or null", lambda v: v is None or is_number(v))
# Any whole number: an older version's run may hold one SQLite cannot store; the index keeps
# NULL for it (store._sql_int) and the run lists as it is.
_SEED = ("a whole number or null", lambda v: v is None or is_int(v))
REQUIRED = ("id", "experiment", "batch", "status", "started_at")
_FIELDS: dict[str, tuple[str, Any]] = {
    "id": _TEXT,
    "experiment": _TEXT,
    "batch": _TEXT,
    "status": (f"one of {', '.join(STATUSES)}", lambda v: v in STATUSES),
    "started_at": _TEXT,
    "index": _COUNT,
    "seed": _SEED,
    "cell": _OBJECT,
    "epochs": _OPT_COUNT,
    "epochs_completed": _COUNT,
    "batches_seen": _OPT_COUNT,
    "diverged_at_epoch": _OPT_COUNT,
    "divergence": _OPT_OBJECT,
    "final": _OPT_OBJECT,
    "best": _OPT_OBJECT,
    "weights": _OPT_OBJECT,
    "timing": _OBJECT,
    "snapshots": _OBJECT,
    "execution": _OPT_OBJECT,
    "data": _OPT_OBJECT,
    "finished_at": _OPT_TEXT,
    "pid": ("a whole number or null", lambda v: v is None or is_int(v)),
    "pid_started": _OPT_NUMBER,
    "host": _OPT_TEXT,
    "versions": _OPT_OBJECT,
    "source": _OPT_OBJECT,
    "error": _OPT_TEXT,
    "resumed": ("an array", lambda v: isinstance(v, list)),
}


def record_problem(record: Any, run_id: str) -> str | None:
    """What is wrong with a parsed ``run.json`` of run ``run_id``, or None.

    The reason starts with ``run.json``.
    """
    if not isinstance(record, dict):
        return f"run.json holds {_got(record)}, expected an object (the run record)"
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        return f"run.json lacks {', '.join(missing)}"
    for key, (expected, test) in _FIELDS.items():
        if key in record and not test(record[key]):
            return f"run.json: {key} is {_got(record[key])}, expected {expected}"
    if record["id"] != run_id:
        return f"run.json names run {record['id']!r}, but its directory is {run_id!r}"
    for key in ("final", "weights"):
        for name, value in (record.get(key) or {}).items():
            if not _OPT_NUMBER[1](value):
                return f"run.json: {key}.{name} is {_got(value)}, expected a number or null"
    best = record.get("best")
    if best is not None and not (is_number(best.get("loss")) and is_int(best.get("epoch"))):
        return f"run.json: best is {_got(best)}, expected {{loss: number, epoch: whole number}}"
    for name, value in record["timing"].items():
        if not _OPT_NUMBER[1](value):
            return f"run.json: timing.{name} is {_got(value)}, expected a number"
    for name in ("count", "bytes", "steps"):
        if name in record["snapshots"] and not _OPT_COUNT[1](record["snapshots"][name]):
            value = record["snapshots"][name]
            return f"run.json: snapshots.{name} is {_got(value)}, expected a whole number >= 0"
    return None


def check_record(record: Any, run_id: str) -> dict[str, Any]:
    """``record`` if it is a valid run record of ``run_id``.

    Raises:
        DamagedRun: it is not (the reason names the key and what was expected).
    """
    problem = record_problem(record, run_id)
    if problem:
        raise DamagedRun(run_id, problem)
    return dict(record)


# ---- history.jsonl ------------------------------------------------------------------------------

STAT_KEYS = ("l2", "dist_init")  # every statistic row has these; the others are optional


_SCALARS = frozenset({int, float, type(None)})  # exact types: bool (an int subclass) is not one


def row_problem(row: Any) -> str | None:
    """What is wrong with one parsed history line, or None (no line number in the reason).

    Called for every line that ``compare`` or ``show`` reads: the common case, a valid row, is
    one exact-type test per value.
    """
    if type(row) is not dict:
        return f"holds {_got(row)}, expected an object"
    epoch = row.get("epoch")
    if type(epoch) is not int or epoch < 0:
        return f"epoch is {_got(epoch)}, expected a whole number >= 0"
    weights = row.get("weights", {})
    if type(weights) is not dict:
        return f"weights is {_got(weights)}, expected an object of variables"
    for key, value in row.items():
        if type(value) not in _SCALARS and key != "weights":
            return f"{key} is {_got(value)}, expected a number"
    for name, stats in weights.items():
        if type(stats) is not dict:
            return f"weights.{name} is {_got(stats)}, expected an object of statistics"
        if "l2" not in stats or "dist_init" not in stats:
            lacks = next(k for k in STAT_KEYS if k not in stats)
            return f"weights.{name} lacks {lacks}"
        if not all(type(v) in _SCALARS for v in stats.values()):
            stat, value = next((k, v) for k, v in stats.items() if type(v) not in _SCALARS)
            return f"weights.{name}.{stat} is {_got(value)}, expected a number"
    return None


def history_problem(rows: list[Any]) -> tuple[int, str] | None:
    """The first bad row of a parsed history, as ``(index, reason)``, or None."""
    for i, row in enumerate(rows):
        problem = row_problem(row)
        if problem:
            return i, problem
    return None


def finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


# ---- config.yaml --------------------------------------------------------------------------------


def resolve_config(
    config: Any, lines: dict[Any, int], run_dir: Any
) -> tuple[dict[str, Any] | None, str | None]:
    """A run's parsed ``config.yaml`` validated and resolved: ``(config, None)`` or
    ``(None, reason)``.

    It must be a valid config (types, ranges, Keras-name forms: the same validation as ``run``'s,
    data files not opened) of exactly one run. What it returns is the config resolved again: for
    a file that weightlab wrote, the same mapping; for one written by hand or by an older version,
    with every key a reader looks up.
    """
    from pathlib import Path

    from weightlab.config import Locator, expand
    from weightlab.errors import ConfigError

    if not isinstance(config, dict):
        return None, f"config.yaml holds {_got(config)}, expected a mapping (the run's config)"
    try:
        experiment = expand(
            dict(config),
            Locator("config.yaml", lines),
            base_dir=Path(run_dir),
            default_name="?",
            check_files=False,
        )
    except ConfigError as e:
        first = e.problems[0] if e.problems else str(e)
        more = f" (and {len(e.problems) - 1} more)" if len(e.problems) > 1 else ""
        return None, f"{first}{more}"
    except (RecursionError, MemoryError) as e:
        return None, f"config.yaml cannot be validated: {type(e).__name__}"
    if len(experiment.runs) != 1:
        return None, f"config.yaml makes {len(experiment.runs)} runs, expected the config of one"
    return experiment.runs[0].config, None


def config_disagreement(config: dict[str, Any], raw: Any, record: dict[str, Any]) -> str | None:
    """Where a run's resolved config disagrees with its run.json (experiment, seed, epochs,
    snapshot setting), or None. A truncated file is found here: resolution fills in what is
    missing with defaults, which then differ from what the run recorded."""
    resolved = config
    snapshots = record.get("snapshots") or {}
    agree = [
        ("name", resolved.get("name"), record.get("experiment"), "experiment"),
        ("seed", resolved.get("seed"), record.get("seed"), "seed"),
        ("train.epochs", resolved["train"].get("epochs"), record.get("epochs"), "epochs"),
        (
            "snapshots.every",
            resolved["snapshots"].get("every"),
            snapshots.get("every"),
            "snapshots.every",
        ),
    ]
    for key, mine, recorded, field in agree:
        if recorded is not None and mine != recorded:
            cut = "" if _has(raw, key) else " (missing: truncated?)"
            return (
                f"config.yaml: {key} is {_got(mine)}{cut}, run.json records {field} "
                f"{_got(recorded)}"
            )
    return None


def _has(config: dict[str, Any], dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


__all__ = [
    "DamagedRun",
    "STATUSES",
    "check_record",
    "config_disagreement",
    "history_problem",
    "record_problem",
    "resolve_config",
    "row_problem",
]
