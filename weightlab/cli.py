"""The command line: parse, call the library, render. No logic here, and no TensorFlow import."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from weightlab import __version__, analysis, gallery, lifecycle, render
from weightlab import expect as expectations
from weightlab.config import cut_for_smoke, load_experiment
from weightlab.errors import WeightlabError
from weightlab.store import ENV_VAR, Store

FORMATS = ["table", "json"]
COMPARE_FORMATS = [*FORMATS, "csv", "md"]


class _Console(Console):
    """A console whose closed pipe (``weightlab run ... | head -2``) is no failure.

    Rich's own answer to a broken pipe is ``SystemExit(1)``, the exit code of a failed run; here
    the rest of the output goes nowhere and the command ends with its own exit code.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.file.fileno())


def _out() -> Console:
    return _Console(highlight=False, soft_wrap=False)


def _err() -> Console:
    return _Console(stderr=True, highlight=False)


class _Failure(click.ClickException):
    """A WeightlabError shown as ``Error: ...`` with its own exit code (2 config/usage, 1 other)."""

    def __init__(self, error: WeightlabError):
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WeightlabError as e:
            raise _Failure(e) from None
        except BrokenPipeError:  # `weightlab ls | head -1`: the reader had enough; not a failure
            _drop_stdout()
            return None
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP while training
            _err().print(f"[magenta]interrupted ({lifecycle.signal_name(e)})[/magenta]")
            sys.exit(lifecycle.exit_code(e))


def _drop_stdout() -> None:
    """Send what is left of stdout nowhere, once its reader has gone (``| head -2``)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@contextlib.contextmanager
def _reader_may_leave() -> Any:
    """A closed stdout is no failure: the command still exits with its own outcome."""
    try:
        yield
    except BrokenPipeError:
        _drop_stdout()


def store_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--store",
        "store_path",
        type=click.Path(file_okay=False),
        envvar=ENV_VAR,
        show_envvar=True,
        help="Run store directory [default: ./weightlab-runs].",
    )(f)


def where_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--where",
        "conditions",
        multiple=True,
        metavar="KEY=VALUE",
        help="Keep runs whose config key (or status) has VALUE; repeat to combine.",
    )(f)


def index_option(name: str, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A 0-based index option (``--unit``, ``--sample``), 0 by default."""
    return click.option(name, type=click.IntRange(min=0), default=0, show_default=True, help=help)


