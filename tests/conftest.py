"""Shared fixtures. Every test gets its own empty run store; nothing touches ./weightlab-runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


@pytest.fixture(autouse=True)
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point WEIGHTLAB_STORE at a fresh temporary directory for every test."""
    store = tmp_path / "store"
    monkeypatch.setenv("WEIGHTLAB_STORE", str(store))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    return store


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a YAML config text to a file and return its path."""

    def write(text: str, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Run the TensorFlow-free tests first: fast feedback, and one TensorFlow import at the end.
    items.sort(key=lambda item: item.get_closest_marker("keras") is not None)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The snapshot layouts a run store may hold: "epochs" (snapshots/epochs.npy + layout.json, what
# training writes) and "npz" (one epoch-NNNN.npz per epoch: older versions, which every reader
# must still read). A reader test marked `both_layouts` runs once per layout (see below).
LAYOUTS = ("epochs", "npz")


@pytest.fixture
def layout() -> str:
    """The snapshot layout a test writes its runs in (``write_run(..., layout=layout)``):
    ``"epochs"``, as training writes them, or each of :data:`LAYOUTS` in turn for a test (or a
    test using a fixture that takes ``layout``) marked ``@pytest.mark.both_layouts``."""
    return "epochs"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_layouts: run once per snapshot layout (the `layout` fixture)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_layouts") is None:
        return
    if "layout" not in metafunc.fixturenames:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} is marked both_layouts but never takes `layout`"
        )
    metafunc.parametrize("layout", LAYOUTS)


def write_run(
    store,
    *,
    experiment: str = "exp",
    batch: str = "b1",
    seed: int = 0,
    cell: dict | None = None,
    config_overrides: dict | None = None,
    epochs: int = 3,
    status: str = "completed",
    losses: list[float] | None = None,
    use_bias: bool = True,
    diverged_at: int | None = None,
    layout: str = "epochs",
    snapshots: list[dict] | None = None,
):
    """Write a realistic run directory with the library's own writer, without TensorFlow.

    Weights follow a fixed random walk so that statistics and snapshots are consistent.

    Args:
        layout: ``"epochs"`` (default): the snapshots go through
            ``RunWriter.append_epoch_snapshot``, as training records them, so the run holds the
            ``epochs.npy`` + ``layout.json`` training writes now (or, with
            ``config_overrides={"snapshots.compress": True}``, what training writes then: one
            deflated ``.npz`` per epoch). ``"npz"``: the legacy layout of older versions, one
            ``.npz`` file per epoch (``RunWriter.write_snapshot``), which every reader must still
            read.
        snapshots: known weights, ``{"dense_1/kernel": array, ...}`` for each epoch 0, 1, ...
            (at least up to the last one written), instead of the random walk; the history's
            statistics are computed from them, as training computes them.
    """
    import numpy as np

    from weightlab import stats
    from weightlab.store import RunWriter, new_record, snapshot_name
    from weightlab.text import now_iso

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    cell = cell or {}
    config = {
        "name": experiment,
        "seed": seed,
        "data": {"kind": "linear", "samples": 100, "features": 2, "offset": 5.0},
        "model": {
            "use_bias": use_bias,
            "kernel_initializer": "glorot_uniform",
            "bias_initializer": "zeros",
            "layers": [
                {
                    "units": 3,
                    "activation": "relu",
                    "name": "dense_1",
                    "use_bias": use_bias,
                    "kernel_initializer": "glorot_uniform",
                    "bias_initializer": "zeros",
                },
                {
                    "units": 1,
                    "activation": None,
                    "name": "out",
                    "use_bias": use_bias,
                    "kernel_initializer": "glorot_uniform",
                    "bias_initializer": "zeros",
                },
            ],
        },
        "train": {
            "optimizer": "sgd",
            "loss": "mse",
            "metrics": ["mae"],
            "epochs": epochs,
            "batch_size": 32,
            "shuffle": True,
        },
        "snapshots": {"every": "epoch"},
    }
    for key, value in {**cell, **(config_overrides or {})}.items():
        node = config
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if p.isdigit() else node[p]
        node[parts[-1]] = value
    record = new_record(
        experiment=experiment,
        batch=batch,
        index=0,
        seed=seed,
        cell=cell,
        epochs=epochs,
        snapshots_every="epoch",
        data={"kind": "linear"},
        versions={},
    )
    record["timing"].update(train_seconds=0.5, snapshot_seconds=0.01, total_seconds=0.6)
    writer = RunWriter(store, record, config)
    rng = np.random.default_rng(seed)
    shapes = {"dense_1/kernel": (2, 3), "out/kernel": (3, 1)}
    if use_bias:
        shapes.update({"dense_1/bias": (3,), "out/bias": (1,)})
    arrays = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    for k in arrays:
        if k.endswith("bias"):
            arrays[k][:] = 0
    initial, previous = dict(arrays), None
    losses = losses or [1.0 / (e + 1) for e in range(epochs)]
    last = epochs if diverged_at is None else diverged_at
    written = {"count": 0, "bytes": 0}
    for epoch in range(last + 1):
        if snapshots is not None:
            arrays = {k: np.asarray(a) for k, a in snapshots[epoch].items()}
            initial = initial if epoch else arrays
        elif epoch:
            arrays = {
                k: (a + rng.normal(scale=0.1, size=a.shape)).astype(np.float32)
                for k, a in arrays.items()
            }
        row = {"epoch": epoch}
        if epoch:
            row.update(
                loss=losses[epoch - 1],
                mae=losses[epoch - 1] ** 0.5,
                val_loss=losses[epoch - 1] * 1.1,
            )
        row["weights"] = {
            k: stats.variable_stats(a, initial[k], None if previous is None else previous[k])
            for k, a in arrays.items()
        }
        # As training does (WeightSnapshots): the epoch's snapshot, then its history line.
        if diverged_at is None or epoch < diverged_at:
            written["bytes"] += (
                writer.append_epoch_snapshot(epoch, arrays)
                if layout == "epochs"
                else writer.write_snapshot(snapshot_name(epoch), arrays)
            )
            written["count"] += 1
        writer.append_history(row)
        previous = arrays
    writer.close()
    record.update(stats.summarize(store.history(writer.id)))
    record["status"] = status
    record["epochs_completed"] = last
    record["diverged_at_epoch"] = diverged_at
    record["final"] = {"loss": losses[last - 1], "mae": losses[last - 1] ** 0.5}
    record["finished_at"] = now_iso()
    record["snapshots"].update(written)
    writer.save()
    return record


@pytest.fixture
def store(store_dir):
    from weightlab.store import Store

    return Store(store_dir)


@pytest.fixture
def no_tensorflow(tmp_path) -> dict[str, str]:
    """An environment whose PYTHONPATH starts with tensorflow/keras packages that refuse import."""
    fake = tmp_path / "fake"
    for name in ("tensorflow", "keras"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(
            f"raise ImportError('{name} must not be imported by this command')\n"
        )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(fake), str(REPO)])
    return env
