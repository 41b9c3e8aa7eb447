"""Figures of stored runs: loss curves, weight and bias norms, bias values, with matplotlib.

matplotlib is imported here only, when a figure is drawn, and draws on its Agg/SVG canvases: no
display is needed. Labels name the config keys that differ between the plotted runs.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weightlab import analysis
from weightlab.errors import UsageError, WeightlabError
from weightlab.stats import is_bias
from weightlab.store import Store
from weightlab.text import short_value

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


def groups(records: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """Runs that differ only by seed, together: ``[(label, [indices into records]), ...]``.

    The label names the config keys that differ between the groups (``use_bias=false``); runs
    that share every setting and seed stay apart (told apart by id, as :func:`labels` does).
    """
    from weightlab.render import short_setting

    keys = [k for k in analysis.differing_keys([r["config"] for r in records]) if k != "seed"]
    names = labels(records)
    out: dict[str, list[int]] = {}
    for i in reversed(range(len(records))):  # oldest first: the matrix's order
        r = records[i]
        label = ", ".join(f"{short_setting(k)}={short_value(r['config'].get(k))}" for k in keys)
        seeds = {records[j].get("seed") for j in out.get(label, [])}
        if not label or r.get("seed") in seeds:  # the same seed twice: not a seed band
            label = names[i]
        out.setdefault(label, []).append(i)
    return list(out.items())


def palette(n: int) -> list[Any]:
    """``n`` colours, none repeated: matplotlib's 10, then tab20, then evenly spread hues."""
    import matplotlib

    if n <= 10:
        return [f"C{i}" for i in range(n)]
    if n <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [cmap(i) for i in range(n)]
    cmap = matplotlib.colormaps["turbo"]
    return [cmap(0.05 + 0.9 * i / (n - 1)) for i in range(n)]


def _legend_outside(fig: Figure, handles: list[Any], title: str | None = None) -> None:
    """The legend right of the axes, never over the curves; in columns when it is long."""
    if handles:
        columns = 1 + (len(handles) - 1) // 24
        fig.legend(
            handles=handles,
            loc="outside right center",
            fontsize="small",
            ncols=columns,
            title=title,
            title_fontsize="small",
        )


def _entries(grouped: list[tuple[str, list[int]]]) -> tuple[str | None, list[str]]:
    """Legend title and entries: the one key the groups differ in goes into the title once
    (``kernel_init``, then ``zeros``, ``he_normal``, ...), not into every entry."""
    heads = {label.split("=", 1)[0] for label, _ in grouped}
    head = heads.pop() if len(heads) == 1 and all("=" in g for g, _ in grouped) else None
    # a second key would show as ", key=" outside the value's own parentheses
    if head and all(re.search(r",\s*\w[\w.]*=", _outside(label)) is None for label, _ in grouped):
        return head, [label.split("=", 1)[1] for label, _ in grouped]
    return None, [label for label, _ in grouped]


def _outside(text: str) -> str:
    """``text`` without what stands in parentheses or brackets."""
    out, depth = [], 0
    for ch in text:
        depth += ch in "([{"
        if depth == 0:
            out.append(ch)
        depth -= ch in ")]}"
    return "".join(out)


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
    fig, info = figure(store, records, what, layer=layer, by=by)
    info["path"] = str(out)
    _save(fig, out)
    return info