def complete_runs(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of run selectors: ``latest``, run ids, batch ids, experiment names."""
    try:
        records = Store.open(ctx.params.get("store_path")).runs()
    except (WeightlabError, OSError):
        return []
    words = ["latest"]
    for r in records:
        words += [w for w in (r["id"], r["batch"], r["experiment"]) if w not in words]
    return [w for w in words if w.startswith(incomplete)]


def format_option(f: Callable[..., Any], choices: list[str] = FORMATS) -> Callable[..., Any]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="table",
        show_default=True,
        help="Output format.",
    )(f)


def _config_path(config: str) -> str:
    """CONFIG, or the example config of that name when no such file exists (``run depth``)."""
    path, example = gallery.resolve(config)
    missing = not example and "/" not in config and not os.path.exists(config)
    if missing and gallery.GALLERY.is_dir():
        from weightlab.errors import ConfigError, Problem
        from weightlab.text import did_you_mean

        stem = config.removesuffix(".yaml")
        raise ConfigError(
            Problem(
                config,
                "",
                "config file not found, and no example config has that name"
                f"{did_you_mean(stem, gallery.names())} (`weightlab configs` lists them)",
            )
        )
    if example:
        _err().print(f"[dim]example config {config}: {path}[/dim]", soft_wrap=True)
    return path


def _finite(option: str, value: float) -> float:
    """A FloatRange lets NaN through (every comparison with it is false): refuse it, and inf."""
    import math

    if not math.isfinite(value):
        raise click.BadParameter(f"expected a finite number; got {value}", param_hint=option)
    return value


def _selected(store: Store, selectors: tuple[str, ...]) -> list[dict[str, Any]]:
    """The runs the selectors name, or the latest batch's; an empty store is an error.

    Damaged runs are left out, each named on stderr with the reason (``weightlab check`` says
    more); when every selected run is damaged, that is the error (exit 2).
    """
    records = store.select(selectors, default="latest-batch")
    if not records:
        raise WeightlabError(f"no runs in {store.root} yet; start one with `weightlab run CONFIG`")
    readable = []
    for r in store.verified(records, histories=True):
        if r["status"] == "corrupt":
            _err().print(f"skipped {r['id']}: corrupt: {r['error']}", soft_wrap=True)
        else:
            readable.append(r)
    if not readable:
        from weightlab.errors import UsageError

        which = records[0]["id"] if len(records) == 1 else f"all {len(records)} selected runs"
        raise UsageError(f"{which}: damaged (said above); `weightlab check` lists every problem")
    return readable


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="weightlab")
def cli() -> None:
    """See what weights and biases do: train Keras models from YAML and compare their weights.

    \b
    Examples:
      weightlab init && weightlab run weightlab.yaml
      weightlab run configs/bias-vs-no-bias.yaml && weightlab compare
      weightlab configs
    """


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--matrix",
    "matrix",
    multiple=True,
    metavar="KEY=V1,V2",
    help="Add a matrix axis (values read as YAML); repeat for more axes.",
)
@click.option("--seeds", metavar="0-4|0,3,7", help="The seeds: a range, a list, or both.")
@click.option("--dry-run", is_flag=True, help="Print the runs that would be made; train nothing.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes (or LocalCluster workers with --executor dask).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where runs train: this machine, or Dask distributed.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Dask scheduler to use, e.g. tcp://10.0.0.5:8786 [default: a LocalCluster].",
)
@click.option(
    "--scheduler-timeout",
    type=click.FloatRange(min=0.1, max=3600),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="With --scheduler: how long to wait for it to answer, then for a worker.",
)
@click.option("--fail-fast", is_flag=True, help="Start no more runs after the first failure.")
@click.option(
    "--engine",
    type=click.Choice(["auto", "keras", "vectorized"]),
    default="auto",
    show_default=True,
    help="keras: one Keras fit per run; vectorized: each group of compatible runs as one "
    "stacked computation; auto: vectorize every group of two or more runs.",
)
@store_option
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option(
    "--smoke",
    is_flag=True,
    help=f"CI check: cut every run to {expectations.SMOKE_EPOCHS} epochs and at most "
    f"{expectations.SMOKE_SAMPLES} samples.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "md"]),
    default="table",
    show_default=True,
    help="Output format; md is a Markdown summary for $GITHUB_STEP_SUMMARY.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(),
    metavar="FILE.html",
    help="Also write the batch's offline HTML page (as `weightlab report BATCH -o FILE.html`).",
)
def run(
    config: str,
    overrides: tuple[str, ...],
    matrix: tuple[str, ...],
    seeds: str | None,
    dry_run: bool,
    jobs: int,
    executor: str,
    scheduler: str | None,
    scheduler_timeout: float,
    fail_fast: bool,
    engine: str,
    store_path: str | None,
    quiet: bool,
    smoke: bool,
    fmt: str,
    report_path: str | None,
) -> None:
    """Train every run of CONFIG (matrix × seeds) and snapshot its weights.

    KEY=VALUE pairs override the config, e.g. train.epochs=5 model.use_bias=false.
    Exits 0 when every run completed or diverged, 1 when any failed or an `expect:` of the
    config is unmet, 2 on a config error.

    \b
    CONFIG is a YAML file, or the name of an example config (`weightlab configs` lists them).

    \b
    Examples:
      weightlab run configs/bias-vs-no-bias.yaml
      weightlab run depth
      weightlab run configs/initializers.yaml train.epochs=5 --seeds 0-2 --jobs 2
      weightlab run configs/learning-rate.yaml --smoke --format md >> "$GITHUB_STEP_SUMMARY"
    """
    config = _config_path(config)
    if report_path:
        from weightlab.report import check_output

        check_output(report_path)  # refused before training, not after
    experiment = load_experiment(config, overrides, matrix=matrix, seeds=seeds)
    if smoke:
        cut_for_smoke(experiment)
    from weightlab import executors  # no TensorFlow: the workers import it

    if dry_run:
        runs = executors.plan(experiment, engine)
        if fmt == "json":
            click.echo(render.as_json(runs))
        else:
            from weightlab.groups import plan_groups

            console = _out()
            groups = [g.describe() for g in plan_groups(experiment.runs, engine)]
            plan = render.sweep_plan(
                experiment.name, experiment.describe(), runs, console.width, groups
            )
            console.print(plan)
        return
    store = Store.open(store_path)
    store.check_writable("new runs")  # before TensorFlow is loaded
    err = _err()
    from weightlab.progress import RunProgress  # rich.progress is only needed here

    loading = "" if jobs == 1 and executor == "local" else "starting workers (TensorFlow)"
    with RunProgress(err, enabled=not quiet, loading=loading) as progress:
        result = executors.run_sweep(
            experiment,
            store,
            jobs=jobs,
            executor=executor,
            scheduler=scheduler,
            fail_fast=fail_fast,
            on_event=progress.on_event,
            engine=engine,
            scheduler_timeout=scheduler_timeout,
        )
    records = result.records
    report = expectations.check(experiment.expect, records) if experiment.expect else None
    title = f"{experiment.name}: {experiment.describe()}"
    with _reader_may_leave():  # `weightlab run ... | head -2` exits as the runs went
        _print_run_summary(title, result.batch, records, report, store, fmt)
    if result.cancelled and not quiet:
        err.print(f"{result.cancelled} run(s) not started (--fail-fast)")
    if report_path and records:
        _write_report(store, result.batch, report_path, err)
    if any(r["status"] == "failed" for r in records) or (report and not report["met"]):
        sys.exit(1)


def _write_report(store: Store, batch: str, path: str, err: Console) -> None:
    """The page of a batch just trained, announced on stderr (stdout keeps the summary)."""
    from weightlab import report

    records = store.verified(store.select([batch]))
    command = f"weightlab report {batch} -o {path}"
    result = report.write(store, records, path, selection=[batch], command=command)
    err.print(render.reported(result), soft_wrap=True)


def _print_run_summary(
    title: str,
    batch: str,
    records: list[dict[str, Any]],
    report: dict[str, Any] | None,
    store: Store,
    fmt: str,
) -> None:
    if fmt == "json":
        if report is not None:  # each record says which of the config's expectations it missed
            records = [
                {**r, "expect": [u for u in report["unmet"] if u["run"] == r["id"]]}
                for r in records
            ]
        click.echo(render.as_json(records))
        return
    selected = store.select([batch]) if records else []
    if not selected:
        return
    summary = analysis.compare(store, selected)  # the same summary as `weightlab compare BATCH`
    if fmt == "md":
        click.echo(render.markdown_summary(summary, title, report), nl=False)
        return
    console = _out()
    console.print(render.compare_table(summary, width=console.width, title=title))
    if report is not None:
        console.print(render.expectations(report))


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--keras",
    "with_keras",
    is_flag=True,
    help="Also resolve every Keras name (imports TensorFlow, a few seconds).",
)
def validate(config: str, overrides: tuple[str, ...], with_keras: bool) -> None:
    """Check CONFIG without training: structure, types, ranges, files (and Keras names).

    \b
    Examples:
      weightlab validate configs/depth.yaml
      weightlab validate --keras configs/depth.yaml model.kernel_initializer=he_uniform
    """
    config = _config_path(config)
    experiment = load_experiment(config, overrides)
    if with_keras:
        from weightlab.runstart import load_datasets
        from weightlab.training.sweep import check_keras

        check_keras(experiment)
        load_datasets(experiment)
    _out().print(render.validated(config, experiment.describe(), with_keras))


@cli.command(name="ls")
@click.argument("selectors", nargs=-1, shell_complete=complete_runs)
@store_option
@format_option
def ls_(selectors: tuple[str, ...], store_path: str | None, fmt: str) -> None:
    """List runs, newest first (all, or those matching SELECTORS).

    \b
    Examples:
      weightlab ls
      weightlab ls initializers --format json
    """
    store = Store.open(store_path)
    records = store.select(selectors)
    if fmt == "json":
        click.echo(render.as_json([{k: v for k, v in r.items() if k != "config"} for r in records]))
    else:
        console = _out()
        console.print(render.runs_list(records, str(store.root), console.width))


@cli.command()
@click.argument("run_selector", metavar="RUN", shell_complete=complete_runs)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Show every k-th epoch (the last is always shown).",
)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing the epochs of a running run as they come, until it ends (tail -f).",
)
@store_option
@format_option
def show(run_selector: str, every: int, follow: bool, store_path: str | None, fmt: str) -> None:
    """Show one run epoch by epoch: metrics, kernel and bias norms, movement of the weights.

    \b
    Examples:
      weightlab show latest
      weightlab show 261129-0843 --every 10
      weightlab show latest --follow
    """
    store = Store.open(store_path)
    record = store.get(run_selector, live=True)
    history = store.history(record["id"])
    damage = store.history_damage(record["id"])
    if damage and record["status"] != "running":  # a live run's history may be missing yet
        from weightlab.runfiles import DamagedRun

        raise DamagedRun(record["id"], damage)
    config = store.config(record["id"])
    if fmt == "json":
        if follow:
            raise click.UsageError("--follow prints a table; leave out --format json")
        click.echo(render.as_json({"run": record, "config": config, "history": history}))
        return
    console = _out()
    detail = analysis.show(record, history, every)
    following = follow and record["status"] == "running"
    console.print(render.run_detail(detail, config, console.width, follow=following))
    if following:
        _follow(store, record, history, every, console)


def _follow(
    store: Store,
    record: dict[str, Any],
    history: list[dict[str, Any]],
    every: int,
    console: Console,
) -> None:
    """Print the run's epochs as they are committed, until it stops running."""
    from weightlab.follow import follow

    rows = render.EpochRows(analysis.show(record, history, every), console.width)
    last = history[-1]["epoch"] if history else -1
    final = record
    for new, final in follow(store, record["id"], after_epoch=last):
        shown = [r for r in new if r["epoch"] % every == 0]
        if shown:
            console.print(rows.more(analysis.show(final, shown, 1)))
    console.print(render.followed(final))


@cli.command(name="compare")
@click.argument("selectors", nargs=-1, shell_complete=complete_runs)
@click.option("--by", metavar="KEY", help="Pair runs identical except KEY (and the same seed).")
@where_option
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    callback=lambda _ctx, _param, v: _finite("--threshold", v),
    default=analysis.DEFAULT_THRESHOLD,
    show_default=True,
    help="Relative loss gap that marks the epoch a pair comes apart.",
)
@click.option("--per-epoch", is_flag=True, help="Also show each pair epoch by epoch.")
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --per-epoch, every k-th epoch (the last is always shown).",
)
@click.option("--sort-by", metavar="COLUMN", help="Sort the runs (-COLUMN: descending).")
@click.option("--all-keys", is_flag=True, help="Show every config key, not only those that differ.")
@store_option
@lambda f: format_option(f, COMPARE_FORMATS)
def compare_(
    selectors: tuple[str, ...],
    by: str | None,
    conditions: tuple[str, ...],
    threshold: float,
    per_epoch: bool,
    every: int,
    sort_by: str | None,
    all_keys: bool,
    store_path: str | None,
    fmt: str,
) -> None:
    """Compare runs (default: the latest `weightlab run`): side by side, in pairs, across seeds.

    \b
    Examples:
      weightlab compare
      weightlab compare bias-vs-no-bias --by model.use_bias --per-epoch --every 10
      weightlab compare initializers --where train.epochs=30 --sort-by loss --format md
    """
    store = Store.open(store_path)
    records = store.verified(store.select(selectors, default="latest-batch"))
    if not records:
        raise WeightlabError(f"no runs in {store.root} yet; start one with `weightlab run CONFIG`")
    result = analysis.compare(
        store,
        analysis.where(records, conditions),
        by=by,
        threshold=threshold,
        per_epoch=per_epoch,
        every=every,
        all_keys=all_keys,
        sort_by=sort_by,
    )
    if fmt == "table":
        console = _out()
        console.print(render.compare_table(result, width=console.width))
    else:
        writers = {"json": render.as_json, "csv": render.compare_csv, "md": render.compare_markdown}
        click.echo(writers[fmt](result), nl=fmt == "json")


