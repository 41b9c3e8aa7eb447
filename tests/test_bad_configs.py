# ruff: noqa: E501 - the table holds exact messages, one per line
"""Bad configs: each is refused with its exact message, exit code 2, and nothing in the store.

Rows are (id, config text, overrides, message). In messages ``{cfg}`` is the config file and
``{dir}`` its directory. Rows that need Keras (names) or read data contents import TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from weightlab.cli import cli

BAD = [
    ("top-level list", "- 1\n- 2\n", [], "{cfg}:1: expected a mapping at the top; got a list"),
    ("empty file", "", [], "{cfg}: the config file is empty; see configs/ for examples"),
    (
        "python object tag",
        "!!python/object/apply:os.system ['echo pwned']\n",
        [],
        "{cfg}:1: the tag !!python/object/apply:os.system is not allowed: configs are read with YAML safe loading, which builds only plain data (mappings, lists, strings, numbers, booleans, null)",
    ),
    (
        "python name tag in a value",
        "model:\n  layers: [{units: 1}]\ntrain: {optimizer: !!python/name:os.system }\n",
        [],
        "{cfg}:3: the tag !!python/name:os.system is not allowed: configs are read with YAML safe loading, which builds only plain data (mappings, lists, strings, numbers, booleans, null)",
    ),
    (
        "syntax error",
        "model:\n  layers: [{units: 1}]\ntrain: {epochs: 3\n",
        [],
        "{cfg}:4: not valid YAML: expected ',' or '}', but got '<stream end>' (while parsing a flow mapping started on line 3)",
    ),
    (
        "duplicate key",
        "model:\n  layers: [{units: 1}]\ntrain:\n  epochs: 3\n  epochs: 4\n",
        [],
        "{cfg}:5: train.epochs: duplicate key (first given on line 4); remove one of them",
    ),
    (
        "two documents",
        "model:\n  layers: [{units: 1}]\n---\nseed: 1\n",
        [],
        "{cfg}:3: a config is a single YAML document; found a second one (remove the '---' line and what follows, or merge them)",
    ),
    (
        "unknown top key",
        "model:\n  layers: [{units: 1}]\ntrian: {}\n",
        [],
        "{cfg}:3: trian: unknown key; did you mean 'train'? (expected one of: name, description, seed, seeds, matrix, expect, data, model, train, snapshots)",
    ),
    (
        "unknown train key",
        "model:\n  layers: [{units: 1}]\ntrain: {epoch: 3}\n",
        [],
        "{cfg}:3: train.epoch: unknown key; did you mean 'epochs'? (expected one of: optimizer, loss, metrics, epochs, batch_size, shuffle, tensorboard)",
    ),
    (
        "epochs zero",
        "model:\n  layers: [{units: 1}]\ntrain: {epochs: 0}\n",
        [],
        "{cfg}:3: train.epochs: expected an integer in [1, 100000]; got 0",
    ),
    (
        "epochs negative",
        "model:\n  layers: [{units: 1}]\ntrain: {epochs: -5}\n",
        [],
        "{cfg}:3: train.epochs: expected an integer in [1, 100000]; got -5",
    ),
    (
        "epochs a string",
        "model:\n  layers: [{units: 1}]\ntrain: {epochs: many}\n",
        [],
        "{cfg}:3: train.epochs: expected an integer in [1, 100000]; got a string, 'many'",
    ),
    (
        "epochs a float",
        "model:\n  layers: [{units: 1}]\ntrain: {epochs: 2.5}\n",
        [],
        "{cfg}:3: train.epochs: expected an integer in [1, 100000]; got a number, 2.5",
    ),
    (
        "epochs huge",
        "model:\n  layers: [{units: 1}]\ntrain: {epochs: 10000000000}\n",
        [],
        "{cfg}:3: train.epochs: expected an integer in [1, 100000]; got 10000000000",
    ),
    (
        "epochs infinite",
        "model:\n  layers: [{units: 1}]\ntrain: {epochs: .inf}\n",
        [],
        "{cfg}:3: train.epochs: expected an integer in [1, 100000]; got a number, inf",
    ),
    (
        "batch size zero",
        "model:\n  layers: [{units: 1}]\ntrain: {batch_size: 0}\n",
        [],
        "{cfg}:3: train.batch_size: expected an integer >= 1; got 0",
    ),
    (
        "units zero",
        "model:\n  layers: [{units: 0}]\n",
        [],
        "{cfg}:2: model.layers.0.units: expected an integer >= 1; got 0",
    ),
    (
        "units negative",
        "model:\n  layers: [-3]\n",
        [],
        "{cfg}:2: model.layers.0.units: expected an integer >= 1; got -3",
    ),
    (
        "empty layers",
        "model:\n  layers: []\n",
        [],
        "{cfg}:2: model.layers: expected a list of at least 1 item(s); got 0",
    ),
    (
        "no model",
        "train: {epochs: 3}\n",
        [],
        "{cfg}:1: model: missing required key 'layers' (Dense layers, input to output)",
    ),
    (
        "use_bias yes",
        "model:\n  use_bias: yes\n  layers: [1]\n",
        [],
        "{cfg}:2: model.use_bias: expected true or false; got a string, 'yes' (YAML 1.1 would read it as a boolean; weightlab reads only true/false as booleans)",
    ),
    (
        "validation_split 1",
        "model:\n  layers: [{units: 1}]\ndata: {validation_split: 1}\n",
        [],
        "{cfg}:3: data.validation_split: expected a number in [0, 1); got 1",
    ),
    (
        "validation_split negative",
        "model:\n  layers: [{units: 1}]\ndata: {validation_split: -0.1}\n",
        [],
        "{cfg}:3: data.validation_split: expected a number in [0, 1); got -0.1",
    ),
    (
        "validation_split NaN",
        "model:\n  layers: [{units: 1}]\ndata: {validation_split: .nan}\n",
        [],
        "{cfg}:3: data.validation_split: expected a finite number in [0, 1); got nan",
    ),
    (
        "learning rate NaN",
        "model:\n  layers: [{units: 1}]\ntrain: {optimizer: {name: sgd, learning_rate: .nan}}\n",
        [],
        "{cfg}:3: train.optimizer: argument 'learning_rate' of an optimizer must be a finite number; got nan",
    ),
    (
        "samples huge",
        "model:\n  layers: [{units: 1}]\ndata: {samples: 100000000000000}\n",
        [],
        "{cfg}:3: data.samples: expected an integer in [1, 10000000]; got 100000000000000",
    ),
    (
        "features huge",
        "model:\n  layers: [{units: 1}]\ndata: {features: 1000000000}\n",
        [],
        "{cfg}:3: data.features: expected an integer in [1, 10000]; got 1000000000",
    ),
    (
        "unknown data kind",
        "model:\n  layers: [{units: 1}]\ndata: {kind: csvv}\n",
        [],
        "{cfg}:3: data.kind: expected one of linear | blobs | xor | moons | circles | sklearn | csv | npz; got a string, 'csvv'; did you mean 'csv'?",
    ),
    (
        "missing csv file",
        "model:\n  layers: [{units: 1}]\ndata: {kind: csv, path: nope.csv, target: y}\n",
        [],
        "{cfg}:3: data.path: file not found: {dir}/nope.csv",
    ),
    (
        "csv missing target column",
        "model:\n  layers: [{units: 1}]\ndata: {kind: csv, path: notarget.csv, target: y}\n",
        [],
        "{cfg}:3: data.target: no column 'y' in notarget.csv (columns: a, b)",
    ),
    (
        "empty csv",
        "model:\n  layers: [{units: 1}]\ndata: {kind: csv, path: empty.csv, target: y}\n",
        [],
        "{cfg}:3: data.path: {dir}/empty.csv is empty; expected a header row of column names",
    ),
    (
        "npz without X",
        "model:\n  layers: [{units: 1}]\ndata: {kind: npz, path: noX.npz}\n",
        [],
        "{cfg}:3: data.x_key: no array 'X' in noX.npz (arrays: y)",
    ),
    (
        "seed negative",
        "model:\n  layers: [{units: 1}]\nseed: -1\n",
        [],
        "{cfg}:3: seed: expected an integer in [0, 4294967295]; got -1",
    ),
    (
        "seeds not distinct",
        "model:\n  layers: [{units: 1}]\nseeds: [1, 1]\n",
        [],
        "{cfg}:3: seeds: seeds must be distinct; got [1, 1]",
    ),
    (
        "matrix unknown key",
        "model:\n  layers: [{units: 1}]\nmatrix: {train.epoch: [1, 2]}\n",
        [],
        "{cfg}:3: matrix.train.epoch: 'epoch' is not a key of 'train'; did you mean 'epochs'?",
    ),
    (
        "bad override",
        "model:\n  layers: [{units: 1}]\n",
        ["train.epochs=abc"],
        "override 'train.epochs=abc': train.epochs: expected an integer in [1, 100000]; got a string, 'abc'",
    ),
    (
        "override into a scalar",
        "model:\n  layers: [{units: 1}]\n",
        ["train.epochs.x=1"],
        "{cfg}:1: train.epochs: expected an integer in [1, 100000]; got a mapping",
    ),
    (
        "snapshots every zero",
        "model:\n  layers: [{units: 1}]\nsnapshots: {every: 0}\n",
        [],
        "{cfg}:3: snapshots.every: expected 'epoch', 'never' or a number of batches >= 1; got an integer, 0",
    ),
    (
        "name with slash",
        "model:\n  layers: [{units: 1}]\nname: ../../etc\n",
        [],
        "{cfg}:3: name: expected a name of letters, digits, '_', '.', '-' (no '/'); got '../../etc'",
    ),
    (
        "control character",
        "model:\n  layers: [1]\nname: \x1b\n",
        [],
        '{cfg}:3: not valid YAML: the control character #x1b is not allowed (write it escaped inside double quotes, e.g. "\\x1b")',
    ),
    (
        "control character in an override",
        "model:\n  layers: [1]\n",
        ["name=\x07"],
        "override 'name=\x07': name: not valid YAML: the control character #x07 is not allowed (write it escaped inside double quotes, e.g. \"\\x1b\")",
    ),
]

BAD_KERAS = [
    (
        "misspelt optimizer",
        "model:\n  layers: [{units: 1}]\ntrain: {optimizer: adamm}\n",
        [],
        "{cfg}:3: train.optimizer: Keras has no optimizer 'adamm'; did you mean 'adam'? (known: adadelta, adafactor, adagrad, adam, adamax, adamw, ftrl, lion, lossscaleoptimizer, multioptimizer, muon, nadam, ...)",
    ),
    (
        "misspelt initializer",
        "model:\n  kernel_initializer: glorot_unifrom\n  layers: [1]\n",
        [],
        "{cfg}:2: model.kernel_initializer: Keras has no initializer 'glorot_unifrom'; did you mean 'glorot_uniform'? (known: constant, glorot_normal, glorot_uniform, he_normal, he_uniform, identity, initializer, lecun_normal, lecun_uniform, normal, one, ones, ...)",
    ),
    (
        "misspelt activation",
        "model:\n  layers: [{units: 1, activation: rleu}]\n",
        [],
        "{cfg}:2: model.layers.0.activation: Keras has no activation 'rleu'; did you mean 'relu'? (known: celu, elu, exponential, gelu, glu, hard_shrink, hard_sigmoid, hard_silu, hard_swish, hard_tanh, leaky_relu, linear, ...)",
    ),
    (
        "misspelt loss",
        "model:\n  layers: [{units: 1}]\ntrain: {loss: mse2}\n",
        [],
        "{cfg}:3: train.loss: Keras has no loss 'mse2'; did you mean 'mse'? (known: bce, binary_crossentropy, binary_focal_crossentropy, categorical_crossentropy, categorical_focal_crossentropy, categorical_hinge, circle, cosine_similarity, ctc, dice, hinge, huber, ...)",
    ),
    (
        "csv non-numeric cell",
        "model:\n  layers: [{units: 1}]\ndata: {kind: csv, path: nonnum.csv, target: y}\n",
        [],
        "{cfg}:3: data: {dir}/nonnum.csv:3: column 'b': expected a number, got 'x'",
    ),
    (
        "csv NaN cell",
        "model:\n  layers: [{units: 1}]\ndata: {kind: csv, path: nan.csv, target: y}\n",
        [],
        "{cfg}:3: data: {dir}/nan.csv:3: column 'b': expected a finite number, got 'nan'",
    ),
    (
        "csv short row",
        "model:\n  layers: [{units: 1}]\ndata: {kind: csv, path: short.csv, target: y}\n",
        [],
        "{cfg}:3: data: {dir}/short.csv:3: expected 3 values, got 2",
    ),
    (
        "npz mismatched lengths",
        "model:\n  layers: [{units: 1}]\ndata: {kind: npz, path: mismatch.npz}\n",
        [],
        "{cfg}:3: data: {dir}/mismatch.npz: array 'X' has 5 rows but 'y' has 4",
    ),
    (
        "npz NaN in X",
        "model:\n  layers: [{units: 1}]\ndata: {kind: npz, path: nanX.npz}\n",
        [],
        "{cfg}:3: data: {dir}/nanX.npz: array 'X' holds 1 NaN or infinite value(s)",
    ),
    (
        "npz object array",
        "model:\n  layers: [{units: 1}]\ndata: {kind: npz, path: obj.npz}\n",
        [],
        "{cfg}:3: data: {dir}/obj.npz: cannot read arrays 'X' and 'y': Object arrays cannot be loaded when allow_pickle=False",
    ),
    (
        "npz huge values",
        "model:\n  layers: [{units: 1}]\ndata: {kind: npz, path: huge.npz}\n",
        [],
        "{cfg}:3: data: input values beyond the float32 range (largest magnitude 1e+300; float32 holds up to 3.4e+38)",
    ),
]

FILES = {
    "nonnum.csv": "a,b,y\n1,2,3\n4,x,6\n",
    "nan.csv": "a,b,y\n1,2,3\n4,nan,6\n",
    "notarget.csv": "a,b\n1,2\n",
    "short.csv": "a,b,y\n1,2,3\n4,5\n",
    "empty.csv": "",
}
ARRAYS = {
    "noX.npz": {"y": np.zeros(5)},
    "mismatch.npz": {"X": np.zeros((5, 2)), "y": np.zeros(4)},
    "nanX.npz": {"X": np.array([[1.0, np.nan], [1, 2]]), "y": np.zeros(2)},
    "obj.npz": {"X": np.array([{"a": 1}], dtype=object), "y": np.zeros(1)},
    "huge.npz": {"X": np.full((4, 2), 1e300), "y": np.zeros(4)},
}


def refused(tmp_path, store_dir, text, overrides, message):
    for name, content in FILES.items():
        (tmp_path / name).write_text(content)
    for name, arrays in ARRAYS.items():
        np.savez(tmp_path / name, **arrays)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(text)
    result = CliRunner().invoke(cli, ["run", "-q", str(cfg), *overrides])
    assert result.exit_code == 2, result.output
    assert (
        result.output
        == "Error: " + message.replace("{cfg}", str(cfg)).replace("{dir}", str(tmp_path)) + "\n"
    )
    assert not store_dir.exists(), "nothing written to the store"


def test_the_table_is_big_enough():
    assert len(BAD) + len(BAD_KERAS) >= 30


@pytest.mark.parametrize("text, overrides, message", [r[1:] for r in BAD], ids=[r[0] for r in BAD])
def test_bad_config_is_refused(tmp_path, store_dir, text, overrides, message):
    refused(tmp_path, store_dir, text, overrides, message)


@pytest.mark.keras
@pytest.mark.parametrize(
    "text, overrides, message", [r[1:] for r in BAD_KERAS], ids=[r[0] for r in BAD_KERAS]
)
def test_bad_keras_name_or_data_is_refused(tmp_path, store_dir, text, overrides, message):
    refused(tmp_path, store_dir, text, overrides, message)
