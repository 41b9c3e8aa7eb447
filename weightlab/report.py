"""The offline HTML page of a study: ``weightlab report``.

Every number on the page is computed here, in Python, from :func:`weightlab.analysis.compare`
and the store: histograms with shared bin edges, seed bands, pair distances per epoch, bias
trajectories and one unit's dot product. The page embeds that plain data as JSON, never the raw
snapshot matrices, next to Plotly's JavaScript (inlined once) and the static ``report.js`` and
``report.css`` of this package. No TensorFlow.
"""

from __future__ import annotations

import colorsys
import math
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weightlab import __version__, analysis, jsonio
from weightlab.errors import DamagedSnapshot, DataError, UsageError
from weightlab.stats import is_bias
from weightlab.store import Store
from weightlab.text import short_value

if TYPE_CHECKING:
    import numpy as np

BINS = 30
CLIP = (0.005, 0.995)  # the histogram range: these quantiles of every run's values, all epochs
DIGITS = 5  # significant digits of the floats in the page
STATS = ("l2", "mean", "std", "dist_init")
DOT_UNITS = 64  # the units of the dot product's layer the page can switch between
HERE = Path(__file__).resolve().parent
# Plotly's palette: one hue per seed group; the seeds of a group are shades of it.
PALETTE = [
    "#636efa",
    "#ef553b",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
    "#ff97ff",
    "#fecb52",
]


# ---- choosing the runs and the output -------------------------------------------------------


def check_output(path: str | os.PathLike[str]) -> Path:
    """The output file, refused before anything is read when it cannot be written.

    Raises:
        UsageError: the path is a directory, its folder does not exist, or it is not ``.html``.
    """
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"-o {path}: is a directory; give a file name, e.g. {out / 'report.html'}")
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o {path}: a report is an .html file, e.g. {out.with_suffix('.html')}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"-o {path}: the folder {parent} does not exist; create it first")
    return out


def _run_dir_store(selector: str) -> tuple[Path, str] | None:
    """``(store root, run id)`` when the selector is the path of a run directory."""
    p = Path(selector)
    if ("/" in selector or os.sep in selector) and (p / "run.json").is_file():
        return p.resolve().parent.parent, p.resolve().name
    return None


def select(
    store_path: str | os.PathLike[str] | None,
    selectors: Sequence[str],
    conditions: Sequence[str] = (),
) -> tuple[Store, list[dict[str, Any]]]:
    """The store and the runs of a report: ``compare``'s selectors (default: the latest batch),
    or the paths of run directories (``artifacts/weightlab-runs/runs/ID``).

    Raises:
        UsageError: the selection is empty, or its runs come from more than one store.
    """
    paths = {s: _run_dir_store(s) for s in selectors}
    roots = {found[0] for found in paths.values() if found}
    named = [s for s, found in paths.items() if not found]
    store = Store.open(store_path)
    if named or not roots:
        roots.add(store.root.resolve())
    if len(roots) > 1:
        listed = ", ".join(sorted(str(r) for r in roots))
        raise UsageError(
            f"the selection holds runs from {len(roots)} stores ({listed}); a report reads one "
            "store: write one report per store, or copy the runs into one store"
        )
    if not named:
        store = Store(next(iter(roots)))
    wanted = named + [found[1] for found in paths.values() if found]
    records = store.verified(store.select(wanted, default="latest-batch"))
    if not records:
        raise UsageError(
            f"no runs to report in {store.root}: the selection is empty; start one with "
            "`weightlab run CONFIG`"
        )
    records = analysis.where(records, conditions)
    return store, records


# ---- numbers for the page -------------------------------------------------------------------


