"""Figures of stored runs: loss curves, weight and bias norms, bias values, with matplotlib.

matplotlib is imported here only, when a figure is drawn, and draws on its Agg/SVG canvases: no
display is needed. Labels name the config keys that differ between the plotted runs.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weightlab import analysis
from weightlab.config import short_value
from weightlab.errors import UsageError, WeightlabError
from weightlab.stats import is_bias
from weightlab.store import Store

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WHATS = ("loss", "weights", "biases", "distance")
EXTENSIONS = (".png", ".svg")
MAX_UNITS = 32  # bias lines per panel; more are unreadable
MAX_PANELS = 8


def check_output(path: str | os.PathLike[str]) -> Path:
    """The output path, if its extension is one matplotlib writes here.

    Raises:
        UsageError: another extension.
    """
    out = Path(path)
    if out.suffix.lower() not in EXTENSIONS:
        raise UsageError(
            f"-o {out}: expected a file ending in {' or '.join(EXTENSIONS)}; "
            f"got {out.suffix or 'no extension'!r}"
        )
    return out


def labels(records: list[dict[str, Any]]) -> list[str]:
    """One legend label per run from the config keys that differ, e.g. ``use_bias=false``."""
    from weightlab.render import short_setting

    keys = analysis.differing_keys([r["config"] for r in records])
    out = [
        ", ".join(f"{short_setting(k)}={short_value(r['config'].get(k))}" for k in keys) or r["id"]
        for r in records
    ]
    twice = {lab for lab in out if out.count(lab) > 1}  # same settings: tell them apart by id
    return [
        f"{lab} ({r['id'][-4:]})" if lab in twice and lab != r["id"] else lab
        for lab, r in zip(out, records, strict=True)
    ]


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _title(records: list[dict[str, Any]], what: str) -> str:
    experiments = sorted({r["experiment"] for r in records})
    runs = f"{len(records)} run{'s' if len(records) != 1 else ''}"
    return f"{', '.join(experiments)}: {what} ({runs})"


def plot(
    store: Store,
    records: list[dict[str, Any]],
    what: str,
    output: str | os.PathLike[str],
    *,
    layer: str | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Draw ``what`` for ``records`` into ``output`` (.png or .svg).

    Args:
        store: the run store.
        records: run records as returned by ``Store.select`` (with flat ``config``).
        what: ``loss``, ``weights`` (kernel and bias norms per layer), ``biases`` (bias values
            of one layer over epochs, from the snapshots) or ``distance`` (the relative weight
            distance between paired runs per epoch, from ``compare``'s pairs).
        output: the figure file; written atomically.
        layer: for ``biases``, the layer (default: the first layer that has a bias).
        by: for ``distance``, the config key that pairs runs, as ``compare --by`` (default: the
            one key the runs differ in).

    Returns:
        What was drawn, as plain data (path, labels, whether the y axis is logarithmic, ...).

    Raises:
        UsageError: unknown ``what``, extension or layer; no runs.
    """
    out = check_output(output)
    if what not in WHATS:
        raise UsageError(f"--what {what!r}: expected one of {', '.join(WHATS)}")
    if not records:
        raise UsageError("nothing to plot: no runs selected")
    from matplotlib.figure import Figure

    names = labels(records)
    info: dict[str, Any] = {"path": str(out), "what": what, "runs": [r["id"] for r in records]}
    info["labels"] = names
    if what == "loss":
        fig = Figure(figsize=(8, 5), layout="constrained")
        info.update(_loss(fig.add_subplot(), store, records, names))
    elif what == "weights":
        fig = Figure(figsize=(11, 4.5), layout="constrained")
        info.update(_norms(fig, store, records, names))
    elif what == "distance":
        fig = Figure(figsize=(8, 5), layout="constrained")
        info.update(_distance(fig.add_subplot(), store, records, by))
    else:
        fig = Figure(
            figsize=(5 * min(len(records), 3), 4 * math.ceil(len(records) / 3)),
            layout="constrained",
        )
        info.update(_biases(fig, store, records, names, layer))
    fig.suptitle(_title(records, info.pop("title", what)))
    _save(fig, out)
    return info


def _epoch_axis(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)


