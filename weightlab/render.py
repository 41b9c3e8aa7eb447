"""Rich tables and JSON for every command, from plain data. Only this module builds rich objects."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from weightlab import jsonio

STATUS_STYLE = {
    "completed": "green",
    "diverged": "bold yellow",
    "failed": "bold red",
    "interrupted": "magenta",
    "running": "cyan",
    "crashed": "bold red",
    "corrupt": "bold red",
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


@dataclass
class Col:
    """One column of a fitted table: header, cells, and how it may give way when space is short.

    ``flex`` columns (free text such as settings) shrink with an ellipsis down to ``min_width``;
    when the table still does not fit, columns are dropped, lowest ``keep`` first. A flex column
    of setting values (:func:`setting_col`) first trades its text for a compact form that keeps
    what tells the rows apart (``compact``), and cuts the shared part of a value before the part
    that differs (``cut``).
    """

    header: str
    cells: list[str | Text]
    right: bool = False
    flex: bool = False
    keep: int = 9
    min_width: int = 8
    compact: Col | None = None
    cut: Callable[[int], list[str]] | None = None
    legend: list[str] = field(default_factory=list)

    @property
    def natural(self) -> int:
        widths = [len(line) for line in self.header.split("\n")]
        widths += [len(c.plain if isinstance(c, Text) else c) for c in self.cells]
        return max(widths)


# Keras arguments that settings show most, abbreviated when a column is short of room; other keys
# of several words go by their initials (beta_1 -> b1).
ABBREVIATIONS = {
    "learning_rate": "lr",
    "stddev": "sd",
    "value": "v",
    "momentum": "mom",
    "epsilon": "eps",
    "minval": "min",
    "maxval": "max",
    "distribution": "dist",
}


def abbreviation(key: str) -> str:
    if key in ABBREVIATIONS:
        return ABBREVIATIONS[key]
    parts = [p for p in key.split("_") if p]
    return "".join(p[0] for p in parts) if len(parts) > 1 else key


def _split_args(text: str) -> list[str]:
    """``a=1, b=[1, 2]`` -> ``["a=1", "b=[1, 2]"]``: commas inside brackets stay."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return [a for a in out if a]


_CALL = re.compile(r"^([A-Za-z_][\w.]*)\((.*)\)$")


def _call(value: str) -> tuple[str, list[tuple[str, str]]] | None:
    """``random_normal(stddev=0.01)`` -> ``("random_normal", [("stddev", "0.01")])``."""
    m = _CALL.match(value)
    if not m:
        return None
    args = []
    for a in _split_args(m.group(2)):
        k, eq, v = a.partition("=")
        if not eq:
            return None
        args.append((k, v))
    return m.group(1), args


def compact_values(header: str, values: list[str]) -> tuple[str, list[str], list[str]]:
    """What tells setting values apart, in fewer characters: ``(header, values, legend)``.

    What every value shares is cut and said once in the legend (``optimizer = sgd(lr=…)``); a
    column whose values differ in one argument only becomes that argument's column (``lr`` with
    ``0.1``); argument names are abbreviated (``lr = learning_rate``).
    """
    calls = [_call(v) for v in values]
    legend: list[str] = []
    used: dict[str, str] = {}

    def short(k: str) -> str:
        a = abbreviation(k)
        if a != k:
            used[a] = k
        return a

    if calls and all(calls):
        names = {c[0] for c in calls if c}
        arg_sets = [dict(c[1]) for c in calls if c]
        keys = list(dict.fromkeys(k for a in arg_sets for k in a))
        shared = [k for k in keys if len({a.get(k) for a in arg_sets}) == 1 and k in arg_sets[0]]
        differ = [k for k in keys if k not in shared]
        if len(names) == 1 and len(differ) == 1:
            (name,) = names
            (k,) = differ
            inner = ", ".join([*(f"{short(s)}={arg_sets[0][s]}" for s in shared), f"{k}=…"])
            legend.append(f"{short(k)} = {header} {name}({inner})")
            cells = [a.get(k, "-") for a in arg_sets]
            head = short(k)
            used.pop(head, None)
            return head, cells, legend + [f"{a} = {k}" for a, k in used.items()]
        if len(names) == 1:
            (name,) = names
            inner = ", ".join([*(f"{short(s)}={arg_sets[0][s]}" for s in shared), "…"])
            legend.append(f"{header} = {name}({inner})")
            cells = [", ".join(f"{short(k)}={a[k]}" for k in differ if k in a) for a in arg_sets]
            return header, cells, legend + [f"{a} = {k}" for a, k in used.items()]
    cells = []
    for v, c in zip(values, calls, strict=True):
        if c is None:
            cells.append(v)
        else:
            inner = ", ".join(f"{short(k)}={a}" for k, a in c[1])
            cells.append(f"{c[0]}({inner})" if inner else c[0])
    return header, cells, [f"{a} = {k}" for a, k in used.items()]


def cut_values(values: list[str], width: int) -> list[str]:
    """Values no wider than ``width`` that keep their arguments: the name is cut first
    (``random_normal(sd=20)`` -> ``rando…(sd=20)``), as the arguments tell apart the rows that
    share a name."""
    parsed: list[tuple[str, tuple[str, str, int] | None]] = []
    for v in values:
        key, eq, rest = v.partition("=") if re.match(r"^\w+=\w+\(", v) else ("", "", v)
        c = _call(rest) if len(v) > width else None
        if c is None or not c[1]:
            parsed.append((v, None))
            continue
        args = "(" + ", ".join(f"{k}={a}" for k, a in c[1]) + ")"
        parsed.append((key + eq, (c[0], args, width - len(args) - 1 - len(key + eq))))
    room: dict[str, int] = {}  # one cut per name, so that the rows that share it look alike
    for _, cut in parsed:
        if cut:
            room[cut[0]] = min(room.get(cut[0], cut[2]), cut[2])
    out = []
    for head, cut in parsed:
        if cut is None:
            out.append(head)
        else:
            name, args, _ = cut
            n = room[name]
            out.append(head + (f"{name[:n]}…{args}" if n >= 1 else f"…{args}"))
    return out


