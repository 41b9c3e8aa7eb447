"""export: tidy CSV of the history, and TensorBoard event files that TensorBoard reads back."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from conftest import write_run

from weightlab.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def pair(store, layout):
    biased = {"model.use_bias": True}
    a = write_run(store, batch="b", cell=biased, losses=[1.0, 0.5, 0.25], layout=layout)
    b = write_run(
        store,
        batch="b",
        cell={"model.use_bias": False},
        use_bias=False,
        losses=[30, 27, 26],
        layout=layout,
    )
    return a, b


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_one_row_per_run_epoch_variable(store, pair, tmp_path):
    a, b = pair
    result = invoke("export", "b", "--to", "csv", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "wrote 24 rows (run × epoch × variable) of 2 runs to" in result.output
    rows = read_csv(tmp_path / "out" / "history.csv")
    # 4 epochs (0..3) × 4 variables with biases, 4 × 2 without.
    assert len(rows) == 24
    assert list(rows[0])[:7] == [
        "run",
        "experiment",
        "batch",
        "seed",
        "status",
        "model.use_bias",
        "epoch",
    ]
    assert list(rows[0])[-8:] == [
        "variable",
        "l2",
        "mean",
        "std",
        "min",
        "max",
        "dist_init",
        "delta",
    ]
    assert {r["model.use_bias"] for r in rows if r["run"] == a["id"]} == {"true"}
    assert {r["variable"] for r in rows if r["run"] == b["id"]} == {"dense_1/kernel", "out/kernel"}
    history = store.history(a["id"])
    for epoch in range(4):
        row = next(
            r
            for r in rows
            if r["run"] == a["id"] and r["epoch"] == str(epoch) and r["variable"] == "out/bias"
        )
        stats = history[epoch]["weights"]["out/bias"]
        assert float(row["l2"]) == stats["l2"] and float(row["dist_init"]) == stats["dist_init"]
        assert row["loss"] == ("" if epoch == 0 else str([1.0, 0.5, 0.25][epoch - 1]))
        assert row["delta"] == ("" if epoch == 0 else repr(stats["delta"]))


def test_csv_of_a_diverged_run_keeps_nan(store, tmp_path):
    rec = write_run(store, status="diverged", diverged_at=2, losses=[3.0, float("nan"), 0.0])
    assert invoke("export", rec["id"], "--to", "csv", str(tmp_path)).exit_code == 0
    rows = read_csv(tmp_path / "history.csv")
    assert {r["loss"] for r in rows if r["epoch"] == "2"} == {"nan"}
    assert {r["status"] for r in rows} == {"diverged"}


def test_export_json_summary(store, pair, tmp_path):
    data = json.loads(invoke("export", "--to", "csv", str(tmp_path), "--format", "json").output)
    assert data == {
        "to": "csv",
        "directory": str(tmp_path),
        "runs": 2,
        "files": [str(tmp_path / "history.csv")],
        "rows": 24,
    }


READ_BACK = textwrap.dedent("""\
    import json, sys
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "histograms": 0})
    ea.Reload()
    out = {"tags": ea.Tags()["scalars"], "histograms": {}}
    out["loss"] = [[s.step, s.value] for s in ea.Scalars("loss")]
    out["norm"] = [[s.step, s.value] for s in ea.Scalars("norm/dense_1/kernel")]
    for tag in ea.Tags()["histograms"]:
        out["histograms"][tag] = [
            [h.step, h.histogram_value.min, h.histogram_value.max, h.histogram_value.num]
            for h in ea.Histograms(tag)
        ]
    print(json.dumps(out))
    """)


def read_back(logdir, env):
    """Read event files with TensorBoard's own EventAccumulator, in a process without TensorFlow."""
    proc = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(logdir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.both_layouts
def test_tensorboard_events_read_back(store, pair, tmp_path, no_tensorflow):
    a, b = pair
    out = tmp_path / "tb"
    result = invoke("export", "b", "--to", "tensorboard", str(out))
    assert result.exit_code == 0, result.output
    # Scalars: 3 metrics × 3 epochs + 2 statistics × variables × 4 epochs, for each run.
    assert "wrote 2 runs (66 scalars, 24 histograms)" in result.output
    assert f"tensorboard --logdir {out}" in " ".join(result.output.split())
    got = read_back(out / "exp" / a["id"], no_tensorflow)
    assert got["loss"] == [[1, 1.0], [2, 0.5], [3, 0.25]]
    history = store.history(a["id"])
    assert got["norm"] == [
        [e, pytest.approx(history[e]["weights"]["dense_1/kernel"]["l2"], rel=1e-6)]
        for e in range(4)
    ]
    assert {"val_loss", "mae", "dist_init/out/bias"} <= set(got["tags"])
    assert sorted(got["histograms"]) == ["dense_1/bias", "dense_1/kernel", "out/bias", "out/kernel"]
    for epoch, lo, hi, n in got["histograms"]["dense_1/kernel"]:
        array = store.snapshot(a["id"], epoch)["dense_1/kernel"]
        assert (lo, hi, n) == (
            pytest.approx(float(array.min())),
            pytest.approx(float(array.max())),
            6,
        )
    assert [h[0] for h in got["histograms"]["out/kernel"]] == [0, 1, 2, 3]
    free = read_back(out / "exp" / b["id"], no_tensorflow)
    assert sorted(free["histograms"]) == ["dense_1/kernel", "out/kernel"]


def test_tensorboard_export_again_replaces_the_event_file(store, pair, tmp_path):
    out = tmp_path / "tb"
    for _ in range(2):
        assert invoke("export", "b", "--to", "tensorboard", str(out)).exit_code == 0
    for rec in pair:
        assert len(list((out / "exp" / rec["id"]).glob("events.out.tfevents.*"))) == 1


def test_without_tensorboardx_a_clear_error(store, pair, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    result = invoke("export", "--to", "tensorboard", str(tmp_path))
    assert result.exit_code == 2
    assert "pip install 'weightlab[tensorboard]'" in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--to", "xls", "d"], 2, "'xls' is not one of 'csv', 'tensorboard'"),
        ([], 2, "Missing option '--to'"),
        (["nope", "--to", "csv", "d"], 2, "no run matches 'nope'"),
    ],
)
def test_bad_arguments(store, pair, args, code, message):
    result = CliRunner().invoke(cli, ["export", *args])
    assert result.exit_code == code
    assert message in result.output


