"""The per-epoch trajectory file (snapshots/epochs.npy + layout.json), without TensorFlow.

Real files throughout: written by the store's own writers, read back by numpy and by the store,
damaged the way a kill or a bad copy damages them.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_run

from weightlab import executors, trajectory
from weightlab.check import check
from weightlab.cli import cli
from weightlab.errors import DamagedSnapshot, RunNotFound, StoreError, UsageError
from weightlab.store import RunWriter, new_record, snapshot_usage
from weightlab.trajectory import HEADER_LEN, TrajectoryWriter

SHAPES = {"dense_1/kernel": (2, 3), "out/kernel": (3, 1), "dense_1/bias": (3,), "out/bias": (1,)}
VARIABLES = list(SHAPES)  # write_run's order
PARAMS = 2 * 3 + 3 + 3 * 1 + 1


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def snap_dir(store, record):
    return store.run_dir(record["id"]) / "snapshots"


def epoch_arrays(epoch: int, dtype=np.float32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(epoch)
    return {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}


def config(**snapshots):
    model = {"layers": [{"units": 1}]}  # a run's config.yaml is a valid config
    return {"name": "t", "seed": 0, "model": model, "snapshots": {"every": "epoch", **snapshots}}


def new_writer(store, **snapshots) -> RunWriter:
    record = new_record(
        experiment="t",
        batch="b",
        index=0,
        seed=0,
        cell={},
        epochs=3,
        snapshots_every="epoch",
        data={},
        versions={},
    )
    return RunWriter(store, record, config(**snapshots))


# ---- the file format -----------------------------------------------------------------------------


def test_a_trajectory_run_reads_back_exactly_like_an_npz_run(store):
    old = write_run(store, epochs=3, layout="npz")
    new = write_run(store, epochs=3)  # the same random walk: same seed
    names = sorted(p.name for p in snap_dir(store, new).iterdir())
    assert names == ["epochs.crc32", "epochs.npy", "layout.json"]
    assert store.snapshot_epochs(new["id"]) == store.snapshot_epochs(old["id"]) == [0, 1, 2, 3]
    for epoch in range(4):
        a, b = store.snapshot(old["id"], epoch), store.snapshot(new["id"], epoch)
        assert list(b) == VARIABLES
        assert all(a[k].tobytes() == b[k].tobytes() and a[k].shape == b[k].shape for k in a)
        b["out/bias"][0] = 42.0  # writable, as np.load's arrays are
    for name in VARIABLES:
        assert np.array_equal(store.trajectory(old["id"], name), store.trajectory(new["id"], name))
    assert store.trajectory(new["id"], "dense_1/kernel").shape == (4, 2, 3)
    for missing in (4, -1):
        with pytest.raises(RunNotFound, match=rf"no snapshot for epoch {missing} \(epochs: 0..3\)"):
            store.snapshot(new["id"], missing)
    # the checksum file is bookkeeping, not a snapshot: run.json's bytes leave it out
    on_disk = sum(p.stat().st_size for p in snap_dir(store, new).iterdir() if p.suffix != ".crc32")
    assert new["snapshots"]["bytes"] == on_disk and new["snapshots"]["count"] == 4
    assert snapshot_usage(snap_dir(store, new)) == (4, on_disk)
    assert check(store)["problems"] == 0


@pytest.mark.parametrize("mmap", [None, "r"])
def test_numpy_loads_the_trajectory_matrix(store, mmap):
    rec = write_run(store, epochs=3)
    path = snap_dir(store, rec) / "epochs.npy"
    raw = path.read_bytes()
    assert raw[:8] == b"\x93NUMPY\x01\x00" and raw[HEADER_LEN - 1 : HEADER_LEN] == b"\n"
    assert len(raw) == HEADER_LEN + 4 * PARAMS * 4, "nothing but the header and the rows"
    matrix = np.load(path, mmap_mode=mmap, allow_pickle=False)
    assert matrix.shape == (4, PARAMS) and matrix.dtype == np.float32
    assert matrix.flags.c_contiguous
    layout = json.loads((snap_dir(store, rec) / "layout.json").read_text())
    assert layout["format"] == 1 and layout["params"] == PARAMS
    assert [v["name"] for v in layout["variables"]] == VARIABLES
    for epoch in range(4):
        snap = store.snapshot(rec["id"], epoch)
        for v in layout["variables"]:
            column = matrix[epoch, v["offset"] : v["offset"] + v["size"]]
            assert np.array_equal(column.reshape(v["shape"]), snap[v["name"]])


@pytest.mark.parametrize("rows", [0, 1, 10**6, 10**15])
def test_the_header_is_numpys_own_and_fixed_in_length(tmp_path, rows):
    head = trajectory.header(rows, 12345)
    assert len(head) == HEADER_LEN
    with open(tmp_path / "h.npy", "wb") as fh:
        fh.write(head)
    with open(tmp_path / "h.npy", "rb") as fh:
        assert np.lib.format.read_magic(fh) == (1, 0)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        assert (shape, fortran, dtype) == ((rows, 12345), False, np.dtype("<f4"))
        assert fh.tell() == HEADER_LEN
    with open(tmp_path / "h.npy", "rb") as fh:
        assert trajectory.read_header(fh) == (HEADER_LEN, rows, 12345)


def test_a_header_numpy_wrote_is_read_too(tmp_path):
    np.save(tmp_path / "epochs.npy", np.zeros((3, 7), dtype=np.float32))
    assert trajectory.committed(tmp_path / "epochs.npy").rows == 3
    with open(tmp_path / "epochs.npy", "wb") as fh:  # format 2.0, keys in another order
        meta = {"shape": (3, 7), "fortran_order": False, "descr": "<f4"}
        np.lib.format.write_array_header_2_0(fh, meta)
        fh.write(np.ones((3, 7), dtype=np.float32).tobytes())
    assert trajectory.committed(tmp_path / "epochs.npy").rows == 3
    np.save(tmp_path / "epochs.npy", np.zeros((3, 7)))
    with pytest.raises(ValueError, match="expected little-endian float32 in C order"):
        trajectory.committed(tmp_path / "epochs.npy")


# ---- a kill at any moment ------------------------------------------------------------------------


@pytest.mark.parametrize("tail", [7, PARAMS * 4], ids=["torn row", "row without its header"])
def test_bytes_past_the_committed_rows_are_ignored_then_replaced(store, tail):
    """A kill mid-row, or after the row but before the header counts it."""
    rec = write_run(store, epochs=2)
    path = snap_dir(store, rec) / "epochs.npy"
    committed = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b"\xff" * tail)
    assert store.snapshot_epochs(rec["id"]) == [0, 1, 2]
    assert np.load(path, mmap_mode="r").shape == (3, PARAMS)
    assert check(store)["problems"] == 0
    listed = invoke("ls")
    assert listed.exit_code == 0 and "corrupt" not in listed.output
    # The next append (a resumed run) cuts the leftover off and writes its row in its place.
    writer = TrajectoryWriter(path.parent)
    assert writer.append(3, epoch_arrays(3)) == PARAMS * 4
    assert path.read_bytes()[HEADER_LEN : len(committed)] == committed[HEADER_LEN:]
    assert path.stat().st_size == len(committed) + PARAMS * 4
    got = store.snapshot(rec["id"], 3)
    assert all(np.array_equal(got[k], a) for k, a in epoch_arrays(3).items())


def _truncate_rows(d):
    path = d / "snapshots" / "epochs.npy"
    path.write_bytes(path.read_bytes()[:-5])


def _garbage_header(d):
    path = d / "snapshots" / "epochs.npy"
    path.write_bytes(b"PK\x03\x04" + path.read_bytes()[4:])


DAMAGE = {
    "truncated rows": (_truncate_rows, "snapshot epochs.npy is damaged: it holds"),
    "not an npy file": (_garbage_header, "epochs.npy is damaged: not a .npy file"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_trajectory_is_corrupt_everywhere_and_never_repaired(store, damage):
    good = write_run(store, cell={"model.use_bias": True})
    bad = write_run(store, cell={"model.use_bias": False}, use_bias=False)
    invoke("ls")  # indexed before the damage: the damage must be seen anyway
    harm, reason = DAMAGE[damage]
    harm(store.run_dir(bad["id"]))
    before = (snap_dir(store, bad) / "epochs.npy").read_bytes()
    with pytest.raises(DamagedSnapshot, match=reason):
        store.snapshot(bad["id"], 3)
    listed = invoke("ls")
    assert listed.exit_code == 0 and good["id"] in listed.output
    assert f"• {bad['id']}: corrupt: " in listed.output
    assert reason in " ".join(listed.output.split())
    compared = invoke("compare", good["id"], bad["id"], "--per-epoch")  # a pair by use_bias
    assert compared.exit_code == 0 and "corrupt" in compared.output
    assert f"{bad['id']}: snapshots unreadable" in " ".join(compared.output.split())
    checked = invoke("check")
    assert checked.exit_code == 1 and f"corrupt      {bad['id']}" in checked.output
    assert reason in " ".join(checked.output.split()) and good["id"] not in checked.output
    assert invoke("check", "--repair").exit_code == 1
    assert (snap_dir(store, bad) / "epochs.npy").read_bytes() == before, "run data untouched"


@pytest.mark.parametrize(
    "harm, reason",
    [
        (lambda p: p.unlink(), "snapshots/layout.json is missing"),
        (lambda p: p.write_text("{"), "layout.json is not valid JSON"),
        (
            lambda p: p.write_text(p.read_text().replace('"size": 6', '"size": 5')),
            "variable 'dense_1/kernel' does not follow the previous",
        ),
        (
            lambda p: p.write_text(p.read_text().replace('"params": 13', '"params": 12')),
            "params is 12, its variables hold 13",
        ),
    ],
    ids=["missing", "not json", "wrong size", "wrong params"],
)
def test_check_names_a_damaged_layout(store, harm, reason):
    rec = write_run(store)
    harm(snap_dir(store, rec) / "layout.json")
    (finding,) = check(store)["findings"]
    assert finding["kind"] == "corrupt" and reason in finding["detail"]
    with pytest.raises(DamagedSnapshot):
        store.snapshot(rec["id"], 1)


def test_a_header_that_disagrees_with_the_layout_is_damage(store):
    rec = write_run(store)
    path = snap_dir(store, rec) / "epochs.npy"
    data = path.read_bytes()
    path.write_bytes(trajectory.header(2, PARAMS * 2) + data[HEADER_LEN:])  # same bytes, 2 rows
    (finding,) = check(store)["findings"]
    assert "it has 26 columns, layout.json describes 13" in finding["detail"]


# ---- writing: resume, fallbacks, the Dask writer -------------------------------------------------


def test_resume_cuts_the_trajectory_and_rewrites_it_bit_for_bit(store):
    writer = new_writer(store)
    for epoch in range(4):
        writer.append_epoch_snapshot(epoch, epoch_arrays(epoch))
    writer.write_snapshot("steps-0003.npz", {"step": np.arange(2), "x": np.zeros(2)})
    writer.close()
    writer.lock.release()  # as the process that wrote it does when it ends
    snaps = writer.dir / "snapshots"
    full = (snaps / "epochs.npy").read_bytes()
    with open(snaps / "epochs.npy", "ab") as fh:
        fh.write(b"\x00" * 9)  # what a kill mid-append leaves
    again = RunWriter.reopen(store, writer.id)
    assert again.epochs is not None and again.epochs.rows == 4
    again.drop_snapshots_after(3)  # resuming after the last epoch: only the torn bytes go
    assert (snaps / "epochs.npy").read_bytes() == full
    again.drop_snapshots_after(1)
    assert store.snapshot_epochs(writer.id) == [0, 1]
    assert (snaps / "epochs.npy").stat().st_size == HEADER_LEN + 2 * PARAMS * 4
    assert not (snaps / "steps-0003.npz").exists()
    layout = (snaps / "layout.json").stat().st_size
    assert snapshot_usage(snaps) == (2, HEADER_LEN + 2 * PARAMS * 4 + layout)
    with pytest.raises(StoreError, match="epoch 3 cannot follow 2 rows"):
        again.append_epoch_snapshot(3, epoch_arrays(3))
    for epoch in (2, 3):
        assert again.append_epoch_snapshot(epoch, epoch_arrays(epoch)) == PARAMS * 4
    again.close()
    assert (snaps / "epochs.npy").read_bytes() == full


def test_older_npz_runs_go_on_with_npz_files_when_resumed(store):
    rec = write_run(store, epochs=2, layout="npz")
    writer = RunWriter.reopen(store, rec["id"])
    assert writer.epochs is None
    writer.drop_snapshots_after(1)
    writer.append_epoch_snapshot(2, epoch_arrays(2))
    writer.close()
    assert sorted(p.name for p in snap_dir(store, rec).iterdir()) == [
        "epoch-0000.npz",
        "epoch-0001.npz",
        "epoch-0002.npz",
    ]
    assert np.array_equal(store.snapshot(rec["id"], 2)["out/bias"], epoch_arrays(2)["out/bias"])


def test_compress_keeps_one_deflated_npz_per_epoch(store):
    rec = write_run(store, config_overrides={"snapshots.compress": True})
    names = sorted(p.name for p in snap_dir(store, rec).iterdir())
    assert names == [f"epoch-{e:04d}.npz" for e in range(4)]
    with zipfile.ZipFile(snap_dir(store, rec) / "epoch-0002.npz") as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    assert store.trajectory(rec["id"], "out/kernel").shape == (4, 3, 1)


def test_variables_that_are_not_float32_fall_back_to_npz_files(store):
    writer = new_writer(store)
    for epoch in range(2):
        assert writer.append_epoch_snapshot(epoch, epoch_arrays(epoch, np.float64)) > 0
    writer.close()
    names = sorted(p.name for p in (writer.dir / "snapshots").iterdir())
    assert names == ["epoch-0000.npz", "epoch-0001.npz"], "no layout.json, no epochs.npy"
    assert store.snapshot(writer.id, 1)["dense_1/kernel"].dtype == np.float64


def test_the_dask_writer_ships_the_same_bytes(store):
    here = new_writer(store)
    record = {**here.record, "status": "completed"}
    away = executors.MemoryWriter(None, record, config())
    for epoch in range(3):
        assert here.append_epoch_snapshot(epoch, epoch_arrays(epoch)) == (
            away.append_epoch_snapshot(epoch, epoch_arrays(epoch))
        )
    here.close()
    shipped = away.collected()
    assert set(shipped.files) == {
        f"snapshots/{n}" for n in ("epochs.npy", "layout.json", "epochs.crc32")
    }
    written = executors.write_collected(store, shipped)
    for name in ("epochs.npy", "layout.json"):
        assert (store.run_dir(written["id"]) / "snapshots" / name).read_bytes() == (
            here.dir / "snapshots" / name
        ).read_bytes()
    assert store.snapshot_epochs(written["id"]) == [0, 1, 2]


@pytest.mark.both_layouts
def test_unknown_variable_names_the_ones_there_are(store, layout):
    rec = write_run(store, layout=layout)
    with pytest.raises(UsageError, match=r"no variable 'out/kernl'.*did you mean 'out/kernel'"):
        store.trajectory(rec["id"], "out/kernl")