def settings_col(cells: list[dict[str, Any]], **kwargs: Any) -> Col:
    """``ls``'s settings column: each run's ``key=value`` pairs; short of room, the values of
    each key keep what tells them apart (:func:`compact_values`) and the keys are abbreviated
    once in the legend (``ki = kernel_initializer``)."""
    from weightlab.text import short_value

    full = [", ".join(f"{short_setting(k)}={short_value(v)}" for k, v in c.items()) for c in cells]
    keys = list(dict.fromkeys(k for c in cells for k in c))
    legend: list[str] = []
    texts: dict[str, list[str]] = {}
    heads: dict[str, str] = {}
    for k in keys:
        rows = [short_value(c[k]) for c in cells if k in c]
        head, values, notes = compact_values(short_setting(k), rows)
        legend += [n for n in notes if n not in legend]
        if head == short_setting(k) and len(head) > 8 and abbreviation(head) != head:
            legend.append(f"{abbreviation(head)} = {k.rsplit('.', 1)[-1]}")
            head = abbreviation(head)
        texts[k], heads[k] = values, head
    seen = dict.fromkeys(keys, 0)
    short_cells = []
    for c in cells:
        parts = []
        for k in c:
            parts.append(f"{heads[k]}={texts[k][seen[k]]}")
            seen[k] += 1
        short_cells.append(", ".join(parts))
    compact = Col("settings", list(short_cells), flex=True, legend=legend, **kwargs)
    compact.cut = lambda w: cut_values(short_cells, w)
    return Col("settings", list[str | Text](full), flex=True, compact=compact, **kwargs)


def setting_col(header: str, values: list[str], **kwargs: Any) -> Col:
    """A flex column of setting values that fits the part of each value that differs."""
    head, cells, legend = compact_values(header, values)
    compact = None
    if sum(map(len, cells)) < sum(map(len, values)) or head != header:
        compact = Col(head, list(cells), flex=True, legend=legend, cut=None, **kwargs)
        compact.cut = lambda w: cut_values(cells, w)
    col = Col(header, list(values), flex=True, compact=compact, **kwargs)
    col.cut = lambda w: cut_values(values, w)
    return col


def _fit_widths(cols: list[Col], width: int, gap: int = 2) -> tuple[dict[int, int], int]:
    """Natural widths, flex columns shrunk as needed; and how much is still too wide."""
    widths = {i: c.natural for i, c in enumerate(cols)}
    excess = sum(widths.values()) + gap * (len(widths) - 1) - width
    for i, c in enumerate(cols):
        if excess <= 0:
            break
        if c.flex:
            floor = min(widths[i], max(c.min_width, len(c.header)))
            give = min(widths[i] - floor, excess)
            widths[i] -= give
            excess -= give
    return widths, excess


def fitted_table(
    columns: list[Col],
    width: int,
    title: str | None = None,
) -> tuple[DrawnTable, list[str]]:
    """A table of ``columns`` no wider than ``width``; returns it and the headers left out.

    Rich, given a table that cannot fit, silently squeezes or drops columns; here the choice is
    explicit: setting values give up what they share first (:func:`setting_col`), then free text
    is cut, then the least important numbers are left out, and the table says so. A column is
    never left out while a cut one could make room for it.
    """
    cols = list(columns)
    if sum(c.natural for c in cols) + 2 * (len(cols) - 1) > width:
        cols = [c.compact if c.compact is not None else c for c in cols]
    order = list(cols)
    dropped: list[Col] = []
    # Two spaces between columns; one, rather than leave a column out.
    gap = 2 if _fit_widths(cols, width)[1] <= 0 else 1
    while True:
        widths, excess = _fit_widths(cols, width, gap)
        if excess <= 0 or not any(c.keep < 9 for c in cols):
            break
        victim = min((c for c in cols if c.keep < 9), key=lambda c: c.keep)
        dropped.append(victim)
        cols = [c for c in cols if c is not victim]
    for victim in sorted(dropped, key=lambda c: -c.keep):  # back, where the cut columns allow
        trial = [c for c in order if c is victim or any(c is k for k in cols)]
        if _fit_widths(trial, width, gap)[1] <= 0:
            cols = trial
            dropped = [d for d in dropped if d is not victim]
    if gap == 1 and _fit_widths(cols, width)[1] <= 0:
        gap = 2  # what is left fits with the usual spacing
    widths, _ = _fit_widths(cols, width, gap)
    drawn = []
    for i, c in enumerate(cols):
        if c.cut is not None and widths[i] < c.natural:
            c = Col(c.header, list(c.cut(widths[i])), c.right, c.flex, c.keep, legend=c.legend)
        drawn.append(c)
    table = DrawnTable(drawn, [widths[i] for i in range(len(drawn))], title, gap=gap)
    table.legend = [entry for c in drawn for entry in c.legend]
    return table, [c.header.replace("\n", " ") for c in dropped]


