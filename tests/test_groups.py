"""Grouping runs for the vectorized engine (issue 13): pure config logic, no TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import CONFIGS, REPO

from weightlab import groups
from weightlab.cli import cli
from weightlab.config import load_experiment

BIAS = CONFIGS / "bias-vs-no-bias.yaml"


def plan(config, *overrides, matrix=(), seeds=None, engine="auto"):
    experiment = load_experiment(config, overrides, matrix=matrix, seeds=seeds)
    return groups.plan_groups(experiment.runs, engine)


@pytest.mark.parametrize(
    "axis",
    [
        "model.use_bias=true,false",
        "model.kernel_initializer=glorot_uniform,zeros,{name: random_normal, stddev: 20}",
        "model.bias_initializer=zeros,ones",
        "train.optimizer.learning_rate=0.001,0.1,1.0",
        "data.seed=1,2,3",
        # Optimizer arguments Keras' update uses only in correctly rounded arithmetic.
        "train.optimizer.momentum=0.5,0.9",
        "train.optimizer={name: rmsprop, rho: 0.8},{name: rmsprop, rho: 0.95, epsilon: 0.01}",
        "train.optimizer={name: adam},{name: adam, epsilon: 0.1},{name: adam, epsilon: 1e-3}",
        "train.optimizer={name: lion, beta_1: 0.5},{name: lion, beta_2: 0.9}",
    ],
)
def test_runs_that_differ_only_in_what_a_member_holds_share_one_group(axis):
    got = plan(BIAS, "matrix={}", matrix=[axis], seeds="0-2")
    assert len(got) == 1
    assert got[0].engine == "vectorized"
    values = len(load_experiment(BIAS, ("matrix={}", "seed=0"), matrix=[axis]).runs)
    assert len(got[0].members) == values * 3
    assert got[0].split_by == []


def test_a_layers_own_use_bias_shares_a_group():
    layers = "model.layers=[{units: 8, activation: relu}, {units: 1, name: out, use_bias: false}]"
    got = plan(BIAS, layers, seeds="0-1")
    assert [len(g.members) for g in got] == [4]


@pytest.mark.parametrize(
    ("axis", "key"),
    [
        ("train.batch_size=16,32", "train.batch_size"),
        ("train.epochs=2,3", "train.epochs"),
        ("train.optimizer=sgd,adam", "train.optimizer"),
        ("train.optimizer.momentum=0.0,0.9", "train.optimizer"),  # 0: no momentum variable
        # Adam's betas go through a power of the step (not correctly rounded): they split.
        ("train.optimizer={name: adam, beta_1: 0.5},{name: adam}", "train.optimizer"),
        ("train.optimizer={name: nadam, beta_2: 0.9},{name: nadam}", "train.optimizer"),
        ("train.optimizer={name: sgd, nesterov: true, momentum: 0.9},sgd", "train.optimizer"),
        ("train.loss=mse,mae", "train.loss"),
        ("data.samples=100,200", "data.samples"),
        ("data.offset=1,5", "data.offset"),
        ("snapshots.every=epoch,4", "snapshots.every"),
    ],
)
def test_every_other_difference_splits_and_names_its_key(axis, key):
    got = plan(BIAS, "matrix={}", matrix=[axis], seeds="0-1")
    assert len(got) == 2
    for g in got:
        assert g.engine == "vectorized" and len(g.members) == 2
        assert g.split_by == [key]


def test_widths_and_activations_split():
    wide = (
        "matrix={model.layers: [[{units: 8, activation: relu}, {units: 1}], "
        "[{units: 4, activation: tanh}, {units: 1}]]}"
    )
    got = plan(BIAS, wide)
    assert len(got) == 2
    assert "model.layers.0.units" in got[0].split_by
    assert "model.layers.0.activation" in got[0].split_by


def test_auto_leaves_single_runs_on_keras_and_vectorized_takes_them():
    assert [(g.engine, g.reason) for g in plan(BIAS, "matrix={}", "seed=0")] == [
        ("keras", "a group of one run: nothing to share")
    ]
    assert [g.engine for g in plan(BIAS, "matrix={}", "seed=0", engine="vectorized")] == [
        "vectorized"
    ]
    assert {g.engine for g in plan(BIAS, seeds="0-3", engine="keras")} == {"keras"}
    assert len(plan(BIAS, seeds="0-3", engine="keras")) == 8


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("train.tensorboard=true", "TensorBoard"),
        ("train.optimizer={name: adam, clipnorm: 1.0}", "clipnorm"),
        ("train.optimizer={name: adamw}", "adamw"),
        ("train.optimizer=adafactor", "not one that updates elementwise"),
    ],
)
def test_what_only_keras_runs_falls_back_with_its_reason(override, words):
    got = plan(BIAS, override, seeds="0-1")
    assert {g.engine for g in got} == {"keras"}
    assert all(words in g.reason for g in got)


def test_groups_keep_run_order_and_balanced_halves():
    got = plan(CONFIGS / "dot-product.yaml", seeds="0-4")
    assert [g.indexes for g in got] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    halves = groups.balanced(got[0], 2)
    assert [len(h.members) for h in halves] == [3, 2]
    assert [s.index for h in halves for s in h.members] == got[0].indexes
    assert groups.summary(got) == "vectorized: 2 groups (5, 5 runs)"


def test_dry_run_lists_the_groups_and_the_engine_choice_without_tensorflow(tmp_path):
    fake = tmp_path / "fake"
    for name in ("tensorflow", "keras"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text("raise ImportError('no TensorFlow here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(REPO)]), "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "weightlab", "run", str(CONFIGS / "dot-product.yaml"), "--seeds"]
    out = subprocess.run([*cmd, "0-1", "--dry-run"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "group 1: vectorized engine, runs 1, 2 (2 compatible runs; split by data.weights)" in (
        out.stdout
    )
    keras = subprocess.run(
        [*cmd, "0-1", "--dry-run", "--engine", "keras", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert {r["engine"] for r in json.loads(keras.stdout)} == {"keras"}
    assert len({r["group"] for r in json.loads(keras.stdout)}) == 4


def test_engine_is_a_choice():
    result = CliRunner().invoke(cli, ["run", str(BIAS), "--engine", "vector"])
    assert result.exit_code == 2
    assert "'vector' is not one of 'auto', 'keras', 'vectorized'" in result.output
