"""Sweeps: --matrix/--seeds expansion, --dry-run, worker processes, Dask, failures and progress.

The tests without the `keras` mark never import TensorFlow. The `keras` ones start real spawned
worker processes and a real Dask LocalCluster (each worker pays one TensorFlow import), so they
train tiny runs and share one in-process reference sweep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import psutil
import pytest
from click.testing import CliRunner
from conftest import CONFIGS, REPO
from rich.console import Console

from weightlab import executors, lifecycle
from weightlab.cli import cli
from weightlab.config import load_experiment, parse_matrix_axis, parse_seeds
from weightlab.errors import ConfigError, UsageError, WeightlabError
from weightlab.progress import RunProgress
from weightlab.store import Store, new_record

BIAS = CONFIGS / "bias-vs-no-bias.yaml"
TINY = ["data.samples=48", "train.epochs=2", "train.batch_size=16", "seed=0"]


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---- expansion -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("0-4", [0, 1, 2, 3, 4]), ("0,3,7", [0, 3, 7]), ("0-2,7", [0, 1, 2, 7]), (" 5 ", [5])],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3-1", "--seeds '3-1': seeds: empty range 3-1; write 1-3"),
        (
            "1,x",
            "--seeds '1,x': seeds: expected a range such as 0-4 or a list such as 0,3,7; got 'x'",
        ),
        ("-1", "got '-1'"),
        ("", "got ''"),
    ],
)
def test_parse_seeds_errors(text, message):
    with pytest.raises(ConfigError) as e:
        parse_seeds(text)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("text", "key", "values"),
    [
        ("model.use_bias=true,false", "model.use_bias", [True, False]),
        (
            "train.optimizer=sgd,{name: adam, learning_rate: 1e-3}",
            "train.optimizer",
            ["sgd", {"name": "adam", "learning_rate": 0.001}],
        ),
        ("model.layers.0.units=[4, 8]", "model.layers.0.units", [4, 8]),
        ("data.noise=0.5", "data.noise", [0.5]),
    ],
)
def test_parse_matrix_axis_reads_values_as_yaml(text, key, values):
    assert parse_matrix_axis(text) == (key, values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model.use_bais=true,false",
            "--matrix 'model.use_bais=true,false': model.use_bais: 'use_bais' is not a key of "
            "'model'; did you mean 'use_bias'?",
        ),
        ("trian.epochs=1,2", "'trian' is not a config section; did you mean 'train'?"),
        ("model.use_bias", "--matrix 'model.use_bias': model.use_bias: expected KEY=V1,V2,..."),
        ("train.epochs=[1,", "--matrix 'train.epochs=[1,': train.epochs: not valid YAML"),
    ],
)
def test_parse_matrix_axis_errors(text, message):
    with pytest.raises(ConfigError) as e:
        parse_matrix_axis(text)
    assert message in str(e.value)


def test_cli_axes_join_the_file_matrix_and_replace_its_seeds():
    exp = load_experiment(BIAS, matrix=["train.optimizer=sgd,adam"], seeds="3-4")
    assert exp.describe() == "8 runs: 2 model.use_bias × 2 train.optimizer × 2 seeds"
    assert [(r.cell["train.optimizer"], r.seed) for r in exp.runs[:4]] == [
        ("sgd", 3),
        ("sgd", 4),
        ("adam", 3),
        ("adam", 4),
    ]
    assert exp.runs[2].config["train"]["optimizer"] == "adam"
    # Recorded as overrides that replay the same sweep.
    assert exp.overrides == ['matrix.train.optimizer=["sgd", "adam"]', "seeds=[3, 4]"]
    assert load_experiment(BIAS, exp.overrides).describe() == exp.describe()
    # An axis of the file given again on the command line replaces it.
    assert (
        load_experiment(BIAS, matrix=["model.use_bias=false"]).describe()
        == "5 runs: 1 model.use_bias × 5 seeds"
    )


def test_bad_matrix_value_is_located_at_the_option():
    with pytest.raises(ConfigError) as e:
        load_experiment(BIAS, matrix=["train.epochs=2,0"])
    assert "--matrix 'train.epochs=2,0' (matrix value 0): train.epochs: expected an integer" in str(
        e.value
    )


def test_dry_run_prints_the_product_and_writes_nothing(store_dir):
    result = invoke(
        "run",
        BIAS,
        "--matrix",
        "train.optimizer=sgd,{name: adam, learning_rate: 0.01}",
        "--seeds",
        "0,7",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    title, *rows = [line.rstrip() for line in result.output.splitlines()]
    assert title == (
        "bias-vs-no-bias: 8 runs: 2 model.use_bias × 2 train.optimizer × 2 seeds "
        "(dry run: nothing trains)"
    )
    assert "\n".join(rows) == textwrap.dedent(
        """\
        run  seed  group  use_bias  optimizer
        ────────────────────────────────────────────────────
          1     0      1  true      sgd
          2     7      1  true      sgd
          3     0      2  true      adam(learning_rate=0.01)
          4     7      2  true      adam(learning_rate=0.01)
          5     0      1  false     sgd
          6     7      1  false     sgd
          7     0      2  false     adam(learning_rate=0.01)
          8     7      2  false     adam(learning_rate=0.01)
        group 1: vectorized engine, runs 1, 2, 5, 6 (4 compatible runs; split by train.optimizer)
        group 2: vectorized engine, runs 3, 4, 7, 8 (4 compatible runs; split by train.optimizer)"""
    )
    assert not store_dir.exists()
    result = invoke("run", BIAS, "--seeds", "1-2", "--dry-run", "--format", "json")
    assert json.loads(result.output)[3] == {
        "run": 4,
        "seed": 2,
        "cell": {"model.use_bias": False},
        "group": 1,
        "engine": "vectorized",
    }


def test_dry_run_and_bad_axes_never_import_tensorflow(tmp_path):
    fake = tmp_path / "fake"
    for name in ("tensorflow", "keras"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text("raise ImportError('no TensorFlow here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(REPO)])}
    base = [sys.executable, "-m", "weightlab", "run", str(BIAS), "--jobs", "2"]
    ok = subprocess.run([*base, "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "10 runs: 2 model.use_bias × 5 seeds" in ok.stdout
    bad = subprocess.run(
        [*base, "--matrix", "model.use_bais=true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "did you mean 'use_bias'?" in bad.stderr


def test_scheduler_needs_the_dask_executor(store_dir):
    result = invoke("run", BIAS, "--scheduler", "tcp://127.0.0.1:1", "--quiet")
    assert result.exit_code == 2
    assert "--scheduler is the address of a Dask scheduler; add --executor dask" in result.output
    assert not store_dir.exists()


def test_missing_dask_says_how_to_install(monkeypatch, store):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    with pytest.raises(WeightlabError) as e:
        executors.run_sweep(load_experiment(BIAS, TINY), store, executor="dask")
    assert "pip install 'weightlab[dask]'" in str(e.value)
    assert not store.runs_dir.exists()


def test_unreachable_scheduler_is_a_usage_error(store):
    import dask
    import distributed  # noqa: F401  (its config defaults must exist before config.set saves them)

    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(UsageError) as e,
    ):
        executors.run_sweep(
            load_experiment(BIAS, TINY), store, executor="dask", scheduler="tcp://127.0.0.1:9"
        )
    assert "--scheduler tcp://127.0.0.1:9: no Dask scheduler answered there" in str(e.value)


# ---- without TensorFlow: runs sent back whole, failures, progress --------------------------------


def _record(index=0, status="completed"):
    record = new_record(
        experiment="exp",
        batch="b1",
        index=index,
        seed=0,
        cell={"model.use_bias": True},
        epochs=1,
        snapshots_every="epoch",
        data={},
        versions={},
    )
    record["status"] = status
    return record


def test_a_collected_run_is_written_whole(store):
    spec = load_experiment(BIAS, TINY).runs[0]
    writer = executors.MemoryWriter(None, _record(), spec.config)
    arrays = {"dense_1/kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}
    assert writer.write_snapshot("epoch-0000.npz", arrays) > 0
    writer.append_history({"epoch": 0, "weights": {}})
    writer.append_history({"epoch": 1, "loss": 0.5, "weights": {}})
    writer.write_text("error.txt", "nothing")
    (writer.dir / "tensorboard" / "train").mkdir(parents=True)  # as Keras' TensorBoard would
    (writer.dir / "tensorboard" / "train" / "events.out").write_bytes(b"\x00event")
    record = executors.write_collected(store, writer.collected())
    assert not writer.dir.exists()
    tb = store.run_dir(record["id"]) / "tensorboard" / "train" / "events.out"
    assert tb.read_bytes() == b"\x00event"
    assert record["id"] and store.record(record["id"])["status"] == "completed"
    assert [row["epoch"] for row in store.history(record["id"])] == [0, 1]
    np.testing.assert_array_equal(
        store.snapshot(record["id"], 0)["dense_1/kernel"], arrays["dense_1/kernel"]
    )
    assert store.config(record["id"]) == spec.config
    assert (store.run_dir(record["id"]) / "error.txt").read_text() == "nothing"
    assert store.select([record["id"]])[0]["status"] == "completed"  # indexed


def test_a_run_whose_worker_died_is_recorded_failed(store):
    spec = load_experiment(BIAS, TINY).runs[1]
    # Died before it had a directory: one is made for the failure.
    record = executors.record_failure(store, spec, {}, "b1", {}, None, "worker process died")
    assert store.record(record["id"])["status"] == "failed"
    assert store.record(record["id"])["cell"] == {"model.use_bias": False}
    # Died mid-run: its directory says failed, its history is kept.
    executors.record_failure(store, spec, {}, "b1", {}, record["id"], "again", "trace")
    again = store.get(record["id"])
    assert again["error"] == "again" and again["finished_at"]
    assert (store.run_dir(record["id"]) / "error.txt").read_text() == "trace"


def test_progress_shows_the_sweep_as_a_whole():
    console = Console(record=True, width=100, force_terminal=False)
    progress = RunProgress(console)
    with progress:
        progress.on_event(
            {
                "type": "batch_start",
                "batch": "b1",
                "total": 4,
                "describe": "4 runs: 2 seeds",
                "workers": 2,
            }
        )
        for index in (0, 1):
            run = {**_record(index), "id": f"r{index}", "epochs": 10}
            progress.on_event({"type": "run_start", "run": run})
        progress.on_event({"type": "epoch", "run": {"index": 1}, "epoch": 5, "logs": {"loss": 1.0}})
        assert progress.running[1][1] == 5
        failed = {**_record(0, "failed"), "id": "r0", "error": "ValueError: boom"}
        progress.on_event({"type": "run_end", "run": failed})
        summary = progress.summary()
    assert summary.startswith("1 running · 1 failed · about ")  # ETA from 1.5 of 4 runs
    text = console.export_text()
    assert "Training 4 runs: 2 seeds  (batch b1, 2 workers)" in text
    assert "failed: ValueError: boom  r0  use_bias=true" in text


# ---- real training in worker processes and on Dask -----------------------------------------------

SWEEP = [*TINY, "--seeds", "0-1"]


def snapshots_by_run(store, records):
    """``{(cell, seed): {epoch: {key: array}, "files": {name: bytes}}}`` of every run."""
    out = {}
    for r in records:
        key = (json.dumps(r["cell"], sort_keys=True), r["seed"])
        out[key] = {e: store.snapshot(r["id"], e) for e in store.snapshot_epochs(r["id"])}
        snaps = store.run_dir(r["id"]) / "snapshots"
        out[key]["files"] = {p.name: p.read_bytes() for p in sorted(snaps.iterdir())}
    return out


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].keys() == b[key].keys()
        # The same files, byte for byte: epochs.npy and layout.json, wherever the run trained.
        assert a[key]["files"] == b[key]["files"] and "epochs.npy" in a[key]["files"]
        for epoch in (e for e in a[key] if e != "files"):
            for name, array in a[key][epoch].items():
                assert np.array_equal(array, b[key][epoch][name]), (key, epoch, name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep trained in this process (--jobs 1): 2 cells × 2 seeds."""
    store = Store(tmp_path_factory.mktemp("ref") / "store")
    exp = load_experiment(BIAS, TINY, seeds="0-1")
    result = executors.run_sweep(exp, store, jobs=1)
    return snapshots_by_run(store, result.records)


