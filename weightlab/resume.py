"""What ``weightlab resume RUN`` may continue, decided without TensorFlow.

A run resumes only if it was interrupted or crashed, its resume state is on disk, and neither its
config nor its data changed since it started: a resumed run must end with the same weights as
one that was never stopped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weightlab import lifecycle, runlock
from weightlab.config import flatten, load_experiment
from weightlab.errors import ConfigError, UsageError
from weightlab.store import Store
from weightlab.text import short_value

if TYPE_CHECKING:
    from weightlab.data import Dataset

STATE_FILE = "resume.npz"  # in the run directory; rewritten after every completed epoch


@dataclass
class ResumePlan:
    """A run that may be resumed: its record, its config and the epoch it continues from."""

    record: dict[str, Any]
    config: dict[str, Any]
    state: Path
    dataset: Dataset
    note: str = ""  # e.g. that the source config could not be compared
    lock: runlock.RunLock | None = field(default=None, repr=False)  # held while it resumes

    def release(self) -> None:
        """Drop the run's lock (the writer releases it once the run's record is final)."""
        if self.lock is not None:
            self.lock.release()

    @property
    def run_id(self) -> str:
        return str(self.record["id"])


def prepare(store: Store, selector: str) -> ResumePlan:
    """Check that the run ``selector`` names can be resumed.

    The run's lock is taken first (:mod:`weightlab.runlock`) and held by the plan, so that
    what is checked here stays true until the run is resumed: of two ``resume`` at once, one
    proceeds and the other is refused.

    Raises:
        UsageError: the run finished, is still running, has no resume state, or its config
            changed since it started (the message names the keys).
        RunBusy: another process owns the run (it is being trained or resumed).
    """
    run_id = store.get(selector)["id"]
    store.check_writable(f"run {run_id}")
    stored = store.stored_record(run_id)
    lock = runlock.acquire(store.run_dir(run_id), run_id, "resuming", status=stored["status"])
    try:
        plan = _prepare(store, run_id)
    except BaseException:
        lock.release()
        raise
    plan.lock = lock
    return plan


def _prepare(store: Store, run_id: str) -> ResumePlan:
    record = store.record(run_id)  # read again under the lock: the status is current
    if record["status"] not in lifecycle.RESUMABLE:
        hint = {
            "running": "its process is still alive (pid {pid} on {host})",
            "completed": "it completed all its epochs",
            "diverged": "it diverged; resuming would diverge again",
            "failed": "it failed: {error}",
        }.get(record["status"], "its status is {status}")
        raise UsageError(
            f"run {run_id} cannot be resumed: "
            + hint.format(**{k: record.get(k) for k in ("pid", "host", "error", "status")})
            + f" (only {' or '.join(lifecycle.RESUMABLE)} runs resume)"
        )
    state = store.run_dir(run_id) / STATE_FILE
    if not state.exists():
        raise UsageError(
            f"run {run_id} cannot be resumed: it has no {STATE_FILE} (it stopped before training "
            "began, trained on a Dask worker, or was written by an older weightlab); start it "
            "anew with `weightlab run`"
        )
    config = store.config(run_id)
    note = _source_changes(record, config)
    return ResumePlan(record, config, state, _same_data(record, config), note)


def _same_data(record: dict[str, Any], config: dict[str, Any]) -> Dataset:
    """The run's dataset, loaded again (numpy only); refuses when it is not what the run saw."""
    from weightlab import data

    dataset = data.load(config["data"], record["seed"])
    was = (record.get("data") or {}).get("fingerprint")
    if was is not None and was != fingerprint(dataset):
        raise UsageError(
            f"run {record['id']} cannot be resumed: its data changed since it started "
            f"(fingerprint {was}, now {fingerprint(dataset)}); start a new run with `weightlab run`"
        )
    return dataset


def _source_changes(record: dict[str, Any], config: dict[str, Any]) -> str:
    """Refuse when the config file the run came from now resolves differently; else a note."""
    origin = record.get("source") or {}
    source = origin.get("config")  # as given, for messages; config_path is absolute
    path = origin.get("config_path") or source  # older runs: relative to where they started
    if not source or not path or not Path(path).is_file():
        return f"the source config {source or '(none)'} is gone; resuming with the run's own copy"
    overrides = origin.get("overrides") or []
    try:
        experiment = load_experiment(path, overrides)
    except ConfigError as e:
        raise UsageError(
            f"run {record['id']} cannot be resumed: its config {source} changed and no longer "
            f"loads:\n{e}"
        ) from None
    index = record.get("index", 0)
    now = experiment.runs[index].config if index < len(experiment.runs) else {}
    before, after = flatten(config), flatten(now)
    changed = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    if changed:
        diffs = "; ".join(
            f"{k}: {short_value(before.get(k))} -> {short_value(after.get(k))}" for k in changed[:8]
        )
        raise UsageError(
            f"run {record['id']} cannot be resumed: {source} changed since it started ({diffs}). "
            "A resumed run must train exactly as it began; start a new one with `weightlab run`"
        )
    return ""


def fingerprint(dataset: Dataset) -> str:
    """A short hash of the training and validation arrays: resume refuses changed data."""
    h = hashlib.sha256()
    for array in (dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val):
        if array is not None:
            h.update(str(array.dtype).encode() + str(array.shape).encode())
            h.update(array.tobytes())
    return h.hexdigest()[:16]
