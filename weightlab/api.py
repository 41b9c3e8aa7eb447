"""The Python API for notebooks: open a store, pick runs, read their histories and snapshots.

>>> import weightlab
>>> store = weightlab.open_store()                    # $WEIGHTLAB_STORE or ./weightlab-runs
>>> runs = store.runs(experiment="bias-vs-no-bias", where={"model.use_bias": False})
>>> runs[0].trajectory("dense_1/kernel").shape       # (epochs + 1, 3, 8)
>>> weightlab.compare(runs, by="model.use_bias")    # the data `weightlab compare` renders

Nothing here imports TensorFlow; numpy is imported when arrays are read, pandas only for
:attr:`Run.history` when it is installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from weightlab import analysis
from weightlab.errors import UsageError
from weightlab.store import Store
from weightlab.text import did_you_mean, short_value

if TYPE_CHECKING:
    import numpy as np


class Run:
    """One stored run. Files are read when an attribute asks for them, not before."""

    def __init__(self, store: Store, record: dict[str, Any]):
        self._store = store
        self._indexed = record  # the index row: run.json fields plus the flat config
        self._config: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.experiment} {self.status}>"

    @property
    def id(self) -> str:
        return str(self._indexed["id"])

    @property
    def experiment(self) -> str:
        return str(self._indexed["experiment"])

    @property
    def seed(self) -> int | None:
        return self._indexed.get("seed")

    @property
    def record(self) -> dict[str, Any]:
        """The run's ``run.json``, read now (status, final metrics, timing, ...)."""
        return self._store.record(self.id)

    @property
    def status(self) -> str:
        """completed, diverged, failed, interrupted or running, as of now."""
        return str(self.record["status"])

    @property
    def config(self) -> dict[str, Any]:
        """The fully resolved config of this run (nested, as in its ``config.yaml``)."""
        if self._config is None:
            self._config = self._store.config(self.id)
        return self._config

    @property
    def flat_config(self) -> dict[str, Any]:
        """The config as ``{"model.use_bias": True, ...}``: the keys ``where=`` filters on."""
        return dict(self._indexed["config"])

    def history_rows(self) -> list[dict[str, Any]]:
        """One dict per epoch: metrics, and ``weights`` with per-variable statistics."""
        return self._store.history(self.id)

    @property
    def history(self) -> Any:
        """The history as a pandas DataFrame (one row per epoch) or, without pandas, as dicts.

        Weight statistics become columns named ``<variable>.<stat>``, e.g. ``dense_1/kernel.l2``.
        """
        rows = self.history_rows()
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame([flat_history_row(r) for r in rows])

    @property
    def epochs(self) -> list[int]:
        """The epochs that have a snapshot (0 is the initial weights)."""
        return self._store.snapshot_epochs(self.id)

    @property
    def variables(self) -> list[str]:
        """``["dense_1/kernel", "dense_1/bias", ...]`` in layer order."""
        rows = self.history_rows()
        return list(rows[0]["weights"]) if rows else []

    def snapshot(self, epoch: int | None = None) -> dict[str, np.ndarray]:
        """Every variable at ``epoch`` (default: the last snapshot) as numpy arrays."""
        if epoch is None:
            epoch = self._snapshot_epochs()[-1]
        return self._store.snapshot(self.id, epoch)

    def trajectory(self, variable: str) -> np.ndarray:
        """One variable over every snapshot epoch, stacked: shape ``(epochs + 1, *shape)``.

        A run that diverged stops at its last finite snapshot.

        Raises:
            UsageError: no such variable (with the names it has), or no snapshots at all.
        """
        self._snapshot_epochs()  # says so when there are none
        return self._store.trajectory(self.id, variable)

    def _snapshot_epochs(self) -> list[int]:
        epochs = self.epochs
        if not epochs:
            raise UsageError(f"run {self.id} has no weight snapshots (snapshots.every: never?)")
        return epochs