def _save(fig: Figure, out: Path) -> None:
    import matplotlib

    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Real text in SVGs: searchable, and smaller than glyph paths.
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            fig.savefig(tmp, format=out.suffix.lower()[1:], dpi=120)
        os.replace(tmp, out)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WeightlabError(f"cannot write {out}: {e.strerror or e}") from None


def _loss(
    ax: Axes, store: Store, records: list[dict[str, Any]], names: list[str]
) -> dict[str, Any]:
    """Training (solid) and validation (dashed) loss; diverged runs marked where they blew up."""
    from matplotlib.lines import Line2D

    finite: list[float] = []
    diverged = []
    styles: dict[str, Any] = {}
    for i, r in enumerate(records):
        at = analysis.diverged_at(r)
        # A diverged run's loss from the epoch it blew up is no result, even a finite 1e33: its
        # status says where it ends, so the same run draws the same on every CPU.
        rows = [
            row
            for row in store.history(r["id"])
            if row["epoch"] > 0 and (at is None or row["epoch"] < at)
        ]
        color = f"C{i % 10}"
        for key, style, suffix in (("loss", "-", ""), ("val_loss", "--", " (validation)")):
            points = [(row["epoch"], row[key]) for row in rows if _finite(row.get(key))]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, color=color, marker="." if len(xs) < 30 else None)
                finite += list(ys)
                styles[suffix.strip(" ()") or "training"] = style
        if at is not None:
            last = [row["loss"] for row in rows if _finite(row.get("loss"))]
            y = last[-1] if last else None
            diverged.append({"run": r["id"], "epoch": at, "loss": y})
            _mark_blowup(ax, at, y, color)
    positive = [v for v in finite if v > 0]
    log = bool(positive) and len(positive) == len(finite) and max(positive) / min(positive) >= 100
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("loss" + (" (log scale)" if log else ""))
    _epoch_axis(ax)
    if finite:
        handles = [Line2D([], [], color=f"C{i % 10}", label=n) for i, n in enumerate(names)]
        if len(styles) > 1:
            handles += [
                Line2D([], [], color="grey", linestyle=st, label=k) for k, st in styles.items()
            ]
        ax.legend(handles=handles, fontsize="small")
    return {"log_scale": log, "diverged": diverged, "title": "loss per epoch"}


def _mark_blowup(ax: Axes, epoch: int, loss: float | None, color: str) -> None:
    """An X where a run blew up: on its last finite loss, or atop the axes if it never had one."""
    coords = ax.transData if loss is not None else ax.get_xaxis_transform()
    y = loss if loss is not None else 0.95
    ax.plot([epoch], [y], marker="X", markersize=12, color=color, ls="none", transform=coords)
    ax.annotate(
        f"blew up at epoch {epoch}",
        (epoch, y),
        xycoords=coords,
        textcoords="offset points",
        xytext=(6, 6 if loss is not None else -14),
        color=color,
    )


def _norms(
    fig: Figure, store: Store, records: list[dict[str, Any]], names: list[str]
) -> dict[str, Any]:
    """L2 norm of each layer's kernel (left) and bias (right) per epoch, from the history."""
    from matplotlib.lines import Line2D

    kernel_ax, bias_ax = fig.subplots(1, 2)
    styles: list[Any] = ["-", "--", ":", "-."]
    layers: list[str] = []
    has_bias = False
    for i, r in enumerate(records):
        rows = store.history(r["id"])
        variables = list(rows[0]["weights"]) if rows else []
        for var in variables:
            layer = var.rsplit("/", 1)[0]
            if layer not in layers:
                layers.append(layer)
            points = [
                (row["epoch"], row["weights"][var]["l2"])
                for row in rows
                if _finite(row["weights"].get(var, {}).get("l2"))
            ]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            ax = bias_ax if is_bias(var) else kernel_ax
            has_bias = has_bias or is_bias(var)
            ax.plot(xs, ys, styles[layers.index(layer) % len(styles)], color=f"C{i % 10}")
    for ax, title in ((kernel_ax, "kernel |W| per layer"), (bias_ax, "bias |b| per layer")):
        ax.set_title(title)
        ax.set_ylabel("L2 norm")
        _epoch_axis(ax)
    if not has_bias:
        bias_ax.text(
            0.5,
            0.5,
            "no biases (use_bias: false)",
            ha="center",
            va="center",
            transform=bias_ax.transAxes,
        )
    handles = [Line2D([], [], color=f"C{i % 10}", label=n) for i, n in enumerate(names)]
    handles += [
        Line2D([], [], color="grey", linestyle=styles[j % len(styles)], label=f"layer {name}")
        for j, name in enumerate(layers)
    ]
    kernel_ax.legend(handles=handles, fontsize="small")
    return {"layers": layers, "title": "weight norms per epoch"}


