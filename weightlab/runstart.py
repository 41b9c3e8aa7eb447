"""What every way of running a sweep starts from: its events, its datasets, its runs' first records.

The bottom layer of a sweep. :mod:`weightlab.executors` (which never imports TensorFlow) and
:mod:`weightlab.training` (which does) both build on this module, and it imports neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from weightlab import data, yamlio
from weightlab.config import Experiment, RunSpec
from weightlab.errors import ConfigError, DataError, Problem
from weightlab.store import RunRecord, new_record

Event = dict[str, Any]  # a progress event: {"type": "run_start" | "epoch" | "run_end" | ..., ...}
OnEvent = Callable[[Event], None]


def data_key(spec: RunSpec) -> str:
    """Runs with equal data settings and seed share one loaded dataset."""
    return yamlio.dump({"data": spec.config["data"], "seed": spec.seed})


def load_datasets(experiment: Experiment) -> dict[str, data.Dataset]:
    """Load every distinct dataset of the experiment before anything is written.

    Raises:
        ConfigError: a data file's contents are unusable (named with file and line).
    """
    cache: dict[str, data.Dataset] = {}
    for spec in experiment.runs:
        key = data_key(spec)
        if key not in cache:
            try:
                cache[key] = data.load(spec.config["data"], spec.seed)
            except DataError as e:
                raise ConfigError(Problem(spec.locate(("data",)), "data", str(e))) from None
    return cache


def sweep_source(experiment: Experiment) -> dict[str, Any]:
    """A run's ``source``: the config path as given, its absolute path (``resume`` finds the file
    from any folder), the overrides, and whether it was a smoke run."""
    source: dict[str, Any] = {
        "config": experiment.source,
        "config_path": os.path.abspath(experiment.source),
        "overrides": experiment.overrides,
    }
    if experiment.smoke:
        source["smoke"] = True  # the runs' config.yaml hold the cut epochs and samples
    return source


def spec_record(
    spec: RunSpec,
    batch: str,
    *,
    data: dict[str, Any],
    versions: dict[str, str],
    source: dict[str, Any] | None,
) -> RunRecord:
    """The new run record (``running``) of ``spec`` in sweep ``batch``."""
    return new_record(
        experiment=spec.experiment,
        batch=batch,
        index=spec.index,
        seed=spec.seed,
        cell=spec.cell,
        epochs=spec.config["train"]["epochs"],
        snapshots_every=spec.config["snapshots"]["every"],
        data=data,
        versions=versions,
        source=source,
    )
