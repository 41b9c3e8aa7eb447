"""weightlab.data.load for every dataset kind: shapes, dtypes, splits, seeds, scaling, files.

Each ``data`` section is resolved the way production resolves it: a YAML config on disk read by
``load_experiment``, so every default is filled in exactly as for a real run. No TensorFlow here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn.datasets

from weightlab.config import RunSpec, load_experiment
from weightlab.data import Dataset, load
from weightlab.errors import DataError

# ---- helpers -------------------------------------------------------------------------------------


def _config_text(data: str, seed: str) -> str:
    return (
        f"{seed}\ndata:\n{textwrap.indent(textwrap.dedent(data).strip(), '  ')}\n"
        "model:\n  layers: [1]\n"
    )


@pytest.fixture
def runs(write_config):
    """``runs(data_yaml, seed=0) -> [RunSpec, ...]``: the resolved runs of a small config."""

    def make(data: str, seed: int | str = 0, *, check_files: bool = True) -> list[RunSpec]:
        top = seed if isinstance(seed, str) else f"seed: {seed}"
        path = write_config(_config_text(data, top))
        return load_experiment(path, check_files=check_files).runs

    return make


@pytest.fixture
def section(runs):
    """``section(data_yaml, seed=0) -> (resolved data section, run seed)``."""

    def make(data: str, seed: int = 0, **kw: Any) -> tuple[dict[str, Any], int]:
        spec = runs(data, seed, **kw)[0]
        return spec.config["data"], spec.seed

    return make


@pytest.fixture
def dataset(section):
    """``dataset(data_yaml, seed=0) -> Dataset``, loaded as a run would load it."""

    def make(data: str, seed: int = 0, **kw: Any) -> Dataset:
        return load(*section(data, seed, **kw))

    return make


def everything(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows together (training first)."""
    if ds.x_val is None:
        return ds.x_train, ds.y_train
    return np.concatenate([ds.x_train, ds.x_val]), np.concatenate([ds.y_train, ds.y_val])


