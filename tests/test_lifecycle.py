"""Nothing lost: crashed and corrupt runs, signals, SIGKILL, resume, concurrent writers.

Kill and signal tests use real subprocesses and real signals. The concurrency and SIGKILL-storm
tests write runs through the store API without TensorFlow (that is what they test); only the
signal tests train in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CONFIGS, REPO, write_run

from weightlab import lifecycle
from weightlab.check import check
from weightlab.cli import cli
from weightlab.errors import RunNotFound, StoreError, UsageError
from weightlab.store import Store, load_snapshot


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def set_record(store: Store, run_id: str, **fields) -> None:
    """Change run.json the way a writer would (atomically), bypassing the index."""
    from weightlab import jsonio

    path = store.run_dir(run_id) / "run.json"
    jsonio.atomic_write_json(path, {**jsonio.read_json(path), **fields})


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- crashed: derived from pid + process start time ----------------------------------------------


def test_running_record_carries_process_start_time(store):
    rec = write_run(store, status="running")
    assert rec["pid"] == os.getpid()
    assert rec["pid_started"] == lifecycle.process_start_time()


@pytest.mark.parametrize(
    "fields, shown",
    [
        ({}, "running"),  # this very process: alive
        ({"pid": "dead"}, "crashed"),
        ({"pid_started": 12345.0}, "crashed"),  # pid alive but reused by another process
        ({"pid": "dead", "host": "elsewhere"}, "running"),  # cannot check another host
    ],
)
def test_crashed_is_derived_when_reading(store, fields, shown):
    rec = write_run(store, status="running")
    if fields.get("pid") == "dead":
        fields["pid"] = dead_pid()
    set_record(store, rec["id"], **fields)
    assert store.get(rec["id"])["status"] == shown
    assert store.select()[0]["status"] == shown
    on_disk = json.loads((store.run_dir(rec["id"]) / "run.json").read_text())
    assert on_disk["status"] == "running", "derived, never written back"


def test_an_exited_but_unreaped_writer_counts_as_gone(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while lifecycle.process_start_time(proc.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)  # a zombie until proc.wait() below reaps it
    rec = write_run(store, status="running")
    set_record(store, rec["id"], pid=proc.pid, pid_started=None)
    assert store.get(rec["id"])["status"] == "crashed"
    proc.wait()


def test_crashed_shows_in_ls_show_and_compare(store):
    rec = write_run(store, status="running")
    set_record(store, rec["id"], pid=dead_pid(), epochs_completed=2)
    assert "crashed" in invoke("ls").output
    shown = invoke("show", rec["id"]).output
    # run.json says 2, but its history committed epoch 3 before the process died: that counts
    assert "crashed: process" in shown and "after epoch 3" in shown
    compared = invoke("compare", rec["id"]).output
    assert "crashed" in compared and f"`weightlab resume {rec['id']}` continues it" in compared


# ---- corrupt: every other run still listed -------------------------------------------------------


def _truncate_npz(run_dir: Path) -> None:
    path = run_dir / "snapshots" / "epoch-0002.npz"
    path.write_bytes(path.read_bytes()[:200])


DAMAGE = {
    "empty run.json": (lambda d: (d / "run.json").write_text(""), "cannot read run.json"),
    "garbage run.json": (
        lambda d: (d / "run.json").write_text('{"id": '),
        "cannot read run.json: Expecting value",
    ),
    "run.json of another run": (
        lambda d: (d / "run.json").write_text(
            (d / "run.json").read_text().replace(d.name, "261129-000000-beef")
        ),
        "run.json names run '261129-000000-beef'",
    ),
    "missing history": (lambda d: (d / "history.jsonl").unlink(), "history.jsonl is missing"),
    "missing config": (lambda d: (d / "config.yaml").unlink(), "config.yaml is missing"),
    "truncated npz": (_truncate_npz, "(truncated or deleted); `weightlab check` names them"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_run_shows_corrupt_and_the_rest_still_lists(store, damage):
    good = write_run(store)
    bad = write_run(store, seed=1, layout="npz" if damage == "truncated npz" else "epochs")
    before = sorted(p for p in store.run_dir(bad["id"]).rglob("*"))
    harm, reason = DAMAGE[damage]
    invoke("ls")  # index the runs first: damage after indexing must be seen too
    harm(store.run_dir(bad["id"]))
    listed = invoke("ls")
    assert listed.exit_code == 0 and good["id"] in listed.output
    if damage != "truncated npz":  # ls does not stat every snapshot; compare and check do
        assert f"• {bad['id']}: corrupt: " in listed.output
        assert reason in " ".join(listed.output.split())
    compared = invoke("compare", good["id"], bad["id"])
    assert compared.exit_code == 0 and "corrupt" in compared.output
    assert reason in " ".join(compared.output.split())
    checked = invoke("check")
    assert checked.exit_code == 1 and f"corrupt      {bad['id']}" in checked.output
    assert good["id"] not in checked.output
    repaired = invoke("check", "--repair")
    assert repaired.exit_code == 1, "repair rebuilds the index but never 'fixes' run data"
    after = sorted(p for p in store.run_dir(bad["id"]).rglob("*"))
    assert set(after) <= set(before) and len(before) - len(after) <= 1, "nothing deleted"


def test_check_finds_index_drift_and_repair_rebuilds(store):
    import shutil
    import sqlite3

    a = write_run(store)
    b = write_run(store, seed=1)
    c = write_run(store, seed=2)
    shutil.rmtree(store.run_dir(b["id"]))  # index entry without a directory
    with sqlite3.connect(store.index_path) as con:
        con.execute("DELETE FROM runs WHERE id = ?", (c["id"],))  # directory not in the index
        con.execute("UPDATE runs SET status = 'failed' WHERE id = ?", (a["id"],))
    report = check(store)
    kinds = {(f["kind"], f["run"]) for f in report["findings"]}
    assert kinds == {("index-only", b["id"]), ("unindexed", c["id"]), ("stale-index", a["id"])}
    assert invoke("check").exit_code == 1
    fixed = invoke("check", "--repair")
    assert fixed.exit_code == 0 and "index rebuilt" in fixed.output
    assert check(store)["findings"] == []


def test_an_unreadable_index_is_a_lost_cache_only(store):
    rec = write_run(store)
    store.index_path.write_bytes(b"this is not an SQLite database" * 100)
    listed = invoke("ls")
    assert listed.exit_code == 0 and rec["id"] in listed.output, "listed from the directories"
    assert invoke("check").exit_code == 1
    assert invoke("check", "--repair").exit_code == 0
    assert check(store)["problems"] == 0
    assert store.index_path.with_name("index.sqlite.damaged").exists(), "moved aside, not deleted"


def test_tampered_snapshot_fails_closed(store):
    rec = write_run(store, layout="npz")  # an .npz file of the older layout, planted
    path = store.run_dir(rec["id"]) / "snapshots" / "epoch-0001.npz"
    np.savez(path, **{"dense_1/kernel": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(StoreError, match="epoch-0001.npz is damaged: .*allow_pickle=False"):
        store.snapshot(rec["id"], 1)
    with pytest.raises(StoreError, match="damaged"):
        load_snapshot(path)
    assert any("epoch-0001.npz is damaged" in f["detail"] for f in check(store)["findings"])


@pytest.mark.parametrize("selector", ["../..", "../runs", "/etc", "/etc/passwd", "..", "."])
def test_selectors_cannot_escape_the_store(store, selector):
    write_run(store)
    with pytest.raises(RunNotFound):
        store.get(selector)
    with pytest.raises(RunNotFound, match="is not a run id"):
        store.run_dir(selector)
    result = invoke("show", selector)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_odd_directories_in_the_store_are_not_runs(store):
    write_run(store)
    (store.runs_dir / ".new-abc").mkdir()  # a writer killed while creating its run
    (store.runs_dir / "with space").mkdir()
    assert len(store.select()) == 1
    assert [f["kind"] for f in check(store)["findings"]] == ["leftover"]


def test_show_names_where_a_run_diverged(store):
    rec = write_run(store, status="diverged", diverged_at=2)
    where = {"epoch": 2, "batch": 5, "step": 12, "variable": "dense_1/kernel"}
    set_record(store, rec["id"], divergence=where)
    shown = " ".join(invoke("show", rec["id"]).output.split())
    assert "diverged at epoch 2, batch 5: dense_1/kernel went non-finite first" in shown


def test_signal_during_the_final_save_is_held_then_delivered():
    saved = []
    with (
        pytest.raises(lifecycle.Terminated) as stopped,
        lifecycle.stop_on_signals(),
        lifecycle.signals_deferred(),
    ):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # the handler would have run by now
        saved.append("run.json")
    assert saved == ["run.json"] and lifecycle.exit_code(stopped.value) == 143


def resumable(store, **fields):
    """An interrupted fake run with a (placeholder) resume state: what `prepare` checks."""
    rec = write_run(store, status="interrupted")
    (store.run_dir(rec["id"]) / "resume.npz").write_bytes(b"")
    set_record(store, rec["id"], **fields)
    return rec


def test_resume_refuses_changed_data_without_tensorflow(store):
    from weightlab import yamlio
    from weightlab.config import load_experiment
    from weightlab.resume import prepare

    rec = resumable(store, data={"kind": "linear", "fingerprint": "0123456789abcdef"})
    resolved = load_experiment(CONFIGS / "linear-regression.yaml").runs[0].config
    (store.run_dir(rec["id"]) / "config.yaml").write_text(yamlio.dump(resolved))
    with pytest.raises(UsageError, match=r"its data changed since it started \(fingerprint 012"):
        prepare(store, rec["id"])


def test_resume_refuses_a_changed_config_file(store, write_config):
    from weightlab.resume import prepare

    path = write_config(
        "name: exp\ndata: {kind: linear, samples: 100, features: 2, offset: 5.0}\n"
        "model: {layers: [{units: 3, activation: relu}, {units: 1, name: out}]}\n"
        "train: {optimizer: sgd, loss: mse, metrics: [mae], epochs: 4, batch_size: 32}\n"
    )
    rec = resumable(store, source={"config": str(path), "overrides": []})
    with pytest.raises(UsageError, match=r"changed since it started \(train.epochs: 3 -> 4[;)]"):
        prepare(store, rec["id"])
    result = invoke("resume", rec["id"])
    assert result.exit_code == 2 and "train.epochs: 3 -> 4" in result.output


# ---- SIGKILL and concurrency, without TensorFlow ----------------------------------------------

WRITER = """
import sys
sys.path.insert(0, {tests!r})
from conftest import write_run
from weightlab.store import Store
store = Store.open({root!r})
for i in range({n}):
    # Odd writers append to an epochs.npy trajectory, even ones write .npz files.
    write_run(
        store, experiment="w{worker}", batch="b{worker}", seed=i, epochs={epochs},
        layout="epochs" if {worker} % 2 == 1 else "npz",
    )