def run_cli_json(*extra: str):
    result = invoke("run", BIAS, *SWEEP, "--quiet", "--format", "json", *extra)
    return result, json.loads(result.stdout) if result.stdout.startswith("[") else None


@pytest.mark.keras
def test_jobs_2_gives_the_same_snapshots_as_jobs_1(reference, store):
    result, records = run_cli_json("--jobs", "2")
    assert result.exit_code == 0, result.output
    assert sorted(r["status"] for r in records) == ["completed"] * 4
    assert len({r["pid"] for r in records}) == 2  # trained in two worker processes
    assert len({r["batch"] for r in records}) == 1
    assert_identical(snapshots_by_run(store, records), reference)


@pytest.mark.keras
def test_dask_local_cluster_writes_every_run_into_the_store(reference, store):
    """A real LocalCluster(processes=True, n_workers=2); the runs come back to this process."""
    events = []
    exp = load_experiment(BIAS, TINY, seeds="0-1")
    result = executors.run_sweep(exp, store, executor="dask", jobs=2, on_event=events.append)
    records = result.records
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert events[0]["type"] == "batch_start" and events[0]["workers"] == 2
    # Progress comes back from the workers as Dask events; each run ends once.
    epochs = {(e["run"]["index"], e["epoch"]) for e in events if e["type"] == "epoch"}
    assert {i for i, _ in epochs} <= {0, 1, 2, 3} and len(epochs) >= 1
    assert sum(e["type"] == "run_end" for e in events) == 4
    for r in records:
        on_disk = store.record(r["id"])
        assert on_disk["status"] == "completed" and on_disk["pid"] != os.getpid()
        assert len(store.history(r["id"])) == 3 and store.snapshot_epochs(r["id"]) == [0, 1, 2]
    assert len(store.select([records[0]["batch"]])) == 4
    assert_identical(snapshots_by_run(store, records), reference)