def _round(values: Any) -> list[float | None]:
    """Floats with :data:`DIGITS` significant digits; NaN, infinity and None become ``null``.
    An array of several dimensions gives nested lists.

    Rounded as ``k / 10**d`` in numpy: that division is correctly rounded, so the float is the
    one the decimal ``k e-d`` parses to and JSON writes it short (``0.1234``, not 17 digits).
    """
    import numpy as np

    a = np.asarray(values if hasattr(values, "dtype") else list(values), dtype=np.float64)
    finite = np.isfinite(a)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mag = np.floor(np.log10(np.abs(np.where(finite & (a != 0), a, 1.0))))
        d = np.clip(DIGITS - 1 - mag, -300, 300)
        scale = 10.0 ** np.abs(d)
        r = np.where(d >= 0, np.round(a * scale) / scale, np.round(a / scale) * scale)
    r = np.where(np.isfinite(r), r, a)  # out of range for the scaling: kept as it is
    if finite.all():
        return list(r.tolist())
    objects = r.astype(object)
    objects[~finite] = None
    return list(objects.tolist())


def _num(v: Any) -> float | None:
    return _round([v])[0] if isinstance(v, int | float) else None


def colours(groups: list[dict[str, Any]]) -> dict[str, str]:
    """One colour per run: its group's hue, one shade per seed."""
    out: dict[str, str] = {}
    for g in groups:
        base = PALETTE[g["index"] % len(PALETTE)]
        r, gr, b = (int(base[i : i + 2], 16) / 255 for i in (1, 3, 5))
        h, light, s = colorsys.rgb_to_hls(r, gr, b)
        n = len(g["runs"])
        for k, run_id in enumerate(g["runs"]):
            shade = light if n == 1 else 0.35 + 0.35 * k / (n - 1)
            rgb = colorsys.hls_to_rgb(h, shade, s)
            out[run_id] = "#" + "".join(f"{int(round(c * 255)):02x}" for c in rgb)
    return out


def run_name(record: dict[str, Any], keys: list[str], seeds: bool) -> str:
    """``bias-vs-no-bias · use_bias=false · seed 1``: what tells the run apart, in full."""
    if record["status"] == "corrupt" and not record.get("config"):
        return f"damaged run {record['id']}"
    parts = [record["experiment"]]
    parts += [
        f"{k.rsplit('.', 1)[-1]}={short_value(record['config'].get(k))}"
        for k in keys
        if k not in ("seed", "name")
    ]
    if seeds:
        parts.append(f"seed {record.get('seed')}")
    return " · ".join(parts)


