"""YAML experiment -> validated, fully resolved run configs (overrides, matrix and seeds applied).

Everything here is plain Python and PyYAML: no TensorFlow. Keras names (initializers, optimizers,
losses, metrics, activations) are checked for shape here and resolved by Keras itself in
:mod:`weightlab.training.keras_names`.
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import math
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from weightlab import expect as expectations
from weightlab import paths, yamlio
from weightlab.errors import ConfigError, Invalid, Problem
from weightlab.text import did_you_mean, got, short_value
from weightlab.yamlio import Path, dotted

REQUIRED = object()
SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")  # bundled with sklearn
DATA_KINDS = ("linear", "blobs", "xor", "moons", "circles", "sklearn", "csv", "npz")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---- checkers: value -> normalised value, or raise Invalid ---------------------------------------

# The JSON Schema of each checker (weightlab.schema builds the config's schema from these).
JSON_SCHEMA: dict[Callable[[Any], Any], dict[str, Any]] = {}
Check = Callable[[Any], Any]


def described(schema: dict[str, Any]) -> Callable[[Check], Check]:
    """Register the JSON Schema fragment of a checker (a decorator)."""

    def register(check: Check) -> Check:
        JSON_SCHEMA[check] = schema
        return check

    return register


def _bounds(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if lo is not None:
        out["exclusiveMinimum" if lo_open else "minimum"] = lo
    if hi is not None:
        out["exclusiveMaximum" if hi_open else "maximum"] = hi
    return out


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[Any], int]:
    @described({"type": "integer", **_bounds(lo, hi, False, False)})
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise Invalid(f"expected an integer{_range(lo, hi)}; {got(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Invalid(f"expected an integer{_range(lo, hi)}; got {v}")
        return v

    return check


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[Any], float]:
    @described({"type": "number", **_bounds(lo, hi, lo_open, hi_open)})
    def check(v: Any) -> float:
        rng = _range(lo, hi, lo_open, hi_open)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise Invalid(f"expected a number{rng}; {got(v)}")
        v = float(v)
        if not math.isfinite(v):  # `.inf` would surface only as a NaN loss or an overflow
            raise Invalid(f"expected a finite number{rng}; got {v:g}")
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (
            hi is not None and (v > hi or (hi_open and v == hi))
        ):
            raise Invalid(f"expected a number{rng}; got {v:g}")
        return v

    return check


def _n(x: float | None) -> str:
    """A bound as text: integers in full (``4294967295``, not ``4.29497e+09``)."""
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" {'>' if lo_open else '>='} {_n(lo)}"
    if lo is None:
        return f" {'<' if hi_open else '<='} {_n(hi)}"
    return f" in {'(' if lo_open else '['}{_n(lo)}, {_n(hi)}{')' if hi_open else ']'}"


@described({"type": "boolean"})
def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Invalid(f"expected true or false; {got(v)}")
    return v


@described({"type": "string", "minLength": 1})
def string(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise Invalid(f"expected a non-empty string; {got(v)}")
    return v


def choice(*options: str) -> Callable[[Any], str]:
    @described({"enum": list(options)})
    def check(v: Any) -> str:
        if v not in options:
            opts = " | ".join(options)
            near = did_you_mean(v, options) if isinstance(v, str) else ""
            raise Invalid(f"expected one of {opts}; {got(v)}{near}")
        return v

    return check


@described({"type": "string", "pattern": _NAME_RE.pattern})
def name(v: Any) -> str:
    v = string(v)
    if not _NAME_RE.match(v):
        raise Invalid(f"expected a name of letters, digits, '_', '.', '-' (no '/'); got {v!r}")
    return v


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @described({"anyOf": [JSON_SCHEMA.get(check, {}), {"type": "null"}]})
    def opt(v: Any) -> Any:
        return None if v is None else check(v)

    return opt


def list_of(check: Callable[[Any], Any], min_len: int = 0) -> Callable[[Any], list[Any]]:
    items = {"items": JSON_SCHEMA[check]} if check in JSON_SCHEMA else {}
    schema = {"type": "array", **items, **({"minItems": min_len} if min_len else {})}

    @described(schema)
    def check_list(v: Any) -> list[Any]:
        if not isinstance(v, list):
            raise Invalid(f"expected a list; {got(v)}")
        if len(v) < min_len:
            raise Invalid(f"expected a list of at least {min_len} item(s); got {len(v)}")
        out = []
        for i, item in enumerate(v):
            try:
                out.append(check(item))
            except Invalid as e:
                raise Invalid(f"item {i}: {e}") from None
        return out

    return check_list


def keras_ref(kind: str) -> Callable[[Any], Any]:
    """A Keras object: a name, ``{name: ..., **kwargs}`` or ``{class_name: ..., config: {...}}``."""
    text = {"type": "string", "minLength": 1}
    schema = {
        "anyOf": [
            {**text, "examples": [_EXAMPLES[kind]]},
            {"type": "object", "required": ["name"], "properties": {"name": text}},
            {
                "type": "object",
                "required": ["class_name"],
                "properties": {"class_name": text, "config": {"type": "object"}},
                "additionalProperties": False,
                "patternProperties": {"^(module|registered_name)$": {}},
            },
        ],
        "description": f"a Keras {kind}: a name, {{name, ...arguments}} or {{class_name, config}}",
    }

    @described(schema)
    def check(v: Any) -> Any:
        if isinstance(v, str) and v:
            return v
        if isinstance(v, dict):
            _finite_arguments(v, kind)
            keys = set(v)
            if "class_name" in keys:
                extra = keys - {"class_name", "config", "module", "registered_name"}
                if extra:
                    raise Invalid(
                        f"a {{class_name, config}} {kind} takes its arguments under "
                        f"'config'; unexpected key(s): {', '.join(sorted(extra))}"
                    )
                if not isinstance(v.get("config", {}), dict):
                    raise Invalid(f"'config' of {_a(kind)} must be a mapping; {got(v['config'])}")
                _sub_string(v, "class_name", kind)
                return v
            if "name" in keys:
                _sub_string(v, "name", kind)
                return v
            raise Invalid(
                f"{_a(kind)} given as a mapping needs 'name' (and its keyword "
                "arguments), or 'class_name' and 'config'"
            )
        raise Invalid(
            f"expected a Keras {kind}: a name such as {_EXAMPLES[kind]!r}, or a mapping; {got(v)}"
        )

    return check


def _finite_arguments(v: Any, kind: str, where: str = "") -> None:
    """A NaN or infinite argument (``learning_rate: .nan``) would only show up as a NaN loss."""
    if isinstance(v, float) and not math.isfinite(v):
        raise Invalid(f"argument {where!r} of {_a(kind)} must be a finite number; got {v}")
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for key, sub in items:
        _finite_arguments(sub, kind, f"{where}.{key}" if where else str(key))


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _sub_string(v: dict[str, Any], key: str, kind: str) -> None:
    try:
        string(v[key])
    except Invalid as e:
        raise Invalid(f"'{key}' of {_a(kind)}: {e}") from None


_EXAMPLES = {
    "initializer": "glorot_uniform",
    "optimizer": "sgd",
    "loss": "mse",
    "metric": "mae",
    "activation": "relu",
}


@described({"anyOf": [{"enum": ["epoch", "never"]}, {"type": "integer", "minimum": 1}]})
def snapshot_every(v: Any) -> str | int:
    if v in ("epoch", "never"):
        return str(v)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
        return v
    raise Invalid(f"expected 'epoch', 'never' or a number of batches >= 1; {got(v)}")


# ---- the schema ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class F:
    """One config field: its checker, default and one line of documentation."""

    check: Callable[[Any], Any]
    default: Any = REQUIRED
    doc: str = ""


# What Keras accepts as a seed (keras.utils.set_random_seed seeds NumPy's legacy generator, which
# takes 0..2**32-1); larger seeds passed validation and then failed in Keras or in the index.
MAX_SEED = 2**32 - 1
_SEED = integer(0, MAX_SEED)

# Generated data lives in memory: bounds that keep a typo (an extra zero or ten) from asking for
# terabytes.
MAX_SAMPLES = 10_000_000
MAX_FEATURES = 10_000
MAX_DATA_VALUES = 20_000_000  # samples × features of one dataset (160 MB as float64)
MAX_CENTERS = 10_000  # blobs: classes
MAX_COORDINATE = 1e15  # blobs: |center_box| (their difference must stay finite)
MAX_UNITS = 100_000  # units of one layer
MAX_PARAMETERS = 10_000_000  # weights and biases of one model (40 MB as float32, per snapshot)
MAX_RUNS = 10_000  # runs one config (matrix × seeds) may expand to
# Names a selector tries before experiment names: an experiment called so would be shadowed.
_RUN_ID_SHAPE = re.compile(r"^[0-9]{6}-[0-9]{6}-[0-9a-f]{4}$")
_GENERATED = {"samples": F(integer(1, MAX_SAMPLES), 1000, "number of samples to generate")}
_SUBSET = {"samples": F(optional(integer(1)), None, "use a random subset of this many rows")}

DATA_COMMON = {
    "kind": F(choice(*DATA_KINDS), "linear", " | ".join(DATA_KINDS)),
    "validation_split": F(
        number(0, 1, hi_open=True),
        0.2,
        "fraction held out for validation (shuffled with the data seed)",
    ),
    "standardize": F(boolean, False, "scale features to mean 0, std 1 (training-split statistics)"),
    "seed": F(optional(_SEED), None, "seed of the data itself; null = the run's seed"),
}
DATA_KIND_FIELDS: dict[str, dict[str, F]] = {
    "linear": {
        **_GENERATED,
        "features": F(integer(1, MAX_FEATURES), 1, "number of input features"),
        "offset": F(number(), 0.0, "y = x·w_true + offset + noise"),
        "noise": F(number(0), 0.1, "std of the Gaussian noise added to y"),
        "weights": F(
            optional(list_of(number(), 1)),
            None,
            "w_true; null = drawn from N(0, 1) with the data seed",
        ),
        "input_offset": F(number(), 0.0, "added to every feature (moves x away from the origin)"),
    },
    "blobs": {
        **_GENERATED,
        "features": F(integer(1, MAX_FEATURES), 2, "number of input features"),
        "centers": F(integer(2, MAX_CENTERS), 2, "number of classes (one Gaussian blob each)"),
        "cluster_std": F(number(0, lo_open=True), 1.0, "std of each blob"),
        "center_box": F(
            list_of(number(-MAX_COORDINATE, MAX_COORDINATE), 2),
            [-10.0, 10.0],
            "range [low, high] the blob centres are drawn from",
        ),
    },
    "xor": {
        **_GENERATED,
        "noise": F(number(0), 0.1, "std of the jitter added to the inputs"),
        "input_offset": F(number(), 0.0, "added to every feature"),
    },
    "moons": {
        **_GENERATED,
        "noise": F(number(0), 0.1, "std of the Gaussian noise"),
        "input_offset": F(number(), 0.0, "added to every feature"),
    },
    "circles": {
        **_GENERATED,
        "noise": F(number(0), 0.05, "std of the Gaussian noise"),
        "factor": F(
            number(0, 1, lo_open=True, hi_open=True),
            0.5,
            "inner circle radius / outer circle radius",
        ),
        "input_offset": F(number(), 0.0, "added to every feature"),
    },
    "sklearn": {
        **_SUBSET,
        "name": F(
            choice(*SKLEARN_DATASETS),
            REQUIRED,
            "a dataset bundled with scikit-learn (never downloaded)",
        ),
    },
    "csv": {
        **_SUBSET,
        "path": F(string, REQUIRED, "CSV file with a header row"),
        "target": F(string, REQUIRED, "name of the target column"),
        "features": F(
            optional(list_of(string, 1)), None, "feature columns; null = every other column"
        ),
    },
    "npz": {
        **_SUBSET,
        "path": F(string, REQUIRED, "NumPy .npz file"),
        "x_key": F(string, "X", "array of inputs, shape (samples, features)"),
        "y_key": F(string, "y", "array of targets, shape (samples,) or (samples, k)"),
    },
}

MODEL = {
    "use_bias": F(boolean, True, "default for every layer; a layer may override it"),
    "kernel_initializer": F(keras_ref("initializer"), "glorot_uniform", "any Keras initializer"),
    "bias_initializer": F(keras_ref("initializer"), "zeros", "any Keras initializer"),
    "layers": F(list_of(lambda v: v, 1), REQUIRED, "Dense layers, input to output"),
}
LAYER = {
    "units": F(integer(1), REQUIRED, "number of units"),
    "activation": F(optional(keras_ref("activation")), None, "any Keras activation; null = linear"),
    "name": F(optional(name), None, "layer name; default dense_1, dense_2, ... by position"),
    "use_bias": F(optional(boolean), None, "default: model.use_bias"),
    "kernel_initializer": F(
        optional(keras_ref("initializer")), None, "default: model.kernel_initializer"
    ),
    "bias_initializer": F(
        optional(keras_ref("initializer")), None, "default: model.bias_initializer"
    ),
}
TRAIN = {
    "optimizer": F(
        keras_ref("optimizer"),
        "sgd",
        "a name, or {name: sgd, learning_rate: 0.01, momentum: 0.9, ...}",
    ),
    "loss": F(keras_ref("loss"), "mse", "any Keras loss"),
    "metrics": F(list_of(keras_ref("metric")), [], "Keras metrics, e.g. [mae] or [accuracy]"),
    "epochs": F(integer(1, 100_000), 10, "number of epochs"),
    "batch_size": F(integer(1), 32, "samples per gradient step"),
    "shuffle": F(boolean, True, "shuffle the training samples every epoch"),
    "tensorboard": F(
        boolean, False, "also attach Keras' TensorBoard callback; logs in runs/<id>/tensorboard/"
    ),
}
SNAPSHOTS = {
    "every": F(
        snapshot_every, "epoch", "epoch | N (also every N batches) | never (statistics only)"
    ),
    "compress": F(boolean, False, "zip-deflate the snapshot files (smaller, slower to write)"),
}
SECTIONS = {"data": None, "model": MODEL, "train": TRAIN, "snapshots": SNAPSHOTS}
TOP = {
    "name": F(name, None, "experiment name; default: the config file's name"),
    "description": F(optional(string), None, "free text"),
    "seed": F(_SEED, None, "seed of the run (default 0)"),
    "seeds": F(list_of(_SEED, 1), None, "one run per seed; instead of seed"),
    "matrix": F(lambda v: v, None, "{dotted.key: [values]}: one run per combination"),
    "expect": F(described(expectations.SCHEMA)(expectations.shape), None, expectations.DOC),
}
TOP_KEYS = [*TOP, *SECTIONS]


def _all_data_keys() -> list[str]:
    keys = list(DATA_COMMON)
    for fields in DATA_KIND_FIELDS.values():
        keys += [k for k in fields if k not in keys]
    return keys


# ---- locations -----------------------------------------------------------------------------------


@dataclass
class Locator:
    """Says where a key path came from: a file line, a matrix entry or a command-line override."""

    source: str
    lines: dict[Path, int] = field(default_factory=dict)
    layers: list[tuple[Path, str]] = field(default_factory=list)  # later entries win

    def __call__(self, path: Path) -> str:
        for prefix, where in reversed(self.layers):
            if path[: len(prefix)] == prefix:
                return where
        probe = path
        while probe not in self.lines and probe:
            probe = probe[:-1]
        line = self.lines.get(probe)
        return f"{self.source}:{line}" if line else self.source

    def has(self, path: Path) -> bool:
        """Whether ``path`` itself was written (in the file, a matrix cell or an override)."""
        return path in self.lines or any(path[: len(p)] == p for p, _ in self.layers)

    def with_layer(self, prefix: Path, where: str) -> Locator:
        return Locator(self.source, self.lines, [*self.layers, (prefix, where)])


class _Collector:
    def __init__(self, locate: Locator):
        self.locate = locate
        self.problems: list[Problem] = []
        self.input_features: int | None = None  # when the data section tells (for the model)

    def add(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.locate(path), dotted(path), message))

    def fields(
        self,
        raw: Any,
        spec: dict[str, F],
        path: Path,
        *,
        known: Sequence[str] = (),
        elsewhere: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Check a mapping against ``spec``; return it with defaults filled in."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping; {got(raw)}")
            return {
                k: (None if f.default is REQUIRED else copy.deepcopy(f.default))
                for k, f in spec.items()
            }
        out: dict[str, Any] = {}
        for key in raw:
            if key in spec or key in known:
                continue
            if elsewhere and key in elsewhere:
                self.add((*path, key), elsewhere[key])
            else:
                self.add(
                    (*path, key),
                    f"unknown key{did_you_mean(key, [*spec, *known])}"
                    f" (expected one of: {', '.join([*spec, *known])})",
                )
        for key, f in spec.items():
            if key not in raw:
                if f.default is REQUIRED:
                    self.add(path, f"missing required key '{key}' ({f.doc})")
                    out[key] = None
                else:
                    out[key] = copy.deepcopy(f.default)
                continue
            try:
                out[key] = f.check(raw[key])
            except Invalid as e:
                self.add((*path, key), str(e))
                out[key] = None
        return out


# ---- the result ----------------------------------------------------------------------------------


@dataclass
class RunSpec:
    """One run to make: the fully resolved config plus where it came from."""

    index: int
    seed: int
    cell: dict[str, Any]  # matrix values of this run, by dotted key
    config: dict[str, Any]  # fully resolved; written to the run's config.yaml
    locate: Locator

    @property
    def experiment(self) -> str:
        return str(self.config["name"])


@dataclass
class Experiment:
    """A loaded config file: its runs (matrix × seeds, expanded) and how they were made."""

    name: str
    source: str
    runs: list[RunSpec]
    matrix: dict[str, list[Any]]
    seeds: list[int]
    overrides: list[str]
    expect: list[expectations.Expectation] = field(default_factory=list)
    smoke: bool = False

    def describe(self) -> str:
        """``"4 runs: 2 model.use_bias × 2 seeds"``."""
        parts = [f"{len(v)} {k}" for k, v in self.matrix.items()]
        if len(self.seeds) > 1:
            parts.append(f"{len(self.seeds)} seeds")
        n = len(self.runs)
        head = f"{n} run{'s' if n != 1 else ''}"
        if self.smoke:
            cut = f"≤ {expectations.SMOKE_EPOCHS} epochs, ≤ {expectations.SMOKE_SAMPLES} samples"
            head += f" (smoke: {cut})"
        return f"{head}: {' × '.join(parts)}" if parts else head


# ---- loading -------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[Path, Any]:
    """Parse ``KEY=VALUE`` (value read as YAML) into a key path and a value."""
    where = f"override '{text}'"
    if "=" not in text:
        raise ConfigError(Problem(where, "", "expected KEY=VALUE, e.g. train.epochs=5"))
    key, value_text = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(Problem(where, key, "expected a dotted key such as train.epochs"))
    if key.count(".") >= yamlio.MAX_DEPTH:
        raise ConfigError(
            Problem(
                where,
                key[:40] + "...",
                f"a key of more than {yamlio.MAX_DEPTH} parts; no config key is nested so deep",
            )
        )
    try:
        value, _ = yamlio.load(value_text if value_text.strip() else "''", where)
    except ConfigError as e:  # an override has no lines: name the override, not "override:1"
        raise ConfigError([Problem(where, key, p.message) for p in e.problems]) from None
    path: Path = tuple(int(p) if p.isdigit() else p for p in key.split("."))
    return path, value


def _set_path(raw: dict[str, Any], path: Path, value: Any, where: str) -> None:
    """Set ``raw[path] = value``, creating missing mappings and lists on the way."""
    node: Any = raw
    for i, part in enumerate(path):
        here = path[: i + 1]
        if isinstance(node, list):
            if not isinstance(part, int):
                raise ConfigError(
                    Problem(
                        where,
                        dotted(here),
                        f"'{part}' is not a list index; "
                        f"select an item by its position, e.g. "
                        f"{dotted((*path[:i], 0))}",
                    )
                )
            if part >= len(node):
                raise ConfigError(
                    Problem(
                        where,
                        dotted(here),
                        f"index {part} is out of range (the list has {len(node)} item(s))",
                    )
                )
            child = node[part]
            if (
                here[:2] == ("model", "layers")
                and len(here) == 3
                and i + 1 < len(path)
                and isinstance(child, int)
                and not isinstance(child, bool)
            ):
                child = node[part] = {"units": child}  # `layers: [8, 1]` shorthand
        else:
            child = node.get(part)
        if i + 1 == len(path):
            node[part] = value
            return
        if child is None:
            child = [] if isinstance(path[i + 1], int) else {}
            node[part] = child
        elif not isinstance(child, dict | list):
            raise ConfigError(
                Problem(
                    where,
                    dotted(here),
                    f"cannot set '{path[i + 1]}' inside it: it is "
                    f"{got(child).removeprefix('got ')}; "
                    f"set the whole value instead",
                )
            )
        node = child


def parse_matrix_axis(text: str) -> tuple[str, list[Any]]:
    """Parse ``--matrix KEY=V1,V2,...`` (each value read as YAML) into a dotted key and values.

    Raises:
        ConfigError: located as ``--matrix 'TEXT'``, with a did-you-mean for a misspelt key.
    """
    where = f"--matrix '{text}'"
    key, sep, values_text = text.partition("=")
    key = key.strip()
    if not sep or not key or not values_text.strip():
        raise ConfigError(
            Problem(where, key, "expected KEY=V1,V2,..., e.g. model.use_bias=true,false")
        )
    problem = _check_key_path(key)
    if problem:
        raise ConfigError(Problem(where, key, problem))
    # A flow sequence keeps commas inside values intact: {name: adam, learning_rate: 0.1},sgd
    flow = values_text if values_text.lstrip().startswith("[") else f"[{values_text}]"
    try:
        values, _ = yamlio.load(flow, where)
    except ConfigError as e:
        raise ConfigError([Problem(where, key, p.message) for p in e.problems]) from None
    if not isinstance(values, list) or not values:
        raise ConfigError(Problem(where, key, f"expected a list of values; {got(values)}"))
    return key, values


def parse_seeds(text: str) -> list[int]:
    """Parse ``--seeds 0-4`` or ``--seeds 0,3,7`` (or both: ``0-2,7``) into a list of seeds.

    Raises:
        ConfigError: located as ``--seeds 'TEXT'``.
    """
    where = f"--seeds '{text}'"
    seeds: list[int] = []
    count = 0
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ConfigError(
                Problem(
                    where,
                    "seeds",
                    f"expected a range such as 0-4 or a list such as 0,3,7; got {part.strip()!r}",
                )
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ConfigError(Problem(where, "seeds", f"empty range {lo}-{hi}; write {hi}-{lo}"))
        if hi > MAX_SEED:
            raise ConfigError(
                Problem(where, "seeds", f"a seed must be in [0, {MAX_SEED}] (2**32-1); got {hi}")
            )
        count += hi - lo + 1
        if count > MAX_RUNS:  # counted before the list is built: `0-100000000` stays small
            raise ConfigError(
                Problem(
                    where,
                    "seeds",
                    f"more than {MAX_RUNS:,} seeds; a config may make at most {MAX_RUNS:,} runs",
                )
            )
        seeds += range(lo, hi + 1)
    return seeds


def load_experiment(
    path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    matrix: Sequence[str] = (),
    seeds: str | None = None,
    check_files: bool = True,
) -> Experiment:
    """Read, validate and expand a config file.

    Args:
        path: the YAML file.
        overrides: ``KEY=VALUE`` strings applied on top of the file (values read as YAML).
        matrix: ``KEY=V1,V2`` strings, each adding (or replacing) one matrix axis.
        seeds: ``"0-4"`` or ``"0,3,7"``: the seeds, replacing ``seed``/``seeds`` of the file.
        check_files: also check that data files exist and have the named columns/arrays.

    Returns:
        The experiment with one fully resolved :class:`RunSpec` per matrix cell and seed.

    Raises:
        ConfigError: listing every problem found, each with file, line and key.
    """
    src = os.fspath(path)
    text = yamlio.read_file(src)  # bounded: a device, FIFO or huge file is refused first
    raw, lines = yamlio.load(text, src)
    if raw is None:
        raise ConfigError(Problem(src, "", "the config file is empty; see configs/ for examples"))
    if not isinstance(raw, dict):
        raise ConfigError(Problem(f"{src}:1", "", f"expected a mapping at the top; {got(raw)}"))
    locate = Locator(src, lines)
    base_dir = FsPath(src).resolve().parent
    for text_ov in overrides:
        ov_path, value = parse_override(text_ov)
        where = f"override '{text_ov}'"
        if ov_path[0] == "matrix" and len(ov_path) > 2:
            ov_path = ("matrix", dotted(ov_path[1:]))  # matrix keys are dotted: one key, not a path
        if ov_path[0] == "seed":
            raw.pop("seeds", None)
        elif ov_path[0] == "seeds":
            raw.pop("seed", None)
        _set_path(raw, ov_path, value, where)
        locate = locate.with_layer(ov_path, where)
    applied = list(overrides)
    for text_axis in matrix:
        key, values = parse_matrix_axis(text_axis)
        if raw.get("matrix") is None:
            raw["matrix"] = {}
        if isinstance(raw["matrix"], dict):  # otherwise expand() reports the file's matrix
            raw["matrix"][key] = values
        locate = locate.with_layer(("matrix", key), f"--matrix '{text_axis}'")
        applied.append(f"matrix.{key}={json.dumps(values)}")  # replayable as an override
    if seeds is not None:
        raw.pop("seed", None)
        raw["seeds"] = parse_seeds(seeds)
        locate = locate.with_layer(("seeds",), f"--seeds '{seeds}'")
        applied.append(f"seeds={json.dumps(raw['seeds'])}")
    default_name = FsPath(src).stem
    return expand(
        raw,
        locate,
        base_dir=base_dir,
        default_name=default_name,
        overrides=applied,
        check_files=check_files,
    )


def expand(
    raw: dict[str, Any],
    locate: Locator,
    *,
    base_dir: FsPath,
    default_name: str,
    overrides: list[str] | None = None,
    check_files: bool = True,
) -> Experiment:
    """Validate a raw config mapping and expand its matrix × seeds into run specs."""
    col = _Collector(locate)
    top = col.fields({k: raw[k] for k in raw if k not in SECTIONS}, TOP, (), known=list(SECTIONS))
    if raw.get("seed") is not None and raw.get("seeds") is not None:
        col.add(("seeds",), "give either 'seed' or 'seeds', not both")
    seeds = top["seeds"] or [top["seed"] if top["seed"] is not None else 0]
    if len(set(seeds)) != len(seeds):
        col.add(("seeds",), f"seeds must be distinct; got {seeds}")
    name = top["name"] or default_name
    if name == "latest" or _RUN_ID_SHAPE.match(name):
        what = "the selector of the newest run" if name == "latest" else "shaped like a run id"
        how = "choose another `name:`" if top["name"] else "add a `name:` (or rename the file)"
        col.add(
            ("name",),
            f"the experiment name {name!r} is {what}, so `weightlab ls {name}` could never "
            f"select this experiment; {how}",
        )
    matrix = _check_matrix(raw.get("matrix"), col)
    _check_sweep_size(matrix, seeds, col)
    expect = expectations.parse(top["expect"], col.add)
    # `expect:` stands apart from the rest, so its problems are listed with those of the runs;
    # other top-level problems (a misspelt section, the matrix) would only cascade into them.
    if any(p.key != "expect" and not p.key.startswith("expect.") for p in col.problems):
        raise ConfigError(col.problems)

    base = {k: v for k, v in raw.items() if k not in ("matrix", "seeds", "seed")}
    cells = [dict(zip(matrix, combo, strict=True)) for combo in itertools.product(*matrix.values())]
    runs: list[RunSpec] = []
    problems: list[Problem] = []
    for cell in cells:
        cfg_raw = copy.deepcopy(base)
        cell_locate = locate
        for key, value in cell.items():
            kpath = tuple(int(p) if p.isdigit() else p for p in key.split("."))
            where = f"{locate(('matrix', key))} (matrix value {value!r})"
            try:
                _set_path(cfg_raw, kpath, copy.deepcopy(value), where)
            except ConfigError as e:
                problems += e.problems
                continue
            cell_locate = cell_locate.with_layer(kpath, where)
        cell_col = _Collector(cell_locate)
        resolved = _resolve(cfg_raw, cell_col, base_dir, check_files)
        resolved["name"] = top["name"] or default_name
        if top["description"]:
            resolved["description"] = top["description"]
        for p in cell_col.problems:
            if p not in problems:
                problems.append(p)
        for seed in seeds:
            cfg = {
                "name": resolved["name"],
                "seed": seed,
                **{k: v for k, v in resolved.items() if k != "name"},
            }
            runs.append(RunSpec(len(runs), seed, dict(cell), copy.deepcopy(cfg), cell_locate))
    problems += col.problems  # `expect:`'s after the runs': every problem of the file at once
    if problems:
        raise ConfigError(problems)
    return Experiment(
        top["name"] or default_name, locate.source, runs, matrix, seeds, overrides or [], expect
    )


def _check_matrix(raw: Any, col: _Collector) -> dict[str, list[Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        col.add(("matrix",), f"expected a mapping of dotted keys to lists of values; {got(raw)}")
        return {}
    out: dict[str, list[Any]] = {}
    for key, values in raw.items():
        path: Path = ("matrix", key)
        if key in ("seed", "seeds"):
            col.add(path, "seeds are not a matrix axis; use 'seeds: [0, 1, 2]' at the top level")
            continue
        problem = _check_key_path(str(key))
        if problem:
            col.add(path, problem)
            continue
        if not isinstance(values, list) or not values:
            col.add(path, f"expected a non-empty list of values; {got(values)}")
            continue
        seen: dict[str, int] = {}
        for i, value in enumerate(values):
            text = json.dumps(value, sort_keys=True, default=repr)
            if text in seen:
                col.add(
                    path,
                    f"the value {short_value(value)} is given twice (items {seen[text]} and {i}); "
                    "each value of an axis makes its own runs, remove one",
                )
                break
            seen[text] = i
        out[str(key)] = values
    return out


def _check_sweep_size(matrix: dict[str, list[Any]], seeds: list[int], col: _Collector) -> None:
    """Refuse a sweep of more than :data:`MAX_RUNS` runs, counted before anything is expanded."""
    n = math.prod(len(v) for v in matrix.values()) * len(seeds)
    if n > MAX_RUNS:
        parts = [f"{len(v)} {k}" for k, v in matrix.items()] + [f"{len(seeds)} seed(s)"]
        col.add(
            ("matrix",) if matrix else ("seeds",),
            f"this sweep would make {n} runs ({' × '.join(parts)}); a config may make at most "
            f"{MAX_RUNS:,}: split it, or use fewer values",
        )


def _check_key_path(key: str) -> str | None:
    """Return a problem if ``key`` names no config field, else None."""
    parts = key.split(".")
    head = parts[0]
    if head not in SECTIONS:
        if head in TOP and len(parts) == 1:
            return f"'{head}' is not a matrix axis; a matrix varies keys of {', '.join(SECTIONS)}"
        return f"'{head}' is not a config section{did_you_mean(head, TOP_KEYS)}"
    if len(parts) < 2:
        return None
    sub = parts[1]
    keys = _all_data_keys() if head == "data" else list(SECTIONS[head] or {})
    if sub not in keys:
        return f"'{sub}' is not a key of '{head}'{did_you_mean(sub, keys)}"
    if head == "model" and sub == "layers" and len(parts) >= 4:
        if not parts[2].isdigit():
            return "select a layer by its position, e.g. model.layers.0.units"
        if parts[3] not in LAYER:
            return f"'{parts[3]}' is not a layer key{did_you_mean(parts[3], list(LAYER))}"
    return None


def _resolve(
    raw: dict[str, Any], col: _Collector, base_dir: FsPath, check_files: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {"data": _resolve_data(raw.get("data"), col, base_dir, check_files)}
    model = col.fields(raw.get("model"), MODEL, ("model",))
    layers = []
    names: dict[str, int] = {}
    for i, layer_raw in enumerate(model["layers"] or []):
        path: Path = ("model", "layers", i)
        if isinstance(layer_raw, int) and not isinstance(layer_raw, bool):
            layer_raw = {"units": layer_raw}  # `layers: [8, 1]` is shorthand for units
        elif layer_raw is not None and not isinstance(layer_raw, dict):
            col.add(
                path,
                "expected a mapping such as {units: 8, activation: relu}, or an "
                f"integer number of units; {got(layer_raw)}",
            )
            continue
        layer = col.fields(layer_raw, LAYER, path)
        layer["name"] = layer["name"] or f"dense_{i + 1}"
        for key in ("use_bias", "kernel_initializer", "bias_initializer"):
            if layer[key] is None:
                layer[key] = copy.deepcopy(model[key])
        if layer["name"] in names:
            col.add(
                (*path, "name"),
                f"duplicate layer name {layer['name']!r} (also layer {names[layer['name']]})",
            )
        names[layer["name"]] = i
        layers.append({k: layer[k] for k in LAYER})
    _check_model_size(layers, col.input_features, col)
    model["layers"] = layers
    out["model"] = model
    out["train"] = col.fields(raw.get("train"), TRAIN, ("train",))
    out["snapshots"] = col.fields(raw.get("snapshots"), SNAPSHOTS, ("snapshots",))
    return out


def _resolve_data(raw: Any, col: _Collector, base_dir: FsPath, check_files: bool) -> dict[str, Any]:
    path: Path = ("data",)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        col.add(path, f"expected a mapping; {got(raw)}")
        return {}
    kind = raw.get("kind", "linear")
    try:
        kind = choice(*DATA_KINDS)(kind)
    except Invalid as e:
        col.add((*path, "kind"), str(e))
        return {}
    spec = {**DATA_COMMON, **DATA_KIND_FIELDS[kind]}
    elsewhere = {
        key: f"'{key}' does not apply to data kind '{kind}' (it applies to: "
        f"{', '.join(k for k, f in DATA_KIND_FIELDS.items() if key in f)})"
        for key in _all_data_keys()
        if key not in spec
    }
    data = col.fields(raw, spec, path, elsewhere=elsewhere)
    if (
        kind == "linear"
        and data.get("weights")
        and data.get("features") is not None
        and len(data["weights"]) != data["features"]
    ):
        col.add(
            (*path, "weights"),
            f"expected {data['features']} weight(s), one per feature; got {len(data['weights'])}",
        )
    _check_data_size(kind, data, col)
    if kind in ("csv", "npz") and data.get("path"):
        file = FsPath(os.path.expanduser(data["path"]))
        if not file.is_absolute():
            file = base_dir / file
        data["path"] = str(file.resolve())
        if check_files:
            _check_data_file(kind, data, col)
    return data


# Input features of the kinds whose width the config does not give.
_FIXED_FEATURES = {"xor": 2, "moons": 2, "circles": 2}
SKLEARN_FEATURES = {"iris": 4, "wine": 13, "breast_cancer": 30, "digits": 64, "diabetes": 10}


def _check_data_size(kind: str, data: dict[str, Any], col: _Collector) -> None:
    """Bound what generating the data would allocate, before anything is allocated."""
    col.input_features = _FIXED_FEATURES.get(kind) or (
        SKLEARN_FEATURES.get(data.get("name") or "") if kind == "sklearn" else None
    )
    if kind in ("csv", "npz"):
        if data.get("features"):
            col.input_features = len(data["features"])
        return
    features = data.get("features") if kind in ("linear", "blobs") else col.input_features
    samples = data.get("samples")
    if not isinstance(features, int) or not isinstance(samples, int):
        return
    col.input_features = features
    if kind != "sklearn" and samples * features > MAX_DATA_VALUES:
        col.add(
            ("data", "samples"),
            f"{samples} samples × {features} feature(s) is {samples * features:,} values; "
            f"a generated dataset may hold at most {MAX_DATA_VALUES:,}",
        )
    if kind != "blobs":
        return
    box, centers = data.get("center_box"), data.get("centers")
    if isinstance(box, list) and (len(box) != 2 or not box[0] < box[1]):
        col.add(
            ("data", "center_box"),
            f"expected [low, high] with low < high; got {short_value(box)}",
        )
    if isinstance(centers, int):
        if centers > samples:
            col.add(
                ("data", "centers"),
                f"{centers} classes need at least as many samples; data.samples is {samples}",
            )
        elif centers * features > MAX_DATA_VALUES:
            col.add(
                ("data", "centers"),
                f"{centers} centres × {features} feature(s) is more than "
                f"{MAX_DATA_VALUES:,} values",
            )


def _check_model_size(layers: list[dict[str, Any]], features: int | None, col: _Collector) -> None:
    """Refuse a model of more than :data:`MAX_PARAMETERS` weights and biases (before Keras)."""
    width, total = features or 1, 0  # an unknown input width counts as 1: a lower bound
    for i, layer in enumerate(layers):
        units = layer.get("units")
        if not isinstance(units, int):
            return
        if units > MAX_UNITS:
            col.add(
                ("model", "layers", i, "units"),
                f"expected at most {MAX_UNITS} units in a layer; got {units}",
            )
            return
        total += width * units + (units if layer.get("use_bias") else 0)
        if total > MAX_PARAMETERS:
            given = f"{features} input feature(s)" if features else "at least 1 input feature"
            col.add(
                ("model", "layers", i, "units"),
                f"with {given} the model reaches more than {total:,} weights and biases at "
                f"this layer; a model may have at most {MAX_PARAMETERS:,}",
            )
            return
        width = units


def column_list(columns: Sequence[str], most: int = 20) -> str:
    """``a, b, c`` or, for a wide file, the first ``most`` and how many more."""
    more = f", ... ({len(columns) - most} more)" if len(columns) > most else ""
    return ", ".join(columns[:most]) + more


def _check_data_file(kind: str, data: dict[str, Any], col: _Collector) -> None:
    file = FsPath(data["path"])
    ppath: Path = ("data", "path")
    wrong = paths.not_a_file(file)
    if wrong:
        col.add(ppath, f"file not found: {file}" if wrong == "not found" else f"{file} {wrong}")
        return
    if kind == "csv":
        try:
            with file.open(newline="", encoding="utf-8-sig") as fh:
                header = next(csv.reader(fh), None)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            col.add(ppath, f"cannot read {file}: {e}")
            return
        if not header:
            col.add(ppath, f"{file} is empty; expected a header row of column names")
            return
        columns = [h.strip() for h in header]
        position: dict[str, int] = {}  # one pass: a header of 10^5 columns is read in linear time
        for i, name_ in enumerate(columns):
            if name_ in position:
                col.add(
                    ppath,
                    f"{file.name}: the column name {name_!r} is in the header twice (columns "
                    f"{position[name_] + 1} and {i + 1}); rename one of them",
                )
                return
            position[name_] = i
        if not data.get("features"):
            col.input_features = len(columns) - 1
        if data.get("target") and data["target"] not in position:
            col.add(
                ("data", "target"),
                f"no column {data['target']!r} in {file.name}"
                f"{did_you_mean(data['target'], columns[:1000])} "
                f"(columns: {column_list(columns)})",
            )
        for i, feat in enumerate(data.get("features") or []):
            if feat not in position:
                col.add(
                    ("data", "features", i),
                    f"no column {feat!r} in {file.name}{did_you_mean(feat, columns[:1000])}",
                )
            elif feat == data.get("target"):
                col.add(
                    ("data", "features", i),
                    f"{feat!r} is the target; a feature that is the "
                    "target leaks the answer into the inputs",
                )
    else:
        try:
            with zipfile.ZipFile(file) as zf:
                arrays = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
                read = {
                    key: _npy_header(zf, f"{data[key]}.npy")
                    for key in ("x_key", "y_key")
                    if data.get(key) in arrays
                }
                headers = {key: h for key, h in read.items() if h is not None}
        except (OSError, zipfile.BadZipFile) as e:
            col.add(ppath, f"{file} is not a readable .npz file: {e}")
            return
        for key in ("x_key", "y_key"):
            if data.get(key) and data[key] not in arrays:
                col.add(
                    ("data", key),
                    f"no array {data[key]!r} in {file.name}"
                    f"{did_you_mean(data[key], arrays)} "
                    f"(arrays: {', '.join(arrays) or 'none'})",
                )
        for key, (shape, dtype) in headers.items():
            problem = npz_array_problem(data[key], shape, dtype)
            if problem:
                col.add(("data", key), f"{file.name}: {problem}")
            elif key == "x_key" and len(shape) in (1, 2):
                col.input_features = shape[1] if len(shape) == 2 else 1


def _npy_header(zf: Any, member: str) -> tuple[tuple[int, ...], Any] | None:
    """The shape and dtype of one array of an .npz, from its header (the data is not read);
    None when the header is unreadable (loading the data names that)."""
    import numpy as np

    fmt = np.lib.format
    try:
        with zf.open(member) as fh:
            version = fmt.read_magic(fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _fortran, dtype = read(fh)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    return tuple(shape), dtype


def npz_array_problem(key: str, shape: tuple[int, ...], dtype: Any) -> str | None:
    """What makes an .npz array unusable as data, from its shape and dtype alone."""
    if dtype.kind == "c":
        return (
            f"array {key!r} is complex ({dtype}); weightlab trains on real numbers "
            "(its imaginary part would be dropped); save the real part, or both parts as features"
        )
    size = math.prod(shape)
    if size > MAX_DATA_VALUES:
        return (
            f"array {key!r} holds {size:,} values; a dataset may hold at most {MAX_DATA_VALUES:,}"
        )
    return None


def keras_refs(spec: RunSpec) -> list[tuple[Path, str, Any]]:
    """Every Keras name in a resolved run config: ``(key path, kind, value)``."""
    cfg = spec.config
    refs: list[tuple[Path, str, Any]] = [
        (("train", "optimizer"), "optimizer", cfg["train"]["optimizer"]),
        (("train", "loss"), "loss", cfg["train"]["loss"]),
    ]
    refs += [(("train", "metrics", i), "metric", m) for i, m in enumerate(cfg["train"]["metrics"])]
    for i, layer in enumerate(cfg["model"]["layers"]):
        # Locate inherited values at the model level, where the user wrote them.
        for key in ("kernel_initializer", "bias_initializer"):
            refs.append((("model", "layers", i, key), "initializer", layer[key]))
        if layer["activation"] is not None:
            refs.append((("model", "layers", i, "activation"), "activation", layer["activation"]))
    return refs


def flatten(cfg: dict[str, Any]) -> dict[str, Any]:
    """Resolved config -> ``{"train.epochs": 50, "model.layers.0.units": 8, ...}``."""
    out: dict[str, Any] = {}

    def walk(v: Any, prefix: str) -> None:
        if isinstance(v, dict) and v and prefix.rsplit(".", 1)[-1] not in _KERAS_FIELDS:
            for k, sub in v.items():
                walk(sub, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, sub in enumerate(v):
                walk(sub, f"{prefix}.{i}")
        else:
            out[prefix] = v

    walk(cfg, "")
    return out


_KERAS_FIELDS = {"optimizer", "loss", "kernel_initializer", "bias_initializer", "activation"}


def cut_for_smoke(experiment: Experiment) -> None:
    """Cut every run to at most 2 epochs and 256 samples, in place (``weightlab run --smoke``)."""
    experiment.smoke = True
    for spec in experiment.runs:
        cfg = copy.deepcopy(spec.config)
        cfg["train"]["epochs"] = min(cfg["train"]["epochs"], expectations.SMOKE_EPOCHS)
        most = expectations.SMOKE_SAMPLES
        cfg["data"]["samples"] = min(cfg["data"].get("samples") or most, most)
        spec.config = cfg
        # A matrix axis over a cut key shows the value the run trained with, not the file's.
        cut = {"train.epochs": cfg["train"]["epochs"], "data.samples": cfg["data"]["samples"]}
        spec.cell = {k: cut.get(k, v) for k, v in spec.cell.items()}