def write_csv(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path.resolve()


def classification_csv(path: Path, rows: int = 40) -> Path:
    """Columns a, b, label, c; label in {0, 1, 2}; a = row number, so rows can be traced."""
    lines = ["a,b,label,c"]
    lines += [f"{i},{i * 0.5 + 1},{i % 3},{-i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path.resolve()


# ---- every kind: shapes, dtypes, split sizes, info -----------------------------------------------

KINDS = {
    # id: (data yaml, total rows, features, classes or None for regression)
    "linear": ("{kind: linear, samples: 200, features: 3}", 200, 3, None),
    "blobs": ("{kind: blobs, samples: 200, features: 4, centers: 3}", 200, 4, 3),
    "xor": ("{kind: xor, samples: 200}", 200, 2, 2),
    "moons": ("{kind: moons, samples: 200}", 200, 2, 2),
    "circles": ("{kind: circles, samples: 200}", 200, 2, 2),
    "iris": ("{kind: sklearn, name: iris}", 150, 4, 3),
    "wine": ("{kind: sklearn, name: wine}", 178, 13, 3),
    "breast_cancer": ("{kind: sklearn, name: breast_cancer}", 569, 30, 2),
    "digits": ("{kind: sklearn, name: digits}", 1797, 64, 10),
    "diabetes": ("{kind: sklearn, name: diabetes}", 442, 10, None),
}


def data_yaml(flow: str, **extra: Any) -> str:
    """Add keys to a flow mapping: ``data_yaml("{kind: xor}", seed=3)``."""
    more = "".join(f", {k}: {v}" for k, v in extra.items())
    return flow[:-1] + more + "}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_shapes_dtypes_and_split_sizes(dataset, kind):
    text, n, features, classes = KINDS[kind]
    ds = dataset(text)
    n_val = round(n * 0.2)  # the default validation_split
    assert ds.x_train.dtype == np.float32 and ds.x_val.dtype == np.float32
    assert ds.x_train.shape == (n - n_val, features)
    assert ds.x_val.shape == (n_val, features)
    assert ds.features == features
    if classes is None:
        assert ds.y_train.dtype == np.float32 and ds.y_val.dtype == np.float32
        assert ds.y_train.shape == (n - n_val, 1) and ds.y_val.shape == (n_val, 1)
    else:
        assert ds.y_train.dtype == np.int32 and ds.y_val.dtype == np.int32
        assert ds.y_train.shape == (n - n_val,) and ds.y_val.shape == (n_val,)
        labels = set(np.unique(everything(ds)[1]).tolist())
        assert labels == set(range(classes))
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_val).all()
    assert ds.info["kind"] == text.split("kind: ")[1].split(",")[0]
    assert ds.info["features"] == features
    assert ds.info["train_samples"] == n - n_val and ds.info["val_samples"] == n_val
    assert ds.info["seed"] == 0


def test_sklearn_info_names_features_and_classes(dataset):
    ds = dataset("{kind: sklearn, name: iris}")
    assert ds.info["feature_names"] == list(sklearn.datasets.load_iris().feature_names)
    assert ds.info["target_names"] == ["setosa", "versicolor", "virginica"]
    assert "target_names" not in dataset("{kind: sklearn, name: diabetes}").info


def test_blobs_info_has_one_centre_per_class(dataset):
    ds = dataset("{kind: blobs, samples: 100, features: 3, centers: 4, center_box: [-2, 2]}")
    centers = np.asarray(ds.info["centers"])
    assert centers.shape == (4, 3)
    assert (np.abs(centers) <= 2).all()


def test_xor_labels_follow_the_quadrant(dataset):
    ds = dataset("{kind: xor, samples: 400, noise: 0.0}")
    x, y = everything(ds)
    assert np.array_equal(y, ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(np.int32))


@pytest.mark.parametrize(
    ("samples", "split", "n_val"),
    [
        (150, 0.2, 30),
        (10, 0.34, 3),
        (10, 0.36, 4),
        (7, 0.5, 4),  # 3.5 rounds to 4 (either rounding rule)
        (3, 0.1, 0),  # 0.3 rounds to 0: no validation set at all
        (100, 0.0, 0),
    ],
)
def test_validation_split_rounds_to_the_nearest_row(dataset, samples, split, n_val):
    ds = dataset(f"{{kind: linear, samples: {samples}, validation_split: {split}}}")
    assert len(ds.x_train) == len(ds.y_train) == samples - n_val
    assert ds.info["val_samples"] == n_val and ds.info["train_samples"] == samples - n_val
    if n_val:
        assert len(ds.x_val) == len(ds.y_val) == n_val
    else:
        assert ds.x_val is None and ds.y_val is None


# ---- the split is random, and keeps every row with its own label ---------------------------------


def test_split_is_random_not_the_last_rows(dataset):
    iris = sklearn.datasets.load_iris()  # sorted by class: the last 30 rows are all 'virginica'
    ds = dataset("{kind: sklearn, name: iris}")
    assert len(np.unique(ds.y_val)) > 1
    assert len(np.unique(ds.y_train)) == 3
    last = iris.data[-30:].astype(np.float32)
    assert not np.array_equal(np.sort(ds.x_val, axis=0), np.sort(last, axis=0))


def test_split_partitions_the_rows_and_keeps_labels_aligned(dataset):
    iris = sklearn.datasets.load_iris()
    label_of = {
        tuple(row): int(t) for row, t in zip(iris.data.astype(np.float32), iris.target, strict=True)
    }
    ds = dataset("{kind: sklearn, name: iris}")
    x, y = everything(ds)
    # Every row once (iris has one duplicated row, hence the multiset comparison).
    assert np.array_equal(
        np.sort(x.view("V16").ravel()), np.sort(iris.data.astype(np.float32).view("V16").ravel())
    )
    assert [label_of[tuple(row)] for row in x] == y.tolist()


# ---- determinism and seeds -----------------------------------------------------------------------

SEEDED = ["linear", "blobs", "xor", "moons", "circles", "iris", "diabetes"]


@pytest.mark.parametrize("kind", SEEDED)
def test_same_seed_gives_identical_arrays(dataset, kind):
    a, b = dataset(KINDS[kind][0], seed=5), dataset(KINDS[kind][0], seed=5)
    for field in ("x_train", "y_train", "x_val", "y_val"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert a.info == b.info


@pytest.mark.parametrize("kind", SEEDED)
def test_different_seed_gives_different_arrays(dataset, kind):
    a, b = dataset(KINDS[kind][0], seed=5), dataset(KINDS[kind][0], seed=6)
    assert a.x_train.shape == b.x_train.shape
    assert not np.array_equal(a.x_train, b.x_train)
    assert a.info["seed"] == 5 and b.info["seed"] == 6


def test_file_datasets_split_with_the_seed(tmp_path, dataset):
    classification_csv(tmp_path / "d.csv")
    text = "{kind: csv, path: d.csv, target: label}"
    assert np.array_equal(dataset(text, seed=1).x_val, dataset(text, seed=1).x_val)
    assert not np.array_equal(dataset(text, seed=1).x_val, dataset(text, seed=2).x_val)


def test_data_seed_overrides_the_run_seed(dataset):
    a = dataset("{kind: linear, samples: 50, features: 2, seed: 7}", seed=1)
    b = dataset("{kind: linear, samples: 50, features: 2, seed: 7}", seed=2)
    c = dataset("{kind: linear, samples: 50, features: 2}", seed=7)
    assert a.info["seed"] == b.info["seed"] == 7
    for field in ("x_train", "y_train", "x_val", "y_val"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
        assert np.array_equal(getattr(a, field), getattr(c, field))
    assert a.info["w_true"] == c.info["w_true"]


def test_seeds_give_each_run_its_own_data_unless_data_seed_is_set(runs):
    loaded = [
        load(r.config["data"], r.seed) for r in runs("{kind: moons, samples: 60}", "seeds: [3, 4]")
    ]
    assert [d.info["seed"] for d in loaded] == [3, 4]
    assert not np.array_equal(loaded[0].x_train, loaded[1].x_train)
    fixed = [
        load(r.config["data"], r.seed)
        for r in runs("{kind: moons, samples: 60, seed: 9}", "seeds: [3, 4]")
    ]
    assert [d.info["seed"] for d in fixed] == [9, 9]
    assert np.array_equal(fixed[0].x_train, fixed[1].x_train)


# ---- standardize ---------------------------------------------------------------------------------


def test_standardize_uses_training_split_statistics(dataset):
    text = "{kind: linear, samples: 300, features: 3, input_offset: 5.0, standardize: %s}"
    raw, std = dataset(text % "false"), dataset(text % "true")
    assert "standardize" not in raw.info
    np.testing.assert_allclose(std.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(std.x_train.std(axis=0), 1.0, atol=1e-4)
    assert std.x_train.dtype == np.float32 and std.x_val.dtype == np.float32
    stats = std.info["standardize"]
    mean, sd = np.asarray(stats["mean"]), np.asarray(stats["std"])
    np.testing.assert_allclose(mean, raw.x_train.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(sd, raw.x_train.std(axis=0), rtol=1e-5)
    assert np.all(np.abs(mean - 5.0) < 0.2)  # the raw inputs really were offset
    # Validation rows are scaled with the training statistics, not their own.
    np.testing.assert_allclose(std.x_val, (raw.x_val - mean) / sd, atol=1e-5)
    # Targets are left alone.
    assert np.array_equal(std.y_train, raw.y_train)


def test_standardize_leaves_constant_columns_finite(dataset):
    ds = dataset("{kind: sklearn, name: digits, standardize: true}")  # some pixels are always 0
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_val).all()
    sd = np.asarray(ds.info["standardize"]["std"])
    assert (sd == 1.0).any()  # a zero std is recorded as 1 and the column is only centred


# ---- linear: y really is x·w_true + offset + noise -----------------------------------------------


def test_linear_targets_follow_the_true_weights(dataset):
    ds = dataset("{kind: linear, samples: 2000, features: 3, offset: 2.5, noise: 0.05}", seed=11)
    x, y = everything(ds)
    w_true, b_true = np.asarray(ds.info["w_true"]), ds.info["b_true"]
    assert w_true.shape == (3,) and b_true == 2.5
    design = np.hstack([x, np.ones((len(x), 1), dtype=np.float32)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y[:, 0].astype(np.float64), rcond=None)
    np.testing.assert_allclose(coef[:3], w_true, atol=0.01)
    assert abs(coef[3] - 2.5) < 0.01
    residual = y[:, 0] - (x @ w_true + b_true)
    assert abs(residual.mean()) < 0.01
    assert 0.04 < residual.std() < 0.06
    assert np.abs(residual).max() < 6 * 0.05


def test_linear_with_explicit_weights_and_no_noise(dataset):
    ds = dataset(
        "{kind: linear, samples: 100, features: 2, weights: [2, -3], offset: -1.5, noise: 0.0}"
    )
    assert ds.info["w_true"] == [2.0, -3.0] and ds.info["b_true"] == -1.5
    x, y = everything(ds)
    np.testing.assert_allclose(y[:, 0], x @ np.array([2.0, -3.0]) - 1.5, atol=1e-5)
    assert (x >= -1).all() and (x <= 1).all()  # inputs are uniform in [-1, 1]


@pytest.mark.parametrize("kind", ["linear", "xor", "moons", "circles"])
def test_input_offset_shifts_every_input(dataset, kind):
    features = ", features: 2" if kind == "linear" else ""
    text = f"{{kind: {kind}, samples: 100{features}}}"
    plain, moved = dataset(text), dataset(data_yaml(text, input_offset=10.0))
    np.testing.assert_allclose(moved.x_train - plain.x_train, 10.0, atol=1e-5)
    np.testing.assert_allclose(moved.x_val - plain.x_val, 10.0, atol=1e-5)
    if kind == "linear":  # y = x·w + offset + noise with the shifted x
        shift = 10.0 * sum(plain.info["w_true"])
        np.testing.assert_allclose(moved.y_train - plain.y_train, shift, atol=1e-4)
    else:  # labels belong to the points, wherever they are
        assert np.array_equal(moved.y_train, plain.y_train)


# ---- samples: a random subset of a fixed dataset -------------------------------------------------


def test_samples_subsets_sklearn_datasets(dataset):
    iris = sklearn.datasets.load_iris()
    label_of = {
        tuple(row): int(t) for row, t in zip(iris.data.astype(np.float32), iris.target, strict=True)
    }
    ds = dataset("{kind: sklearn, name: iris, samples: 50}")
    x, y = everything(ds)
    assert len(x) == 50 and ds.info["train_samples"] == 40 and ds.info["val_samples"] == 10
    assert [label_of[tuple(row)] for row in x] == y.tolist()
    assert len(np.unique(y)) == 3  # a random subset, not the first 50 rows (all 'setosa')


def test_samples_larger_than_the_dataset_uses_every_row(dataset):
    ds = dataset("{kind: sklearn, name: wine, samples: 100000}")
    assert ds.info["train_samples"] + ds.info["val_samples"] == 178


def test_samples_subsets_csv_and_npz(tmp_path, dataset):
    classification_csv(tmp_path / "d.csv", rows=40)
    ds = dataset("{kind: csv, path: d.csv, target: label, samples: 10, validation_split: 0.2}")
    x, y = everything(ds)
    assert len(x) == 10 and len(ds.x_train) == 8
    assert np.array_equal(y, (x[:, 0].astype(int) % 3))  # a = row number, label = a % 3
    np.savez(tmp_path / "d.npz", X=np.arange(60.0).reshape(30, 2), y=np.arange(30.0))
    ds = dataset("{kind: npz, path: d.npz, samples: 12, validation_split: 0.25}")
    x, y = everything(ds)
    assert len(x) == 12 and len(ds.x_val) == 3
    np.testing.assert_array_equal(x[:, 0] / 2, y[:, 0])  # rows stay whole


# ---- csv -----------------------------------------------------------------------------------------


def test_csv_named_target_and_default_features(tmp_path, dataset):
    classification_csv(tmp_path / "d.csv", rows=40)
    ds = dataset("{kind: csv, path: d.csv, target: label}")
    assert ds.info["feature_names"] == ["a", "b", "c"] and ds.info["target"] == "label"
    x, y = everything(ds)
    assert x.shape == (40, 3) and x.dtype == np.float32
    assert y.dtype == np.int32 and y.shape == (40,)  # integer labels -> classification
    np.testing.assert_allclose(x[:, 1], x[:, 0] * 0.5 + 1)
    np.testing.assert_allclose(x[:, 2], -x[:, 0])
    assert np.array_equal(y, x[:, 0].astype(int) % 3)
    assert sorted(x[:, 0].tolist()) == list(range(40))


def test_csv_features_list_selects_and_orders_columns(tmp_path, dataset):
    classification_csv(tmp_path / "d.csv")
    ds = dataset("{kind: csv, path: d.csv, target: label, features: [c, a]}")
    assert ds.info["feature_names"] == ["c", "a"]
    x, _ = everything(ds)
    assert x.shape[1] == 2
    np.testing.assert_allclose(x[:, 0], -x[:, 1])


def test_csv_float_target_is_regression(tmp_path, dataset):
    write_csv(
        tmp_path / "r.csv",
        "\n".join(["x1,x2,price"] + [f"{i},{i * 2},{i * 1.25 + 0.1}" for i in range(20)]),
    )
    ds = dataset("{kind: csv, path: r.csv, target: price}")
    x, y = everything(ds)
    assert y.dtype == np.float32 and y.shape == (20, 1)
    np.testing.assert_allclose(y[:, 0], x[:, 0] * 1.25 + 0.1, rtol=1e-6)


def test_csv_integer_target_with_many_values_is_regression(tmp_path, dataset):
    # Whole numbers, but one distinct value per row: a count to regress, not 30 classes.
    write_csv(tmp_path / "r.csv", "\n".join(["x,count"] + [f"{i},{i * 3}" for i in range(30)]))
    ds = dataset("{kind: csv, path: r.csv, target: count}")
    assert ds.y_train.dtype == np.float32 and ds.y_train.ndim == 2


def test_csv_tolerates_spaces_a_byte_order_mark_and_blank_lines(tmp_path, dataset):
    text = " a , y \n1, 0\n2 ,1\n\n3,0\n4,1\n\n"
    (tmp_path / "d.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())  # as spreadsheets save it
    ds = dataset("{kind: csv, path: d.csv, target: y, validation_split: 0.0}")
    assert ds.info["feature_names"] == ["a"]
    assert ds.x_train[:, 0].tolist() == [1, 2, 3, 4]
    assert ds.y_train.tolist() == [0, 1, 0, 1]


# ---- npz -----------------------------------------------------------------------------------------


def test_npz_default_keys_with_integer_labels(tmp_path, dataset):
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    np.savez(tmp_path / "d.npz", X=x, y=np.arange(20) % 2)
    ds = dataset("{kind: npz, path: d.npz}")
    xs, ys = everything(ds)
    assert xs.dtype == np.float32 and xs.shape == (20, 2)
    assert ys.dtype == np.int32 and ys.shape == (20,)
    assert np.array_equal(ys, (xs[:, 0] / 2).astype(int) % 2)


def test_npz_custom_keys_float_targets_and_1d_inputs(tmp_path, dataset):
    np.savez(
        tmp_path / "d.npz",
        inputs=np.linspace(0, 1, 25),
        targets=np.linspace(0, 1, 25) * 3,
        X=np.zeros((2, 2)),
    )
    ds = dataset("{kind: npz, path: d.npz, x_key: inputs, y_key: targets}")
    x, y = everything(ds)
    assert x.shape == (25, 1) and x.dtype == np.float32  # 1-D X is one feature
    assert y.shape == (25, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y, x * 3, rtol=1e-6)
    assert ds.features == 1


def test_npz_two_dimensional_targets_are_kept(tmp_path, dataset):
    np.savez(tmp_path / "d.npz", X=np.ones((10, 3)), y=np.ones((10, 2), dtype=np.float32))
    ds = dataset("{kind: npz, path: d.npz}")
    assert ds.y_train.shape == (8, 2) and ds.y_train.dtype == np.float32


# ---- errors --------------------------------------------------------------------------------------


def _error(dataset, text: str, **kw: Any) -> str:
    with pytest.raises(DataError) as info:
        dataset(text, **kw)
    assert info.value.exit_code == 2
    return str(info.value)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("abc", "expected a number, got 'abc'"),
        ("", "expected a number, got ''"),
        ("nan", "expected a finite number, got 'nan'"),
        ("-inf", "expected a finite number, got '-inf'"),
    ],
)
def test_csv_bad_cell_names_file_line_and_column(tmp_path, dataset, cell, expected):
    path = write_csv(tmp_path / "d.csv", f"a,b,y\n1,2,0\n3,{cell},1\n")
    message = _error(dataset, "{kind: csv, path: d.csv, target: y}")
    assert message == f"{path}:3: column 'b': {expected}"


def test_csv_bad_target_cell_names_the_target_column(tmp_path, dataset):
    path = write_csv(tmp_path / "d.csv", "a,y\n1,0\n2,1\n3,one\n")
    assert (
        _error(dataset, "{kind: csv, path: d.csv, target: y}")
        == f"{path}:4: column 'y': expected a number, got 'one'"
    )


def test_csv_line_numbers_count_blank_lines(tmp_path, dataset):
    path = write_csv(tmp_path / "d.csv", "a,y\n1,0\n\n\n2,x\n")
    assert (
        _error(dataset, "{kind: csv, path: d.csv, target: y}")
        == f"{path}:5: column 'y': expected a number, got 'x'"
    )


def test_csv_short_row(tmp_path, dataset):
    path = write_csv(tmp_path / "d.csv", "a,b,y\n1,2,0\n3,4\n")
    assert (
        _error(dataset, "{kind: csv, path: d.csv, target: y}")
        == f"{path}:3: expected 3 values, got 2"
    )


def test_csv_long_row(tmp_path, dataset):
    path = write_csv(tmp_path / "d.csv", "a,y\n1,0\n2,1,7\n")
    assert (
        _error(dataset, "{kind: csv, path: d.csv, target: y}")
        == f"{path}:3: expected 2 values, got 3"
    )


def test_csv_with_only_a_header(tmp_path, dataset):
    path = write_csv(tmp_path / "d.csv", "a,b,y\n")
    assert (
        _error(dataset, "{kind: csv, path: d.csv, target: y}")
        == f"{path}: no data rows after the header"
    )


def test_csv_with_only_the_target_column(tmp_path, dataset):
    path = write_csv(tmp_path / "d.csv", "y\n1\n2\n")
    assert (
        _error(dataset, "{kind: csv, path: d.csv, target: y}")
        == f"{path}: no feature columns: the header holds only the target 'y'"
    )


def test_csv_emptied_after_validation(tmp_path, section):
    # The config check saw a header; the file changed before the data was loaded.
    path = write_csv(tmp_path / "d.csv", "a,y\n1,0\n")
    data, seed = section("{kind: csv, path: d.csv, target: y}")
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load(data, seed)
    assert str(info.value) == f"{path}: the file is empty; expected a header row of column names"
    path.unlink()
    with pytest.raises(DataError, match=r"^.*d\.csv: cannot read the CSV file: \[Errno 2\]"):
        load(data, seed)


def test_npz_non_numeric_arrays(tmp_path, dataset):
    path = (tmp_path / "d.npz").resolve()
    np.savez(path, X=np.array([["a", "b"], ["c", "d"]]), y=np.array([0, 1]))
    dtype = np.array([["a"]]).dtype
    assert (
        _error(dataset, "{kind: npz, path: d.npz}")
        == f"{path}: array 'X' must be numeric; got dtype {dtype}"
    )
    np.savez(path, X=np.zeros((2, 2)), labels=np.array([True, False]))
    assert (
        _error(dataset, "{kind: npz, path: d.npz, y_key: labels}")
        == f"{path}: array 'labels' must be numeric; got dtype bool"
    )


def test_npz_object_arrays_are_refused(tmp_path, dataset):
    path = (tmp_path / "d.npz").resolve()
    np.savez(path, X=np.array([[1.0], [2.0]], dtype=object), y=np.array([0, 1]))
    message = _error(dataset, "{kind: npz, path: d.npz}")
    assert message.startswith(f"{path}: cannot read arrays 'X' and 'y': ")
    assert "allow_pickle" in message


def test_npz_non_finite_values(tmp_path, dataset):
    path = (tmp_path / "d.npz").resolve()
    np.savez(path, X=np.array([[1.0], [np.nan], [np.inf]]), y=np.array([0, 1, 0]))
    assert (
        _error(dataset, "{kind: npz, path: d.npz}")
        == f"{path}: array 'X' holds 2 NaN or infinite value(s)"
    )


def test_npz_mismatched_lengths_and_shapes(tmp_path, dataset):
    path = (tmp_path / "d.npz").resolve()
    np.savez(path, X=np.zeros((5, 2)), y=np.zeros(4))
    assert (
        _error(dataset, "{kind: npz, path: d.npz}") == f"{path}: array 'X' has 5 rows but 'y' has 4"
    )
    np.savez(path, X=np.zeros((4, 2, 2)), y=np.zeros(4))
    assert _error(dataset, "{kind: npz, path: d.npz}") == (
        f"{path}: array 'X' must be 1-D or 2-D (samples, features) and 'y' 1-D or 2-D "
        "(samples, outputs); got shapes (4, 2, 2) and (4,)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "{kind: linear, samples: 3, validation_split: 0.9}",
            "data: validation_split 0.9 leaves no training rows out of 3",
        ),
        (
            "{kind: sklearn, name: iris, samples: 1, validation_split: 0.6}",
            "data: validation_split 0.6 leaves no training rows out of 1",
        ),
    ],
)
def test_validation_split_leaving_no_training_rows(dataset, text, expected):
    assert _error(dataset, text) == expected


# ---- no TensorFlow -------------------------------------------------------------------------------


def test_loading_data_never_imports_tensorflow(tmp_path):
    """A fake ``tensorflow``/``keras`` that raise on import, first on the path, in a subprocess."""
    for name in ("tensorflow", "keras"):
        (tmp_path / "fake" / name).mkdir(parents=True)
        init = tmp_path / "fake" / name / "__init__.py"
        init.write_text(f"raise ImportError('{name} imported')\n")
    cfg = tmp_path / "exp.yaml"
    # A generated kind: scikit-learn alone takes over a second to import in a fresh process.
    cfg.write_text(
        _config_text("{kind: linear, samples: 150, features: 4, standardize: true}", "seed: 1")
    )
    code = (
        "import sys; from weightlab.config import load_experiment;"
        "from weightlab.data import load;"
        f"r = load_experiment({str(cfg)!r}).runs[0]; d = load(r.config['data'], r.seed);"
        "assert d.x_train.shape == (120, 4);"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), sorted(sys.modules)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
