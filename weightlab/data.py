"""Datasets as numpy arrays: generated ones, scikit-learn's bundled ones, the user's CSV/NPZ files.

NumPy and scikit-learn only (no TensorFlow), so that reading commands such as a later `explain`
can rebuild a run's inputs without loading Keras. Nothing is ever downloaded.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weightlab.config import MAX_DATA_VALUES, column_list
from weightlab.errors import DataError


@dataclass
class Dataset:
    """Training and validation splits plus what a person needs to know about them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])


def load(data: dict[str, Any], seed: int) -> Dataset:
    """Build the dataset a resolved ``data:`` section describes.

    Args:
        data: the resolved ``data`` section of a run config.
        seed: the run's seed, used when ``data.seed`` is null.

    Returns:
        Float32 inputs, targets (float32 for regression, int for class labels), split and
        optionally standardized, with ``info`` (true weights of a linear dataset, sizes, ...).

    Raises:
        DataError: a file's contents cannot be used.
    """
    data_seed = data["seed"] if data.get("seed") is not None else seed
    rng = np.random.default_rng(data_seed)
    kind = data["kind"]
    x, y, info = _LOADERS[kind](data, rng, data_seed)
    if x.ndim != 2:
        raise DataError(
            f"data: inputs must be a 2-D array (samples, features); got shape {x.shape}"
        )
    if len(x) != len(y):
        raise DataError(f"data: {len(x)} input rows but {len(y)} targets")
    limit = data.get("samples")
    if kind in ("sklearn", "csv", "npz") and limit is not None and limit < len(x):
        keep = np.sort(rng.permutation(len(x))[:limit])
        x, y = x[keep], y[keep]
    # Hold out a random validation split: Keras' own validation_split takes the *last* rows,
    # which for sorted files (iris is sorted by class) is a single class.
    order = rng.permutation(len(x))
    n_val = int(round(len(x) * data["validation_split"]))
    if n_val >= len(x):
        raise DataError(
            f"data: validation_split {data['validation_split']} leaves no training rows "
            f"out of {len(x)}"
        )
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    if not np.isfinite(x32).all():
        # Values beyond float32 (~3.4e38) become infinite: the loss would be NaN from batch 1.
        raise DataError(
            f"input values beyond the float32 range (largest magnitude "
            f"{float(np.abs(x).max()):.3g}; float32 holds up to 3.4e+38)"
        )
    x = x32
    x_train, y_train = x[train_idx], y[train_idx]
    x_val, y_val = (x[val_idx], y[val_idx]) if n_val else (None, None)
    if data["standardize"]:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train = ((x_train - mean) / std).astype(np.float32)
        if x_val is not None:
            x_val = ((x_val - mean) / std).astype(np.float32)
        info["standardize"] = {"mean": mean.tolist(), "std": std.tolist()}
    info.update(
        kind=kind,
        seed=int(data_seed),
        features=int(x.shape[1]),
        train_samples=int(len(x_train)),
        val_samples=int(n_val),
    )
    return Dataset(x_train, y_train, x_val, y_val, info)


def _linear(
    data: dict[str, Any], rng: np.random.Generator, _seed: int
) -> tuple[Any, Any, dict[str, Any]]:
    n, d = data["samples"], data["features"]
    w = np.asarray(data["weights"], dtype=np.float64) if data.get("weights") else rng.normal(size=d)
    x = rng.uniform(-1.0, 1.0, size=(n, d)) + data["input_offset"]
    y = x @ w + data["offset"] + rng.normal(scale=data["noise"], size=n)
    info = {"w_true": w.round(6).tolist(), "b_true": float(data["offset"])}
    return x, y.astype(np.float32).reshape(-1, 1), info


def _blobs(
    data: dict[str, Any], _rng: np.random.Generator, seed: int
) -> tuple[Any, Any, dict[str, Any]]:
    from sklearn.datasets import make_blobs

    x, y, centers = make_blobs(
        n_samples=data["samples"],
        n_features=data["features"],
        centers=data["centers"],
        cluster_std=data["cluster_std"],
        center_box=tuple(data["center_box"]),
        random_state=seed,
        return_centers=True,
    )
    return x, y.astype(np.int32), {"centers": np.round(centers, 6).tolist()}


def _xor(
    data: dict[str, Any], rng: np.random.Generator, _seed: int
) -> tuple[Any, Any, dict[str, Any]]:
    n = data["samples"]
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(np.int32)
    x = x + rng.normal(scale=data["noise"], size=x.shape) + data["input_offset"]
    return x, y, {}


def _moons(
    data: dict[str, Any], _rng: np.random.Generator, seed: int
) -> tuple[Any, Any, dict[str, Any]]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=data["samples"], noise=data["noise"], random_state=seed)
    return x + data["input_offset"], y.astype(np.int32), {}


def _circles(
    data: dict[str, Any], _rng: np.random.Generator, seed: int
) -> tuple[Any, Any, dict[str, Any]]:
    from sklearn.datasets import make_circles

    x, y = make_circles(
        n_samples=data["samples"], noise=data["noise"], factor=data["factor"], random_state=seed
    )
    return x + data["input_offset"], y.astype(np.int32), {}


