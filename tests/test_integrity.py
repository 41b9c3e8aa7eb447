"""Issue 17: one owner per run, `check` that compares the record with the disk, exports that stay
out of the store, messages that say what is on disk, and a resume that works from any folder.

Without TensorFlow except where marked ``keras``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_run

from weightlab import jsonio
from weightlab.check import check
from weightlab.cli import cli
from weightlab.errors import UsageError


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def set_record(store, run_id: str, **fields) -> None:
    path = store.run_dir(run_id) / "run.json"
    jsonio.atomic_write_json(path, {**jsonio.read_json(path), **fields})


CONFIG = (
    "name: exp\ndata: {kind: linear, samples: 100, features: 2, offset: 5.0}\n"
    "model: {layers: [{units: 3, activation: relu}, {units: 1, name: out}]}\n"
    "train: {optimizer: sgd, loss: mse, metrics: [mae], epochs: 4, batch_size: 32}\n"
)


# ---- item 12: resume finds the config from any folder -------------------------------------------


def test_the_source_records_the_config_as_given_and_its_absolute_path(tmp_path, monkeypatch):
    from weightlab.config import load_experiment
    from weightlab.runstart import sweep_source

    (tmp_path / "exp.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    source = sweep_source(load_experiment("exp.yaml"))
    assert source["config"] == "exp.yaml"
    assert source["config_path"] == str(tmp_path / "exp.yaml")


def test_resume_compares_the_config_from_another_folder(store, tmp_path, monkeypatch):
    from weightlab import yamlio
    from weightlab.config import load_experiment
    from weightlab.resume import prepare

    (tmp_path / "exp.yaml").write_text(CONFIG.replace("epochs: 4", "epochs: 3"))
    resolved = load_experiment(tmp_path / "exp.yaml").runs[0].config
    (tmp_path / "exp.yaml").write_text(CONFIG)  # train.epochs 4 now; the run trained 3
    rec = write_run(store, status="interrupted")
    (store.run_dir(rec["id"]) / "config.yaml").write_text(yamlio.dump(resolved))
    (store.run_dir(rec["id"]) / "resume.npz").write_bytes(b"")
    source = {"config": "exp.yaml", "config_path": str(tmp_path / "exp.yaml"), "overrides": []}
    set_record(store, rec["id"], source=source)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(UsageError, match=r"exp.yaml changed since it started \(train.epochs: 3"):
        prepare(store, rec["id"])
    os.remove(tmp_path / "exp.yaml")
    assert "the source config exp.yaml is gone" in prepare(store, rec["id"]).note


# ---- item 4: exports stay out of the store ------------------------------------------------------


@pytest.mark.parametrize("target", ["{root}", "{root}/runs", "{root}/runs/{id}", "{root}/new/deep"])
@pytest.mark.parametrize("to", ["csv", "tensorboard"])
def test_export_refuses_a_target_inside_the_store(store, to, target):
    rec = write_run(store)
    before = sorted(p.relative_to(store.root) for p in store.root.rglob("*"))
    out = target.format(root=store.root, id=rec["id"])
    result = invoke("export", rec["id"], "--to", to, out)
    assert result.exit_code == 2, result.output
    assert "is inside the run store" in result.output and "Traceback" not in result.output
    after = sorted(p.relative_to(store.root) for p in store.root.rglob("*"))
    assert after == before, "nothing written into the store"
    assert [r["id"] for r in store.select()] == [rec["id"]]


def test_export_refuses_a_link_that_leads_into_the_store(store, tmp_path):
    rec = write_run(store)
    (tmp_path / "link").symlink_to(store.runs_dir)
    result = invoke("export", rec["id"], "--to", "csv", str(tmp_path / "link"))
    assert result.exit_code == 2 and "is inside the run store" in result.output


def test_export_next_to_the_store_still_works(store, tmp_path):
    rec = write_run(store)
    result = invoke("export", rec["id"], "--to", "csv", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "history.csv").is_file()


# ---- item 9: files follow the umask; paths named as what they are --------------------------------


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_run_files_and_directories_follow_the_umask(store, mask):
    import stat

    from weightlab import jsonio as jio

    old = os.umask(mask)
    jio._UMASK = None
    try:
        rec = write_run(store)
    finally:
        os.umask(old)
        jio._UMASK = None
    run_dir = store.run_dir(rec["id"])
    modes = {
        p.relative_to(run_dir).as_posix(): stat.S_IMODE(p.stat().st_mode)
        for p in [run_dir, *run_dir.rglob("*")]
    }
    want_file, want_dir = 0o666 & ~mask, 0o777 & ~mask
    for name, mode in modes.items():
        is_dir = (run_dir / name).is_dir()
        assert mode == (want_dir if is_dir else want_file), (name, oct(mode))
    assert {"run.json", "config.yaml", "snapshots/epochs.npy", "."} <= set(modes)


@pytest.mark.parametrize(
    "path, kind", [("/dev/zero", "is a character device"), ("dir", "is a directory")]
)
def test_a_config_path_that_is_no_file_is_named_as_what_it_is(tmp_path, path, kind):
    from weightlab.config import load_experiment
    from weightlab.errors import ConfigError

    if path == "dir":
        path = str(tmp_path)
    with pytest.raises(ConfigError, match=f"the config file {kind}, not a file"):
        load_experiment(path)
    result = invoke("validate", path)
    assert result.exit_code == 2 and "not found" not in result.output
    assert "Traceback" not in result.output


def test_a_fifo_as_config_or_data_is_refused_without_waiting(tmp_path, write_config):
    import subprocess
    import sys

    from conftest import REPO

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    linear = "{kind: linear, samples: 100, features: 2, offset: 5.0}"
    data_cfg = write_config(CONFIG.replace(linear, "{kind: csv, path: /dev/zero, target: y}"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for target, said in [
        (fifo, "is a named pipe (FIFO), not a file"),
        (data_cfg, "/dev/zero is a character device, not a file"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "weightlab", "validate", str(target)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert said in done.stderr and "Traceback" not in done.stderr


# ---- item 3: check compares what run.json records with what is on disk --------------------------


def _rows(d):
    return (d / "history.jsonl").read_text().splitlines(keepends=True)


def _nan_row(d):
    import numpy as np

    path = d / "snapshots" / "epochs.npy"
    m = np.load(path, mmap_mode="r+")
    m[2, 0] = np.nan
    m.flush()
    del m


def _flip_a_bit(d):
    path = d / "snapshots" / "epochs.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # a finite float still: only the checksum can tell
    path.write_bytes(bytes(data))


def _replace_snapshots_by_a_file(d):
    import shutil

    shutil.rmtree(d / "snapshots")
    (d / "snapshots").write_text("x")


CHECK_FAULTS = {
    "snapshots deleted": (
        lambda d: __import__("shutil").rmtree(d / "snapshots"),
        "snapshots/ is missing; run.json records 4 snapshots",
    ),
    "snapshots a file": (_replace_snapshots_by_a_file, "snapshots is not a directory"),
    "history empty": (
        lambda d: (d / "history.jsonl").write_text(""),
        "run.json says completed 3/3, history.jsonl holds no epoch",
    ),
    "history truncated": (
        lambda d: (d / "history.jsonl").write_text("".join(_rows(d)[:2])),
        "run.json says completed 3/3, history.jsonl holds epochs 0..1",
    ),
    "NaN row": (_nan_row, "epochs.npy is damaged: epoch 2 holds non-finite values"),
    "bit flip": (_flip_a_bit, "epoch 3 holds not what was written (CRC-32 differs)"),
    "config truncated": (
        lambda d: (d / "config.yaml").write_text(
            "".join((d / "config.yaml").read_text().splitlines(True)[:26])
        ),
        "(missing: truncated?), run.json records",
    ),
    "config wrong type": (
        lambda d: (d / "config.yaml").write_text(
            (d / "config.yaml").read_text().replace("epochs: 3", "epochs: three")
        ),
        "train.epochs: expected an integer",
    ),
    "history wrong type": (
        lambda d: (d / "history.jsonl").write_text(
            "".join(_rows(d)[:2])
            + _rows(d)[2].replace('"loss": ', '"loss": "abc", "x": ', 1)
            + "".join(_rows(d)[3:])
        ),
        "history.jsonl line 3: loss is 'abc', expected a number",
    ),
    "snapshot bytes": (
        lambda d: (d / "snapshots" / "layout.json").write_text(
            (d / "snapshots" / "layout.json").read_text() + " "
        ),
        "snapshots: run.json records 4 snapshots of",
    ),
}


@pytest.mark.parametrize("fault", CHECK_FAULTS, ids=list(CHECK_FAULTS))
def test_check_finds_what_the_record_and_the_disk_disagree_on(store, fault):
    good = write_run(store)
    bad = write_run(store, seed=1)
    assert invoke("check").exit_code == 0
    harm, reason = CHECK_FAULTS[fault]
    harm(store.run_dir(bad["id"]))
    result = invoke("check")
    flat = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert f"corrupt {bad['id']}" in " ".join(flat.split()) and reason in flat, result.output
    assert good["id"] not in result.output


def test_a_run_without_checksums_passes_with_a_note(store):
    old = write_run(store)
    (store.run_dir(old["id"]) / "snapshots" / "epochs.crc32").unlink()  # as older versions wrote
    report = check(store)
    assert report["problems"] == 0
    (note,) = [f for f in report["findings"] if f["kind"] == "note"]
    assert "epochs.crc32 is missing (a run of an older weightlab)" in note["detail"]
    assert invoke("check").exit_code == 0


def test_a_continued_trajectory_fills_in_missing_checksums(store):
    import numpy as np

    from weightlab.trajectory import TrajectoryWriter, read_checksums, row_crc

    rec = write_run(store)
    snaps = store.run_dir(rec["id"]) / "snapshots"
    sums = (snaps / "epochs.crc32").read_bytes()
    (snaps / "epochs.crc32").write_bytes(sums[:8])  # killed between a row and its checksum
    TrajectoryWriter(snaps)
    assert (snaps / "epochs.crc32").read_bytes() == sums
    matrix = np.load(snaps / "epochs.npy")
    assert read_checksums(snaps) == [row_crc(row) for row in matrix]


def test_check_recommends_resume_only_when_resume_would_accept(store):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    rec = write_run(store, status="running")
    set_record(store, rec["id"], pid=proc.pid, epochs_completed=1)
    crashed = [f for f in check(store)["findings"] if f["kind"] == "crashed"]
    assert "no resume.npz, so `weightlab resume` cannot continue it" in crashed[0]["detail"]
    # the history committed 3 epochs before the kill: that is what the record reads
    assert "after epoch 3" in crashed[0]["detail"]
    (store.run_dir(rec["id"]) / "resume.npz").write_bytes(b"")
    crashed = [f for f in check(store)["findings"] if f["kind"] == "crashed"]
    assert crashed[0]["detail"].endswith(f"`weightlab resume {rec['id']}`")


# ---- item 1: one owner per run -------------------------------------------------------------------


def resumable(store, **fields):
    rec = write_run(store, status="interrupted")
    (store.run_dir(rec["id"]) / "resume.npz").write_bytes(b"")
    if fields:
        set_record(store, rec["id"], **fields)
    return rec


def test_a_run_is_owned_by_one_lock_at_a_time(store):
    from weightlab import runlock

    rec = resumable(store)
    run_dir = store.run_dir(rec["id"])
    lock = runlock.acquire(run_dir, rec["id"], "resuming")
    assert runlock.holder(run_dir / "run.lock")["pid"] == os.getpid()
    with pytest.raises(runlock.RunBusy, match=rf"run {rec['id']} is in use: process {os.getpid()}"):
        runlock.acquire(run_dir, rec["id"], "resuming")
    lock.release()
    assert not (run_dir / "run.lock").exists(), "a released lock leaves no file"
    runlock.acquire(run_dir, rec["id"], "resuming").release()


def test_resume_of_a_run_another_process_owns_is_refused_before_tensorflow(store, no_tensorflow):
    import subprocess
    import sys

    rec = resumable(store)
    hold = (
        "import sys; from pathlib import Path; from weightlab import runlock\n"
        f"lock = runlock.acquire(Path({str(store.run_dir(rec['id']))!r}), 'x', 'resuming')\n"
        "print('held', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold],
        env=no_tensorflow,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run(
            [sys.executable, "-m", "weightlab", "resume", rec["id"], "--quiet"],
            env=no_tensorflow,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.communicate("", timeout=30)
    assert done.returncode == 2, done.stderr
    assert f"run {rec['id']} is in use: process {holder.pid} on" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr and "must not be imported" not in done.stderr
    assert jsonio.read_json(store.run_dir(rec["id"]) / "run.json")["status"] == "interrupted"


def test_a_lock_file_of_another_host_refuses_while_the_record_says_running(store):
    import json

    from weightlab.resume import prepare
    from weightlab.runlock import RunBusy

    rec = resumable(store)
    other = {"pid": 4242, "host": "elsewhere", "started": "2026-12-02T10:00:00Z"}
    (store.run_dir(rec["id"]) / "run.lock").write_text(json.dumps(other))
    set_record(store, rec["id"], status="running", host="elsewhere", pid=4242)
    with pytest.raises(RunBusy, match="process 4242 on elsewhere .*if it is gone, delete"):
        prepare(store, rec["id"])
    assert json.loads((store.run_dir(rec["id"]) / "run.lock").read_text()) == other, "kept"
    set_record(store, rec["id"], status="interrupted")  # it ended there: a stale file only
    plan = prepare(store, rec["id"])
    assert plan.lock is not None and plan.lock.held
    plan.release()


def test_a_refused_resume_releases_the_lock(store):
    from weightlab import runlock
    from weightlab.resume import prepare

    rec = write_run(store)  # completed: nothing to resume
    with pytest.raises(UsageError, match="it completed all its epochs"):
        prepare(store, rec["id"])
    runlock.acquire(store.run_dir(rec["id"]), rec["id"], "resuming").release()


@pytest.mark.keras
def test_two_resumes_at_once_one_proceeds_and_nothing_is_lost(store):
    import signal
    import subprocess
    import sys

    from conftest import REPO
    from test_lifecycle import start_run, wait_for_epochs

    proc = start_run(store.root)
    run_id = wait_for_epochs(store, proc, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store.get(run_id)["status"] == "crashed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "WEIGHTLAB_STORE": str(store.root)}
    both = [
        subprocess.Popen(
            [sys.executable, "-m", "weightlab", "resume", run_id, "--quiet"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=300), p.communicate()[1]) for p in both]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    refused = next(err for code, err in outcomes if code == 2)
    assert f"run {run_id}" in refused and "Traceback" not in refused
    assert "is in use" in refused or "it completed all its epochs" in refused
    record = store.get(run_id)
    assert record["status"] == "completed" and record["epochs_completed"] == 6
    assert [row["epoch"] for row in store.history(run_id)] == list(range(7))
    assert store.snapshot_epochs(run_id) == list(range(7))
    assert not (store.run_dir(run_id) / "error.txt").exists()
    assert not (store.run_dir(run_id) / "run.lock").exists()
    report = check(store)
    assert report["problems"] == 0 and report["findings"] == [], report["findings"]


# ---- item 9: a read-only store ------------------------------------------------------------------


@pytest.fixture
def read_only(tmp_path):
    """``make(src)`` -> a read-only view of ``src``: a read-only bind mount (as root, where
    permissions do not stop writes), else the same folder with write permission removed."""
    import contextlib
    import subprocess

    mounts: list[Path] = []

    def make(src: Path) -> Path:
        if os.geteuid() != 0:
            for p in [src, *src.rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
            return src
        view = tmp_path / "read-only-view"
        view.mkdir()
        for cmd in (
            ["mount", "--bind", str(src), str(view)],
            ["mount", "-o", "remount,bind,ro", str(view)],
        ):
            if subprocess.run(cmd, capture_output=True).returncode != 0:
                pytest.skip("cannot make a read-only mount here")
            if cmd[1] == "--bind":
                mounts.append(view)
        return view

    yield make
    for view in mounts:
        with contextlib.suppress(Exception):
            subprocess.run(["umount", str(view)], check=True)


def test_a_read_only_store_is_read_and_never_crashes_a_writer(store, read_only, no_tensorflow):
    import subprocess
    import sys

    rec = write_run(store)
    assert invoke("check").exit_code == 0
    view = read_only(store.root)
    env = {**no_tensorflow, "WEIGHTLAB_STORE": str(view)}

    def weightlab(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "weightlab", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = weightlab("ls")
    assert listed.returncode == 0 and rec["id"] in listed.stdout, listed.stderr
    checked = weightlab("check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "index.sqlite cannot be read" not in checked.stdout
    for args in (["reindex"], ["check", "--repair"]):
        refused = weightlab(*args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert f"the store {view} is read-only here" in " ".join(refused.stderr.split())
        assert "Traceback" not in refused.stderr
    from conftest import CONFIGS

    ran = weightlab("run", str(CONFIGS / "linear-regression.yaml"), "--quiet")
    assert ran.returncode == 2 and "is read-only here" in ran.stderr, ran.stderr
    assert "must not be imported" not in ran.stderr, "refused before TensorFlow is loaded"
