"""The gallery: every example config, trained with tiny overrides, and its claim checked.

The claims are checked from what the store keeps (snapshots, history, run.json) through the store
API, with numpy forward passes where a claim is about what the layers compute.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CONFIGS

from weightlab import data
from weightlab.config import load_experiment
from weightlab.store import Store

pytestmark = pytest.mark.keras


def train(name: str, *overrides: str, store: Store) -> dict[str, dict]:
    """Train ``configs/NAME.yaml``; returns the records by their matrix value."""
    from weightlab.training.runner import run_experiment

    records = run_experiment(load_experiment(CONFIGS / f"{name}.yaml", overrides), store)
    return {str(next(iter(r["cell"].values()), "")): r for r in records}


def forward(store: Store, run: dict, epoch: int, x: np.ndarray | None = None) -> list[np.ndarray]:
    """Inputs (default: the run's training inputs) and every layer's output, from a snapshot."""
    cfg = store.config(run["id"])
    snap = store.snapshot(run["id"], epoch)
    if x is None:
        x = data.load(cfg["data"], cfg["seed"]).x_train.astype(np.float64)
    outputs = [x]
    for layer in cfg["model"]["layers"]:
        x = x @ snap[f"{layer['name']}/kernel"] + snap.get(f"{layer['name']}/bias", 0.0)
        if layer["activation"] == "relu":
            x = np.maximum(x, 0.0)
        outputs.append(x)
    return outputs


def rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "store")


def test_bias_vs_no_bias(store):
    runs = train(
        "bias-vs-no-bias",
        "data.samples=200",
        "train.epochs=4",
        "train.optimizer.learning_rate=0.05",
        store=store,
    )
    with_bias, without = runs["True"], runs["False"]
    assert without["final"]["loss"] > 10 * with_bias["final"]["loss"]
    # Why, at every epoch: without biases f(0) = 0 and f(a·x) = a·f(x) (a > 0), so no constant.
    for epoch in store.snapshot_epochs(without["id"]):
        assert not any(k.endswith("/bias") for k in store.snapshot(without["id"], epoch))
        x = forward(store, without, epoch)[0]
        assert forward(store, without, epoch, np.zeros((1, 3)))[-1].item() == 0.0
        assert np.allclose(
            forward(store, without, epoch, 3 * x)[-1], 3 * forward(store, without, epoch)[-1]
        )
    assert store.snapshot(with_bias["id"], 4)["out/bias"].item() > 0.1  # the bias moves to y


def test_initializers(store):
    runs = train("initializers", "data.samples=128", "train.epochs=3", store=store)
    zeros, const = runs["zeros"], runs["{'name': 'constant', 'value': 0.1}"]
    huge, small = (
        runs["{'name': 'random_normal', 'stddev': 20.0}"],
        runs["{'name': 'random_normal', 'stddev': 0.01}"],
    )
    for epoch in range(4):
        z = store.snapshot(zeros["id"], epoch)
        assert not z["dense_1/kernel"].any() and not z["dense_2/kernel"].any()
        assert not z["dense_1/bias"].any() and not z["out/kernel"].any()
        c = store.snapshot(const["id"], epoch)
        for var in ("dense_1/kernel", "dense_2/kernel"):  # every unit (column) is the same
            assert np.allclose(c[var], c[var][:, :1], rtol=0, atol=1e-6), (epoch, var)
    assert store.snapshot(zeros["id"], 3)["out/bias"].item() != 0, "only the output bias learns"
    assert not np.allclose(store.snapshot(const["id"], 3)["dense_1/kernel"], 0.1), "they move"
    assert huge["status"] == "diverged" and huge["diverged_at_epoch"] == 1
    assert store.snapshot_epochs(huge["id"]) == [0]
    start = {name: rms(forward(store, runs[name], 0)[2]) for name in runs}
    assert start[str(small["cell"]["model.kernel_initializer"])] < 0.01 * start["glorot_uniform"]
    for name in ("glorot_uniform", "he_normal"):
        assert runs[name]["status"] == "completed"
        assert runs[name]["final"]["loss"] < zeros["final"]["loss"]


def test_depth_glorot_shrinks_the_signal_he_keeps_it(store):
    runs = train("depth", "data.samples=128", "train.epochs=1", store=store)
    glorot, he = runs["glorot_normal"], runs["he_normal"]
    g, h = forward(store, glorot, 0), forward(store, he, 0)
    # Glorot halves the mean square per ReLU layer: ~2^-10 in RMS after 20 layers.
    assert rms(g[20]) < 0.01 * rms(g[0])
    assert 0.2 < rms(h[20]) / rms(h[0]) < 5
    # The first layer's gradient is as small: its first-epoch update is 100× smaller than He's.
    first = [store.history(r["id"])[1]["weights"]["dense_1/kernel"]["delta"] for r in (glorot, he)]
    assert first[0] < 0.01 * first[1]


def test_learning_rate_from_too_small_to_divergent(store):
    lrs = "matrix={train.optimizer.learning_rate: [0.0001, 0.1, 10.0]}"  # 3 of the 6
    runs = train("learning-rate", "data.samples=400", "train.epochs=2", lrs, store=store)
    moved = {lr: r["weights"]["dist_init"] for lr, r in runs.items() if r["status"] == "completed"}
    assert moved["0.0001"] < 0.01 * moved["0.1"], "too small: the weights barely move"
    assert runs["0.1"]["final"]["loss"] < runs["0.0001"]["final"]["loss"] / 5
    diverged = runs["10.0"]
    assert diverged["status"] == "diverged"
    assert store.snapshot_epochs(diverged["id"]) == list(range(diverged["diverged_at_epoch"]))


def test_dot_product_is_a_similarity_only_for_unit_vectors(store):
    runs = train("dot-product", "data.samples=200", "train.epochs=10", store=store)
    unit, long = (store.snapshot(runs[k]["id"], 10)["neuron/kernel"][:, 0] for k in runs)
    assert abs(np.linalg.norm(unit) - 1) < 0.05 and abs(np.linalg.norm(long) - 5) < 0.25
    cos_w = unit @ long / (np.linalg.norm(unit) * np.linalg.norm(long))
    assert cos_w > 0.995, "the same direction: as similar as two vectors can be"
    x = forward(store, next(iter(runs.values())), 10)[0]
    dots_unit, dots_long = x @ unit, x @ long
    cos = dots_unit / (np.linalg.norm(x, axis=1) * np.linalg.norm(unit))
    assert np.all(np.abs(cos) <= 1) and cos.min() > 0.85
    assert (dots_unit > 1).mean() > 0.95, "x·w leaves [-1, 1] although cos θ never does"
    assert np.allclose(dots_long / dots_unit, 5, rtol=0.05), "5× longer w, 5× the 'similarity'"