def _sklearn(
    data: dict[str, Any], _rng: np.random.Generator, _seed: int
) -> tuple[Any, Any, dict[str, Any]]:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{data['name']}")()
    y = bunch.target
    y = y.astype(np.float32).reshape(-1, 1) if data["name"] == "diabetes" else y.astype(np.int32)
    info = {"feature_names": [str(f) for f in getattr(bunch, "feature_names", [])]}
    if hasattr(bunch, "target_names"):
        info["target_names"] = [str(t) for t in bunch.target_names]
    return np.asarray(bunch.data, dtype=np.float64), y, info


def _csv(
    data: dict[str, Any], _rng: np.random.Generator, _seed: int
) -> tuple[Any, Any, dict[str, Any]]:
    path = Path(data["path"])
    try:
        # utf-8-sig: spreadsheet exports start with a byte-order mark, which must not end up
        # glued to the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            position: dict[str, int] = {}  # one pass: linear in the number of columns
            for i, name in enumerate(header):
                if name in position:
                    raise DataError(
                        f"{path}:1: the column name {name!r} is in the header twice (columns "
                        f"{position[name] + 1} and {i + 1}); rename one of them"
                    )
                position[name] = i
            # (line number, row); blank lines (a trailing empty line, say) are not rows.
            rows = []
            cells = 0
            for row in reader:
                if row:
                    cells += len(row)
                    if cells > MAX_DATA_VALUES:  # bounded before the whole file is in memory
                        raise DataError(
                            f"{path}:{reader.line_num}: more than {MAX_DATA_VALUES:,} values; "
                            "a dataset may hold at most that many"
                        )
                    rows.append((reader.line_num, row))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the CSV file: {e}") from None
    if not header:
        raise DataError(f"{path}: the file is empty; expected a header row of column names")
    target = data["target"]
    features = data.get("features") or [h for h in header if h != target]
    for col_name in [target, *features]:
        if col_name not in position:
            raise DataError(f"{path}: no column {col_name!r} (columns: {column_list(header)})")
    if not features:
        raise DataError(f"{path}: no feature columns: the header holds only the target {target!r}")
    cols = [position[f] for f in features]
    t = position[target]
    x = np.empty((len(rows), len(cols)), dtype=np.float64)
    y = np.empty(len(rows), dtype=np.float64)
    for i, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: expected {len(header)} values, got {len(row)}")
        for j, c in enumerate([*cols, t]):
            try:
                value = float(row[c])
            except ValueError:
                value = None
            if value is None or not np.isfinite(value):
                # NaN/inf would only surface later as a NaN loss; there is no imputation.
                raise DataError(
                    f"{path}:{line}: column {header[c]!r}: expected a "
                    f"{'number' if value is None else 'finite number'}, got "
                    f"{row[c]!r}"
                )
            if j < len(cols):
                x[i, j] = value
            else:
                y[i] = value
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    is_labels = np.all(y == np.round(y)) and len(np.unique(y)) <= max(2, len(y) // 10)
    return (
        x,
        (y.astype(np.int32) if is_labels else y.astype(np.float32).reshape(-1, 1)),
        {"feature_names": features, "target": target},
    )


def _npz(
    data: dict[str, Any], _rng: np.random.Generator, _seed: int
) -> tuple[Any, Any, dict[str, Any]]:
    path = Path(data["path"])
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in (data["x_key"], data["y_key"]):
                size = _npz_size(npz, key) if key in npz.files else 0
                if size > MAX_DATA_VALUES:
                    raise DataError(
                        f"{path}: array {key!r} holds {size:,} values; a dataset may hold at "
                        f"most {MAX_DATA_VALUES:,}"
                    )
            x, y = npz[data["x_key"]], npz[data["y_key"]]
    except (OSError, KeyError, ValueError) as e:
        raise DataError(
            f"{path}: cannot read arrays {data['x_key']!r} and {data['y_key']!r}: {e}"
        ) from None
    for key, arr in ((data["x_key"], x), (data["y_key"], y)):
        if arr.dtype.kind == "c":  # numpy would drop the imaginary part with only a warning
            raise DataError(
                f"{path}: array {key!r} is complex ({arr.dtype}); weightlab trains on real numbers"
            )
        if not np.issubdtype(arr.dtype, np.number):
            raise DataError(f"{path}: array {key!r} must be numeric; got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
            raise DataError(
                f"{path}: array {key!r} holds {int((~np.isfinite(arr)).sum())} "
                f"NaN or infinite value(s)"
            )
    if x.ndim not in (1, 2) or y.ndim not in (1, 2):
        raise DataError(
            f"{path}: array {data['x_key']!r} must be 1-D or 2-D (samples, features) "
            f"and {data['y_key']!r} 1-D or 2-D (samples, outputs); got shapes "
            f"{x.shape} and {y.shape}"
        )
    if len(x) != len(y):
        raise DataError(
            f"{path}: array {data['x_key']!r} has {len(x)} rows but {data['y_key']!r} has {len(y)}"
        )
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    if np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.int32)
    else:
        y = y.astype(np.float32)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
    return x.astype(np.float64), y, {}


def _npz_size(npz: Any, key: str) -> int:
    """The number of values of one array of an open .npz, from its header alone."""
    with npz.zip.open(f"{key}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        fmt = np.lib.format
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape = read(fh)[0]
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


_LOADERS = {
    "linear": _linear,
    "blobs": _blobs,
    "xor": _xor,
    "moons": _moons,
    "circles": _circles,
    "sklearn": _sklearn,
    "csv": _csv,
    "npz": _npz,
}
