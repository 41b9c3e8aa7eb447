"""One run end to end (seed, data, model, fit, record) and an experiment's runs in turn."""

from __future__ import annotations

import platform
import time
import traceback
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from weightlab import __version__, data, stats
from weightlab.config import Experiment, RunSpec
from weightlab.errors import ConfigError, Problem
from weightlab.executors import data_key as _data_key
from weightlab.executors import load_datasets
from weightlab.store import RunWriter, Store, new_id, new_record, now_iso
from weightlab.training import keras_names
from weightlab.training.model import build, compile_model
from weightlab.training.snapshots import STEP_BUFFER_BYTES, WeightSnapshots, snapshot_callback

Event = dict[str, Any]
OnEvent = Callable[[Event], None]
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


def check_keras(experiment: Experiment) -> None:
    """Resolve every Keras name of every run; raise one ConfigError listing all failures."""
    problems: list[Problem] = []
    for spec in experiment.runs:
        for p in keras_names.check(spec):
            if p not in problems:
                problems.append(p)
    if problems:
        raise ConfigError(problems)


def set_determinism(seed: int) -> None:
    """Same seed, same machine -> bit-identical weights."""
    # Without the full garbage collection Keras runs by default: it took 0.4 s of a 3 s tiny
    # run, and the previous run's model is freed by Python's own collector all the same.
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def feed(
    dataset: data.Dataset, train_cfg: dict[str, Any], seed: int
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """Cached ``tf.data`` pipelines for training and validation.

    Same batches and number of updates per epoch as ``model.fit(x, y, batch_size, shuffle)``, but
    the arrays are sliced once and kept in the cache instead of re-converted every epoch (the
    per-epoch ``evaluate`` on validation arrays doubled the time of small runs).
    """
    batch = train_cfg["batch_size"]
    train = tf.data.Dataset.from_tensor_slices((dataset.x_train, dataset.y_train)).cache()
    if train_cfg["shuffle"]:
        train = train.shuffle(len(dataset.x_train), seed=seed, reshuffle_each_iteration=True)
    train = train.batch(batch).prefetch(tf.data.AUTOTUNE)
    if dataset.x_val is None:
        return train, None
    val = tf.data.Dataset.from_tensor_slices((dataset.x_val, dataset.y_val)).cache()
    return train, val.batch(batch).prefetch(tf.data.AUTOTUNE)


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
    steps_per_epoch = max(1, -(-len(dataset.x_train) // train_cfg["batch_size"]))
    params = max(1, int(model.count_params()))
    spe = min(steps_per_epoch, max(1, WORK_PER_EXECUTION // (params * train_cfg["batch_size"])))
    if isinstance(every, int):
        copies = max(1, STEP_BUFFER_BYTES // (4 * params))  # float32 copies the buffer holds
        spe = min(spe, copies * every)
    return {
        "steps_per_epoch": steps_per_epoch,
        "steps_per_execution": spe,
        "jit_compile": "auto",
        "feeding": "tf.data from memory: cached, batched, prefetched",
        "snapshot_writes": "background thread",
        "step_snapshots": "copied inside the compiled step" if isinstance(every, int) else None,
    }


def extra_callbacks(train_cfg: dict[str, Any], writer: RunWriter) -> list[keras.callbacks.Callback]:
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
    make_writer: Callable[[Any, dict[str, Any], dict[str, Any]], Any] = RunWriter,
) -> dict[str, Any]:
    """Train one run and record it in the store.

    ``make_writer(store, record, config)`` makes the run's writer: a :class:`RunWriter` into
    ``store``, or an in-memory one that a Dask worker sends back whole (``weightlab.executors``).

    Returns:
        The final run record (run.json). A Python exception inside training marks the run
        ``failed`` (message in run.json, traceback in error.txt) and is not re-raised;
        KeyboardInterrupt marks it ``interrupted`` and is re-raised.
    """
    emit = on_event or (lambda event: None)
    cfg = spec.config
    record = new_record(
        experiment=spec.experiment,
        batch=batch,
        index=spec.index,
        seed=spec.seed,
        cell=spec.cell,
        epochs=cfg["train"]["epochs"],
        snapshots_every=cfg["snapshots"]["every"],
        data=dataset.info,
        versions=versions(),
        source=source,
    )
    writer = make_writer(store, record, cfg)
    emit({"type": "run_start", "run": record})
    t0 = time.perf_counter()
    snap: WeightSnapshots | None = None
    fit_start: float | None = None
    try:
        set_determinism(spec.seed)
        model = build(cfg["model"], dataset.features)
        plan = plan_execution(model, dataset, cfg["train"], cfg["snapshots"]["every"])
        compile_model(model, cfg["train"], plan["steps_per_execution"], plan["jit_compile"])
        record["execution"] = {**plan, "jit_compile": bool(model.jit_compile)}

        def on_epoch(epoch: int, logs: dict[str, Any]) -> None:
            emit({"type": "epoch", "run": record, "epoch": epoch, "logs": logs})

        snap = snapshot_callback(writer, cfg["snapshots"]["every"], on_epoch)
        train, validation = feed(dataset, cfg["train"], spec.seed)
        fit_start = time.perf_counter()
        model.fit(
            train,
            validation_data=validation,
            epochs=cfg["train"]["epochs"],
            shuffle=False,
            callbacks=[snap, *extra_callbacks(cfg["train"], writer)],
            verbose=0,
        )  # the pipeline shuffles
        snap.close()  # a write error fails the run
        if snap.diverged_at_epoch is not None:
            record["status"] = "diverged"
            record["diverged_at_epoch"] = snap.diverged_at_epoch
            record["error"] = f"diverged at epoch {snap.diverged_at_epoch}: {snap.nonfinite}"
        else:
            record["status"] = "completed"
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        raise
    except Exception as e:  # the run failed; the sweep goes on
        record["status"] = "failed"
        record["error"] = summarize_error(e)
        writer.write_text("error.txt", traceback.format_exc())
    finally:
        if snap is not None:
            _finish_writes(snap, record)  # every queued snapshot is on disk before run.json
        writer.close()
        if snap is not None:
            if fit_start is not None:  # also for an interrupted or failed fit
                fit_seconds = time.perf_counter() - fit_start
                record["timing"]["train_seconds"] = round(fit_seconds - snap.snapshot_seconds, 4)
            record["epochs_completed"] = snap.epochs_completed
            record["final"] = snap.last_logs
            record["timing"]["snapshot_seconds"] = round(snap.snapshot_seconds, 4)
            record["snapshots"].update(
                count=snap.snapshot_count, bytes=snap.snapshot_bytes, steps=snap.step_count
            )
        record.update(stats.summarize(snap.rows if snap is not None else []))
        record["timing"]["total_seconds"] = round(time.perf_counter() - t0, 4)
        record["finished_at"] = now_iso()
        writer.save()
        emit({"type": "run_end", "run": record})
    return record


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


def run_experiment(
    experiment: Experiment,
    store: Store,
    *,
    on_event: OnEvent | None = None,
    fail_fast: bool = False,
) -> list[dict[str, Any]]:
    """Check, then train every run of an experiment in turn; returns their records.

    With ``fail_fast``, the first failed run ends the sweep: the runs after it are not started.

    Raises:
        ConfigError: a Keras name or a data file is invalid; nothing was written.
    """
    check_keras(experiment)
    datasets = load_datasets(experiment)
    batch = new_id()
    source: dict[str, Any] = {"config": experiment.source, "overrides": experiment.overrides}
    if experiment.smoke:
        source["smoke"] = True  # the run's config.yaml holds the cut epochs and samples
    emit = on_event or (lambda event: None)
    emit(
        {
            "type": "batch_start",
            "batch": batch,
            "total": len(experiment.runs),
            "describe": experiment.describe(),
        }
    )
    records = []
    for spec in experiment.runs:
        records.append(
            train_run(
                spec, datasets[_data_key(spec)], store, batch, source=source, on_event=on_event
            )
        )
        if fail_fast and records[-1]["status"] == "failed":
            break
    return records
