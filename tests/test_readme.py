"""The README stays true: every config key, every command, the two commands and CI's entry point."""

from __future__ import annotations

import pytest
from conftest import REPO

from weightlab import config
from weightlab.cli import cli

README = (REPO / "README.md").read_text(encoding="utf-8")


def schema_keys() -> list[str]:
    keys = list(config.TOP)
    keys += [f"data.{k}" for k in config.DATA_COMMON]
    for fields in config.DATA_KIND_FIELDS.values():
        keys += [f"data.{k}" for k in fields if f"data.{k}" not in keys]
    keys += [f"model.{k}" for k in config.MODEL]
    keys += [f"model.layers.N.{k}" for k in config.LAYER]
    keys += [f"train.{k}" for k in config.TRAIN]
    keys += [f"snapshots.{k}" for k in config.SNAPSHOTS]
    return keys


@pytest.mark.parametrize("key", schema_keys())
def test_every_config_key_is_documented(key):
    # Per-layer keys share one row: `model.layers.N.use_bias`, `.kernel_initializer`, ...
    short = key.rsplit(".", 1)[-1]
    layer_row = key.startswith("model.layers.N.") and f"`.{short}`" in README
    assert f"`{key}`" in README or layer_row, key


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_a_readme_section(command):
    assert f"### `weightlab {command}" in README


def test_the_two_commands_and_ci():
    head = README.split("## ", 1)[0]
    assert "make run" in head and "make test" in head
    makefile = (REPO / "Makefile").read_text()
    assert "\nrun: venv" in makefile and "\ntest: venv" in makefile
    assert "make test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_is_in_the_gallery(path):
    assert f"`configs/{path.name}`" in README
