"""Getting started: `init`, `configs`, shell completion, an example in every command's help."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import CONFIGS, write_run

from weightlab import gallery
from weightlab.cli import cli
from weightlab.config import load_experiment


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_help_has_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    examples = result.output.split("Example", 1)[-1]
    assert "Example" in result.output and f"weightlab {command}" in examples


def test_init_writes_a_valid_commented_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("init")
    assert result.exit_code == 0
    assert result.output == "✓ wrote weightlab.yaml; try: weightlab run weightlab.yaml\n"
    text = (tmp_path / "weightlab.yaml").read_text()
    assert text.startswith("# A weightlab experiment.") and text.count("#") > 10
    experiment = load_experiment(tmp_path / "weightlab.yaml")
    assert experiment.name == "weightlab" and len(experiment.runs) == 2
    assert [str(e) for e in experiment.expect] == ["status = completed", "final.loss <= 100"]


def test_init_never_overwrites_without_force(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("precious\n")
    result = CliRunner().invoke(cli, ["init", str(path)])
    assert result.exit_code == 2
    assert "already exists; choose another PATH or add --force" in result.output
    assert path.read_text() == "precious\n"
    assert invoke("init", str(path), "--force").exit_code == 0
    assert load_experiment(path).name == "mine"


def test_configs_lists_every_example():
    result = invoke("configs", "--format", "json")
    found = json.loads(result.output)
    assert [e["name"] for e in found] == [p.stem for p in sorted(CONFIGS.glob("*.yaml"))]
    assert [e["path"] for e in found] == [str(p) for p in sorted(CONFIGS.glob("*.yaml"))]
    for e in found:
        assert e["summary"] and re.match(r"\d+ runs?\b", e["runs"])
    table = invoke("configs").output
    assert "\ndepth " in table and "example configs" in table and "weightlab run NAME" in table


def test_configs_name_prints_the_file_and_suggests():
    assert invoke("configs", "depth").output == (CONFIGS / "depth.yaml").read_text()
    result = CliRunner().invoke(cli, ["configs", "dpeth"])
    assert result.exit_code == 2 and "did you mean 'depth'?" in result.output


def test_summary_is_the_first_comment_paragraph():
    assert gallery.summary("# one\n# two\n#\n# three\nname: x\n") == "one two"
    assert gallery.summary("name: x\n") == ""


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F _weightlab_completion weightlab"),
     ("zsh", "#compdef weightlab"),
     ("fish", "complete --no-files --command weightlab")],
)  # fmt: skip
def test_completion_scripts(shell, marker, no_tensorflow):
    env = {**no_tensorflow, "_WEIGHTLAB_COMPLETE": f"{shell}_source"}
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and marker in proc.stdout, proc.stderr


def complete(env: dict[str, str], *words: str) -> str:
    """What bash completion offers after ``weightlab WORDS...`` (click's bash_complete protocol)."""
    env = {
        **env,
        "_WEIGHTLAB_COMPLETE": "bash_complete",
        "COMP_WORDS": " ".join(["weightlab", *words]),
        "COMP_CWORD": str(len(words)),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab"], env=env, capture_output=True, text=True, timeout=60
    )
    return proc.stdout


def test_completion_completes_commands_and_options(no_tensorflow):
    assert "plain,configs" in complete(no_tensorflow, "con")
    assert "plain,compare" in complete(no_tensorflow, "com")
    assert "plain,--smoke" in complete(no_tensorflow, "run", "x.yaml", "--sm")


def test_completion_of_run_selectors(no_tensorflow, store):
    a = write_run(store, experiment="alpha", batch="b1")
    write_run(store, experiment="beta", batch="b2")
    assert complete(no_tensorflow, "show", "al").split() == ["plain,alpha"]
    assert "plain,latest" in complete(no_tensorflow, "compare", "l")
    assert f"plain,{a['id']}" in complete(no_tensorflow, "ls", a["id"][:13])


def test_init_never_imports_tensorflow(no_tensorflow, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab", "init"],
        env=no_tensorflow,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
