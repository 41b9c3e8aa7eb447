"""Run the runs of a sweep: in this process, in N spawned worker processes, or on Dask distributed.

Importing this module never imports TensorFlow: the parent of a process sweep and the Dask client
stay light, and the worker functions below import the training package only when they run.

- ``jobs == 1``: the runs train one after another in this process
  (:func:`weightlab.training.sweep.run_experiment`).
- ``jobs > 1``: N worker processes started with ``spawn`` (never ``fork`` a process holding
  TensorFlow state or an SQLite connection). Each imports TensorFlow once, with its thread pools
  sized to its share of the cores, trains the runs it is handed one at a time and writes them
  straight into the store (safe for concurrent writers: SQLite WAL and ``BEGIN IMMEDIATE``).
  The parent knows which run each worker holds, so a worker that dies takes only that run down.
- Dask: each run is a task that returns the whole run (record, history rows, snapshot files as
  bytes); the client writes it into the store, which never needs to be on a shared file system.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import threading
import traceback
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from weightlab import data, groups, jsonio, lifecycle, stats
from weightlab.config import Experiment, RunSpec, flatten
from weightlab.errors import ConfigError, Problem, UsageError, WeightlabError
from weightlab.runstart import Event, OnEvent, data_key, load_datasets, spec_record, sweep_source
from weightlab.store import (
    EpochSnapshots,
    RunRecord,
    RunWriter,
    Store,
    new_id,
    now_iso,
    npz_bytes,
    snapshot_usage,
)
from weightlab.trajectory import TrajectoryWriter

if TYPE_CHECKING:
    import numpy as np

EXECUTORS = ("local", "dask")
# Our own LocalCluster's settings (on a user's cluster, theirs apply):
LOCAL_CLUSTER_CONFIG = {
    # A crash of a run should fail that run, not be retried on the next worker until all died.
    "distributed.scheduler.allowed-failures": 0,
    # The workers' statistical profiler samples every thread's stack 100 times a second, which
    # slowed each run a lot against a --jobs worker (docs/benchmarks.md).
    "distributed.worker.profile.enabled": False,
    # The workers' and the scheduler's housekeeping (an event-loop health tick every 20 ms, a
    # memory check every 100 ms, system metrics every 500 ms) competes with training for the
    # same cores, measurably at these intervals (bench_sweeps; docs/benchmarks.md).
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}
# How long an interrupted worker may take to record its run before it is terminated.
WORKER_GRACE_SECONDS = 30.0
# How long to wait for a Dask scheduler to answer, and then for its first worker.
SCHEDULER_TIMEOUT = 10.0
DASK_MISSING = (
    "--executor dask needs Dask distributed, an optional extra of weightlab; "
    "install it with: pip install 'weightlab[dask]'"
)


def _ignore(event: Event) -> None:
    """The default event handler."""


# ---- shared by every executor -------------------------------------------------------------------


def plan(experiment: Experiment, engine: str = "auto") -> list[dict[str, Any]]:
    """The runs a sweep would make, for ``--dry-run``: index (from 1), seed, matrix cell, and the
    group (from 1) and engine each trains in (:func:`weightlab.groups.plan_groups`)."""
    where = {}
    for n, g in enumerate(groups.plan_groups(experiment.runs, engine), 1):
        for s in g.members:
            where[s.index] = (n, g.engine)
    return [
        {
            "run": s.index + 1,
            "seed": s.seed,
            "cell": s.cell,
            "group": where[s.index][0],
            "engine": where[s.index][1],
        }
        for s in experiment.runs
    ]


def cores() -> int:
    """CPU cores this process may use (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


@dataclass
class SweepResult:
    """What a sweep made: the records of the runs that ran (in run order) and how many never ran."""

    batch: str
    records: list[dict[str, Any]]
    cancelled: int = 0


def run_sweep(
    experiment: Experiment,
    store: Store,
    *,
    jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    fail_fast: bool = False,
    on_event: OnEvent | None = None,
    engine: str = "auto",
    scheduler_timeout: float = SCHEDULER_TIMEOUT,
) -> SweepResult:
    """Train every run of ``experiment`` and record it in ``store``.

    Args:
        jobs: worker processes on this machine (``local``), or LocalCluster workers (``dask``).
        executor: ``"local"`` or ``"dask"``.
        scheduler: address of a running Dask scheduler; None starts a LocalCluster.
        fail_fast: after the first failed run start no other (runs already training finish).
        on_event: receives ``batch_start``, ``run_start``, ``epoch`` and ``run_end`` events
            (and ``note``: what a Dask sweep waits for).
        engine: ``auto``, ``keras`` or ``vectorized`` (:func:`weightlab.groups.plan_groups`);
            workers get whole groups, or balanced sub-groups when there are fewer groups than
            workers.
        scheduler_timeout: seconds to wait for the Dask scheduler to answer, then for a worker.

    Raises:
        ConfigError: a Keras name or a data file is invalid; nothing was written.
        UsageError: bad executor options, or the Dask scheduler cannot be reached.
        WeightlabError: Dask is not installed, or the workers cannot start.
    """
    if executor not in EXECUTORS:
        raise UsageError(f"--executor {executor}: expected one of {', '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise UsageError("--scheduler is the address of a Dask scheduler; add --executor dask")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1; got {jobs}")
    emit = on_event or _ignore
    if executor == "local" and (jobs == 1 or len(experiment.runs) == 1):
        from weightlab.training.sweep import run_experiment  # the one TensorFlow import

        records = run_experiment(
            experiment, store, on_event=emit, fail_fast=fail_fast, engine=engine
        )
        batch = records[0]["batch"] if records else new_id()
        return SweepResult(batch, records, len(experiment.runs) - len(records))
    workers = jobs if executor == "local" else max(jobs, 1)
    planned = _tasks(groups.plan_groups(experiment.runs, engine), workers)
    sweep = _Sweep(experiment, store, load_datasets(experiment), fail_fast, emit, planned)
    # SIGTERM/SIGHUP stop a sweep like Ctrl-C: the runs in flight are recorded `interrupted`.
    with lifecycle.stop_on_signals():
        if executor == "dask":
            with _dask_client(scheduler, jobs, scheduler_timeout, emit) as client:
                _run_on_dask(sweep, client)
        else:
            _run_in_processes(sweep, min(jobs, len(experiment.runs)))
    return sweep.result()


def _tasks(planned: list[groups.Group], workers: int) -> list[groups.Group]:
    """The groups as tasks: the largest vectorized group halved until every worker has one."""
    tasks = list(planned)
    while len(tasks) < workers:
        big = max(
            (g for g in tasks if g.engine == "vectorized" and len(g.members) > 1),
            key=lambda g: len(g.members),
            default=None,
        )
        if big is None:
            break
        i = tasks.index(big)
        tasks[i : i + 1] = groups.balanced(big, 2)
    return tasks


@dataclass
class _Sweep:
    """The parent's view of a parallel sweep: what is left, what ran, when to stop."""

    experiment: Experiment
    store: Store
    datasets: dict[str, data.Dataset]
    fail_fast: bool
    emit: OnEvent
    tasks: list[groups.Group]
    batch: str = field(default_factory=new_id)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    stopping: bool = False
    checked: bool = False  # the Keras names have been resolved (by a worker)
    workers: int = 0

    def __post_init__(self) -> None:
        self.pending: deque[groups.Group] = deque(self.tasks)
        self.source = sweep_source(self.experiment)

    def announce(self) -> None:
        self.emit(
            {
                "type": "batch_start",
                "batch": self.batch,
                "total": len(self.experiment.runs),
                "describe": self.experiment.describe(),
                "workers": self.workers,
                "engines": groups.summary(self.tasks),
            }
        )

    def next_group(self) -> groups.Group | None:
        return self.pending.popleft() if self.pending and not self.stopping else None

    def task(self, group: groups.Group) -> tuple[Any, ...]:
        """The arguments a worker needs to train ``group`` (the datasets travel with it)."""
        needed = {data_key(s): self.datasets[data_key(s)] for s in group.members}
        return group, needed, self.batch, self.source

    def finished(self, record: dict[str, Any]) -> None:
        self.records[record["index"]] = record
        self.emit({"type": "run_end", "run": record})
        if self.fail_fast and record["status"] == "failed":
            self.stopping = True

    def crashed(self, spec: RunSpec, run_id: str | None, error: str, detail: str = "") -> None:
        """Record a run whose worker died (or whose task failed outside training) as failed."""
        dataset = self.datasets[data_key(spec)]
        record = record_failure(
            self.store, spec, dataset.info, self.batch, self.source, run_id, error, detail
        )
        self.finished(record)

    def lost(self, spec: RunSpec, epochs: int, interrupt: KeyboardInterrupt) -> None:
        """Record a run that was training on a Dask worker when the sweep was interrupted.

        Its history and snapshots were on the worker and never came back; the record says so,
        rather than the run vanishing.
        """
        dataset = self.datasets[data_key(spec)]
        error = (
            f"interrupted by {lifecycle.signal_name(interrupt)} after epoch {epochs} on a Dask "
            "worker; its history and snapshots stayed there"
        )
        record = record_failure(
            self.store,
            spec,
            dataset.info,
            self.batch,
            self.source,
            None,
            error,
            status="interrupted",
            epochs_completed=epochs,
        )
        self.finished(record)

    def result(self) -> SweepResult:
        records = [self.records[i] for i in sorted(self.records)]
        return SweepResult(self.batch, records, len(self.experiment.runs) - len(records))


def record_failure(
    store: Store,
    spec: RunSpec,
    data_info: dict[str, Any],
    batch: str,
    source: dict[str, Any],
    run_id: str | None,
    error: str,
    detail: str = "",
    *,
    status: str = "failed",
    epochs_completed: int = 0,
) -> dict[str, Any]:
    """Mark a run ``status`` (failed) with ``error``: its directory if it has one, else a new one.

    The rows and snapshots it wrote before its worker died are kept.
    """
    if run_id is not None:
        writer_dir = store.run_dir(run_id)
        record = store.record(run_id)
        history = store.history(run_id)
        record.update(stats.summarize(history))
        record["epochs_completed"] = max(0, len(history) - 1)
        count, size = snapshot_usage(writer_dir / "snapshots")  # what `check` compares
        record["snapshots"].update(count=count, bytes=size)
        flat = flatten(store.config(run_id))
    else:
        fresh = spec_record(spec, batch, data=data_info, versions={}, source=source)
        fresh["epochs_completed"] = epochs_completed
        writer = RunWriter(store, fresh, spec.config)
        writer.close()
        record = writer.record  # the same object, now with its id
        writer_dir, flat = writer.dir, writer.flat
    record.update(status=status, error=error, finished_at=now_iso())
    if detail:
        jsonio.atomic_write_bytes(writer_dir / "error.txt", detail.encode())
    jsonio.atomic_write_json(writer_dir / "run.json", record)
    store.index_run(record, flat)
    return record


def _slim(event: Event) -> Event:
    """What a progress display needs of a worker's event (the full record stays with the run)."""
    run = event["run"]
    slim = {k: run[k] for k in ("id", "index", "experiment", "cell", "seed", "epochs", "pid")}
    return {**event, "run": slim}


# ---- worker processes on this machine ------------------------------------------------------------


def _process_worker(conn: Connection, store_root: str, threads: int) -> None:
    """A spawned worker: import TensorFlow once, then train the runs the parent sends.

    SIGTERM and SIGHUP interrupt the run in training as Ctrl-C does (it is recorded
    ``interrupted``), then the worker leaves.
    """
    try:
        with lifecycle.stop_on_signals():
            _serve(conn, store_root, threads)
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass  # the parent learns it from the store and from the worker's exit


def _serve(conn: Connection, store_root: str, threads: int) -> None:
    """The worker's loop: answer the parent's messages until it says stop."""
    from weightlab.training.threads import limit_threads

    limit_threads(threads)
    from weightlab.training import sweep, vectorized

    store = Store(Path(store_root))

    def forward(event: Event) -> None:
        if event["type"] in ("run_start", "epoch"):
            conn.send(("event", _slim(event)))

    while True:
        message = conn.recv()
        if message[0] == "stop":
            conn.close()
            # Everything is written and closed; TensorFlow's own teardown takes seconds.
            os._exit(0)
        if message[0] == "check":
            try:
                sweep.check_keras(message[1])
                conn.send(("checked", []))
            except ConfigError as e:
                conn.send(("checked", e.problems))
            continue
        group, datasets, batch, source = message[1:]

        def dataset_of(spec: RunSpec, d: dict[str, data.Dataset] = datasets) -> data.Dataset:
            return d[data_key(spec)]

        records = vectorized.train_one(
            group,
            dataset_of,
            store,
            batch,
            source=source,
            on_event=forward,
        )
        conn.send(("done", records))


class _Process:
    """One worker process, its end of the pipe, and the run it is training."""

    def __init__(self, ctx: Any, store_root: str, threads: int):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_process_worker, args=(child, store_root, threads), daemon=True
        )
        self.process.start()
        child.close()  # so that the parent sees EOF when the worker dies
        self.group: groups.Group | None = None
        self.run_ids: dict[int, str] = {}  # run index -> id, of the group's runs that started

    def send(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):  # it died; its sentinel says so
            self.conn.send(message)

    def messages(self) -> Iterator[tuple[Any, ...]]:
        """Every message waiting in the pipe (without blocking)."""
        try:
            while self.conn.poll():
                yield self.conn.recv()
        except (EOFError, OSError):
            return

    def stop(self, timeout: float = 10.0) -> None:
        self.send(("stop",))
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.conn.close()