def flat_history_row(row: dict[str, Any]) -> dict[str, Any]:
    """``{"epoch", "loss", ..., "dense_1/kernel.l2", ...}``: one history row as flat columns."""
    out = {k: v for k, v in row.items() if k != "weights"}
    for var, stats in (row.get("weights") or {}).items():
        out.update({f"{var}.{k}": v for k, v in stats.items()})
    return out


class Runs(list[Run]):
    """A list of runs (newest first) with their ids at hand."""

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self]


class RunStore:
    """A run store, for reading from Python. See :func:`open_store`."""

    def __init__(self, store: Store):
        self._store = store

    def __repr__(self) -> str:
        return f"<RunStore {self.root}>"

    @property
    def root(self) -> str:
        return str(self._store.root)

    def runs(
        self,
        *selectors: str,
        experiment: str | None = None,
        where: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> Runs:
        """Runs newest first: those matching any selector (default all), then filtered.

        Args:
            selectors: run ids, id prefixes, ``latest``, batch ids or experiment names.
            experiment: keep runs of this experiment only.
            where: keep runs whose flat config has these values, e.g. ``{"model.use_bias": False}``;
                a value also matches its short text form (``"false"``, ``"sgd(lr=0.1)"``).
            status: keep runs with this status.

        Raises:
            RunNotFound: a selector matches nothing.
            UsageError: a ``where`` key no selected run has.
        """
        records = self._store.select(list(selectors))
        if experiment is not None:
            records = [r for r in records if r["experiment"] == experiment]
        if status is not None:
            records = [r for r in records if r["status"] == status]
        for key, value in (where or {}).items():
            known = {k for r in records for k in r["config"]}
            if records and key not in known:
                raise UsageError(f"where: no config key {key!r}{did_you_mean(key, sorted(known))}")
            records = [r for r in records if _matches(r["config"].get(key), value)]
        return Runs(Run(self._store, r) for r in records)

    def run(self, selector: str) -> Run:
        """Exactly one run (raises RunNotFound if the selector matches none or several)."""
        record = self._store.get(selector)
        return self.runs(record["id"])[0]


def _matches(actual: Any, wanted: Any) -> bool:
    return bool(actual == wanted or short_value(actual) == str(wanted))


def open_store(path: str | os.PathLike[str] | None = None) -> RunStore:
    """The run store at ``path``, else ``$WEIGHTLAB_STORE``, else ``./weightlab-runs``."""
    return RunStore(Store.open(path))


def _records(runs: Iterable[Run]) -> tuple[Store, list[dict[str, Any]]]:
    """The runs' records (flat config included) and their one store."""
    chosen = list(runs)
    for run in chosen:
        if not isinstance(run, Run):
            raise UsageError(f"compare takes runs from store.runs(...); got {type(run).__name__}")
    if not chosen:
        raise UsageError("compare: no runs given")
    roots = {str(run._store.root) for run in chosen}
    if len(roots) > 1:
        raise UsageError(f"compare: the runs come from {len(roots)} stores; take them from one")
    records = [{**run._indexed, **run.record, "config": run.flat_config} for run in chosen]
    return chosen[0]._store, records


def compare(
    runs: Iterable[Run],
    by: str | None = None,
    *,
    threshold: float = analysis.DEFAULT_THRESHOLD,
    per_epoch: bool = False,
    every: int = 1,
    all_keys: bool = False,
    sort_by: str | None = None,
) -> dict[str, Any]:
    """What ``weightlab compare`` computes and renders for these runs (its ``--format json``).

    Args:
        runs: runs from :meth:`RunStore.runs`.
        by: the config key that tells the two runs of a pair apart (``--by``); ``None`` takes the
            one key the runs differ in, when there is exactly one.
        threshold, per_epoch, every, all_keys, sort_by: as the command's options.

    Returns:
        ``{"keys", "by", "threshold", "runs", "pairs", "groups", "findings"}``; with ``per_epoch``
        every seed pair has ``epochs``: losses, gap and weight distance per epoch.
    """
    store, records = _records(runs)
    return analysis.compare(
        store,
        records,
        by=by,
        threshold=threshold,
        per_epoch=per_epoch,
        every=every,
        all_keys=all_keys,
        sort_by=sort_by,
    )
