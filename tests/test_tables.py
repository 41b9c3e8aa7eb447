"""Tables at 80 columns (issue 16): the part of a value that tells rows apart stays visible,
what every row shares is said once, and the columns the docs promise stay.

Goldens in tests/goldens/tables-*.txt, reviewed by hand; regenerate with
``WEIGHTLAB_UPDATE_GOLDENS=1 pytest tests/test_tables.py`` and review the diff.
"""

from __future__ import annotations

import io
import itertools
import json
import os

import pytest
from conftest import REPO, write_run
from rich.console import Console

from weightlab import analysis, render

GOLDENS = REPO / "tests" / "goldens"
INITIALIZERS = [
    "glorot_uniform",
    "he_normal",
    {"name": "random_normal", "stddev": 0.01},
    "zeros",
    {"name": "constant", "value": 0.1},
    {"name": "random_normal", "stddev": 20.0},
]
RATES = [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0]


@pytest.fixture(autouse=True)
def fixed_ids(monkeypatch):
    counter = itertools.count(1)
    monkeypatch.setattr("weightlab.store.new_id", lambda: f"261129-100000-{next(counter):04d}")


def patch(store, record, **fields):
    path = store.run_dir(record["id"]) / "run.json"
    stored = json.loads(path.read_text())
    stored.update(fields)
    path.write_text(json.dumps(stored))


def initializers(store, batch="init"):
    """configs/initializers.yaml's six runs, with numbers like the docs'; the last one blew up."""
    for i, init in enumerate(INITIALIZERS):
        diverged = i == len(INITIALIZERS) - 1
        r = write_run(
            store,
            experiment="initializers",
            batch=batch,
            cell={"model.kernel_initializer": init},
            epochs=30,
            losses=[0.2 / (1 + e) + 0.01 * i for e in range(30)],
            diverged_at=1 if diverged else None,
            status="diverged" if diverged else "completed",
        )
        final = {"loss": 0.0159 * (i + 1), "val_loss": 0.0155 * (i + 1)}
        patch(store, r, final=final, best={"loss": 0.0158 * (i + 1), "epoch": 27})


def learning_rates(store, metric="accuracy"):
    """configs/learning-rate.yaml's six runs, losses from 0.0563 to 5,630, with ``metric``."""
    for i, lr in enumerate(RATES):
        r = write_run(
            store,
            experiment="learning-rate",
            batch="lr",
            epochs=30,
            cell={"train.optimizer": {"name": "sgd", "learning_rate": lr}},
        )
        final = {"loss": 5.63 * 10 ** (i - 2), "val_loss": 5.46 * 10 ** (i - 2), metric: 0.9}
        patch(store, r, final=final, best={"loss": 5.5 * 10 ** (i - 3), "epoch": 4})


def text(renderable, width=80) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def check_golden(name: str, got: str) -> None:
    path = GOLDENS / f"tables-{name}.txt"
    if os.environ.get("WEIGHTLAB_UPDATE_GOLDENS"):
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8")
    assert max(len(line) for line in got.splitlines()) <= 80


def compared(store, *selectors, **kwargs):
    records = store.verified(store.select(list(selectors)))
    return text(render.compare_table(analysis.compare(store, records, **kwargs)))


def test_initializers_at_80_columns_keep_stddev_visible(store):
    initializers(store)
    got = compared(store, "init")
    check_golden("initializers", got)
    runs = got.split("\n\n")[0]
    assert "(sd=0.01)" in runs and "(sd=20)" in runs and "sd = stddev" in runs
    assert "best@ep" in runs and "val_loss" in runs and "not shown" not in got


def test_learning_rates_show_lr_not_sgd_and_keep_promised_columns(store):
    learning_rates(store)
    got = compared(store, "lr")
    check_golden("learning-rate", got)
    head = got.splitlines()[1].split()
    assert head[:3] == ["run", "lr", "status"]
    assert "best@ep" in head and "accuracy" in head and "not shown" not in got
    assert "lr = optimizer sgd(learning_rate=…)" in " ".join(got.split())
    assert "sgd(learning_…" not in got


def test_seed_groups_and_pairs_name_the_setting_once(store):
    for seed in range(3):
        for init in ("he_normal", {"name": "random_normal", "stddev": 0.01}):
            write_run(store, batch="s", seed=seed, cell={"model.kernel_initializer": init})
    got = compared(store, "s", by="model.kernel_initializer")
    check_golden("seed-groups", got)
    groups = got.split("Seed groups")[1].split("\n\n")[0]
    assert "kernel_initial…" not in got and "kernel_initializer=" not in groups
    assert groups.splitlines()[1].split()[0] == "kernel_init"


def test_ls_of_a_mixed_store_shows_the_values(store):
    initializers(store)
    learning_rates(store)
    got = text(render.runs_list(store.select(), "weightlab-runs", 80))
    check_golden("ls-mixed", got)
    assert "kernel_init=…" not in got and "lr=0.0001" in got and "ki=he_normal" in got
    assert "ki = kernel_initializer" in " ".join(got.split())


@pytest.mark.parametrize(
    ("values", "width", "want"),
    [
        (["random_normal(stddev=0.01)", "random_normal(stddev=20)"], 9, ["0.01", "20"]),
        (["sgd(learning_rate=0.1)", "adam(learning_rate=1)"], 13, ["sgd(lr=0.1)", "adam(lr=1)"]),
        (["zeros", "constant(value=0.1)", "random_normal(stddev=20)"], 12, None),
    ],
)
def test_fitting_keeps_the_differing_part(values, width, want):
    col = render.setting_col("x", values)
    table, _ = render.fitted_table([col], width)
    cells = table.cols[0].cells
    if want is not None:
        assert cells == want
    assert all(len(c) <= width for c in cells)
    # every value stays distinct after fitting: nothing that tells rows apart is cut
    assert len(set(cells)) == len(values)
