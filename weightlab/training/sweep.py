"""A sweep in this process: train every run of an experiment, or resume one run.

The drivers above both engines: they plan the groups (:func:`weightlab.groups.plan_groups`) and
hand them to :mod:`weightlab.training.vectorized` (which trains a group of one on the keras
engine of :mod:`weightlab.training.runner`). :mod:`weightlab.executors` calls
:func:`run_experiment` for a sweep of one process, and ``weightlab resume`` calls
:func:`resume_run`.
"""

from __future__ import annotations

from typing import Any

from weightlab import groups, lifecycle
from weightlab.config import Experiment
from weightlab.errors import ConfigError, Problem
from weightlab.resume import ResumePlan
from weightlab.runstart import OnEvent, data_key, load_datasets, sweep_source
from weightlab.store import Store, new_id
from weightlab.training import keras_names, runner, vectorized


def check_keras(experiment: Experiment) -> None:
    """Resolve every Keras name of every run; raise one ConfigError listing all failures."""
    problems: list[Problem] = []
    for spec in experiment.runs:
        for p in keras_names.check(spec):
            if p not in problems:
                problems.append(p)
    if problems:
        raise ConfigError(problems)


def resume_run(
    plan: ResumePlan, store: Store, *, on_event: OnEvent | None = None
) -> dict[str, Any]:
    """Continue an interrupted or crashed run from its last completed epoch (see
    :func:`weightlab.resume.prepare`, which checked that it may)."""
    try:
        if (plan.record.get("execution") or {}).get("engine") == "vectorized":
            # a member continues alone, the same bits
            return vectorized.resume_member(plan, store, on_event=on_event)
        return runner.resume_keras(plan, store, on_event=on_event)
    finally:
        plan.release()  # released already once the record is final; this covers the rest


def run_experiment(
    experiment: Experiment,
    store: Store,
    *,
    on_event: OnEvent | None = None,
    fail_fast: bool = False,
    engine: str = "auto",
) -> list[dict[str, Any]]:
    """Check, then train every run of an experiment in turn; returns their records.

    With ``fail_fast``, the first failed run ends the sweep: the runs after it are not started.
    ``engine`` chooses how (:func:`weightlab.groups.plan_groups`): groups of compatible runs
    train as one stacked computation on the vectorized engine.

    Raises:
        ConfigError: a Keras name or a data file is invalid; nothing was written.
    """
    check_keras(experiment)
    datasets = load_datasets(experiment)
    batch = new_id()
    source = sweep_source(experiment)
    emit = on_event or (lambda event: None)
    planned = groups.plan_groups(experiment.runs, engine)
    emit(
        {
            "type": "batch_start",
            "batch": batch,
            "total": len(experiment.runs),
            "describe": experiment.describe(),
            "engines": groups.summary(planned),
        }
    )
    with lifecycle.stop_on_signals():
        return vectorized.train_planned(
            planned,
            lambda spec: datasets[data_key(spec)],
            store,
            batch,
            source=source,
            on_event=on_event,
            fail_fast=fail_fast,
        )