class DrawnTable:
    """A fitted table drawn straight as segments, in rich's SIMPLE_HEAD look.

    Rich's own Table measures and wraps every cell, which `ls` over many runs cannot afford (the
    figure: docs/benchmarks.md, "Figures behind the code"). The widths here are already fitted,
    so each cell is only cut (with an ellipsis) or padded.
    """

    def __init__(
        self,
        cols: list[Col],
        widths: list[int],
        title: str | None = None,
        header: bool = True,
        gap: int = 2,
    ):
        self.cols, self.widths, self.title, self.header = cols, widths, title, header
        self.gap = gap
        self.legend: list[str] = []  # the abbreviations and shared parts of its setting columns

    @property
    def width(self) -> int:
        return sum(self.widths) + self.gap * (len(self.widths) - 1)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = min(self.width, options.max_width)
        if self.title:
            yield from console.render(
                Text(self.title, style="table.title"), options.update(width=width)
            )
        if self.header:
            heads = [c.header.split("\n") for c in self.cols]
            height = max((len(h) for h in heads), default=0)
            for line in range(height):  # a short header sits on the last header line
                yield from self._line([[""] * (height - len(h)) + h for h in heads], line, "bold")
            yield Segment("─" * width)
            yield Segment.line()
        for row in range(len(self.cols[0].cells) if self.cols else 0):
            yield from self._line([c.cells for c in self.cols], row)

    def _line(self, cells: list[list[Any]], row: int, style: str = "") -> Iterator[Segment]:
        plain: list[str] = []  # unstyled cells are joined into one segment: far fewer to render
        for i, (col, width) in enumerate(zip(self.cols, self.widths, strict=True)):
            cell = cells[i][row]
            text = cell.plain if isinstance(cell, Text) else str(cell)
            size = len(text) if text.isascii() else cell_len(text)
            if size > width:
                text = set_cell_size(text, width - 1) + "…"
                size = width
            text = " " * (width - size) + text if col.right else text + " " * (width - size)
            if i:
                plain.append(" " * self.gap)
            cell_style = _style(cell, style)
            if cell_style is None:
                plain.append(text)
                continue
            if plain:
                yield Segment("".join(plain))
                plain = []
            yield Segment(text, cell_style)
        yield Segment("".join(plain) + "\n")


def _style(cell: Any, default: str) -> Style | None:
    if isinstance(cell, Text) and cell.style:
        return Style.parse(cell.style) if isinstance(cell.style, str) else cell.style
    return Style.parse(default) if default else None


def hidden_note(dropped: list[str]) -> Text | None:
    if not dropped:
        return None
    return Text(
        f"not shown for lack of width: {', '.join(dropped)} (widen the terminal, or "
        "use --format json)",
        style="dim",
    )


def as_json(obj: Any) -> str:
    return jsonio.dumps(obj, indent=2)


def short_setting(key: str) -> str:
    """``model.kernel_initializer`` -> ``kernel_init``: a column header or a label for a setting."""
    return short_key(key).replace("_initializer", "_init")


def cell_text(cell: dict[str, Any]) -> str:
    """``{"model.kernel_initializer": "zeros"}`` -> ``kernel_init=zeros``."""
    from weightlab.text import short_value

    return ", ".join(f"{short_setting(k)}={short_value(v)}" for k, v in cell.items())


# ---- ls ------------------------------------------------------------------------------------------


def runs_list(records: list[dict[str, Any]], store: str, width: int = 80) -> RenderableType:
    """The `ls` table, fitted to ``width``.

    Columns that would repeat one value on every row (experiment, seed) move into the title, and
    the start time is read from the id itself (``yymmdd-hhmmss`` UTC), so that the settings that
    tell runs apart get the room. Ids are never cut: people type them.
    """
    if not records:
        return Text(
            f"No runs in {store} yet. Start one: weightlab run configs/bias-vs-no-bias.yaml"
        )
    title = f"{len(records)} run{'s' if len(records) != 1 else ''}"
    cols = [Col("id", [r["id"] for r in records])]
    for header, values, label in (
        ("experiment", [r["experiment"] for r in records], " of {}"),
        ("seed", [num(r.get("seed")) for r in records], ", seed {}"),
    ):
        if len(set(values)) == 1:
            title += label.format(values[0])
        elif header == "experiment":
            cols.append(Col(header, list(values), flex=True, min_width=10))
        else:
            cols.append(Col(header, list(values), right=True, keep=3))
    cols.insert(
        2 if len(cols) > 1 and cols[1].header == "experiment" else 1,
        settings_col([r.get("cell") or {} for r in records]),
    )
    cols.append(Col("status", [status(r["status"]) for r in records]))
    cols.append(
        Col(
            "epochs",
            [f"{r.get('epochs_completed', 0)}/{r.get('epochs', '?')}" for r in records],
            right=True,
            keep=2,
        )
    )
    cols.append(
        Col(
            "loss",
            [num((r.get("final") or {}).get("loss"), 3) for r in records],
            right=True,
            keep=4,
        )
    )
    title += f", in {store} (ids begin with the UTC start time)"
    table, dropped = fitted_table(cols, width, title)
    parts: list[RenderableType] = [table]
    note = hidden_note(dropped)
    if note:
        parts.append(note)
    if table.legend:
        parts.append(Text("; ".join(table.legend), style="dim"))
    parts += damage_notes(records)
    return Group(*parts) if len(parts) > 1 else table


def damage_notes(records: list[dict[str, Any]]) -> list[Text]:
    """One line per corrupt run with the reason (the table has no room for it)."""
    return [
        Text(f"• {r['id']}: corrupt: {r['error']}", style=STATUS_STYLE["corrupt"])
        for r in records
        if r["status"] == "corrupt"
    ]


def check_report(report: dict[str, Any]) -> RenderableType:
    """``weightlab check``: one line per finding, then the verdict."""
    lines: list[RenderableType] = []
    for f in report["findings"]:
        who = f"{f['run']}: " if f["run"] else ""
        style = "yellow" if f["kind"] in ("crashed", "leftover", "note") else "red"
        lines.append(Text(f"{f['kind']:<12} {who}{f['detail']}", style=style))
    runs = f"{report['runs']} run{'s' if report['runs'] != 1 else ''}"
    if report["problems"]:
        verdict = Text(f"{report['problems']} problem(s) in {runs} in {report['store']}")
        verdict.stylize("bold red")
    else:
        verdict = Text(f"✓ {runs} in {report['store']}: every file reads back", style="green")
    if report["repaired"]:
        verdict.append("; index rebuilt from the run directories")
    return Group(*lines, verdict)


# ---- compare / run summary -----------------------------------------------------------------------


