"""Property: whatever YAML and overrides come in, the loader returns a valid config or raises
ConfigError, never anything else (no KeyError, TypeError, RecursionError, ...)."""

from __future__ import annotations

import math
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightlab import config
from weightlab.config import Experiment, load_experiment
from weightlab.errors import ConfigError

# Real keys half of the time, so that documents get past the first check and deep into validation.
KEYS = sorted(
    {*config.TOP_KEYS, *config.MODEL, *config.LAYER, *config.TRAIN, *config.SNAPSHOTS}
    | {*config.DATA_COMMON, *(k for f in config.DATA_KIND_FIELDS.values() for k in f)}
    | {"kind", "class_name", "config", "name"}
)
key = st.one_of(st.sampled_from(KEYS), st.text(max_size=8))
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["sgd", "adam", "relu", "zeros", "mse", "csv", "npz", "linear", "epoch"]),
    st.text(max_size=12),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=5)),
    max_leaves=25,
)
document = st.dictionaries(key, value, max_size=7)
dotted = st.lists(
    st.one_of(st.sampled_from(KEYS), st.sampled_from(["0", "1", "layers"]), st.text(max_size=4)),
    min_size=1,
    max_size=4,
).map(".".join)
override = st.tuples(dotted, st.one_of(value.map(yaml.safe_dump), st.text(max_size=10))).map(
    lambda kv: f"{kv[0]}={kv[1].strip()}"
)
overrides = st.lists(st.one_of(override, st.text(max_size=12)), max_size=3)
# Derandomized: the same examples on every run, so the suite stays deterministic; raise
# FUZZ_EXAMPLES to search further by hand.
SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def load(tmp_path, text: str, extra: list[str]) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        experiment = load_experiment(path, extra)
    except ConfigError as e:
        assert str(e).strip(), "a config error always says something"
        return
    assert isinstance(experiment, Experiment) and experiment.runs
    for spec in experiment.runs:
        cfg = spec.config
        assert cfg["model"]["layers"] and cfg["train"]["epochs"] >= 1
        assert 0 <= cfg["data"]["validation_split"] < 1
        assert all(layer["units"] >= 1 for layer in cfg["model"]["layers"])
        assert all(
            not isinstance(v, float) or math.isfinite(v) for v in config.flatten(cfg).values()
        )


@SETTINGS
@given(doc=document, extra=overrides)
def test_random_documents_and_overrides(tmp_path, doc, extra):
    load(tmp_path, yaml.safe_dump(doc, allow_unicode=True), extra)


@SETTINGS
@given(
    text=st.text(
        alphabet=st.sampled_from(list("abcmodel:trainepochs{}[]-,!&*|>'\"#%@ \n\t0123.")),
        max_size=120,
    )
)
def test_random_yaml_text(tmp_path, text):
    load(tmp_path, text, [])


@SETTINGS
@given(extra=overrides)
def test_random_overrides_on_a_valid_config(tmp_path, extra):
    load(tmp_path, "model:\n  layers: [{units: 4, activation: relu}, 1]\n", extra)