@cli.command()
@click.argument("run_selector", metavar="RUN")
@click.option("--epoch", type=click.IntRange(min=0), help="Snapshot epoch [default: the last].")
@click.option("--layer", help="Layer name [default: the first layer].")
@index_option("--unit", "Unit, 0-based.")
@index_option("--sample", "Training sample of the run's data, 0-based.")
@store_option
@format_option
def explain(
    run_selector: str,
    epoch: int | None,
    layer: str | None,
    unit: int,
    sample: int,
    store_path: str | None,
    fmt: str,
) -> None:
    """Show one unit's z = x·w + b term by term on one sample, from the stored weights.

    \b
    Example:
      weightlab explain latest --layer out --sample 3
    """
    from weightlab.explain import explain as explain_unit  # numpy, only for this command

    store = Store.open(store_path)
    record = store.get(run_selector)
    result = explain_unit(store, record["id"], epoch=epoch, layer=layer, unit=unit, sample=sample)
    if fmt == "json":
        click.echo(render.as_json(result))
    else:
        console = _out()
        console.print(render.explanation(result, console.width))


@cli.command()
@click.argument("selectors", nargs=-1)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="The figure file: .png or .svg.",
)
@click.option(
    "--what",
    type=click.Choice(["loss", "weights", "biases", "distance"]),
    default="loss",
    show_default=True,
    help="Loss curves, kernel/bias norms per layer, one layer's bias values per epoch, or the "
    "weight distance between paired runs per epoch.",
)
@click.option("--layer", help="For --what biases: the layer [default: the first with a bias].")
@click.option("--by", metavar="KEY", help="For --what distance: pair runs as `compare --by KEY`.")
@store_option
@format_option
def plot(
    selectors: tuple[str, ...],
    output: str,
    what: str,
    layer: str | None,
    by: str | None,
    store_path: str | None,
    fmt: str,
) -> None:
    """Draw runs into a PNG or SVG file (default: the runs of the latest batch).

    \b
    Examples:
      weightlab plot bias-vs-no-bias -o loss.png
      weightlab plot latest --what biases --layer dense_1 -o biases.svg
      weightlab plot bias-vs-no-bias --what distance -o distance.png
    """
    from weightlab import plot as plots  # matplotlib, only for this command

    plots.check_output(output)  # a wrong extension is refused before anything is read
    store = Store.open(store_path)
    result = plots.plot(store, _selected(store, selectors), what, output, layer=layer, by=by)
    if fmt == "json":
        click.echo(render.as_json(result))
    else:
        _out().print(render.plotted(result))