# A run TensorFlow rejects at fit time: class labels 0..2 for a 1-unit output.
FAILING = "name: fails\ndata: {kind: blobs, samples: 40, centers: 3}\nmodel: {layers: [1]}\n"
LOSSES = "train.loss=mse,sparse_categorical_crossentropy"


@pytest.mark.keras
def test_a_failing_run_and_a_dying_worker_spare_the_others(store, write_config):
    """Runs 2 and 3 raise inside their worker; the worker of run 1 is killed as the run starts.
    Run 0 completes, and every failure is recorded."""
    exp = load_experiment(write_config(FAILING), ["train.epochs=2"], matrix=[LOSSES], seeds="0-1")

    def on_event(event):
        if event["type"] == "run_start" and event["run"]["index"] == 1:
            os.kill(event["run"]["pid"], signal.SIGKILL)

    # The keras engine: one run per task, so one run's failure is its own (a vectorized group
    # fails or dies as one: tests/test_vectorized.py).
    result = executors.run_sweep(exp, store, jobs=2, on_event=on_event, engine="keras")
    by_index = {r["index"]: r for r in result.records}
    assert [by_index[i]["status"] for i in range(4)] == ["completed", "failed", "failed", "failed"]
    assert by_index[1]["error"] == f"worker process died (exit code {-signal.SIGKILL})"
    assert "sparse" in (store.run_dir(by_index[2]["id"]) / "error.txt").read_text().lower()
    assert {r["status"] for r in store.select([result.batch])} == {"completed", "failed"}
    assert store.get(by_index[1]["id"])["status"] == "failed"  # run.json and index agree