"""


def spawn_writer(root: Path, worker: int, n: int, epochs: int = 3) -> subprocess.Popen:
    code = WRITER.format(
        tests=str(REPO / "tests"), root=str(root), n=n, worker=worker, epochs=epochs
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)


def test_six_processes_write_one_store_and_lose_nothing(store):
    procs = [spawn_writer(store.root, w, n=4) for w in range(6)]
    listed = 0
    while any(p.poll() is None for p in procs):
        listed += len(store.select())  # reading while they write never makes a writer fail
        time.sleep(0.05)
    for p in procs:
        assert p.wait() == 0, p.stderr.read().decode()
    runs = store.select()
    assert len(runs) == 24 and listed > 0
    assert {(r["experiment"], r["seed"]) for r in runs} == {
        (f"w{w}", i) for w in range(6) for i in range(4)
    }
    assert all(r["status"] == "completed" for r in runs)
    for r in runs:
        assert store.snapshot_epochs(r["id"]) == [0, 1, 2, 3]
        assert len(store.history(r["id"])) == 4
    import sqlite3

    with sqlite3.connect(store.index_path) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 24
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert check(store)["problems"] == 0


def test_sigkill_at_any_moment_never_leaves_half_written_files(store):
    """Kill writers at random moments (mid-snapshot, mid-index update); everything left reads."""
    rng = np.random.default_rng(0)
    for round_ in range(6):
        before = len(store.run_dirs())
        proc = spawn_writer(store.root, round_, n=50, epochs=20)
        deadline = time.monotonic() + 60
        while len(store.run_dirs()) <= before and time.monotonic() < deadline:
            time.sleep(0.01)  # until it writes: the start-up time depends on the machine's load
        time.sleep(rng.uniform(0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    runs = store.select()
    assert runs, "the writers got somewhere"
    assert {r["status"] for r in runs} <= {"completed", "crashed"}
    assert "crashed" in {r["status"] for r in runs}
    for r in runs:
        for epoch in store.snapshot_epochs(r["id"]):
            assert store.snapshot(r["id"], epoch)["out/kernel"].shape == (3, 1)
        assert [row["epoch"] for row in store.history(r["id"])] == list(
            range(len(store.history(r["id"])))
        )
    report = check(store)
    assert [f for f in report["findings"] if f["kind"] == "corrupt"] == []
    assert invoke("ls").exit_code == 0


# ---- signals and resume: real training -----------------------------------------------------------

SLOW = [
    "matrix={}",
    "seed=0",
    "data.samples=1000",
    "train.batch_size=4",
    "train.epochs=6",
    "train.optimizer=adam",
]


def start_run(store_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WEIGHTLAB_STORE": str(store_dir)}
    config = str(CONFIGS / "bias-vs-no-bias.yaml")
    return subprocess.Popen(
        [sys.executable, "-m", "weightlab", "run", "-q", config, *SLOW],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that starts jobs in the background ignores SIGINT in them, and the ignoring is
        # inherited: give the run the disposition of a command started from a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_epochs(store: Store, proc: subprocess.Popen, n: int, timeout: float = 120) -> str:
    """The run id once its history holds epoch ``n``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        dirs = store.run_dirs()
        if dirs and len(store.history(dirs[0].name)) > n:
            return dirs[0].name
        time.sleep(0.02)
    raise AssertionError("training did not get going")


