"""The live display of `weightlab run`: runs done of n, the current run's epoch and loss."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from weightlab import render


class RunProgress:
    """Turns the runner's events into a rich progress display plus one line per finished run."""

    def __init__(self, console: Console, enabled: bool = True):
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        self.total = 0
        self.sweep: Any = None
        self.loading: Any = None
        self.current: Any = None

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        # Importing TensorFlow and checking Keras names takes seconds: say so instead of nothing.
        self.loading = self.progress.add_task(
            "loading TensorFlow, checking Keras names and data", total=None, loss=""
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.__exit__(exc_type, exc, tb)

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "batch_start":
            self.progress.remove_task(self.loading)
            self.total = event["total"]
            if self.enabled:
                self.console.print(
                    f"[bold]Training[/bold] {event['describe']}  (batch {event['batch']})"
                )
            self.sweep = self.progress.add_task("runs", total=self.total, loss="")
        elif kind == "run_start":
            run = event["run"]
            label = render.cell_text(run["cell"]) or run["experiment"]
            self.current = self.progress.add_task(
                f"  run {run['index'] + 1}/{self.total} {render.abbreviate(label, 28)}",
                total=run["epochs"],
                loss="",
            )
        elif kind == "epoch":
            self.progress.update(
                self.current,
                completed=event["epoch"],
                loss=f"loss {render.num(event['logs'].get('loss'))}",
            )
        elif kind == "run_end":
            run = event["run"]
            self.progress.remove_task(self.current)
            self.progress.advance(self.sweep)
            if self.enabled:
                label = render.cell_text(run["cell"]) or run["experiment"]
                style = render.STATUS_STYLE.get(run["status"], "")
                extra = (
                    f" at epoch {run['diverged_at_epoch']}" if run["status"] == "diverged" else ""
                )
                if run["status"] == "failed":
                    extra = f": {run['error']}"
                self.console.print(
                    f"  [{style}]{run['status']}[/{style}]{extra}  {run['id']}  {label}  "
                    f"loss {render.num((run.get('final') or {}).get('loss'))}  "
                    f"({run['timing']['total_seconds']:.1f} s)"
                )
