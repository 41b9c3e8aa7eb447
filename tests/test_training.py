"""Real Keras training on tiny data: snapshots, the store contract, determinism, divergence.

Every test here trains and is marked `keras`; TensorFlow is imported once for the whole process.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CONFIGS

from weightlab.cli import cli
from weightlab.config import load_experiment
from weightlab.store import Store

pytestmark = pytest.mark.keras

TINY = ["data.samples=64", "train.epochs=3", "train.batch_size=16", "seed=0"]
# The four initializers these tests need (the gallery test checks all of configs/initializers.yaml).
FOUR_INITS = (
    "matrix={model.kernel_initializer: [glorot_uniform, he_normal, zeros, "
    "{name: random_normal, stddev: 20.0}]}"
)


def train(config, *overrides, store):
    from weightlab.training.sweep import run_experiment

    return run_experiment(load_experiment(config, [*TINY, *overrides]), store)


def snapshot_files(store, run_id):
    return sorted(p.name for p in (store.run_dir(run_id) / "snapshots").iterdir())


@pytest.fixture(scope="module")
def bias_runs(tmp_path_factory):
    """bias-vs-no-bias with tiny overrides, trained once for the tests of the store contract."""
    store = Store(tmp_path_factory.mktemp("bias") / "store")
    return store, train(CONFIGS / "bias-vs-no-bias.yaml", store=store)


def test_statuses_and_batch(bias_runs):
    store, records = bias_runs
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert [r["cell"] for r in records] == [{"model.use_bias": True}, {"model.use_bias": False}]
    assert len({r["batch"] for r in records}) == 1
    assert records[0]["id"] != records[1]["id"]


def test_snapshot_count_is_epochs_plus_one(bias_runs):
    store, records = bias_runs
    for r in records:
        assert snapshot_files(store, r["id"]) == ["epochs.crc32", "epochs.npy", "layout.json"]
        assert store.snapshot_epochs(r["id"]) == [0, 1, 2, 3]
        matrix = np.load(store.run_dir(r["id"]) / "snapshots" / "epochs.npy", mmap_mode="r")
        assert matrix.shape == (4, sum(a.size for a in store.snapshot(r["id"], 0).values()))
        snaps = store.run_dir(r["id"]) / "snapshots"
        on_disk = sum(p.stat().st_size for p in snaps.iterdir() if p.suffix != ".crc32")
        assert r["snapshots"]["count"] == 4 and r["snapshots"]["bytes"] == on_disk


def test_snapshot_keys_follow_layer_names(bias_runs):
    store, (biased, free) = bias_runs
    assert sorted(store.snapshot(biased["id"], 2)) == [
        "dense_1/bias",
        "dense_1/kernel",
        "out/bias",
        "out/kernel",
    ]
    assert sorted(store.snapshot(free["id"], 2)) == ["dense_1/kernel", "out/kernel"]
    shapes = {k: v.shape for k, v in store.snapshot(biased["id"], 0).items()}
    assert shapes == {
        "dense_1/kernel": (3, 8),
        "dense_1/bias": (8,),
        "out/kernel": (8, 1),
        "out/bias": (1,),
    }


def test_epoch_zero_is_the_initial_model(bias_runs):
    """Epoch 0 equals the weights Keras initialised: rebuild with the same seed and compare."""
    from weightlab.training.model import build, variables
    from weightlab.training.runner import set_determinism

    store, (biased, _) = bias_runs
    cfg = store.config(biased["id"])
    set_determinism(cfg["seed"])
    model = build(cfg["model"], features=3)
    snap = store.snapshot(biased["id"], 0)
    for key, var in variables(model):
        np.testing.assert_array_equal(var.numpy(), snap[key])


def test_default_bias_initializer_gives_zero_biases(bias_runs):
    store, (biased, _) = bias_runs
    snap0, snap3 = store.snapshot(biased["id"], 0), store.snapshot(biased["id"], 3)
    assert not snap0["dense_1/bias"].any() and not snap0["out/bias"].any()
    assert snap3["out/bias"].any(), "training moves the bias"
    assert snap0["dense_1/kernel"].std() > 0, "kernels start random"


def test_run_json_contract(bias_runs):
    store, records = bias_runs
    r = json.loads((store.run_dir(records[0]["id"]) / "run.json").read_text())
    assert r["status"] == "completed" and r["epochs_completed"] == 3
    assert r["diverged_at_epoch"] is None
    assert set(r["final"]) == {"loss", "mae", "val_loss", "val_mae"}
    assert r["timing"]["train_seconds"] > 0 and r["timing"]["snapshot_seconds"] > 0
    assert set(r["versions"]) >= {"python", "tensorflow", "keras", "numpy"}
    assert r["pid"] > 0 and r["started_at"] <= r["finished_at"]
    assert r["data"]["train_samples"] + r["data"]["val_samples"] == 64
    cfg = store.config(r["id"])
    assert cfg["train"]["epochs"] == 3 and cfg["model"]["use_bias"] is True
    assert cfg["seed"] == 0 and "matrix" not in cfg


def test_history_rows_and_statistics(bias_runs):
    """Training's history rows: metrics from epoch 1, and each variable's statistics made from
    that epoch's snapshot, epoch 0's and the one before. The statistics' arithmetic is checked
    by hand without TensorFlow (test_store.test_history_statistics_are_those_of_the_snapshots)."""
    from weightlab.stats import variable_stats

    store, (biased, _) = bias_runs
    history = store.history(biased["id"])
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]
    assert "loss" not in history[0] and "loss" in history[1]
    assert history[-1]["loss"] == pytest.approx(biased["final"]["loss"])
    snaps = [store.snapshot(biased["id"], epoch) for epoch in range(4)]
    for epoch, snap in enumerate(snaps):
        assert set(history[epoch]["weights"]) == set(snap)
        for key, value in snap.items():
            before = snaps[epoch - 1][key] if epoch else None
            assert history[epoch]["weights"][key] == variable_stats(value, snaps[0][key], before)


def test_determinism_bit_identical(tmp_path):
    store = Store(tmp_path / "s")
    (a,) = train(CONFIGS / "bias-vs-no-bias.yaml", "matrix={}", store=store)
    (b,) = train(CONFIGS / "bias-vs-no-bias.yaml", "matrix={}", store=store)
    (c,) = train(CONFIGS / "bias-vs-no-bias.yaml", "matrix={}", "seed=1", store=store)
    for epoch in range(4):
        sa, sb = store.snapshot(a["id"], epoch), store.snapshot(b["id"], epoch)
        assert sa.keys() == sb.keys()
        for key in sa:
            assert sa[key].tobytes() == sb[key].tobytes(), (epoch, key)
    assert a["final"]["loss"] == b["final"]["loss"]
    assert not np.array_equal(
        store.snapshot(a["id"], 0)["dense_1/kernel"], store.snapshot(c["id"], 0)["dense_1/kernel"]
    )


def test_layer_names_do_not_drift():
    from weightlab.training.model import build

    cfg = load_experiment(CONFIGS / "bias-vs-no-bias.yaml").runs[0].config["model"]
    names = [[layer.name for layer in build(cfg, 3).layers] for _ in range(3)]
    assert names == [["dense_1", "out"]] * 3


def test_divergence_is_recorded_not_raised(tmp_path):
    store = Store(tmp_path / "s")
    records = train(CONFIGS / "initializers.yaml", FOUR_INITS, store=store)
    by_init = {str(r["cell"]["model.kernel_initializer"]): r for r in records}
    huge = by_init["{'name': 'random_normal', 'stddev': 20.0}"]
    assert huge["status"] == "diverged" and huge["diverged_at_epoch"] == 1
    assert "non-finite" in huge["error"] or "loss is" in huge["error"]
    assert store.snapshot_epochs(huge["id"]) == [0], "snapshots before the blow-up are kept"
    where = huge["divergence"]  # the epoch replayed batch by batch from the last finite state
    assert where["epoch"] == 1 and where["batch"] >= 1 and where["step"] == where["batch"]
    assert where["variable"] == "loss" or where["variable"] in store.snapshot(huge["id"], 0)
    assert f"batch {where['batch']}" in huge["error"]
    # The invariant, not one CPU's digits: what the record names went non-finite is non-finite in
    # the divergence epoch's history row. Which one goes first depends on the CPU: on an AVX-512
    # AMD EPYC a weight overflows while the epoch's mean loss is still a finite 3e33.
    row = store.history(huge["id"])[where["epoch"]]
    if where["variable"] == "loss":
        assert not np.isfinite(row["loss"])
    else:
        assert not np.isfinite(row["weights"][where["variable"]]["l2"])
    for name in ("glorot_uniform", "he_normal", "zeros"):
        assert by_init[name]["status"] == "completed"
    zeros = store.snapshot(by_init["zeros"]["id"], 3)
    assert not zeros["dense_1/kernel"].any(), "zero kernels under ReLU never get a gradient"
    assert zeros["out/bias"].any(), "only the output bias learns"


def test_snapshots_every_n_batches_and_never(tmp_path):
    store = Store(tmp_path / "s")
    (every,) = train(CONFIGS / "linear-regression.yaml", "snapshots.every=3", store=store)
    # 64 samples, 20% validation -> 51 training rows -> 4 batches of 16 per epoch, 12 in all.
    files = snapshot_files(store, every["id"])
    assert [f for f in files if f.startswith("steps-")] == [
        "steps-0001.npz",
        "steps-0002.npz",
        "steps-0003.npz",
    ]
    steps, arrays = store.step_snapshots(every["id"])
    assert steps.tolist() == [3, 6, 9, 12] and arrays["neuron/kernel"].shape == (4, 1, 1)
    assert every["snapshots"]["steps"] == 4
    assert store.snapshot_epochs(every["id"]) == [0, 1, 2, 3]
    assert every["snapshots"]["count"] == 4 + 3, "4 epochs and 3 steps files"
    (never,) = train(CONFIGS / "linear-regression.yaml", "snapshots.every=never", store=store)
    assert snapshot_files(store, never["id"]) == []
    assert len(store.history(never["id"])) == 4, "statistics are still recorded"


def test_keras_names_accept_every_form(tmp_path):
    store = Store(tmp_path / "s")
    (r,) = train(
        CONFIGS / "linear-regression.yaml",
        "train.optimizer={name: adam, learning_rate: 1e-2, beta_1: 0.8}",
        "model.kernel_initializer={class_name: RandomNormal, config: {stddev: 0.5, seed: 3}}",
        "model.bias_initializer={name: constant, value: 0.25}",
        "train.loss=huber",
        "train.metrics=[mae, {name: mean_squared_error}]",
        store=store,
    )
    assert r["status"] == "completed", r["error"]
    assert store.snapshot(r["id"], 0)["neuron/bias"][0] == 0.25
    assert {"mae", "mean_squared_error"} <= set(r["final"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.kernel_initializer=glorot_unifrom",
            "model.kernel_initializer: Keras has no initializer 'glorot_unifrom'; did you mean "
            "'glorot_uniform'?",
        ),
        (
            "train.optimizer=adamm",
            "train.optimizer: Keras has no optimizer 'adamm'; did you mean 'adam'?",
        ),
        (
            "train.optimizer={name: sgd, momentun: 0.9}",
            "train.optimizer: 'momentun' is not an argument of SGD; did you mean 'momentum'?",
        ),
        (
            "train.loss=mean_squared_eror",
            "train.loss: Keras has no loss 'mean_squared_eror'; did you mean 'mean_squared_error'?",
        ),
        (
            "model.layers.0.activation=relux",
            "model.layers.0.activation: Keras has no activation 'relux'; did you mean 'relu'?",
        ),
        (
            "train.metrics=[maee]",
            "train.metrics.0: Keras has no metric 'maee'; did you mean 'mae'?",
        ),
    ],
)
def test_validate_keras_names(override, message, store_dir):
    result = CliRunner().invoke(
        cli, ["validate", "--keras", str(CONFIGS / "bias-vs-no-bias.yaml"), override]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", " ")
    assert f"override '{override}'" in result.output.replace("\n", " ")


def test_run_keras_name_error_writes_nothing(store_dir):
    result = CliRunner().invoke(
        cli, ["run", str(CONFIGS / "bias-vs-no-bias.yaml"), "train.optimizer=sgdd"]
    )
    assert result.exit_code == 2
    assert "did you mean 'sgd'?" in result.output
    assert not store_dir.exists()


def test_cli_run_exit_codes_and_json(store_dir, tmp_path, write_config):
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(CONFIGS / "initializers.yaml"),
            *TINY,
            FOUR_INITS,
            "--quiet",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output  # a diverged run is a finding, not a failure
    records = json.loads(result.stdout)
    assert sorted(r["status"] for r in records) == ["completed"] * 3 + ["diverged"]

    # A run TensorFlow rejects at fit time (class labels 0..2 for a 1-unit output) is failed.
    path = write_config(
        "data: {kind: blobs, samples: 40, centers: 3}\n"
        "model: {layers: [{units: 1}]}\n"
        "train: {epochs: 1, loss: sparse_categorical_crossentropy}\n",
        name="bad.yaml",
    )
    result = CliRunner().invoke(cli, ["run", str(path), "--quiet"])
    assert result.exit_code == 1
    assert "failed" in result.output
    failed = Store(store_dir).get("latest")
    assert failed["status"] == "failed" and failed["error"]
    assert (
        (Store(store_dir).run_dir(failed["id"]) / "error.txt").read_text().startswith("Traceback")
    )


def test_cli_run_table_output(store_dir):
    result = CliRunner().invoke(cli, ["run", str(CONFIGS / "bias-vs-no-bias.yaml"), *TINY])
    assert result.exit_code == 0, result.output
    assert "bias-vs-no-bias: 2 runs: 2 model.use_bias" in result.output
    assert "use_bias" in result.output and "completed" in result.output


def test_classification_on_bundled_iris(tmp_path, write_config):
    """Integer labels, softmax output and the accuracy metric, end to end."""
    path = write_config(
        "data: {kind: sklearn, name: iris, standardize: true}\n"
        "model:\n  layers:\n    - {units: 8, activation: relu}\n"
        "    - {units: 3, activation: softmax, name: probs}\n"
        "train: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy],"
        " epochs: 3}\n"
    )
    from weightlab.training.sweep import run_experiment

    store = Store(tmp_path / "s")
    (r,) = run_experiment(load_experiment(path), store)
    assert r["status"] == "completed", r["error"]
    assert 0 <= r["final"]["accuracy"] <= 1 and "val_accuracy" in r["final"]
    assert store.snapshot(r["id"], 3)["probs/kernel"].shape == (8, 3)


def test_interrupt_marks_the_run_and_keeps_its_snapshots(tmp_path):
    """Ctrl-C in the middle of training: status interrupted, completed epochs stay readable."""
    from weightlab.training.sweep import run_experiment

    store = Store(tmp_path / "s")

    def stop_after_two(event):
        if event["type"] == "epoch" and event["epoch"] == 2:
            raise KeyboardInterrupt

    exp = load_experiment(CONFIGS / "linear-regression.yaml", TINY[:1] + ["train.epochs=5"])
    with pytest.raises(KeyboardInterrupt):
        run_experiment(exp, store, on_event=stop_after_two)
    r = store.get("latest")
    assert r["status"] == "interrupted" and r["epochs_completed"] == 2
    assert r["finished_at"] is not None and r["timing"]["train_seconds"] > 0
    assert store.snapshot_epochs(r["id"]) == [0, 1, 2]
    assert [row["epoch"] for row in store.history(r["id"])] == [0, 1, 2]
    assert store.select()[0]["status"] == "interrupted", "the index agrees"
    # The hook interrupts inside epoch 2's recording, before its resume state is saved.
    from weightlab.resume import prepare
    from weightlab.training.sweep import resume_run

    resumed = resume_run(prepare(store, r["id"]), store)
    assert resumed["status"] == "completed" and resumed["resumed"][0]["from_epoch"] == 1
    assert [row["epoch"] for row in store.history(r["id"])] == [0, 1, 2, 3, 4, 5]
    assert store.snapshot_epochs(r["id"]) == [0, 1, 2, 3, 4, 5]
    assert resumed["batches_seen"] == 5 * 2  # 51 training rows in batches of 32, 5 epochs