def loss_curves(histories: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each run's train and validation loss per epoch (from 1), from its history (NaN: none)."""
    out = {}
    for run_id, history in histories.items():
        rows = [row for row in history if row.get("epoch", 0) >= 1]
        out[run_id] = {
            "epochs": [row["epoch"] for row in rows],
            "loss": [_float(row.get("loss")) for row in rows],
            "val_loss": [_float(row.get("val_loss")) for row in rows],
        }
    return out


def _float(v: Any) -> float:
    return float(v) if isinstance(v, int | float) else math.nan


def band(series: list[dict[int, float]]) -> dict[str, Any]:
    """Mean, sample std and 95% CI per epoch over the finite values of several runs.

    Returns:
        ``{"epochs", "n", "mean", "std", "ci_low", "ci_high", "std_low", "std_high"}``; std and
        CI are ``null`` at an epoch with fewer than two values.
    """
    import numpy as np

    epochs = sorted({e for s in series for e in s})
    cols: dict[str, list[float]] = {k: [] for k in ("n", "mean", "std", "half")}
    tcrit: dict[int, float] = {}
    for e in epochs:
        vals = np.array([s[e] for s in series if e in s and math.isfinite(s[e])], dtype=float)
        n = len(vals)
        cols["n"].append(n)
        cols["mean"].append(float(vals.mean()) if n else math.nan)
        std = float(vals.std(ddof=1)) if n >= 2 else math.nan
        cols["std"].append(std)
        if n >= 2 and n not in tcrit:
            from scipy import stats  # compare has imported it already when groups have seeds

            tcrit[n] = float(stats.t.ppf(0.975, n - 1))
        cols["half"].append(tcrit[n] * std / math.sqrt(n) if n >= 2 else math.nan)
    m, sd, half = (np.array(cols[k], dtype=float) for k in ("mean", "std", "half"))
    return {
        "epochs": epochs,
        "n": cols["n"],
        "mean": _round(m),
        "std": _round(sd),
        "std_low": _round(m - sd),
        "std_high": _round(m + sd),
        "ci_low": _round(m - half),
        "ci_high": _round(m + half),
    }


def loss_bands(
    store_curves: dict[str, Any], groups: list[dict[str, Any]], finished: set[str]
) -> list[dict[str, Any]]:
    """One band per seed group of two or more runs, over the runs that completed."""
    out = []
    for g in groups:
        if g["n"] < 2:
            continue
        entry: dict[str, Any] = {"group": g["index"], "label": g["label"], "n": g["finished"]}
        for metric in ("loss", "val_loss"):
            series = []
            for run_id in g["runs"]:
                if run_id not in finished:
                    continue
                c = store_curves[run_id]
                series.append(dict(zip(c["epochs"], c[metric], strict=True)))
            entry[metric] = band(series)
        out.append(entry)
    return out


def weight_stats(history: list[dict[str, Any]]) -> dict[str, Any]:
    """L2 norm, mean, std and distance from init of each variable per epoch (from 0)."""
    rows = [row for row in history if row.get("weights")]
    variables = list(dict.fromkeys(v for row in rows for v in row["weights"]))
    out: dict[str, Any] = {"epochs": [row["epoch"] for row in rows], "variables": {}}
    for var in variables:
        out["variables"][var] = {
            s: _round([_float((row["weights"].get(var) or {}).get(s)) for row in rows])
            for s in STATS
        }
    return out


def histograms(
    trajectories: dict[str, np.ndarray], groups: dict[str, int] | None = None
) -> dict[str, Any]:
    """Histograms of one variable for several runs at every snapshot epoch, on shared edges.

    The range is the :data:`CLIP` quantiles of every finite value of every run and epoch, so
    that one wild value does not squeeze the rest into one bin; values outside it are counted
    as ``below`` and ``above``, non-finite ones as ``nonfinite``. Per run and epoch,
    ``sum(counts) + below + above + nonfinite`` is the variable's size.

    Args:
        trajectories: run id -> the variable at every epoch, shape ``(epochs, *shape)``.
        groups: run id -> its seed group; each group's counts are also given summed over its
            runs (``runs``: how many had that epoch), the seeds' values pooled.
    """
    import numpy as np

    flat = {k: np.asarray(v, dtype=np.float64).reshape(len(v), -1) for k, v in trajectories.items()}
    pooled = np.concatenate([v.ravel() for v in flat.values()]) if flat else np.zeros(0)
    pooled = pooled[np.isfinite(pooled)]
    lo, hi = (float(q) for q in np.quantile(pooled, CLIP)) if len(pooled) else (0.0, 0.0)
    if not hi > lo:  # every value the same (biases at epoch 0): a unit-wide range around it
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, BINS + 1)
    runs = {}
    for run_id, v in flat.items():
        epochs, _ = v.shape
        finite = np.isfinite(v)
        inside = finite & (v >= lo) & (v <= hi)
        idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, BINS - 1)
        rows = np.broadcast_to(np.arange(epochs)[:, None], v.shape)
        counts = np.bincount((rows * BINS + idx)[inside], minlength=epochs * BINS)
        runs[run_id] = {
            "counts": counts.reshape(epochs, BINS).tolist(),
            "below": (finite & (v < lo)).sum(axis=1).tolist(),
            "above": (finite & (v > hi)).sum(axis=1).tolist(),
            "nonfinite": (~finite).sum(axis=1).tolist(),
            "size": int(v.shape[1]),
        }
    members: dict[str, list[dict[str, Any]]] = {}
    for run_id, index in (groups or {}).items():
        if run_id in runs:
            members.setdefault(str(index), []).append(runs[run_id])
    pooled_groups = {}
    for g, rs in members.items():
        epochs = max(len(r["counts"]) for r in rs)
        total = {
            k: np.zeros((epochs, BINS) if k == "counts" else epochs, dtype=np.int64)
            for k in ("counts", "below", "above", "nonfinite", "runs")
        }
        for r in rs:
            n = len(r["counts"])
            for k in ("counts", "below", "above", "nonfinite"):
                total[k][:n] += np.asarray(r[k], dtype=np.int64)
            total["runs"][:n] += 1
        pooled_groups[g] = {k: v.tolist() for k, v in total.items()}
    return {
        "edges": _round(edges),
        "range": [lo, hi],
        "quantiles": list(CLIP),
        "runs": runs,
        "groups": pooled_groups,
    }


