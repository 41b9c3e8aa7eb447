"""Helpers shared by the benchmark scripts: interleaved timing, weightlab runs, plain Keras models.

Every script measures its variants in one process, one repetition of each in turn (so that the
machine's load falls on all of them alike), and reports medians and ratios of medians.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def interleave(variants: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run every variant once per round, ``repeats`` rounds; each returns its own seconds."""
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(repeats):
        for label, measure in variants.items():
            times[label].append(measure())
    return times


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def fresh_median(argv: list[str], env: dict[str, str], repeats: int) -> float:
    """Median wall seconds of ``python argv`` in ``repeats`` fresh processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_table(title: str, times: dict[str, list[float]], base: str, extra: str = "") -> None:
    """Median, min and ratio to ``base`` of each variant."""
    print(f"\n{title}")
    print(f"{'variant':<50} {'median s':>9} {'min s':>7} {'ratio':>7}   (ratio: to {base!r})")
    for label, values in times.items():
        ratio = median(values) / median(times[base])
        print(f"{label:<50} {median(values):>9.3f} {min(values):>7.3f} {ratio:>7.3f}")
    if extra:
        print(extra)


class Lab:
    """weightlab runs of one YAML experiment in a temporary store."""

    def __init__(self, yaml_text: str):
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name)
        self.config = self.dir / "bench.yaml"
        self.config.write_text(yaml_text)
        from weightlab.store import Store

        self.store = Store(self.dir / "store")

    def run(self, *overrides: str, on_event: Callable[[dict[str, Any]], None] | None = None) -> Any:
        """Train once; returns the run record."""
        from weightlab.config import load_experiment
        from weightlab.training.sweep import run_experiment

        exp = load_experiment(self.config, list(overrides))
        (record,) = run_experiment(exp, self.store, on_event=on_event)
        assert record["status"] == "completed", record["error"]
        return record

    def fit_seconds(self, *overrides: str) -> float:
        """The run's time in ``fit`` (training and waiting for snapshot writes)."""
        timing = self.run(*overrides)["timing"]
        return float(timing["train_seconds"] + timing["snapshot_seconds"])

    def dataset(self) -> Any:
        """The experiment's training arrays, as weightlab loads them."""
        from weightlab import data
        from weightlab.config import load_experiment

        (spec,) = load_experiment(self.config).runs
        return data.load(spec.config["data"], spec.seed)

    def close(self) -> None:
        self._tmp.cleanup()


def keras_mlp(features: int, hidden: list[int]) -> Any:
    """The plain Keras model of the anchors: ReLU Dense layers, one linear output, SGD on MSE.

    Op determinism, which every weightlab run switches on for the whole process, is switched
    off again: a plain script does not pay for it.
    """
    import keras
    from tensorflow.python.framework import config

    config.disable_op_determinism()

    layers = [keras.Input(shape=(features,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers.append(keras.layers.Dense(1))
    model = keras.Sequential(layers)
    model.compile(optimizer="sgd", loss="mse")
    return model