def figure(
    store: Store,
    records: list[dict[str, Any]],
    what: str,
    *,
    layer: str | None = None,
    by: str | None = None,
) -> tuple[Figure, dict[str, Any]]:
    """The figure :func:`plot` writes, not yet drawn, and what it shows (without ``path``)."""
    if what not in WHATS:
        raise UsageError(f"--what {what!r}: expected one of {', '.join(WHATS)}")
    if not records:
        raise UsageError("nothing to plot: no runs selected")
    from matplotlib.figure import Figure

    names = labels(records)
    info: dict[str, Any] = {"path": None, "what": what, "runs": [r["id"] for r in records]}
    info["labels"] = names
    if what == "loss":
        fig = Figure(figsize=(10, 5), layout="constrained")
        info.update(_loss(fig.add_subplot(), store, records, names))
    elif what == "weights":
        fig = Figure(figsize=(13, 4.5), layout="constrained")
        info.update(_norms(fig, store, records, names))
    elif what == "distance":
        fig = Figure(figsize=(10, 5), layout="constrained")
        info.update(_distance(fig.add_subplot(), store, records, by))
    else:
        panels, without = _bias_panels(store, records, layer)
        n = len(panels) + bool(without)
        fig = Figure(figsize=(5 * min(n, 3), 4 * math.ceil(n / 3)), layout="constrained")
        info.update(_biases(fig, records, panels, without))
    title = info.pop("title", what)
    fig.suptitle(title if info.pop("counted", False) else _title(records, title))
    return fig, info


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
    """Training (solid) and validation (dashed) loss, one colour per group of seeds: a group's
    mean with its seeds' range as a band. A diverged run is marked where it blew up and kept out
    of the y range, so that the others are not flattened by its 1e33."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    grouped = groups(records)
    colors = palette(len(grouped))
    scale: list[float] = []  # the losses of the runs that did not blow up set the y range
    every: list[float] = []
    diverged: list[dict[str, Any]] = []
    styles: dict[str, Any] = {}
    histories = {r["id"]: store.history(r["id"]) for r in records}
    for (_label, members), color in zip(grouped, colors, strict=True):
        for key, style, name in (("loss", "-", "training"), ("val_loss", "--", "validation")):
            series = []
            for i in members:
                r = records[i]
                at = analysis.diverged_at(r)
                # A diverged run's loss from the epoch it blew up is no result, even a finite
                # 1e33: its status says where it ends, so the same run draws the same on any CPU.
                rows = [
                    row
                    for row in histories[r["id"]]
                    if row["epoch"] > 0 and (at is None or row["epoch"] < at)
                ]
                points = {row["epoch"]: row[key] for row in rows if _finite(row.get(key))}
                if points:
                    series.append(points)
                    every += points.values()
                    if r["status"] != "diverged":
                        scale += points.values()
            if not series:
                continue
            styles[name] = style
            _draw_group(ax, series, style, color)
        for i in members:
            r = records[i]
            at = analysis.diverged_at(r)
            if at is not None:
                before = [row for row in histories[r["id"]] if 0 < row["epoch"] < at]
                last = [row["loss"] for row in before if _finite(row.get("loss"))]
                diverged.append(
                    {"run": r["id"], "epoch": at, "loss": last[-1] if last else None, "c": color}
                )
    scale = scale or every
    positive = [v for v in scale if v > 0]
    log = bool(positive) and len(positive) == len(scale) and max(positive) / min(positive) >= 100
    if log:
        ax.set_yscale("log")
    y_range = None
    if scale:
        low, high = min(scale), max(scale)
        if log:
            ax.set_ylim(low / 1.5, high * 1.5)
        else:
            pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
            ax.set_ylim(low - pad, high + pad)
        y_range = [float(v) for v in ax.get_ylim()]
    ax.set_ylabel("loss" + (" (log scale)" if log else ""))
    _epoch_axis(ax)
    _mark_blowups(ax, diverged)
    handles: list[Any] = []
    legend_title, entries = _entries(grouped)
    if every:
        handles = [
            Line2D([], [], color=c, label=entry) for entry, c in zip(entries, colors, strict=True)
        ]
        seeds = max(len(m) for _, m in grouped)
        if seeds > 1:
            handles.append(
                Patch(color="grey", alpha=0.3, label="seeds: mean, band = lowest to highest")
            )
        if len(styles) > 1:
            handles += [
                Line2D([], [], color="grey", linestyle=st, label=k) for k, st in styles.items()
            ]
        if diverged:
            handles.append(
                Line2D([], [], color="grey", marker="X", ls="none", label="blew up (off the scale)")
            )
    _legend_outside(ax.figure, handles, legend_title)  # type: ignore[arg-type]
    return {
        "log_scale": log,
        "diverged": [{k: v for k, v in d.items() if k != "c"} for d in diverged],
        "groups": [{"label": g, "runs": [records[i]["id"] for i in m]} for g, m in grouped],
        "y_range": y_range,
        "title": "loss per epoch",
    }


def _draw_group(ax: Axes, series: list[dict[int, float]], style: str, color: Any) -> None:
    """One run's curve, or several seeds' mean with the band between their lowest and highest."""
    if len(series) == 1:
        xs = sorted(series[0])
        ys = [series[0][x] for x in xs]
        ax.plot(xs, ys, style, color=color, marker="." if len(xs) < 30 else None)
        return
    epochs = sorted({e for s in series for e in s})
    xs, mean, low, high = [], [], [], []
    for e in epochs:
        values = [s[e] for s in series if e in s]
        xs.append(e)
        mean.append(sum(values) / len(values))
        low.append(min(values))
        high.append(max(values))
    ax.plot(xs, mean, style, color=color)
    if style == "-":
        ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)


def _mark_blowups(ax: Axes, diverged: list[dict[str, Any]]) -> None:
    """An X atop the axes at the epoch each run blew up (its loss is off the scale), and one
    label per epoch, stacked so that labels never overlap."""
    top = ax.get_xaxis_transform()
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for d in diverged:
        by_epoch.setdefault(d["epoch"], []).append(d)
    for row, (epoch, runs) in enumerate(sorted(by_epoch.items())):
        colors = list(dict.fromkeys(d["c"] for d in runs))  # one X per group: seeds share it
        for k, color in enumerate(colors):
            ax.plot(
                [epoch],
                [0.97 - 0.035 * k],
                marker="X",
                markersize=10,
                color=color,
                ls="none",
                transform=top,
                clip_on=False,
            )
        count = f" ({len(runs)} runs)" if len(runs) > 1 else ""
        ax.annotate(
            f"blew up at epoch {epoch}{count}",
            (epoch, 0.97),
            xycoords=top,
            textcoords="offset points",
            xytext=(8, -4 - 12 * row),
            fontsize="small",
            color=runs[0]["c"] if len(runs) == 1 else "black",
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
    grouped = groups(records)
    colors = palette(len(grouped))
    color_of = {i: colors[g] for g, (_, members) in enumerate(grouped) for i in members}
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
            ax.plot(xs, ys, styles[layers.index(layer) % len(styles)], color=color_of[i], lw=1.2)
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
    legend_title, entries = _entries(grouped)
    handles = [
        Line2D([], [], color=c, label=entry + (f" ({len(m)} seeds)" if len(m) > 1 else ""))
        for entry, (_, m), c in zip(entries, grouped, colors, strict=True)
    ]
    handles += [
        Line2D([], [], color="grey", linestyle=styles[j % len(styles)], label=f"layer {name}")
        for j, name in enumerate(layers)
    ]
    _legend_outside(fig, handles, legend_title)
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
    from matplotlib.lines import Line2D

    drawn = []
    colors = palette(len(result["pairs"]))
    handles = []
    for i, pair in enumerate(result["pairs"]):
        label = f"{pair['b']['label']} vs {pair['a']['label']}"
        handles.append(Line2D([], [], color=colors[i], label=label))
        for seed_pair in pair["seeds"]:
            points = [
                (e["epoch"], e["distance"])
                for e in seed_pair.get("epochs", [])
                if _finite(e["distance"])
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, color=colors[i], alpha=1.0 if len(pair["seeds"]) == 1 else 0.6)
                drawn.append(
                    {"pair": label, "seed": seed_pair["seed"], "epochs": xs, "distance": ys}
                )
    ax.set_ylabel("relative weight distance |a - b| / max(|a|, |b|)")
    _epoch_axis(ax)
    _legend_outside(ax.figure, handles)  # type: ignore[arg-type]
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
            from weightlab.text import did_you_mean

            raise UsageError(
                f"--layer {layer!r}: run {record['id']} has no such layer"
                f"{did_you_mean(layer, names)} (layers: {', '.join(names)})"
            )
        return layer
    return next((s["name"] for s in specs if s["use_bias"]), None)


def _bias_panels(
    store: Store, records: list[dict[str, Any]], layer: str | None
) -> tuple[list[tuple[int, str, Any, list[int]]], list[tuple[int, str]]]:
    """The runs to draw biases of, at most :data:`MAX_PANELS`, one per group of seeds first;
    and those that have none to draw, with why: ``(panels, without)``."""
    grouped = groups(records)
    label_of = {i: g for g, members in grouped for i in members}
    order = [m[0] for _, m in grouped] + [i for _, m in grouped for i in m[1:]]
    panels: list[tuple[int, str, Any, list[int]]] = []
    without: list[tuple[int, str]] = []
    for i in order:
        r = records[i]
        chosen = _bias_layer(store, r, layer)
        epochs = store.snapshot_epochs(r["id"])
        values = None
        if chosen is not None and epochs:
            with contextlib.suppress(UsageError):  # no such variable: said in its place
                values = store.trajectory(r["id"], f"{chosen}/bias")  # (epochs, units)
        if values is None:
            if not epochs:
                why = "no snapshots (snapshots.every: never)"
            elif chosen is None:
                why = "no layer has a bias (use_bias: false)"
            else:
                why = f"layer {chosen} has no bias (use_bias: false)"
            without.append((i, why))
        elif len(panels) < MAX_PANELS:
            seed = f", seed {r.get('seed')}" if len(dict(grouped)[label_of[i]]) > 1 else ""
            panels.append((i, label_of[i] + seed, (chosen, values), epochs))
    return panels, without


def _biases(
    fig: Figure,
    records: list[dict[str, Any]],
    panels: list[tuple[int, str, Any, list[int]]],
    without: list[tuple[int, str]],
) -> dict[str, Any]:
    """One panel per run: every bias value of one layer over the snapshot epochs; the runs with
    no bias to draw share one panel that names them."""
    n = len(panels) + bool(without)
    cols = min(n, 3)
    axes = fig.subplots(math.ceil(n / cols), cols, squeeze=False).ravel()
    drawn: dict[str, Any] = {}
    for ax, (i, title, (chosen, values), epochs) in zip(axes, panels, strict=False):
        ax.set_title(title, fontsize="medium")
        _epoch_axis(ax)
        units = values.shape[1]
        for u in range(min(units, MAX_UNITS)):
            ax.plot(epochs, values[:, u], linewidth=1)
        more = f", first {MAX_UNITS} of {units} units" if units > MAX_UNITS else ""
        ax.set_ylabel(f"{chosen} bias values{more}")
        ax.axhline(0.0, color="black", linewidth=0.5)
        drawn[records[i]["id"]] = {"layer": chosen, "units": units, "epochs": len(epochs)}
    if without:
        ax = axes[len(panels)]
        names = labels(records)
        reasons = list(dict.fromkeys(why for _, why in without))
        listed = [names[i] for i, _ in without[:6]]
        if len(without) > 6:
            listed.append(f"and {len(without) - 6} more")
        ax.text(
            0.5,
            0.5,
            "\n".join(reasons) + "\n\n" + "\n".join(listed),
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize="small",
        )
        ax.set_title(f"{len(without)} run{'s' * (len(without) != 1)} without biases")
        ax.set_xticks([])
        ax.set_yticks([])
        for i, _ in without:
            drawn[records[i]["id"]] = None
    for ax in axes[n:]:
        ax.set_visible(False)
    experiments = ", ".join(sorted({r["experiment"] for r in records}))
    title = f"{experiments}: bias values per epoch, one line per unit"
    with_bias = len(records) - len(without)
    if len(panels) < with_bias:
        title += f" ({len(panels)} of the {with_bias} runs with biases, one per setting first"
        title += f"; {len(records)} runs in all)"
    else:
        title += f" ({len(records)} run{'s' * (len(records) != 1)})"
    return {"biases": drawn, "title": title, "counted": True}
