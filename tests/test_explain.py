"""explain: one unit's z = x·w + b term by term, from stored snapshots and the run's own data."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_run

from weightlab import explain as ex
from weightlab.cli import cli
from weightlab.errors import UsageError

# Four samples, no validation split and no standardizing: the training data is X in order.
X = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.0], [-2.0, 0.5]])
Y = np.array([1.0, 2.0, 3.0, 4.0])
FINAL = {
    "dense_1/kernel": np.array([[1.0, 2.0, -1.0], [0.5, -1.0, 2.0]]),
    "dense_1/bias": np.array([0.5, -0.5, 0.0]),
    "out/kernel": np.array([[1.0], [-2.0], [0.5]]),
    "out/bias": np.array([0.25]),
}


def at_epoch(epoch: int, last: int, use_bias: bool) -> dict[str, np.ndarray]:
    """Weights that grow linearly from half the final kernel (biases from 0) to ``FINAL``."""
    f = epoch / last
    out = {}
    for k, v in FINAL.items():
        if k.endswith("bias"):
            if use_bias:
                out[k] = (v * f).astype(np.float32)
        else:
            out[k] = (v * (0.5 + 0.5 * f)).astype(np.float32)
    return out


def known_run(store, tmp_path, *, use_bias: bool = True, epochs: int = 2, **kwargs):
    """A stored run whose data is ``X`` and whose snapshots are ``at_epoch`` (``layout=``: in
    either snapshot layout)."""
    path = tmp_path / "xy.npz"
    np.savez(path, X=X, y=Y)
    data = {
        "kind": "npz",
        "path": str(path),
        "x_key": "X",
        "y_key": "y",
        "samples": None,
        "validation_split": 0.0,
        "standardize": False,
        "seed": None,
    }
    return write_run(
        store,
        use_bias=use_bias,
        epochs=epochs,
        config_overrides={"data": data},
        snapshots=[at_epoch(e, epochs, use_bias) for e in range(epochs + 1)],
        **kwargs,
    )


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()).strip() + "\n"


@pytest.mark.both_layouts
def test_golden_hidden_layer_inputs(store, tmp_path, layout):
    """Layer `out` on sample 1: its inputs are dense_1's ReLU outputs [3, 6.5, 0] (by hand)."""
    rec = known_run(store, tmp_path, layout=layout)
    result = invoke("explain", rec["id"], "--layer", "out", "--sample", "1")
    assert result.exit_code == 0, result.output
    expected = textwrap.dedent(f"""\
        run {rec["id"]} (exp, completed), epoch 2 of 0..2
        layer out (2 of 2), unit 0 of 1 (0-based), activation linear
        input: training sample 1 of 4 (target 2); x = layer dense_1's outputs for it

        input       x_i  w_i  x_i·w_i  w_i@0  change
        ────────────────────────────────────────────
        dense_1[0]    3    1        3    0.5    +0.5
        dense_1[1]  6.5   -2      -13     -1      -1
        dense_1[2]    0  0.5        0   0.25   +0.25

        x·w = Σ x_i·w_i       -10  the dot product
        + b                  0.25  b@0 = 0, change +0.25
        z = x·w + b         -9.75
        output = linear(z)  -9.75  no activation: the output is z
        epoch 0 → 2: |w| 1.146 → 2.291, w moved 1.146 (L2); b 0 → 0.25
        network output for this sample: -9.75
        """)
    assert normalized(result.output) == expected


