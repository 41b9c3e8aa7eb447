"""The JSON Schema of a config file, built from the field tables of :mod:`weightlab.config`.

Editors use it (the YAML language server) to complete keys and flag mistakes while typing; the
loader stays the authority (it also checks files, Keras names and cross-field rules).
"""

from __future__ import annotations

import copy
from typing import Any

from weightlab import config
from weightlab.config import REQUIRED, F

# Draft-07: the version the YAML language server (VS Code YAML, ...) implements; newer drafts
# are only partly supported there (redhat-developer/yaml-language-server#856).
DRAFT = "http://json-schema.org/draft-07/schema#"


def field(f: F) -> dict[str, Any]:
    """The schema of one field: its checker's fragment plus the field's doc and default."""
    out = copy.deepcopy(config.JSON_SCHEMA[f.check]) if f.check in config.JSON_SCHEMA else {}
    if f.doc:
        out["description"] = f.doc
    if f.default is not REQUIRED and f.default is not None:
        out["default"] = copy.deepcopy(f.default)
    return out


def obj(spec: dict[str, F], **extra: Any) -> dict[str, Any]:
    """A closed mapping of ``spec``'s fields; those without a default are required."""
    out: dict[str, Any] = {
        "type": "object",
        "properties": {k: field(f) for k, f in spec.items()},
        "additionalProperties": False,
    }
    required = [k for k, f in spec.items() if f.default is REQUIRED]
    if required:
        out["required"] = required
    out.update(extra)
    return out


def missing() -> list[str]:
    """Fields whose checker has no registered JSON Schema (a test keeps this empty)."""
    tables = {"": config.TOP, "model.layers.N.": config.LAYER, "data.": config.DATA_COMMON}
    tables.update({f"{k}.": v for k, v in config.SECTIONS.items() if v is not None})
    tables.update({f"data({k}).": v for k, v in config.DATA_KIND_FIELDS.items()})
    return [
        f"{prefix}{k}"
        for prefix, spec in tables.items()
        for k, f in spec.items()
        if f.check not in config.JSON_SCHEMA and f"{prefix}{k}" not in _STRUCTURAL
    ]


def _data() -> dict[str, Any]:
    """``data:``: every key for completion, then per ``kind`` the keys that apply (closed)."""
    union: dict[str, list[dict[str, Any]]] = {}
    for spec in [config.DATA_COMMON, *config.DATA_KIND_FIELDS.values()]:
        for key, f in spec.items():
            frag = field(f)
            if frag not in union.setdefault(key, []):
                union[key].append(frag)
    properties = {k: v[0] if len(v) == 1 else {"anyOf": v} for k, v in union.items()}
    default_kind = config.DATA_COMMON["kind"].default
    branches = []
    for kind, fields in config.DATA_KIND_FIELDS.items():
        cond: dict[str, Any] = {"properties": {"kind": {"const": kind}}}
        if kind != default_kind:  # an absent kind is the default kind
            cond["required"] = ["kind"]
        branches.append({"if": cond, "then": obj({**config.DATA_COMMON, **fields})})
    return {"type": "object", "properties": properties, "allOf": branches}


def _model() -> dict[str, Any]:
    out = obj(config.MODEL)
    layer = obj(config.LAYER)
    units = field(config.LAYER["units"])
    out["properties"]["layers"].update(
        type="array",
        minItems=1,
        items={"anyOf": [layer, {**units, "description": "shorthand for {units: N}"}]},
    )
    return out


def _matrix() -> dict[str, Any]:
    sections = "|".join(config.SECTIONS)
    return {
        "type": "object",
        "propertyNames": {"pattern": rf"^({sections})(\.[A-Za-z0-9_]+)+$"},
        "additionalProperties": {"type": "array", "minItems": 1},
    }


# Fields whose shape is made of other tables (their checker is the identity): built here.
_STRUCTURAL = {"matrix", "model.layers"}


def build() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a weightlab config file."""
    top = obj(config.TOP)
    top["properties"]["matrix"].update(_matrix())
    built = {"data": _data, "model": _model}
    for key, spec in config.SECTIONS.items():
        schema = built[key]() if key in built else obj(spec or {})
        schema["description"] = f"the {key} section"
        top["properties"][key] = schema
    top["required"] = ["model"]  # model.layers has no default
    return {
        "$schema": DRAFT,
        "title": "weightlab config",
        "description": "A weightlab experiment (see docs/config.md, 'Config reference').",
        **top,
        "not": {"required": ["seed", "seeds"]},
    }