@pytest.mark.keras
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_run_as_interrupted(store, sig, code):
    proc = start_run(store.root)
    run_id = wait_for_epochs(store, proc, 2)  # epoch 2 begun recording: epoch 1 is complete
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"interrupted ({signal.Signals(sig).name})" in err and "Traceback" not in err
    r = store.get(run_id)
    assert r["status"] == "interrupted"
    assert r["error"].startswith(f"interrupted by {signal.Signals(sig).name} after epoch")
    assert r["finished_at"] and 1 <= r["epochs_completed"] < 6
    epochs = store.snapshot_epochs(run_id)
    # The epoch being recorded when the signal came may have its snapshot already.
    assert epochs[: r["epochs_completed"] + 1] == list(range(r["epochs_completed"] + 1))
    for e in epochs:
        store.snapshot(run_id, e)
    assert store.select()[0]["status"] == "interrupted", "the index agrees"


@pytest.mark.keras
def test_feed_order_is_a_function_of_seed_and_epoch():
    """The batch counter: every row once per epoch, and a resumed feed is the same stream."""
    from weightlab.data import Dataset
    from weightlab.training.runner import feed

    ids = np.arange(50, dtype=np.float32).reshape(-1, 1)
    ds = Dataset(ids, ids.copy(), None, None)
    cfg = {"batch_size": 8, "shuffle": True, "epochs": 4}

    def stream(initial_epoch):
        train, _ = feed(ds, cfg, seed=3, initial_epoch=initial_epoch)
        return [x[:, 0].astype(int).tolist() for x, _ in train.as_numpy_iterator()]

    full = stream(0)
    assert len(full) == 4 * 7
    epochs = [sum(full[e * 7 : (e + 1) * 7], []) for e in range(4)]
    for order in epochs:
        assert sorted(order) == list(range(50)), "none repeated, none skipped"
    assert epochs[0] != epochs[1], "reshuffled every epoch"
    assert stream(2) == full[14:], "resuming at epoch 2 sees exactly the rest"


