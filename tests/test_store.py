"""The run store contract without TensorFlow: layout, index, selectors, reindex, JSON validity."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest
from conftest import write_run

from weightlab import jsonio
from weightlab.errors import RunNotFound
from weightlab.store import Store, new_id, resolve_root


def test_store_location_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("WEIGHTLAB_STORE", str(tmp_path / "env"))
    assert resolve_root(tmp_path / "opt") == tmp_path / "opt"
    assert resolve_root(None) == tmp_path / "env"
    monkeypatch.delenv("WEIGHTLAB_STORE")
    assert str(resolve_root(None)) == "weightlab-runs"


def test_ids_are_short_sortable_and_unique():
    ids = {new_id() for _ in range(200)}
    assert len(ids) > 150  # 4 random hex digits per second
    for i in ids:
        date, clock, tail = i.split("-")
        assert len(date) == 6 and len(clock) == 6 and len(tail) == 4


SNAPSHOT_FILES = {
    "epochs": ["epochs.crc32", "epochs.npy", "layout.json"],
    "npz": ["epoch-0000.npz", "epoch-0001.npz", "epoch-0002.npz"],
}


@pytest.mark.both_layouts
def test_run_directory_layout(store, layout):
    rec = write_run(store, epochs=2, layout=layout)
    d = store.run_dir(rec["id"])
    assert sorted(p.name for p in d.iterdir()) == [
        "config.yaml",
        "history.jsonl",
        "run.json",
        "snapshots",
    ]
    assert sorted(p.name for p in (d / "snapshots").iterdir()) == SNAPSHOT_FILES[layout]
    if layout == "npz":
        with np.load(d / "snapshots" / "epoch-0001.npz", allow_pickle=False) as npz:
            assert sorted(npz.files) == ["dense_1/bias", "dense_1/kernel", "out/bias", "out/kernel"]
    assert store.snapshot_epochs(rec["id"]) == [0, 1, 2]
    assert sorted(store.snapshot(rec["id"], 1)) == [
        "dense_1/bias",
        "dense_1/kernel",
        "out/bias",
        "out/kernel",
    ]
    assert not list(d.glob("**/*.tmp")), "atomic writes leave no temporary files"
    run_json = json.loads((d / "run.json").read_text())
    for key in (
        "id",
        "experiment",
        "batch",
        "seed",
        "status",
        "epochs_completed",
        "diverged_at_epoch",
        "final",
        "timing",
        "started_at",
        "finished_at",
        "pid",
        "versions",
    ):
        assert key in run_json
    assert (store.root / "index.sqlite").exists()


@pytest.mark.both_layouts
def test_history_with_nan_is_strict_json(store, layout):
    losses = [1.0, float("inf"), float("nan")]
    rec = write_run(store, epochs=3, losses=losses, status="diverged", diverged_at=2, layout=layout)
    text = (store.run_dir(rec["id"]) / "history.jsonl").read_text()

    def reject(token):
        raise AssertionError(f"non-standard JSON token {token}")

    rows = [json.loads(line, parse_constant=reject) for line in text.splitlines()]
    assert rows[2]["loss"] == "Infinity"
    assert math.isinf(store.history(rec["id"])[2]["loss"])
    assert store.snapshot_epochs(rec["id"]) == [0, 1], "no snapshot of non-finite weights"


def test_torn_last_history_line_is_ignored(store):
    rec = write_run(store, epochs=2)
    path = store.run_dir(rec["id"]) / "history.jsonl"
    path.write_text(path.read_text() + '{"epoch": 3, "lo')
    assert [r["epoch"] for r in store.history(rec["id"])] == [0, 1, 2]


def test_list_newest_first_and_selectors(store):
    a = write_run(store, experiment="alpha", batch="b1")
    b = write_run(store, experiment="alpha", batch="b1", seed=1)
    c = write_run(store, experiment="beta", batch="b2")
    assert [r["id"] for r in store.select()] == [c["id"], b["id"], a["id"]]
    assert [r["id"] for r in store.select(["latest"])] == [c["id"]]
    assert {r["id"] for r in store.select(["alpha"])} == {a["id"], b["id"]}
    assert {r["id"] for r in store.select(["b1"])} == {a["id"], b["id"]}
    assert [r["id"] for r in store.select([], default="latest-batch")] == [c["id"]]
    assert store.get(a["id"])["id"] == a["id"]
    with pytest.raises(RunNotFound, match="did you mean 'alpha'"):
        store.select(["alpah"])


def test_ambiguous_prefix_names_candidates(store):
    write_run(store)
    write_run(store)
    prefix = store.select()[0]["id"][:2]
    with pytest.raises(RunNotFound, match=r"matches 2 runs .*give one run id or a longer prefix"):
        store.get(prefix)


def test_empty_store_selectors(store):
    assert store.select() == []
    with pytest.raises(RunNotFound, match="no runs in .* yet"):
        store.select(["latest"])


def test_index_is_a_cache(store):
    a = write_run(store)
    b = write_run(store, seed=1)
    store.index_path.unlink()
    for p in store.root.glob("index.sqlite-*"):
        p.unlink()
    assert {r["id"] for r in store.select()} == {a["id"], b["id"]}, "rebuilt on the fly"
    assert store.reindex() == 2
    with sqlite3.connect(store.index_path) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_index_heals_stale_running_rows_and_skips_deleted_runs(store):
    import shutil

    a = write_run(store)
    b = write_run(store, seed=1)
    # Simulate a writer that updated run.json but died before updating the index.
    with sqlite3.connect(store.index_path) as con:
        con.execute("UPDATE runs SET status = 'running' WHERE id = ?", (a["id"],))
    shutil.rmtree(store.run_dir(b["id"]))
    runs = store.select()
    assert [(r["id"], r["status"]) for r in runs] == [(a["id"], "completed")]


def test_damaged_run_is_shown_corrupt_not_fatal(store):
    a = write_run(store)
    b = write_run(store, seed=1)
    (store.run_dir(b["id"]) / "run.json").write_text("{not json")
    store.index_path.unlink()
    runs = {r["id"]: r for r in store.select()}
    assert runs[a["id"]]["status"] == "completed"
    assert runs[b["id"]]["status"] == "corrupt"
    assert runs[b["id"]]["error"].startswith("cannot read run.json: Expecting property name")


@pytest.mark.both_layouts
def test_history_statistics_are_those_of_the_snapshots(store, layout):
    """Each history row's statistics of each variable, by hand from the stored snapshots: L2
    norm, mean, std, min, max, L2 distance from epoch 0, L2 change since the epoch before."""
    rec = write_run(store, epochs=3, layout=layout)
    history = store.history(rec["id"])
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]
    snaps = [store.snapshot(rec["id"], epoch) for epoch in range(4)]
    for epoch, snap in enumerate(snaps):
        assert set(history[epoch]["weights"]) == set(snap)
        for key in snap:
            stats = history[epoch]["weights"][key]
            now = snap[key].astype(np.float64)
            init = snaps[0][key].astype(np.float64)
            assert stats["l2"] == pytest.approx(np.linalg.norm(now))
            assert stats["mean"] == pytest.approx(now.mean())
            assert stats["std"] == pytest.approx(now.std())
            assert (stats["min"], stats["max"]) == pytest.approx((now.min(), now.max()))
            assert stats["dist_init"] == pytest.approx(np.linalg.norm(now - init))
            if epoch == 0:
                assert stats["dist_init"] == 0 and stats["delta"] is None
            else:
                before = snaps[epoch - 1][key].astype(np.float64)
                assert stats["delta"] == pytest.approx(np.linalg.norm(now - before))
    assert history[3]["weights"]["out/kernel"]["delta"] > 0, "the weights moved"


@pytest.mark.both_layouts
def test_snapshot_round_trip_and_missing_epoch(store, layout):
    rec = write_run(store, epochs=2, layout=layout)
    snap = store.snapshot(rec["id"], 0)
    assert snap["dense_1/kernel"].shape == (2, 3)
    assert not snap["dense_1/bias"].any()
    with pytest.raises(RunNotFound, match=r"no snapshot for epoch 9 \(epochs: 0..2\)"):
        store.snapshot(rec["id"], 9)


def test_jsonio_round_trip():
    obj = {"a": [1.0, float("nan"), float("-inf")], "b": {"c": float("inf")}}
    back = jsonio.decode(json.loads(jsonio.dumps(obj)))
    assert math.isnan(back["a"][1]) and back["a"][2] == -math.inf and back["b"]["c"] == math.inf


def test_store_object_touches_nothing(tmp_path):
    s = Store(tmp_path / "nothing")
    assert s.select() == []
    assert not (tmp_path / "nothing").exists()


def test_unwritable_store_is_a_clear_error(tmp_path):
    from weightlab.errors import StoreError
    from weightlab.store import RunWriter

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match=r"cannot write runs into .*file/store"):
        RunWriter(Store(blocker / "store"), {"id": None}, {})


def test_a_new_index_waits_for_a_process_that_holds_it(tmp_path):
    """The first processes on a new store race to switch its index to WAL; SQLite refuses that
    switch at once while another connection writes, rather than waiting: the opener retries."""
    import threading

    store = Store(tmp_path / "store")
    store.root.mkdir()
    holder = sqlite3.connect(store.index_path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")  # a database still in rollback-journal mode
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")  # another opener, writing: SQLite would not wait
    threading.Timer(0.3, holder.rollback).start()
    with store._db(write=True) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    holder.close()
    assert store.select() == []