def _run_in_processes(sweep: _Sweep, n: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, cores() // n)
    root = str(sweep.store.root.resolve())
    workers: list[_Process] = [_Process(ctx, root, threads) for _ in range(n)]
    sweep.workers = n
    workers[0].send(("check", sweep.experiment))  # resolved while the others import TensorFlow
    try:
        while True:
            if sweep.checked:
                for w in workers:
                    group = sweep.next_group() if w.group is None else None
                    if group is not None:
                        w.group = group
                        w.send(("run", *sweep.task(group)))
                if all(w.group is None for w in workers):
                    return
            ready = wait([w.conn for w in workers] + [w.process.sentinel for w in workers])
            for w in list(workers):
                if w.conn in ready or w.process.sentinel in ready:
                    for message in w.messages():
                        _handle(sweep, w, message)
                if w.process.sentinel in ready:
                    workers.remove(w)
                    _bury(sweep, w)
                    if sweep.pending and not sweep.stopping:
                        workers.append(_Process(ctx, root, threads))
    except KeyboardInterrupt as e:
        _interrupt_workers(sweep, workers, e)
        raise
    finally:
        for w in workers:
            w.stop()


def _interrupt_workers(
    sweep: _Sweep, workers: list[_Process], interrupt: KeyboardInterrupt
) -> None:
    """Pass the parent's signal on and wait until each worker has recorded its run.

    Ctrl-C in a terminal reaches every process of the group already; a signal sent to the
    parent alone (``kill``, a CI runner cancelling a job) would otherwise leave the workers
    training for a parent that is gone.
    """
    signum = getattr(interrupt, "signum", signal.SIGINT)
    with lifecycle.signals_deferred():  # a second Ctrl-C must not cut the wait short
        for w in workers:
            if w.process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(w.process.pid, signum)
        busy = sum(bool(w.run_ids) for w in workers)
        if busy:
            sweep.emit(
                {
                    "type": "note",
                    "text": f"waiting up to {WORKER_GRACE_SECONDS:g} s for {busy} worker "
                    f"process(es) to record the runs each was training",
                }
            )
        for w in workers:
            w.process.join(WORKER_GRACE_SECONDS)
            for run_id in w.run_ids.values():
                with contextlib.suppress(WeightlabError, OSError):
                    sweep.emit({"type": "run_end", "run": sweep.store.record(run_id)})


def _bury(sweep: _Sweep, w: _Process) -> None:
    """A worker died: its run (if any) is recorded as failed; before the check, nothing can run."""
    w.process.join()
    w.conn.close()
    code = w.process.exitcode
    if not sweep.checked:
        raise WeightlabError(f"a worker process died while loading TensorFlow (exit code {code})")
    for spec in w.group.members if w.group is not None else []:
        sweep.crashed(spec, w.run_ids.get(spec.index), f"worker process died (exit code {code})")


def _handle(sweep: _Sweep, w: _Process, message: tuple[Any, ...]) -> None:
    """Act on one message from a worker process."""
    kind = message[0]
    if kind == "checked":
        if message[1]:
            raise ConfigError(message[1])
        sweep.checked = True
        sweep.announce()
    elif kind == "event":
        if message[1]["type"] == "run_start":
            w.run_ids[message[1]["run"]["index"]] = message[1]["run"]["id"]
        sweep.emit(message[1])
    elif kind == "done":
        w.group, w.run_ids = None, {}
        for record in message[1]:
            sweep.finished(record)


# ---- Dask distributed ----------------------------------------------------------------------------


class MemoryWriter(EpochSnapshots):
    """The interface of :class:`~weightlab.store.RunWriter`, in memory: a Dask task returns it.

    The run gets its id when the client writes it into the store (:func:`write_collected`).
    ``dir`` is a temporary directory on the worker for what Keras callbacks write themselves
    (``train.tensorboard``) and for the epochs' trajectory, written there exactly as
    :class:`RunWriter` writes it; its files travel back with the run.
    """

    def __init__(self, store: Any, record: RunRecord, config: dict[str, Any]):
        self.record = cast(dict[str, Any], record)
        self.config = config
        self.history: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}  # path in the run directory -> contents
        self.dir = Path(tempfile.mkdtemp(prefix="weightlab-run-"))
        (self.dir / "snapshots").mkdir()
        compress = bool(config["snapshots"].get("compress", False))
        self.epochs = None if compress else TrajectoryWriter(self.dir / "snapshots")

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def save(self) -> None:
        """Nothing to do: the client writes run.json once the run is back."""

    def append_history(self, row: dict[str, Any]) -> None:
        self.history.append(row)

    def write_snapshot(self, filename: str, arrays: dict[str, np.ndarray]) -> int:
        data = npz_bytes(arrays, bool(self.config["snapshots"].get("compress", False)))
        self.files[f"snapshots/{filename}"] = data
        return len(data)

    def write_text(self, filename: str, text: str) -> None:
        self.files[filename] = text.encode()

    def drop_snapshots_after(self, epoch: int) -> None:
        """Never called: a Dask task trains a run from its start; resuming happens where the
        store is, through a :class:`~weightlab.store.RunWriter`."""
        raise NotImplementedError("a run in memory on a Dask worker is not resumed")

    def close(self) -> None:
        """Nothing to close."""

    def collected(self) -> CollectedRun:
        """The run as plain data; the temporary directory's files are read and removed."""
        for path in sorted(p for p in self.dir.rglob("*") if p.is_file()):
            self.files[path.relative_to(self.dir).as_posix()] = path.read_bytes()
        shutil.rmtree(self.dir, ignore_errors=True)
        return CollectedRun(self.record, self.config, self.history, self.files)


