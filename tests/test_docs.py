"""The docs stay true: every config key, every command, the gallery, the two commands and CI's
entry point, and the README's links into docs/.

The manual lives in docs/ (the mkdocs site, see tests/test_docs_site.py); the README is its short
front page.
"""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from weightlab import config
from weightlab.cli import cli

DOCS = REPO / "docs"
README = (REPO / "README.md").read_text(encoding="utf-8")
CONFIG_PAGE = (DOCS / "config.md").read_text(encoding="utf-8")
COMMANDS_PAGE = (DOCS / "commands.md").read_text(encoding="utf-8")
GALLERY_PAGE = (DOCS / "gallery.md").read_text(encoding="utf-8")


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
    assert f"| `{key}` |" in CONFIG_PAGE, key


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_a_section(command):
    assert f"\n## `weightlab {command}" in COMMANDS_PAGE
    assert f"<!-- [[[cog help({command!r}) ]]] -->" in COMMANDS_PAGE  # and its --help


def test_the_two_commands_and_ci():
    head = README.split("## ", 1)[0]
    assert "make run" in head and "make test" in head
    makefile = (REPO / "Makefile").read_text()
    assert "\nrun: venv" in makefile and "\ntest: venv" in makefile
    assert "make test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_is_in_the_gallery(path):
    assert f"| `configs/{path.name}` |" in GALLERY_PAGE


def test_the_readme_is_a_front_page():
    assert len(README.splitlines()) <= 250


def slugs(markdown: str) -> set[str]:
    """The anchors of a page's headings, as mkdocs' toc makes them (or given as `{ #id }`)."""
    out, fence = set(), False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fence = not fence
        if fence or not line.startswith("#"):
            continue
        given = re.search(r"\{ *#([\w-]+) *\}\s*$", line)
        text = line.lstrip("#").strip()
        out.add(
            given.group(1) if given else re.sub(r"[^\w\s-]", "", text.lower()).replace(" ", "-")
        )
    return out


README_LINKS = re.findall(r"\]\(([^)\s]+)\)", README)


@pytest.mark.parametrize("link", [x for x in README_LINKS if "://" not in x])
def test_the_readme_links_into_the_docs_resolve(link):
    path, _, anchor = link.partition("#")
    target = REPO / path
    assert target.is_file(), link
    if anchor:
        assert anchor in slugs(target.read_text(encoding="utf-8")), link