@cli.command(name="report")
@click.argument("selectors", nargs=-1, shell_complete=complete_runs)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(),
    help="The page to write: FILE.html (one self-contained file).",
)
@click.option("--by", metavar="KEY", help="Pair runs identical except KEY, as `compare --by`.")
@where_option
@click.option("--layer", help="Dot product: the layer [default: the first].")
@index_option("--unit", "Dot product: unit.")
@index_option("--sample", "Dot product: training sample.")
@store_option
def report_(
    selectors: tuple[str, ...],
    output: str,
    by: str | None,
    conditions: tuple[str, ...],
    layer: str | None,
    unit: int,
    sample: int,
    store_path: str | None,
) -> None:
    """Write one offline HTML page of runs (default: the latest batch) to look at in a browser.

    SELECTORS are those of `compare`, or paths of run directories.

    \b
    Examples:
      weightlab report -o report.html
      weightlab report bias-vs-no-bias --by model.use_bias -o bias.html
    """
    from weightlab import report

    report.check_output(output)  # a directory or a missing folder is refused before any work
    store, records = report.select(store_path, selectors, conditions)
    words = ["weightlab", "report", *selectors, *(f"--where {c}" for c in conditions)]
    words += [f"--by {by}"] if by else []
    words += [f"--layer {layer}"] if layer else []
    words += [f"--unit {unit}"] if unit else []
    words += [f"--sample {sample}"] if sample else []
    result = report.write(
        store,
        records,
        output,
        by=by,
        layer=layer,
        unit=unit,
        sample=sample,
        selection=list(selectors),
        command=" ".join([*words, "-o", output]),
    )
    _out().print(render.reported(result), soft_wrap=True)


