"""Resolve the Keras names in a config with Keras' own lookups, and explain the ones that fail."""

from __future__ import annotations

import inspect
from typing import Any

import keras

from weightlab.config import RunSpec, keras_refs
from weightlab.errors import Problem
from weightlab.text import did_you_mean
from weightlab.training._keras_compat import registry
from weightlab.yamlio import dotted

_GETTERS = {
    "initializer": keras.initializers.get,
    "optimizer": keras.optimizers.get,
    "loss": keras.losses.get,
    "metric": keras.metrics.get,
    "activation": keras.activations.get,
}
# Names Keras' compile() understands although metrics.get() does not (it picks the variant itself).
_COMPILE_METRICS = {"accuracy", "acc", "crossentropy", "ce"}


class KerasNameError(ValueError):
    pass


def _norm(name: str) -> str:
    return name.lower().replace("_", "")


def resolve(kind: str, ref: Any) -> Any:
    """Turn a config value into the Keras object it names.

    ``ref`` is a name, ``{name: ..., **kwargs}`` or Keras' ``{class_name: ..., config: {...}}``.

    Raises:
        KerasNameError: with a message that says what Keras knows instead.
    """
    if kind == "metric" and isinstance(ref, str) and ref in _COMPILE_METRICS:
        return ref
    known = registry(kind)
    if isinstance(ref, dict) and "name" in ref:
        name, kwargs = ref["name"], {k: v for k, v in ref.items() if k != "name"}
        cls = _find_class(kind, name, known)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise KerasNameError(_argument_problem(cls, kwargs, e)) from None
    try:
        obj = _GETTERS[kind](ref)
    except (ValueError, TypeError) as e:
        if isinstance(ref, str) or (isinstance(ref, dict) and ref.get("class_name") not in known):
            name = ref if isinstance(ref, str) else ref.get("class_name")
            raise KerasNameError(_unknown(kind, str(name), known)) from None
        cls = known[ref["class_name"]]
        raise KerasNameError(_argument_problem(cls, ref.get("config") or {}, e)) from None
    if obj is None:
        raise KerasNameError(_unknown(kind, str(ref), known))
    return obj


def _find_class(kind: str, name: str, known: dict[str, Any]) -> Any:
    matches = [obj for key, obj in known.items() if _norm(key) == _norm(name)]
    classes = [m for m in matches if inspect.isclass(m)]
    if classes:
        return classes[0]
    if matches:
        raise KerasNameError(
            f"Keras' {kind} {name!r} is a function and takes no arguments; "
            f"write it as a plain name: {name}"
        )
    raise KerasNameError(_unknown(kind, name, known))


def _unknown(kind: str, name: str, known: dict[str, Any]) -> str:
    names = sorted(k for k in known if k == k.lower())
    return (
        f"Keras has no {kind} {name!r}{did_you_mean(name, names)} "
        f"(known: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})"
    )


def _argument_problem(cls: Any, kwargs: dict[str, Any], error: Exception) -> str:
    try:
        params = [
            p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")
        ]
    except (TypeError, ValueError):
        params = []
    bad = [k for k in kwargs if params and k not in params]
    if bad:
        hints = "; ".join(
            f"{k!r} is not an argument of {cls.__name__}{did_you_mean(k, params)}" for k in bad
        )
        return f"{hints} (arguments: {', '.join(params)})"
    return f"Keras rejected the arguments of {cls.__name__}: {error}"


def check(spec: RunSpec) -> list[Problem]:
    """Resolve every Keras name of one run; one problem per name Keras does not accept."""
    problems: list[Problem] = []
    for path, kind, ref in keras_refs(spec):
        if (
            path[:2] == ("model", "layers")
            and path[-1] != "activation"
            and not spec.locate.has(path)
        ):
            path = ("model", path[-1])  # inherited: point where the user wrote it
        try:
            resolve(kind, ref)
        except KerasNameError as e:
            problem = Problem(spec.locate(path), dotted(path), str(e))
            if problem not in problems:
                problems.append(problem)
    return problems