def pair_distances(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The relative distance and cosine of two runs' weights at every common epoch, overall
    (as :func:`weightlab.analysis.weight_distance`) and per variable.

    Args:
        a, b: variable -> trajectory ``(epochs, *shape)``; only variables of the same name and
            shape in both count.
    """
    import numpy as np

    common = [k for k in a if k in b and a[k].shape[1:] == b[k].shape[1:]]
    if not common:
        return None
    n = min(min(len(a[k]), len(b[k])) for k in common)
    sums = {"d2": np.zeros(n), "a2": np.zeros(n), "b2": np.zeros(n), "ab": np.zeros(n)}
    per_var = {}
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for k in common:
            va = np.asarray(a[k][:n], dtype=np.float64).reshape(n, -1)
            vb = np.asarray(b[k][:n], dtype=np.float64).reshape(n, -1)
            part = {
                "d2": ((va - vb) ** 2).sum(axis=1),
                "a2": (va**2).sum(axis=1),
                "b2": (vb**2).sum(axis=1),
                "ab": (va * vb).sum(axis=1),
            }
            for key in sums:
                sums[key] += part[key]
            per_var[k] = _relative(part)
        overall = _relative(sums)
    return {"epochs": list(range(n)), "variables": common, **overall, "per_variable": per_var}


def _relative(s: dict[str, np.ndarray]) -> dict[str, list[float | None]]:
    import numpy as np

    na, nb, diff = np.sqrt(s["a2"]), np.sqrt(s["b2"]), np.sqrt(s["d2"])
    distance = np.where(diff == 0, 0.0, diff / np.maximum(na, nb))
    cosine = np.where(diff == 0, 1.0, np.clip(s["ab"] / (na * nb), -1.0, 1.0))
    cosine = np.where((na == 0) | (nb == 0), np.nan, cosine)
    return {"distance": _round(distance), "cosine": _round(cosine)}


def dot_product(
    store: Store,
    run_id: str,
    *,
    layer: str | None = None,
    unit: int = 0,
    sample: int = 0,
) -> dict[str, Any]:
    """Each unit's ``x·w + b`` term by term at every snapshot epoch, for the units of one layer
    (:data:`DOT_UNITS` of them at most, ``unit`` among them): the numbers of
    ``weightlab explain RUN --epoch E --layer L --unit U --sample S`` for each E and U.

    Returns:
        ``x[e][i]``, ``w[e][u][i]``, ``product[e][u][i]``, ``bias[e][u]`` (``None`` without a
        bias), ``z[e][u]`` and ``output[e][u]``, with e indexing ``epochs``, u ``unit_ids``
        and i ``names``; and ``unit``, the one shown first.

    Raises:
        UsageError: no snapshots, or a layer, unit or sample that does not exist.
        DataError: the run's data cannot be rebuilt.
    """
    import numpy as np

    from weightlab import explain

    record = store.record(run_id)
    config = store.config(run_id)
    epochs = store.snapshot_epochs(run_id)
    if not epochs:
        raise UsageError(f"run {run_id} has no weight snapshots")
    layers = config["model"]["layers"]
    index = explain._pick_layer(layers, layer)
    spec = layers[index]
    explain._check_range(f"layer {spec['name']}", unit, spec["units"], "--unit", "units")
    dataset = explain.load_data(config["data"], record["seed"])
    n = len(dataset.x_train)
    explain._check_range("the run's training data", sample, n, "--sample", "samples")
    act = explain.activation_name(spec["activation"])
    x = dataset.x_train[sample : sample + 1].astype(np.float64)
    first = max(0, min(unit - DOT_UNITS // 2, spec["units"] - DOT_UNITS))
    units = list(range(first, min(spec["units"], first + DOT_UNITS)))
    cols: dict[str, list[Any]] = {k: [] for k in ("x", "w", "product", "bias", "z", "output")}
    names: list[str] = []
    for epoch in epochs:
        arrays = store.snapshot(run_id, epoch)
        outputs = explain.forward(layers, arrays, x)
        inputs = x[0] if index == 0 else outputs[index - 1][0]
        w = arrays[f"{spec['name']}/kernel"].astype(np.float64)[:, units].T  # (units, inputs)
        z = w @ inputs
        bias = None
        if spec["use_bias"]:
            bias = arrays[f"{spec['name']}/bias"].astype(np.float64)[units]
            z = z + bias
        names = names or explain._input_names(layers, index, dataset.info, len(inputs))
        cols["x"].append(_round(inputs))
        cols["w"].append(_round(w))
        cols["product"].append(_round(w * inputs + 0.0))
        cols["bias"].append(None if bias is None else _round(bias))
        cols["z"].append(_round(z))
        cols["output"].append(_round(outputs[index][0][units]))
    return {
        "run": run_id,
        "layer": spec["name"],
        "layers": [s["name"] for s in layers],
        "units": spec["units"],
        "unit_ids": units,
        "use_bias": bool(spec["use_bias"]),
        "activation": act,
        "formula": explain.ACTIVATIONS[act][1],
        "inputs_from": "data" if index == 0 else layers[index - 1]["name"],
        "unit": unit,
        "sample": sample,
        "samples": n,
        "target": np.asarray(dataset.y_train[sample]).ravel().tolist(),
        "names": names,
        "epochs": epochs,
        **cols,
    }


def _trajectory(store: Store, run_id: str, var: str, notes: list[str]) -> np.ndarray | None:
    try:
        return store.trajectory(run_id, var)
    except (UsageError, DamagedSnapshot) as e:
        note = f"{run_id}: {var}: {e}"
        if note not in notes:
            notes.append(note)
        return None


def _layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((config or {}).get("model") or {}).get("layers") or [])


def build(
    store: Store,
    records: list[dict[str, Any]],
    *,
    by: str | None = None,
    threshold: float = analysis.DEFAULT_THRESHOLD,
    layer: str | None = None,
    unit: int = 0,
    sample: int = 0,
    dot_run: str | None = None,
    selection: Sequence[str] = (),
    command: str = "",
) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data.

    Args:
        store: the store of the runs.
        records: the runs, as ``Store.select`` returns them.
        by, threshold: as for :func:`weightlab.analysis.compare`.
        layer, unit, sample: the unit and training sample of the dot-product section.
        dot_run: the run of the dot-product section [default: the first with snapshots].
        selection: the selectors, shown in the header.
        command: the command that reproduces the page, shown in the footer.

    Raises:
        UsageError: no runs, or an unknown ``by`` (as ``compare``).
    """
    summary = analysis.compare(store, records, by=by, threshold=threshold)
    order = [row["id"] for row in summary["runs"]]
    by_id = {r["id"]: r for r in records}
    ordered = [by_id[i] for i in order]
    groups = summary["groups"]
    seeds = any(g["n"] > 1 for g in groups)
    colour = colours(groups)
    group_of = {run_id: g["index"] for g in groups for run_id in g["runs"]}
    notes: list[str] = []
    configs = {
        r["id"]: (store.config(r["id"]) if r["status"] != "corrupt" else {}) for r in ordered
    }

    snap_epochs: dict[str, list[int]] = {}
    for r in ordered:
        try:
            snap_epochs[r["id"]] = store.snapshot_epochs(r["id"]) if configs[r["id"]] else []
        except DamagedSnapshot as e:
            snap_epochs[r["id"]] = []
            notes.append(f"{r['id']}: snapshots unreadable ({e.reason})")

    histories = {r["id"]: store.history(r["id"]) if configs[r["id"]] else [] for r in ordered}
    runs = []
    for r in ordered:
        cfg = configs[r["id"]]
        missing = []
        if not cfg:
            missing.append(f"damaged ({r.get('error')}): nothing of it can be read")
        elif not snap_epochs[r["id"]]:
            every = (cfg.get("snapshots") or {}).get("every")
            why = f"snapshots.every: {every}" if every == "never" else r["status"]
            missing.append(
                f"no weight snapshots ({why}): no distributions, biases, pair distances or "
                "dot product for this run"
            )
        if cfg and not histories[r["id"]]:
            missing.append("no history: no loss curves or weight statistics")
        name = run_name(r, summary["keys"], seeds)
        label = name if r["id"] in name else f"{name} ({r['id']})"
        notes += [f"{label}: {m}" for m in missing]
        runs.append(
            {
                "id": r["id"],
                "name": name,
                "colour": colour.get(r["id"], "#888888"),
                "group": group_of.get(r["id"]),
                "experiment": r["experiment"],
                "batch": r["batch"],
                "seed": r.get("seed"),
                "status": r["status"],
                "epochs": r.get("epochs_completed", 0),
                "diverged_at_epoch": analysis.diverged_at(r),
                "settings": {k: short_value(r["config"].get(k)) for k in summary["keys"]},
                "snapshot_epochs": len(snap_epochs[r["id"]]),
                "use_bias": {s["name"]: bool(s.get("use_bias")) for s in _layers(cfg)},
                "missing": missing,
            }
        )

    curves = loss_curves(histories)
    finished = {r["id"] for r in ordered if analysis.finished(r)}
    weights = {run_id: weight_stats(h) for run_id, h in histories.items()}

    # Variables in layer order, as the runs have them; one variable of every run at a time.
    variables: list[str] = []
    for r in ordered:
        for row in histories[r["id"]][:1]:
            variables += [v for v in row.get("weights", {}) if v not in variables]
    seed_pairs = [(p, s) for p in summary["pairs"] for s in p["seeds"]]
    pair_parts: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
        (s["a"], s["b"]): {"a": {}, "b": {}} for _, s in seed_pairs
    }
    hist: dict[str, Any] = {}
    biases: dict[str, Any] = {}
    with_snapshots = [r["id"] for r in ordered if snap_epochs[r["id"]]]
    for var in variables:
        trajs = {}
        for run_id in with_snapshots:
            t = _trajectory(store, run_id, var, notes) if _has(histories[run_id], var) else None
            if t is not None:
                trajs[run_id] = t
        if trajs:
            hist[var] = histograms(trajs, group_of)
        if is_bias(var):
            layer_name = var.rsplit("/", 1)[0]
            biases[var] = {
                "layer": layer_name,
                "runs": {
                    run_id: {"epochs": list(range(len(t))), "values": _round(t)}
                    for run_id, t in trajs.items()
                },
            }
        for (a, b), parts in pair_parts.items():
            if a in trajs:
                parts["a"][var] = trajs[a]
            if b in trajs:
                parts["b"][var] = trajs[b]
    pairs = []
    for p in summary["pairs"]:
        per_seed = []
        for s in p["seeds"]:
            parts = pair_parts[(s["a"], s["b"])]
            per_seed.append(
                {
                    "seed": s["seed"],
                    "a": s["a"],
                    "b": s["b"],
                    "divergence_epoch": s.get("divergence_epoch"),
                    "weights": pair_distances(parts["a"], parts["b"]),
                }
            )
        pairs.append(
            {
                "label": f"{p['b']['label']} vs {p['a']['label']}",
                "a": p["a"],
                "b": p["b"],
                "settings": p["settings"],
                "divergence_epoch": p.get("divergence_epoch"),
                "seeds": per_seed,
            }
        )
    del pair_parts

    dot: dict[str, Any] | None = None
    dot_note = None
    candidates = [dot_run] if dot_run else with_snapshots
    for run_id in candidates:
        try:
            dot = dot_product(store, run_id, layer=layer, unit=unit, sample=sample)
            break
        except (UsageError, DataError, DamagedSnapshot) as e:
            dot_note = f"{run_id}: {e}"
            if layer is not None or dot_run or unit or sample:
                raise  # the user asked for this one: say why it cannot be shown
    if dot is None:
        dot_note = dot_note or "no run has weight snapshots"
        notes.append(f"the dot product cannot be shown: {dot_note}")

    return {
        "title": _title(ordered),
        "version": __version__,
        "command": command,
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "store": str(store.root),
        "selection": list(selection) or ["the latest batch"],
        "keys": summary["keys"],
        "by": summary["by"],
        "threshold": threshold,
        "runs": runs,
        "findings": summary["findings"],
        "notes": notes,
        "verdicts": {
            "pairs": [_pair_verdict(p, groups) for p in summary["pairs"]],
            "groups": [_group_row(g) for g in groups],
        },
        "loss": {
            "runs": {
                run_id: {k: v if k == "epochs" else _round(v) for k, v in c.items()}
                for run_id, c in curves.items()
            },
            "bands": loss_bands(curves, groups, finished),
            "seeds": seeds,
        },
        "pairs": pairs,
        "weights": {"stats": list(STATS), "variables": variables, "runs": weights},
        "biases": biases,
        "histograms": hist,
        "dot": dot,
        "tables": {
            "runs": [_run_row(row) for row in summary["runs"]],
            "seeds": [_group_row(g) for g in groups],
        },
    }


