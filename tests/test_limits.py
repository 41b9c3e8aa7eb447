"""Limits and validation gaps of issue 17: seeds, sizes, YAML bombs, values that would lie later.

None of these trains or imports TensorFlow: every case is refused (or read) at validation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import write_run
from weightlab import config
from weightlab.cli import cli
from weightlab.store import Store

BASE = "model:\n  layers: [{units: 1}]\n"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


# ---- item 2: seeds Keras accepts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (
            BASE + "seed: 18446744073709551616\n",
            [],
            "{cfg}:3: seed: expected an integer in [0, 4294967295]; got 18446744073709551616",
        ),
        (
            BASE + "seed: 4294967296\n",
            [],
            "{cfg}:3: seed: expected an integer in [0, 4294967295]; got 4294967296",
        ),
        (
            BASE + "seeds: [0, 9223372036854775807]\n",
            [],
            "{cfg}:3: seeds: item 1: expected an integer in [0, 4294967295]; "
            "got 9223372036854775807",
        ),
        (
            BASE + "data: {seed: 18446744073709551616}\n",
            [],
            "{cfg}:3: data.seed: expected an integer in [0, 4294967295]; got 18446744073709551616",
        ),
        (
            BASE,
            ["seed=18446744073709551616"],
            "override 'seed=18446744073709551616': seed: expected an integer in [0, 4294967295]",
        ),
    ],
)
def test_a_seed_beyond_what_keras_accepts_is_a_config_error(
    write_config, text: str, overrides: list[str], message: str
) -> None:
    cfg = write_config(text)
    for command in (["validate"], ["run", "--dry-run"]):
        code, out = invoke(*command, str(cfg), *overrides)
        assert code == 2, out
        assert message.format(cfg=cfg) in " ".join(out.split()), out


def test_the_largest_seed_keras_accepts_is_valid(write_config) -> None:
    cfg = write_config(BASE + "seed: 4294967295\n")
    assert config.load_experiment(cfg).runs[0].seed == 2**32 - 1


def test_seeds_option_beyond_the_range_is_refused_before_expanding(write_config) -> None:
    cfg = write_config(BASE)
    code, out = invoke("run", "--dry-run", str(cfg), "--seeds", "4294967290-4294967300")
    assert code == 2
    assert "--seeds '4294967290-4294967300': seeds: a seed must be in [0, 4294967295]" in out


def test_one_oversized_seed_in_a_run_json_does_not_break_the_store(store_dir: Path) -> None:
    store = Store.open(store_dir)
    good = write_run(store, experiment="good", batch="b1")["id"]
    bad = write_run(store, experiment="bad", batch="b2")["id"]
    path = store.run_dir(bad) / "run.json"
    record = json.loads(path.read_text())
    record["seed"] = 18446744073709551616  # as an older version (or a hand edit) left it
    path.write_text(json.dumps(record))
    for command in (["ls"], ["reindex"], ["ls", "good"], ["show", good]):
        code, out = invoke(*command, "--store", str(store_dir))
        assert code == 0, (command, out)
    assert {r["id"] for r in Store.open(store_dir).runs()} == {good, bad}


# ---- item 6: YAML bombs, depth, size -----------------------------------------------------------

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            BASE + "description:\n  " + LAUGHS.replace("\n", "\n  ").rstrip() + "\n",
            "expands to more than 100000 keys, values and items",
        ),
        (BASE + LAUGHS, "expands to more than 100000 keys, values and items"),
        (
            BASE + "description: &a [*a]\n",
            "{cfg}:3: the alias *a refers to the list or mapping that contains it",
        ),
        (BASE + "description: &a {x: *a}\n", "the alias *a refers to the list or mapping"),
        (BASE + "description: " + "[" * 1000 + "]" * 1000 + "\n", "{cfg}:3: nested more than 64"),
        (BASE + "description: " + "{a: " * 100 + "1" + "}" * 100 + "\n", "nested more than 64"),
        (
            # every anchor only 2 deep in the file, 70 deep once the aliases are followed
            BASE + "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 70)),
            "nested more than 64 lists or mappings deep (aliases followed)",
        ),
    ],
    ids=[
        "laughs-nested",
        "laughs-top",
        "self-alias",
        "self-alias-map",
        "deep",
        "deep-map",
        "chain",
    ],
)
def test_yaml_bombs_are_config_errors(write_config, text: str, message: str) -> None:
    cfg = write_config(text)
    code, out = invoke("validate", str(cfg))
    assert code == 2, out
    assert message.format(cfg=cfg) in " ".join(out.split()), out


def test_a_bomb_in_an_override_is_refused_too(write_config) -> None:
    cfg = write_config(BASE)
    code, out = invoke("validate", str(cfg), "description=&a [*a]")
    assert code == 2
    assert "override 'description=&a [*a]': description: the alias *a refers" in out


def test_sixty_four_levels_are_still_read(write_config) -> None:
    from weightlab import yamlio

    data, _ = yamlio.load("x: " + "[" * 63 + "]" * 63 + "\n", "t")
    depth = 0
    node = data["x"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0] if node else None
    assert depth == 63


def test_a_config_over_a_megabyte_is_refused(write_config) -> None:
    cfg = write_config(BASE + "# " + "x" * 1_000_000 + "\n")
    code, out = invoke("validate", str(cfg))
    assert code == 2
    assert "larger than a config may be (at most 1,000,000 bytes)" in out


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/dev/zero", "the config file is a character device, not a file"),
        ("/dev/null", "the config file is a character device"),
    ],
)
def test_a_device_is_refused_without_reading_it(path: str, message: str) -> None:
    code, out = invoke("validate", path)
    assert code == 2
    assert f"{path}: {message}" in out


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    code, out = invoke("validate", str(fifo))
    assert code == 2
    assert f"{fifo}: the config file is a named pipe (FIFO), not a file" in out


def test_a_planted_alias_bomb_in_the_store_is_a_clear_error(store_dir: Path) -> None:
    store = Store.open(store_dir)
    run = write_run(store)["id"]
    (store.run_dir(run) / "config.yaml").write_text(LAUGHS)
    from weightlab.runfiles import DamagedRun

    # The run is damaged, named with the reason; the alias is never expanded.
    with pytest.raises(DamagedRun, match="config.yaml:6: this value expands to more than 100000"):
        store.config(run)


# ---- item 8 (YAML part): YAML 1.2 core schema scalars ------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("010", 10),  # YAML 1.1 octal; decimal in YAML 1.2
        ("0o10", 8),
        ("0x1F", 31),
        ("-007", -7),
        ("1:30", "1:30"),  # YAML 1.1 sexagesimal
        ("1_000", "1_000"),  # YAML 1.1 digit separators
        ("1_000.5", "1_000.5"),
        ("0b101", "0b101"),
        ("1e3", 1000.0),
        (".5", 0.5),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(text: str, value: object) -> None:
    from weightlab import yamlio

    data, _ = yamlio.load(f"x: {text}\n", "t")
    assert data["x"] == value and type(data["x"]) is type(value)
    # what weightlab writes reads back the same, here and in a YAML 1.1 reader
    assert yamlio.load(yamlio.dump({"x": data["x"]}), "t")[0] == {"x": value}
    assert yamlio.load(yamlio.dump({"x": text}), "t")[0] == {"x": text}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("010", None),
        ("1:30", "train.epochs: expected an integer in [1, 100000]; got a string, '1:30'"),
        ("1_000", "train.epochs: expected an integer in [1, 100000]; got a string, '1_000'"),
    ],
)
def test_epochs_written_the_yaml_1_1_way(write_config, value: str, message: str | None) -> None:
    cfg = write_config(BASE + f"train:\n  epochs: {value}\n")
    if message is None:
        assert config.load_experiment(cfg).runs[0].config["train"]["epochs"] == 10
        return
    code, out = invoke("validate", str(cfg))
    assert code == 2
    assert f"{cfg}:4: {message}" in out


# ---- item 7: size caps, counted before anything is allocated -----------------------------------


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        (BASE, ["--seeds", "0-100000000"], "more than 10,000 seeds"),
        (
            BASE
            + "matrix:\n"
            + "".join(
                f"  train.{k}: [{', '.join(str(i) for i in range(1, 11))}]\n"
                for k in ("epochs", "batch_size")
            )
            + "  data.samples: ["
            + ", ".join(str(i) for i in range(10, 111))
            + "]\n",
            [],
            "{cfg}:3: matrix: this sweep would make 10100 runs",
        ),
        (
            BASE + "matrix: {train.epochs: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n",
            ["--seeds", "0-1000"],
            "this sweep would make 10010 runs (10 train.epochs × 1001 seed(s)); a config may "
            "make at most 10,000",
        ),
        (
            BASE + "data: {kind: blobs, centers: 1000000000}\n",
            [],
            "{cfg}:3: data.centers: expected an integer in [2, 10000]; got 1000000000",
        ),
        (
            BASE + "data: {kind: blobs, centers: 50, samples: 20}\n",
            [],
            "{cfg}:3: data.centers: 50 classes need at least as many samples",
        ),
        (
            BASE + "data: {features: 10000, samples: 10000000}\n",
            [],
            "{cfg}:3: data.samples: 10000000 samples × 10000 feature(s) is 100,000,000,000 "
            "values; a generated dataset may hold at most 20,000,000",
        ),
        (
            "model:\n  layers: [{units: 1000000000000}]\n",
            [],
            "{cfg}:2: model.layers.0.units: expected at most 100000 units in a layer; "
            "got 1000000000000",
        ),
        (
            "model:\n  layers: [100000, 100000, 1]\n",
            [],
            "{cfg}:2: model.layers.1.units: with 1 input feature(s) the model reaches more than "
            "10,",
        ),
        (
            "model:\n  layers: [1000, 1]\ndata: {features: 10000}\n",
            [],
            "model.layers.0.units: with 10000 input feature(s) the model reaches more than "
            "10,001,000 weights and biases at this layer; a model may have at most 10,000,000",
        ),
    ],
    ids=[
        "seeds-option",
        "matrix",
        "matrix-x-seeds",
        "centers",
        "centers>samples",
        "samples",
        "units",
        "parameters",
        "parameters-wide-input",
    ],
)
def test_sizes_are_bounded_before_anything_is_allocated(
    write_config, text: str, args: list[str], message: str
) -> None:
    cfg = write_config(text)
    code, out = invoke("run", "--dry-run", str(cfg), *args)
    assert code == 2, out
    assert message.format(cfg=cfg) in " ".join(out.split()), out


def test_the_largest_sweep_is_still_allowed(write_config) -> None:
    cfg = write_config(BASE + "matrix: {train.epochs: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n")
    experiment = config.load_experiment(cfg, seeds="0-999")
    assert len(experiment.runs) == 10_000


def test_a_csv_header_of_100000_columns_is_read_in_linear_time(tmp_path: Path) -> None:
    import time

    from weightlab import data

    names = [f"c{i}" for i in range(100_000)]
    (tmp_path / "wide.csv").write_text(",".join(names) + "\n" + ",".join(["1"] * 100_000) + "\n")
    cfg = tmp_path / "wide.yaml"
    cfg.write_text(
        "model:\n  layers: [1]\ndata: {kind: csv, path: wide.csv, target: c99999, "
        "validation_split: 0}\n"
    )
    start = time.perf_counter()
    spec = config.load_experiment(cfg).runs[0]
    loaded = data.load(spec.config["data"], 0)
    assert loaded.features == 99_999
    assert time.perf_counter() - start < 20  # 133 s before: the lookup was quadratic


# ---- item 8: accepted at validation, then the run failed or lied --------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: {offset: .inf}\n", "{cfg}:3: data.offset: expected a finite number; got inf"),
        ("data: {offset: -.inf}\n", "data.offset: expected a finite number; got -inf"),
        ("data: {input_offset: .inf}\n", "data.input_offset: expected a finite number; got inf"),
        ("data: {noise: .inf}\n", "data.noise: expected a finite number >= 0; got inf"),
        (
            "data: {features: 2, weights: [.inf, 1]}\n",
            "data.weights: item 0: expected a finite number; got inf",
        ),
        (
            "data: {kind: blobs, center_box: [.inf, 1]}\n",
            "data.center_box: item 0: expected a finite number in [-1e+15, 1e+15]; got inf",
        ),
        (
            "data: {kind: blobs, center_box: [-1e300, 1e300]}\n",
            "data.center_box: item 0: expected a number in [-1e+15, 1e+15]; got -1e+300",
        ),
        (
            "data: {kind: blobs, center_box: [5, -5]}\n",
            "data.center_box: expected [low, high] with low < high; got [5, -5]",
        ),
        (
            "data: {kind: blobs, center_box: [0, 1, 2]}\n",
            "data.center_box: expected [low, high] with low < high; got [0, 1, 2]",
        ),
        ("data: {kind: blobs, cluster_std: .inf}\n", "data.cluster_std: expected a finite number"),
        (
            "matrix: {model.use_bias: [true, false, true]}\n",
            "{cfg}:3: matrix.model.use_bias: the value true is given twice (items 0 and 2)",
        ),
        (
            "matrix: {train.optimizer: [{name: sgd}, adam, {name: sgd}]}\n",
            "matrix.train.optimizer: the value sgd is given twice (items 0 and 2)",
        ),
        ("name: latest\n", "{cfg}:3: name: the experiment name 'latest' is the selector of"),
        (
            "name: 261129-084421-5f3a\n",
            "name: the experiment name '261129-084421-5f3a' is shaped like a run id, so "
            "`weightlab ls 261129-084421-5f3a` could never select this experiment; choose "
            "another `name:`",
        ),
    ],
)
def test_values_that_would_fail_or_lie_later_are_refused(
    write_config, text: str, message: str
) -> None:
    cfg = write_config(BASE + text)
    code, out = invoke("validate", str(cfg))
    assert code == 2, out
    assert message.format(cfg=cfg) in " ".join(out.split()), out


def test_a_config_file_named_like_a_selector_needs_a_name(write_config) -> None:
    cfg = write_config(BASE, name="latest.yaml")
    code, out = invoke("validate", str(cfg))
    assert code == 2
    assert "add a `name:` (or rename the file)" in " ".join(out.split())
    cfg.write_text(BASE + "name: mine\n")
    assert invoke("validate", str(cfg))[0] == 0


def test_duplicate_csv_header_names_are_refused(tmp_path: Path) -> None:
    from weightlab import data
    from weightlab.errors import DataError

    (tmp_path / "d.csv").write_text("x,y,x\n1,2,3\n4,5,6\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  layers: [1]\ndata: {kind: csv, path: d.csv, target: y}\n")
    code, out = invoke("validate", str(cfg))
    assert code == 2
    assert (
        f"{cfg}:3: data.path: d.csv: the column name 'x' is in the header twice (columns 1 and 3)"
        in " ".join(out.split())
    )
    spec = config.load_experiment(cfg, check_files=False).runs[0]
    with pytest.raises(DataError, match="'x' is in the header twice"):
        data.load(spec.config["data"], 0)


def test_complex_npz_data_is_refused(tmp_path: Path) -> None:
    import numpy as np

    from weightlab import data
    from weightlab.errors import DataError

    np.savez(tmp_path / "d.npz", X=np.ones((4, 2), dtype=complex), y=np.zeros(4))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  layers: [1]\ndata: {kind: npz, path: d.npz}\n")
    code, out = invoke("validate", str(cfg))
    assert code == 2
    assert "data.x_key: d.npz: array 'X' is complex (complex128)" in " ".join(out.split())
    spec = config.load_experiment(cfg, check_files=False).runs[0]
    with pytest.raises(DataError, match="is complex"):
        data.load(spec.config["data"], 0)


@pytest.mark.parametrize("value", ["nan", "inf", "-nan"])
def test_threshold_must_be_a_finite_number(store_dir: Path, value: str) -> None:
    write_run(Store.open(store_dir))
    code, out = invoke("compare", "--threshold", value)
    assert code == 2
    assert "--threshold" in out and ("finite" in out or "not in the range" in out)


@pytest.mark.parametrize("selector", ["", " "])
@pytest.mark.parametrize("command", ["ls", "compare", "show", "export"])
def test_an_empty_selector_selects_nothing(
    store_dir: Path, tmp_path: Path, command: str, selector: str
) -> None:
    write_run(Store.open(store_dir))
    extra = ["--to", "csv", str(tmp_path / "out")] if command == "export" else []
    code, out = invoke(command, selector, *extra)
    assert code == 2, out
    assert f"an empty selector {selector!r} selects nothing" in out