@dataclass
class CollectedRun:
    """One finished run as plain data: what a Dask worker sends back to the client."""

    record: dict[str, Any]
    config: dict[str, Any]
    history: list[dict[str, Any]]
    files: dict[str, bytes]


def write_collected(store: Store, run: CollectedRun) -> dict[str, Any]:
    """Write a run trained elsewhere into ``store``; returns its record, now with its id.

    run.json says ``running`` until every file is in place, as for a run trained here.
    """
    record = run.record
    status = record["status"]
    record["status"] = "running"
    # Its id carries the time it started on the worker, not the time it came back.
    writer = RunWriter(store, record, run.config, id_time=record.get("started_at"))
    for row in run.history:
        writer.append_history(row)
    for name, contents in run.files.items():
        (writer.dir / name).parent.mkdir(parents=True, exist_ok=True)
        jsonio.atomic_write_bytes(writer.dir / name, contents)
    writer.close()
    record["status"] = status
    writer.save()
    return record


_TRAIN_LOCK = threading.Lock()
_PREPARED = False


def _dask_train(
    group: groups.Group,
    datasets: dict[str, data.Dataset],
    batch: str,
    source: dict[str, Any],
    workers_per_host: dict[str, int],
    topic: str,
) -> list[CollectedRun]:
    """A Dask task: train one group in memory and return its runs; progress goes out as worker
    events."""
    worker = _dask_prepare(workers_per_host)
    # Keras' session and random seeds are per process: one run at a time in a worker process.
    with _TRAIN_LOCK:
        from weightlab.training import vectorized

        writers: list[MemoryWriter] = []

        def make_writer(store: Any, record: RunRecord, config: dict[str, Any]) -> MemoryWriter:
            writers.append(MemoryWriter(store, record, config))
            return writers[-1]

        def forward(event: Event) -> None:
            if event["type"] in ("run_start", "epoch"):
                worker.log_event(topic, _slim(event))

        stop = _stop_event(batch)
        # Cancelling a future does not stop the thread that runs it: the training polls the
        # sweep's stop event instead, and ends like a run stopped by a signal.
        # KeyboardInterrupt: the runs are recorded interrupted; nobody waits for them any more.
        with lifecycle.remote_stop(stop.is_set), contextlib.suppress(KeyboardInterrupt):
            vectorized.train_one(
                group,
                lambda spec: datasets[data_key(spec)],
                None,
                batch,
                source=source,
                on_event=forward,
                make_writer=make_writer,
            )
        return [w.collected() for w in writers]