def comparison(result: dict[str, Any], title: str = "", width: int = 80) -> RenderableType:
    """The side-by-side table fitted to ``width``; columns that only repeat another are left out."""
    keys = result["keys"]
    rows = result["runs"]
    metric_names: list[str] = []
    for row in rows:
        metric_names += [
            m for m in row["metrics"] if m not in metric_names and not m.startswith("val_")
        ]
    show_best = any(r["best_epoch"] not in (None, r["epochs"]) for r in rows)
    show_val = any(r["val_loss"] is not None for r in rows)

    def state(row: dict[str, Any]) -> Text:
        text = row["status"]
        if row["status"] == "diverged":
            text = f"diverged@{row['diverged_at_epoch']}"
        elif row["epochs"] != row["of_epochs"]:
            text = f"{text}@{row['epochs']}/{row['of_epochs']}"
        return Text(text, style=STATUS_STYLE.get(row["status"], ""))

    def best(row: dict[str, Any]) -> str:
        return (
            "-" if row["best_loss"] is None else f"{num(row['best_loss'], 3)}@{row['best_epoch']}"
        )

    cols = [Col("run", [r["id"][-4:] if len(rows) > 1 else r["id"] for r in rows])]
    cols += [setting_col(short_setting(k), [r["settings"][k] for r in rows]) for k in keys]
    cols.append(Col("status", [state(r) for r in rows]))
    cols.append(Col("loss", [num(r["loss"], 3) for r in rows], right=True))
    if show_val:
        cols.append(Col("val_loss", [num(r["val_loss"], 3) for r in rows], right=True, keep=3))
    if show_best:
        cols.append(Col("best@ep", [best(r) for r in rows], right=True, keep=2))
    cols += [
        Col(m, [num(r["metrics"].get(m), 3) for r in rows], right=True, keep=1)
        for m in metric_names
    ]
    cols.append(Col("|W|", [num(r["kernel_norm"], 3) for r in rows], right=True, keep=5))
    cols.append(Col("W/W0", [num(r["kernel_growth"], 3) for r in rows], right=True, keep=4))
    cols.append(Col("|b|", [num(r["bias_norm"], 3) for r in rows], right=True, keep=5))
    table, dropped = fitted_table(cols, width, title or None)
    shown = {c.header for c in cols} - set(dropped)
    legend = [
        *table.legend,
        "run = last 4 characters of the run id" if len(rows) > 1 else "",
        "best@ep = lowest loss and its epoch" if "best@ep" in shown else "",
        "|W|, |b| = L2 norm of all kernels, of all biases" if "|W|" in shown else "",
        "W/W0 = |W| / |W| at epoch 0" if "W/W0" in shown else "",
    ]
    parts: list[RenderableType] = [table]
    note = hidden_note(dropped)
    if note:
        parts.append(note)
    parts.append(Text("; ".join(x for x in legend if x), style="dim"))
    parts += [Text("• " + f) for f in result["findings"]]
    return Group(*parts)


# ---- show ----------------------------------------------------------------------------------------


def status_line(r: dict[str, Any]) -> Text:
    """``diverged at epoch 2, batch 5: dense_1/kernel first`` / ``crashed: <why>`` / status."""
    s = r["status"]
    if s == "diverged":
        d = r.get("divergence") or {}
        text = f"diverged at epoch {r['diverged_at_epoch']}"
        if d.get("batch"):
            text += f", batch {d['batch']}"
        if d.get("variable"):
            first = "the loss" if d["variable"] == "loss" else d["variable"]
            text += f": {first} went non-finite first"
        return Text(text, style=STATUS_STYLE[s])
    if s in ("crashed", "corrupt", "interrupted", "failed") and r.get("error"):
        return Text(f"{s}: {r['error']}", style=STATUS_STYLE.get(s, ""))
    if s == "running":
        loss = (r.get("final") or {}).get("loss")
        text = f"running: epoch {r.get('epochs_completed', 0)} of {r.get('epochs', '?')}"
        return Text(text + (f", loss {num(loss)}" if loss is not None else ""), style="cyan")
    return status(s)


def followed(record: dict[str, Any]) -> RenderableType:
    """The end of ``show --follow``: how the run ended, then the legend of the table."""
    text = Text("run ended: " if record["status"] != "running" else "")
    text.append_text(status_line(record))
    loss = (record.get("final") or {}).get("loss")
    if record["status"] != "running":
        text.append(f"; {record.get('epochs_completed', 0)} of {record.get('epochs', '?')} epochs")
        if loss is not None:
            text.append(f", loss {num(loss)}")
    return Group(text, Text(SHOW_LEGEND, style="dim"))


def run_detail(
    detail: dict[str, Any], config: dict[str, Any], width: int = 80, *, follow: bool = False
) -> RenderableType:
    """``show``: the run's header, then its epochs. ``follow``: the legend is left for the end,
    after the rows that :class:`EpochRows` adds."""
    r = detail["run"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("run", r["id"])
    head.add_row("experiment", f"{r['experiment']}  (batch {r['batch']})")
    head.add_row("status", status_line(r))
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
        f"({(r.get('snapshots') or {}).get('count', 0)} snapshots)",
    )
    if r.get("error"):
        head.add_row("error", Text(r["error"], style="red"))

    rows = EpochRows(detail, width)
    parts: list[RenderableType] = [head, Text(""), rows.table]
    note = hidden_note(rows.dropped)
    if note:
        parts.append(note)
    if not follow:
        parts.append(Text(SHOW_LEGEND, style="dim"))
    return Group(*parts)


SHOW_LEGEND = (
    "|W|, |bias| = L2 norm of the layer's kernel / bias; dist init = L2 distance of all weights "
    "from epoch 0; change = L2 change since the previous epoch"
)


