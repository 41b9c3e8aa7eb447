"""The fast paths give the same results as the slow ones (speed itself is in benchmarks/).

Whole steps_per_execution, per-step copies inside the compiled step, background writes and
compressed files must change nothing but the time and the bytes on disk.
"""

from __future__ import annotations

import functools
import threading
import zipfile

import numpy as np
import pytest

from weightlab.background import BackgroundWriter
from weightlab.config import load_experiment
from weightlab.store import Store

# 90 rows, batch 16: 6 steps per epoch, the last one of 10 rows.
SMALL = """
data: {kind: linear, samples: 90, features: 2, offset: 1.0, validation_split: 0.0}
model:
  layers: [{units: 4, activation: tanh}, {units: 1, name: out}]
train: {optimizer: {name: sgd, learning_rate: 0.05}, epochs: 3, batch_size: 16, shuffle: false}
"""


def run(write_config, store, *overrides):
    from weightlab.training.sweep import run_experiment

    (record,) = run_experiment(load_experiment(write_config(SMALL), list(overrides)), store)
    assert record["status"] == "completed", record["error"]
    return record


def plain_model(store, record, steps_per_execution=1):
    """The run's model rebuilt with plain Keras from its epoch-0 snapshot, and the run's data."""
    import keras

    from weightlab import data
    from weightlab.training.model import build, compile_model

    cfg = store.config(record["id"])
    dataset = data.load(cfg["data"], record["seed"])
    model = build(cfg["model"], dataset.features)
    initial = store.snapshot(record["id"], 0)
    model.set_weights(
        [initial[f"{layer.name}/{v.name}"] for layer in model.layers for v in layer.weights]
    )
    compile_model(model, cfg["train"], steps_per_execution)
    keras.utils.set_random_seed(record["seed"])
    return model, dataset, cfg["train"]


def weights(model):
    return {
        f"{layer.name}/{v.name}": np.array(v.numpy())
        for layer in model.layers
        for v in layer.weights
    }


def assert_close(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


# ---- the background writer (no TensorFlow) -------------------------------------------------------


def test_background_writer_keeps_order_and_reports_errors():
    done: list[int] = []
    jobs = BackgroundWriter()
    for i in range(50):
        jobs.submit(functools.partial(done.append, i))
    jobs.flush()
    assert done == list(range(50))

    def fail():
        raise OSError("disk full")

    jobs.submit(fail)
    jobs.submit(functools.partial(done.append, 99))
    with pytest.raises(OSError, match="disk full"):
        jobs.close()
    assert 99 not in done, "nothing is written after a failed write"


def test_background_writer_runs_off_the_calling_thread_unless_told_not_to():
    seen: list[str] = []
    for background, expect in (
        (True, "weightlab-writer"),
        (False, threading.current_thread().name),
    ):
        jobs = BackgroundWriter(background)
        jobs.submit(lambda: seen.append(threading.current_thread().name))
        jobs.close()
        assert seen[-1] == expect


# ---- training -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One unshuffled run, and the weights plain ``model.fit`` has after each of its 18 steps."""
    from weightlab.training.sweep import run_experiment

    tmp = tmp_path_factory.mktemp("base")
    (tmp / "small.yaml").write_text(SMALL)
    store = Store(tmp / "store")
    (record,) = run_experiment(load_experiment(tmp / "small.yaml"), store)
    model, dataset, train = plain_model(store, record)
    copies: list[dict[str, np.ndarray]] = []
    model.fit(
        dataset.x_train,
        dataset.y_train,
        batch_size=train["batch_size"],
        epochs=train["epochs"],
        shuffle=False,
        verbose=0,
        callbacks=[_on_batch(lambda: copies.append(weights(model)))],
    )
    return store, record, dataset, train, copies


def _on_batch(fn):
    import keras

    return keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: fn())


@pytest.mark.keras
def test_final_weights_equal_plain_fit_without_shuffle(base):
    store, record, _, _, copies = base
    assert record["status"] == "completed"
    plan = record["execution"]
    assert plan["steps_per_execution"] == plan["steps_per_epoch"] == 6
    assert plan["jit_compile"] is False, "Keras turns XLA off under op determinism"
    for epoch in (1, 2, 3):
        assert_close(store.snapshot(record["id"], epoch), copies[6 * epoch - 1])


@pytest.mark.keras
def test_shuffled_runs_take_as_many_updates_per_epoch_as_plain_fit(write_config, store):
    record = run(write_config, store, "train.shuffle=true", "snapshots.every=1")
    model, dataset, train = plain_model(store, record)
    model.fit(dataset.x_train, dataset.y_train, batch_size=16, epochs=3, shuffle=True, verbose=0)
    steps, arrays = store.step_snapshots(record["id"])
    assert int(model.optimizer.iterations.numpy()) == len(steps) == 18
    assert steps.tolist() == list(range(1, 19))
    for epoch in (1, 2, 3):  # the last step of an epoch is the epoch's snapshot
        at_end = {k: a[list(steps).index(6 * epoch)] for k, a in arrays.items()}
        assert_close(at_end, store.snapshot(record["id"], epoch))


