"""plot: PNG and SVG figures of loss, weight norms and bias values (stores written without TF)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import write_run

from weightlab import plot as plots
from weightlab.cli import cli

PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def runs(store, layout):
    losses = [1, 0.1, 0.01, 0.001]
    good = write_run(
        store, batch="b", cell={"model.use_bias": True}, epochs=4, losses=losses, layout=layout
    )
    free = write_run(
        store,
        batch="b",
        cell={"model.use_bias": False},
        use_bias=False,
        epochs=4,
        losses=[30, 27, 26, 25],
        layout=layout,
    )
    return good, free


def plot_json(*args: str) -> dict:
    result = invoke("plot", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_loss_png(runs, tmp_path):
    out = tmp_path / "figures" / "loss.png"
    result = invoke("plot", "b", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: loss of 2 runs (log scale: the losses span decades)" in " ".join(
        result.output.split()
    )
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["loss.png"]  # no temporary file left


def test_loss_svg_names_the_differing_key_and_marks_divergence(store, tmp_path):
    ok = write_run(store, batch="d", cell={"train.optimizer": "sgd"}, losses=[0.5, 0.4, 0.3])
    bad = write_run(
        store,
        batch="d",
        cell={"train.optimizer": "adam"},
        status="diverged",
        diverged_at=2,
        losses=[0.9, float("nan"), float("nan")],
    )
    out = tmp_path / "loss.svg"
    info = plot_json("d", "-o", str(out))
    assert info["labels"] == ["optimizer=adam", "optimizer=sgd"]
    assert info["runs"] == [bad["id"], ok["id"]]
    assert info["log_scale"] is False  # 0.3 .. 0.9: no decades to span
    assert info["diverged"] == [{"run": bad["id"], "epoch": 2, "loss": 0.9}]
    svg = out.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    # the key the runs differ in titles the legend once; its values are the entries
    for text in (">optimizer<", ">adam<", ">sgd<", "blew up at epoch 2", "exp: loss per epoch"):
        assert text in svg


def test_weights_norms(runs, tmp_path):
    out = tmp_path / "w.svg"
    info = plot_json("b", "--what", "weights", "-o", str(out))
    assert info["layers"] == ["dense_1", "out"]
    svg = out.read_text()
    for text in ("kernel |W| per layer", "bias |b| per layer", "layer dense_1", ">use_bias<"):
        assert text in svg


def test_weights_of_bias_free_runs_say_so(store, tmp_path):
    write_run(store, batch="n", use_bias=False)
    out = tmp_path / "w.png"
    assert invoke("plot", "n", "--what", "weights", "-o", str(out)).exit_code == 0
    assert out.read_bytes().startswith(PNG)
    plot_json("n", "--what", "weights", "-o", str(tmp_path / "w.svg"))
    assert "no biases (use_bias: false)" in (tmp_path / "w.svg").read_text()


@pytest.mark.both_layouts
def test_biases_from_snapshots(runs, tmp_path):
    good, free = runs
    out = tmp_path / "b.svg"
    info = plot_json("b", "--what", "biases", "-o", str(out))
    assert info["biases"] == {
        free["id"]: None,
        good["id"]: {"layer": "dense_1", "units": 3, "epochs": 5},
    }
    svg = out.read_text()
    assert "no layer has a bias (use_bias: false)" in svg and "dense_1 bias values" in svg
    info = plot_json(
        good["id"], "--what", "biases", "--layer", "out", "-o", str(tmp_path / "o.png")
    )
    assert info["biases"][good["id"]] == {"layer": "out", "units": 1, "epochs": 5}
    assert (tmp_path / "o.png").read_bytes().startswith(PNG)


def test_same_settings_are_told_apart_by_id(store):
    a = write_run(store, batch="s")
    b = write_run(store, batch="s")
    records = store.select(["s"])
    assert plots.labels(records) == [b["id"], a["id"]]
    c = write_run(store, batch="t", cell={"model.use_bias": True})
    d = write_run(store, batch="t", cell={"model.use_bias": True})
    e = write_run(store, batch="t", cell={"model.use_bias": False}, use_bias=False)
    assert plots.labels(store.select(["t"])) == [
        "use_bias=false",
        f"use_bias=true ({d['id'][-4:]})",
        f"use_bias=true ({c['id'][-4:]})",
    ]
    assert e  # written last, listed first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "fig.jpg"], "-o fig.jpg: expected a file ending in .png or .svg; got '.jpg'"),
        (["-o", "fig"], "-o fig: expected a file ending in .png or .svg; got 'no extension'"),
        (
            ["-o", "f.png", "--what", "norms"],
            "'norms' is not one of 'loss', 'weights', 'biases', 'distance'",
        ),
        (["-o", "f.png", "--what", "biases", "--layer", "dens_1"], "did you mean 'dense_1'?"),
        (["nope", "-o", "f.png"], "no run matches 'nope'"),
    ],
)
def test_bad_arguments_exit_2(runs, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["plot", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("f*.*")) and not list(tmp_path.glob(".f*"))


def test_unwritable_output_exit_1(runs, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("plot", "-o", str(blocker / "loss.png"))
    assert result.exit_code == 1
    assert f"cannot write {blocker / 'loss.png'}" in result.output


def test_empty_store_exit_1(tmp_path):
    result = invoke("plot", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1 and "no runs in" in result.output


def test_a_run_that_blew_up_in_its_first_epoch_is_still_marked(store, tmp_path):
    """No finite loss at all (random_normal(stddev=20) in configs/initializers.yaml): X on top."""
    ok = write_run(
        store, batch="e", cell={"model.kernel_initializer": "zeros"}, losses=[1, 0.9, 0.8]
    )
    bad = write_run(
        store,
        batch="e",
        cell={"model.kernel_initializer": "huge"},
        status="diverged",
        diverged_at=1,
        epochs=2,
        losses=[float("nan"), float("nan")],
    )
    out = tmp_path / "e.svg"
    info = plot_json("e", "-o", str(out))
    assert info["diverged"] == [{"run": bad["id"], "epoch": 1, "loss": None}]
    assert info["runs"] == [bad["id"], ok["id"]]
    assert "blew up at epoch 1" in out.read_text()


def test_a_blow_up_with_a_finite_last_loss_is_marked_by_its_status(store, tmp_path):
    """A weight overflowed first: the epoch's loss is a finite 3e33. The status decides: the X
    sits on the last loss before the blow-up, and the 3e33 is not drawn (nor sets a log scale)."""
    ok = write_run(
        store, batch="e", cell={"model.kernel_initializer": "zeros"}, losses=[1, 0.9, 0.8]
    )
    bad = write_run(
        store,
        batch="e",
        cell={"model.kernel_initializer": "huge"},
        status="diverged",
        diverged_at=2,
        losses=[2.0, 3.3e33, float("nan")],
    )
    info = plot_json("e", "-o", str(tmp_path / "e.svg"))
    assert info["diverged"] == [{"run": bad["id"], "epoch": 2, "loss": 2.0}]
    assert info["log_scale"] is False, "0.8 to 2.0: the 3e33 is left out"
    assert ok["status"] == "completed"


def relative_distance(a: dict, b: dict) -> float:
    """|a - b| / max(|a|, |b|) over the variables both runs have (by hand, with numpy)."""
    import numpy as np

    common = [k for k in a if k in b]
    va = np.concatenate([a[k].ravel() for k in common]).astype(np.float64)
    vb = np.concatenate([b[k].ravel() for k in common]).astype(np.float64)
    return float(np.linalg.norm(va - vb) / max(np.linalg.norm(va), np.linalg.norm(vb)))


@pytest.mark.both_layouts
def test_distance_between_paired_runs(store, runs, tmp_path):
    good, free = runs
    out = tmp_path / "d.svg"
    info = plot_json("b", "--what", "distance", "-o", str(out))
    assert info["by"] == "model.use_bias"
    (pair,) = info["pairs"]
    assert pair["pair"] == "use_bias=false vs use_bias=true" and pair["seed"] == 0
    assert pair["epochs"] == [0, 1, 2, 3, 4]
    want = [
        relative_distance(store.snapshot(good["id"], e), store.snapshot(free["id"], e))
        for e in range(5)
    ]
    assert pair["distance"] == pytest.approx(want)
    assert pair["distance"][0] == 0.0  # the same seed: the same initial kernels
    svg = out.read_text()
    assert "use_bias=false vs use_bias=true" in svg and "pairs by model.use_bias" in svg


def test_distance_without_pairs_exit_2(store, tmp_path):
    write_run(store, batch="one")
    result = CliRunner().invoke(cli, ["plot", "one", "--what", "distance", "-o", "d.png"])
    assert result.exit_code == 2
    assert "--what distance needs pairs of runs" in " ".join(result.output.split())
    assert "one run: nothing to pair it with" in " ".join(result.output.split())