def test_unwritable_directory_exit_1(store, pair, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = invoke("export", "--to", "csv", str(blocker / "sub"))
    assert result.exit_code == 1
    assert f"cannot write the export into {blocker / 'sub'}" in result.output
    assert "Traceback" not in result.output


def test_empty_store(tmp_path):
    result = invoke("export", "--to", "csv", str(tmp_path))
    assert result.exit_code == 1 and "no runs in" in result.output


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras
def test_train_tensorboard_attaches_keras_callback(store, write_config):
    """`train.tensorboard: true` adds Keras' own TensorBoard callback, logging into the run dir."""
    from weightlab.config import load_experiment
    from weightlab.training.sweep import run_experiment

    path = write_config(
        "data: {kind: linear, samples: 32, features: 2}\nmodel: {layers: [{units: 1}]}\n"
        "train: {epochs: 2, batch_size: 16}\nmatrix: {train.tensorboard: [true, false]}\n"
    )
    with_tb, without = run_experiment(load_experiment(path, []), store)
    assert with_tb["status"] == without["status"] == "completed"
    logdir = store.run_dir(with_tb["id"]) / "tensorboard"
    for split in ("train", "validation"):
        assert list((logdir / split).glob("events.out.tfevents.*")), split
    assert not (store.run_dir(without["id"]) / "tensorboard").exists()
    assert store.snapshot_epochs(with_tb["id"]) == [0, 1, 2]