@pytest.mark.both_layouts
def test_json_numbers_first_layer(store, tmp_path, layout):
    rec = known_run(store, tmp_path, layout=layout)
    e = json.loads(
        invoke("explain", rec["id"], "--unit", "1", "--sample", "1", "--format", "json").output
    )
    assert e["layer"]["name"] == "dense_1" and e["layer"]["inputs_from"] == "data"
    assert [t["name"] for t in e["terms"]] == ["x1", "x2"]
    assert [t["x"] for t in e["terms"]] == [3.0, -1.0]
    assert [t["w"] for t in e["terms"]] == [2.0, -1.0]
    assert [t["product"] for t in e["terms"]] == [6.0, 1.0]
    assert [t["w_initial"] for t in e["terms"]] == [1.0, -0.5]
    assert [t["w_change"] for t in e["terms"]] == [1.0, -0.5]
    assert (e["dot"], e["bias"], e["bias_initial"], e["z"], e["output"]) == (7, -0.5, 0, 6.5, 6.5)
    assert e["sample"] == {"index": 1, "of": 4, "split": "train", "x": [3.0, -1.0], "target": [2.0]}
    assert e["network_output"] == [-9.75]
    assert e["change"]["w_norm"] == pytest.approx(math.sqrt(5))
    assert e["change"]["w_distance"] == pytest.approx(math.sqrt(1.25))
    assert e["change"]["bias_change"] == -0.5


@pytest.mark.both_layouts
def test_earlier_epoch_and_relu_cut(store, tmp_path, layout):
    rec = known_run(store, tmp_path, epochs=4, layout=layout)
    e = json.loads(
        invoke(
            "explain", rec["id"], "--epoch", "2", "--unit", "2", "--sample", "1", "--format", "json"
        ).output
    )
    # Epoch 2 of 4: kernel 0.75 × final, bias 0.5 × final.
    assert e["epoch"] == 2 and e["z"] == pytest.approx(0.75 * (-3 - 2) + 0.0)
    assert e["output"] == 0.0  # relu cuts the negative z


@pytest.mark.both_layouts
def test_bias_free_layer_says_so(store, tmp_path, layout):
    rec = known_run(store, tmp_path, use_bias=False, layout=layout)
    out = invoke("explain", rec["id"], "--sample", "1").output
    squashed = [" ".join(line.split()) for line in out.splitlines()]
    assert "+ b none" in squashed and "z = x·w 2.5" in squashed
    text = " ".join(out.split())
    assert "no b: layer dense_1 has use_bias: false, so z = x·w is 0 whenever x is 0" in text
    assert "must pass through the origin" in text
    e = json.loads(invoke("explain", rec["id"], "--sample", "1", "--format", "json").output)
    assert e["bias"] is None and e["z"] == e["dot"] == 3.0 - 0.5
    assert e["change"]["bias_change"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--layer", "dense1"],
            "no layer 'dense1'; did you mean 'dense_1'? (layers: dense_1, out)",
        ),
        (["--unit", "3"], "--unit 3: layer dense_1 has 3 units, numbered 0..2"),
        (["--sample", "4"], "--sample 4: the run's training data has 4 samples, numbered 0..3"),
        (["--epoch", "7"], "has no snapshot for epoch 7 (epochs: 0..2)"),
    ],
)
def test_bad_choices_exit_2(store, tmp_path, args, message):
    rec = known_run(store, tmp_path)
    result = invoke("explain", rec["id"], *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.both_layouts
def test_no_snapshots_exit_2(store, tmp_path, layout):
    rec = known_run(store, tmp_path, layout=layout)
    for p in (store.run_dir(rec["id"]) / "snapshots").iterdir():
        p.unlink()
    result = invoke("explain", rec["id"])
    assert result.exit_code == 2
    assert "has no weight snapshots" in result.output


def test_missing_data_file_exit_2(store, tmp_path):
    rec = known_run(store, tmp_path)
    (tmp_path / "xy.npz").unlink()
    result = invoke("explain", rec["id"])
    assert result.exit_code == 2
    assert "xy.npz: cannot read arrays 'X' and 'y'" in result.output


def test_generated_data_is_rebuilt_from_the_config(store):
    """A linear-dataset run: explain's sample 0 is the runner's first training row."""
    from weightlab import data

    config = {
        "kind": "linear",
        "validation_split": 0.2,
        "standardize": False,
        "seed": None,
        "samples": 20,
        "features": 2,
        "offset": 5.0,
        "noise": 0.1,
        "weights": None,
        "input_offset": 0.0,
    }
    rec = write_run(store, seed=4, config_overrides={"data": config})
    e = ex.explain(store, rec["id"])
    expected = data.load(config, 4).x_train[0]
    assert e["sample"]["x"] == [float(v) for v in expected]
    assert e["sample"]["of"] == 16


def test_activations_by_hand():
    z = np.array([[-2.0, 0.0, 1.0]])
    assert ex.activate("relu", z).tolist() == [[0.0, 0.0, 1.0]]
    assert ex.activate("sigmoid", z)[0, 1] == 0.5
    assert ex.activate("softmax", z).sum() == pytest.approx(1.0)
    assert ex.activate("gelu", z)[0, 2] == pytest.approx(0.8413447460685429)
    assert ex.activate("selu", z)[0, 0] == pytest.approx(
        1.0507009873554805 * 1.6732632423543772 * (math.exp(-2) - 1)
    )  # noqa: E501
    assert ex.activate("leaky_relu", z)[0, 0] == pytest.approx(-0.4)
    assert ex.activation_name(None) == "linear"
    assert ex.activation_name({"name": "tanh"}) == "tanh"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("relux", "explain cannot redo the activation 'relux' in numpy; did you mean 'relu'?"),
        ("glu", "explain cannot redo the activation 'glu'"),
        ({"class_name": "ReLU", "config": {"max_value": 2}}, "activations with arguments"),
    ],
)
def test_unknown_activation_is_a_clear_error(ref, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("?", r"\?")):
        ex.activation_name(ref)