@pytest.mark.keras
def test_fail_fast_starts_nothing_after_a_failure(store, write_config):
    axis = "train.loss=sparse_categorical_crossentropy,mse"
    result = invoke(
        "run",
        write_config(FAILING),
        "train.epochs=1",
        "--matrix",
        axis,
        "--seeds",
        "0-1",
        "--fail-fast",
        "--engine",
        "keras",
    )
    assert result.exit_code == 1
    assert "3 run(s) not started (--fail-fast)" in result.output
    assert [r["status"] for r in store.runs()] == ["failed"]


# ---- a signal to the parent alone ----------------------------------------------------------------

# Long enough that no run can finish before the other worker has trained an epoch: each worker
# imports TensorFlow on its first task, and at 3000 epochs one worker could finish its run while
# the other, on a loaded machine, was still importing (the test then saw 3 records, not 2). The
# signal stops every run after an epoch or two, so the length costs nothing.
LONG = ["data.samples=48", "train.epochs=100000", "train.batch_size=16", "seed=0"]


def signal_once_two_runs_train(sig):
    """An on_event handler that signals this process once two runs have finished an epoch."""
    training: set[int] = set()

    def on_event(event):
        if event["type"] == "epoch":
            training.add(event["run"]["index"])
            if len(training) == 2:
                training.add(-1)  # once
                os.kill(os.getpid(), sig)

    return on_event


