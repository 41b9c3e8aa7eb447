"""The TensorFlow-free config layer: YAML reading, validation messages, overrides, matrix × seeds.

Nothing here imports TensorFlow or Keras; the whole file runs in well under a second.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from weightlab import yamlio
from weightlab.config import Locator, flatten, keras_refs, load_experiment
from weightlab.errors import ConfigError, Problem
from weightlab.text import did_you_mean, short_value

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"

MIN = "model: {layers: [1]}\n"  # the smallest valid config: one Dense unit, everything else default
TOP_KEYS = "name, description, seed, seeds, matrix, expect, data, model, train, snapshots"
LINEAR_KEYS = (
    "kind, validation_split, standardize, seed, samples, features, offset, noise, "
    "weights, input_offset"
)
LAYER_KEYS = "units, activation, name, use_bias, kernel_initializer, bias_initializer"
TRAIN_KEYS = "optimizer, loss, metrics, epochs, batch_size, shuffle, tensorboard"
HINT = " (YAML 1.1 would read it as a boolean; weightlab reads only true/false as booleans)"
SAFE = (
    "is not allowed: configs are read with YAML safe loading, which builds only plain data "
    "(mappings, lists, strings, numbers, booleans, null)"
)
KINDS = "linear | blobs | xor | moons | circles | sklearn | csv | npz"


def _data_files(folder: Path) -> None:
    """Next to the config: a CSV with columns a, b, label; an .npz with arrays X and Y (no y)."""
    (folder / "data.csv").write_text("a,b,label\n1,2,3\n4,5,6\n", encoding="utf-8")
    with zipfile.ZipFile(folder / "arrays.npz", "w") as zf:  # what numpy.savez writes
        zf.writestr("X.npy", b"")
        zf.writestr("Y.npy", b"")
    (folder / "not-a-zip.npz").write_text("hello", encoding="utf-8")


# Each case: id, config text, overrides, expected(f, d) -> the exact str(ConfigError), or the exact
# list of problem strings. f is the config path as given, d the resolved folder holding it.
Expected = Callable[[str, str], "str | list[str]"]
BAD: list[tuple[str, str, list[str], Expected]] = [
    # ---- wrong types ---------------------------------------------------------------------------
    (
        "units-string",
        "model:\n  layers:\n    - units: '8'\n",
        [],
        lambda f, d: f"{f}:3: model.layers.0.units: expected an integer >= 1; got a string, '8'",
    ),
    (
        "units-bool",
        "model:\n  layers:\n    - units: true\n",
        [],
        lambda f, d: f"{f}:3: model.layers.0.units: expected an integer >= 1; got a boolean, True",
    ),
    (
        "units-float",
        "model:\n  layers:\n    - units: 8.0\n",
        [],
        lambda f, d: f"{f}:3: model.layers.0.units: expected an integer >= 1; got a number, 8.0",
    ),
    (
        "epochs-string",
        MIN + "train:\n  epochs: ten\n",
        [],
        lambda f, d: (
            f"{f}:3: train.epochs: expected an integer in [1, 100000]; got a string, 'ten'"
        ),
    ),
    (
        "section-list",
        MIN + "train: [1, 2]\n",
        [],
        lambda f, d: f"{f}:2: train: expected a mapping; got a list",
    ),
    (
        "section-empty-list",
        MIN + "data: []\n",
        [],
        lambda f, d: f"{f}:2: data: expected a mapping; got an empty list",
    ),
    (
        "layers-mapping",
        "model:\n  layers: {units: 1}\n",
        [],
        lambda f, d: f"{f}:2: model.layers: expected a list; got a mapping",
    ),
    (
        "layers-empty",
        "model:\n  layers: []\n",
        [],
        lambda f, d: f"{f}:2: model.layers: expected a list of at least 1 item(s); got 0",
    ),
    (
        "layer-string",
        "model:\n  layers:\n    - dense\n",
        [],
        lambda f, d: (
            f"{f}:3: model.layers.0: expected a mapping such as {{units: 8, activation: "
            f"relu}}, or an integer number of units; got a string, 'dense'"
        ),
    ),
    (
        "split-string",
        MIN + "data:\n  validation_split: '0.2'\n",
        [],
        lambda f, d: (
            f"{f}:3: data.validation_split: expected a number in [0, 1); got a string, '0.2'"
        ),
    ),
    (
        "metrics-string",
        MIN + "train:\n  metrics: mae\n",
        [],
        lambda f, d: f"{f}:3: train.metrics: expected a list; got a string, 'mae'",
    ),
    (
        "metrics-item",
        MIN + "train:\n  metrics: [mae, 3]\n",
        [],
        lambda f, d: (
            f"{f}:3: train.metrics: item 1: expected a Keras metric: a name such as 'mae', "
            f"or a mapping; got an integer, 3"
        ),
    ),
    (
        "name-null",
        "name: null\n" + MIN,
        [],
        lambda f, d: f"{f}:1: name: expected a non-empty string; got null",
    ),
    (
        "description-number",
        "description: 3\n" + MIN,
        [],
        lambda f, d: f"{f}:1: description: expected a non-empty string; got an integer, 3",
    ),
    (
        "several-problems",
        "model:\n  layers: [{units: 0}, {units: x}]\ntrain:\n  epochs: 0\n  batch_size: -1\n",
        [],
        lambda f, d: [
            f"{f}:2: model.layers.0.units: expected an integer >= 1; got 0",
            f"{f}:2: model.layers.1.units: expected an integer >= 1; got a string, 'x'",
            f"{f}:4: train.epochs: expected an integer in [1, 100000]; got 0",
            f"{f}:5: train.batch_size: expected an integer >= 1; got -1",
        ],
    ),
    # ---- unknown keys at every level, with "did you mean" --------------------------------------
    (
        "unknown-top",
        "modle:\n  layers: [1]\n",
        [],
        lambda f, d: (
            f"{f}:1: modle: unknown key; did you mean 'model'? (expected one of: {TOP_KEYS})"
        ),
    ),
    (
        "unknown-top-no-guess",
        MIN + "colour: red\n",
        [],
        lambda f, d: f"{f}:2: colour: unknown key (expected one of: {TOP_KEYS})",
    ),
    (
        "unknown-top-int-key",
        MIN + "\n1: 2\n",
        [],
        lambda f, d: f"{f}:3: 1: unknown key (expected one of: {TOP_KEYS})",
    ),
    (
        "unknown-model",
        "model:\n  layers: [1]\n  bias: false\n",
        [],
        lambda f, d: (
            f"{f}:3: model.bias: unknown key; did you mean 'use_bias'? (expected one of: "
            f"use_bias, kernel_initializer, bias_initializer, layers)"
        ),
    ),
    (
        "unknown-layer",
        "model:\n  layers:\n    - units: 1\n      activaton: relu\n",
        [],
        lambda f, d: (
            f"{f}:4: model.layers.0.activaton: unknown key; did you mean 'activation'? "
            f"(expected one of: {LAYER_KEYS})"
        ),
    ),
    (
        "unknown-train",
        MIN + "train:\n  epoch: 3\n",
        [],
        lambda f, d: (
            f"{f}:3: train.epoch: unknown key; did you mean 'epochs'? "
            f"(expected one of: {TRAIN_KEYS})"
        ),
    ),
    (
        "unknown-data",
        MIN + "data:\n  sample: 3\n",
        [],
        lambda f, d: (
            f"{f}:3: data.sample: unknown key; did you mean 'samples'? "
            f"(expected one of: {LINEAR_KEYS})"
        ),
    ),
    (
        "unknown-snapshots",
        MIN + "snapshots:\n  evry: 2\n",
        [],
        lambda f, d: (
            f"{f}:3: snapshots.evry: unknown key; did you mean 'every'? "
            "(expected one of: every, compress)"
        ),
    ),
    # ---- data ----------------------------------------------------------------------------------
    (
        "data-kind",
        MIN + "data:\n  kind: moon\n",
        [],
        lambda f, d: (
            f"{f}:3: data.kind: expected one of {KINDS}; got a string, 'moon'; "
            f"did you mean 'moons'?"
        ),
    ),
    (
        "data-kind-null",
        MIN + "data:\n  kind:\n",
        [],
        lambda f, d: f"{f}:3: data.kind: expected one of {KINDS}; got null",
    ),
    (
        "sklearn-name",
        MIN + "data:\n  kind: sklearn\n  name: irsi\n",
        [],
        lambda f, d: (
            f"{f}:4: data.name: expected one of iris | wine | breast_cancer | digits | "
            f"diabetes; got a string, 'irsi'; did you mean 'iris'?"
        ),
    ),
    (
        "sklearn-no-name",
        MIN + "data:\n  kind: sklearn\n",
        [],
        lambda f, d: (
            f"{f}:2: data: missing required key 'name' (a dataset bundled with scikit-learn "
            f"(never downloaded))"
        ),
    ),
    (
        "csv-no-path-target",
        MIN + "data:\n  kind: csv\n",
        [],
        lambda f, d: [
            f"{f}:2: data: missing required key 'path' (CSV file with a header row)",
            f"{f}:2: data: missing required key 'target' (name of the target column)",
        ],
    ),
    (
        "npz-no-path",
        MIN + "data:\n  kind: npz\n",
        [],
        lambda f, d: f"{f}:2: data: missing required key 'path' (NumPy .npz file)",
    ),
    (
        "offset-for-moons",
        MIN + "data:\n  kind: moons\n  offset: 3\n",
        [],
        lambda f, d: (
            f"{f}:4: data.offset: 'offset' does not apply to data kind 'moons' "
            f"(it applies to: linear)"
        ),
    ),
    (
        "factor-for-linear",
        MIN + "data:\n  factor: 0.3\n",
        [],
        lambda f, d: (
            f"{f}:3: data.factor: 'factor' does not apply to data kind 'linear' "
            f"(it applies to: circles)"
        ),
    ),
    (
        "features-for-sklearn",
        MIN + "data:\n  kind: sklearn\n  name: iris\n  features: 2\n",
        [],
        lambda f, d: (
            f"{f}:5: data.features: 'features' does not apply to data kind 'sklearn' "
            f"(it applies to: linear, blobs, csv)"
        ),
    ),
    (
        "csv-file-missing",
        MIN + "data:\n  kind: csv\n  path: nope.csv\n  target: label\n",
        [],
        lambda f, d: f"{f}:4: data.path: file not found: {d}/nope.csv",
    ),
    (
        "csv-target-missing",
        MIN + "data:\n  kind: csv\n  path: data.csv\n  target: lable\n",
        [],
        lambda f, d: (
            f"{f}:5: data.target: no column 'lable' in data.csv; did you mean 'label'? "
            f"(columns: a, b, label)"
        ),
    ),
    (
        "csv-feature-missing",
        MIN + "data:\n  kind: csv\n  path: data.csv\n  target: label\n  features: [a, c]\n",
        [],
        lambda f, d: f"{f}:6: data.features.1: no column 'c' in data.csv",
    ),
    (
        "npz-array-missing",
        MIN + "data:\n  kind: npz\n  path: arrays.npz\n  x_key: inputs\n",
        [],
        lambda f, d: [
            f"{f}:5: data.x_key: no array 'inputs' in arrays.npz (arrays: X, Y)",
            f"{f}:2: data.y_key: no array 'y' in arrays.npz; did you mean 'Y'? (arrays: X, Y)",
        ],
    ),
    (
        "npz-not-a-zip",
        MIN + "data:\n  kind: npz\n  path: not-a-zip.npz\n",
        [],
        lambda f, d: (
            f"{f}:4: data.path: {d}/not-a-zip.npz is not a readable .npz file: "
            f"File is not a zip file"
        ),
    ),
    (
        "linear-weights-length",
        MIN + "data:\n  features: 3\n  weights: [1, 2]\n",
        [],
        lambda f, d: f"{f}:4: data.weights: expected 3 weight(s), one per feature; got 2",
    ),
    (
        "validation-split-1",
        MIN + "data:\n  validation_split: 1.0\n",
        [],
        lambda f, d: f"{f}:3: data.validation_split: expected a number in [0, 1); got 1",
    ),
    (
        "circles-factor-1",
        MIN + "data:\n  kind: circles\n  factor: 1\n",
        [],
        lambda f, d: f"{f}:4: data.factor: expected a number in (0, 1); got 1",
    ),
    (
        "noise-negative",
        MIN + "data:\n  noise: -0.5\n",
        [],
        lambda f, d: f"{f}:3: data.noise: expected a number >= 0; got -0.5",
    ),
    (
        "noise-nan",
        MIN + "data:\n  noise: .nan\n",
        [],
        lambda f, d: f"{f}:3: data.noise: expected a finite number >= 0; got nan",
    ),
    # ---- train ranges --------------------------------------------------------------------------
    (
        "epochs-zero",
        MIN + "train:\n  epochs: 0\n",
        [],
        lambda f, d: f"{f}:3: train.epochs: expected an integer in [1, 100000]; got 0",
    ),
    (
        "epochs-negative",
        MIN + "train:\n  epochs: -3\n",
        [],
        lambda f, d: f"{f}:3: train.epochs: expected an integer in [1, 100000]; got -3",
    ),
    (
        "epochs-huge",
        MIN + "train:\n  epochs: 100001\n",
        [],
        lambda f, d: f"{f}:3: train.epochs: expected an integer in [1, 100000]; got 100001",
    ),
    (
        "batch-size-zero",
        MIN + "train:\n  batch_size: 0\n",
        [],
        lambda f, d: f"{f}:3: train.batch_size: expected an integer >= 1; got 0",
    ),
    # ---- YAML 1.1 booleans ---------------------------------------------------------------------
    (
        "use-bias-yes",
        "model:\n  layers: [1]\n  use_bias: yes\n",
        [],
        lambda f, d: f"{f}:3: model.use_bias: expected true or false; got a string, 'yes'{HINT}",
    ),
    (
        "shuffle-off",
        MIN + "train:\n  shuffle: off\n",
        [],
        lambda f, d: f"{f}:3: train.shuffle: expected true or false; got a string, 'off'{HINT}",
    ),
    (
        "standardize-on",
        MIN + "data:\n  standardize: On\n",
        [],
        lambda f, d: f"{f}:3: data.standardize: expected true or false; got a string, 'On'{HINT}",
    ),
    (
        "layer-use-bias-no",
        "model:\n  layers:\n    - units: 1\n      use_bias: no\n",
        [],
        lambda f, d: (
            f"{f}:4: model.layers.0.use_bias: expected true or false; got a string, 'no'{HINT}"
        ),
    ),
    # ---- YAML itself ---------------------------------------------------------------------------
    (
        "duplicate-key",
        MIN + "train:\n  epochs: 3\n  batch_size: 8\n  epochs: 4\n",
        [],
        lambda f, d: (
            f"{f}:5: train.epochs: duplicate key (first given on line 3); remove one of them"
        ),
    ),
    (
        "duplicate-key-in-layer",
        "model:\n  layers:\n    - units: 1\n      units: 2\n",
        [],
        lambda f, d: (
            f"{f}:4: model.layers.0.units: duplicate key (first given on line 3); "
            f"remove one of them"
        ),
    ),
    (
        "python-tag",
        "model: !!python/object:os.system {}\n",
        [],
        lambda f, d: f"{f}:1: the tag !!python/object:os.system {SAFE}",
    ),
    (
        "python-name-tag",
        MIN + "train:\n  loss: !!python/name:os.system\n",
        [],
        lambda f, d: f"{f}:3: the tag !!python/name:os.system {SAFE}",
    ),
    (
        "custom-tag",
        MIN + "description: !secret x\n",
        [],
        lambda f, d: f"{f}:2: the tag !secret {SAFE}",
    ),
    (
        "bad-explicit-int",
        MIN + "seed: !!int abc\n",
        [],
        lambda f, d: f"{f}: not valid YAML: 'abc' is not a YAML 1.2 integer (digits, 0o.. or 0x..)",
    ),
    (
        "syntax-flow",
        "model: {layers: [1]\n",
        [],
        lambda f, d: (
            f"{f}:2: not valid YAML: expected ',' or '}}', but got '<stream end>' "
            f"(while parsing a flow mapping started on line 1)"
        ),
    ),
    (
        "syntax-indent",
        "model:\n  layers: [1]\n bad: 2\n",
        [],
        lambda f, d: (
            f"{f}:3: not valid YAML: expected <block end>, but found '<block mapping start>' "
            f"(while parsing a block mapping started on line 1)"
        ),
    ),
    (
        "two-documents",
        MIN + "---\n" + MIN,
        [],
        lambda f, d: (
            f"{f}:2: a config is a single YAML document; found a second one (remove the "
            f"'---' line and what follows, or merge them)"
        ),
    ),
    (
        "empty-file",
        "",
        [],
        lambda f, d: f"{f}: the config file is empty; see configs/ for examples",
    ),
    (
        "only-comments",
        "# nothing yet\n\n",
        [],
        lambda f, d: f"{f}: the config file is empty; see configs/ for examples",
    ),
    (
        "top-level-list",
        "- model\n- train\n",
        [],
        lambda f, d: f"{f}:1: expected a mapping at the top; got a list",
    ),
    (
        "top-level-scalar",
        "hello\n",
        [],
        lambda f, d: f"{f}:1: expected a mapping at the top; got a string, 'hello'",
    ),
    (
        "non-scalar-key",
        MIN + "? [a, b]\n: 1\n",
        [],
        lambda f, d: f"{f}:2: keys must be plain strings",
    ),
    # ---- seeds ---------------------------------------------------------------------------------
    (
        "seed-and-seeds",
        "seed: 1\nseeds: [1, 2]\n" + MIN,
        [],
        lambda f, d: f"{f}:2: seeds: give either 'seed' or 'seeds', not both",
    ),
    (
        "duplicate-seeds",
        "seeds: [1, 2, 1]\n" + MIN,
        [],
        lambda f, d: f"{f}:1: seeds: seeds must be distinct; got [1, 2, 1]",
    ),
    (
        "seeds-empty",
        "seeds: []\n" + MIN,
        [],
        lambda f, d: f"{f}:1: seeds: expected a list of at least 1 item(s); got 0",
    ),
    (
        "seeds-not-list",
        "seeds: 3\n" + MIN,
        [],
        lambda f, d: f"{f}:1: seeds: expected a list; got an integer, 3",
    ),
    (
        "seed-negative",
        "seed: -1\n" + MIN,
        [],
        lambda f, d: f"{f}:1: seed: expected an integer in [0, 4294967295]; got -1",
    ),
    (
        "seeds-item",
        "seeds: [0, x]\n" + MIN,
        [],
        lambda f, d: (
            f"{f}:1: seeds: item 1: expected an integer in [0, 4294967295]; got a string, 'x'"
        ),
    ),
    # ---- matrix --------------------------------------------------------------------------------
    (
        "matrix-section",
        MIN + "matrix:\n  modle.use_bias: [true, false]\n",
        [],
        lambda f, d: (
            f"{f}:3: matrix.modle.use_bias: 'modle' is not a config section; did you mean 'model'?"
        ),
    ),
    (
        "matrix-key",
        MIN + "matrix:\n  model.use_bais: [true, false]\n",
        [],
        lambda f, d: (
            f"{f}:3: matrix.model.use_bais: 'use_bais' is not a key of 'model'; "
            f"did you mean 'use_bias'?"
        ),
    ),
    (
        "matrix-train-key",
        MIN + "matrix:\n  train.learning_rate: [0.1, 0.01]\n",
        [],
        lambda f, d: f"{f}:3: matrix.train.learning_rate: 'learning_rate' is not a key of 'train'",
    ),
    (
        "matrix-data-key",
        MIN + "matrix:\n  data.nosie: [0.1, 0.2]\n",
        [],
        lambda f, d: (
            f"{f}:3: matrix.data.nosie: 'nosie' is not a key of 'data'; did you mean 'noise'?"
        ),
    ),
    (
        "matrix-layer-key",
        MIN + "matrix:\n  model.layers.0.unit: [1, 2]\n",
        [],
        lambda f, d: (
            f"{f}:3: matrix.model.layers.0.unit: 'unit' is not a layer key; did you mean 'units'?"
        ),
    ),
    (
        "matrix-layer-by-name",
        MIN + "matrix:\n  model.layers.out.units: [1, 2]\n",
        [],
        lambda f, d: (
            f"{f}:3: matrix.model.layers.out.units: select a layer by its position, "
            f"e.g. model.layers.0.units"
        ),
    ),
    (
        "matrix-not-list",
        MIN + "matrix:\n  model.use_bias: true\n",
        [],
        lambda f, d: (
            f"{f}:3: matrix.model.use_bias: expected a non-empty list of values; "
            f"got a boolean, True"
        ),
    ),
    (
        "matrix-empty-list",
        MIN + "matrix:\n  model.use_bias: []\n",
        [],
        lambda f, d: (
            f"{f}:3: matrix.model.use_bias: expected a non-empty list of values; got an empty list"
        ),
    ),
    (
        "matrix-not-mapping",
        MIN + "matrix: [model.use_bias]\n",
        [],
        lambda f, d: (
            f"{f}:2: matrix: expected a mapping of dotted keys to lists of values; got a list"
        ),
    ),
    (
        "matrix-seed",
        MIN + "matrix:\n  seed: [0, 1]\n",
        [],
        lambda f, d: (
            f"{f}:3: matrix.seed: seeds are not a matrix axis; use 'seeds: [0, 1, 2]' at "
            f"the top level"
        ),
    ),
    (
        "matrix-name",
        MIN + "matrix:\n  name: [a, b]\n",
        [],
        lambda f, d: (
            f"{f}:3: matrix.name: 'name' is not a matrix axis; a matrix varies keys of "
            f"data, model, train, snapshots"
        ),
    ),
    (
        "matrix-invalid-value",
        MIN + "train:\n  epochs: 5\nmatrix:\n  train.epochs: [1, 0]\n",
        [],
        lambda f, d: (
            f"{f}:5 (matrix value 0): train.epochs: expected an integer in [1, 100000]; got 0"
        ),
    ),
    (
        "matrix-invalid-boolean",
        MIN + "matrix:\n  model.use_bias: [true, 'no']\n",
        [],
        lambda f, d: (
            f"{f}:3 (matrix value 'no'): model.use_bias: expected true or false; "
            f"got a string, 'no'{HINT}"
        ),
    ),
    (
        "matrix-layer-out-of-range",
        MIN + "matrix:\n  model.layers.1.units: [4]\n",
        [],
        lambda f, d: (
            f"{f}:3 (matrix value 4): model.layers.1: index 1 is out of range "
            f"(the list has 1 item(s))"
        ),
    ),
    # ---- overrides -----------------------------------------------------------------------------
    (
        "override-no-equals",
        MIN,
        ["train.epochs"],
        lambda f, d: "override 'train.epochs': expected KEY=VALUE, e.g. train.epochs=5",
    ),
    (
        "override-no-key",
        MIN,
        ["=5"],
        lambda f, d: "override '=5': expected a dotted key such as train.epochs",
    ),
    (
        "override-empty-part",
        MIN,
        ["train..epochs=5"],
        lambda f, d: (
            "override 'train..epochs=5': train..epochs: expected a dotted key such as train.epochs"
        ),
    ),
    (
        "override-index-out-of-range",
        "model:\n  layers: [{units: 4}, {units: 1}]\n",
        ["model.layers.2.units=3"],
        lambda f, d: (
            "override 'model.layers.2.units=3': model.layers.2: index 2 is out of range "
            "(the list has 2 item(s))"
        ),
    ),
    (
        "override-index-not-a-number",
        "model:\n  layers: [4, 1]\n",
        ["model.layers.out.units=3"],
        lambda f, d: (
            "override 'model.layers.out.units=3': model.layers.out: 'out' is not a list "
            "index; select an item by its position, e.g. model.layers.0"
        ),
    ),
    (
        "override-unknown-key",
        MIN,
        ["train.epoch=5"],
        lambda f, d: (
            f"override 'train.epoch=5': train.epoch: unknown key; did you mean 'epochs'? "
            f"(expected one of: {TRAIN_KEYS})"
        ),
    ),
    (
        "override-bad-value",
        MIN + "train:\n  epochs: 3\n",
        ["train.epochs=abc"],
        lambda f, d: (
            "override 'train.epochs=abc': train.epochs: expected an integer in [1, 100000]; "
            "got a string, 'abc'"
        ),
    ),
    (
        "override-empty-value",
        MIN,
        ["train.loss="],
        lambda f, d: (
            "override 'train.loss=': train.loss: expected a Keras loss: a name such as "
            "'mse', or a mapping; got a string, ''"
        ),
    ),
    (
        "override-yes",
        MIN,
        ["model.use_bias=yes"],
        lambda f, d: (
            f"override 'model.use_bias=yes': model.use_bias: expected true or false; "
            f"got a string, 'yes'{HINT}"
        ),
    ),
    (
        "override-bad-yaml",
        MIN,
        ["train.epochs=[1"],
        lambda f, d: (
            "override 'train.epochs=[1': train.epochs: not valid YAML: expected ',' or ']', "
            "but got '<stream end>'"
        ),
    ),
    (
        "override-inside-scalar",
        MIN + "train:\n  optimizer: sgd\n",
        ["train.optimizer.learning_rate=0.1"],
        lambda f, d: (
            "override 'train.optimizer.learning_rate=0.1': train.optimizer: cannot set "
            "'learning_rate' inside it: it is a string, 'sgd'; set the whole value instead"
        ),
    ),
    (
        "override-bad-matrix-key",
        MIN,
        ["matrix.model.use_bais=[true, false]"],
        lambda f, d: (
            "override 'matrix.model.use_bais=[true, false]': matrix.model.use_bais: "
            "'use_bais' is not a key of 'model'; did you mean 'use_bias'?"
        ),
    ),
    # ---- model and layers ----------------------------------------------------------------------
    (
        "layer-no-units",
        "model:\n  layers:\n    - activation: relu\n",
        [],
        lambda f, d: f"{f}:3: model.layers.0: missing required key 'units' (number of units)",
    ),
    (
        "no-layers",
        "model:\n  use_bias: false\n",
        [],
        lambda f, d: f"{f}:1: model: missing required key 'layers' (Dense layers, input to output)",
    ),
    (
        "no-model",
        "train:\n  epochs: 1\n",
        [],
        lambda f, d: f"{f}:1: model: missing required key 'layers' (Dense layers, input to output)",
    ),
    (
        "units-zero",
        "model:\n  layers: [0]\n",
        [],
        lambda f, d: f"{f}:2: model.layers.0.units: expected an integer >= 1; got 0",
    ),
    (
        "duplicate-layer-names",
        "model:\n  layers:\n    - {units: 2, name: a}\n    - {units: 1, name: a}\n",
        [],
        lambda f, d: f"{f}:4: model.layers.1.name: duplicate layer name 'a' (also layer 0)",
    ),
    (
        "layer-name-clashes-default",
        "model:\n  layers:\n    - {units: 2, name: dense_2}\n    - {units: 1}\n",
        [],
        lambda f, d: f"{f}:4: model.layers.1.name: duplicate layer name 'dense_2' (also layer 0)",
    ),
    (
        "layer-name-slash",
        "model:\n  layers:\n    - {units: 2, name: a/b}\n",
        [],
        lambda f, d: (
            f"{f}:3: model.layers.0.name: expected a name of letters, digits, '_', '.', '-' "
            f"(no '/'); got 'a/b'"
        ),
    ),
    (
        "experiment-name-slash",
        "name: exp/1\n" + MIN,
        [],
        lambda f, d: (
            f"{f}:1: name: expected a name of letters, digits, '_', '.', '-' (no '/'); got 'exp/1'"
        ),
    ),
    # ---- snapshots -----------------------------------------------------------------------------
    (
        "every-zero",
        MIN + "snapshots:\n  every: 0\n",
        [],
        lambda f, d: (
            f"{f}:3: snapshots.every: expected 'epoch', 'never' or a number of batches >= 1; "
            f"got an integer, 0"
        ),
    ),
    (
        "every-misspelt",
        MIN + "snapshots:\n  every: epochs\n",
        [],
        lambda f, d: (
            f"{f}:3: snapshots.every: expected 'epoch', 'never' or a number of batches >= 1; "
            f"got a string, 'epochs'"
        ),
    ),
    (
        "every-bool",
        MIN + "snapshots:\n  every: true\n",
        [],
        lambda f, d: (
            f"{f}:3: snapshots.every: expected 'epoch', 'never' or a number of batches >= 1; "
            f"got a boolean, True"
        ),
    ),
    # ---- Keras references (shape only; names are checked by Keras later) -----------------------
    (
        "keras-mapping-without-name",
        "model:\n  layers: [1]\n  kernel_initializer: {seed: 3}\n",
        [],
        lambda f, d: (
            f"{f}:3: model.kernel_initializer: an initializer given as a mapping needs "
            f"'name' (and its keyword arguments), or 'class_name' and 'config'"
        ),
    ),
    (
        "keras-class-name-extra-keys",
        "model:\n  layers: [1]\n  kernel_initializer: {class_name: GlorotUniform, seed: 3}\n",
        [],
        lambda f, d: (
            f"{f}:3: model.kernel_initializer: a {{class_name, config}} initializer takes "
            f"its arguments under 'config'; unexpected key(s): seed"
        ),
    ),
    (
        "keras-config-not-mapping",
        MIN + "train:\n  optimizer: {class_name: SGD, config: 3}\n",
        [],
        lambda f, d: (
            f"{f}:3: train.optimizer: 'config' of an optimizer must be a mapping; got an integer, 3"
        ),
    ),
    (
        "keras-empty-name",
        MIN + "train:\n  optimizer: {name: '', learning_rate: 0.1}\n",
        [],
        lambda f, d: (
            f"{f}:3: train.optimizer: 'name' of an optimizer: expected a non-empty string; "
            f"got a string, ''"
        ),
    ),
    (
        "keras-number",
        MIN + "train:\n  loss: 2\n",
        [],
        lambda f, d: (
            f"{f}:3: train.loss: expected a Keras loss: a name such as 'mse', or a mapping; "
            f"got an integer, 2"
        ),
    ),
    (
        "keras-activation-list",
        "model:\n  layers:\n    - {units: 1, activation: [relu]}\n",
        [],
        lambda f, d: (
            f"{f}:3: model.layers.0.activation: expected a Keras activation: a name such as "
            f"'relu', or a mapping; got a list"
        ),
    ),
]


@pytest.mark.parametrize(
    ("text", "overrides", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_config_is_rejected_with_exact_message(
    write_config, tmp_path: Path, text: str, overrides: list[str], expected: Expected
) -> None:
    _data_files(tmp_path)
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path, overrides)
    want = expected(str(path), str(tmp_path.resolve()))
    if isinstance(want, list):
        assert [str(p) for p in info.value.problems] == want
        assert str(info.value).splitlines() == [
            f"{len(want)} problems in the config:",
            *(f"  - {w}" for w in want),
        ]
    else:
        assert str(info.value) == want
        assert len(info.value.problems) == 1


def test_bad_config_table_is_large_and_unique() -> None:
    assert len(BAD) >= 35
    assert len({c[0] for c in BAD}) == len(BAD)


def test_every_problem_names_a_location_a_key_and_an_expectation(write_config) -> None:
    path = write_config(
        "seeds: [1, 1]\nmodel:\n  layers: [{units: 0, use_bias: no}]\n"
        "  kernel_initializer: {seed: 3}\ntrain:\n  epochs: 0\n  batchsize: 3\n"
        "data:\n  kind: moons\n  offset: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert [(p.location, p.key) for p in info.value.problems] == [(f"{path}:1", "seeds")]
    path = write_config(
        "model:\n  layers: [{units: 0, use_bias: no}]\n"
        "  kernel_initializer: {seed: 3}\ntrain:\n  epochs: 0\n  batchsize: 3\n"
        "data:\n  kind: moons\n  offset: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    problems = info.value.problems
    assert [(p.location, p.key) for p in problems] == [
        (f"{path}:9", "data.offset"),
        (f"{path}:3", "model.kernel_initializer"),
        (f"{path}:2", "model.layers.0.units"),
        (f"{path}:2", "model.layers.0.use_bias"),
        (f"{path}:6", "train.batchsize"),
        (f"{path}:5", "train.epochs"),
    ]
    assert all(p.message for p in problems)
    assert ConfigError.exit_code == 2


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value) == f"{path}: config file not found"


def test_config_error_from_text_and_single_problem() -> None:
    assert str(ConfigError("plain")) == "plain"
    one = ConfigError(Problem("f.yaml:3", "train.epochs", "bad"))
    assert str(one) == "f.yaml:3: train.epochs: bad"
    assert str(Problem("", "", "whole")) == "whole"


# ---- YAML 1.2 scalars ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 0.001),
        ("1E5", 100000.0),
        ("-2.5e-3", -0.0025),
        ("+1e2", 100.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1.5e+2", 150.0),
        ("3", 3),
        ("0", 0),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("1e", "1e"),
        ("2024-01-05", "2024-01-05"),
    ],
)
def test_yaml_12_scalars(text: str, value: Any) -> None:
    data, _ = yamlio.load(f"v: {text}\n", "t.yaml")
    assert data == {"v": value}
    assert type(data["v"]) is type(value)


def test_learning_rate_in_exponent_form_is_a_float(write_config) -> None:
    path = write_config(
        "model: {layers: [1]}\ndata:\n  offset: 1E5\n  noise: 2.5e-3\n"
        "train:\n  optimizer: {name: sgd, learning_rate: 1e-3}\n"
    )
    cfg = load_experiment(path).runs[0].config
    assert cfg["train"]["optimizer"] == {"name": "sgd", "learning_rate": 0.001}
    assert isinstance(cfg["train"]["optimizer"]["learning_rate"], float)
    assert cfg["data"]["offset"] == 100000.0
    assert cfg["data"]["noise"] == 0.0025


def test_yes_and_on_stay_strings_in_string_fields(write_config, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x,yes\n1,2\n", encoding="utf-8")
    path = write_config(
        "name: on\ndescription: yes\nmodel:\n  layers:\n"
        "    - {units: 1, activation: off}\n"
        "data:\n  kind: csv\n  path: d.csv\n  target: yes\n"
    )
    exp = load_experiment(path)
    cfg = exp.runs[0].config
    assert exp.name == "on"
    assert cfg["name"] == "on"
    assert cfg["description"] == "yes"
    assert cfg["data"]["target"] == "yes"
    assert cfg["model"]["layers"][0]["activation"] == "off"


# ---- defaults and layers -------------------------------------------------------------------------

DEFAULT_CONFIG = {
    "name": "exp",
    "seed": 0,
    "data": {
        "kind": "linear",
        "validation_split": 0.2,
        "standardize": False,
        "seed": None,
        "samples": 1000,
        "features": 1,
        "offset": 0.0,
        "noise": 0.1,
        "weights": None,
        "input_offset": 0.0,
    },
    "model": {
        "use_bias": True,
        "kernel_initializer": "glorot_uniform",
        "bias_initializer": "zeros",
        "layers": [
            {
                "units": 1,
                "activation": None,
                "name": "dense_1",
                "use_bias": True,
                "kernel_initializer": "glorot_uniform",
                "bias_initializer": "zeros",
            }
        ],
    },
    "train": {
        "optimizer": "sgd",
        "loss": "mse",
        "metrics": [],
        "epochs": 10,
        "batch_size": 32,
        "shuffle": True,
        "tensorboard": False,
    },
    "snapshots": {"every": "epoch", "compress": False},
}


def test_minimal_config_resolves_to_the_documented_defaults(write_config) -> None:
    path = write_config("model: {layers: [{units: 1}]}\n")
    exp = load_experiment(path)
    assert exp.name == "exp"
    assert exp.source == str(path)
    assert exp.seeds == [0]
    assert exp.matrix == {}
    assert exp.overrides == []
    assert exp.describe() == "1 run"
    [run] = exp.runs
    assert (run.index, run.seed, run.cell, run.experiment) == (0, 0, {}, "exp")
    assert run.config == DEFAULT_CONFIG
    assert list(run.config) == ["name", "seed", "data", "model", "train", "snapshots"]


def test_empty_sections_mean_defaults(write_config) -> None:
    path = write_config("data:\ntrain:\nsnapshots:\nmodel:\n  layers: [1]\n")
    assert load_experiment(path).runs[0].config == DEFAULT_CONFIG


def test_defaults_of_each_data_kind(write_config, tmp_path: Path) -> None:
    _data_files(tmp_path)
    expected = {
        "blobs": {
            "samples": 1000,
            "features": 2,
            "centers": 2,
            "cluster_std": 1.0,
            "center_box": [-10.0, 10.0],
        },
        "xor": {"samples": 1000, "noise": 0.1, "input_offset": 0.0},
        "moons": {"samples": 1000, "noise": 0.1, "input_offset": 0.0},
        "circles": {"samples": 1000, "noise": 0.05, "factor": 0.5, "input_offset": 0.0},
        "sklearn": {"samples": None, "name": "iris"},
        "csv": {
            "samples": None,
            "path": str(tmp_path.resolve() / "data.csv"),
            "target": "label",
            "features": None,
        },
        "npz": {
            "samples": None,
            "path": str(tmp_path.resolve() / "arrays.npz"),
            "x_key": "X",
            "y_key": "Y",
        },
    }
    extra = {
        "sklearn": "  name: iris\n",
        "csv": "  path: data.csv\n  target: label\n",
        "npz": "  path: arrays.npz\n  y_key: Y\n",
    }
    common = {"validation_split": 0.2, "standardize": False, "seed": None}
    for kind, fields in expected.items():
        path = write_config(f"{MIN}data:\n  kind: {kind}\n{extra.get(kind, '')}", f"{kind}.yaml")
        assert load_experiment(path).runs[0].config["data"] == {"kind": kind, **common, **fields}


def test_layers_inherit_bias_and_initializers_from_the_model(write_config) -> None:
    path = write_config(
        "model:\n"
        "  use_bias: false\n"
        "  kernel_initializer: ones\n"
        "  bias_initializer: {class_name: Constant, config: {value: 2.0}}\n"
        "  layers:\n"
        "    - {units: 4, activation: relu}\n"
        "    - {units: 1, use_bias: true, kernel_initializer: {name: random_normal, stddev: 0.1}}\n"
    )
    layers = load_experiment(path).runs[0].config["model"]["layers"]
    assert layers == [
        {
            "units": 4,
            "activation": "relu",
            "name": "dense_1",
            "use_bias": False,
            "kernel_initializer": "ones",
            "bias_initializer": {"class_name": "Constant", "config": {"value": 2.0}},
        },
        {
            "units": 1,
            "activation": None,
            "name": "dense_2",
            "use_bias": True,
            "kernel_initializer": {"name": "random_normal", "stddev": 0.1},
            "bias_initializer": {"class_name": "Constant", "config": {"value": 2.0}},
        },
    ]
    # Inherited values are copies: changing one layer's mapping leaves the others alone.
    layers[0]["bias_initializer"]["config"]["value"] = 9.0
    assert layers[1]["bias_initializer"]["config"]["value"] == 2.0


def test_layer_names_default_by_position(write_config) -> None:
    path = write_config(
        "model:\n  layers:\n    - {units: 3}\n    - {units: 2, name: out.1}\n    - {units: 1}\n"
    )
    layers = load_experiment(path).runs[0].config["model"]["layers"]
    assert [layer["name"] for layer in layers] == ["dense_1", "out.1", "dense_3"]


def test_layers_shorthand_is_units(write_config) -> None:
    path = write_config("model:\n  layers: [8, 1]\n")
    layers = load_experiment(path).runs[0].config["model"]["layers"]
    assert [(la["units"], la["name"], la["activation"]) for la in layers] == [
        (8, "dense_1", None),
        (1, "dense_2", None),
    ]


def test_name_defaults_to_file_stem_and_description_is_kept(write_config) -> None:
    path = write_config("description: a tiny test\n" + MIN, "my-exp.v2.yaml")
    exp = load_experiment(path)
    assert exp.name == "my-exp.v2"
    assert exp.runs[0].config["description"] == "a tiny test"


# ---- overrides -----------------------------------------------------------------------------------


def test_overrides_apply_on_top_of_the_file(write_config) -> None:
    path = write_config(
        "seeds: [0, 1]\nmodel:\n  layers: [{units: 4}, {units: 1}]\n"
        "train:\n  epochs: 50\n  optimizer: sgd\n"
    )
    overrides = [
        "train.epochs=5",
        "model.use_bias=false",
        "model.layers.0.units=16",
        "train.optimizer={name: adam, learning_rate: 0.01}",
        "seed=3",
    ]
    exp = load_experiment(path, overrides)
    assert exp.overrides == overrides
    assert exp.seeds == [3]
    [run] = exp.runs
    cfg = run.config
    assert cfg["seed"] == 3
    assert cfg["train"]["epochs"] == 5
    assert cfg["train"]["optimizer"] == {"name": "adam", "learning_rate": 0.01}
    assert cfg["model"]["use_bias"] is False
    assert [la["use_bias"] for la in cfg["model"]["layers"]] == [False, False]
    assert [la["units"] for la in cfg["model"]["layers"]] == [16, 1]
    # Overridden keys are located at the override, the rest at the file.
    assert run.locate(("train", "epochs")) == "override 'train.epochs=5'"
    assert run.locate(("model", "layers", 0, "units")) == "override 'model.layers.0.units=16'"
    assert run.locate(("model", "layers", 1, "units")) == f"{path}:3"
    assert run.locate(("train", "optimizer", "learning_rate")) == (
        "override 'train.optimizer={name: adam, learning_rate: 0.01}'"
    )


def test_override_seeds_replaces_seed(write_config) -> None:
    path = write_config("seed: 7\n" + MIN)
    exp = load_experiment(path, ["seeds=[1, 2]"])
    assert exp.seeds == [1, 2]
    assert [r.seed for r in exp.runs] == [1, 2]
    assert exp.describe() == "2 runs: 2 seeds"


def test_override_creates_missing_sections_and_layer_shorthand_entries(write_config) -> None:
    path = write_config("model:\n  layers: [8, 1]\n")
    cfg = (
        load_experiment(
            path,
            [
                "model.layers.0.units=16",
                "model.layers.1.activation=sigmoid",
                "data.kind=xor",
                "snapshots.every=3",
            ],
        )
        .runs[0]
        .config
    )
    assert [(la["units"], la["activation"]) for la in cfg["model"]["layers"]] == [
        (16, None),
        (1, "sigmoid"),
    ]
    assert cfg["data"]["kind"] == "xor"
    assert cfg["snapshots"]["every"] == 3


def test_override_value_is_yaml(write_config) -> None:
    path = write_config(MIN)
    cfg = (
        load_experiment(
            path, ["train.metrics=[mae, mse]", "data.offset=1e-3", "train.shuffle=false"]
        )
        .runs[0]
        .config
    )
    assert cfg["train"]["metrics"] == ["mae", "mse"]
    assert cfg["data"]["offset"] == 0.001
    assert cfg["train"]["shuffle"] is False


def test_override_adds_a_matrix_axis(write_config) -> None:
    path = write_config(MIN)
    exp = load_experiment(path, ["matrix.model.use_bias=[true, false]"])
    assert exp.matrix == {"model.use_bias": [True, False]}
    assert [r.cell for r in exp.runs] == [{"model.use_bias": True}, {"model.use_bias": False}]


def test_relative_data_path_resolves_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "points.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "exp.yaml"
    path.write_text(
        MIN + "data:\n  kind: csv\n  path: ../data/points.csv\n  target: y\n", encoding="utf-8"
    )
    cfg = load_experiment(path).runs[0].config
    assert cfg["data"]["path"] == str((tmp_path / "data" / "points.csv").resolve())


def test_check_files_false_skips_the_file_checks(write_config, tmp_path: Path) -> None:
    path = write_config(MIN + "data:\n  kind: npz\n  path: later.npz\n")
    cfg = load_experiment(path, check_files=False).runs[0].config
    assert cfg["data"]["path"] == str(tmp_path.resolve() / "later.npz")


# ---- matrix × seeds ------------------------------------------------------------------------------


def test_matrix_times_seeds_expansion(write_config) -> None:
    path = write_config(
        "seeds: [0, 1]\n" + MIN + "matrix:\n"
        "  model.kernel_initializer: [zeros, ones, {name: random_normal, stddev: 2.0}]\n"
        "  model.use_bias: [true, false]\n"
    )
    exp = load_experiment(path)
    assert exp.describe() == "12 runs: 3 model.kernel_initializer × 2 model.use_bias × 2 seeds"
    assert len(exp.runs) == 12
    assert [r.index for r in exp.runs] == list(range(12))
    inits = ["zeros", "ones", {"name": "random_normal", "stddev": 2.0}]
    expected = [
        ({"model.kernel_initializer": k, "model.use_bias": b}, s)
        for k in inits
        for b in (True, False)
        for s in (0, 1)
    ]
    assert [(r.cell, r.seed) for r in exp.runs] == expected
    for run in exp.runs:
        layer = run.config["model"]["layers"][0]
        assert run.config["seed"] == run.seed
        assert layer["kernel_initializer"] == run.cell["model.kernel_initializer"]
        assert layer["use_bias"] is run.cell["model.use_bias"]
        assert run.config["model"]["use_bias"] is run.cell["model.use_bias"]
        assert run.locate(("model", "use_bias")).startswith(f"{path}:5 (matrix value ")
    # Runs do not share mutable state.
    exp.runs[0].config["model"]["layers"][0]["units"] = 99
    assert exp.runs[1].config["model"]["layers"][0]["units"] == 1


@pytest.mark.parametrize(
    ("head", "described"),
    [
        ("", "1 run"),
        ("seed: 4\n", "1 run"),
        ("seeds: [5]\n", "1 run"),
        ("seeds: [0, 1, 2]\n", "3 runs: 3 seeds"),
        ("matrix:\n  model.use_bias: [true, false]\n", "2 runs: 2 model.use_bias"),
        ("seeds: [3]\nmatrix:\n  train.epochs: [1, 2, 3]\n", "3 runs: 3 train.epochs"),
        (
            "seeds: [0, 1]\nmatrix:\n  model.layers.0.units: [2, 4]\n"
            "  data.noise: [0.0, 0.5, 1.0]\n",
            "12 runs: 2 model.layers.0.units × 3 data.noise × 2 seeds",
        ),
    ],
)
def test_describe(write_config, head: str, described: str) -> None:
    assert load_experiment(write_config(head + MIN)).describe() == described


def test_matrix_on_layer_units_with_shorthand_layers(write_config) -> None:
    path = write_config("model:\n  layers: [8, 1]\nmatrix:\n  model.layers.0.units: [4, 8]\n")
    exp = load_experiment(path)
    assert [r.config["model"]["layers"][0]["units"] for r in exp.runs] == [4, 8]


def test_matrix_over_a_whole_list_and_data_kind(write_config) -> None:
    path = write_config(MIN + "matrix:\n  model.layers: [[1], [4, 1]]\n  data.kind: [xor, moons]\n")
    exp = load_experiment(path)
    assert [(len(r.config["model"]["layers"]), r.config["data"]["kind"]) for r in exp.runs] == [
        (1, "xor"),
        (1, "moons"),
        (2, "xor"),
        (2, "moons"),
    ]


def test_matrix_problem_reported_once_per_distinct_problem(write_config) -> None:
    path = write_config(MIN + "matrix:\n  train.epochs: [0, 1]\n  train.batch_size: [8, 16]\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:3 (matrix value 0): train.epochs: expected an integer in [1, 100000]; got 0"
    ]


# ---- flatten, short_value, keras_refs, did_you_mean, Locator -------------------------------------


def test_flatten_default_config() -> None:
    assert flatten(DEFAULT_CONFIG) == {
        "name": "exp",
        "seed": 0,
        "data.kind": "linear",
        "data.validation_split": 0.2,
        "data.standardize": False,
        "data.seed": None,
        "data.samples": 1000,
        "data.features": 1,
        "data.offset": 0.0,
        "data.noise": 0.1,
        "data.weights": None,
        "data.input_offset": 0.0,
        "model.use_bias": True,
        "model.kernel_initializer": "glorot_uniform",
        "model.bias_initializer": "zeros",
        "model.layers.0.units": 1,
        "model.layers.0.activation": None,
        "model.layers.0.name": "dense_1",
        "model.layers.0.use_bias": True,
        "model.layers.0.kernel_initializer": "glorot_uniform",
        "model.layers.0.bias_initializer": "zeros",
        "train.optimizer": "sgd",
        "train.loss": "mse",
        "train.metrics": [],
        "train.epochs": 10,
        "train.batch_size": 32,
        "train.shuffle": True,
        "train.tensorboard": False,
        "snapshots.every": "epoch",
        "snapshots.compress": False,
    }


def test_flatten_keeps_keras_mappings_whole() -> None:
    opt = {"name": "sgd", "learning_rate": 0.1}
    init = {"class_name": "RandomNormal", "config": {"stddev": 2.0}}
    cfg = {
        "train": {"optimizer": opt, "metrics": ["mae", {"name": "mse"}]},
        "model": {"layers": [{"units": 2, "kernel_initializer": init}], "use_bias": False},
        "data": {"weights": [1.0, 2.0]},
    }
    assert flatten(cfg) == {
        "train.optimizer": opt,
        "train.metrics": ["mae", {"name": "mse"}],  # a list of not-only-mappings is one value
        "model.layers.0.units": 2,
        "model.layers.0.kernel_initializer": init,
        "model.use_bias": False,
        "data.weights": [1.0, 2.0],
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (
            {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
            "sgd(learning_rate=0.1, momentum=0.9)",
        ),
        ({"name": "adam"}, "adam"),
        (
            {"class_name": "RandomNormal", "config": {"stddev": 2.0, "seed": None}},
            "RandomNormal(stddev=2, seed=null)",
        ),
        (
            {
                "class_name": "GlorotUniform",
                "config": {},
                "module": "keras.initializers",
                "registered_name": None,
            },
            "GlorotUniform",
        ),
        ({"class_name": "Zeros"}, "Zeros"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (0.001, "0.001"),
        (1e-5, "1e-05"),
        (2.0, "2"),
        (3, "3"),
        ("relu", "relu"),
        (["mae", {"name": "mse"}], "[mae, mse]"),
        ([1.5, 2], "[1.5, 2]"),
        ([], "[]"),
    ],
)
def test_short_value(value: Any, text: str) -> None:
    assert short_value(value) == text


def test_keras_refs_lists_every_keras_name(write_config) -> None:
    path = write_config(
        "model:\n  bias_initializer: ones\n  layers:\n"
        "    - {units: 4, activation: relu}\n"
        "    - {units: 1, kernel_initializer: {name: random_normal, stddev: 1}}\n"
        "train:\n  optimizer: {name: adam, learning_rate: 1e-3}\n  loss: mae\n"
        "  metrics: [mse, accuracy]\n"
    )
    assert keras_refs(load_experiment(path).runs[0]) == [
        (("train", "optimizer"), "optimizer", {"name": "adam", "learning_rate": 0.001}),
        (("train", "loss"), "loss", "mae"),
        (("train", "metrics", 0), "metric", "mse"),
        (("train", "metrics", 1), "metric", "accuracy"),
        (("model", "layers", 0, "kernel_initializer"), "initializer", "glorot_uniform"),
        (("model", "layers", 0, "bias_initializer"), "initializer", "ones"),
        (("model", "layers", 0, "activation"), "activation", "relu"),
        (
            ("model", "layers", 1, "kernel_initializer"),
            "initializer",
            {"name": "random_normal", "stddev": 1},
        ),
        (("model", "layers", 1, "bias_initializer"), "initializer", "ones"),
    ]


@pytest.mark.parametrize(
    ("word", "candidates", "suffix"),
    [
        ("epoch", ["epochs", "batch_size"], "; did you mean 'epochs'?"),
        ("BatchSize", ["epochs", "batch_size"], "; did you mean 'batch_size'?"),
        ("glorot-uniform", ["glorot_uniform", "zeros"], "; did you mean 'glorot_uniform'?"),
        ("xyz", ["epochs", "batch_size"], ""),
        (3, ["epochs"], ""),
    ],
)
def test_did_you_mean(word: Any, candidates: list[str], suffix: str) -> None:
    assert did_you_mean(word, candidates) == suffix


def test_locator() -> None:
    lines = {(): 1, ("train",): 4, ("train", "epochs"): 5}
    locate = Locator("c.yaml", lines)
    assert locate(("train", "epochs")) == "c.yaml:5"
    assert locate(("train", "batch_size")) == "c.yaml:4"  # not written: its section's line
    assert locate(("model", "layers")) == "c.yaml:1"
    assert Locator("c.yaml")(("x",)) == "c.yaml"
    layered = locate.with_layer(("train",), "override 'train={}'").with_layer(
        ("train", "epochs"), "override 'train.epochs=3'"
    )
    assert layered(("train", "epochs")) == "override 'train.epochs=3'"  # later layers win
    assert layered(("train", "loss")) == "override 'train={}'"
    assert layered(("model",)) == "c.yaml:1"
    assert locate.layers == []  # with_layer returns a new Locator
    assert locate.has(("train", "epochs")) and not locate.has(("train", "loss"))
    assert layered.has(("train", "loss"))


# ---- yamlio --------------------------------------------------------------------------------------


def test_yamlio_line_numbers_for_nested_paths() -> None:
    text = (
        "# comment\n"  # 1
        "name: x\n"  # 2
        "model:\n"  # 3
        "  use_bias: true\n"  # 4
        "  layers:\n"  # 5
        "    - units: 8\n"  # 6
        "      activation: relu\n"  # 7
        "    - {units: 1,\n"  # 8
        "       name: out}\n"  # 9
        "train:\n"  # 10
        "  optimizer:\n"  # 11
        "    name: sgd\n"  # 12
        "    learning_rate: 1e-2\n"  # 13
        "  metrics: [mae,\n"  # 14
        "            mse]\n"  # 15
        "matrix:\n"  # 16
        "  model.use_bias: [true, false]\n"  # 17
    )
    data, lines = yamlio.load(text, "x.yaml")
    assert data["train"]["optimizer"]["learning_rate"] == 0.01
    assert lines == {
        (): 2,
        ("name",): 2,
        ("model",): 3,
        ("model", "use_bias"): 4,
        ("model", "layers"): 5,
        ("model", "layers", 0): 6,
        ("model", "layers", 0, "units"): 6,
        ("model", "layers", 0, "activation"): 7,
        ("model", "layers", 1): 8,
        ("model", "layers", 1, "units"): 8,
        ("model", "layers", 1, "name"): 9,
        ("train",): 10,
        ("train", "optimizer"): 11,
        ("train", "optimizer", "name"): 12,
        ("train", "optimizer", "learning_rate"): 13,
        ("train", "metrics"): 14,
        ("train", "metrics", 0): 14,
        ("train", "metrics", 1): 15,
        ("matrix",): 16,
        ("matrix", "model.use_bias"): 17,
        ("matrix", "model.use_bias", 0): 17,
        ("matrix", "model.use_bias", 1): 17,
    }


def test_yamlio_empty_and_non_string_keys() -> None:
    assert yamlio.load("", "e.yaml") == (None, {})
    assert yamlio.load("# only a comment\n", "e.yaml") == (None, {})
    data, lines = yamlio.load("a: 1\n2: b\ntrue: c\n", "k.yaml")
    assert data == {"a": 1, 2: "b", True: "c"}
    assert lines == {(): 1, ("a",): 1, (2,): 2, (True,): 3}


def test_yamlio_duplicate_keys_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        yamlio.load("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "d.yaml")
    assert [str(p) for p in info.value.problems] == [
        "d.yaml:4: b.c: duplicate key (first given on line 3); remove one of them",
        "d.yaml:5: a: duplicate key (first given on line 1); remove one of them",
    ]


def test_yamlio_anchors_and_merge_keys_work() -> None:
    data, _ = yamlio.load("base: &b {units: 4}\nlayer: {<<: *b, name: x}\n", "m.yaml")
    assert data == {"base": {"units": 4}, "layer": {"units": 4, "name": "x"}}


def test_yamlio_dump_round_trips() -> None:
    data = {
        "description": "1e-3",
        "a": "yes",
        "b": "on",
        "c": "2024-01-05",
        "d": 1e-5,
        "e": float("inf"),
        "f": "-2.5e-3",
        "g": "true",
        "h": "null",
        "i": ".5",
        "j": None,
        "k": [1, 2.5, True],
        "l": {"name": "sgd", "learning_rate": 0.001},
        "m": "ünï",
    }
    text = yamlio.dump(data)
    assert yamlio.load(text, "dump.yaml")[0] == data
    assert list(yamlio.load(text, "dump.yaml")[0]) == list(data)  # key order kept
    import yaml  # a YAML 1.1 reader gets the same data too

    assert yaml.safe_load(text) == data


def test_yamlio_dotted() -> None:
    assert yamlio.dotted(("model", "layers", 0, "units")) == "model.layers.0.units"


# ---- the shipped configs -------------------------------------------------------------------------

SHIPPED = sorted(CONFIGS.glob("*.yaml"))


def test_there_are_shipped_configs() -> None:
    assert SHIPPED, f"no configs in {CONFIGS}"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_loads(path: Path) -> None:
    exp = load_experiment(path)
    assert exp.runs
    assert exp.describe().startswith(f"{len(exp.runs)} run")
    for run in exp.runs:
        assert run.config["name"] == exp.name
        assert yamlio.load(yamlio.dump(run.config), "round-trip")[0] == run.config


def test_bias_vs_no_bias_config_varies_use_bias(tmp_path: Path) -> None:
    path = CONFIGS / "bias-vs-no-bias.yaml"
    if not path.exists():
        pytest.skip("configs/bias-vs-no-bias.yaml is not there")
    exp = load_experiment(path)
    assert exp.name == "bias-vs-no-bias"
    assert exp.matrix == {"model.use_bias": [True, False]}
    assert [r.config["model"]["use_bias"] for r in exp.runs] == [True] * 5 + [False] * 5
    assert exp.seeds == [0, 1, 2, 3, 4], "the gallery trains five seeds"


# ---- no TensorFlow -------------------------------------------------------------------------------


def test_config_layer_never_imports_tensorflow() -> None:
    code = (
        "import sys, glob\n"
        "from weightlab.config import load_experiment, keras_refs\n"
        "for p in sorted(glob.glob('configs/*.yaml')):\n"
        "    for r in load_experiment(p).runs: keras_refs(r)\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_csv_with_byte_order_mark_validates(write_config, tmp_path):
    (tmp_path / "bom.csv").write_bytes("\ufeffy,a\n1,2\n".encode())
    path = write_config("data: {kind: csv, path: bom.csv, target: y}\nmodel: {layers: [1]}\n")
    assert load_experiment(path).runs[0].config["data"]["target"] == "y"


def test_csv_target_listed_as_feature_is_rejected(write_config, tmp_path):
    (tmp_path / "d.csv").write_text("y,a\n1,2\n")
    path = write_config(
        "data: {kind: csv, path: d.csv, target: y, features: [a, y]}\nmodel: {layers: [1]}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert str(err.value) == (
        f"{path}:1: data.features.1: 'y' is the target; a feature that is "
        "the target leaks the answer into the inputs"
    )
