"""`weightlab compare` without TensorFlow: stores written with known trajectories, hand-computed
distances, divergence epochs, seed statistics (against scipy), verdicts and every output format."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CONFIGS, REPO, write_run
from rich.console import Console
from scipy import stats

from weightlab import analysis, render
from weightlab.cli import cli
from weightlab.errors import UsageError
from weightlab.store import snapshot_name
from weightlab.trajectory import TrajectoryWriter

GOLDENS = REPO / "tests" / "goldens"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def fixed_ids(monkeypatch):
    """Run ids 261129-100000-0001, -0002, ... in writing order, for golden outputs."""
    counter = itertools.count(1)
    monkeypatch.setattr("weightlab.store.new_id", lambda: f"261129-100000-{next(counter):04d}")


def set_snapshots(store, run_id, snapshots, layout="epochs"):
    """Replace a run's snapshot files by ``{epoch: {name: array}}`` (known weights), in
    ``layout``: the trajectory training writes (its writer), or one ``.npz`` per epoch."""
    folder = store.run_dir(run_id) / "snapshots"
    for f in folder.iterdir():
        f.unlink()
    epochs = TrajectoryWriter(folder)
    for epoch, arrays in snapshots.items():
        arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        if layout == "epochs":
            assert epochs.append(epoch, arrays)
        else:
            np.savez(folder / snapshot_name(epoch), **arrays)


def bias_pairs(store, seeds=(0, 1, 2), losses_true=None, losses_false=None, layout="epochs"):
    """One biased and one bias-free run per seed; final losses 0.01+0.001·s and 25+s by default."""
    runs = []
    for s in seeds:
        lt = (losses_true or {}).get(s, [1.0, 0.1, 0.01 + s / 1000])
        lf = (losses_false or {}).get(s, [30.0, 26.0, 25.0 + s])
        biased = {"model.use_bias": True}
        runs.append(write_run(store, batch="b", seed=s, cell=biased, losses=lt, layout=layout))
        runs.append(
            write_run(
                store,
                batch="b",
                seed=s,
                cell={"model.use_bias": False},
                use_bias=False,
                losses=lf,
                layout=layout,
            )
        )
    return runs


def compare(store, *selectors, **kwargs):
    return analysis.compare(store, store.select(selectors, default="latest-batch"), **kwargs)


# ---- numbers -------------------------------------------------------------------------------------


def test_weight_distance_by_hand():
    a = {"d/kernel": np.array([[3.0, 0.0]]), "d/bias": np.array([1.0])}
    b = {"d/kernel": np.array([[0.0, 4.0]]), "d/bias": np.array([1.0, 2.0])}  # other shape
    got = analysis.weight_distance(a, b)
    assert got["variables"] == ["d/kernel"]
    assert got["only_a"] == ["d/bias"] and got["only_b"] == ["d/bias"]
    assert got["distance"] == pytest.approx(5 / 4)  # |(3,-4)| / max(3, 4)
    assert got["cosine"] == pytest.approx(0.0)
    same = analysis.weight_distance(a, {k: v.copy() for k, v in a.items()})
    assert same["distance"] == 0.0 and same["cosine"] == 1.0
    opposite = analysis.weight_distance({"k": np.array([1.0, 2.0])}, {"k": np.array([-1.0, -2.0])})
    assert opposite["distance"] == pytest.approx(2.0) and opposite["cosine"] == pytest.approx(-1.0)
    zero = analysis.weight_distance({"k": np.zeros(2)}, {"k": np.zeros(2)})
    assert zero["distance"] == 0.0 and zero["cosine"] is None
    nan = analysis.weight_distance({"k": np.array([np.nan, 1.0])}, {"k": np.ones(2)})
    assert math.isnan(nan["distance"]) and math.isnan(nan["cosine"])


def test_loss_gap_by_hand():
    assert analysis.loss_gap(1.0, 1.05) == (pytest.approx(0.05), pytest.approx(0.05))
    assert analysis.loss_gap(0.5, 0.2) == (pytest.approx(-0.3), pytest.approx(1.5))
    assert analysis.loss_gap(0.0, 0.0) == (0.0, 0.0)
    assert analysis.loss_gap(0.0, 1.0)[1] == math.inf
    assert analysis.loss_gap(1.0, math.nan)[1] == math.inf


@pytest.mark.parametrize(("threshold", "epoch"), [(0.01, 1), (0.1, 2), (0.3, 3), (2.0, None)])
def test_divergence_epoch_is_the_first_gap_above_the_threshold(store, threshold, epoch):
    # Relative gaps per epoch: 0.05, 0.2, 1.5.
    bias_pairs(
        store, seeds=[0], losses_true={0: [1.0, 0.5, 0.2]}, losses_false={0: [1.05, 0.6, 0.5]}
    )
    (pair,) = compare(store, threshold=threshold)["pairs"]
    assert pair["seeds"][0]["divergence_epoch"] == epoch
    assert pair["divergence_epoch"] == epoch


@pytest.mark.both_layouts
def test_trajectory_distance_from_known_snapshots(store, layout):
    a, b = bias_pairs(store, seeds=[0], layout=layout)
    # Kernels (e, 0) against (0, e): |a - b| = e·√2, max norm e, cosine 0; epoch 0 both zero.
    a_snaps = {e: {"d/kernel": [e, 0], "d/bias": [1.0]} for e in range(4)}
    set_snapshots(store, a["id"], a_snaps, layout)
    set_snapshots(store, b["id"], {e: {"d/kernel": [0, e]} for e in range(4)}, layout)
    result = compare(store, per_epoch=True)
    seed = result["pairs"][0]["seeds"][0]
    assert seed["variables"] == ["d/kernel"] and seed["only_a"] == ["d/bias"]
    assert seed["distance_epoch"] == 3
    assert seed["distance"] == pytest.approx(math.sqrt(2)) and seed["cosine"] == pytest.approx(0)
    rows = seed["epochs"]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["distance"] == 0.0 and rows[0]["cosine"] is None
    assert rows[0]["loss_a"] is None and rows[0]["gap"] is None
    assert [r["distance"] for r in rows[1:]] == [pytest.approx(math.sqrt(2))] * 3
    assert rows[2]["loss_a"] == 0.1 and rows[2]["loss_b"] == 26.0
    assert rows[2]["gap"] == pytest.approx(25.9) and rows[2]["rel_gap"] == pytest.approx(259)
    thin = compare(store, per_epoch=True, every=2)["pairs"][0]["seeds"][0]["epochs"]
    assert [r["epoch"] for r in thin] == [0, 2, 3]


@pytest.mark.both_layouts
def test_distances_read_one_epoch_at_a_time(store, monkeypatch, layout):
    """Only the last common snapshot by default; with --per-epoch each epoch once, in order."""
    bias_pairs(store, seeds=[0], layout=layout)
    loaded = []
    original = store.snapshot
    monkeypatch.setattr(store, "snapshot", lambda run, e: loaded.append(e) or original(run, e))
    compare(store)
    assert loaded == [3, 3]
    loaded.clear()
    compare(store, per_epoch=True)
    assert loaded == [0, 0, 1, 1, 2, 2, 3, 3]


def test_group_statistics_against_scipy(store):
    losses_true = {s: [1.0, 1.0, v] for s, v in enumerate([1.0, 2.0, 3.0])}
    losses_false = {s: [9.0, 9.0, v] for s, v in enumerate([4.0, 6.0, 8.0])}
    bias_pairs(store, losses_true=losses_true, losses_false=losses_false)
    result = compare(store)
    g_true, g_false = result["groups"]
    assert g_true["settings"] == {"model.use_bias": "true"} and g_true["seeds"] == [0, 1, 2]
    f = g_true["final_loss"]
    assert f["n"] == 3 and f["mean"] == pytest.approx(2.0) and f["std"] == pytest.approx(1.0)
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df=2) · s / √n
    assert f["ci95"] == [pytest.approx(2 - half), pytest.approx(2 + half)]
    assert g_false["final_loss"]["std"] == pytest.approx(2.0)
    (pair,) = result["pairs"]
    welch = stats.ttest_ind([4.0, 6.0, 8.0], [1.0, 2.0, 3.0], equal_var=False)
    assert pair["t"] == pytest.approx(4 / math.sqrt(4 / 3 + 1 / 3))  # (6 - 2) / √(s²/n + s²/n)
    assert pair["p_value"] == pytest.approx(welch.pvalue)
    assert pair["cohens_d"] == pytest.approx(4 / math.sqrt((2 * 1 + 2 * 4) / 4))
    assert (pair["higher"], pair["lower"], pair["of"]) == (3, 0, 3)
    assert pair["verdict"] == (
        f"use_bias=false ends with higher loss in 3/3 seeds (mean 6 vs 2, "
        f"p = {welch.pvalue:.2g}: not significant)"
    )


def test_verdict_significant(store):
    bias_pairs(store)
    (pair,) = compare(store)["pairs"]
    assert pair["verdict"] == (
        "use_bias=false ends with higher loss in 3/3 seeds (mean 26 vs 0.011, p < 0.001)"
    )


def test_verdict_one_seed_and_lower_loss(store):
    bias_pairs(store, seeds=[4], losses_true={4: [1.0, 1.0, 2.0]}, losses_false={4: [1, 1, 0.5]})
    (pair,) = compare(store)["pairs"]
    assert pair["p_value"] is None and pair["cohens_d"] is None
    assert pair["verdict"] == (
        "use_bias=false ends with lower loss in 1/1 seed (0.5 vs 2, too few seeds for a t-test)"
    )


def test_nan_run(store):
    """A run that blew up: no final loss to compare (no verdict on it); distances stop before it."""
    write_run(store, batch="b", cell={"model.kernel_initializer": "zeros"}, losses=[1.0, 0.9, 0.8])
    write_run(
        store,
        batch="b",
        cell={"model.kernel_initializer": "huge"},
        status="diverged",
        diverged_at=2,
        losses=[10.0, math.nan, math.nan],
    )
    result = compare(store)
    assert result["by"] == "model.kernel_initializer"
    (pair,) = result["pairs"]
    seed = pair["seeds"][0]
    assert seed["blew_up_a"] is None and seed["blew_up_b"] == 2
    assert seed["divergence_epoch"] == 1  # 10 against 1.0 already
    assert seed["distance_epoch"] == 1  # the diverged run has snapshots 0 and 1 only
    assert math.isfinite(seed["distance"])
    assert (pair["higher"], pair["lower"], pair["compared"], pair["blew_up"]) == (0, 0, 0, 1)
    assert pair["verdict"] == "kernel_initializer=huge blew up in 1/1 run"
    assert any("blew up" in f and "epoch 2" in f for f in result["findings"])
    text = json.loads(invoke("compare", "--format", "json").output)
    assert text["runs"][1]["loss"] == "NaN"  # strict JSON: NaN as a string
    assert "diverged@2" in invoke("compare").output


@pytest.mark.both_layouts
def test_no_common_variables(store, layout):
    a, b = bias_pairs(store, seeds=[0], layout=layout)
    set_snapshots(store, b["id"], {e: {"other/kernel": [1.0, e]} for e in range(4)}, layout)
    result = compare(store)
    seed = result["pairs"][0]["seeds"][0]
    assert seed["variables"] == [] and seed["distance"] is None and seed["cosine"] is None
    assert f"{a['id']} and {b['id']} have no variables of the same name and shape" in " ".join(
        result["findings"]
    )
    assert invoke("compare").exit_code == 0


DAMAGED_SNAPSHOT = {  # layout: (file, its damaged bytes, what compare says about it)
    "epochs": (
        "layout.json",
        b"{",
        "layout.json is not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    ),
    "npz": (snapshot_name(3), b"not a zip file", "This file contains pickled (object) data"),
}


@pytest.mark.both_layouts
def test_damaged_snapshot_is_a_finding_not_a_traceback(store, layout):
    a, b = bias_pairs(store, seeds=[0], layout=layout)
    name, damaged, why = DAMAGED_SNAPSHOT[layout]
    (store.run_dir(b["id"]) / "snapshots" / name).write_bytes(damaged)
    result = compare(store)
    assert result["pairs"][0]["seeds"][0]["distance"] is None
    assert [f for f in result["findings"] if a["id"] in f] == [
        f"{a['id']} / {b['id']}: epoch 3 snapshot unreadable ({why}): no distance"
    ]


def test_single_run(store):
    write_run(store)
    result = compare(store)
    assert result["pairs"] == [] and result["by"] is None
    assert result["groups"][0]["n"] == 1 and result["groups"][0]["final_loss"]["std"] is None
    assert result["findings"] == [
        "one run: nothing to pair it with (select more runs, e.g. a batch id)"
    ]
    out = invoke("compare")
    assert out.exit_code == 0 and "one run: nothing to pair it with" in out.output


def test_empty_store():
    result = invoke("compare")
    assert result.exit_code == 1
    assert "no runs in" in result.output and "weightlab run CONFIG" in result.output
    for fmt in ("json", "csv", "md"):
        assert invoke("compare", "--format", fmt).exit_code == 1


# ---- pairing -------------------------------------------------------------------------------------


def test_compare_default_is_latest_batch(store):
    write_run(store, batch="old", experiment="x")
    t, f = bias_pairs(store, seeds=[0])
    result = invoke("compare")
    assert result.exit_code == 0
    assert t["id"][-4:] in result.output and f["id"][-4:] in result.output
    data = json.loads(invoke("compare", "--format", "json").output)
    assert data["keys"] == ["model.use_bias"] and data["by"] == "model.use_bias"
    assert [r["id"] for r in data["runs"]] == [t["id"], f["id"]]  # oldest first
    assert {r["settings"]["model.use_bias"] for r in data["runs"]} == {"true", "false"}
    assert set(data) == {"keys", "by", "threshold", "runs", "pairs", "groups", "findings"}


def test_all_keys(store):
    bias_pairs(store, seeds=[0])
    result = compare(store, all_keys=True)
    assert {"model.use_bias", "train.epochs", "seed"} <= set(result["keys"])
    assert result["by"] == "model.use_bias" and len(result["pairs"]) == 1


def test_two_differing_keys_need_by(store):
    for init, bias in itertools.product(["glorot_uniform", "zeros", "ones"], [True, False]):
        write_run(
            store,
            batch="b",
            use_bias=bias,
            cell={"model.kernel_initializer": init, "model.use_bias": bias},
        )
    result = compare(store)
    assert result["pairs"] == []
    assert result["findings"][-1] == (
        "no pairs: the runs differ in model.use_bias, model.kernel_initializer; "
        "choose the key that tells a pair apart with --by KEY"
    )
    by_bias = compare(store, by="use_bias")  # the section may be left out
    assert by_bias["by"] == "model.use_bias"
    assert [p["settings"] for p in by_bias["pairs"]] == [
        {"model.kernel_initializer": v} for v in ["glorot_uniform", "zeros", "ones"]
    ]
    by_init = compare(store, by="model.kernel_initializer")
    assert [
        (p["a"]["value"], p["b"]["value"], p["settings"]["model.use_bias"])
        for p in by_init["pairs"]
    ] == [
        ("glorot_uniform", "zeros", "true"),
        ("glorot_uniform", "zeros", "false"),
        ("glorot_uniform", "ones", "true"),
        ("glorot_uniform", "ones", "false"),
    ]


def test_pairs_need_the_same_seed(store):
    write_run(store, batch="b", seed=0, cell={"model.use_bias": True})
    write_run(
        store, batch="b", seed=1, cell={"model.use_bias": False}, use_bias=False, losses=[2, 2, 2]
    )
    result = compare(store, by="model.use_bias")
    (pair,) = result["pairs"]
    assert pair["seeds"] == [] and pair["of"] == 0
    assert pair["verdict"] == (
        "use_bias=false ends with higher loss (2 vs 0.333, too few seeds for a t-test)"
    )
    text = table_text(result)
    assert "false     mean" in text  # the pair keeps its row, from the groups


def test_unknown_by_key_exit_2(store):
    bias_pairs(store, seeds=[0])
    result = CliRunner().invoke(cli, ["compare", "--by", "model.use_bais"])
    assert result.exit_code == 2
    assert (
        "--by 'model.use_bais': no such config key; did you mean 'model.use_bias'?" in result.output
    )


def test_by_seed_is_a_usage_error(store):
    bias_pairs(store, seeds=[0, 1])
    with pytest.raises(UsageError, match="form the seed groups already"):
        compare(store, by="seed")


def test_where_filters(store):
    runs = bias_pairs(store, seeds=[0, 1])
    assert [r["id"] for r in analysis.where(store.select(), ["model.use_bias=false"])] == [
        runs[3]["id"],
        runs[1]["id"],
    ]
    assert len(analysis.where(store.select(), ["use_bias=true", "seed=1"])) == 1
    with pytest.raises(
        UsageError,
        match=r"'status=diverged': no selected run has that value \(they have: completed\)",
    ):
        analysis.where(store.select(), ["status=diverged"])
    data = json.loads(invoke("compare", "--where", "seed=0", "--format", "json").output)
    assert [r["id"] for r in data["runs"]] == [runs[0]["id"], runs[1]["id"]]
    none = CliRunner().invoke(cli, ["compare", "--where", "use_bias=maybe"])
    assert none.exit_code == 2
    assert "--where 'use_bias=maybe': no selected run has that value (they have: false, true)" in (
        none.output
    )
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        analysis.where(store.select(), ["use_bias"])
    bad = CliRunner().invoke(cli, ["compare", "--where", "model.use_bais=false"])
    assert bad.exit_code == 2 and "did you mean 'model.use_bias'" in bad.output


def test_sort_by(store):
    runs = bias_pairs(store, seeds=[0, 1])
    rows = compare(store, sort_by="loss")["runs"]
    assert [r["loss"] for r in rows] == [0.01, 0.011, 25.0, 26.0]
    rows = compare(store, sort_by="-loss")["runs"]
    assert [r["loss"] for r in rows] == [26.0, 25.0, 0.011, 0.01]
    rows = compare(store, sort_by="use_bias")["runs"]
    assert [r["settings"]["model.use_bias"] for r in rows] == ["false"] * 2 + ["true"] * 2
    assert compare(store, sort_by="mae")["runs"][0]["id"] == runs[0]["id"]
    out = invoke("compare", "--sort-by=-loss").output
    assert out.index(runs[3]["id"][-4:]) < out.index(runs[0]["id"][-4:])
    bad = CliRunner().invoke(cli, ["compare", "--sort-by", "los"])
    assert bad.exit_code == 2 and "unknown column; did you mean 'loss'?" in bad.output


# ---- output formats ------------------------------------------------------------------------------


@pytest.fixture
def golden_store(store, fixed_ids, layout):
    """Two seeds of biased against bias-free runs, ids 261129-100000-0001..0004 (the goldens
    hold for either snapshot layout)."""
    bias_pairs(store, seeds=[0, 1], layout=layout)
    return store


def table_text(result, width=80):
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(render.compare_table(result, width=width))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def golden(name: str) -> str:
    return (GOLDENS / name).read_text(encoding="utf-8")


@pytest.mark.both_layouts
def test_golden_table_80_columns(golden_store):
    """Runs, seed groups, pairs and --per-epoch --every 2 at 80 columns (reviewed by hand)."""
    got = table_text(compare(golden_store, per_epoch=True, every=2))
    assert got == golden("compare-table.txt")
    assert max(len(line) for line in got.splitlines()) <= 80


@pytest.mark.both_layouts
def test_golden_markdown(golden_store):
    assert render.compare_markdown(compare(golden_store)) == golden("compare.md")
    out = invoke("compare", "--format", "md").output
    assert out == golden("compare.md")


@pytest.mark.both_layouts
def test_golden_csv(golden_store):
    text = invoke("compare", "--format", "csv").output
    assert text == golden("compare.csv")
    blocks = [list(csv.reader(io.StringIO(b))) for b in text.split("\n\n")]
    assert [b[1][0] for b in blocks] == ["runs", "groups", "pairs", "findings"]
    assert all(len(row) == len(b[0]) for b in blocks for row in b)


def test_json_is_the_library_result(golden_store):
    data = json.loads(invoke("compare", "--per-epoch", "--format", "json").output)
    assert data == json.loads(render.as_json(compare(golden_store, per_epoch=True)))
    (pair,) = data["pairs"]
    assert set(pair) >= {"key", "a", "b", "settings", "seeds", "verdict", "p_value", "cohens_d"}
    assert [len(s["epochs"]) for s in pair["seeds"]] == [4, 4]
    assert [g["final_loss"]["values"] for g in data["groups"]] == [[0.01, 0.011], [25.0, 26.0]]


@pytest.mark.parametrize("width", [60, 80, 100, 140])
def test_compare_fits_the_terminal(golden_store, width):
    text = table_text(compare(golden_store, per_epoch=True), width)
    assert all(len(line) <= width for line in text.splitlines())
    assert "ends with higher loss in 2/2 seeds" in " ".join(text.split())
    assert ("not shown for lack of width" in text) == (width < 80)


def test_side_by_side_golden():
    """The side-by-side table (also `run`'s summary), at 80 columns (reviewed by hand)."""
    records = [
        {
            "id": "261129-100000-aaaa",
            "experiment": "e",
            "status": "completed",
            "epochs": 50,
            "epochs_completed": 50,
            "final": {"loss": 0.012345, "val_loss": 0.013, "mae": 0.0876},
            "best": {"loss": 0.0121, "epoch": 48},
            "diverged_at_epoch": None,
            "weights": {
                "kernel_norm": 3.0,
                "kernel_norm_initial": 2.5,
                "bias_norm": 2.85,
                "bias_norm_initial": 0.0,
                "dist_init": 2.0,
            },
            "config": {"model.use_bias": True, "train.epochs": 50},
        },
        {
            "id": "261129-100001-bbbb",
            "experiment": "e",
            "status": "completed",
            "epochs": 50,
            "epochs_completed": 50,
            "final": {"loss": 1.83, "val_loss": 1.72, "mae": 1.07},
            "best": {"loss": 1.83, "epoch": 50},
            "diverged_at_epoch": None,
            "weights": {
                "kernel_norm": 7.5,
                "kernel_norm_initial": 2.5,
                "bias_norm": None,
                "bias_norm_initial": None,
                "dist_init": 5.0,
            },
            "config": {"model.use_bias": False, "train.epochs": 50},
        },
    ]
    console = Console(width=80, record=True, color_system=None)
    console.print(render.comparison(analysis.side_by_side(records), title="e: 2 runs"))
    expected = textwrap.dedent("""\
        e: 2 runs
        run   use_bias  status       loss  val_loss    best@ep     mae  |W|  W/W0   |b|
        ───────────────────────────────────────────────────────────────────────────────
        aaaa  true      completed  0.0123     0.013  0.0121@48  0.0876    3   1.2  2.85
        bbbb  false     completed    1.83      1.72    1.83@50    1.07  7.5     3     -
        run = last 4 characters of the run id; best@ep = lowest loss and its epoch; |W|,
        |b| = L2 norm of all kernels, of all biases; W/W0 = |W| / |W| at epoch 0
        • use_bias=false ends with 148× the loss of use_bias=true (1.83 vs 0.01235)
        """)
    got = "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
    assert got == "\n".join(line.rstrip() for line in expected.splitlines()) + "\n"


@pytest.mark.parametrize("width", [60, 80, 120])
def test_compare_never_silently_drops_columns(store, width):
    """Too narrow: the least important numbers are left out, and the output says which."""
    for init in ("glorot_uniform", "he_normal"):
        for bias in (True, False):
            write_run(
                store,
                batch="b",
                use_bias=bias,
                cell={"model.kernel_initializer": init, "model.use_bias": bias},
                losses=[1.0, 0.5, 0.7],
            )
    console = Console(width=width, record=True, color_system=None)
    result = analysis.side_by_side(store.select([], default="latest-batch"))
    console.print(render.comparison(result, width=width))
    text = console.export_text()
    assert all(len(line.rstrip()) <= width for line in text.splitlines())
    header = text.splitlines()[0].split()
    assert header[0] == "run" and header[3] == "status"
    assert set(header[1:3]) == {"kernel_init", "use_bias"}, "settings are never dropped"
    expected = ["loss", "best@ep", "mae", "|W|", "W/W0", "|b|"]  # the runs have no val_loss
    missing = [c for c in expected if c not in header]
    assert bool(missing) == (width < 80)
    if missing:
        # Dropped least important first: metrics, then best@ep, then the weight columns.
        order = ["mae", "best@ep", "W/W0", "|W|", "|b|"][: len(missing)]
        assert set(missing) == set(order)
        assert f"not shown for lack of width: {', '.join(order)}" in " ".join(text.split())
    else:
        assert "not shown" not in text


@pytest.mark.keras
def test_bias_free_group_ends_higher_on_real_runs(store):
    """configs/bias-vs-no-bias.yaml, tiny, 3 seeds: compare reports the bias-free loss as higher."""
    from weightlab.config import load_experiment
    from weightlab.training.sweep import run_experiment

    overrides = ["data.samples=64", "train.epochs=3", "train.batch_size=16", "seeds=[0, 1, 2]"]
    exp = load_experiment(CONFIGS / "bias-vs-no-bias.yaml", overrides)
    records = run_experiment(exp, store)
    assert [r["status"] for r in records] == ["completed"] * 6
    result = compare(store)
    assert result["by"] == "model.use_bias"
    (pair,) = result["pairs"]
    assert (pair["a"]["value"], pair["b"]["value"]) == ("true", "false")
    biased, free = (result["groups"][pair[x]["group"]] for x in "ab")
    assert biased["n"] == free["n"] == 3
    assert free["final_loss"]["mean"] > biased["final_loss"]["mean"]
    assert pair["higher"] == 3 and pair["verdict"].startswith(
        "use_bias=false ends with higher loss in 3/3 seeds"
    )
    for seed in pair["seeds"]:
        # Same seed, same kernel initializer: the kernels start identical and then drift apart.
        assert seed["only_a"] == ["dense_1/bias", "out/bias"] and seed["only_b"] == []
        assert seed["distance"] > 0
    epoch0 = compare(store, per_epoch=True)["pairs"][0]["seeds"][0]["epochs"][0]
    assert epoch0["distance"] == 0.0 and epoch0["cosine"] == 1.0


def test_per_epoch_csv_block(golden_store):
    text = invoke("compare", "--per-epoch", "--every", "2", "--format", "csv").output
    epochs = next(b for b in text.split("\n\n") if b.startswith("table,seed,epoch"))
    rows = list(csv.DictReader(io.StringIO(epochs)))
    assert [(r["seed"], r["epoch"]) for r in rows] == [
        ("0", "0"), ("0", "2"), ("0", "3"), ("1", "0"), ("1", "2"), ("1", "3")
    ]  # fmt: skip
    assert rows[1]["loss_a"] == "0.1" and rows[1]["loss_b"] == "26.0" and rows[0]["gap"] == ""


# ---- status: diverged is the one fact (issue 12) -------------------------------------------------


def huge_init_seeds(store, seeds=range(5), diverged=range(5), finite_blowup=(0, 2, 4)):
    """configs/initializers.yaml's glorot_uniform against random_normal(stddev=20), fixed arrays.

    The seeds in ``diverged`` blew up at epoch 1; of them, those in ``finite_blowup`` end with a
    finite 3e33 loss (a weight overflowed first, as on an AVX-512 CPU), the others with NaN.
    """
    for s in seeds:
        write_run(
            store,
            batch="b",
            seed=s,
            cell={"model.kernel_initializer": "glorot"},
            losses=[1.0, 0.1, 0.02 + s / 1000],
        )
        if s in diverged:
            last = 3.3e33 if s in finite_blowup else math.nan
            write_run(
                store,
                batch="b",
                seed=s,
                cell={"model.kernel_initializer": "huge"},
                status="diverged",
                diverged_at=1,
                losses=[last, math.nan, math.nan],
            )
        else:
            write_run(
                store,
                batch="b",
                seed=s,
                cell={"model.kernel_initializer": "huge"},
                losses=[9.0, 8.0, 7.0 + s],
            )


def test_a_blow_up_with_a_finite_last_loss_is_a_blow_up_everywhere(store):
    """Every table, statistic and verdict reads the status, not the value of the last loss."""
    huge_init_seeds(store)
    result = compare(store)
    glorot, huge = result["groups"]
    assert (huge["n"], huge["diverged"], huge["finished"]) == (5, 5, 0)
    assert huge["final_loss"]["n"] == 0 and huge["final_loss"]["values"] == []
    assert huge["best_loss"]["n"] == 0, "a diverged run's 3e33 is no best loss either"
    assert huge["note"] == "5 of 5 seeds diverged: no run finished, no statistics"
    (pair,) = result["pairs"]
    assert [s["blew_up_b"] for s in pair["seeds"]] == [1] * 5
    assert [s["blew_up_a"] for s in pair["seeds"]] == [None] * 5
    assert [s["divergence_epoch"] for s in pair["seeds"]] == [1] * 5, "apart from the blow-up"
    assert (pair["compared"], pair["blew_up"], pair["of"]) == (0, 5, 5)
    assert pair["t"] is None and pair["p_value"] is None, "no t-test on 3e33 losses"
    assert pair["verdict"] == "kernel_initializer=huge blew up in 5/5 runs"
    text = " ".join(table_text(result, width=100).split())
    assert text.count("b@1") == 5, "the pairs' blew_up column marks every seed"
    assert "huge 5 - - - - - 5" in text, "group row: n 5, no statistics, blew_up 5"


def test_statistics_leave_diverged_runs_out_and_say_so(store):
    huge_init_seeds(store, diverged=(1, 3), finite_blowup=(3,))
    result = compare(store)
    glorot, huge = result["groups"]
    assert (huge["n"], huge["diverged"], huge["finished"]) == (5, 2, 3)
    assert huge["note"] == "2 of 5 seeds diverged; statistics over the 3 that finished"
    assert huge["final_loss"]["values"] == [7.0, 9.0, 11.0]  # seeds 0, 2, 4
    assert huge["final_loss"]["n"] == 3 and huge["final_loss"]["mean"] == 9.0
    assert f"kernel_initializer=huge: {huge['note']}" in result["findings"]
    (pair,) = result["pairs"]
    assert [s["blew_up_b"] for s in pair["seeds"]] == [None, 1, None, 1, None]
    assert (pair["higher"], pair["lower"], pair["ties"], pair["compared"]) == (3, 0, 0, 3)
    welch = stats.ttest_ind([7.0, 9.0, 11.0], [0.02, 0.021, 0.022, 0.023, 0.024], equal_var=False)
    assert pair["p_value"] == pytest.approx(welch.pvalue)
    assert pair["verdict"] == (
        "kernel_initializer=huge ends with higher loss in 3/3 seeds where both finished "
        f"(mean 9 vs 0.022, p = {welch.pvalue:.2g}); kernel_initializer=huge blew up in 2/5 runs"
    )
    text = " ".join(table_text(result, width=100).split())
    assert "huge 5 9 2 " in text, "group row: n 5, mean 9 over the 3, std 2"
    assert text.count("b@1") == 2
    assert "2 of 5 seeds diverged; statistics over the 3 that finished" in text


def test_left_out_note_names_every_status():
    runs = [{"status": s} for s in ("completed", "diverged", "interrupted", "diverged")]
    assert analysis.left_out_note(runs) == (
        "2 of 4 seeds diverged, 1 interrupted; statistics over the 1 that finished"
    )
    assert analysis.left_out_note(runs[:1]) is None


# ---- ties: one rule for apart@ and for verdicts ----------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "threshold", "tie"),
    [
        (0.000106, 0.0001061, 0.1, True),  # configs/dot-product.yaml: 1e-3 apart
        (1.0, 1.25, 0.25, True),  # exactly the threshold: still the same
        (1.0, 1.2500001, 0.25, False),
        (1.0, 1.0 + 2**-23, 0.0, True),  # one float32 ulp: a tie even at --threshold 0
        (1.0, 1.0 + 2**-19, 0.0, False),
        (0.0, 0.0, 0.0, True),
        (1.0, math.nan, 0.1, False),
        (None, 1.0, 0.1, False),
    ],
)
def test_same_loss(a, b, threshold, tie):
    assert analysis.same_loss(a, b, threshold) is tie
    assert analysis.same_loss(b, a, threshold) is tie


