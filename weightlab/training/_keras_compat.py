"""Every Keras internal weightlab relies on, in one place, and checked when this module is imported.

Keras' public API does not cover everything weightlab needs: the tables of names Keras knows, the
Python random stream its initializers draw seeds from, and the pieces of ``compile()`` the
vectorized engine repeats (the metric it picks for a name, the unreduced loss, the rank matching
before a metric). They are private, so a Keras release may move or drop any of them, and the
determinism weightlab promises could weaken without a word. So they are reached from here only,
each one listed in :data:`INTERNALS`, and all of them are resolved at import: if one is gone,
importing this module (hence training) raises :class:`KerasCompatError`, naming it and the
installed Keras and TensorFlow next to the versions weightlab was tested against. Nothing falls
back quietly.

Everything else in weightlab uses Keras' public API; per-step capture in particular goes through
``train_step`` of a model subclass (:class:`weightlab.training.model.Sequential`), Keras' own
extension point.

The check is cheap (a few milliseconds) and starts no TensorFlow runtime: the two internals that
are attributes of an object rather than of a module are read off objects built inside a
``tf.Graph`` (so a process can still set its thread pools after importing training).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from weightlab.errors import WeightlabError

# The versions this module was last checked against (the suite passes with them, bit for bit).
TESTED = {"keras": "3.15.1", "tensorflow": "2.21.0"}


class KerasCompatError(WeightlabError):
    """A Keras internal weightlab relies on is missing or changed in the installed Keras."""


@dataclass(frozen=True)
class Internal:
    """One Keras internal: where it lives, what weightlab uses it for, and how to check it.

    ``owner`` is a module path (``keras.src...``) or, for an attribute of an instance, the name
    of a probe in :data:`_PROBES` (``"<probe:...>"``). ``params`` are the leading parameter
    names a callable must take (empty: not checked).
    """

    owner: str
    attribute: str
    purpose: str
    params: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.owner}.{self.attribute}"


_SGD = "<probe:keras.optimizers.SGD()>"
_METRIC = "<probe:keras.metrics.MeanMetricWrapper()>"

# The keras.src module holding the table of names of each kind (registry).
_MODULES = {
    "initializer": "initializers",
    "optimizer": "optimizers",
    "loss": "losses",
    "metric": "metrics",
    "activation": "activations",
}


INTERNALS: tuple[Internal, ...] = (
    Internal(
        "keras.src.random.seed_generator",
        "python_random",
        "the Python random stream unseeded initializers draw their seeds from (use_python_random)",
        ("seed", "randint"),
    ),
    Internal(
        "keras.src.utils.rng_utils",
        "random",
        "the Python random stream keras.utils.set_random_seed seeds (use_python_random)",
        ("seed", "randint"),
    ),
    *(
        Internal(
            f"keras.src.{module}",
            "ALL_OBJECTS_DICT",
            f"every {kind} name Keras knows, to resolve and suggest config names (registry)",
        )
        for kind, module in _MODULES.items()
    ),
    Internal(
        "keras.src.losses.losses",
        "LossFunctionWrapper",
        "a loss function as an unreduced Loss, for per-member losses (loss_function_wrapper)",
        ("fn", "reduction"),
    ),
    Internal(
        "keras.src.trainers.compile_utils",
        "get_metric",
        "the metric compile() picks for a name, e.g. the accuracy variant (get_metric)",
        ("identifier", "y_true", "y_pred"),
    ),
    Internal(
        "keras.src.losses.loss",
        "squeeze_or_expand_to_same_rank",
        "what a metric wrapper does first to labels and predictions (squeeze_or_expand_...)",
        ("x1", "x2"),
    ),
    Internal(
        _METRIC,
        "_fn",
        "the per-sample function of a stateless metric, for per-member metrics (metric_function)",
    ),
    Internal(
        _METRIC,
        "_fn_kwargs",
        "the arguments that function is called with (metric_function)",
    ),
    Internal(
        _SGD,
        "_learning_rate",
        "whether an optimizer's learning rate is a schedule (learning_rate_source)",
    ),
    Internal(
        "keras.optimizers.SGD",
        "update_step",
        "an optimizer's elementwise update, given per-member rates (override_update_step)",
        ("self", "gradient", "variable", "learning_rate"),
    ),
    Internal(
        "keras.Model",
        "make_train_function",
        "making a model's train function again once its step changed (remake_train_function)",
        ("self", "force"),
    ),
)


def _probe_sgd() -> Any:
    return keras.optimizers.SGD(name="weightlab_probe")


def _probe_metric() -> Any:
    return keras.metrics.MeanMetricWrapper(fn=keras.metrics.mean_squared_error, name="probe")


_PROBES: dict[str, Callable[[], Any]] = {_SGD: _probe_sgd, _METRIC: _probe_metric}


def installed_versions() -> dict[str, str]:
    """The installed Keras and TensorFlow versions, from their package metadata."""
    out = {}
    for package in TESTED:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _problem(internal: Internal, owners: dict[str, Any]) -> str | None:
    """What is wrong with one internal in the installed Keras, or None."""
    owner = owners.get(internal.owner)
    if owner is None:
        how = "built" if internal.owner in _PROBES else "imported"
        return f"{internal.owner} cannot be {how}"
    if not hasattr(owner, internal.attribute):
        return f"{internal.owner} has no attribute {internal.attribute!r}"
    value = getattr(owner, internal.attribute)
    if inspect.ismodule(value) or isinstance(value, random.Random):  # a random stream
        missing = [p for p in internal.params if not callable(getattr(value, p, None))]
        return f"{internal.name} has no {', '.join(missing)}" if missing else None
    if internal.params:
        try:
            names = list(inspect.signature(value).parameters)
        except (TypeError, ValueError):
            return f"{internal.name} is not a function"
        if names[: len(internal.params)] != list(internal.params):
            return (
                f"{internal.name} takes ({', '.join(names)}), weightlab calls it with "
                f"({', '.join(internal.params)})"
            )
    return None


def _owners(internals: tuple[Internal, ...]) -> dict[str, Any]:
    """The module, class or probe object of each internal that can be had (None: it cannot)."""
    owners: dict[str, Any] = {}
    with tf.Graph().as_default():  # objects built here start no TensorFlow runtime
        for internal in internals:
            if internal.owner in owners:
                continue
            try:
                if internal.owner in _PROBES:
                    owners[internal.owner] = _PROBES[internal.owner]()
                elif internal.owner.startswith("keras.src."):
                    owners[internal.owner] = importlib.import_module(internal.owner)
                else:  # a public class: keras.optimizers.SGD
                    path, _, attr = internal.owner.rpartition(".")
                    owners[internal.owner] = getattr(importlib.import_module(path), attr)
            except Exception:  # noqa: BLE001  (said as "cannot be imported" or "built")
                owners[internal.owner] = None
    return owners


def check(internals: tuple[Internal, ...] = INTERNALS) -> None:
    """Resolve every internal in the installed Keras.

    Raises:
        KerasCompatError: naming each internal that is missing or changed, with the installed and
            the tested Keras and TensorFlow versions.
    """
    owners = _owners(internals)
    problems = [(i, p) for i in internals if (p := _problem(i, owners)) is not None]
    if not problems:
        return
    have = installed_versions()
    lines = [
        f"weightlab cannot train with Keras {have['keras']} (TensorFlow {have['tensorflow']}): "
        f"{len(problems)} Keras internal{'s' if len(problems) > 1 else ''} it relies on "
        f"{'are' if len(problems) > 1 else 'is'} missing or changed:"
    ]
    lines += [f"  - {p} (used for {i.purpose})" for i, p in problems]
    lines.append(
        f"weightlab was tested with Keras {TESTED['keras']} and TensorFlow "
        f"{TESTED['tensorflow']}; install those (pip install 'keras=={TESTED['keras']}' "
        f"'tensorflow=={TESTED['tensorflow']}') or a weightlab release that supports yours."
    )
    raise KerasCompatError("\n".join(lines))


check()

# ---- the internals, one small function each ---------------------------------------------------


def registry(kind: str) -> dict[str, Any]:
    """Keras' own table of the names it knows for ``kind`` (no hand-kept list)."""
    module = importlib.import_module(f"keras.src.{_MODULES[kind]}")
    return dict(module.ALL_OBJECTS_DICT)