def _stop_event(batch: str, client: Any = None) -> Any:
    """The distributed Event a sweep sets when it is stopped; its workers' runs poll it."""
    import distributed

    return distributed.Event(f"weightlab-stop-{batch}", client=client)


def _dask_warm(workers_per_host: dict[str, int]) -> None:
    """A Dask task: load TensorFlow on a worker before its first run arrives."""
    _dask_prepare(workers_per_host)


def _dask_prepare(workers_per_host: dict[str, int]) -> Any:
    """Import TensorFlow once per worker, its thread pools sized to this host's share of cores."""
    global _PREPARED
    from distributed import get_worker

    worker = get_worker()
    with _TRAIN_LOCK:
        if not _PREPARED:
            from weightlab.training.threads import limit_threads

            host = urlsplit(worker.address).hostname or ""
            limit_threads(max(1, cores() // workers_per_host.get(host, 1)))
            from weightlab.training._keras_compat import use_python_random

            use_python_random()  # the worker's event loop shares the process
            _PREPARED = True
    return worker


def _dask_check(experiment: Experiment, workers_per_host: dict[str, int]) -> list[Problem]:
    """A Dask task: resolve every Keras name where the runs will train."""
    _dask_prepare(workers_per_host)
    from weightlab.training import sweep

    try:
        sweep.check_keras(experiment)
    except ConfigError as e:
        return e.problems
    return []


@contextmanager
def _dask_client(
    scheduler: str | None, jobs: int, timeout: float = SCHEDULER_TIMEOUT, emit: OnEvent = _ignore
) -> Iterator[Any]:
    """A client of the scheduler at ``scheduler``, or of a new LocalCluster of ``jobs`` workers.

    Each wait is bounded by ``timeout`` and says first what it waits for.
    """
    try:
        import dask
        import distributed
    except ImportError:
        raise WeightlabError(DASK_MISSING) from None
    if scheduler:
        emit(
            {
                "type": "note",
                "text": f"connecting to the Dask scheduler at {scheduler} "
                f"(waiting up to {timeout:g} s, --scheduler-timeout)",
            }
        )
        try:
            # The dashboard of a client is never started: no "Port 8787 is already in use".
            client = distributed.Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as e:
            raise UsageError(
                f"--scheduler {scheduler}: no Dask scheduler answered there within {timeout:g} s "
                f"({type(e).__name__}); start one with `dask scheduler` and give the address it "
                "prints, or wait longer with --scheduler-timeout"
            ) from None
        with client:
            if not client.scheduler_info().get("workers"):
                emit(
                    {
                        "type": "note",
                        "text": f"the Dask scheduler at {scheduler} has no worker "
                        f"yet: waiting up to {timeout:g} s for one",
                    }
                )
            try:
                client.wait_for_workers(1, timeout=timeout)
            except (TimeoutError, distributed.TimeoutError):
                raise UsageError(
                    f"the Dask scheduler at {scheduler} answered but has no workers after "
                    f"{timeout:g} s; start one with `dask worker {scheduler} --nthreads 1` "
                    "(or wait longer with --scheduler-timeout)"
                ) from None
            yield client
        return
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        cluster = distributed.LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # No dashboard, and the scheduler's HTTP server on a free port: with the default
            # (8787) taken, distributed warns "Port 8787 is already in use".
            scheduler_kwargs={"dashboard_address": ":0"},
            silence_logs=logging.ERROR,
        )
    with cluster, distributed.Client(cluster) as client:
        client.register_plugin(_exit_fast_plugin(distributed))
        yield client


def _exit_fast_plugin(distributed: Any) -> Any:
    """A plugin for our own LocalCluster's workers: leave at once when the cluster closes.

    A worker process that has loaded TensorFlow takes seconds to exit (its teardown), and the
    nanny waits for it before killing it; the results are all back by then.
    """

    class ExitFast(distributed.WorkerPlugin):
        name = "weightlab-exit-fast"

        def teardown(self, worker: Any) -> None:
            os._exit(0)

    return ExitFast()


def _run_on_dask(sweep: _Sweep, client: Any) -> None:
    workers = client.scheduler_info()["workers"]
    sweep.workers = len(workers)
    per_host = dict(Counter(urlsplit(addr).hostname or "" for addr in workers))
    # Every worker loads TensorFlow now, in parallel, rather than when its first run arrives.
    warming = [
        client.submit(_dask_warm, per_host, workers=[addr], allow_other_workers=True, pure=False)
        for addr in workers
    ]
    problems = client.submit(_dask_check, sweep.experiment, per_host, pure=False).result()
    if problems:
        raise ConfigError(problems)
    sweep.checked = True
    sweep.announce()
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    topic = f"weightlab-{sweep.batch}"
    client.subscribe_topic(topic, lambda event: inbox.put(("event", event[1])))
    futures: dict[int, Any] = {}  # by the index of the group's first run
    tasks: dict[int, groups.Group] = {}
    while (group := sweep.next_group()) is not None:
        first = group.members[0].index
        _, needed, batch, source = sweep.task(group)
        future = client.submit(
            _dask_train,
            group,
            needed,
            batch,
            source,
            per_host,
            topic,
            key=f"weightlab-{sweep.batch}-{first}",
            pure=False,
        )
        future.add_done_callback(lambda f, i=first: inbox.put(("done", (i, f))))
        futures[first], tasks[first] = future, group
    epochs: dict[int, int] = {}  # runs that started on a worker: epochs completed there
    try:
        while futures:
            kind, payload = inbox.get()
            if kind == "event":
                index = payload["run"]["index"]
                if index in sweep.records:
                    continue  # events travel apart from results: never report a run after its end
                epochs[index] = payload.get("epoch", epochs.get(index, 0))
                sweep.emit(payload)
            elif payload[0] in futures:
                first, future = payload
                del futures[first]
                _dask_finished(sweep, tasks[first], future)
                if sweep.stopping:  # --fail-fast: what has not started never will
                    unstarted = [
                        i for i in futures if not any(s.index in epochs for s in tasks[i].members)
                    ]
                    client.cancel([futures.pop(i) for i in unstarted])
    except KeyboardInterrupt as e:
        with lifecycle.signals_deferred():
            with contextlib.suppress(Exception):  # first: the workers stop training at once
                _stop_event(sweep.batch, client).set()
            for first in sorted(futures):
                for spec in tasks[first].members:
                    if spec.index in epochs:
                        sweep.lost(spec, epochs[spec.index], e)
        raise
    finally:
        client.unsubscribe_topic(topic)
        client.cancel(list(futures.values()) + warming)


def _dask_finished(sweep: _Sweep, group: groups.Group, future: Any) -> None:
    try:
        runs: list[CollectedRun] = future.result()
    except Exception as e:  # the task itself failed: its worker died, or the run could not travel
        detail = "".join(traceback.format_exception(e))
        for spec in group.members:
            sweep.crashed(spec, None, f"{type(e).__name__}: {e}"[:300], detail)
        return
    for run in runs:
        sweep.finished(write_collected(sweep.store, run))