@cli.command(name="export")
@click.argument("selectors", nargs=-1)
@click.option(
    "--to",
    "target",
    type=(click.Choice(["csv", "tensorboard"]), click.Path(file_okay=False)),
    required=True,
    metavar="csv|tensorboard DIR",
    help="What to write, and the directory to write it into.",
)
@store_option
@format_option
def export_(
    selectors: tuple[str, ...], target: tuple[str, str], store_path: str | None, fmt: str
) -> None:
    """Export runs' histories as tidy CSV, or as TensorBoard event files (default: latest batch).

    \b
    Examples:
      weightlab export bias-vs-no-bias --to csv exported/
      weightlab export latest --to tensorboard tb/ && tensorboard --logdir tb/
    """
    from weightlab.export import export

    store = Store.open(store_path)
    records = _selected(store, selectors)
    result = export(store, records, target[0], target[1])
    if fmt == "json":
        click.echo(render.as_json(result))
    else:
        _out().print(render.exported(result))


@cli.command()
@store_option
def reindex(store_path: str | None) -> None:
    """Rebuild the index from the run directories (the directories are the truth).

    \b
    Example:
      weightlab reindex --store ./weightlab-runs
    """
    store = Store.open(store_path)
    start = time.perf_counter()
    skipped: list[tuple[str, str]] = []
    n = store.reindex(skipped)
    for run_id, reason in skipped:
        _out().print(f"skipped {run_id}: corrupt: {reason}", soft_wrap=True)
    _out().print(
        f"indexed {n} run{'s' if n != 1 else ''} in {store.root} "
        f"({time.perf_counter() - start:.2f} s)"
    )


