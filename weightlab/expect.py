"""CI checks: ``expect:`` in a config (what must hold for every run) and ``run --smoke``.

Plain Python, no TensorFlow: expectations are parsed with the config and checked against the
run records (``run.json``) after training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from weightlab.errors import Invalid
from weightlab.text import did_you_mean, got
from weightlab.yamlio import Path

SMOKE_EPOCHS = 2
SMOKE_SAMPLES = 256
STATUSES = ("completed", "diverged", "failed", "interrupted")
# The run.json fields an expectation may name (a test checks each against a real record), and
# one derived from them.
ROOTS = (
    "status",
    "diverged",
    "epochs_completed",
    "diverged_at_epoch",
    "final",
    "best",
    "weights",
    "timing",
    "snapshots",
    "data",
)
DERIVED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "diverged": lambda record: record.get("status") == "diverged",
}
NESTED = ("final", "best", "weights", "timing", "snapshots", "data")  # mappings in run.json
OPS = {"min": ">=", "max": "<=", "in": "in"}
DOC = "what must hold for every run, e.g. {status: completed, final.loss: {max: 0.05}}"
Report = Callable[[Path, str], None]

# JSON Schema of `expect:` (part of `weightlab schema`), from the same tables as the checks.
_VALUE = {"type": ["string", "number", "boolean", "null"]}
_CONDITION = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "min": {"type": "number"},
        "max": {"type": "number"},
        "in": {"type": "array", "minItems": 1, "items": _VALUE},
    },
}
_EITHER = {"anyOf": [_VALUE, _CONDITION]}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": "^(" + "|".join(ROOTS) + r")(\.[^.]+)*$"},
    "properties": {
        "status": {"anyOf": [{"enum": list(STATUSES)}, _CONDITION]},
        "diverged": {"type": "boolean"},
        **{
            root: {"anyOf": [_EITHER, {"type": "object", "additionalProperties": _EITHER}]}
            for root in NESTED
        },
    },
    "additionalProperties": _EITHER,
}


@dataclass(frozen=True)
class Expectation:
    """One condition on a run record: ``key op value`` (op is ``=``, ``>=``, ``<=`` or ``in``)."""

    key: str
    op: str
    value: Any

    def __str__(self) -> str:
        return f"{self.key} {self.op} {_show(self.value)}"

    def holds(self, actual: Any) -> bool:
        if self.op == "=":
            return _same(actual, self.value)
        if self.op == "in":
            return any(_same(actual, v) for v in self.value)
        actual = _number(actual)
        if actual is None:
            return False
        return actual >= self.value if self.op == ">=" else actual <= self.value


def _same(a: Any, b: Any) -> bool:
    """Equality where ``true`` is not ``1`` (Python's ``True == 1`` is not what a config means)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _number(v: Any) -> float | None:
    """A finite number from a record value (``"NaN"`` strings of run.json count as NaN)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


def shape(v: Any) -> Any:
    """The config checker of ``expect:``: a mapping (its keys are checked by :func:`parse`)."""
    if not isinstance(v, dict):
        raise Invalid(f"expected a mapping of run fields to values or {{min, max, in}}; {got(v)}")
    return v


def parse(raw: dict[str, Any] | None, report: Report) -> list[Expectation]:
    """Check ``expect:`` and turn it into expectations; problems go to ``report(path, message)``."""
    return _parse(raw or {}, ("expect",), "", report)


def _parse(raw: dict[str, Any], path: Path, prefix: str, report: Report) -> list[Expectation]:
    out: list[Expectation] = []
    for name, spec in raw.items():
        key = f"{prefix}{name}"
        problem = _check_key(key)
        if problem:
            report((*path, name), problem)
        elif key in NESTED and isinstance(spec, dict) and not set(spec) <= set(OPS):
            # `final: {loss: {max: 1}}` (and the override expect.final.loss=...) = `final.loss:`
            out += _parse(spec, (*path, name), f"{key}.", report)
        else:
            try:
                out += _conditions(key, spec)
            except _Bad as e:
                report((*path, name, *e.at), str(e))
    return out


def _check_key(key: str) -> str | None:
    parts = key.split(".")
    root = parts[0]
    if root not in ROOTS:
        return (
            f"'{root}' is not a run field{did_you_mean(root, ROOTS)} "
            f"(expected one of: {', '.join(ROOTS)}, e.g. final.loss)"
        )
    if any(not p for p in parts):
        return "expected a dotted key such as final.loss"
    return None


class _Bad(ValueError):
    """A bad condition; ``at`` is the path below the expectation's key (``("max",)``)."""

    def __init__(self, message: str, *at: str):
        super().__init__(message)
        self.at = at


def _conditions(key: str, spec: Any) -> list[Expectation]:
    if isinstance(spec, dict):
        if not spec:
            raise _Bad("expected {min: X}, {max: X} or {in: [...]}; got an empty mapping")
        out = []
        for op, value in spec.items():
            if op not in OPS:
                raise _Bad(
                    f"unknown condition '{op}'{did_you_mean(str(op), list(OPS))} "
                    "(expected min, max or in)"
                )
            try:
                out.append(Expectation(key, OPS[op], _operand(key, op, value)))
            except _Bad as e:
                raise _Bad(str(e), op) from None
        return out
    if isinstance(spec, list):
        raise _Bad(f"a list needs 'in': {{in: {_show(spec)}}}")
    _check_value(key, spec)
    return [Expectation(key, "=", spec)]


def _operand(key: str, op: str, value: Any) -> Any:
    if op == "in":
        if not isinstance(value, list) or not value:
            raise _Bad("expected a non-empty list of values")
        for v in value:
            _check_value(key, v)
        return tuple(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise _Bad(f"expected a number; got {_show(value)}")
    return float(value)


def _check_value(key: str, value: Any) -> None:
    if isinstance(value, dict | list):
        raise _Bad(f"expected a value, {{min, max}} or {{in: [...]}}; got {_show(value)}")
    if key == "status" and value not in STATUSES:
        near = did_you_mean(str(value), STATUSES)
        raise _Bad(f"status is one of {', '.join(STATUSES)}; got {_show(value)}{near}")
    if key == "diverged" and not isinstance(value, bool):
        raise _Bad(f"diverged is true or false; got {_show(value)}")


_MISSING = object()


def lookup(record: dict[str, Any], key: str) -> Any:
    """The value of a dotted key in a run record (``_MISSING`` when absent)."""
    if key in DERIVED:
        return DERIVED[key](record)
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    if isinstance(node, str) and node in ("NaN", "Infinity", "-Infinity"):
        return float(node.lower().replace("infinity", "inf"))
    return node


def _missing(record: dict[str, Any], key: str) -> str:
    """``missing; did you mean 'mae'? (the run has: loss, mae)`` for a key the record lacks."""
    node: Any = record
    for part in key.split(".")[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    names = [str(k) for k in node] if isinstance(node, dict) else []
    near = did_you_mean(key.rsplit(".", 1)[-1], names)
    return f"missing{near} (the run has: {', '.join(names) or 'nothing'})"


def check(expectations: Sequence[Expectation], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Check every expectation on every run.

    Returns:
        ``{"expectations": [text], "runs": n, "met": bool, "unmet": [{"run", "cell", "key",
        "expected", "actual"}]}``.
    """
    unmet = []
    for record in records:
        for e in expectations:
            actual = lookup(record, e.key)
            if actual is not _MISSING and e.holds(actual):
                continue
            shown = _missing(record, e.key) if actual is _MISSING else _show(actual)
            unmet.append(
                {
                    "run": record["id"],
                    "cell": record.get("cell") or {},
                    "key": e.key,
                    "expected": f"{e.op} {_show(e.value)}",
                    "actual": shown,
                }
            )
    return {
        "expectations": [str(e) for e in expectations],
        "runs": len(records),
        "met": not unmet,
        "unmet": unmet,
    }
