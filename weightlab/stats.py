"""Per-variable statistics recorded in the history, and run-level summaries built from them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: `show` and `compare` use the summaries, not numpy
    import numpy as np


def variable_stats(
    value: np.ndarray, initial: np.ndarray, previous: np.ndarray | None
) -> dict[str, Any]:
    """L2 norm, mean, std, min, max, L2 distance from epoch 0, L2 change since the last snapshot."""
    import numpy as np

    v = value.astype(np.float64, copy=False)
    return {
        "l2": float(np.linalg.norm(v)),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "dist_init": float(np.linalg.norm(v - initial)),
        "delta": None if previous is None else float(np.linalg.norm(v - previous)),
    }


def is_bias(var: str) -> bool:
    return var.rsplit("/", 1)[-1] == "bias"


def norms(weights: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Global L2 norms over all kernels and over all biases of one history row's statistics."""

    def total(items: list[float]) -> float | None:
        return math.sqrt(sum(x * x for x in items)) if items else None

    kernels = [s["l2"] for k, s in weights.items() if not is_bias(k)]
    biases = [s["l2"] for k, s in weights.items() if is_bias(k)]
    dists = [s["dist_init"] for k, s in weights.items()]
    return {"kernel_norm": total(kernels), "bias_norm": total(biases), "dist_init": total(dists)}


def summarize(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Best loss and weight norms (initial and final) for run.json, from the history rows."""
    out: dict[str, Any] = {"best": None, "weights": None}
    losses = [
        (r["epoch"], r["loss"])
        for r in history
        if isinstance(r.get("loss"), int | float) and math.isfinite(r["loss"])
    ]
    if losses:
        epoch, loss = min(losses, key=lambda t: t[1])
        out["best"] = {"loss": loss, "epoch": epoch}
    finite = [r for r in history if "weights" in r and _finite_row(r)]
    if finite:
        first, last = norms(finite[0]["weights"]), norms(finite[-1]["weights"])
        out["weights"] = {
            "epoch": finite[-1]["epoch"],
            "kernel_norm": last["kernel_norm"],
            "kernel_norm_initial": first["kernel_norm"],
            "bias_norm": last["bias_norm"],
            "bias_norm_initial": first["bias_norm"],
            "dist_init": last["dist_init"],
        }
    return out


def _finite_row(row: dict[str, Any]) -> bool:
    return all(math.isfinite(s["l2"]) for s in row["weights"].values())
