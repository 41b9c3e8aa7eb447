"""`expect:` in a config, `run --smoke` and `run --format md`: parsing, located errors, checks.

Only the last two tests train (one in-process, one in a subprocess for the real exit code).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import CONFIGS, REPO, write_run

from weightlab import expect, render, yamlio
from weightlab.cli import cli
from weightlab.config import cut_for_smoke, load_experiment
from weightlab.errors import ConfigError
from weightlab.store import new_record

BASE = "model: {layers: [1]}\n"


def parsed(write_config, text: str):
    return load_experiment(write_config(BASE + text)).expect


def test_forms_of_an_expectation(write_config):
    found = parsed(
        write_config,
        "expect:\n"
        "  status: {in: [completed, diverged]}\n"
        "  final.loss: {max: 0.05}\n"
        "  final: {val_loss: {min: 0, max: 1}}\n"
        "  diverged: false\n",
    )
    assert [str(e) for e in found] == [
        "status in [completed, diverged]",
        "final.loss <= 0.05",
        "final.val_loss >= 0",
        "final.val_loss <= 1",
        "diverged = false",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("expect: completed\n", "5: expect: expected a mapping of run fields"),
        ("expect:\n  stauts: completed\n", "6: expect.stauts: 'stauts' is not a run field; "),
        ("expect:\n  status: complete\n", "did you mean 'completed'?"),
        ("expect:\n  final.loss: {mxa: 1}\n", "6: expect.final.loss: unknown condition 'mxa'"),
        (
            "expect:\n  final.loss: {max: low}\n",
            "expect.final.loss.max: expected a number; got low",
        ),
        ("expect:\n  diverged: 0\n", "diverged is true or false; got 0"),
        ("expect:\n  final.loss: [1, 2]\n", "a list needs 'in': {in: [1, 2]}"),
        (
            "expect:\n  final:\n    loss: {max: x}\n",
            "7: expect.final.loss.max: expected a number; got x",
        ),
        ("expect:\n  status: {in: []}\n", "expect.status.in: expected a non-empty list"),
    ],
)
def test_located_errors(write_config, text, message):
    path = write_config(BASE + "train: {epochs: 1}\nseed: 1\nname: x\n" + text)
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    assert message in str(e.value)


def test_override_sets_an_expectation(write_config):
    path = write_config(BASE)
    exp = load_experiment(path, ["expect.final.loss={max: 0.5}", "expect.status=completed"])
    assert [str(e) for e in exp.expect] == ["final.loss <= 0.5", "status = completed"]
    with pytest.raises(
        ConfigError,
        match="override 'expect.final.loss.max=y': expect.final.loss.max: expected a number; got y",
    ):
        load_experiment(path, ["expect.final.loss.max=y"])


def test_every_root_is_a_run_record_field():
    record = new_record(
        experiment="e", batch="b", index=0, seed=0, cell={}, epochs=1,
        snapshots_every="epoch", data={}, versions={},
    )  # fmt: skip
    assert set(expect.ROOTS) - set(expect.DERIVED) <= set(record)


def _check(store, text, **run):
    write_run(store, **run)
    record = store.get("latest")
    items = expect.parse(yamlio.load(text, "t")[0], lambda p, m: pytest.fail(m))
    return expect.check(items, [record])


def test_check_met_and_unmet(store):
    report = _check(
        store,
        "{status: completed, diverged: false, final.loss: {max: 0.5}, epochs_completed: 3}",
        losses=[1.0, 0.5, 0.25],
    )
    assert report["met"] and report["runs"] == 1 and not report["unmet"]
    report = _check(
        store,
        "{final.loss: {max: 0.01}, final.acc: {min: 0.9}, final.mea: {max: 1}}",
        losses=[1, 1, 0.2],
    )
    assert not report["met"]
    assert [(u["key"], u["expected"], u["actual"]) for u in report["unmet"]] == [
        ("final.loss", "<= 0.01", "0.2"),
        ("final.acc", ">= 0.9", "missing (the run has: loss, mae)"),
        ("final.mea", "<= 1", "missing; did you mean 'mae'? (the run has: loss, mae)"),
    ]


def test_diverged_run_fails_status_and_nan_fails_bounds(store):
    report = _check(
        store,
        "{status: completed, diverged: false, final.loss: {max: 1e9}}",
        status="diverged",
        diverged_at=2,
        losses=[1.0, float("nan"), float("nan")],
    )
    assert [u["key"] for u in report["unmet"]] == ["status", "diverged", "final.loss"]
    assert report["unmet"][2]["actual"] == "nan"


def test_true_is_not_one():
    e = expect.Expectation("epochs_completed", "=", 1)
    assert e.holds(1) and e.holds(1.0) and not e.holds(True)


def test_smoke_cuts_epochs_and_samples_of_every_run():
    exp = load_experiment(CONFIGS / "initializers.yaml", ["train.epochs=1"])
    cut_for_smoke(exp)
    assert exp.smoke and "smoke: ≤ 2 epochs, ≤ 256 samples" in exp.describe()
    assert {(s.config["train"]["epochs"], s.config["data"]["samples"]) for s in exp.runs} == {
        (1, 256)
    }
    axis = load_experiment(
        CONFIGS / "bias-vs-no-bias.yaml", matrix=["train.epochs=1,50", "data.samples=100,1000"]
    )
    cut_for_smoke(axis)
    cells = sorted((s.cell["train.epochs"], s.cell["data.samples"]) for s in axis.runs)
    assert set(cells) == {(1, 100), (1, 256), (2, 100), (2, 256)}, "cells show what trained"
    iris = load_experiment(CONFIGS / "bias-vs-no-bias.yaml", ["data={kind: sklearn, name: iris}"])
    cut_for_smoke(iris)
    assert {s.config["data"]["samples"] for s in iris.runs} == {256}


def test_markdown_summary_golden(store):
    write_run(store, batch="b", cell={"model.use_bias": True}, losses=[1.0, 0.5, 0.02])
    write_run(store, batch="b", cell={"model.use_bias": False}, use_bias=False)
    from weightlab import analysis

    records = store.select(["b"])
    result = analysis.side_by_side(records)
    items = expect.parse({"final.loss": {"max": 0.05}}, lambda p, m: pytest.fail(m))
    report = expect.check(items, records)
    ids = [r["id"] for r in result["runs"]]
    text = render.markdown_summary(result, "exp: 2 runs", report)
    runs_table = "\n".join(render.markdown_table(render.runs_section(result)))  # compare's
    assert text == (
        f"### ❌ exp: 2 runs\n\n{runs_table}\n"
        "- use_bias=false ends with 16.7× the loss of use_bias=true (0.3333 vs 0.02)\n\n"
        "**1 unmet expectation(s)**\n\n"
        "| run | setting | key | expected | actual |\n|---|---|---|---|---|\n"
        f"| {ids[0]} | use_bias=false | final.loss | <= 0.05 | 0.333333 |\n"
    )
    assert runs_table.startswith("| run | use_bias | status | epochs | loss |")


@pytest.mark.keras
def test_run_reports_expectations_in_table_json_and_md(write_config, store_dir):
    path = write_config(
        "data: {samples: 40}\nmodel: {layers: [1]}\ntrain: {epochs: 5}\n"
        "expect: {status: completed, epochs_completed: 2, final.loss: {max: 1e9}}\n"
    )
    result = CliRunner().invoke(cli, ["run", str(path), "--smoke", "-q"])
    assert result.exit_code == 0, result.output
    assert "✓ expect: 3 conditions met by every run (1)" in result.output
    result = CliRunner().invoke(
        cli, ["run", str(path), "--smoke", "-q", "--format", "json", "expect.final.loss.max=0"]
    )
    assert result.exit_code == 1
    (record,) = json.loads(result.stdout)
    assert [u["key"] for u in record["expect"]] == ["final.loss"]
    assert record["source"]["smoke"] is True and record["epochs_completed"] == 2
    result = CliRunner().invoke(cli, ["run", str(path), "--smoke", "-q", "--format", "md"])
    assert result.exit_code == 0 and result.stdout.startswith("### ✅ exp: 1 run (smoke")
    assert "**Expectations met** by every run (1): `status = completed`" in result.stdout


@pytest.mark.keras
def test_smoke_in_a_fresh_process_exits_1_on_an_unmet_expect(write_config, store_dir):
    """The real command, as CI runs it (its time is measured by benchmarks/bench_smoke.py)."""
    path = write_config(
        "data: {samples: 5000, features: 2}\n"
        "model: {layers: [{units: 4, activation: relu}, 1]}\n"
        "train: {epochs: 500}\n"
        "expect: {status: completed, final.loss: {max: 0.0}}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab", "run", str(path), "--smoke", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "✗ expect: 1 unmet (of 2 conditions × 1 run)" in proc.stdout
    assert "final.loss = " in proc.stdout and "expected <= 0" in proc.stdout
    (run_dir,) = (store_dir / "runs").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert (
        run["epochs_completed"] == 2
        and run["data"]["train_samples"] + run["data"]["val_samples"] == 256
    )