def _epoch_cols(detail: dict[str, Any]) -> list[Col]:
    epochs = detail["epochs"]
    cols = [Col("epoch", [str(e["epoch"]) for e in epochs], right=True)]
    for m in detail["metrics"]:
        # The loss matters most; validation and other metrics give way first.
        keep = 9 if m == "loss" else 3 if m == "val_loss" else 1
        cols.append(Col(m, [num(e["metrics"].get(m)) for e in epochs], right=True, keep=keep))
    for v in detail["variables"]:
        layer, var = v.rsplit("/", 1)
        header = f"{layer}\n|{'W' if var == 'kernel' else var}|"
        cols.append(Col(header, [num(e["norms"].get(v)) for e in epochs], right=True, keep=4))
    cols.append(Col("dist\ninit", [num(e["dist_init"]) for e in epochs], right=True, keep=6))
    cols.append(Col("change", [num(e["delta"]) for e in epochs], right=True, keep=5))
    return cols


class EpochRows:
    """The epoch table of ``show``, fitted once; ``--follow`` draws later rows in its columns."""

    def __init__(self, detail: dict[str, Any], width: int):
        self.table, dropped = fitted_table(_epoch_cols(detail), width)
        self.width = width
        self.headers = [c.header for c in self.table.cols]
        self.dropped = dropped
        self._left_out = set(dropped)

    def more(self, detail: dict[str, Any]) -> RenderableType:
        """``detail``'s rows in the same columns (widened where a number needs it); a table with
        its own header when the columns differ (the metrics arrive with epoch 1)."""
        cols = {c.header: c for c in _epoch_cols(detail)}
        others = [h for h in cols if h not in self.headers]
        same = all(h in cols for h in self.headers) and all(
            h.replace("\n", " ") in self._left_out for h in others
        )
        widths = [
            max(w, cols[h].natural) if h in cols else w
            for h, w in zip(self.headers, self.table.widths, strict=True)
        ]
        if not same or sum(widths) + self.table.gap * (len(widths) - 1) > self.width:
            fresh = EpochRows(detail, self.width)
            self.table, self.headers, self._left_out = fresh.table, fresh.headers, fresh._left_out
            return self.table
        self.table.widths = widths
        return DrawnTable([cols[h] for h in self.headers], widths, header=False, gap=self.table.gap)


def model_text(config: dict[str, Any]) -> str:
    from weightlab.text import short_value

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
    from weightlab.text import short_value

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


# ---- run: expectations and the Markdown summary (CI) ---------------------------------------------


def _unmet_line(u: dict[str, Any]) -> str:
    where = f"run {u['run']}" + (f" ({cell_text(u['cell'])})" if u["cell"] else "")
    return f"{where}: {u['key']} = {u['actual']}, expected {u['expected']}"


def expectations(report: dict[str, Any]) -> Text:
    """``✓ expect: ...`` or ``✗ expect: N unmet`` and one line per unmet expectation."""
    n, runs = len(report["expectations"]), report["runs"]
    if report["met"]:
        text = Text("✓ ", style="green")
        text.append(
            f"expect: {n} condition{'s' if n != 1 else ''} met by every run ({runs}): "
            + "; ".join(report["expectations"])
        )
        return text
    text = Text("✗ ", style="bold red")
    k = len(report["unmet"])
    text.append(
        f"expect: {k} unmet (of {n} condition{'s' if n != 1 else ''} × "
        f"{runs} run{'s' if runs != 1 else ''})"
    )
    for u in report["unmet"]:
        text.append("\n  - " + _unmet_line(u))
    return text


def markdown_summary(result: dict[str, Any], title: str, report: dict[str, Any] | None) -> str:
    """``run --format md``: the runs as ``compare --format md`` shows them, under a ✅/❌ heading,
    then the findings and the unmet expectations (for ``$GITHUB_STEP_SUMMARY``)."""
    ok = all(r["status"] in ("completed", "diverged") for r in result["runs"]) and (
        report is None or report["met"]
    )
    lines = [f"### {'✅' if ok else '❌'} {title}", "", *markdown_table(runs_section(result))]
    if result["findings"]:
        lines += [f"- {f}" for f in result["findings"]] + [""]
    if report is not None:
        lines += _md_expectations(report)
    return "\n".join(lines).rstrip() + "\n"


def _md_expectations(report: dict[str, Any]) -> list[str]:
    if report["met"]:
        conds = ", ".join(f"`{e}`" for e in report["expectations"])
        return [f"**Expectations met** by every run ({report['runs']}): {conds}"]
    unmet = report["unmet"]
    section = Section(
        "expect",
        "",
        [
            Field("run", [u["run"] for u in unmet], "id"),
            Field("setting", [cell_text(u["cell"]) for u in unmet], "text"),
            Field("key", [u["key"] for u in unmet], "text"),
            Field("expected", [u["expected"] for u in unmet], "text"),
            Field("actual", [u["actual"] for u in unmet], "text"),
        ],
    )
    return [f"**{len(unmet)} unmet expectation(s)**", "", *markdown_table(section)]


# ---- init, configs -------------------------------------------------------------------------------


def initialized(path: str) -> Text:
    text = Text("✓ ", style="green")
    text.append(f"wrote {path}; try: weightlab run {path}")
    return text


def gallery(entries: list[dict[str, Any]], width: int = 80) -> RenderableType:
    """The example configs: name, runs and the first line of what each one shows."""
    # A handful of rows whose text should wrap, not be cut: rich's own Table, in the same look.
    table = Table(
        title=f"{len(entries)} example configs: weightlab run NAME runs one, "
        "weightlab configs NAME prints it",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        width=width,
    )
    table.add_column("name", no_wrap=True)
    table.add_column("runs", no_wrap=True)
    table.add_column("what it shows", ratio=1)
    for e in entries:
        table.add_row(e["name"], e["runs"].split(":")[0], e["summary"])
    return table


# ---- run --dry-run -------------------------------------------------------------------------------


