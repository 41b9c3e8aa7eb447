"""A hostile store: one fault in one run (or beside the runs), then every reader command.

For each fault, every command that reads the store exits 0 or 2 (``check`` 0 or 1: 1 when it
finds the damage) without a traceback, within :data:`SECONDS` and :data:`PEAK_RSS`; ``check``
names the damaged run and the reason; and no byte of any other run changes (nor of the damaged
one: readers never "fix" run data). Runs are written with the store's own writer
(``conftest.write_run``), without TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_run

from weightlab.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def digest(run_dir: Path) -> dict[str, str]:
    """Every file under a run directory (links not followed) and its SHA-256."""
    out = {}
    for root, dirs, files in os.walk(run_dir, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            rel = path.relative_to(run_dir).as_posix()
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# ---- the faults: (harm(run_dir), what check says), harm applied to the victim's directory -------


def edit_record(**fields):
    def harm(d: Path) -> None:
        record = json.loads((d / "run.json").read_text())
        record.update(fields)
        (d / "run.json").write_text(json.dumps(record))

    return harm


def write(name: str, data: str | bytes):
    def harm(d: Path) -> None:
        path = d / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)

    return harm


def replace_text(name: str, old: str, new: str):
    def harm(d: Path) -> None:
        text = (d / name).read_text()
        assert old in text, (name, old)
        (d / name).write_text(text.replace(old, new, 1))

    return harm


def lines_of(name: str, keep: slice):
    def harm(d: Path) -> None:
        (d / name).write_text("".join((d / name).read_text().splitlines(True)[keep]))

    return harm


def make_dir(name: str):
    def harm(d: Path) -> None:
        path = d / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        path.mkdir()

    return harm


def make_fifo(name: str):
    def harm(d: Path) -> None:
        (d / name).unlink()
        os.mkfifo(d / name)

    return harm


def remove(name: str):
    def harm(d: Path) -> None:
        path = d / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    return harm


def self_link(name: str):
    def harm(d: Path) -> None:
        remove(name)(d)
        (d / name).symlink_to(name)  # a link to itself: ELOOP on every open

    return harm


def history_row(line: int, **fields):
    def harm(d: Path) -> None:
        rows = (d / "history.jsonl").read_text().splitlines()
        row = json.loads(rows[line])
        row.update(fields)
        rows[line] = json.dumps(row)
        (d / "history.jsonl").write_text("\n".join(rows) + "\n")

    return harm


def matrix_edit(edit):
    def harm(d: Path) -> None:
        m = np.load(d / "snapshots" / "epochs.npy", mmap_mode="r+")
        edit(m)
        m.flush()
        del m

    return harm


def flip_bit(d: Path) -> None:
    path = d / "snapshots" / "epochs.npy"
    data = bytearray(path.read_bytes())
    data[200] ^= 0x01
    path.write_bytes(bytes(data))


def cut(name: str, keep: int):
    def harm(d: Path) -> None:
        path = d / name
        path.write_bytes(path.read_bytes()[:keep])

    return harm


FAULTS = {
    # run.json
    "record is an array": (write("run.json", "[1, 2, 3]"), "run.json holds an array"),
    "record is a number": (write("run.json", "42"), "run.json holds 42"),
    "started_at null": (edit_record(started_at=None), "started_at is null, expected text"),
    "status unknown": (edit_record(status="exploded"), "status is 'exploded', expected one of"),
    "epochs_completed text": (edit_record(epochs_completed="abc"), "epochs_completed is 'abc'"),
    "final a list": (edit_record(final=[1, 2]), "final is an array, expected an object"),
    "final.loss text": (edit_record(final={"loss": "low"}), "final.loss is 'low'"),
    "id a number": (edit_record(id=7), "id is 7, expected text"),
    "id of another run": (edit_record(id="261129-000000-beef"), "run.json names run"),
    # Listed (its seed NULL in the index), and found to disagree with its config.yaml.
    "seed beyond SQLite": (edit_record(seed=2**64), "run.json records seed 18446744073709551616"),
    "seed a boolean": (edit_record(seed=True), "seed is true (a boolean)"),
    "timing text": (edit_record(timing="slow"), "timing is 'slow', expected an object"),
    "snapshots a list": (edit_record(snapshots=[]), "snapshots is an array"),
    "cell text": (edit_record(cell="x"), "cell is 'x', expected an object"),
    "best without loss": (edit_record(best={"epoch": 1}), "run.json: best is"),
    "epochs negative": (edit_record(epochs=-1), "epochs is -1, expected a whole number >= 0"),
    "pid text": (edit_record(pid="1234"), "pid is '1234', expected a whole number"),
    "resumed an object": (edit_record(resumed={}), "resumed is an object, expected an array"),
    "snapshots.bytes text": (
        edit_record(snapshots={"every": "epoch", "count": 4, "bytes": "many"}),
        "snapshots.bytes is 'many'",
    ),
    "unknown keys only": (edit_record(extra={"x": [1]}, comment="hand-edited"), None),
    "record lacks status": (
        lambda d: write("run.json", (d / "run.json").read_text().replace('"status"', '"s"'))(d),
        "run.json lacks status",
    ),
    "record empty": (write("run.json", ""), "cannot read run.json"),
    "record not UTF-8": (write("run.json", b'{"id": "\xff\xfe"}'), "cannot read run.json"),
    "record nested deep": (write("run.json", "[" * 100_000), "cannot read run.json"),
    "record a directory": (make_dir("run.json"), "cannot read run.json"),
    "record missing": (remove("run.json"), "run.json is missing"),
    "record a link loop": (self_link("run.json"), "cannot read run.json"),
    # config.yaml
    "config missing": (remove("config.yaml"), "config.yaml is missing"),
    "config a FIFO": (make_fifo("config.yaml"), "config.yaml cannot be read: it is a named pipe"),
    "config over a megabyte": (
        write("config.yaml", "description: x\n" + "# padding\n" * 120_000),
        "config.yaml is larger than a config may be",
    ),
    "config truncated": (lines_of("config.yaml", slice(0, 26)), "(missing: truncated?)"),
    "config cut mid-line": (cut("config.yaml", 300), "config.yaml"),
    "config wrong type": (
        replace_text("config.yaml", "epochs: 3", "epochs: three"),
        "train.epochs: expected an integer",
    ),
    "config units negative": (
        replace_text("config.yaml", "units: 3", "units: -3"),
        "model.layers.0.units",
    ),
    "config a list": (write("config.yaml", "- 1\n- 2\n"), "config.yaml holds an array"),
    "config empty": (write("config.yaml", ""), "config.yaml holds null"),
    "config binary": (write("config.yaml", b"\x00\xff\x00garbage"), "config.yaml"),
    "config a directory": (make_dir("config.yaml"), "config.yaml cannot be read"),
    "config a link loop": (self_link("config.yaml"), "config.yaml cannot be read"),
    "config misspelt key": (
        replace_text("config.yaml", "train:", "trian:"),
        "trian: unknown key; did you mean 'train'?",
    ),
    "config of another seed": (
        replace_text("config.yaml", "seed: 1", "seed: 5"),
        "config.yaml: seed is 5, run.json records seed 1",
    ),
    # history.jsonl
    "history empty": (write("history.jsonl", ""), "history.jsonl holds no epoch"),
    "history truncated": (
        lines_of("history.jsonl", slice(0, 2)),
        "history.jsonl holds epochs 0..1",
    ),
    "history loss text": (history_row(2, loss="abc"), "history.jsonl line 3: loss is 'abc'"),
    "history epoch text": (history_row(1, epoch="one"), "line 2: epoch is 'one'"),
    "history epoch skipped": (history_row(2, epoch=5), "line 3: epoch 5 where epoch 2 belongs"),
    "history weights a list": (history_row(1, weights=[1]), "line 2: weights is an array"),
    "history stat text": (
        history_row(1, weights={"dense_1/kernel": {"l2": "big", "dist_init": 0}}),
        "weights.dense_1/kernel.l2 is 'big'",
    ),
    "history row an array": (
        lambda d: write("history.jsonl", "[1]\n" + (d / "history.jsonl").read_text())(d),
        "history.jsonl line 1: holds an array",
    ),
    "history bad JSON inside": (
        lambda d: write("history.jsonl", "{oops\n" + (d / "history.jsonl").read_text())(d),
        "history.jsonl line 1 is not valid JSON",
    ),
    "history not UTF-8": (write("history.jsonl", b"\xff\xfe\n"), "history.jsonl cannot be read"),
    "history missing": (remove("history.jsonl"), "history.jsonl is missing"),
    "history a directory": (make_dir("history.jsonl"), "history.jsonl cannot be read"),
    # snapshots
    "snapshots deleted": (remove("snapshots"), "snapshots/ is missing"),
    "snapshots a file": (
        lambda d: (remove("snapshots")(d), write("snapshots", "x")(d)),
        "snapshots is not a directory",
    ),
    "snapshots a link loop": (self_link("snapshots"), "snapshots is not a directory"),
    "NaN row": (matrix_edit(lambda m: m.__setitem__((2, 0), np.nan)), "non-finite values"),
    "infinite row": (matrix_edit(lambda m: m.__setitem__((1, 3), np.inf)), "non-finite values"),
    "bit flip": (flip_bit, "CRC-32 differs"),
    "trajectory truncated": (cut("snapshots/epochs.npy", 150), "epochs.npy is damaged"),
    "trajectory header garbage": (
        lambda d: write("snapshots/epochs.npy", b"PK\x03\x04" + b"\x00" * 200)(d),
        "not a .npy file",
    ),
    "layout garbage": (write("snapshots/layout.json", "{"), "layout.json is not valid JSON"),
    "layout missing": (remove("snapshots/layout.json"), "snapshots/layout.json is missing"),
    "checksums cut": (cut("snapshots/epochs.crc32", 8), "epochs.crc32 covers 2 of 4 rows"),
    "npz snapshot beside": (
        write("snapshots/epoch-0009.npz", b"PK not a zip"),
        "epoch-0009.npz is damaged",
    ),
    "resume state garbage": (write("resume.npz", b"garbage"), None),  # only resume reads it
    "stale lock of another host": (
        write("run.lock", json.dumps({"pid": 1, "host": "elsewhere"})),
        None,  # a finished run: nothing owns it; readers never look
    ),
}


# Faults beside the runs: the name that must be reported, and what check says.
def _loop_entry(runs: Path) -> None:
    (runs / "261129-000000-100p").symlink_to("261129-000000-100p")


def _dangling_entry(runs: Path) -> None:
    (runs / "261129-000000-dead").symlink_to("/nonexistent/run")


def _file_entry(runs: Path) -> None:
    (runs / "261129-000000-f11e").write_text("not a run")


def _odd_names(runs: Path) -> None:
    (runs / "with space").mkdir()
    (runs / ".new-abcd").mkdir()


def _index_garbage(runs: Path) -> None:
    (runs.parent / "index.sqlite").write_bytes(b"not a database" * 100)


def _index_row_null(runs: Path) -> None:
    import sqlite3

    with sqlite3.connect(runs.parent / "index.sqlite") as con:
        con.execute("UPDATE runs SET record = 'not json'")


BESIDE = {
    "run-named link loop": (_loop_entry, "261129-000000-100p", "cannot be entered"),
    "run-named dangling link": (_dangling_entry, "261129-000000-dead", "cannot be entered"),
    "run-named file": (_file_entry, None, None),
    "odd directory names": (_odd_names, None, None),
    "index garbage": (_index_garbage, "", "index.sqlite cannot be read"),
    "index rows garbage": (_index_row_null, None, None),
}


@pytest.fixture
def three(store):
    """Three healthy runs: one with .npz snapshots, two with the trajectory."""
    a = write_run(store, seed=0, layout="npz")
    b = write_run(store, seed=1)
    c = write_run(store, seed=2)
    assert invoke("ls").exit_code == 0  # indexed before the damage: it must be seen anyway
    return a, b, c


def readers(store, victim: str, tmp: Path) -> list[tuple[tuple[str, ...], set[int]]]:
    ok = {0, 2}
    return [
        (("ls",), {0}),
        (("ls", "--format", "json"), {0}),
        (("ls", victim), ok),
        (("show", victim), ok),
        (("show", victim, "--format", "json"), ok),
        (("compare",), ok),
        (("compare", "--format", "csv"), ok),
        (("explain", victim), ok),
        (("plot", "-o", str(tmp / "loss.png")), ok),
        (("export", "--to", "csv", str(tmp / "out")), ok),
        (("check",), {0, 1}),
        (("reindex",), {0}),
        (("check", "--repair"), {0, 1}),
        (("ls",), {0}),
    ]


SECONDS = 20  # per command, on a loaded 2-core machine; each takes well under a second alone
PEAK_RSS = 2 * 2**30  # of the whole test process, in bytes: no fault may make a reader balloon


def run_readers(store, victim: str, tmp: Path) -> dict[tuple[str, ...], str]:
    import resource
    import time

    outputs = {}
    for args, codes in readers(store, victim, tmp):
        start = time.monotonic()
        result = invoke(*args)
        assert time.monotonic() - start < SECONDS, args
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < PEAK_RSS, args
        assert result.exit_code in codes, (args, result.exit_code, result.output)
        assert "Traceback" not in result.output, (args, result.output)
        outputs[args] = " ".join(result.output.split())
    return outputs


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_one_damaged_run_never_breaks_the_others(store, three, fault, tmp_path):
    a, victim, c = three
    harm, reason = FAULTS[fault]
    others = {r["id"]: digest(store.run_dir(r["id"])) for r in (a, c)}
    harm(store.run_dir(victim["id"]))
    damaged = digest(store.run_dir(victim["id"]))
    outputs = run_readers(store, victim["id"], tmp_path)
    listed = outputs[("ls",)]
    assert a["id"] in listed and c["id"] in listed, "the other runs are listed"
    checked = outputs[("check",)]
    if reason is None:
        assert victim["id"] not in checked or "note" in checked
    else:
        assert f"corrupt {victim['id']}: " in checked, checked
        assert reason in checked, checked
        for args, out in outputs.items():
            if args[0] in ("show", "explain") and "Error" in out:
                assert victim["id"] in out, (args, out)  # a refusal names the run
    for run_id, files in others.items():
        assert digest(store.run_dir(run_id)) == files, f"{run_id} changed"
    assert digest(store.run_dir(victim["id"])) == damaged, "readers never touch run data"


@pytest.mark.parametrize("fault", BESIDE, ids=list(BESIDE))
def test_odd_entries_beside_the_runs_never_break_a_reader(store, three, fault, tmp_path):
    harm, name, reason = BESIDE[fault]
    before = {r["id"]: digest(store.run_dir(r["id"])) for r in three}
    harm(store.runs_dir)
    outputs = run_readers(store, three[0]["id"], tmp_path)
    for r in three:
        assert r["id"] in outputs[("ls",)]
    if name:
        assert name in outputs[("ls",)] and reason in outputs[("ls",)]
    if reason:
        assert reason in outputs[("check",)] and name in outputs[("check",)]
    for run_id, files in before.items():
        assert digest(store.run_dir(run_id)) == files


def test_a_healthy_store_reads_everywhere_with_exit_0(store, three, tmp_path):
    for args, _ in readers(store, three[0]["id"], tmp_path):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
