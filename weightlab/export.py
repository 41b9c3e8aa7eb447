"""Export runs into the tools people already use: tidy CSV and TensorBoard event files.

Neither path imports TensorFlow: the CSV is the standard library's, the event files are written
with tensorboardX (the ``tensorboard`` extra: ``pip install 'weightlab[tensorboard]'``).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from weightlab import analysis, jsonio, yamlio
from weightlab.errors import UsageError, WeightlabError
from weightlab.store import Store
from weightlab.text import short_value

STATS = ["l2", "mean", "std", "min", "max", "dist_init", "delta"]
TARGETS = ("csv", "tensorboard")
CSV_NAME = "history.csv"
HIST_BINS = 30


def export(
    store: Store, records: list[dict[str, Any]], to: str, directory: str | Path
) -> dict[str, Any]:
    """Write ``records``' histories (and, for TensorBoard, their snapshots) into ``directory``.

    Args:
        store: the run store.
        records: run records as returned by ``Store.select`` (with flat ``config``).
        to: ``csv`` or ``tensorboard``.
        directory: created if missing.

    Returns:
        What was written: ``{"to", "directory", "runs", "files", ...counts}``.

    Raises:
        UsageError: an unknown target, or tensorboardX missing.
        WeightlabError: the directory cannot be written.
    """
    if to not in TARGETS:
        raise UsageError(f"--to {to!r}: expected one of {', '.join(TARGETS)}")
    out = Path(directory)
    outside_store(store, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if to == "csv":
            return to_csv(store, records, out)
        return to_tensorboard(store, records, out)
    except OSError as e:
        raise WeightlabError(f"cannot write the export into {out}: {e.strerror or e}") from None


def outside_store(store: Store, path: Path) -> None:
    """Refuse a target inside the store (or the store itself): a folder under ``runs/`` would be
    listed as a damaged run, and would win selectors over the experiment of its name.

    Raises:
        UsageError: ``path`` resolves (symbolic links followed) to the store or inside it.
    """
    root, target = store.root.resolve(), path.resolve()
    if target == root or root in target.parents:
        raise UsageError(
            f"export target {path} is inside the run store {store.root}: exported files there "
            "would be read as runs; choose a directory outside the store"
        )


def csv_rows(store: Store, records: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the tidy history: one row per run × epoch × variable.

    The config keys that differ between the runs come as columns, so that a table tool can group
    by them; epoch 0 (the initial weights) has no metrics.
    """
    keys = analysis.differing_keys([r["config"] for r in records])
    histories = {r["id"]: store.history(r["id"]) for r in records}
    metrics: list[str] = []
    for rows in histories.values():
        for row in rows:
            metrics += [k for k in row if k not in ("epoch", "weights") and k not in metrics]
    header = ["run", "experiment", "batch", "seed", "status", *keys, "epoch", *metrics]
    header += ["variable", *STATS]
    out = []
    for r in records:
        settings = [short_value(r["config"].get(k)) for k in keys]
        head = [r["id"], r["experiment"], r["batch"], r.get("seed"), r["status"], *settings]
        for row in histories[r["id"]]:
            values = [row.get(m) for m in metrics]
            for var, stats in (row.get("weights") or {}).items():
                out.append([*head, row["epoch"], *values, var, *[stats.get(s) for s in STATS]])
    return header, out


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # nan, inf, -inf: what pandas.read_csv reads back as such
    return v


def to_csv(store: Store, records: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    header, rows = csv_rows(store, records)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    path = out / CSV_NAME
    jsonio.atomic_write_bytes(path, buf.getvalue().encode())
    return {
        "to": "csv",
        "directory": str(out),
        "runs": len(records),
        "files": [str(path)],
        "rows": len(rows),
    }


def _summary_writer() -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UsageError(
            "export --to tensorboard needs tensorboardX: pip install 'weightlab[tensorboard]'"
        ) from None
    return SummaryWriter


def run_logdir(out: Path, record: dict[str, Any]) -> Path:
    """``<DIR>/<experiment>/<run id>``: TensorBoard names each run by its path."""
    return out / record["experiment"] / record["id"]


def to_tensorboard(store: Store, records: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """One event file per run: metrics and weight statistics as scalars, snapshots as histograms.

    Exporting a run again replaces its earlier event files (TensorBoard would show both).
    """
    writer_cls = _summary_writer()
    scalars = histograms = 0
    files = []
    for r in records:
        logdir = run_logdir(out, r)
        outside_store(store, logdir)  # DIR/<experiment>/<id> may reach into a store below DIR
        logdir.mkdir(parents=True, exist_ok=True)
        for old in logdir.glob("events.out.tfevents.*"):
            old.unlink()
        # A deep queue: with tensorboardX's default of 10, every event waits on its writer thread.
        writer = writer_cls(logdir=str(logdir), max_queue=100_000, flush_secs=3600)
        try:
            writer.add_text("config", "```\n" + yamlio.dump(store.config(r["id"])) + "```", 0)
            for row in store.history(r["id"]):
                scalars += _add_scalars(writer, row)
            for epoch in store.snapshot_epochs(r["id"]):
                for var, array in store.snapshot(r["id"], epoch).items():
                    # 30 equal-width buckets: tensorboardX's default ("tensorflow", ~1,500
                    # exponential edges) is slow per array and shows no more (docs/benchmarks.md).
                    writer.add_histogram(var, array.astype("float64"), epoch, bins=HIST_BINS)
                    histograms += 1
        finally:
            writer.close()
        files += [str(p) for p in sorted(logdir.glob("events.out.tfevents.*"))]
    return {
        "to": "tensorboard",
        "directory": str(out),
        "runs": len(records),
        "files": files,
        "scalars": scalars,
        "histograms": histograms,
    }


def _add_scalars(writer: Any, row: dict[str, Any]) -> int:
    """Metrics under their Keras names; per variable ``norm/<var>`` and ``dist_init/<var>``."""
    epoch = row["epoch"]
    values = {k: v for k, v in row.items() if k not in ("epoch", "weights")}
    for var, stats in (row.get("weights") or {}).items():
        values[f"norm/{var}"] = stats["l2"]
        values[f"dist_init/{var}"] = stats["dist_init"]
    written = 0
    for tag, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            writer.add_scalar(tag, float(value), epoch)
            written += 1
    return written
