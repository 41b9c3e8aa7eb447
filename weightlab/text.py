"""Suggestions and short value text for messages and tables: the bottom layer of the package.

Every layer words its messages with these (``did you mean``, ``got a string, 'x'``,
``sgd(lr=0.1)``) and stamps its records with :func:`now_iso`, so they import nothing from
weightlab but :mod:`weightlab.yamlio`'s constants.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from weightlab import yamlio


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidate, or ``""``."""
    match = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower().replace("_", ""): c for c in candidates}
        key = str(word).lower().replace("_", "").replace("-", "")
        if key in lowered:
            match = [lowered[key]]
    return f"; did you mean '{match[0]}'?" if match else ""


def got(value: Any) -> str:
    """What a value is, for a message: ``got an integer, 3``, ``got an empty list``."""
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return f"got {kind}" if value else f"got an empty {kind.split()[-1]}"
    if value is None:
        return "got null"
    hint = ""
    if isinstance(value, str) and value.lower() in yamlio.YAML11_BOOLEANS:
        hint = " (YAML 1.1 would read it as a boolean; weightlab reads only true/false as booleans)"
    return f"got {kind}, {value!r}{hint}"


def _is_keras_mapping(v: dict[str, Any]) -> bool:
    return "name" in v or "class_name" in v


def short_value(v: Any) -> str:
    """A compact, human form of a config value for tables.

    ``{name: sgd, lr: 0.1}`` -> ``sgd(lr=0.1)``.
    """
    if isinstance(v, dict) and _is_keras_mapping(v):
        head = v.get("name") or v.get("class_name")
        args = {
            k: a
            for k, a in v.items()
            if k not in ("name", "class_name", "config", "module", "registered_name")
        }
        args.update(v.get("config") or {})
        inner = ", ".join(f"{k}={short_value(a)}" for k, a in args.items())
        return f"{head}({inner})" if inner else str(head)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(short_value(x) for x in v) + "]"
    return str(v)


def now_iso() -> str:
    """The current UTC time as run records write it: ``2026-11-29T08:26:01.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