def sweep_plan(
    name: str,
    describe: str,
    runs: list[dict[str, Any]],
    width: int = 80,
    groups: list[dict[str, Any]] | None = None,
) -> RenderableType:
    """The runs a sweep would make: one row per run, its seed, its matrix values and its group;
    then one line per group (engine, runs, why, the keys that split it from the others)."""
    from weightlab.text import short_value

    keys = list(runs[0]["cell"]) if runs else []
    cols = [
        Col("run", [str(r["run"]) for r in runs], right=True),
        Col("seed", [str(r["seed"]) for r in runs], right=True),
    ]
    if groups is not None:
        cols.append(Col("group", [str(r["group"]) for r in runs], right=True))
    cols += [setting_col(short_setting(k), [short_value(r["cell"][k]) for r in runs]) for k in keys]
    table, _ = fitted_table(cols, width)
    parts: list[RenderableType] = [Text(f"{name}: {describe} (dry run: nothing trains)"), table]
    if table.legend:
        parts.append(Text("; ".join(table.legend), style="dim"))
    for n, g in enumerate(groups or [], 1):
        split = f"; split by {', '.join(g['split_by'])}" if g["split_by"] else ""
        runs_text = ", ".join(str(r) for r in g["runs"])
        line = f"group {n}: {g['engine']} engine, runs {runs_text} ({g['reason']}{split})"
        parts.append(Text(line))
    return Group(*parts)


# ---- explain -------------------------------------------------------------------------------------


def _signed(v: float | None) -> str:
    return "-" if v is None else ("+" if v >= 0 else "") + num(v)


def explanation(e: dict[str, Any], width: int = 100) -> RenderableType:
    """One unit's ``z = x·w + b`` term by term, then its activation and how w and b moved."""
    layer = e["layer"]
    sample = e["sample"]
    head = Text()
    head.append(f"run {e['run']} ({e['experiment']}, {e['status']}), epoch {e['epoch']}")
    head.append(f" of {e['first_epoch']}..{e['last_epoch']}\n")
    head.append(
        f"layer {layer['name']} ({layer['index'] + 1} of {layer['count']}), unit {e['unit']} of "
        f"{layer['units']} (0-based), activation {layer['activation']}\n"
    )
    target = ", ".join(num(t) for t in sample["target"])
    source = (
        "the sample's features"
        if layer["inputs_from"] == "data"
        else f"layer {layer['inputs_from']}'s outputs for it"
    )
    head.append(
        f"input: training sample {sample['index']} of {sample['of']} (target {target}); "
        f"x = {source}"
    )
    first = e["change"]["from_epoch"]
    terms = e["terms"]
    table, _ = fitted_table(
        [
            Col("input", [t["name"] for t in terms], flex=True),
            Col("x_i", [num(t["x"]) for t in terms], right=True),
            Col("w_i", [num(t["w"]) for t in terms], right=True),
            Col("x_i·w_i", [num(t["product"]) for t in terms], right=True),
            Col(f"w_i@{first}", [num(t["w_initial"]) for t in terms], right=True),
            Col("change", [_signed(t["w_change"]) for t in terms], right=True),
        ],
        width,
    )
    sums = Table.grid(padding=(0, 2))
    sums.add_column()
    sums.add_column(justify="right")
    sums.add_column(style="dim")
    sums.add_row("x·w = Σ x_i·w_i", num(e["dot"]), "the dot product")
    if e["bias"] is None:
        sums.add_row("+ b", "none", "")
    else:
        sums.add_row(
            "+ b",
            num(e["bias"]),
            f"b@{first} = {num(e['bias_initial'])}, change {_signed(e['change']['bias_change'])}",
        )
    sums.add_row("z = x·w + b" if e["bias"] is not None else "z = x·w", num(e["z"]), "")
    if e["layer_z"] is not None:
        sums.add_row("z of the layer", "[" + ", ".join(num(v) for v in e["layer_z"]) + "]", "")
    sums.add_row(f"output = {layer['activation']}(z)", num(e["output"]), layer["formula"])
    parts: list[RenderableType] = [head, Text(""), table, Text(""), sums]
    if e["bias"] is None:
        parts.append(
            Text(
                f"no b: layer {layer['name']} has use_bias: false, so z = x·w is 0 whenever x is "
                "0: the unit's decision boundary (z = 0), or its fitted line, must pass through "
                "the origin."
            )
        )
    c = e["change"]
    moved = (
        f"epoch {c['from_epoch']} → {c['to_epoch']}: |w| {num(c['w_norm_initial'])} → "
        f"{num(c['w_norm'])}, w moved {num(c['w_distance'])} (L2)"
    )
    if e["bias"] is not None:
        moved += f"; b {num(e['bias_initial'])} → {num(e['bias'])}"
    parts.append(Text(moved))
    out = ", ".join(num(v) for v in e["network_output"])
    parts.append(Text(f"network output for this sample: {out}", style="dim"))
    return Group(*parts)


# ---- export / plot -------------------------------------------------------------------------------


def exported(result: dict[str, Any]) -> Text:
    runs = f"{result['runs']} run{'s' if result['runs'] != 1 else ''}"
    if result["to"] == "csv":
        rows = f"{result['rows']} rows (run × epoch × variable)"
        return Text(f"wrote {rows} of {runs} to {result['files'][0]}")
    return Text(
        f"wrote {runs} ({result['scalars']} scalars, {result['histograms']} histograms) to "
        f"{result['directory']}; view them with: tensorboard --logdir {result['directory']}"
    )


def plotted(result: dict[str, Any]) -> Text:
    runs = len(result["runs"])
    text = f"wrote {result['path']}: {result['what']} of {runs} run{'s' if runs != 1 else ''}"
    if result.get("log_scale"):
        text += " (log scale: the losses span decades)"
    return Text(text)


def reported(result: dict[str, Any]) -> Text:
    """``wrote /abs/report.html (4.9 MB, 6 runs, 1.2 s): open it in a browser``, and what's
    missing from the page."""
    runs = result["runs"]
    text = Text(
        f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, {runs} run{'s' * (runs != 1)}, "
        f"{result['seconds']:.1f} s): open it in a browser, no network needed"
    )
    for note in result["notes"]:
        text.append(f"\n  missing: {note}", style="yellow")
    return text


