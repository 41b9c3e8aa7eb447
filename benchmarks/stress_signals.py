"""Stress test of stopping (issue 17 item 10): many SIGTERM/SIGINT deliveries at random moments.

Each delivery trains a fresh run, waits a random time (0 to 1 s) once training is under way
(epoch 1 recorded), sends SIGTERM or SIGINT to the process, and measures how long until training
has stopped and the run is recorded ``interrupted``. The moments vary by scenario:

- ``mid-epoch``: long epochs (4,000 samples, batch 8), per-epoch snapshots;
- ``snapshot-writes``: a snapshot every step, so the background writer is always busy;
- ``swallowing-callback``: a callback that swallows every exception (what some finalizers do),
  where the process spends most of its time: the case where a raising handler lost the signal;
- ``cli``: a real ``weightlab run -q`` subprocess (``--cli-deliveries`` of them), exit code
  checked (130 for SIGINT, 143 for SIGTERM).

All the while another process lists the store with ``weightlab ls`` and the Python API. A
delivery passes when training stopped within ``--limit`` seconds (2) and the record says
``interrupted``. Prints the count that passed, the latencies (median, 95th percentile, max) per
scenario, and exits 1 if any delivery failed.

    python benchmarks/stress_signals.py --deliveries 100 --cli-deliveries 10
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT

CONFIG = ROOT / "configs" / "linear-regression.yaml"
SCENARIOS = {
    "mid-epoch": ["data.samples=4000", "train.batch_size=8", "train.epochs=100000"],
    "snapshot-writes": [
        "data.samples=400",
        "train.batch_size=8",
        "train.epochs=100000",
        "snapshots.every=1",
    ],
    "swallowing-callback": ["data.samples=40", "train.epochs=100000", "snapshots.every=never"],
}


def lister(store: Path, stop: threading.Event) -> threading.Thread:
    """Another process polling the store the whole time: `weightlab ls`, then the Python API."""
    env = {**os.environ, "WEIGHTLAB_STORE": str(store), "PYTHONPATH": str(ROOT)}
    script = (
        "import sys, time\n"
        "from weightlab.store import Store\n"
        "s = Store.open(sys.argv[1])\n"
        "end = time.time() + 3\n"
        "while time.time() < end:\n"
        "    s.runs()\n"
    )

    def loop() -> None:
        while not stop.is_set():
            subprocess.run(
                [sys.executable, "-m", "weightlab", "ls"], env=env, capture_output=True, timeout=60
            )
            subprocess.run(
                [sys.executable, "-c", script, str(store)], env=env, capture_output=True, timeout=60
            )

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def training_started(store: object, n: int = 2) -> bool:
    """Epoch 1 is recorded: the first compiled call (graph building, a second or more on a
    loaded machine, during which no Python code runs to honour a signal) is behind."""
    dirs = store.run_dirs()  # type: ignore[attr-defined]
    return bool(dirs) and len(store.history(dirs[-1].name)) >= n  # type: ignore[attr-defined]


def in_process(scenario: str, store_root: Path, rng: random.Random, limit: float) -> dict:
    """One delivery to this process while it trains one run."""
    import keras

    from weightlab import lifecycle
    from weightlab.config import load_experiment
    from weightlab.store import Store
    from weightlab.training import runner, sweep

    class Swallows(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            with contextlib.suppress(BaseException):
                time.sleep(0.05)

    runner.extra_callbacks = (  # type: ignore[assignment]
        (lambda cfg, writer: [Swallows()])
        if scenario == "swallowing-callback"
        else (lambda cfg, writer: [])
    )
    store = Store.open(store_root / scenario / str(time.monotonic_ns()))
    experiment = load_experiment(CONFIG, SCENARIOS[scenario])
    sig = rng.choice([signal.SIGTERM, signal.SIGINT])
    delay = rng.uniform(0.0, 1.0)
    sent: list[float] = []

    def deliver() -> None:
        while not training_started(store):
            time.sleep(0.005)
        time.sleep(delay)
        sent.append(time.monotonic())
        os.kill(os.getpid(), sig)
        time.sleep(10 * limit)  # a lost signal: stop harder, so that the benchmark goes on
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    done = threading.Event()
    sender = threading.Thread(target=deliver, daemon=True)
    sender.start()
    outcome = "stopped"
    try:
        sweep.run_experiment(experiment, store)
        outcome = "trained on to the end"
    except lifecycle.Terminated as e:
        if e.signum != sig:
            outcome = f"stopped by {signal.Signals(e.signum).name} (the second, harder stop)"
    stopped = time.monotonic()
    done.set()
    took = stopped - sent[0] if sent else float("nan")
    record = store.runs()[0]
    ok = outcome == "stopped" and record["status"] == "interrupted" and took < limit
    return {
        "scenario": scenario,
        "signal": signal.Signals(sig).name,
        "seconds": took,
        "status": record["status"],
        "outcome": outcome,
        "ok": ok,
    }


def cli(store_root: Path, rng: random.Random, limit: float) -> dict:
    """One delivery to a `weightlab run -q` subprocess."""
    from weightlab.store import Store

    store = Store.open(store_root / "cli" / str(time.monotonic_ns()))
    env = {**os.environ, "WEIGHTLAB_STORE": str(store.root), "PYTHONPATH": str(ROOT)}
    scenario = rng.choice(list(SCENARIOS)[:2])
    proc = subprocess.Popen(
        [sys.executable, "-m", "weightlab", "run", "-q", str(CONFIG), *SCENARIOS[scenario]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    while not training_started(store) and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 1.0))
    sig = rng.choice([signal.SIGTERM, signal.SIGINT])
    sent = time.monotonic()
    proc.send_signal(sig)
    # "stopped": the record is written (the process then exits without TensorFlow's teardown)
    deadline = sent + 10 * limit
    took = float("nan")
    while time.monotonic() < deadline:
        runs = store.runs()
        if runs and runs[0]["status"] == "interrupted":
            took = time.monotonic() - sent
            break
        time.sleep(0.01)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    runs = store.runs()
    status = runs[0]["status"] if runs else "none"
    ok = status == "interrupted" and proc.returncode == 128 + sig and took < limit
    return {
        "scenario": "cli",
        "signal": signal.Signals(sig).name,
        "seconds": took,
        "status": status,
        "outcome": f"exit {proc.returncode}" + (" (traceback)" if "Traceback" in err else ""),
        "ok": ok and "Traceback" not in err,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100, help="in-process deliveries")
    parser.add_argument("--cli-deliveries", type=int, default=10, help="`weightlab run` ones")
    parser.add_argument("--limit", type=float, default=2.0, help="seconds a stop may take")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # Started in the background by a shell, this process would ignore SIGINT (and so would
    # weightlab, which never handles a signal the user chose to ignore): take Ctrl-C's default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = random.Random(args.seed)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stop = threading.Event()
        lister(root / "mid-epoch", stop)
        start = time.monotonic()
        names = list(SCENARIOS)
        for i in range(args.deliveries):
            results.append(in_process(names[i % len(names)], root, rng, args.limit))
            r = results[-1]
            if not r["ok"]:
                print(f"FAILED delivery {i}: {r}", flush=True)
        for i in range(args.cli_deliveries):
            results.append(cli(root, rng, args.limit))
            if not results[-1]["ok"]:
                print(f"FAILED cli delivery {i}: {results[-1]}", flush=True)
        stop.set()
        wall = time.monotonic() - start
    passed = sum(r["ok"] for r in results)
    print(
        f"\n{passed}/{len(results)} deliveries stopped within {args.limit:g} s and were recorded "
        f"interrupted ({wall:.0f} s in all; `weightlab ls` and Store.runs() polling throughout)"
    )
    print(f"{'scenario':<22} {'n':>4} {'ok':>4} {'median s':>9} {'p95 s':>7} {'max s':>7}  signals")
    for scenario in [*SCENARIOS, "cli"]:
        rows = [r for r in results if r["scenario"] == scenario]
        if not rows:
            continue
        secs = sorted(r["seconds"] for r in rows if r["seconds"] == r["seconds"])
        p95 = secs[min(len(secs) - 1, int(0.95 * len(secs)))] if secs else float("nan")
        sigs = ", ".join(
            f"{n} {s}" for s in ("SIGTERM", "SIGINT") if (n := sum(r["signal"] == s for r in rows))
        )
        print(
            f"{scenario:<22} {len(rows):>4} {sum(r['ok'] for r in rows):>4} "
            f"{statistics.median(secs) if secs else float('nan'):>9.3f} {p95:>7.3f} "
            f"{max(secs) if secs else float('nan'):>7.3f}  {sigs}"
        )
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
