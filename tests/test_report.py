"""weightlab report: the page's numbers against numpy on stored runs, the page file, bad input."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, write_run
from test_explain import FINAL, X, known_run

from weightlab import analysis, explain, report
from weightlab.cli import cli
from weightlab.errors import UsageError


def study(store, seeds=3, epochs=4, layout="epochs"):
    """use_bias true/false × seeds, with epochs.npy trajectories as training writes them (or
    ``layout="npz"``: one .npz per epoch, as older versions did)."""
    records = []
    for seed in range(seeds):
        biased = {"model.use_bias": True}
        records.append(write_run(store, seed=seed, cell=biased, epochs=epochs, layout=layout))
        records.append(
            write_run(
                store,
                seed=seed,
                cell={"model.use_bias": False},
                use_bias=False,
                epochs=epochs,
                losses=[(2.0 + seed) / (e + 1) for e in range(epochs)],
                layout=layout,
            )
        )
    return records


@pytest.fixture
def page(store, layout):
    study(store, layout=layout)
    _, records = report.select(store.root, [])
    return report.build(store, records)


def page_data(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="weightlab-data">(.*?)</script>', text)
    assert found
    return json.loads(found.group(1))


@pytest.mark.both_layouts
def test_histogram_counts_add_up_and_match_numpy(store, page):
    assert set(page["histograms"]) == {"dense_1/kernel", "out/kernel", "dense_1/bias", "out/bias"}
    for var, h in page["histograms"].items():
        lo, hi = h["range"]
        edges = np.linspace(lo, hi, report.BINS + 1)
        for run_id, counts in h["runs"].items():
            values = store.trajectory(run_id, var).reshape(len(counts["counts"]), -1)
            for e, row in enumerate(counts["counts"]):
                v = values[e].astype(np.float64)
                total = sum(row) + counts["below"][e] + counts["above"][e] + counts["nonfinite"][e]
                assert total == v.size == counts["size"]
                expected, _ = np.histogram(v[(v >= lo) & (v <= hi)], bins=edges)
                assert row == expected.tolist(), (var, run_id, e)
                assert counts["below"][e] == int((v < lo).sum())
        for g in {r["group"] for r in page["runs"]}:
            members = [r["id"] for r in page["runs"] if r["group"] == g]
            pooled = h["groups"].get(str(g))
            if pooled is None:
                assert not any(m in h["runs"] for m in members)  # a bias-free group
                continue
            summed = np.sum([h["runs"][m]["counts"] for m in members], axis=0)
            assert pooled["counts"] == summed.tolist()
            assert pooled["runs"] == [len(members)] * len(summed)


def test_histogram_range_is_clipped_by_quantiles_and_counts_outliers():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 1000))
    values[2, :5] = 1e6  # a few wild values must not widen the bins
    values[1, 0] = np.nan
    h = report.histograms({"r": values})
    lo, hi = h["range"]
    assert hi < 10 and lo > -10
    assert h["runs"]["r"]["above"][2] >= 5
    assert h["runs"]["r"]["nonfinite"] == [0, 1, 0]
    assert [
        sum(c) + b + a + n
        for c, b, a, n in zip(
            *(h["runs"]["r"][k] for k in ("counts", "below", "above", "nonfinite")), strict=True
        )
    ] == [1000] * 3


def test_loss_band_is_the_groups_mean_plus_minus_std(store, page):
    from scipy import stats

    bands = {b["label"]: b for b in page["loss"]["bands"]}
    assert set(bands) == {"use_bias=true", "use_bias=false"}
    group = next(g for g in page["verdicts"]["groups"] if g["group"] == "use_bias=false")
    assert group["n"] == 3
    band = bands["use_bias=false"]["loss"]
    runs = [r["id"] for r in page["runs"] if r["settings"]["model.use_bias"] == "false"]
    for i, epoch in enumerate(band["epochs"]):
        losses = [
            next(row["loss"] for row in store.history(run_id) if row["epoch"] == epoch)
            for run_id in runs
        ]
        mean, std = np.mean(losses), np.std(losses, ddof=1)
        half = stats.t.ppf(0.975, len(losses) - 1) * std / math.sqrt(len(losses))
        assert band["n"][i] == 3
        assert band["mean"][i] == pytest.approx(mean, rel=1e-4)
        assert band["std_low"][i] == pytest.approx(mean - std, rel=1e-4, abs=1e-9)
        assert band["std_high"][i] == pytest.approx(mean + std, rel=1e-4)
        assert band["ci_low"][i] == pytest.approx(mean - half, rel=1e-4, abs=1e-9)
        assert band["ci_high"][i] == pytest.approx(mean + half, rel=1e-4)


def test_band_leaves_out_nonfinite_values_and_has_no_spread_for_one_value():
    out = report.band([{1: 1.0, 2: math.nan}, {1: 3.0, 2: 5.0}])
    assert out["mean"] == [2.0, 5.0]
    assert out["n"] == [2, 1]
    assert out["std"][1] is None and out["ci_low"][1] is None


@pytest.mark.both_layouts
def test_pair_distances_per_epoch_are_compares_weight_distance(store, page):
    (pair,) = page["pairs"]
    assert len(pair["seeds"]) == 3
    for s in pair["seeds"]:
        w = s["weights"]
        assert w["variables"] == ["dense_1/kernel", "out/kernel"]  # the bias-free side has none
        for e in w["epochs"]:
            ref = analysis.weight_distance(store.snapshot(s["a"], e), store.snapshot(s["b"], e))
            assert w["distance"][e] == pytest.approx(ref["distance"], rel=1e-4)
            assert w["cosine"][e] == pytest.approx(ref["cosine"], rel=1e-4)
            one = analysis.weight_distance(
                {"k": store.snapshot(s["a"], e)["out/kernel"]},
                {"k": store.snapshot(s["b"], e)["out/kernel"]},
            )
            assert w["per_variable"]["out/kernel"]["distance"][e] == pytest.approx(
                one["distance"], rel=1e-4
            )
    assert page["verdicts"]["pairs"][0]["verdict"].startswith("use_bias=false ends with")


@pytest.mark.both_layouts
def test_biases_of_a_bias_free_run_are_absent_not_zeros(store, page):
    free = [r["id"] for r in page["runs"] if r["settings"]["model.use_bias"] == "false"]
    with_bias = [r["id"] for r in page["runs"] if r["id"] not in free]
    for var, b in page["biases"].items():
        assert not set(free) & set(b["runs"]), var
        for run_id in with_bias:
            values = np.array(b["runs"][run_id]["values"], dtype=float)
            np.testing.assert_allclose(values, store.trajectory(run_id, var), rtol=1e-4, atol=1e-6)
    assert all(not any(r["use_bias"].values()) for r in page["runs"] if r["id"] in free)


def test_weight_statistics_come_from_the_history(store, page):
    run_id = page["runs"][0]["id"]
    w = page["weights"]["runs"][run_id]
    history = store.history(run_id)
    assert w["epochs"] == [row["epoch"] for row in history]
    l2 = [row["weights"]["dense_1/kernel"]["l2"] for row in history]
    assert w["variables"]["dense_1/kernel"]["l2"] == pytest.approx(l2, rel=1e-4)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.both_layouts
def test_dot_product_terms_add_up_to_the_units_preactivation(store, tmp_path, use_bias, layout):
    rec = known_run(store, tmp_path, use_bias=use_bias, epochs=2, layout=layout)
    dot = report.dot_product(store, rec["id"], layer="out", unit=0, sample=1)
    assert dot["epochs"] == [0, 1, 2] and dot["unit_ids"] == [0]
    for k, epoch in enumerate(dot["epochs"]):
        bias = dot["bias"][k][0] if use_bias else 0.0
        assert sum(dot["product"][k][0]) + bias == pytest.approx(dot["z"][k][0], rel=1e-4)
        same = explain.explain(store, rec["id"], epoch=epoch, layer="out", unit=0, sample=1)
        products = [t["product"] for t in same["terms"]]
        assert dot["product"][k][0] == pytest.approx(products, rel=1e-4)
        assert dot["z"][k][0] == pytest.approx(same["z"], rel=1e-4)
        assert dot["output"][k][0] == pytest.approx(same["output"], rel=1e-4)
        assert (dot["bias"][k] is None) is not use_bias
    # At the last epoch, by hand: the hidden layer's ReLU output times out/kernel, plus out/bias.
    h = np.maximum(X[1] @ FINAL["dense_1/kernel"] + use_bias * FINAL["dense_1/bias"], 0)
    z = h @ FINAL["out/kernel"][:, 0] + use_bias * FINAL["out/bias"][0]
    assert dot["z"][-1][0] == pytest.approx(z, rel=1e-4)
    assert dot["names"] == ["dense_1[0]", "dense_1[1]", "dense_1[2]"]


def test_dot_product_covers_every_unit_of_the_layer(store, tmp_path):
    rec = known_run(store, tmp_path, epochs=2)
    dot = report.dot_product(store, rec["id"], unit=2, sample=3)
    assert dot["layer"] == "dense_1" and dot["unit_ids"] == [0, 1, 2] and dot["unit"] == 2
    for k, epoch in enumerate(dot["epochs"]):
        for u in dot["unit_ids"]:
            same = explain.explain(store, rec["id"], epoch=epoch, unit=u, sample=3)
            assert dot["x"][k] == pytest.approx([t["x"] for t in same["terms"]], rel=1e-4)
            assert dot["w"][k][u] == pytest.approx([t["w"] for t in same["terms"]], rel=1e-4)
            assert dot["bias"][k][u] == pytest.approx(same["bias"], rel=1e-4, abs=1e-12)
            assert dot["z"][k][u] == pytest.approx(same["z"], rel=1e-4, abs=1e-12)


def test_dot_product_asked_for_a_unit_that_does_not_exist(store, tmp_path):
    rec = known_run(store, tmp_path)
    with pytest.raises(UsageError, match="--unit 7: layer out has 1 units"):
        report.build(store, store.select([rec["id"]]), layer="out", unit=7)


def test_report_command_writes_one_page(store, tmp_path):
    study(store, seeds=2, epochs=3)
    out = tmp_path / "page.html"
    result = CliRunner().invoke(cli, ["report", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and "open it in a browser" in result.output
    data = page_data(out)
    assert len(data["runs"]) == 4
    assert data["command"] == f"weightlab report -o {out}"
    assert len({r["colour"] for r in data["runs"]}) == 4
    assert not list(tmp_path.glob(".page.html.*"))  # the temporary file was renamed
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, not mkstemp's 0600


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        for name, value in attrs:
            if (tag, name) in (("script", "src"), ("link", "href"), ("img", "src")):
                self.refs.append((tag, value or ""))


def test_the_page_points_nowhere_off_the_page(store, tmp_path):
    study(store, seeds=1, epochs=2)
    out = tmp_path / "page.html"
    assert CliRunner().invoke(cli, ["report", "-o", str(out)]).exit_code == 0
    text = out.read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(text)
    assert parser.refs == []
    assert parser.scripts == 3  # plotly, the data, the page's own script
    assert text.count("* plotly.js v") == 1  # inlined once
    assert page_data(out)["runs"][0]["colour"].startswith("#")


def test_a_run_without_snapshots_still_renders_and_says_what_is_missing(store, tmp_path):
    records = study(store, seeds=1, epochs=2)
    # As `snapshots.every: never` leaves a run: statistics in the history, no snapshot files.
    run_dir = store.run_dir(records[0]["id"])
    shutil.rmtree(run_dir / "snapshots")
    (run_dir / "snapshots").mkdir()
    stored = json.loads((run_dir / "run.json").read_text())
    stored["snapshots"] = {"every": "never", "count": 0, "bytes": 0}
    (run_dir / "run.json").write_text(json.dumps(stored))
    config = (run_dir / "config.yaml").read_text().replace("every: epoch", "every: never")
    (run_dir / "config.yaml").write_text(config)
    store.reindex()
    out = tmp_path / "page.html"
    result = CliRunner().invoke(cli, ["report", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "missing:" in result.output and "no weight snapshots" in result.output
    data = page_data(out)
    assert any(records[0]["id"] in n and "no weight snapshots" in n for n in data["notes"])
    assert all(records[0]["id"] not in h["runs"] for h in data["histograms"].values())
    assert data["weights"]["runs"][records[0]["id"]]["epochs"] == [0, 1, 2]  # the history has them
    assert data["dot"]["run"] == records[1]["id"]


def _two_stores(tmp_path):
    from weightlab.store import Store

    a = write_run(Store(tmp_path / "a"))
    b = write_run(Store(tmp_path / "b"))
    return tmp_path / "a" / "runs" / a["id"], tmp_path / "b" / "runs" / b["id"]


def test_run_directories_select_their_store(tmp_path):
    run_a, _ = _two_stores(tmp_path)
    out = tmp_path / "one.html"
    result = CliRunner().invoke(cli, ["report", str(run_a), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert page_data(out)["runs"][0]["id"] == run_a.name


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "the selection is empty"),
        ("stores", "runs from 2 stores"),
        ("directory", "is a directory"),
        ("folder", "does not exist"),
        ("suffix", "a report is an .html file"),
        ("selector", "no run matches 'nosuch'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(store, tmp_path, case, message):
    out = tmp_path / "page.html"
    args = ["report", "-o", str(out)]
    if case == "stores":
        args += [str(p) for p in _two_stores(tmp_path)]
    elif case == "directory":
        write_run(store)
        args[-1] = str(tmp_path)
    elif case == "folder":
        write_run(store)
        args[-1] = str(tmp_path / "nope" / "page.html")
    elif case == "suffix":
        args[-1] = str(tmp_path / "page.png")
    elif case == "selector":
        write_run(store)
        args.append("nosuch")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir() if p.suffix in (".html", ".png", ".tmp")] == []


def test_report_never_imports_tensorflow(store, tmp_path, no_tensorflow):
    study(store, seeds=1, epochs=2)
    out = tmp_path / "page.html"
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab", "report", "-o", str(out)],
        env=no_tensorflow,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 1_000_000


@pytest.mark.keras
def test_run_with_report_writes_the_batchs_page(tmp_path, write_config):
    config = write_config(
        """
