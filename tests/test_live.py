"""A run while it trains (issue 16): ls, show and compare see its committed epochs and last loss,
`show --follow` tails it until it ends; and the ids tables show select runs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import write_run

from weightlab import follow as follow_mod
from weightlab.cli import cli
from weightlab.store import last_row

LOSSES = [0.5, 0.4, 0.3, 0.2, 0.1, 0.05]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def running(store, committed: int = 2):
    """A run that is training now (its writer is this test's process): run.json as written at
    the start (0 epochs, no loss), ``committed`` epochs in its history; returns it and the rest
    of its history lines."""
    record = write_run(store, status="running", epochs=len(LOSSES), losses=LOSSES)
    run_dir = store.run_dir(record["id"])
    path = run_dir / "history.jsonl"
    lines = path.read_text().splitlines(True)
    path.write_text("".join(lines[: committed + 1]))
    stored = json.loads((run_dir / "run.json").read_text())
    stored.update(epochs_completed=0, final={}, best=None, weights=None)
    (run_dir / "run.json").write_text(json.dumps(stored))
    return record, lines[committed + 1 :]


def finish(store, run_id: str) -> None:
    path = store.run_dir(run_id) / "run.json"
    stored = json.loads(path.read_text())
    stored.update(status="completed", epochs_completed=len(LOSSES), final={"loss": LOSSES[-1]})
    path.write_text(json.dumps(stored))


def test_ls_compare_and_show_see_a_running_runs_progress(store):
    record, _ = running(store, committed=2)
    ls = invoke("ls").output
    row = next(line for line in ls.splitlines() if line.startswith(record["id"]))
    assert row.split()[-3:] == ["running", "2/6", "0.4"], ls
    (run,) = json.loads(invoke("compare", "--format", "json").output)["runs"]
    assert (run["status"], run["epochs"], run["of_epochs"], run["loss"]) == ("running", 2, 6, 0.4)
    assert run["val_loss"] == pytest.approx(0.44)
    show = invoke("show", record["id"]).output
    assert "status      running: epoch 2 of 6, loss 0.4" in show
    assert "\n    2 " in show and "\n    3 " not in show


def test_the_last_complete_history_line_counts(store, tmp_path):
    record, rest = running(store, committed=3)
    path = store.run_dir(record["id"]) / "history.jsonl"
    with path.open("a") as fh:
        fh.write(rest[0][:25])  # the writer is in the middle of epoch 4's line
    assert last_row(path)["epoch"] == 3
    assert "running: epoch 3 of 6, loss 0.3" in invoke("show", record["id"][-4:]).output
    long = tmp_path / "long.jsonl"  # rows longer than one read from the end
    long.write_text(json.dumps({"epoch": 1, "pad": "x" * 300}) + "\n")
    long.write_text(long.read_text() + json.dumps({"epoch": 2, "pad": "y" * 300}) + "\n")
    assert last_row(long, block=64)["epoch"] == 2
    assert last_row(tmp_path / "none.jsonl") is None


def test_follow_yields_each_committed_row_then_the_end(store):
    record, rest = running(store, committed=1)
    path = store.run_dir(record["id"]) / "history.jsonl"
    pending = list(rest)

    def sleep(_seconds: float) -> None:  # the run writes while the follower waits
        if pending:
            line = pending.pop(0)
            with path.open("a") as fh:  # a line in two writes: only whole lines count
                fh.write(line[:10])
                fh.flush()
                fh.write(line[10:])
        else:
            finish(store, record["id"])

    seen = [
        ([r["epoch"] for r in rows], rec["status"])
        for rows, rec in follow_mod.follow(store, record["id"], after_epoch=1, sleep=sleep)
    ]
    assert seen == [([e], "running") for e in (2, 3, 4, 5, 6)] + [([], "completed")]


def test_show_follow_prints_new_epochs_until_the_run_ends(store, monkeypatch):
    record, rest = running(store, committed=2)
    path = store.run_dir(record["id"]) / "history.jsonl"
    pending = list(rest)

    def sleep(_seconds: float) -> None:
        if pending:
            with path.open("a") as fh:
                fh.write(pending.pop(0))
        else:
            finish(store, record["id"])

    monkeypatch.setattr(follow_mod, "_sleep", sleep)
    result = invoke("show", record["id"], "--follow")
    assert result.exit_code == 0
    out = result.output
    epochs = [int(line.split()[0]) for line in out.splitlines() if line[:5].strip().isdigit()]
    assert epochs == [0, 1, 2, 3, 4, 5, 6]
    rules = [line for line in out.splitlines() if line.startswith("─")]
    assert len(rules) == 1, out  # one header: later rows continue the table
    assert "run ended: completed; 6 of 6 epochs, loss 0.05" in out
    assert out.rstrip().endswith("change since the previous epoch")


def test_show_follow_of_a_finished_run_returns_at_once(store):
    record = write_run(store)
    result = invoke("show", record["id"], "--follow")
    assert result.exit_code == 0 and "run ended" not in result.output
    bad = CliRunner().invoke(cli, ["show", record["id"], "--follow", "--format", "json"])
    assert bad.exit_code == 2 and "--follow prints a table" in bad.output


# ---- the 4 characters tables show are a selector -----------------------------------------------


def test_the_last_4_characters_of_an_id_select_the_run(store):
    a = write_run(store, seed=0)
    b = write_run(store, seed=1)
    for record in (a, b):
        result = invoke("show", record["id"][-4:], "--format", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["run"]["id"] == record["id"]
    listed = json.loads(invoke("ls", a["id"][-4:], "--format", "json").output)
    assert [r["id"] for r in listed] == [a["id"]]
    explained = invoke("explain", b["id"][-4:], "--format", "json")  # `weightlab explain 6c90`
    assert explained.exit_code == 0 and json.loads(explained.output)["run"] == b["id"]


def test_a_short_or_unknown_suffix_says_what_can_be_typed(store):
    a = write_run(store)
    result = CliRunner().invoke(cli, ["show", a["id"][-3:]])
    assert result.exit_code == 2
    assert "its last 4 as tables show them" in result.output
