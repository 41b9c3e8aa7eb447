"""The Python API: weightlab.open_store, store.runs, Run attributes, weightlab.compare."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_run

import weightlab
from weightlab import render
from weightlab.cli import cli
from weightlab.errors import RunNotFound, UsageError


@pytest.fixture
def pair(store, layout):
    with_bias = write_run(
        store,
        experiment="bias",
        batch="b",
        cell={"model.use_bias": True},
        epochs=4,
        layout=layout,
    )
    without = write_run(
        store,
        experiment="bias",
        batch="b",
        cell={"model.use_bias": False},
        use_bias=False,
        epochs=4,
        losses=[30.0, 27.0, 26.0, 25.0],
        layout=layout,
    )
    return with_bias, without


def test_open_store_follows_the_environment(store_dir, pair):
    s = weightlab.open_store()
    assert s.root == str(store_dir)
    assert weightlab.open_store(store_dir).runs().ids == s.runs().ids


def test_runs_selectors_and_filters(store, pair):
    with_bias, without = pair
    other = write_run(store, experiment="other", batch="c")
    s = weightlab.open_store()
    assert s.runs("latest").ids == [other["id"]]
    assert s.runs().ids == [other["id"], without["id"], with_bias["id"]]
    assert s.runs(experiment="bias").ids == [without["id"], with_bias["id"]]
    assert s.runs(where={"model.use_bias": False}).ids == [without["id"]]
    assert s.runs("b", where={"model.use_bias": "true"}).ids == [with_bias["id"]]
    assert s.runs(status="diverged").ids == []
    assert s.run(without["id"][:-1] + without["id"][-1]).id == without["id"]


def test_runs_errors(store, pair):
    s = weightlab.open_store()
    with pytest.raises(UsageError, match="where: no config key 'model.use_bais'; did you mean"):
        s.runs(where={"model.use_bais": True})
    with pytest.raises(RunNotFound, match="no run matches 'nope'"):
        s.runs("nope")
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        s.run("b")


def test_run_attributes(store, pair):
    with_bias, _ = pair
    run = weightlab.open_store().run(with_bias["id"])
    assert run.status == "completed" and run.seed == 0 and run.experiment == "bias"
    assert run.config["model"]["layers"][0]["name"] == "dense_1"
    assert run.flat_config["model.use_bias"] is True
    assert run.epochs == [0, 1, 2, 3, 4]
    assert run.variables == ["dense_1/kernel", "out/kernel", "dense_1/bias", "out/bias"]
    assert repr(run) == f"<Run {run.id} bias completed>"


def test_history_dataframe_and_rows(store, pair, monkeypatch):
    with_bias, _ = pair
    run = weightlab.open_store().run(with_bias["id"])
    rows = store.history(run.id)
    df = run.history
    assert list(df["epoch"]) == [0, 1, 2, 3, 4]
    assert df["loss"].iloc[1:].tolist() == [1.0, 0.5, 1 / 3, 0.25]
    assert df["dense_1/kernel.l2"].tolist() == [r["weights"]["dense_1/kernel"]["l2"] for r in rows]
    assert "out/bias.dist_init" in df.columns
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    assert run.history == rows


@pytest.mark.both_layouts
def test_snapshot_and_trajectory(store, pair):
    with_bias, _ = pair
    run = weightlab.open_store().run(with_bias["id"])
    last = store.snapshot(run.id, 4)
    assert set(run.snapshot()) == set(last)
    np.testing.assert_array_equal(run.snapshot()["out/kernel"], last["out/kernel"])
    np.testing.assert_array_equal(
        run.snapshot(2)["dense_1/bias"], store.snapshot(run.id, 2)["dense_1/bias"]
    )
    traj = run.trajectory("dense_1/kernel")
    assert traj.shape == (5, 2, 3) and traj.dtype == np.float32
    for epoch in range(5):
        np.testing.assert_array_equal(traj[epoch], store.snapshot(run.id, epoch)["dense_1/kernel"])
    with pytest.raises(
        UsageError, match="no variable 'dense_1/kernal'; did you mean 'dense_1/kernel'"
    ):
        run.trajectory("dense_1/kernal")


@pytest.mark.both_layouts
def test_trajectory_of_a_diverged_run_stops_at_the_last_finite_snapshot(store, layout):
    losses = [1.0, 2.0, float("nan")] * 2
    rec = write_run(store, status="diverged", diverged_at=3, epochs=5, losses=losses, layout=layout)
    run = weightlab.open_store().run(rec["id"])
    assert run.status == "diverged"
    assert run.trajectory("out/bias").shape == (3, 1)


@pytest.mark.both_layouts
def test_no_snapshots(store, layout):
    rec = write_run(store, layout=layout)
    for p in (store.run_dir(rec["id"]) / "snapshots").iterdir():
        p.unlink()
    run = weightlab.open_store().run(rec["id"])
    with pytest.raises(UsageError, match="has no weight snapshots"):
        run.trajectory("out/kernel")


def test_compare_returns_what_the_cli_renders(store, pair):
    s = weightlab.open_store()
    result = weightlab.compare(s.runs("b"))
    cli_json = CliRunner().invoke(cli, ["compare", "b", "--format", "json"]).output
    assert json.loads(render.as_json(result)) == json.loads(cli_json)
    assert result["keys"] == ["model.use_bias"]
    # compare lists runs oldest first (matrix order), and pairs them by the one key that differs.
    assert [r["settings"]["model.use_bias"] for r in result["runs"]] == ["true", "false"]
    assert result["by"] == "model.use_bias" and len(result["pairs"]) == 1
    assert {"runs", "pairs", "groups"} <= set(result)
    paired = weightlab.compare(s.runs("b"), by="model.use_bias", per_epoch=True)
    cli_json = (
        CliRunner()
        .invoke(cli, ["compare", "b", "--by", "model.use_bias", "--per-epoch", "--format", "json"])
        .output
    )
    assert json.loads(render.as_json(paired)) == json.loads(cli_json)
    assert paired["by"] == "model.use_bias" and len(paired["pairs"]) == 1
    assert [e["epoch"] for e in paired["pairs"][0]["seeds"][0]["epochs"]] == [0, 1, 2, 3, 4]
    with pytest.raises(UsageError, match="no runs given"):
        weightlab.compare([])
    with pytest.raises(UsageError, match="takes runs from store.runs"):
        weightlab.compare(["b"])  # type: ignore[list-item]


def test_import_weightlab_stays_cheap_and_the_api_never_imports_tensorflow(
    store, pair, no_tensorflow
):
    code = (
        "import sys, weightlab\n"
        "assert 'weightlab.api' not in sys.modules and 'numpy' not in sys.modules\n"
        "s = weightlab.open_store()\n"
        "r = s.runs(where={'model.use_bias': False})[0]\n"
        "print(r.trajectory('dense_1/kernel').shape, len(r.history), r.config['name'])\n"
        "print(sorted(weightlab.compare(s.runs('b'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=no_tensorflow,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "(5, 2, 3) 5 bias"
    assert {"runs", "pairs", "groups"} <= set(eval(proc.stdout.splitlines()[1]))
