"""Pure functions over stored runs: side-by-side summaries, pairs, distances, seed statistics.

Named `analysis` so that `weightlab.compare(...)` can be the public Python function."""

from __future__ import annotations

import math
import re
from typing import Any

from weightlab.config import short_value

_IGNORED = {"description"}


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Flat config keys whose values are not the same in every run (in first-seen order)."""
    keys: list[str] = []
    for cfg in configs:
        keys += [k for k in cfg if k not in keys and k not in _IGNORED]
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    return [k for k in differ if not _inherited(k, configs)]


_LAYER_KEY = re.compile(r"^model\.layers\.\d+\.(use_bias|kernel_initializer|bias_initializer)$")


def _inherited(key: str, configs: list[dict[str, Any]]) -> bool:
    """A layer setting that only mirrors the model-level default (shown once, as model.X)."""
    m = _LAYER_KEY.match(key)
    return m is not None and all(c.get(key) == c.get(f"model.{m.group(1)}") for c in configs)


def settings(record: dict[str, Any], keys: list[str]) -> dict[str, str]:
    if record["status"] == "corrupt" and not record["config"]:
        return {k: "?" for k in keys}
    return {k: short_value(record["config"].get(k)) for k in keys}


def growth(final: float | None, initial: float | None) -> float | None:
    if final is None or initial is None or initial == 0:
        return None
    return final / initial


def run_row(record: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """One run as a flat row for tables: settings that differ, outcome, weights."""
    final = record.get("final") or {}
    weights = record.get("weights") or {}
    best = record.get("best") or {}
    return {
        "id": record["id"],
        "experiment": record["experiment"],
        "settings": settings(record, keys),
        "status": record["status"],
        "epochs": record.get("epochs_completed", 0),
        "of_epochs": record.get("epochs"),
        "loss": final.get("loss"),
        "val_loss": final.get("val_loss"),
        "metrics": {k: v for k, v in final.items() if k not in ("loss", "val_loss")},
        "best_loss": best.get("loss"),
        "best_epoch": best.get("epoch"),
        "diverged_at_epoch": record.get("diverged_at_epoch"),
        "kernel_norm": weights.get("kernel_norm"),
        "kernel_growth": growth(weights.get("kernel_norm"), weights.get("kernel_norm_initial")),
        "bias_norm": weights.get("bias_norm"),
        "dist_init": weights.get("dist_init"),
        "error": record.get("error"),
    }


def side_by_side(records: list[dict[str, Any]], *, all_keys: bool = False) -> dict[str, Any]:
    """Runs side by side: ``{"keys": [differing config keys], "runs": [rows], "findings": [...]}``.

    Args:
        records: run records as returned by ``Store.select`` (with flat ``config``).
        all_keys: show every config key, not only those that differ.
    """
    # A corrupt run has no readable config: it must not make every key look different.
    configs = [r["config"] for r in records if r["status"] != "corrupt"] or [{}]
    if all_keys:
        keys = [k for k in dict.fromkeys(k for c in configs for k in c) if k not in _IGNORED]
    else:
        keys = [k for k in differing_keys(configs) if k != "name" or len(records) > 1]
    rows = [run_row(r, keys) for r in records]
    return {"keys": keys, "runs": rows, "findings": findings(rows)}


def _label(row: dict[str, Any]) -> str:
    """``use_bias=false`` from a row's differing settings, or its id when nothing differs."""
    if row["status"] == "corrupt":
        return str(row["id"])
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in row["settings"].items()) or row["id"]


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """Plain-words observations: which runs diverged or failed, and how far apart the losses are."""
    out = []
    for row in rows:
        if row["status"] == "diverged":
            out.append(
                f"{_label(row)}: blew up (non-finite loss or weights) at epoch "
                f"{row['diverged_at_epoch']}"
            )
        elif row["status"] in ("failed", "corrupt"):
            out.append(f"{_label(row)}: {row['status']}: {row['error']}")
        elif row["status"] == "crashed":
            out.append(
                f"{_label(row)}: crashed after epoch {row['epochs']}; "
                f"`weightlab resume {row['id']}` continues it"
            )
    finite = [r for r in rows if r["status"] == "completed" and _finite(r["loss"])]
    if len(finite) >= 2:
        best = min(finite, key=lambda r: r["loss"])
        worst = max(finite, key=lambda r: r["loss"])
        if best["loss"] > 0 and worst["loss"] / best["loss"] >= 10:
            out.append(
                f"{_label(worst)} ends with {worst['loss'] / best['loss']:.3g}× the loss of "
                f"{_label(best)} ({worst['loss']:.4g} vs {best['loss']:.4g})"
            )
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def show(record: dict[str, Any], history: list[dict[str, Any]], every: int = 1) -> dict[str, Any]:
    """One run epoch by epoch: metrics, per-layer kernel/bias norms, distance from init, change."""
    from weightlab.stats import norms

    variables = list(history[0]["weights"]) if history else []
    metric_keys: list[str] = []
    for row in history:
        metric_keys += [k for k in row if k not in ("epoch", "weights") and k not in metric_keys]
    rows = []
    last = history[-1]["epoch"] if history else 0
    for row in history:
        if row["epoch"] % every and row["epoch"] != last:
            continue
        w = row.get("weights", {})
        total = norms(w)
        deltas = [s["delta"] for s in w.values() if s.get("delta") is not None]
        rows.append(
            {
                "epoch": row["epoch"],
                "metrics": {k: row.get(k) for k in metric_keys},
                "norms": {k: s["l2"] for k, s in w.items()},
                "dist_init": total["dist_init"],
                "delta": math.sqrt(sum(d * d for d in deltas)) if deltas else None,
            }
        )
    return {"run": record, "variables": variables, "metrics": metric_keys, "epochs": rows}