def _distance(
    ax: Axes, store: Store, records: list[dict[str, Any]], by: str | None
) -> dict[str, Any]:
    """Relative L2 distance between the weights of paired runs per epoch, one line per seed."""
    from weightlab.analysis import compare

    result = compare(store, records, by=by, per_epoch=True)
    if not result["pairs"]:
        why = [f for f in result["findings"] if f.startswith(("no pairs", "one run"))]
        raise UsageError(
            "--what distance needs pairs of runs identical except for one config key (and with "
            "the same seed): " + ("; ".join(why) or "these runs make none")
        )
    drawn = []
    for i, pair in enumerate(result["pairs"]):
        label = f"{pair['b']['label']} vs {pair['a']['label']}"
        for j, seed_pair in enumerate(pair["seeds"]):
            points = [
                (e["epoch"], e["distance"])
                for e in seed_pair.get("epochs", [])
                if _finite(e["distance"])
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, color=f"C{i % 10}", label=None if j else label)
                drawn.append(
                    {"pair": label, "seed": seed_pair["seed"], "epochs": xs, "distance": ys}
                )
    ax.set_ylabel("relative weight distance |a - b| / max(|a|, |b|)")
    _epoch_axis(ax)
    ax.legend(fontsize="small")
    return {
        "by": result["by"],
        "pairs": drawn,
        "title": f"weight distance, pairs by {result['by']}",
    }


def _bias_layer(store: Store, record: dict[str, Any], layer: str | None) -> str | None:
    """The layer whose biases to draw: ``layer``, or the first one that has a bias."""
    config = store.config(record["id"])
    specs = config["model"]["layers"]
    names = [s["name"] for s in specs]
    if layer is not None:
        if layer not in names:
            from weightlab.config import did_you_mean

            raise UsageError(
                f"--layer {layer!r}: run {record['id']} has no such layer"
                f"{did_you_mean(layer, names)} (layers: {', '.join(names)})"
            )
        return layer
    return next((s["name"] for s in specs if s["use_bias"]), None)


def _biases(
    fig: Figure,
    store: Store,
    records: list[dict[str, Any]],
    names: list[str],
    layer: str | None,
) -> dict[str, Any]:
    """One panel per run: every bias value of one layer over the snapshot epochs."""
    shown = records[:MAX_PANELS]
    cols = min(len(shown), 3)
    axes = fig.subplots(math.ceil(len(shown) / cols), cols, squeeze=False).ravel()
    drawn: dict[str, Any] = {}
    for ax, r, name in zip(axes, shown, names, strict=False):
        chosen = _bias_layer(store, r, layer)
        ax.set_title(name, fontsize="medium")
        _epoch_axis(ax)
        epochs = store.snapshot_epochs(r["id"])
        key = f"{chosen}/bias"
        values = None
        if chosen is not None and epochs:
            with contextlib.suppress(UsageError):  # no such variable: said below
                values = store.trajectory(r["id"], key)  # (epochs, units)
        if values is None:
            if not epochs:
                what = "no snapshots (snapshots.every: never)"
            elif chosen is None:
                what = "no layer has a bias (use_bias: false)"
            else:
                what = f"layer {chosen} has no bias (use_bias: false)"
            ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            drawn[r["id"]] = None
            continue
        units = values.shape[1]
        for u in range(min(units, MAX_UNITS)):
            ax.plot(epochs, values[:, u], linewidth=1)
        more = f", first {MAX_UNITS} of {units} units" if units > MAX_UNITS else ""
        ax.set_ylabel(f"{chosen} bias values{more}")
        ax.axhline(0.0, color="black", linewidth=0.5)
        drawn[r["id"]] = {"layer": chosen, "units": units, "epochs": len(epochs)}
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    title = "bias values per epoch, one line per unit"
    if len(records) > MAX_PANELS:
        title += f" (first {MAX_PANELS} of {len(records)} runs)"
    return {"biases": drawn, "title": title}