def _has(history: list[dict[str, Any]], var: str) -> bool:
    return bool(history) and var in (history[0].get("weights") or {})


def _title(records: list[dict[str, Any]]) -> str:
    experiments = list(dict.fromkeys(r["experiment"] for r in records))
    n = len(records)
    return f"{', '.join(experiments)}: {n} run{'s' * (n != 1)}"


def _ci(stats: dict[str, Any]) -> list[float | None] | None:
    ci = stats.get("ci95")
    return _round(ci) if ci else None


def _group_row(g: dict[str, Any]) -> dict[str, Any]:
    final = g["final_loss"]
    return {
        "group": g["label"],
        "n": g["n"],
        "finished": g["finished"],
        "diverged": g["diverged"],
        "mean": _num(final["mean"]),
        "std": _num(final["std"]),
        "ci95_low": (_ci(final) or [None, None])[0],
        "ci95_high": (_ci(final) or [None, None])[1],
        "best_mean": _num(g["best_loss"]["mean"]),
        "note": g["note"] or "",
    }


def _pair_verdict(p: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
    ga, gb = groups[p["a"]["group"]]["final_loss"], groups[p["b"]["group"]]["final_loss"]
    return {
        "verdict": p["verdict"],
        "a": p["a"]["label"],
        "b": p["b"]["label"],
        "settings": p["settings"],
        "a_stats": _side(ga),
        "b_stats": _side(gb),
        "p_value": _num(p["p_value"]),
        "cohens_d": _num(p["cohens_d"]),
        "divergence_epoch": p["divergence_epoch"],
        "distance": _num(p["distance"]),
        "cosine": _num(p["cosine"]),
    }


def _side(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "mean": _num(stats["mean"]),
        "std": _num(stats["std"]),
        "n": stats["n"],
        "ci95": _ci(stats),
    }


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {"id": row["id"], "experiment": row["experiment"], "seed": row["seed"]}
    out.update(row["settings"])
    out.update(
        status=row["status"],
        epochs=row["epochs"],
        loss=_num(row["loss"]),
        val_loss=_num(row["val_loss"]),
        best_loss=_num(row["best_loss"]),
        best_epoch=row["best_epoch"],
        kernel_norm=_num(row["kernel_norm"]),
        bias_norm=_num(row["bias_norm"]),
        dist_init=_num(row["dist_init"]),
    )
    return out


# ---- the page -------------------------------------------------------------------------------


def plotly_js() -> str:
    """Plotly's minified JavaScript, from the plotly Python package's own copy.

    Found without importing the package (its Python half is of no use here).

    Raises:
        UsageError: plotly is not installed.
    """
    from importlib.util import find_spec

    spec = find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("weightlab report needs the plotly package: pip install plotly")
    path = Path(list(spec.submodule_search_locations)[0]) / "package_data" / "plotly.min.js"
    return path.read_text("utf-8")


def _inline(text: str) -> str:
    """JavaScript safe inside a ``<script>`` element: no ``</script`` or ``<!--`` ends it early
    (in a JavaScript string or regular expression, ``<\\/`` and ``<\\!`` mean the same)."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.I).replace("<!--", "<\\!--")


def _json(data: dict[str, Any]) -> str:
    """Compact JSON; the page's floats are rounded and finite already, so the walk that
    replaces NaN (:func:`weightlab.jsonio.encode`, a third of the time) is only a fallback."""
    import json

    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return jsonio.dumps(data, separators=(",", ":"))


def html(data: dict[str, Any]) -> str:
    """The page: one HTML file with its styles, scripts and data inside."""
    css = (HERE / "report.css").read_text("utf-8")
    js = (HERE / "report.js").read_text("utf-8")
    # "<" as \\u003c: the same JSON, and nothing in it can end the <script> element.
    payload = _json(data).replace("<", "\\u003c")
    title = data["title"].replace("&", "&amp;").replace("<", "&lt;")
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>weightlab report: {title}</title>\n<style>\n{css}</style>\n"
        f"<script>{_inline(plotly_js())}</script>\n</head>\n<body>\n"
        "<noscript>This page draws its charts with JavaScript: allow scripts for this file."
        "</noscript>\n"
        '<div id="app"></div>\n'
        f'<script type="application/json" id="weightlab-data">{payload}</script>\n'
        f"<script>\n{_inline(js)}</script>\n</body>\n</html>\n"
    )


def write(
    store: Store,
    records: list[dict[str, Any]],
    output: str | os.PathLike[str],
    **options: Any,
) -> dict[str, Any]:
    """Build the page of ``records`` and write it to ``output`` atomically.

    Args:
        options: passed to :func:`build`.

    Returns:
        ``{"path", "bytes", "runs", "notes", "seconds"}``.

    Raises:
        UsageError: a bad output path, no runs, or an option ``build`` refuses.
    """
    start = time.perf_counter()
    out = check_output(output)
    data = build(store, records, **options)
    text = html(data).encode("utf-8")
    jsonio.atomic_write_bytes(out, text, fsync=False)
    # The temporary file was private (mkstemp); a page is for others to open, as a new file is.
    umask = os.umask(0)
    os.umask(umask)
    out.chmod(0o666 & ~umask)
    return {
        "path": str(out.resolve()),
        "bytes": len(text),
        "runs": len(records),
        "notes": data["notes"],
        "seconds": time.perf_counter() - start,
    }