@cli.command()
@click.argument("run_selector", metavar="RUN")
@store_option
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@format_option
def resume(run_selector: str, store_path: str | None, quiet: bool, fmt: str) -> None:
    """Continue an interrupted or crashed run from its last completed epoch.

    Refuses a run whose config or data changed since it started; the result is the same as a
    run that was never stopped. Exits like `run`.

    \b
    Examples:
      weightlab resume latest
      weightlab resume 261129-084421-5f3a --quiet --format json
    """
    from weightlab.resume import prepare

    store = Store.open(store_path)
    plan = prepare(store, run_selector)
    err = _err()
    if plan.note:
        err.print(f"[dim]{plan.note}[/dim]")
    from weightlab.progress import RunProgress

    with RunProgress(err, enabled=not quiet) as progress:
        from weightlab.training.sweep import resume_run  # the one TensorFlow import

        progress.on_event(
            {
                "type": "batch_start",
                "batch": plan.record["batch"],
                "total": 1,
                "describe": f"resuming {plan.run_id}",
            }
        )
        record = resume_run(plan, store, on_event=progress.on_event)
    if fmt == "json":
        click.echo(render.as_json(record))
    else:
        console = _out()
        result = analysis.side_by_side(store.select([record["id"]]))
        console.print(render.comparison(result, width=console.width))
    if record["status"] == "failed":
        sys.exit(1)


@cli.command(name="check")
@click.option("--repair", is_flag=True, help="Rebuild the index from the run directories.")
@store_option
@format_option
def check_(repair: bool, store_path: str | None, fmt: str) -> None:
    """Read every run's files and compare the index with the run directories.

    Exits 0 when nothing is damaged (crashed runs are only noted), 1 otherwise. Never deletes.

    \b
    Examples:
      weightlab check
      weightlab check --repair --format json
    """
    from weightlab.check import check

    report = check(Store.open(store_path), repair=repair)
    if fmt == "json":
        click.echo(render.as_json(report))
    else:
        _out().print(render.check_report(report))
    if report["problems"]:
        sys.exit(1)


@cli.command()
@click.argument("path", default="weightlab.yaml", required=False, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def init(path: str, force: bool) -> None:
    """Write a commented starter config to PATH [default: weightlab.yaml].

    \b
    Examples:
      weightlab init
      weightlab init experiments/first.yaml && weightlab run experiments/first.yaml
    """
    gallery.write_starter(path, force=force)
    _out().print(render.initialized(path))


@cli.command()
@click.argument("name", required=False)
@format_option
def configs(name: str | None, fmt: str) -> None:
    """List the example configs (the gallery), or print the one called NAME.

    Each runs by its name from any folder: `weightlab run depth`.

    \b
    Examples:
      weightlab configs
      weightlab configs depth > my-depth.yaml
    """
    if name:
        click.echo(gallery.text(name), nl=False)
        return
    found = gallery.entries()
    if fmt == "json":
        click.echo(render.as_json(found))
    else:
        console = _out()
        console.print(render.gallery(found, console.width))


@cli.command(name="schema")
def schema_() -> None:
    """Print the JSON Schema of a config file, for editors (the YAML language server).

    \b
    Example:
      weightlab schema > weightlab.schema.json
    """
    from weightlab import schema

    click.echo(render.as_json(schema.build()))


def main() -> None:
    try:
        cli(prog_name="weightlab")
    except SystemExit as e:
        _exit(e.code)
    _exit(0)


def _exit(code: int | str | None) -> None:
    """Leave with ``code``, as ``sys.exit`` would; after training, without Python's teardown.

    Unloading TensorFlow's thousands of modules and objects at exit takes about a second, after
    every file is written, the store closed and the output printed: the prompt should not wait
    for it (the sweep workers leave the same way). Commands that never load TensorFlow exit as
    usual.
    """
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


__all__ = ["cli", "main"]
