"""The vectorized engine (issue 13): bit-identity across groups, agreement with the keras engine,
isolation, per-member learning rates, bias-free members, lifecycle and executors.

Every test trains real (tiny) Keras models; tolerances are those docs/engines.md states.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CONFIGS, REPO

from weightlab.cli import cli
from weightlab.config import load_experiment
from weightlab.store import Store

pytestmark = pytest.mark.keras

TINY = """
name: tiny
seed: 0
data: {kind: linear, samples: 60, features: 3, offset: 2.0, noise: 0.1}
model:
  layers:
    - {units: 6, activation: relu}
    - {units: 1, name: out}
train:
  optimizer: {name: adam, learning_rate: 0.05}
  loss: mse
  metrics: [mae]
  epochs: 3
  batch_size: 16
"""


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def experiment(write_config, *overrides, seeds=None, text=TINY):
    return load_experiment(write_config(text), overrides, seeds=seeds)


def train(store, specs):
    """Train ``specs`` as one group on the vectorized engine; their records."""
    from weightlab.runstart import data_key, load_datasets
    from weightlab.training import vectorized

    loaded = load_datasets(type("E", (), {"runs": specs})())
    return vectorized.train_group(specs, [loaded[data_key(s)] for s in specs], store, "b")


def keras_runs(store, specs):
    from weightlab.runstart import data_key, load_datasets
    from weightlab.training import runner

    loaded = load_datasets(type("E", (), {"runs": specs})())
    return [runner.train_run(s, loaded[data_key(s)], store, "k") for s in specs]


def snapshots(store, record):
    return [store.snapshot(record["id"], e) for e in store.snapshot_epochs(record["id"])]


def assert_bits(store, a, b):
    sa, sb = snapshots(store, a), snapshots(store, b)
    assert len(sa) == len(sb) > 1
    for x, y in zip(sa, sb, strict=True):
        assert x.keys() == y.keys()
        assert all(x[k].tobytes() == y[k].tobytes() for k in x)
    assert store.history(a["id"]) == store.history(b["id"])
    assert a["final"] == b["final"]


def assert_agrees(store, keras_record, vec_record):
    """docs/engines.md's tolerance: max |Δw| <= 1e-5 × max(1, max |w|) at every epoch, final loss
    within 1e-4 relative (diverged runs: the same epoch, agreement up to it)."""
    assert keras_record["status"] == vec_record["status"]
    assert keras_record.get("diverged_at_epoch") == vec_record.get("diverged_at_epoch")
    sk, sv = snapshots(store, keras_record), snapshots(store, vec_record)
    assert len(sk) == len(sv)
    assert all(sk[0][k].tobytes() == sv[0][k].tobytes() for k in sk[0]), "the same start"
    for epoch, (a, b) in enumerate(zip(sk, sv, strict=True)):
        assert a.keys() == b.keys()
        assert all(a[k].shape == b[k].shape for k in a)
        scale = max(1.0, max(float(np.abs(w).max()) for w in a.values()))
        worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        assert worst <= 1e-5 * scale, (epoch, worst, scale)
    if keras_record["status"] == "completed":
        lk, lv = keras_record["final"]["loss"], vec_record["final"]["loss"]
        assert abs(lk - lv) <= 1e-4 * abs(lk), (lk, lv)
        assert keras_record["final"].keys() == vec_record["final"].keys()


def test_bits_do_not_depend_on_group_size_or_slot(store, write_config):
    runs = experiment(write_config, seeds="0-31").runs
    by_seed = {s.seed: s for s in runs}
    big = train(store, runs)
    five = train(store, [by_seed[s] for s in (30, 3, 0, 17, 8)])
    two = train(store, [by_seed[17], by_seed[0]])
    one = train(store, [by_seed[3]])
    got = {32: {r["seed"]: r for r in big}, 5: {r["seed"]: r for r in five}}
    got[2] = {r["seed"]: r for r in two}
    got[1] = {r["seed"]: r for r in one}
    assert {r["status"] for r in big + five + two + one} == {"completed"}
    for size in (5, 2, 1):
        for seed, record in got[size].items():
            assert_bits(store, got[32][seed], record)
    assert got[5][0]["execution"]["group"]["slot"] == 2
    assert got[5][0]["execution"]["group"]["members"] == 5
    assert got[5][0]["execution"]["engine"] == "vectorized"
    # Different seeds really are different runs.
    assert not np.array_equal(
        snapshots(store, got[32][0])[-1]["out/kernel"],
        snapshots(store, got[32][1])[-1]["out/kernel"],
    )


# Functions TensorFlow does not round correctly: sigmoid, softplus, the crossentropy's log, and
# RMSprop's x / sqrt(y) (Grappler makes it x * rsqrt(y)). Batches of 12 rows and layers of 5 and 3
# units give tensors whose size is not a multiple of a vector register's 16 floats.
SMOOTH = """
name: smooth
seed: 0
data: {kind: xor, samples: 60, noise: 0.2}
model:
  layers:
    - {units: 5, activation: sigmoid}
    - {units: 3, activation: softplus}
    - {units: 1, activation: sigmoid, name: out}
