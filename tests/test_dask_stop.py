"""Dask sweeps (issue 17 item 11): a stop reaches the workers, waits are bounded and say what for.

Real ``distributed.LocalCluster`` everywhere; only the test that trains imports TensorFlow.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import warnings
from pathlib import Path

import pytest

from tests.conftest import CONFIGS
from weightlab import analysis, executors, lifecycle
from weightlab.config import load_experiment
from weightlab.errors import UsageError
from weightlab.store import Store

distributed = pytest.importorskip("distributed")

LONG = ["data.samples=40", "train.epochs=100000", "snapshots.every=never", "matrix={}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def experiment():
    return load_experiment(CONFIGS / "linear-regression.yaml", LONG, seeds="0-1")


def test_an_unreachable_scheduler_is_named_after_the_timeout(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    notes: list[str] = []
    start = time.monotonic()
    with pytest.raises(UsageError) as refused:
        executors.run_sweep(
            experiment(),
            Store.open(tmp_path),
            executor="dask",
            scheduler=address,
            scheduler_timeout=1,
            on_event=lambda e: notes.append(e.get("text", "")),
        )
    assert time.monotonic() - start < 15  # 31 s before, silently
    assert f"--scheduler {address}: no Dask scheduler answered there within 1 s" in str(
        refused.value
    )
    assert any(f"connecting to the Dask scheduler at {address}" in n for n in notes)
    assert not (tmp_path / "runs").exists()


def test_a_scheduler_without_workers_is_named_after_the_timeout(tmp_path: Path) -> None:
    with distributed.LocalCluster(
        n_workers=0, dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}
    ) as cluster:
        notes: list[str] = []
        start = time.monotonic()
        with pytest.raises(UsageError) as refused:
            executors.run_sweep(
                experiment(),
                Store.open(tmp_path),
                executor="dask",
                scheduler=cluster.scheduler_address,
                scheduler_timeout=1,
                on_event=lambda e: notes.append(e.get("text", "")),
            )
        assert time.monotonic() - start < 15  # 61 s before, silently
    assert "answered but has no workers after 1 s" in str(refused.value)
    assert any("has no worker yet: waiting up to 1 s for one" in n for n in notes)


def test_our_local_cluster_never_warns_that_port_8787_is_taken() -> None:
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass  # taken already: all the better
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with executors._dask_client(None, 1) as client:
                assert client.scheduler_info()["workers"]
    assert not [w for w in caught if "already in use" in str(w.message)]


def test_runs_of_a_batch_are_listed_in_matrix_order() -> None:
    def rec(run_id: str, batch: str, index: int, at: str) -> dict:
        return {"id": run_id, "batch": batch, "index": index, "started_at": at}

    records = [  # two workers: index 1 started a moment before index 0
        rec("b", "B2", 0, "2026-01-01T00:01:01.500Z"),
        rec("a", "B2", 1, "2026-01-01T00:01:01.200Z"),
        rec("c", "B2", 2, "2026-01-01T00:01:09.000Z"),
        rec("z", "B1", 0, "2026-01-01T00:00:00.000Z"),
    ]
    assert [r["id"] for r in analysis.run_order(records)] == ["z", "b", "a", "c"]


def test_a_run_written_by_the_client_carries_its_start_time_in_its_id(tmp_path: Path) -> None:
    exp = load_experiment(CONFIGS / "linear-regression.yaml", ["matrix={}"])
    spec = exp.runs[0]
    record = executors.spec_record(spec, "b1", data={}, versions={}, source={})
    record.update(status="completed", started_at="2026-11-29T08:44:21.123Z")
    run = executors.CollectedRun(record, spec.config, [], {})
    written = executors.write_collected(Store.open(tmp_path), run)
    assert written["id"].startswith("261129-084421-")


@pytest.mark.keras
def test_a_stopped_dask_sweep_stops_the_training_on_its_workers(tmp_path: Path) -> None:
    """Cancelling a future leaves its thread running: the workers trained the cancelled runs to
    their end. Now they poll the sweep's stop event and stop within seconds."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},
        ) as cluster,
        distributed.Client(cluster) as ours,
    ):
        sent: list[int] = []

        def on_event(event: dict) -> None:
            # Once a run is training (the scheduler may well queue both runs on one worker).
            if event["type"] == "epoch" and event["epoch"] >= 2 and not sent:
                sent.append(event["run"]["index"])
                os.kill(os.getpid(), signal.SIGTERM)

        # Never hang the suite: if no epoch event came in 120 s, stop anyway (and fail below).
        guard = threading.Timer(120, lambda: sent or os.kill(os.getpid(), signal.SIGTERM))
        guard.start()
        with pytest.raises(lifecycle.Terminated):
            executors.run_sweep(
                experiment(),
                Store.open(tmp_path),
                executor="dask",
                scheduler=cluster.scheduler_address,
                on_event=on_event,
            )
        guard.cancel()
        assert sent, "no run reached epoch 2 in 120 s"
        stopped = time.monotonic()

        def executing(dask_worker) -> int:
            return len(dask_worker.state.executing)

        while any(ours.run(executing).values()):
            assert time.monotonic() - stopped < 10, "the workers train on"
            time.sleep(0.1)
    records = Store.open(tmp_path).runs()
    assert records and {r["status"] for r in records} == {"interrupted"}
