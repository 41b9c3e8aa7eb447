"""The live display of `weightlab run`: the sweep as a whole and each running run's epoch.

One line for the sweep (runs done of n, how many are running and failed, elapsed time, an estimate
of the rest), one line per run in training (its epoch and loss), and one printed line per finished
run. Runs may finish in any order when they train in parallel.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from weightlab import render


class RunProgress:
    """Turns the executors' events into a rich progress display plus one line per finished run."""

    def __init__(self, console: Console, enabled: bool = True, loading: str = ""):
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self.loading_text = loading or "loading TensorFlow, checking Keras names and data"
        self.total = 0
        self.sweep: Any = None
        self.loading: Any = None
        self.running: dict[int, tuple[TaskID, int, int]] = {}  # index -> (task, epoch, epochs)
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        # Importing TensorFlow and checking Keras names takes seconds: say so instead of nothing.
        self.loading = self.progress.add_task(self.loading_text, total=None, info="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.__exit__(exc_type, exc, tb)

    def on_event(self, event: dict[str, Any]) -> None:
        try:
            self._on_event(event)
        except BrokenPipeError:  # stderr's reader has gone (`2>&1 | head`): training goes on
            self.enabled = False
            self.progress.disable = True

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "batch_start":
            self._batch_start(event)
        elif kind == "run_start":
            run = event["run"]
            label = render.cell_text(run["cell"]) or run["experiment"]
            if "seed" in run:
                label += f" seed {run['seed']}"
            task = self.progress.add_task(
                f"  run {run['index'] + 1}/{self.total} {render.abbreviate(label, 28)}",
                total=run["epochs"],
                info="",
            )
            self.running[run["index"]] = (task, 0, run["epochs"])
        elif kind == "epoch":
            index = event["run"]["index"]
            if index in self.running:
                task, _, epochs = self.running[index]
                self.running[index] = (task, event["epoch"], epochs)
                loss = render.num(event["logs"].get("loss"))
                self.progress.update(task, completed=event["epoch"], info=f"loss {loss}")
        elif kind == "run_end":
            self._run_end(event["run"])
        elif kind == "note" and self.enabled:  # what a sweep waits for (a Dask scheduler)
            self.console.print(f"[dim]{event['text']}[/dim]", soft_wrap=True)
        self._update_sweep()

    def _batch_start(self, event: dict[str, Any]) -> None:
        self.progress.remove_task(self.loading)
        self.total = event["total"]
        self.started = time.monotonic()
        workers = event.get("workers")
        where = f", {workers} workers" if workers else ""
        if event.get("engines"):
            where += f"; {event['engines']}"
        if self.enabled:
            # soft_wrap: in a log (no terminal) rich would hard-wrap at 80 columns and pad.
            self.console.print(
                f"[bold]Training[/bold] {event['describe']}  (batch {event['batch']}{where})",
                soft_wrap=True,
            )
        self.sweep = self.progress.add_task("runs", total=self.total, info="")

    def _run_end(self, run: dict[str, Any]) -> None:
        task = self.running.pop(run["index"], (None, 0, 0))[0]
        if task is not None:
            self.progress.remove_task(task)
        self.progress.advance(self.sweep)
        self.done += 1
        self.failed += run["status"] == "failed"
        if not self.enabled:
            return
        label = render.cell_text(run["cell"]) or run["experiment"]
        style = render.STATUS_STYLE.get(run["status"], "")
        extra = f" at epoch {run['diverged_at_epoch']}" if run["status"] == "diverged" else ""
        if run["status"] == "failed":
            extra = f": {run['error']}"
        self.console.print(
            f"  [{style}]{run['status']}[/{style}]{extra}  {run['id']}  {label}  "
            f"loss {render.num((run.get('final') or {}).get('loss'))}  "
            f"({run['timing']['total_seconds']:.1f} s)",
            soft_wrap=True,
        )

    def _update_sweep(self) -> None:
        if self.sweep is None:
            return
        self.progress.update(self.sweep, info=self.summary())

    def summary(self) -> str:
        """``2 running · 1 failed · about 0:42 left``: the estimate counts epochs in progress."""
        parts = [f"{len(self.running)} running"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        partial = sum(epoch / epochs for _, epoch, epochs in self.running.values() if epochs)
        fraction = (self.done + partial) / self.total if self.total else 0.0
        if fraction > 0:
            left = (time.monotonic() - self.started) * (1 - fraction) / fraction
            parts.append(f"about {int(left) // 60}:{int(left) % 60:02d} left")
        return " · ".join(parts)
