"""One run end to end (seed, data, model, fit, record) and an experiment's runs in turn."""

from __future__ import annotations

import os
import platform
import socket
import time
import traceback
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from weightlab import __version__, data, lifecycle, stats
from weightlab.config import RunSpec
from weightlab.resume import ResumePlan, fingerprint
from weightlab.runstart import OnEvent, spec_record
from weightlab.sink import MakeSink, RunSink
from weightlab.store import RunWriter, Store, now_iso
from weightlab.training import state
from weightlab.training.model import build, compile_model
from weightlab.training.snapshots import STEP_BUFFER_BYTES, WeightSnapshots, snapshot_callback
from weightlab.training.stopping import StopOnRequest

# Steps run in one compiled call are capped at about this many multiply-adds (batch x parameters
# per step), a fraction of a second on one core: Keras' Python work per call is what makes small
# models slow, and a call must stay short enough for Ctrl-C to be honoured promptly.
WORK_PER_EXECUTION = 2**31


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "weightlab": __version__,
    }


def set_determinism(seed: int) -> None:
    """Same seed, same machine -> bit-identical weights."""
    # Without the full garbage collection Keras runs by default: it was a large share of a tiny
    # run (docs/benchmarks.md), and Python's own collector frees the previous model anyway.
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def steps_per_epoch(dataset: data.Dataset, train_cfg: dict[str, Any]) -> int:
    return -(-len(dataset.x_train) // train_cfg["batch_size"])


def plan_execution(
    model: keras.Model, dataset: data.Dataset, train_cfg: dict[str, Any], every: str | int
) -> dict[str, Any]:
    """How to run ``fit`` fast without changing its result; recorded as ``execution`` in run.json.

    All the steps of an epoch go into one compiled call (``steps_per_execution``) unless a step
    is big enough for Keras' per-call overhead not to matter. Per-step snapshots are copied
    inside the step (:class:`~weightlab.training.snapshots.StepCapture`); their buffer bounds
    the steps per call. XLA follows Keras' ``jit_compile="auto"``, which Keras turns off while
    TensorFlow op determinism is on (weightlab's bit-identical runs need it); ``execution``
    records the value Keras settled on.
    """
    spe_total = steps_per_epoch(dataset, train_cfg)
    params = max(1, int(model.count_params()))
    spe = min(spe_total, max(1, WORK_PER_EXECUTION // (params * train_cfg["batch_size"])))
    if isinstance(every, int):
        copies = max(1, STEP_BUFFER_BYTES // (4 * params))  # float32 copies the buffer holds
        spe = min(spe, copies * every)
    # A divisor of the epoch's steps: feed() serves all epochs back to back (each epoch's order
    # keyed by (seed, epoch), for resume), and a compiled call runs its steps regardless of
    # epoch boundaries, so a call that does not divide the epoch would shift every later epoch.
    spe = max(d for d in range(1, spe + 1) if spe_total % d == 0)
    return {
        "steps_per_epoch": spe_total,
        "steps_per_execution": spe,
        "jit_compile": "auto",
        "feeding": f"tf.data from memory: batched, {PREFETCH} batches prefetched, autotune off",
        "snapshot_writes": "background thread",
        "step_snapshots": "copied inside the compiled step" if isinstance(every, int) else None,
    }


# Batches prepared ahead of the step. A fixed number rather than tf.data's autotuning: the
# autotuner's thread made destroying the pipeline at the end of ``fit`` wait in half of the runs
# (bench_snapshots; docs/benchmarks.md), and gathering rows that are already in memory needs no
# tuning.
PREFETCH = 2
_FIXED = tf.data.Options()
_FIXED.autotune.enabled = False


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> tf.Tensor:
    """The order of the training rows in ``epoch``: a pure function of (seed, epoch).

    Stateless random numbers, so that a resumed run sees epoch k's batches exactly as a run that
    was never stopped (a ``shuffle(reshuffle_each_iteration=True)`` depends on how many epochs
    the same iterator already went through).
    """
    if not shuffle:
        return tf.range(n, dtype=tf.int64)
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.cast(tf.argsort(tf.random.stateless_uniform([n], seed=key), stable=True), tf.int64)


def feed(
    dataset: data.Dataset, train_cfg: dict[str, Any], seed: int, initial_epoch: int = 0
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """``tf.data`` pipelines for training (epochs ``initial_epoch`` .. end, back to back) and
    validation.

    The training pipeline yields ``steps_per_epoch`` batches per epoch, each epoch ordered by
    :func:`epoch_order`; give ``model.fit`` the same ``initial_epoch`` and ``steps_per_epoch``.
    Same batches and number of updates per epoch as ``model.fit(x, y, batch_size, shuffle)``.
    """
    batch = train_cfg["batch_size"]
    x, y = tf.constant(dataset.x_train), tf.constant(dataset.y_train)
    n = len(dataset.x_train)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        rows = tf.data.Dataset.from_tensor_slices(epoch_order(n, seed, epoch, train_cfg["shuffle"]))
        return rows.batch(batch).map(lambda i: (tf.gather(x, i), tf.gather(y, i)))

    epochs = tf.data.Dataset.range(initial_epoch, train_cfg["epochs"])
    train = epochs.flat_map(one_epoch).prefetch(PREFETCH).with_options(_FIXED)
    if dataset.x_val is None:
        return train, None
    val = tf.data.Dataset.from_tensor_slices((dataset.x_val, dataset.y_val)).cache()
    return train, val.batch(batch).prefetch(PREFETCH).with_options(_FIXED)


def extra_callbacks(train_cfg: dict[str, Any], writer: RunSink) -> list[keras.callbacks.Callback]:
    """Keras' own callbacks the config asks for: TensorBoard's live view, in the run directory."""
    if not train_cfg.get("tensorboard"):
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(writer.dir / "tensorboard"))]


def train_run(
    spec: RunSpec,
    dataset: data.Dataset,
    store: Store | None,
    batch: str,
    *,
    source: dict[str, Any] | None = None,
    on_event: OnEvent | None = None,
    make_writer: MakeSink = RunWriter,
    execution: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one run and record it in the store.

    ``execution`` is added to run.json's ``execution`` (the engine and why it was chosen).

    ``make_writer(store, record, config)`` makes the run's writer: a :class:`RunWriter` into
    ``store``, or an in-memory one that a Dask worker sends back whole (``weightlab.executors``).

    Returns:
        The final run record (run.json). A Python exception inside training marks the run
        ``failed`` (message in run.json, traceback in error.txt) and is not re-raised;
        KeyboardInterrupt (Ctrl-C, or SIGTERM turned into :class:`lifecycle.Terminated`) marks it
        ``interrupted`` and is re-raised.
    """
    cfg = spec.config
    data_info = {**dataset.info, "fingerprint": fingerprint(dataset)}
    record = spec_record(spec, batch, data=data_info, versions=versions(), source=source)
    record["execution"] = dict(execution or {"engine": "keras"})
    writer = make_writer(store, record, cfg)
    return _train(writer, cfg, spec.seed, dataset, on_event or (lambda event: None))


def resume_keras(
    plan: ResumePlan, store: Store, *, on_event: OnEvent | None = None
) -> dict[str, Any]:
    """Continue a run of the keras engine from its last completed epoch (the sweep's
    :func:`weightlab.training.sweep.resume_run` chooses the engine and releases the plan)."""
    saved = state.load(plan.state)
    writer = RunWriter.reopen(store, plan.run_id, plan.lock)  # the lock prepare took
    with lifecycle.stop_on_signals():
        return _train(
            writer,
            plan.config,
            plan.record["seed"],
            plan.dataset,
            on_event or (lambda event: None),
            saved,
        )


def _train(
    writer: RunSink,
    cfg: dict[str, Any],
    seed: int,
    dataset: data.Dataset,
    emit: OnEvent,
    saved: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Fit (from scratch, or from a resume state), recording as it goes; returns run.json.

    ``writer`` is a :class:`RunWriter` or the in-memory writer of a Dask worker.
    """
    record = writer.record
    emit({"type": "run_start", "run": record})
    t0 = time.perf_counter()
    snap: WeightSnapshots | None = None
    keep: state.ResumeState | None = None
    fit_start: float | None = None
    try:
        set_determinism(seed)
        model = build(cfg["model"], dataset.features)
        plan = plan_execution(model, dataset, cfg["train"], cfg["snapshots"]["every"])
        compile_model(model, cfg["train"], plan["steps_per_execution"], plan["jit_compile"])
        engine = record.get("execution") or {"engine": "keras"}
        record["execution"] = {**plan, "jit_compile": bool(model.jit_compile), **engine}

        def on_epoch(epoch: int, logs: dict[str, Any]) -> None:
            emit({"type": "epoch", "run": record, "epoch": epoch, "logs": logs})

        snap = snapshot_callback(writer, cfg["snapshots"]["every"], on_epoch)
        keep = state.ResumeState(writer, snap)
        spe = steps_per_epoch(dataset, cfg["train"])
        initial_epoch = 0
        if saved is not None:
            assert isinstance(writer, RunWriter), "a run resumes where its store is"
            initial_epoch = _restore(model, saved, snap, keep, writer)
        train, validation = feed(dataset, cfg["train"], seed, initial_epoch)
        fit_start = time.perf_counter()
        stop = StopOnRequest()  # last: an epoch that ended is recorded before a stop
        with lifecycle.polling():  # a first signal sets a flag that `stop` turns into a stop
            model.fit(
                train,
                validation_data=validation,
                initial_epoch=initial_epoch,
                epochs=cfg["train"]["epochs"],
                steps_per_epoch=spe,
                shuffle=False,
                callbacks=[snap, keep, *extra_callbacks(cfg["train"], writer), stop],
                verbose=0,
            )  # the pipeline shuffles
        snap.close()  # a write error fails the run
        if snap.diverged_at_epoch is not None:
            _record_divergence(record, snap, keep, model, dataset, cfg, seed)
        else:
            record["status"] = "completed"
    except KeyboardInterrupt as e:
        record["status"] = "interrupted"
        done = snap.epochs_completed if snap is not None else 0
        record["error"] = f"interrupted by {lifecycle.signal_name(e)} after epoch {done}"
        raise
    except Exception as e:  # the run failed; the sweep goes on
        record["status"] = "failed"
        record["error"] = summarize_error(e)
        writer.write_text("error.txt", traceback.format_exc())
    finally:
        with lifecycle.signals_deferred():  # a second Ctrl-C must not leave run.json `running`
            _finish(writer, snap, keep, fit_start, t0, resuming=saved is not None)
        emit({"type": "run_end", "run": record})
    return record


def _restore(
    model: keras.Model,
    saved: dict[str, np.ndarray],
    snap: WeightSnapshots,
    keep: state.ResumeState,
    writer: RunWriter,
) -> int:
    """Load a resume state into the model and the callbacks; mark the run running again."""
    epoch = state.restore(model, saved)
    snap.set_model(model)  # fit() would do it, but the callbacks need the model before that
    keep.last = saved
    record = writer.record
    rows = [row for row in writer.store.history(writer.id) if row["epoch"] <= epoch]
    writer.rewrite_history(rows)
    snap.resume_from(epoch, rows, state.initial(saved), record)
    record["resumed"] = [
        *(record.get("resumed") or []),
        {"from_epoch": epoch, "at": now_iso(), "pid": os.getpid(), "host": socket.gethostname()},
    ]
    record.update(
        status="running",
        error=None,
        finished_at=None,
        pid=os.getpid(),
        pid_started=lifecycle.process_start_time(),
        host=socket.gethostname(),
    )
    writer.save()
    return epoch


def _record_divergence(
    record: dict[str, Any],
    snap: WeightSnapshots,
    keep: state.ResumeState,
    model: keras.Model,
    dataset: data.Dataset,
    cfg: dict[str, Any],
    seed: int,
) -> None:
    """Mark the run diverged, replaying the bad epoch to name the batch and the variable."""
    epoch = snap.diverged_at_epoch
    assert epoch is not None
    record["status"] = "diverged"
    record["diverged_at_epoch"] = epoch
    where = None
    try:
        one = feed(dataset, {**cfg["train"], "epochs": epoch}, seed, epoch - 1)[0]
        where = state.first_nonfinite(model, keep.last, one.as_numpy_iterator())
    except Exception:  # the replay only adds detail; the divergence itself is recorded anyway
        where = None
    spe = steps_per_epoch(dataset, cfg["train"])
    detail = {"epoch": epoch, "batch": None, "step": None, "variable": snap.first_bad}
    if where is not None:
        detail.update(where, step=(epoch - 1) * spe + where["batch"])
    record["divergence"] = detail
    at = f"epoch {epoch}" + (f", batch {detail['batch']}" if detail["batch"] else "")
    first = "the loss" if detail["variable"] == "loss" else detail["variable"]
    record["error"] = f"diverged at {at}: {first} went non-finite first ({snap.nonfinite})"


def _finish(
    writer: RunSink,
    snap: WeightSnapshots | None,
    keep: state.ResumeState | None,
    fit_start: float | None,
    t0: float,
    *,
    resuming: bool = False,
) -> None:
    """Write the final record: timing (added to earlier sessions of a resumed run), summary."""
    record = writer.record
    if snap is not None:
        _finish_writes(snap, record)  # every queued snapshot is on disk before run.json
    writer.close()
    if snap is not None and resuming and not snap.resumed:
        snap = None  # stopped before the resume state was loaded: keep what run.json says
    timing = record["timing"]
    before = {k: timing.get(k, 0.0) if resuming else 0.0 for k in timing}
    if snap is not None:
        if fit_start is not None:  # also for an interrupted or failed fit
            fit_seconds = time.perf_counter() - fit_start
            own = snap.session_snapshot_seconds + (keep.seconds if keep else 0.0)
            timing["train_seconds"] = round(before["train_seconds"] + fit_seconds - own, 4)
        if keep is not None:
            timing["state_seconds"] = round(before.get("state_seconds", 0.0) + keep.seconds, 4)
        record["epochs_completed"] = snap.epochs_completed
        record["batches_seen"] = snap.batches_seen
        record["final"] = snap.last_logs
        timing["snapshot_seconds"] = round(snap.snapshot_seconds, 4)
        record["snapshots"].update(
            count=snap.snapshot_count, bytes=snap.snapshot_bytes, steps=snap.step_count
        )
    if snap is not None or not resuming:
        record.update(stats.summarize(snap.rows if snap is not None else []))
    timing["total_seconds"] = round(before["total_seconds"] + time.perf_counter() - t0, 4)
    record["finished_at"] = now_iso()
    writer.save()


def _finish_writes(snap: WeightSnapshots, record: dict[str, Any]) -> None:
    """Wait for the snapshot writer; a write error fails the run unless it already ended badly."""
    try:
        snap.close()
    except Exception as e:
        if record["status"] in ("running", "completed", "diverged"):
            record["status"] = "failed"
            record["error"] = summarize_error(e)


def summarize_error(error: BaseException, limit: int = 300) -> str:
    """One readable line for run.json; the full traceback goes to error.txt.

    TensorFlow's graph errors carry the Python stack of every op; the cause is in the lines after
    the last ``File "..."`` entry.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if any(line.startswith('File "') for line in lines):
        last = max(i for i, line in enumerate(lines) if line.startswith('File "'))
        lines = [line for line in lines[last + 1 :] if not line.startswith("[[")] or lines[:1]
    text = f"{type(error).__name__}: {' '.join(lines[:2])}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
