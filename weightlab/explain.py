"""One unit's calculation, term by term: ``z = x·w + b`` and its activation, from the snapshots.

The forward pass is numpy over the stored arrays (no TensorFlow): the first layer takes a sample of
the run's own data, rebuilt from its config by :mod:`weightlab.data`; every later layer takes the
previous layer's outputs. Activations are written out here for the names Keras' Dense layers use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from weightlab import data
from weightlab.errors import DataError, UsageError
from weightlab.store import Store
from weightlab.text import did_you_mean

Array = np.ndarray
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(z: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _softplus(z: Array) -> Array:
    return np.logaddexp(0.0, z)


def _elu(z: Array, alpha: float = 1.0) -> Array:
    return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0)))


def _softmax(z: Array) -> Array:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _gelu(z: Array) -> Array:
    # Keras' default is the exact form (approximate=False).
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return np.asarray(0.5 * z * (1.0 + erf(z / math.sqrt(2.0))))


def _hard_sigmoid(z: Array) -> Array:
    return np.clip(z / 6.0 + 0.5, 0.0, 1.0)


def _shrink(z: Array, t: float = 0.5) -> Array:
    return np.where(z > t, z - t, np.where(z < -t, z + t, 0.0))


# name -> (function of the whole layer's z, formula shown to the reader).
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], str]] = {
    "linear": (lambda z: z, "no activation: the output is z"),
    "relu": (lambda z: np.maximum(z, 0.0), "max(z, 0)"),
    "relu6": (lambda z: np.clip(z, 0.0, 6.0), "min(max(z, 0), 6)"),
    "leaky_relu": (lambda z: np.where(z >= 0, z, 0.2 * z), "z if z ≥ 0 else 0.2·z"),
    "sigmoid": (_sigmoid, "1 / (1 + e^-z)"),
    "tanh": (np.tanh, "tanh(z)"),
    "softmax": (_softmax, "e^z / Σ e^z over the layer's units"),
    "log_softmax": (
        lambda z: z - np.logaddexp.reduce(z, axis=-1, keepdims=True),
        "z - log Σ e^z over the layer's units",
    ),
    "elu": (_elu, "z if z > 0 else e^z - 1"),
    "selu": (
        lambda z: _SELU_SCALE * _elu(z, _SELU_ALPHA),
        "1.0507·(z if z > 0 else 1.6733·(e^z - 1))",
    ),
    "celu": (_elu, "z if z > 0 else e^z - 1"),
    "gelu": (_gelu, "z·Φ(z) = z/2·(1 + erf(z/√2))"),
    "softplus": (_softplus, "log(1 + e^z)"),
    "softsign": (lambda z: z / (1.0 + np.abs(z)), "z / (1 + |z|)"),
    "silu": (lambda z: z * _sigmoid(z), "z·sigmoid(z)"),
    "swish": (lambda z: z * _sigmoid(z), "z·sigmoid(z)"),
    "mish": (lambda z: z * np.tanh(_softplus(z)), "z·tanh(log(1 + e^z))"),
    "exponential": (np.exp, "e^z"),
    "hard_sigmoid": (_hard_sigmoid, "clip(z/6 + 1/2, 0, 1)"),
    "hard_silu": (lambda z: z * _hard_sigmoid(z), "z·clip(z/6 + 1/2, 0, 1)"),
    "hard_swish": (lambda z: z * _hard_sigmoid(z), "z·clip(z/6 + 1/2, 0, 1)"),
    "hard_tanh": (lambda z: np.clip(z, -1.0, 1.0), "clip(z, -1, 1)"),
    "log_sigmoid": (lambda z: -_softplus(-z), "-log(1 + e^-z)"),
    "tanh_shrink": (lambda z: z - np.tanh(z), "z - tanh(z)"),
    "soft_shrink": (_shrink, "z ∓ 0.5 outside [-0.5, 0.5], else 0"),
    "hard_shrink": (lambda z: np.where(np.abs(z) > 0.5, z, 0.0), "z outside [-0.5, 0.5], else 0"),
    "squareplus": (lambda z: (z + np.sqrt(z * z + 4.0)) / 2.0, "(z + √(z² + 4)) / 2"),
    "sparse_plus": (
        lambda z: np.where(z <= -1, 0.0, np.where(z >= 1, z, (z + 1.0) ** 2 / 4.0)),
        "0, (z + 1)²/4 or z",
    ),
    "sparse_sigmoid": (lambda z: np.clip((z + 1.0) / 2.0, 0.0, 1.0), "clip((z + 1)/2, 0, 1)"),
}
# The ones whose output for one unit depends on the other units' z.
LAYERWISE = {"softmax", "log_softmax"}


def activation_name(ref: Any) -> str:
    """The activation's name from a layer config: ``None`` is linear, ``{name: x}`` is ``x``.

    Raises:
        UsageError: an activation with arguments, or one this module does not implement.
    """
    if ref is None:
        return "linear"
    name = ref
    if isinstance(ref, dict):
        args = {k: v for k, v in ref.items() if k not in ("name", "class_name", "config")}
        name = ref.get("name") or ref.get("class_name")
        if args or ref.get("config"):
            raise UsageError(
                f"explain cannot redo the activation {ref!r}: activations with arguments are "
                "not implemented in numpy"
            )
    if not isinstance(name, str) or name not in ACTIVATIONS:
        hint = did_you_mean(str(name), list(ACTIVATIONS))
        raise UsageError(
            f"explain cannot redo the activation {name!r} in numpy{hint}"
            f" (implemented: {', '.join(sorted(ACTIVATIONS))})"
        )
    return name


def activate(name: str, z: Array) -> Array:
    return ACTIVATIONS[name][0](np.asarray(z, dtype=np.float64))


def forward(layers: list[dict[str, Any]], arrays: dict[str, Array], x: Array) -> list[Array]:
    """Each layer's output for the inputs ``x`` (float64), from one snapshot's arrays."""
    outputs = []
    h = np.asarray(x, dtype=np.float64)
    for layer in layers:
        z = h @ arrays[f"{layer['name']}/kernel"].astype(np.float64)
        if layer["use_bias"]:
            z = z + arrays[f"{layer['name']}/bias"].astype(np.float64)
        h = activate(activation_name(layer["activation"]), z)
        outputs.append(h)
    return outputs


def load_data(stored: dict[str, Any], seed: int) -> data.Dataset:
    """The run's dataset, as its runner built it, from the stored ``data:`` section.

    Keys the section lacks (a config written by hand or by an older weightlab) take the schema's
    defaults, as they did when the run was configured.

    Raises:
        DataError: the data cannot be rebuilt (a file is gone, a required key is missing).
    """
    from weightlab import config as schema

    kind = stored.get("kind", "linear")
    fields = {**schema.DATA_COMMON, **schema.DATA_KIND_FIELDS.get(kind, {})}
    defaults = {k: f.default for k, f in fields.items() if f.default is not schema.REQUIRED}
    try:
        return data.load({**defaults, **stored}, seed)
    except KeyError as e:
        raise DataError(f"data.{e.args[0]}: missing from the run's stored config") from None


def _pick_layer(layers: list[dict[str, Any]], name: str | None) -> int:
    if name is None:
        return 0
    names = [layer["name"] for layer in layers]
    if name in names:
        return names.index(name)
    raise UsageError(f"no layer {name!r}{did_you_mean(name, names)} (layers: {', '.join(names)})")


def _check_range(what: str, value: int, count: int, option: str, noun: str) -> None:
    if not 0 <= value < count:
        raise UsageError(f"{option} {value}: {what} has {count} {noun}, numbered 0..{count - 1}")


def _input_names(
    layers: list[dict[str, Any]], index: int, info: dict[str, Any], n: int
) -> list[str]:
    if index > 0:
        prev = layers[index - 1]["name"]
        return [f"{prev}[{j}]" for j in range(n)]
    names = [str(f) for f in info.get("feature_names") or []]
    return names if len(names) == n else [f"x{j + 1}" for j in range(n)]


def explain(
    store: Store,
    run_id: str,
    *,
    epoch: int | None = None,
    layer: str | None = None,
    unit: int = 0,
    sample: int = 0,
) -> dict[str, Any]:
    """The calculation of one unit on one training sample at one epoch, term by term.

    Args:
        store: the run store.
        run_id: a full run id.
        epoch: the snapshot epoch; default the last one.
        layer: the layer's name; default the first layer.
        unit: the unit of that layer (0-based).
        sample: the training sample of the run's data (0-based).

    Returns:
        Plain data: the inputs, weights and products, the dot product, the bias, z, the activation
        and output, the network's output, and how the unit's weights changed since epoch 0.

    Raises:
        UsageError: no snapshots, or an epoch, layer, unit or sample that does not exist.
        DataError: the run's data file cannot be read any more.
    """
    record = store.record(run_id)
    config = store.config(run_id)
    epochs = store.snapshot_epochs(run_id)
    if not epochs:
        raise UsageError(
            f"run {run_id} has no weight snapshots (snapshots.every: "
            f"{config.get('snapshots', {}).get('every')}); explain needs them"
        )
    epoch = epochs[-1] if epoch is None else epoch
    arrays = store.snapshot(run_id, epoch)
    initial = store.snapshot(run_id, epochs[0])
    layers = config["model"]["layers"]
    index = _pick_layer(layers, layer)
    spec = layers[index]
    _check_range(f"layer {spec['name']}", unit, spec["units"], "--unit", "units")
    dataset = load_data(config["data"], record["seed"])
    _check_range("the run's training data", sample, len(dataset.x_train), "--sample", "samples")

    x = dataset.x_train[sample : sample + 1].astype(np.float64)
    outputs = forward(layers, arrays, x)
    inputs = x[0] if index == 0 else outputs[index - 1][0]
    kernel = arrays[f"{spec['name']}/kernel"].astype(np.float64)
    kernel0 = initial[f"{spec['name']}/kernel"].astype(np.float64)
    w, w0 = kernel[:, unit], kernel0[:, unit]
    products = inputs * w + 0.0  # + 0.0: no '-0' in the table
    bias = bias0 = None
    z_layer = inputs @ kernel
    if spec["use_bias"]:
        b = arrays[f"{spec['name']}/bias"].astype(np.float64)
        bias, bias0 = float(b[unit]), float(initial[f"{spec['name']}/bias"][unit])
        z_layer = z_layer + b
    act = activation_name(spec["activation"])
    names = _input_names(layers, index, dataset.info, len(inputs))
    return {
        "run": run_id,
        "experiment": record["experiment"],
        "status": record["status"],
        "epoch": epoch,
        "first_epoch": epochs[0],
        "last_epoch": epochs[-1],
        "layer": {
            "name": spec["name"],
            "index": index,
            "count": len(layers),
            "units": spec["units"],
            "use_bias": spec["use_bias"],
            "activation": act,
            "formula": ACTIVATIONS[act][1],
            "inputs_from": "data" if index == 0 else layers[index - 1]["name"],
        },
        "unit": unit,
        "sample": {
            "index": sample,
            "of": int(len(dataset.x_train)),
            "split": "train",
            "x": [float(v) for v in x[0]],
            "target": np.asarray(dataset.y_train[sample]).ravel().tolist(),
        },
        "terms": [
            {
                "name": names[i],
                "x": float(inputs[i]),
                "w": float(w[i]),
                "product": float(products[i]),
                "w_initial": float(w0[i]),
                "w_change": float(w[i] - w0[i]),
            }
            for i in range(len(inputs))
        ],
        "dot": float(products.sum()),
        "bias": bias,
        "bias_initial": bias0,
        "z": float(z_layer[unit]),
        "layer_z": [float(v) for v in z_layer] if act in LAYERWISE else None,
        "output": float(outputs[index][0][unit]),
        "network_output": [float(v) for v in outputs[-1][0]],
        "change": {
            "from_epoch": epochs[0],
            "to_epoch": epoch,
            "w_norm_initial": float(np.linalg.norm(w0)),
            "w_norm": float(np.linalg.norm(w)),
            "w_distance": float(np.linalg.norm(w - w0)),
            "bias_change": None if bias is None or bias0 is None else bias - bias0,
        },
    }
