"""The docs site builds, and its generated references are current.

docs/commands.md holds every command's ``--help`` and docs/config.md the config field tables,
both written by cog from the code (``python -m cogapp -r docs/config.md docs/commands.md``);
``cog --check`` fails when the code changed and the pages were not regenerated. The site is built
with ``mkdocs build --strict``, as ``make docs`` does: a broken link or anchor, a page missing from
the nav or an API docstring mkdocstrings cannot render is an error. mkdocs, the Material theme,
mkdocstrings and cog come with the ``docs`` extra, which ``dev`` includes: without them these
tests fail, they do not skip.
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

GENERATED = ["docs/config.md", "docs/commands.md"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_the_generated_references_are_current():
    result = run("cogapp", "--check", *GENERATED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    result = run("mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(site))
    assert result.returncode == 0, result.stdout + result.stderr
    commands = (site / "commands" / "index.html").read_text(encoding="utf-8")
    assert "$ weightlab run --help" in commands and "Usage: weightlab run" in commands
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "open_store" in api and "trajectory" in api  # rendered from weightlab/api.py
    assert (site / "images" / "report.png").is_file()