@pytest.mark.keras
def test_sigkill_then_resume_is_bit_identical_to_an_uninterrupted_run(store):
    from weightlab.config import load_experiment
    from weightlab.resume import prepare
    from weightlab.training.sweep import run_experiment

    proc = start_run(store.root)
    run_id = wait_for_epochs(store, proc, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = store.get(run_id)
    assert killed["status"] == "crashed" and "ended without finishing" in killed["error"]
    report = check(store)
    assert report["problems"] == 0, report["findings"]
    assert invoke("ls").exit_code == 0 and "crashed" in invoke("ls").output

    source = killed["source"]
    set_record(store, run_id, source={**source, "overrides": [*SLOW, "train.epochs=7"]})
    with pytest.raises(UsageError, match=r"changed since it started \(train.epochs: 6 -> 7\)"):
        prepare(store, run_id)
    set_record(store, run_id, source=source)

    result = invoke("resume", run_id, "--quiet", "--format", "json")
    assert result.exit_code == 0, result.output
    resumed = json.loads(result.output)
    assert resumed["status"] == "completed" and resumed["epochs_completed"] == 6
    assert resumed["resumed"][0]["from_epoch"] >= 1  # 1 if killed while epoch 2 was recorded
    with pytest.raises(UsageError, match="cannot be resumed: it completed all its epochs"):
        prepare(store, run_id)

    (fresh,) = run_experiment(load_experiment(CONFIGS / "bias-vs-no-bias.yaml", SLOW), store)
    assert resumed["batches_seen"] == fresh["batches_seen"] == 6 * 200, "none repeated/skipped"
    for epoch in range(7):
        a, b = store.snapshot(run_id, epoch), store.snapshot(fresh["id"], epoch)
        assert all(a[k].tobytes() == b[k].tobytes() for k in a), epoch
    history = store.history(run_id)
    assert [row["epoch"] for row in history] == list(range(7))
    assert history == store.history(fresh["id"])
    assert resumed["final"] == fresh["final"]
    # The trajectory file too, byte for byte, and the bookkeeping of what is on disk.
    files = [store.run_dir(r) / "snapshots" / "epochs.npy" for r in (run_id, fresh["id"])]
    assert files[0].read_bytes() == files[1].read_bytes()
    assert resumed["snapshots"] == fresh["snapshots"]
    assert resumed["snapshots"]["bytes"] == lifecycle.snapshot_bytes(str(files[0].parent))
