"""Rich tables and JSON for every command, from plain data. Only this module builds rich objects."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from weightlab import jsonio

STATUS_STYLE = {
    "completed": "green",
    "diverged": "bold yellow",
    "failed": "bold red",
    "interrupted": "magenta",
    "running": "cyan",
}


def num(v: Any, digits: int = 4) -> str:
    """Compact number: 4 significant digits, '-' for missing, 'nan'/'inf' as such."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.{digits}g}"
    return str(v)


def status(s: str) -> Text:
    return Text(s, style=STATUS_STYLE.get(s, ""))


def short_key(key: str) -> str:
    """``model.layers.0.units`` -> ``layers.0.units``; ``train.optimizer`` -> ``optimizer``."""
    parts = key.split(".")
    return ".".join(parts[1:]) if len(parts) > 1 else key


def abbreviate(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def when(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return iso
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def ago(iso: str | None, now: datetime | None = None) -> str:
    """``2026-11-29T08:33:35Z`` -> ``3m ago`` (``now`` for tests)."""
    if not iso:
        return "-"
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    seconds = ((now or datetime.now(then.tzinfo)) - then).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def _table(**kwargs: Any) -> Table:
    return Table(
        header_style="bold",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        **kwargs,
    )


def as_json(obj: Any) -> str:
    return jsonio.dumps(obj, indent=2)


def cell_text(cell: dict[str, Any]) -> str:
    """``{"model.kernel_initializer": "zeros"}`` -> ``kernel_init=zeros``."""
    from weightlab.config import short_value

    return ", ".join(
        f"{short_key(k).replace('_initializer', '_init')}={short_value(v)}" for k, v in cell.items()
    )


# ---- ls ------------------------------------------------------------------------------------------


def runs_list(records: list[dict[str, Any]], store: str, width: int = 80) -> RenderableType:
    """The `ls` table, fitted to ``width``.

    Columns that would repeat one value on every row (experiment, seed) move into the title, and
    the start time is read from the id itself (``yymmdd-hhmmss`` UTC), so that the settings that
    tell runs apart get the room.
    """
    if not records:
        return Text(
            f"No runs in {store} yet. Start one: weightlab run configs/bias-vs-no-bias.yaml"
        )
    rows = []
    for r in records:
        final = r.get("final") or {}
        rows.append(
            {
                "id": r["id"],
                "experiment": r["experiment"],
                "settings": cell_text(r.get("cell") or {}),
                "seed": num(r.get("seed")),
                "status": r["status"],
                "epochs": f"{r.get('epochs_completed', 0)}/{r.get('epochs', '?')}",
                "loss": num(final.get("loss"), 3),
            }
        )
    title = f"{len(records)} run{'s' if len(records) != 1 else ''}"
    columns = ["id", "experiment", "settings", "seed", "status", "epochs", "loss"]
    for c, label in (("experiment", " of {}"), ("seed", ", seed {}")):
        values = {row[c] for row in rows}
        if len(values) == 1:
            columns.remove(c)
            title += label.format(values.pop())
    title += f", in {store} (ids begin with the UTC start time)"
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}
    flexible = [c for c in ("experiment", "settings") if c in columns]
    spare = (
        width - 1 - 2 * (len(columns) - 1) - sum(widths[c] for c in columns if c not in flexible)
    )
    if "experiment" in flexible:
        widths["experiment"] = max(10, min(widths["experiment"], spare * 2 // 5))
        spare -= widths["experiment"]
    widths["settings"] = max(8, min(widths["settings"], spare))
    table = _table(title=title)
    for c in columns:
        table.add_column(
            c,
            width=widths[c],
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if c in ("seed", "epochs", "loss") else "left",
        )
    for row in rows:
        table.add_row(*[status(row[c]) if c == "status" else row[c] for c in columns])
    return table


# ---- compare / run summary -----------------------------------------------------------------------


def comparison(result: dict[str, Any], title: str = "") -> RenderableType:
    """The side-by-side table; narrow enough for 80 columns with a couple of differing keys."""
    keys = result["keys"]
    rows = result["runs"]
    metric_names: list[str] = []
    for row in rows:
        metric_names += [
            m for m in row["metrics"] if m not in metric_names and not m.startswith("val_")
        ]
    show_epochs = any(r["epochs"] != r["of_epochs"] for r in rows)
    # Columns that would only repeat another one are left out, to stay within 80 columns.
    show_best = any(r["best_epoch"] not in (None, r["epochs"]) for r in rows)
    show_val = any(r["val_loss"] is not None for r in rows)
    table = _table(title=title or None)
    table.add_column("run", no_wrap=True)
    for k in keys:
        table.add_column(short_key(k), no_wrap=True, max_width=18, overflow="ellipsis")
    table.add_column("status", no_wrap=True)
    if show_epochs:
        table.add_column("epochs", justify="right")
    numbers = [
        "loss",
        *(["val_loss"] if show_val else []),
        *(["best@ep"] if show_best else []),
        *metric_names,
        "W/W0",
        "|b|",
    ]
    for name in numbers:
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        state = status(row["status"])
        if row["status"] == "diverged":
            state = Text(f"diverged@{row['diverged_at_epoch']}", style=STATUS_STYLE["diverged"])
        best = (
            "-" if row["best_loss"] is None else f"{num(row['best_loss'], 3)}@{row['best_epoch']}"
        )
        table.add_row(
            row["id"][-4:] if len(rows) > 1 else row["id"],
            *[row["settings"][k] for k in keys],
            state,
            *([f"{row['epochs']}/{row['of_epochs']}"] if show_epochs else []),
            num(row["loss"], 3),
            *([num(row["val_loss"], 3)] if show_val else []),
            *([best] if show_best else []),
            *[num(row["metrics"].get(m), 3) for m in metric_names],
            num(row["kernel_growth"], 3),
            num(row["bias_norm"], 3),
        )
    parts: list[RenderableType] = [table]
    legend = (
        "best@ep = lowest loss and its epoch; " if show_best else ""
    ) + "W/W0 = growth of the kernels' L2 norm since epoch 0; |b| = L2 norm of all biases"
    if len(rows) > 1:
        legend = "run = last 4 characters of the run id; " + legend
    parts.append(Text(legend, style="dim"))
    for f in result["findings"]:
        parts.append(Text("• " + f))
    return Group(*parts)


# ---- show ----------------------------------------------------------------------------------------


def run_detail(detail: dict[str, Any], config: dict[str, Any]) -> RenderableType:
    r = detail["run"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("run", r["id"])
    head.add_row("experiment", f"{r['experiment']}  (batch {r['batch']})")
    head.add_row(
        "status",
        status(r["status"])
        if r["status"] != "diverged"
        else Text(f"diverged at epoch {r['diverged_at_epoch']}", style=STATUS_STYLE["diverged"]),
    )
    if r.get("cell"):
        head.add_row("settings", cell_text(r["cell"]))
    head.add_row("seed", str(r["seed"]))
    head.add_row("started", f"{when(r.get('started_at'))} (local time), pid {r.get('pid')}")
    head.add_row("model", model_text(config))
    head.add_row("train", train_text(config))
    info = r.get("data") or {}
    data_line = (
        f"{info.get('kind', '?')}: {info.get('train_samples', '?')} train / "
        f"{info.get('val_samples', '?')} validation samples, {info.get('features', '?')} feature"
        f"{'' if info.get('features') == 1 else 's'}"
    )
    if "w_true" in info:
        data_line += f"; true w = {[round(w, 4) for w in info['w_true']]}, b = {info['b_true']:g}"
    head.add_row("data", data_line)
    timing = r.get("timing") or {}
    head.add_row(
        "time",
        f"{num(timing.get('train_seconds'), 3)} s training, "
        f"{num(timing.get('snapshot_seconds'), 3)} s snapshots "
        f"({(r.get('snapshots') or {}).get('count', 0)} files)",
    )
    if r.get("error"):
        head.add_row("error", Text(r["error"], style="red"))

    table = _table()
    table.add_column("epoch", justify="right")
    for m in detail["metrics"]:
        table.add_column(m, justify="right")
    for v in detail["variables"]:
        layer, var = v.rsplit("/", 1)
        table.add_column(f"{layer}\n|{'W' if var == 'kernel' else var}|", justify="right")
    table.add_column("dist\ninit", justify="right")
    table.add_column("change", justify="right")
    for row in detail["epochs"]:
        table.add_row(
            str(row["epoch"]),
            *[num(row["metrics"].get(m)) for m in detail["metrics"]],
            *[num(row["norms"].get(v)) for v in detail["variables"]],
            num(row["dist_init"]),
            num(row["delta"]),
        )
    note = Text(
        "|W|, |bias| = L2 norm of the layer's kernel / bias; dist init = L2 distance of "
        "all weights from epoch 0; change = L2 change since the previous epoch",
        style="dim",
    )
    return Group(head, Text(""), table, note)


def model_text(config: dict[str, Any]) -> str:
    from weightlab.config import short_value

    parts = []
    for layer in config["model"]["layers"]:
        act = short_value(layer["activation"]) if layer["activation"] else "linear"
        bias = "" if layer["use_bias"] else ", no bias"
        parts.append(f"{layer['name']}({layer['units']}, {act}{bias})")
    first = config["model"]["layers"][0]
    return (
        " → ".join(parts) + f"; kernel init {short_value(first['kernel_initializer'])}, "
        f"bias init {short_value(first['bias_initializer'])}"
    )


def train_text(config: dict[str, Any]) -> str:
    from weightlab.config import short_value

    t = config["train"]
    return (
        f"{short_value(t['optimizer'])}, loss {short_value(t['loss'])}, {t['epochs']} epochs, "
        f"batch {t['batch_size']}"
    )


# ---- validate ------------------------------------------------------------------------------------


def validated(path: str, describe: str, keras_checked: bool) -> Text:
    text = Text("✓ ", style="green")
    text.append(f"{path}: valid; {describe}")
    if not keras_checked:
        text.append(" (Keras names not resolved; add --keras)", style="dim")
    return text
