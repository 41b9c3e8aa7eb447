"""The command line without TensorFlow: help, exit codes, read commands, and the no-TF rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CONFIGS, write_run

from weightlab import render
from weightlab.cli import cli

COMMANDS = ["run", "validate", "ls", "show", "compare", "explain", "plot", "export", "reindex"]
COMMANDS += ["init", "configs", "schema", "check", "resume"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    doc = cli.commands[command].help
    assert doc and doc.strip().split("\n")[0].endswith(".")
    assert doc.strip().split("\n")[0] in result.output.replace("\n  ", " ")


def test_top_level_help_lists_commands():
    result = invoke("--help")
    for command in COMMANDS:
        assert command in result.output


def test_validate_ok():
    result = invoke("validate", str(CONFIGS / "bias-vs-no-bias.yaml"))
    assert result.exit_code == 0
    assert "valid; 10 runs: 2 model.use_bias × 5 seeds" in result.output


def test_validate_error_exit_2(write_config):
    path = write_config("model:\n  layers:\n    - {units: 8}\ntrain:\n  epochs: 0\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert f"{path}:5: train.epochs: expected an integer in [1, 100000]; got 0" in result.output
    assert "Traceback" not in result.output


def test_run_with_bad_config_exits_2_and_writes_nothing(write_config, store_dir):
    path = write_config(
        "model:\n  layers: [{units: 1}]\ntrain: {optimizer: {name: sgd}, epoch: 3}\n"
    )
    result = invoke("run", str(path))
    assert result.exit_code == 2
    assert "train.epoch: unknown key; did you mean 'epochs'?" in result.output
    assert not store_dir.exists()


def test_run_with_bad_override_exits_2(store_dir):
    result = invoke("run", str(CONFIGS / "bias-vs-no-bias.yaml"), "train.epochs=many")
    assert result.exit_code == 2
    assert (
        "override 'train.epochs=many': train.epochs: expected an integer in [1, 100000]; "
        "got a string, 'many'"
    ) in result.output
    assert not store_dir.exists()


def test_missing_config_file_exit_2():
    result = invoke("validate", "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml: config file not found" in result.output


def test_ls_empty_store():
    result = invoke("ls")
    assert result.exit_code == 0
    assert "No runs in" in result.output


def test_ls_table_and_json(store):
    a = write_run(store, experiment="alpha", cell={"model.use_bias": True})
    b = write_run(store, experiment="beta", seed=3)
    result = invoke("ls")
    assert result.exit_code == 0
    assert a["id"] in result.output and b["id"] in result.output
    assert "use_bias=true" in result.output
    data = json.loads(invoke("ls", "--format", "json").output)
    assert [r["id"] for r in data] == [b["id"], a["id"]]
    assert data[0]["seed"] == 3 and "config" not in data[0]


def test_ls_unknown_selector_exit_2(store):
    write_run(store, experiment="alpha")
    result = invoke("ls", "alpah")
    assert result.exit_code == 2
    assert "no run matches 'alpah'; did you mean 'alpha'?" in result.output


def test_show_table_and_json(store):
    rec = write_run(store, epochs=4)
    result = invoke("show", rec["id"])
    assert result.exit_code == 0, result.output
    assert rec["id"] in result.output
    for header in ("epoch", "loss", "dist", "change", "dense_1", "|W|", "|bias|"):
        assert header in result.output
    data = json.loads(invoke("show", "latest", "--format", "json").output)
    assert data["run"]["id"] == rec["id"]
    assert [r["epoch"] for r in data["history"]] == [0, 1, 2, 3, 4]
    assert data["config"]["model"]["layers"][0]["name"] == "dense_1"
    thin = invoke("show", "latest", "--every", "3").output
    rows = [line.split()[0] for line in thin.splitlines() if line.strip()[:1].isdigit()]
    assert rows[-3:] == ["0", "3", "4"]


def test_reindex(store):
    write_run(store)
    write_run(store, seed=1)
    store.index_path.unlink()
    result = invoke("reindex")
    assert result.exit_code == 0
    assert "indexed 2 runs" in result.output


# ---- the rule that matters most: reading never imports TensorFlow --------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["ls"],
        ["ls", "--format", "json"],
        ["show", "latest"],
        ["compare"],
        ["compare", "--format", "json"],
        ["compare", "--by", "model.use_bias", "--per-epoch", "--every", "2", "--format", "csv"],
        ["compare", "--where", "use_bias=false", "--where", "status=completed", "--format", "md"],
        ["compare", "--sort-by=-loss", "--threshold", "0.5", "--all-keys"],
        ["reindex"],
        ["check"],
        ["check", "--repair", "--format", "json"],
        ["validate", str(CONFIGS / "bias-vs-no-bias.yaml")],
        ["validate", str(CONFIGS / "initializers.yaml")],
        ["explain", "latest"],
        ["explain", "latest", "--layer", "out", "--format", "json"],
        ["plot", "-o", "{tmp}/loss.png"],
        ["plot", "--what", "weights", "-o", "{tmp}/w.svg"],
        ["plot", "--what", "biases", "-o", "{tmp}/b.png"],
        ["plot", "--what", "distance", "-o", "{tmp}/d.png"],
        ["export", "--to", "csv", "{tmp}/csv"],
        ["export", "--to", "tensorboard", "{tmp}/tb"],
        ["configs"],
        ["configs", "depth"],
        ["schema"],
    ],
)
def test_read_commands_never_import_tensorflow(args, no_tensorflow, store, tmp_path):
    # One run as training writes it now (epochs.npy), one as older versions did (.npz files).
    write_run(store, batch="b", cell={"model.use_bias": True})
    write_run(store, batch="b", cell={"model.use_bias": False}, use_bias=False, layout="npz")
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab", *[a.format(tmp=tmp_path) for a in args]],
        env=no_tensorflow,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "must not be imported" not in proc.stderr


@pytest.mark.parametrize(
    "status, message",
    [
        ("completed", "cannot be resumed: it completed all its epochs"),
        ("interrupted", "cannot be resumed: it has no resume.npz"),
    ],
)
def test_resume_refusals_do_not_import_tensorflow(no_tensorflow, store, status, message):
    write_run(store, status=status)
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab", "resume", "latest"],
        env=no_tensorflow,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_fake_tensorflow_really_blocks(no_tensorflow):
    proc = subprocess.run(
        [sys.executable, "-c", "import weightlab.training"],
        env=no_tensorflow,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "must not be imported" in proc.stderr


def test_run_config_error_does_not_import_tensorflow(no_tensorflow, write_config):
    path = write_config("model: {layers: [{units: 0}]}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab", "run", str(path)],
        env=no_tensorflow,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "model.layers.0.units: expected an integer >= 1; got 0" in proc.stderr


def test_module_entry_point(no_tensorflow):
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab", "--version"],
        env=no_tensorflow,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "weightlab, version" in proc.stdout


def test_store_option_beats_environment(tmp_path, store):
    other = tmp_path / "other"
    from weightlab.store import Store

    write_run(Store(other), experiment="elsewhere")
    out = invoke("ls", "--store", str(other)).output
    assert "elsewhere" in out
    assert "No runs" in invoke("ls").output
    assert Path(other / "index.sqlite").exists()


@pytest.mark.parametrize("width", [80, 100, 140])
def test_ls_fits_the_terminal(store, width):
    from rich.console import Console

    recs = [
        write_run(
            store,
            experiment="a-rather-long-experiment-name",
            seed=s,
            cell={"model.kernel_initializer": {"name": "random_normal", "stddev": 20.0}},
        )
        for s in range(2)
    ]
    recs.append(
        write_run(
            store, experiment="short", cell={"model.use_bias": False}, losses=[0.5, 0.25, 0.00857]
        )
    )
    console = Console(width=width, record=True, color_system=None)
    console.print(render.runs_list(store.select(), "store", width))
    lines = console.export_text().splitlines()
    assert all(len(line.rstrip()) <= width for line in lines)
    text = "\n".join(lines)
    for r in recs:
        assert r["id"] in text, "ids are never cut: people type them"
    assert "0.00857" in text and "completed" in text
    header = next(line for line in lines if line.startswith("id"))
    assert "seed" in header  # seeds differ, so the column stays
