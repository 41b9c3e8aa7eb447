"""Stopping by design (issue 17 item 10): a signal sets a flag, training stops itself.

A handler that raises loses its exception when the signal lands in code that swallows it (a
finalizer, a callback catching everything). ``benchmarks/stress_signals.py`` delivers hundreds
of signals at random moments; these tests hold the mechanism and a few real deliveries.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, REPO
from weightlab import lifecycle
from weightlab.store import Store


def test_while_training_polls_the_first_signal_only_sets_the_flag() -> None:
    with lifecycle.stop_on_signals(), lifecycle.polling():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler has run: nothing was raised into this sleep
        assert lifecycle.stop_requested() == signal.SIGTERM
        with pytest.raises(lifecycle.Terminated) as stopped:
            lifecycle.check_stop()
    assert lifecycle.exit_code(stopped.value) == 143
    assert lifecycle.stop_requested() is None, "cleared once the block is left"


def test_a_second_signal_stops_harder() -> None:
    with lifecycle.stop_on_signals(), lifecycle.polling():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        with pytest.raises(lifecycle.Terminated):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(1)
    assert lifecycle.stop_requested() is None


def test_outside_training_the_first_signal_raises_and_a_swallowed_one_is_still_honoured() -> None:
    with lifecycle.stop_on_signals():
        try:  # what a finalizer that catches everything does with the raise
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except BaseException:
            pass
        with pytest.raises(lifecycle.Terminated):
            lifecycle.check_stop()


def test_a_third_signal_exits_at_once() -> None:
    script = (
        "import os, signal, time\n"
        "from weightlab import lifecycle\n"
        "with lifecycle.stop_on_signals(), lifecycle.polling():\n"
        "    for _ in range(3):\n"
        "        try:\n"
        "            os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2)\n"
        "        except BaseException:\n"
        "            pass\n"
        "    print('not reached')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 143
    assert "SIGTERM a third time: exiting now" in proc.stderr
    assert "not reached" not in proc.stdout


def test_a_remote_stop_request_is_polled() -> None:
    asked = []

    def requested() -> bool:
        asked.append(1)
        return len(asked) >= 2

    with lifecycle.remote_stop(requested):
        assert lifecycle.stop_requested() is None
        assert lifecycle.stop_requested() is None, "not asked again within the poll interval"
        time.sleep(lifecycle.REMOTE_POLL_SECONDS)
        assert lifecycle.stop_requested() == signal.SIGTERM
    assert lifecycle.stop_requested() is None


@pytest.mark.keras
def test_a_signal_landing_in_code_that_swallows_it_still_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lost SIGTERM of the issue: with a raising handler, a signal that arrives inside a
    callback catching everything is gone and the run trains on to its end."""
    import keras

    from weightlab.config import load_experiment
    from weightlab.training import runner, sweep

    class Swallows(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with contextlib.suppress(BaseException):  # everything, as some finalizers do
                time.sleep(0.1)  # where the signal lands (most of the time)

    monkeypatch.setattr(runner, "extra_callbacks", lambda cfg, writer: [Swallows()])
    store = Store.open(tmp_path / "store")
    experiment = load_experiment(
        CONFIGS / "linear-regression.yaml",
        ["data.samples=40", "train.epochs=100000", "snapshots.every=never"],
    )
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        sent: list[float] = []

        def deliver(sig: int = sig, sent: list[float] = sent) -> None:
            while not store.run_dirs() or len(store.history(store.run_dirs()[-1].name)) < 3:
                time.sleep(0.01)
            sent.append(time.monotonic())
            os.kill(os.getpid(), sig)

        for d in store.run_dirs():  # one run directory per trial
            d.rename(d.with_name("." + d.name))
        sender = threading.Thread(target=deliver, daemon=True)
        sender.start()
        with pytest.raises(lifecycle.Terminated) as stopped:
            sweep.run_experiment(experiment, store)
        took = time.monotonic() - sent[0]
        assert stopped.value.signum == sig
        record = store.runs()[0]
        assert record["status"] == "interrupted", record
        assert record["error"].startswith(f"interrupted by {signal.Signals(sig).name}")
        assert took < 2.0, f"stopped {took:.2f} s after the signal"