name: tiny-report
seed: 0
data: {kind: linear, samples: 24, features: 2}
model:
  layers: [{units: 3, activation: relu}, {units: 1}]
train: {epochs: 2, batch_size: 8}
matrix: {model.use_bias: [true, false]}
"""
    )
    out = tmp_path / "run.html"
    result = CliRunner().invoke(cli, ["run", str(config), "--quiet", "--report", str(out)])
    assert result.exit_code == 0, result.output
    data = page_data(out)
    assert len(data["runs"]) == 2 and len(data["pairs"]) == 1
    assert data["dot"] is not None and len(data["dot"]["epochs"]) == 3
    assert {len(h["runs"]) for v, h in data["histograms"].items() if v.endswith("kernel")} == {2}
    assert data["command"].startswith("weightlab report ")


def test_diverged_and_damaged_runs_still_give_a_strict_json_page(store, tmp_path):
    fine = write_run(store, seed=0, epochs=4)
    blown = write_run(
        store,
        seed=1,
        epochs=4,
        status="diverged",
        diverged_at=2,
        losses=[1.0, math.inf, math.nan, math.nan],
    )
    damaged = write_run(store, seed=2, epochs=4)
    (store.run_dir(damaged["id"]) / "run.json").write_text("{not json")
    out = tmp_path / "page.html"
    ids = [fine["id"], blown["id"], damaged["id"]]
    result = CliRunner().invoke(cli, ["report", *ids, "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = page_data_text(out)

    def refuse(name):
        raise AssertionError(f"{name} in the page's JSON")

    data = json.loads(text, parse_constant=refuse)
    statuses = {r["id"]: r["status"] for r in data["runs"]}
    assert statuses[blown["id"]] == "diverged" and statuses[damaged["id"]] == "corrupt"
    assert data["loss"]["runs"][blown["id"]]["loss"][1] is None  # infinity: no point drawn
    assert len(data["histograms"]["out/kernel"]["runs"][blown["id"]]["counts"]) == 2
    assert damaged["id"] not in data["histograms"]["out/kernel"]["runs"]


def page_data_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="weightlab-data">(.*?)</script>', text)
    assert found
    return found.group(1)


def test_run_refuses_a_bad_report_path_before_training(store, tmp_path):
    config = REPO / "configs" / "bias-vs-no-bias.yaml"
    result = CliRunner().invoke(cli, ["run", str(config), "--quiet", "--report", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "is a directory" in result.output
    assert not store.root.exists()  # nothing trained, nothing stored
