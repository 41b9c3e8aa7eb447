"""`weightlab schema`: a JSON Schema built from config.py's tables that agrees with the loader."""

from __future__ import annotations

import json

import jsonschema
import pytest
from click.testing import CliRunner
from conftest import CONFIGS

from weightlab import config, schema, yamlio
from weightlab.cli import cli
from weightlab.config import load_experiment
from weightlab.errors import ConfigError
from weightlab.gallery import starter


@pytest.fixture(scope="module")
def validator():
    built = schema.build()
    jsonschema.Draft7Validator.check_schema(built)
    return jsonschema.Draft7Validator(built)


def errors(validator, text: str) -> list[str]:
    raw, _ = yamlio.load(text, "t.yaml")
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(raw)
    ]


def test_every_field_has_a_schema():
    assert schema.missing() == []


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_validates(validator, path):
    assert errors(validator, path.read_text(encoding="utf-8")) == []


def test_starter_config_validates(validator):
    assert errors(validator, starter("weightlab.yaml")) == []


def test_built_from_the_tables_not_a_copy():
    built = schema.build()
    train = built["properties"]["train"]["properties"]
    assert set(train) == set(config.TRAIN)
    assert train["epochs"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100_000,
        "description": config.TRAIN["epochs"].doc,
        "default": config.TRAIN["epochs"].default,
    }
    assert set(built["properties"]) == set(config.TOP_KEYS)
    kinds = [b["if"]["properties"]["kind"]["const"] for b in built["properties"]["data"]["allOf"]]
    assert kinds == list(config.DATA_KIND_FIELDS)


GOOD = [
    "model: {layers: [8, 1]}\n",
    "model: {layers: [{units: 2, activation: {name: leaky_relu, negative_slope: 0.1}}, 1]}\n",
    "data: {kind: sklearn, name: iris, samples: null}\nmodel: {layers: [3]}\n",
    "model: {layers: [1], kernel_initializer: {class_name: RandomNormal, config: {stddev: 2}}}\n",
    "model: {layers: [1]}\ntrain: {optimizer: {name: sgd}}\n"
    "matrix: {train.optimizer.learning_rate: [0.1, 1]}\n",
    "model: {layers: [1]}\nseeds: [0, 1]\nsnapshots: {every: 5}\n",
    "model: {layers: [1]}\nexpect: {status: completed, final: {loss: {max: 1}}, diverged: false}\n",
]
BAD = [
    ("model: {layers: [{units: 0}]}\n", "model.layers.0"),
    ("model: {layers: [1]}\ntrain: {epoch: 3}\n", "'epoch' was unexpected"),
    (
        "model: {layers: [1]}\ntrain: {shuffle: yes}\n",
        "train.shuffle: 'yes' is not of type 'boolean'",
    ),
    ("data: {kind: sklearn}\nmodel: {layers: [1]}\n", "'name' is a required property"),
    ("data: {kind: blobs, offset: 2}\nmodel: {layers: [1]}\n", "'offset' was unexpected"),
    ("data: {offset: 2, centers: 3}\nmodel: {layers: [1]}\n", "'centers' was unexpected"),
    ("data: {validation_split: 1}\nmodel: {layers: [1]}\n", "data.validation_split: 1"),
    ("model: {layers: [1]}\nseed: 1\nseeds: [1, 2]\n", "should not be valid"),
    ("model: {layers: [1], use_bias: true, kernel_initializer: 3}\n", "kernel_initializer"),
    ("model: {layers: [1]}\nmatrix: {epochs: [1, 2]}\n", "'epochs' does not match"),
    ("model: {layers: [1]}\nsnapshots: {every: always}\n", "snapshots.every"),
    ("model: {layers: [1]}\nname: a/b\n", "name: 'a/b' does not match"),
    ("model: {layers: [1]}\nexpect: {stauts: completed}\n", "'stauts' does not match"),
    ("model: {layers: [1]}\nexpect: {final.loss: {max: low}}\n", "expect.final.loss"),
    ("train: {epochs: 1}\n", "'model' is a required property"),
]


@pytest.mark.parametrize("text", GOOD)
def test_schema_and_loader_accept_the_same(validator, text, write_config):
    assert errors(validator, text) == []
    load_experiment(write_config(text))


@pytest.mark.parametrize(("text", "message"), BAD)
def test_schema_and_loader_reject_the_same(validator, text, message, write_config):
    found = errors(validator, text)
    assert any(message in e for e in found), found
    with pytest.raises(ConfigError):
        load_experiment(write_config(text))


def test_schema_command_prints_the_schema():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads(json.dumps(schema.build()))