def test_a_difference_inside_the_threshold_is_a_tie_and_called_one(store):
    """configs/dot-product.yaml: 0.000106 against 0.000106 is no 'higher' or 'lower'."""
    bias_pairs(
        store,
        seeds=[0],
        losses_true={0: [1.0, 0.01, 0.000106]},
        losses_false={0: [1.0, 0.01, 0.0001061]},
    )
    (pair,) = compare(store)["pairs"]
    assert (pair["higher"], pair["lower"], pair["ties"], pair["tie"]) == (0, 0, 1, True)
    assert pair["seeds"][0]["divergence_epoch"] is None, "never apart: the same rule"
    assert pair["verdict"] == (
        "use_bias=false ends with the same loss as use_bias=true in 1/1 seed: a tie, within 10% "
        "(0.000106 vs 0.000106, too few seeds for a t-test)"
    )
    (pair,) = compare(store, threshold=0.0)["pairs"]  # 1e-3 apart is more than float32 noise
    assert pair["verdict"].startswith("use_bias=false ends with higher loss in 1/1 seed")


def test_tie_counts_per_seed(store):
    bias_pairs(
        store,
        losses_true={s: [1, 1, 1.0] for s in range(3)},
        losses_false={0: [1, 1, 1.05], 1: [1, 1, 2.0], 2: [1, 1, 0.98]},
    )
    (pair,) = compare(store)["pairs"]
    assert (pair["higher"], pair["lower"], pair["ties"], pair["compared"]) == (1, 0, 2, 3)
    assert not pair["tie"], "the means are 34% apart"
    assert pair["verdict"].startswith("use_bias=false ends with higher loss in 1/3 seeds (mean")