@pytest.mark.keras
def test_sigterm_to_the_parent_of_worker_processes_interrupts_their_runs(store):
    """`kill PARENT` (a CI runner cancelling a job): the workers are told, each records its run
    `interrupted` with the epoch it reached, and none is left `running` or `crashed`."""
    exp = load_experiment(BIAS, LONG, seeds="0-1")
    with pytest.raises(lifecycle.Terminated):
        executors.run_sweep(
            exp,
            store,
            jobs=2,
            on_event=signal_once_two_runs_train(signal.SIGTERM),
            engine="keras",
        )
    records = store.runs()
    assert len(records) == 2, "the runs not started stay unstarted"
    for r in records:
        assert r["status"] == "interrupted", r
        assert r["error"].startswith("interrupted by SIGTERM after epoch"), r["error"]
        assert 1 <= r["epochs_completed"] < 3000 and r["finished_at"]
        assert not psutil.pid_exists(r["pid"]), "the worker has left"
        assert store.snapshot_epochs(r["id"])[: r["epochs_completed"] + 1] == list(
            range(r["epochs_completed"] + 1)
        )
    assert {r["status"] for r in store.select()} == {"interrupted"}, "the index agrees"


@pytest.mark.keras
def test_an_interrupted_dask_sweep_records_the_runs_it_loses(store):
    """Runs training on Dask workers live in the workers' memory until they end: when the sweep
    is stopped they are recorded `interrupted`, saying their data stayed on the worker."""
    exp = load_experiment(BIAS, LONG, seeds="0-1")
    with pytest.raises(lifecycle.Terminated):
        executors.run_sweep(
            exp,
            store,
            executor="dask",
            jobs=2,
            on_event=signal_once_two_runs_train(signal.SIGTERM),
            engine="keras",  # one run per task: two train, two wait (groups: test_vectorized)
        )
    records = store.runs()
    # On failure, say what each record is: a worker lost under load records its run failed.
    seen = [(r["index"], r["status"], r["error"]) for r in records]
    assert len(records) == 2, seen
    for r in records:
        assert r["status"] == "interrupted", seen
        assert "on a Dask worker; its history and snapshots stayed there" in r["error"]
        assert r["epochs_completed"] >= 1
