"""Shared fixtures. Every test gets its own empty run store; nothing touches ./weightlab-runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


@pytest.fixture(autouse=True)
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point WEIGHTLAB_STORE at a fresh temporary directory for every test."""
    store = tmp_path / "store"
    monkeypatch.setenv("WEIGHTLAB_STORE", str(store))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    return store


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a YAML config text to a file and return its path."""

    def write(text: str, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Run the TensorFlow-free tests first: fast feedback, and one TensorFlow import at the end.
    items.sort(key=lambda item: item.get_closest_marker("keras") is not None)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
