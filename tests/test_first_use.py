"""What a new user meets first (issue 16): the installed command, the gallery by name, pipes,
logs, and the small messages that must be right."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CONFIGS, REPO, write_run
from rich.console import Console

from weightlab import gallery
from weightlab.cli import cli
from weightlab.progress import RunProgress

INSTALLED = Path(sys.executable).parent / "weightlab"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# ---- the installed command ---------------------------------------------------------------------


def test_the_console_script_is_main_not_the_click_group():
    """``weightlab.cli:cli`` would skip main()'s exit without TensorFlow's teardown."""
    (script,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "weightlab"]
    assert script.value == "weightlab.cli:main"
    assert INSTALLED.is_file(), "the venv has no weightlab script: pip install -e ."
    assert "from weightlab.cli import main" in INSTALLED.read_text()


TINY = """\
name: tiny
data: {kind: linear, samples: 40, features: 2}
model: {layers: [{units: 2, activation: relu}, {units: 1}]}
train: {epochs: 1, batch_size: 20}
"""


@pytest.mark.keras
def test_installed_command_leaves_promptly_after_training_and_a_closed_pipe(tmp_path):
    """`.venv/bin/weightlab run CONFIG | head`: Python's teardown of TensorFlow never runs (an
    atexit hook stays silent), the process ends soon after its last line, and the closed stdout
    is not a failed run (exit 0)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    hook = tmp_path / "hook"
    hook.mkdir()
    marker = tmp_path / "teardown-ran"
    (hook / "sitecustomize.py").write_text(
        f"import atexit\natexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(hook), "COLUMNS": "100"}
    proc = subprocess.Popen(
        [str(INSTALLED), "run", str(config), "--store", str(tmp_path / "store")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()  # the reader is gone before the summary is printed
    last, lines = None, []
    for line in proc.stderr:
        lines.append(line.decode())
        last = time.monotonic()
    code = proc.wait()
    after_last_line = time.monotonic() - last
    assert code == 0, "".join(lines)
    assert any(" completed " in line for line in lines), "".join(lines)
    assert not marker.exists(), "Python's teardown ran: the fast exit was skipped"
    assert after_last_line < 1.5, f"{after_last_line:.2f} s from the last line to the exit"


def test_read_command_into_a_closed_pipe_exits_0(store, no_tensorflow):
    write_run(store)
    for args in (["ls"], ["compare", "--format", "json"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "weightlab", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=no_tensorflow,
        )
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait() == 0 and err == "", (args, err)


# ---- the gallery by name, from any folder ------------------------------------------------------


def test_gallery_configs_run_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    for name in ("depth", "depth.yaml", "configs/depth.yaml"):
        result = invoke("validate", name)
        assert result.exit_code == 0, result.output
        assert "valid; 10 runs: 2 model.kernel_initializer × 5 seeds" in result.output
    result = invoke("run", "depth", "--dry-run")
    assert result.exit_code == 0 and "depth: 10 runs" in result.output
    result = CliRunner().invoke(cli, ["validate", "dpeth"])
    assert result.exit_code == 2
    assert "no example config has that name; did you mean 'depth'?" in result.output


def test_a_file_of_that_name_wins_over_the_gallery(tmp_path, monkeypatch, write_config):
    monkeypatch.chdir(tmp_path)
    write_config("name: mine\nmodel: {layers: [1]}\n", name="depth.yaml")
    result = invoke("validate", "depth.yaml")
    assert result.exit_code == 0 and "1 run" in result.output
    assert gallery.resolve("depth.yaml") == ("depth.yaml", False)


def test_the_wheel_ships_the_gallery_and_the_fast_entry_point(tmp_path):
    """What `pip install weightlab` gets: every configs/*.yaml as package data."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("weightlab", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "dist"), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("weightlab-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("weightlab/configs/"))
    assert shipped == sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert "weightlab = weightlab.cli:main" in entry


# ---- one rule for missing folders --------------------------------------------------------------


def test_init_creates_a_missing_folder_as_plot_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("init", "experiments/first.yaml")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "experiments" / "first.yaml").is_file()
    assert invoke("validate", "experiments/first.yaml").exit_code == 0


def test_init_template_points_at_what_a_pip_user_has():
    text = gallery.starter("weightlab.yaml")
    assert "README" not in text
    assert "weightlab schema" in text and "weightlab configs" in text


# ---- progress in a log ---------------------------------------------------------------------------


def test_progress_in_a_log_is_neither_wrapped_nor_padded():
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=False, no_color=True)
    long_cell = {"model.kernel_initializer": {"name": "random_normal", "stddev": 0.01}}
    with RunProgress(console) as progress:
        progress.on_event(
            {
                "type": "batch_start",
                "batch": "261129-084421-ab0f",
                "total": 1,
                "describe": "6 runs: 6 model.kernel_initializer × 1 seed, with a long tail",
            }
        )
        progress.on_event(
            {
                "type": "run_end",
                "run": {
                    "index": 0,
                    "id": "261129-084421-5f3a",
                    "experiment": "initializers",
                    "cell": long_cell,
                    "status": "completed",
                    "final": {"loss": 0.0123},
                    "timing": {"total_seconds": 8.25},
                },
            }
        )
    lines = [line for line in buf.getvalue().splitlines() if line]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Training 6 runs")
    assert lines[0].endswith("(batch 261129-084421-ab0f)")
    assert lines[1].endswith("loss 0.0123  (8.2 s)") and len(lines[1]) > 80
    assert all(line == line.rstrip() for line in lines)


# ---- small messages ------------------------------------------------------------------------------


def test_validate_reports_every_problem_of_the_file(write_config):
    path = write_config(
        "model:\n  use_bias: yes\n  layers:\n    - {units: 8}\n"
        "train:\n  epochs: 3\nexpect:\n  stauts: completed\n"
    )
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert "2 problems in the config" in result.output
    assert f"{path}:2: model.use_bias: expected true or false" in result.output
    assert f"{path}:8: expect.stauts: 'stauts' is not a run field" in result.output


def test_compare_of_one_run_says_1_run(store):
    write_run(store)
    output = invoke("compare").output
    assert output.startswith("1 run\n")


def test_sort_by_error_lists_each_column_once(store):
    write_run(store, seed=0, cell={"model.use_bias": True})
    write_run(store, seed=1, cell={"model.use_bias": False}, use_bias=False)
    result = CliRunner().invoke(cli, ["compare", "b1", "--sort-by", "sed"])
    assert result.exit_code == 2
    listed = result.output.split("(one of: ", 1)[1].split(")")[0].split(", ")
    assert "seed" in listed and len(listed) == len(set(listed)), listed


def test_configs_json_paths_are_real_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = json.loads(invoke("configs", "--format", "json").output)
    assert all(Path(e["path"]).is_file() for e in found)