def use_python_random() -> random.Random:
    """Give Keras a Python random stream of its own, out of reach of the process's other threads.

    Keras draws the seeds of unseeded initializers from Python's global ``random`` (seeded by
    ``keras.utils.set_random_seed``). One ``random.Random`` takes both places:
    ``set_random_seed`` seeds it and the initializers draw from it. Returns the stream.
    """
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    stream = random.Random()
    seed_generator.python_random = stream
    rng_utils.random = stream
    return stream


def loss_function_wrapper(fn: Any, reduction: str | None = None) -> Any:
    """A loss function as a Keras ``Loss`` (unreduced by default: per-sample values)."""
    from keras.src.losses.losses import LossFunctionWrapper

    return LossFunctionWrapper(fn, reduction=reduction)


def get_metric(identifier: Any, y_true: Any, y_pred: Any) -> Any:
    """The metric ``compile()`` makes of ``identifier`` for these labels and predictions."""
    from keras.src.trainers.compile_utils import get_metric as keras_get_metric

    return keras_get_metric(identifier, y_true, y_pred)


def squeeze_or_expand_to_same_rank(x1: Any, x2: Any) -> tuple[Any, Any]:
    """Labels and predictions brought to one rank, as a metric wrapper does before its function."""
    from keras.src.losses.loss import squeeze_or_expand_to_same_rank as keras_same_rank

    out: tuple[Any, Any] = keras_same_rank(x1, x2)
    return out


def metric_function(metric: keras.metrics.MeanMetricWrapper) -> tuple[Any, dict[str, Any]]:
    """A stateless metric's per-sample function (None if it has none) and its arguments."""
    return metric._fn, dict(metric._fn_kwargs or {})


def learning_rate_source(optimizer: Any) -> Any:
    """What the optimizer's learning rate comes from: a variable, or a schedule (callable)."""
    return optimizer._learning_rate


def override_update_step(optimizer: Any, update_step: Callable[[Any, Any, Any], Any]) -> None:
    """Make ``optimizer`` (one instance) apply ``update_step(gradient, variable, learning_rate)``
    to each variable in place of its class's update."""
    optimizer.update_step = update_step


def remake_train_function(model: keras.Model) -> None:
    """Make the model's train function again from its ``train_step`` if it was made already
    (``fit`` makes it otherwise, on its first call)."""
    if model.train_function is not None:
        model.make_train_function(force=True)