@pytest.mark.keras
@pytest.mark.parametrize(
    ("every", "steps_per_execution", "parts"),
    [(1, 6, False), (2, 3, False), (3, 2, False), (1, 3, True)],
)
def test_step_snapshots_equal_a_copy_after_every_batch(
    base, tmp_path, monkeypatch, every, steps_per_execution, parts
):
    """Copies taken inside the compiled step, also with several executions per epoch, and
    when an epoch's copies outgrow the memory budget and are written in parts."""
    from weightlab.store import RunWriter, new_record
    from weightlab.training import snapshots
    from weightlab.training.runner import feed, set_determinism
    from weightlab.training.snapshots import snapshot_callback

    if parts:
        monkeypatch.setattr(snapshots, "STEP_BUFFER_BYTES", 1)  # every execution's copies

    store, record, dataset, train, copies = base
    set_determinism(0)
    model, _, _ = plain_model(store, record, steps_per_execution)
    out = Store(tmp_path / "out")
    fields = dict(experiment="x", batch="b", index=0, seed=0, cell={}, data={}, versions={})
    new = new_record(epochs=3, snapshots_every=every, **fields)
    writer = RunWriter(out, new, store.config(record["id"]))
    snap = snapshot_callback(writer, every)
    fed = feed(dataset, {**train, "epochs": 3}, 0)[0]  # the 3 epochs back to back
    model.fit(fed, epochs=3, steps_per_epoch=6, verbose=0, callbacks=[snap], shuffle=False)
    snap.close()
    steps, arrays = out.step_snapshots(writer.id)
    assert steps.tolist() == list(range(every, 19, every))
    for i, step in enumerate(steps):
        assert_close({k: a[i] for k, a in arrays.items()}, copies[step - 1])
    files = sorted(p.name for p in (out.run_dir(writer.id) / "snapshots").glob("steps-*"))
    per_epoch = [f"steps-000{e}.npz" for e in (1, 2, 3)]
    # 6 steps per epoch in calls of 3: the first 3 copies, then the other 3 as part 1.
    assert files == sorted(per_epoch + [f"steps-000{e}.1.npz" for e in (1, 2, 3)] * parts)


def snapshot_bytes(store, record):
    snap = store.run_dir(record["id"]) / "snapshots"
    return {p.name: p.read_bytes() for p in sorted(snap.iterdir())}


@pytest.mark.keras
def test_background_writes_equal_inline_writes(write_config, store, monkeypatch):
    from weightlab.training import runner, snapshots

    background = run(write_config, store, "snapshots.every=5")
    monkeypatch.setattr(
        runner,
        "snapshot_callback",
        functools.partial(snapshots.snapshot_callback, background=False),
    )
    inline = run(write_config, store, "snapshots.every=5")
    assert snapshot_bytes(store, background) == snapshot_bytes(store, inline)
    assert store.history(background["id"]) == store.history(inline["id"])
    assert background["snapshots"] == inline["snapshots"]


@pytest.mark.keras
def test_compressed_snapshots_read_back_identically(write_config, store):
    plain = run(write_config, store, "snapshots.every=2")
    packed = run(write_config, store, "snapshots.every=2", "snapshots.compress=true")
    for epoch in range(4):
        a, b = store.snapshot(plain["id"], epoch), store.snapshot(packed["id"], epoch)
        assert {k: v.tobytes() for k, v in a.items()} == {k: v.tobytes() for k, v in b.items()}
    (sa, aa), (sb, ab) = store.step_snapshots(plain["id"]), store.step_snapshots(packed["id"])
    assert sa.tolist() == sb.tolist() and all(np.array_equal(aa[k], ab[k]) for k in aa)
    path = store.run_dir(packed["id"]) / "snapshots" / "epoch-0001.npz"
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    assert (store.run_dir(packed["id"]) / "snapshots" / "epoch-0000.npz").exists()
    assert not (store.run_dir(packed["id"]) / "snapshots" / "epochs.npy").exists()
    # Uncompressed: the epochs in one trajectory file, the steps files stored as they are.
    assert (store.run_dir(plain["id"]) / "snapshots" / "epochs.npy").exists()
    with zipfile.ZipFile(store.run_dir(plain["id"]) / "snapshots" / "steps-0001.npz") as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}


@pytest.mark.keras
def test_a_failed_write_fails_the_run_and_never_gets_ahead_of_history(
    write_config, store, monkeypatch
):
    from weightlab.store import RunWriter
    from weightlab.training.sweep import run_experiment

    original = RunWriter.append_epoch_snapshot

    def flaky(self, epoch, arrays):
        if epoch == 2:
            raise OSError(28, "No space left on device")
        return original(self, epoch, arrays)

    monkeypatch.setattr(RunWriter, "append_epoch_snapshot", flaky)
    (record,) = run_experiment(load_experiment(write_config(SMALL)), store)
    assert record["status"] == "failed" and "No space left" in record["error"]
    assert store.snapshot_epochs(record["id"]) == [0, 1]
    assert [row["epoch"] for row in store.history(record["id"])] == [0, 1]


@pytest.mark.keras
@pytest.mark.parametrize(
    ("params", "every", "expected"),
    [
        (33, "epoch", 32),  # tiny: the whole epoch in one call
        (2**21, "epoch", 32),  # 2 M parameters x 32 = 2^26 multiply-adds a step: still 32
        (2**28, "epoch", 1),  # a step alone exceeds the budget: one step per call
        (2**21, 1, 8),  # the 64 MB buffer holds 8 copies of 8 MB
        (2**21, 3, 16),  # ... 24 steps when every third step is copied; 16 divides the 32
        (22369621, "epoch", 2),  # 3 steps fit the budget; 2 is the largest that divides 32
    ],
)
def test_execution_plan_caps_steps_per_call(params, every, expected):
    from weightlab.data import Dataset
    from weightlab.training.runner import plan_execution

    class Model:
        def count_params(self):
            return params

    rows = Dataset(np.zeros((1000, 2), np.float32), np.zeros((1000, 1)), None, None)
    plan = plan_execution(Model(), rows, {"batch_size": 32}, every)
    assert plan["steps_per_epoch"] == 32 and plan["steps_per_execution"] == expected