# ---- compare: seed groups, pairs, per-epoch trajectories; table, csv, markdown -----------------


@dataclass
class Field:
    """One column of a compare section, raw values; ``kind`` says how tables show them.

    ``num`` right-aligned numbers, ``id`` run ids (last 4 characters in tables), ``text`` and
    ``flex`` (free text that may be cut) left-aligned. ``keep`` as in :class:`Col`.
    """

    header: str
    values: list[Any]
    kind: str = "num"
    keep: int = 9
    show: str = "all"  # "table": only in the terminal; "data": only in csv and markdown


@dataclass
class Section:
    """A compare table: ``name`` (the csv ``table`` column), a title, fields and a legend."""

    name: str
    title: str
    fields: list[Field]
    legend: str = ""


def compare_sections(result: dict[str, Any]) -> list[Section]:
    """The sections of a compare result after the runs: seed groups, pairs, per-epoch rows."""
    sections = [groups_section(result), pairs_section(result), epochs_section(result)]
    return [s for s in sections if s is not None]


def runs_section(result: dict[str, Any]) -> Section:
    """Every run, raw values (for csv and markdown; the terminal uses :func:`comparison`)."""
    rows = result["runs"]
    metrics = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
    fields = [Field("run", [r["id"] for r in rows], "id")]
    fields += [
        Field(short_setting(k), [r["settings"][k] for r in rows], "flex") for k in result["keys"]
    ]
    fields.append(Field("status", [r["status"] for r in rows], "text"))
    for header, key in (
        ("epochs", "epochs"),
        ("loss", "loss"),
        ("val_loss", "val_loss"),
        ("best_loss", "best_loss"),
        ("best_epoch", "best_epoch"),
        ("diverged_at", "diverged_at_epoch"),
        ("|W|", "kernel_norm"),
        ("W/W0", "kernel_growth"),
        ("|b|", "bias_norm"),
        ("dist_init", "dist_init"),
    ):
        fields.append(Field(header, [r[key] for r in rows]))
    fields += [Field(m, [r["metrics"].get(m) for r in rows]) for m in metrics]
    return Section("runs", f"{len(rows)} run{'s' * (len(rows) != 1)}", fields)


def groups_section(result: dict[str, Any]) -> Section | None:
    groups = result["groups"]
    if not any(g["n"] > 1 for g in groups):
        return None
    final = [g["final_loss"] for g in groups]
    ci = [f["ci95"] or [None, None] for f in final]
    keys = list(dict.fromkeys(k for g in groups for k in g["settings"]))
    fields = [Field("group", [g["label"] for g in groups], "flex", show="data" if keys else "all")]
    fields += [
        Field(short_setting(k), [g["settings"].get(k) for g in groups], "setting", show="table")
        for k in keys
    ]
    fields += [
        Field("n", [g["n"] for g in groups]),
        Field("mean", [f["mean"] for f in final]),
        Field("std", [f["std"] for f in final], keep=6),
        Field("ci95_low", [c[0] for c in ci], keep=5),
        Field("ci95_high", [c[1] for c in ci], keep=5),
        Field("best_mean", [g["best_loss"]["mean"] for g in groups], keep=3),
        Field("blew_up", [g["diverged"] for g in groups], keep=4),
    ]
    return Section(
        "groups",
        "Seed groups: final loss over the runs that differ only by seed",
        fields,
        "mean, std (sample), 95% CI (Student t) of the final losses of the runs that finished "
        "(diverged runs left out); best_mean = mean of their lowest losses; blew_up = runs that "
        "diverged",
    )


def pairs_section(result: dict[str, Any]) -> Section | None:
    """One row per seed pair, and a ``mean`` row per pair over its seeds with p and d."""
    if not result["pairs"]:
        return None
    rows: list[dict[str, Any]] = []
    for p in result["pairs"]:
        label = ", ".join([p["b"]["value"], *[f"{k}={v}" for k, v in p["settings"].items()]])
        cell = {"value": p["b"]["value"], "settings": p["settings"]}
        for s in p["seeds"]:
            blew = [f"{x}@{s[f'blew_up_{x}']}" for x in "ab" if s[f"blew_up_{x}"] is not None]
            rows.append({**s, **cell, "pair": label, "blew_up": " ".join(blew) or None})
        if p["of"] != 1:  # over several seeds, or the groups alone when no seed matches
            ga, gb = (result["groups"][p[x]["group"]]["final_loss"] for x in "ab")
            rows.append(
                {
                    **p,
                    **cell,
                    "pair": label,
                    "seed": "mean",
                    "a": None,
                    "b": None,
                    "loss_a": ga["mean"],
                    "loss_b": gb["mean"],
                    "distance_epoch": None,
                    "blew_up": None,
                }
            )
    first = result["pairs"][0]
    others = list(dict.fromkeys(k for r in rows for k in r["settings"]))
    fields = [
        Field(short_setting(first["key"]), [r["pair"] for r in rows], "flex", show="data"),
        Field(short_setting(first["key"]), [r["value"] for r in rows], "setting", show="table"),
    ]
    fields += [
        Field(k.rsplit(".", 1)[-1], [r["settings"].get(k) for r in rows], "setting", show="table")
        for k in others
    ]
    fields += [
        Field("seed", [r["seed"] for r in rows]),
        Field("run_a", [r["a"] for r in rows], "id", show="data"),
        Field("run_b", [r["b"] for r in rows], "id", show="data"),
        Field("runs b/a", [_ids(r["b"], r["a"]) for r in rows], "text", keep=1, show="table"),
        Field("loss_a", [r["loss_a"] for r in rows]),
        Field("loss_b", [r["loss_b"] for r in rows]),
        Field("apart@", [r["divergence_epoch"] for r in rows], keep=6),
        Field("dist", [r["distance"] for r in rows], keep=7),
        Field("cos", [r["cosine"] for r in rows], keep=5),
        Field("p", [r.get("p_value") for r in rows], keep=4),
        Field("d", [r.get("cohens_d") for r in rows], keep=3),
    ]
    if any(r["blew_up"] for r in rows):
        fields.append(Field("blew_up", [r["blew_up"] for r in rows], "text", keep=8))
    return Section(
        "pairs",
        f"Pairs: each against {first['a']['label']} (run a), same seed",
        fields,
        f"apart@ = first epoch the losses differ by more than {result['threshold']:.0%} of the "
        "lower; dist = |Wa - Wb| / max(|Wa|, |Wb|) and cos = cosine similarity over the "
        "variables both runs have, at the last common snapshot"
        + (
            "; mean = over the seeds (apart@: median), with p = Welch t-test and d = Cohen's d "
            "of the final losses"
            if any(r["seed"] == "mean" for r in rows)
            else ""
        ),
    )