train:
  optimizer: {name: rmsprop, learning_rate: 0.02}
  loss: binary_crossentropy
  metrics: [accuracy]
  epochs: 3
  batch_size: 12
"""


def test_bits_hold_through_functions_that_are_not_correctly_rounded(store, write_config):
    """TensorFlow computes a tensor's last ``size % 16`` elements of such a function with scalar
    code, whose last bits differ from its vectorized code's; that tail would be the last member's.
    The stack pads itself to a multiple of 16 members so that no member has a tail."""
    runs = experiment(write_config, seeds="0-16", text=SMOOTH).runs
    by_seed = {s.seed: s for s in runs}
    big = {r["seed"]: r for r in train(store, runs)}  # 17 members: slot 16 past the first 16
    three = train(store, [by_seed[16], by_seed[2], by_seed[5]])
    one = train(store, [by_seed[16]])
    assert {r["status"] for r in [*big.values(), *three, *one]} == {"completed"}
    for record in three + one:
        assert_bits(store, big[record["seed"]], record)
    keras = keras_runs(store, [by_seed[16]])
    assert_agrees(store, keras[0], big[16])


ADAM = "{name: adam, learning_rate: 0.05}"


@pytest.mark.parametrize(
    ("optimizer", "axis"),
    [
        ("{name: sgd, learning_rate: 0.05, momentum: 0.5}", "train.optimizer.momentum=0.5,0.9"),
        ("{name: rmsprop, learning_rate: 0.01, momentum: 0.5}", "train.optimizer.rho=0.8,0.95"),
        (ADAM, "train.optimizer.epsilon=1e-7,0.1"),
        ("{name: lion, learning_rate: 0.001}", "train.optimizer.beta_1=0.99,0.5"),
        ("{name: adadelta, learning_rate: 1.0}", "train.optimizer.epsilon=1e-7,0.01"),
    ],
)
def test_optimizer_arguments_differ_per_member(store, write_config, optimizer, axis):
    """A scalar optimizer argument beside the learning rate: each member (one seed, two values) has
    its own, agrees with the keras engine, and has the bits it has in a group of its own value."""
    path = write_config(TINY.replace(ADAM, optimizer))
    specs = load_experiment(path, [], matrix=[axis]).runs
    from weightlab.groups import plan_groups

    assert [len(g.members) for g in plan_groups(specs)] == [2]
    vec = train(store, specs)
    for spec, record in zip(specs, vec, strict=True):
        assert_bits(store, train(store, [spec])[0], record)
    for k, v in zip(keras_runs(store, specs), vec, strict=True):
        assert_agrees(store, k, v)
    # The values really differ: same seed, other argument, other weights.
    assert vec[0]["seed"] == vec[1]["seed"]
    last = [b"".join(a.tobytes() for a in snapshots(store, r)[-1].values()) for r in vec]
    assert last[0] != last[1]


def test_a_member_writes_what_a_keras_run_writes(store, write_config):
    specs = experiment(write_config, "snapshots.every=2", seeds="0-1").runs
    vec = train(store, specs)
    ker = keras_runs(store, specs)
    for k, v in zip(ker, vec, strict=True):
        assert_agrees(store, k, v)
        hk, hv = store.history(k["id"]), store.history(v["id"])
        assert [list(r) for r in hk] == [list(r) for r in hv], "same keys, same order"
        assert [list(r["weights"]) for r in hk] == [list(r["weights"]) for r in hv]
        steps_k, arrays_k = store.step_snapshots(k["id"])
        steps_v, arrays_v = store.step_snapshots(v["id"])
        # 48 training rows: 3 steps an epoch, 9 in all
        assert steps_k.tolist() == steps_v.tolist() == [2, 4, 6, 8]
        for name in arrays_k:
            assert np.abs(arrays_k[name] - arrays_v[name]).max() <= 1e-5
        assert v["batches_seen"] == k["batches_seen"] == 9
        assert v["snapshots"]["steps"] == k["snapshots"]["steps"]
        state_k = np.load(store.run_dir(k["id"]) / "resume.npz")
        state_v = np.load(store.run_dir(v["id"]) / "resume.npz")
        assert sorted(state_k.files) == sorted(state_v.files)
        for key in state_k.files:
            assert state_k[key].shape == state_v[key].shape
            assert np.allclose(state_k[key], state_v[key], atol=1e-5), key
        assert k["execution"]["engine"] == "keras"
        # show, compare, explain read both alike.
        for command in (("show", v["id"]), ("explain", v["id"])):
            assert invoke(*command).exit_code == 0


@pytest.mark.parametrize(
    "config",
    sorted(p.name for p in CONFIGS.glob("*.yaml")),
)
def test_agreement_with_the_keras_engine_on_every_gallery_config(store_dir, config):
    """Each gallery config (--smoke: its first epochs on a subset) on both engines, every
    setting of its matrix with two of its five seeds (the keras engine's half is the cost)."""
    runs = {}
    for engine in ("keras", "vectorized"):
        result = invoke(
            "run",
            CONFIGS / config,
            "--smoke",
            "-q",
            "--engine",
            engine,
            "--format",
            "json",
            "--seeds",
            "0,3",
        )
        assert result.exit_code in (0, 1), result.output
        runs[engine] = sorted(json.loads(result.output), key=lambda r: r["index"])
    store = Store.open(store_dir)
    assert {r["execution"]["engine"] for r in runs["vectorized"]} == {"vectorized"}
    for k, v in zip(runs["keras"], runs["vectorized"], strict=True):
        assert_agrees(store, k, v)


def test_a_diverging_member_is_isolated(store, write_config):
    text = (
        TINY.replace("adam, learning_rate: 0.05", "sgd, learning_rate: 0.01")
        .replace("samples: 60", "samples: 200")
        .replace("batch_size: 16", "batch_size: 8")
    )
    deep = "{units: 16, activation: relu}"
    runs = experiment(
        write_config,
        f"model.layers=[{deep}, {deep}, {{units: 1, name: out}}]",
        "matrix={model.kernel_initializer: [glorot_uniform, {name: random_normal, stddev: 20.0}]}",
        seeds="0-1",
        text=text,
    ).runs
    blowing = [s for s in runs if "stddev" in str(s.cell)]
    calm = [s for s in runs if s not in blowing]
    mixed = train(store, runs)
    alone = train(store, calm)
    ker = keras_runs(store, blowing)
    by = {r["index"]: r for r in mixed}
    for r in alone:
        assert_bits(store, by[r["index"]], r)
    for k in ker:
        v = by[k["index"]]
        assert v["status"] == k["status"] == "diverged"
        assert v["diverged_at_epoch"] == k["diverged_at_epoch"]
        assert v["divergence"]["epoch"] == k["diverged_at_epoch"]
        assert v["divergence"]["variable"]
        assert v["error"].startswith(f"diverged at epoch {k['diverged_at_epoch']}")
        assert store.snapshot_epochs(v["id"]) == store.snapshot_epochs(k["id"])
        assert_agrees(store, k, v)


def test_per_member_learning_rates(store, write_config):
    runs = experiment(
        write_config, "matrix={train.optimizer.learning_rate: [0.001, 0.3]}", seeds="0"
    ).runs
    group = train(store, runs)
    assert len({r["final"]["loss"] for r in group}) == 2
    for spec, record in zip(runs, group, strict=True):
        assert_bits(store, train(store, [spec])[0], record)
    for k, v in zip(keras_runs(store, runs), group, strict=True):
        assert_agrees(store, k, v)


def test_bias_free_members_store_no_bias(store, write_config):
    runs = experiment(
        write_config,
        "matrix={model.layers: [[{units: 6, activation: relu}, {units: 1, name: out}], "
        "[{units: 6, activation: relu}, {units: 1, name: out, use_bias: false}]], "
        "model.use_bias: [true, false]}",
    ).runs
    group = train(store, runs)
    assert len(group) == 4
    for spec, v in zip(runs, group, strict=True):
        names = set(store.snapshot(v["id"], 0))
        want = {"dense_1/kernel", "out/kernel"}
        if spec.config["model"]["layers"][0]["use_bias"]:
            want.add("dense_1/bias")
        if spec.config["model"]["layers"][1]["use_bias"]:
            want.add("out/bias")
        assert names == want
        assert_bits(store, train(store, [spec])[0], v)
    for k, v in zip(keras_runs(store, runs), group, strict=True):
        assert_agrees(store, k, v)


# ---- lifecycle ----------------------------------------------------------------------------

SLOW = ["data.samples=2000", "train.batch_size=4", "train.epochs=6"]


def start(store_dir: Path, config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WEIGHTLAB_STORE": str(store_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "weightlab", "run", "-q", str(config), *SLOW, "--seeds", "0-2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(store: Store, proc: subprocess.Popen, epochs: int, timeout: float = 180) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        dirs = store.run_dirs()
        if len(dirs) == 3 and all(len(store.history(d.name)) > epochs for d in dirs):
            return [d.name for d in dirs]
        time.sleep(0.02)
    raise AssertionError("training did not get going")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_group_and_the_resume_of_one_member(store, write_config, sig):
    config = write_config(TINY)
    proc = start(store.root, config)
    ids = wait_for(store, proc, 1)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    records = [store.get(i) for i in ids]
    if sig == signal.SIGKILL:
        assert {r["status"] for r in records} == {"crashed"}
    else:
        assert proc.returncode == 143
        assert {r["status"] for r in records} == {"interrupted"}
        assert len({r["error"] for r in records}) == 1, "all after the same epoch"
    for r in records:
        for epoch in store.snapshot_epochs(r["id"]):
            store.snapshot(r["id"], epoch)  # every committed epoch readable
    member = sorted(records, key=lambda r: r["seed"])[1]
    result = invoke("resume", member["id"], "--quiet", "--format", "json")
    assert result.exit_code == 0, result.output
    resumed = json.loads(result.output)
    assert resumed["status"] == "completed" and resumed["epochs_completed"] == 6
    (fresh,) = train(store, load_experiment(config, SLOW, seeds="1").runs)
    assert_bits(store, fresh, resumed)
    assert store.history(member["id"]) == store.history(fresh["id"])


# ---- executors ----------------------------------------------------------------------------


def test_jobs_and_dask_give_the_in_process_bits(store_dir, write_config):
    config = write_config(TINY)
    out = {}
    for name, extra in (
        ("local", []),
        ("jobs", ["--jobs", "2"]),
        ("dask", ["--executor", "dask", "--jobs", "2"]),
    ):
        result = invoke("run", config, "--seeds", "0-3", "-q", "--format", "json", *extra)
        assert result.exit_code == 0, result.output
        out[name] = sorted(json.loads(result.output), key=lambda r: r["index"])
    store = Store.open(store_dir)
    for name in ("jobs", "dask"):
        for a, b in zip(out["local"], out[name], strict=True):
            assert b["execution"]["engine"] == "vectorized"
            assert_bits(store, a, b)
    assert out["jobs"][0]["execution"]["group"]["members"] == 2, "balanced halves"