# ---- against Keras itself ------------------------------------------------------------------------


@pytest.mark.keras
def test_numpy_activations_match_keras():
    import keras

    z = np.linspace(-4, 4, 33, dtype=np.float32).reshape(3, 11)
    for name in ex.ACTIVATIONS:
        want = np.asarray(keras.activations.get(name)(keras.ops.convert_to_tensor(z)))
        assert ex.activate(name, z) == pytest.approx(want, rel=1e-5, abs=1e-6), name


@pytest.mark.keras
def test_explain_agrees_with_keras_predict(store, write_config):
    import keras

    from weightlab.config import load_experiment
    from weightlab.training.model import build
    from weightlab.training.sweep import run_experiment

    path = write_config(
        "data: {kind: linear, samples: 40, features: 3, offset: 2.0}\n"
        "model:\n  layers:\n    - {units: 4, activation: tanh}\n"
        "    - {units: 3, activation: elu, use_bias: false}\n"
        "    - {units: 2, activation: softmax, name: out}\n"
        "train: {epochs: 2, batch_size: 8}\n"
    )
    experiment = load_experiment(path, [])
    (rec,) = run_experiment(experiment, store)
    config = store.config(rec["id"])
    model = build(config["model"], 3)
    weights = store.snapshot(rec["id"], 2)
    for layer in model.layers:
        layer.set_weights([weights[f"{layer.name}/{v.name}"] for v in layer.weights])
    from weightlab import data

    x = data.load(config["data"], rec["seed"]).x_train
    for name in ("dense_1", "dense_2", "out"):
        sub = keras.Model(model.inputs, model.get_layer(name).output)
        want = sub.predict(x[:5], verbose=0)
        for sample in (0, 4):
            for unit in range(want.shape[1]):
                e = ex.explain(store, rec["id"], layer=name, unit=unit, sample=sample)
                assert e["output"] == pytest.approx(float(want[sample, unit]), rel=1e-5, abs=1e-6)
    e = ex.explain(store, rec["id"], sample=3)
    assert e["network_output"] == pytest.approx(model.predict(x[3:4], verbose=0)[0], abs=1e-6)