def epochs_section(result: dict[str, Any]) -> Section | None:
    rows = [
        {"pair": f"{p['b']['label']} vs {p['a']['label']}", "seed": s["seed"], **e}
        for p in result["pairs"]
        for s in p["seeds"]
        for e in s.get("epochs", [])
    ]
    if not rows:
        return None
    fields = []
    if len(result["pairs"]) > 1:
        fields.append(Field("pair", [r["pair"] for r in rows], "flex"))
    if len({r["seed"] for r in rows}) > 1:
        fields.append(Field("seed", [r["seed"] for r in rows]))
    for key in ("epoch", "loss_a", "loss_b", "gap", "rel_gap", "distance", "cosine"):
        fields.append(Field(key, [r[key] for r in rows]))
    return Section(
        "epochs",
        "Per epoch: "
        + "; ".join(f"{p['b']['label']} (b) vs {p['a']['label']} (a)" for p in result["pairs"]),
        fields,
        "gap = loss_b - loss_a; rel_gap = |gap| / the lower loss; distance, cosine as above",
    )


def _ids(b: str | None, a: str | None) -> str | None:
    return f"{b[-4:]}/{a[-4:]}" if a and b else None


def _shown(section: Section, where: str) -> list[Field]:
    """The fields for the terminal or markdown: columns with no value at all are left out."""
    return [
        f
        for f in section.fields
        if f.show in ("all", where) and not (f.kind == "num" and all(v is None for v in f.values))
    ]


def _cell(field: Field, v: Any) -> str | Text:
    if field.kind == "id" and isinstance(v, str):
        return v[-4:]
    return num(v, 3) if field.kind == "num" else ("-" if v is None else str(v))


def section_table(section: Section, width: int) -> RenderableType:
    cols = [
        Col(
            f.header,
            [_cell(f, v) for v in f.values],
            right=f.kind in ("num", "id"),
            flex=f.kind == "flex",
            keep=f.keep,
        )
        if f.kind != "setting"
        else setting_col(f.header, ["-" if v is None else str(v) for v in f.values])
        for f in _shown(section, "table")
    ]
    table, dropped = fitted_table(cols, width, section.title)
    parts: list[RenderableType] = [Text(""), table]
    note = hidden_note(dropped)
    if note:
        parts.append(note)
    legend = "; ".join([*table.legend, section.legend] if section.legend else table.legend)
    if legend:
        parts.append(Text(legend, style="dim"))
    return Group(*parts)


def compare_table(result: dict[str, Any], width: int = 80, title: str = "") -> RenderableType:
    """`compare` for the terminal: runs, seed groups, pairs, per-epoch rows, then findings."""
    n = len(result["runs"])
    title = title or f"{n} run{'s' if n != 1 else ''}"
    side = comparison({**result, "findings": []}, title=title, width=width)
    parts: list[RenderableType] = [side]
    parts += [section_table(s, width) for s in compare_sections(result)]
    if result["findings"]:
        parts.append(Text(""))
        parts += [Text("• " + f) for f in result["findings"]]
    return Group(*parts)


def _md_cell(v: Any) -> str:
    return (num(v) if not isinstance(v, str) else v).replace("|", "\\|")


def markdown_table(section: Section) -> list[str]:
    """A section as the lines of a GitHub-flavoured Markdown table (and its legend)."""
    fields = _shown(section, "data")
    lines = ["| " + " | ".join(_md_cell(f.header) for f in fields) + " |"]
    lines.append("|" + "|".join("---:" if f.kind == "num" else "---" for f in fields) + "|")
    for i in range(len(fields[0].values)):
        lines.append("| " + " | ".join(_md_cell(f.values[i]) for f in fields) + " |")
    return lines + [""] + ([f"_{section.legend}_", ""] if section.legend else [])


def compare_markdown(result: dict[str, Any]) -> str:
    """GitHub-flavoured Markdown (for ``$GITHUB_STEP_SUMMARY``): one table per section."""
    lines: list[str] = []
    for s in [runs_section(result), *compare_sections(result)]:
        lines += [f"### {s.title}", "", *markdown_table(s)]
    lines += [f"- {f}" for f in result["findings"]]
    return "\n".join(lines).rstrip() + "\n"


def _csv_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return jsonio.encode(v)
    return "" if v is None else v


def compare_csv(result: dict[str, Any]) -> str:
    """One CSV block per section, separated by an empty line; column 1 names the section."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    findings = Section("findings", "", [Field("finding", result["findings"], "text")])
    blocks = [runs_section(result), *compare_sections(result), findings]
    for n, s in enumerate(blocks):
        fields = [f for f in s.fields if f.show != "table"]
        if n:
            buf.write("\n")
        writer.writerow(["table", *[f.header for f in fields]])
        for i in range(len(fields[0].values)):
            writer.writerow([s.name, *[_csv_value(f.values[i]) for f in fields]])
    return buf.getvalue()
