"""Pure functions over stored runs: side-by-side summaries, pairs, distances, seed statistics.

Named `analysis` so that `weightlab.compare(...)` can be the public Python function."""

from __future__ import annotations

import math
import re
import warnings
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from weightlab.errors import DamagedSnapshot, UsageError
from weightlab.text import did_you_mean, short_value

if TYPE_CHECKING:  # numpy is imported lazily: `ls` and the table of runs do not need it
    import numpy as np

    from weightlab.store import Store

_IGNORED = {"description"}


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Flat config keys whose values are not the same in every run (in first-seen order)."""
    keys: list[str] = []
    for cfg in configs:
        keys += [k for k in cfg if k not in keys and k not in _IGNORED]
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    return [k for k in differ if not _inherited(k, configs)]


_LAYER_KEY = re.compile(r"^model\.layers\.\d+\.(use_bias|kernel_initializer|bias_initializer)$")


def _inherited(key: str, configs: list[dict[str, Any]]) -> bool:
    """A layer setting that only mirrors the model-level default (shown once, as model.X)."""
    m = _LAYER_KEY.match(key)
    return m is not None and all(c.get(key) == c.get(f"model.{m.group(1)}") for c in configs)


def settings(record: dict[str, Any], keys: list[str]) -> dict[str, str]:
    if record["status"] == "corrupt" and not record["config"]:
        return {k: "?" for k in keys}
    return {k: short_value(record["config"].get(k)) for k in keys}


def growth(final: float | None, initial: float | None) -> float | None:
    if final is None or initial is None or initial == 0:
        return None
    return final / initial


def run_row(record: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """One run as a flat row for tables: settings that differ, outcome, weights."""
    final = record.get("final") or {}
    weights = record.get("weights") or {}
    best = record.get("best") or {}
    return {
        "id": record["id"],
        "experiment": record["experiment"],
        "seed": record.get("seed"),
        "settings": settings(record, keys),
        "status": record["status"],
        "epochs": record.get("epochs_completed", 0),
        "of_epochs": record.get("epochs"),
        "loss": final.get("loss"),
        "val_loss": final.get("val_loss"),
        "metrics": {k: v for k, v in final.items() if k not in ("loss", "val_loss")},
        "best_loss": best.get("loss"),
        "best_epoch": best.get("epoch"),
        "diverged_at_epoch": record.get("diverged_at_epoch"),
        "kernel_norm": weights.get("kernel_norm"),
        "kernel_growth": growth(weights.get("kernel_norm"), weights.get("kernel_norm_initial")),
        "bias_norm": weights.get("bias_norm"),
        "dist_init": weights.get("dist_init"),
        "error": record.get("error"),
    }


def side_by_side(records: list[dict[str, Any]], *, all_keys: bool = False) -> dict[str, Any]:
    """Runs side by side: ``{"keys": [differing config keys], "runs": [rows], "findings": [...]}``.

    Args:
        records: run records as returned by ``Store.select`` (with flat ``config``).
        all_keys: show every config key, not only those that differ.
    """
    # A corrupt run has no readable config: it must not make every key look different.
    configs = [r["config"] for r in records if r["status"] != "corrupt"] or [{}]
    if all_keys:
        keys = [k for k in dict.fromkeys(k for c in configs for k in c) if k not in _IGNORED]
    else:
        keys = [k for k in differing_keys(configs) if k != "name" or len(records) > 1]
    rows = [run_row(r, keys) for r in records]
    return {"keys": keys, "runs": rows, "findings": findings(rows)}


def _label(row: dict[str, Any]) -> str:
    """``use_bias=false`` from a row's differing settings, or its id when nothing differs."""
    if row["status"] == "corrupt":
        return str(row["id"])
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in row["settings"].items()) or row["id"]


def findings(rows: list[dict[str, Any]], ratio: bool = True) -> list[str]:
    """Plain-words observations: which runs diverged or failed, and how far apart the losses are.

    ``ratio=False`` leaves out the best-against-worst loss ratio (pairs' verdicts say it better).
    """
    out = []
    for row in rows:
        if row["status"] == "diverged":
            out.append(
                f"{_label(row)}: blew up (non-finite loss or weights) at epoch "
                f"{row['diverged_at_epoch']}"
            )
        elif row["status"] in ("failed", "corrupt"):
            out.append(f"{_label(row)}: {row['status']}: {row['error']}")
        elif row["status"] == "crashed":
            out.append(
                f"{_label(row)}: crashed after epoch {row['epochs']}; "
                f"`weightlab resume {row['id']}` continues it"
            )
    finite = [r for r in rows if r["status"] == "completed" and _finite(r["loss"])]
    if ratio and len(finite) >= 2:
        best = min(finite, key=lambda r: r["loss"])
        worst = max(finite, key=lambda r: r["loss"])
        if best["loss"] > 0 and worst["loss"] / best["loss"] >= 10:
            out.append(
                f"{_label(worst)} ends with {worst['loss'] / best['loss']:.3g}× the loss of "
                f"{_label(best)} ({worst['loss']:.4g} vs {best['loss']:.4g})"
            )
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def show(record: dict[str, Any], history: list[dict[str, Any]], every: int = 1) -> dict[str, Any]:
    """One run epoch by epoch: metrics, per-layer kernel/bias norms, distance from init, change."""
    from weightlab.stats import norms

    variables = list(history[0]["weights"]) if history else []
    metric_keys: list[str] = []
    for row in history:
        metric_keys += [k for k in row if k not in ("epoch", "weights") and k not in metric_keys]
    rows = []
    last = history[-1]["epoch"] if history else 0
    for row in history:
        if row["epoch"] % every and row["epoch"] != last:
            continue
        w = row.get("weights", {})
        total = norms(w)
        deltas = [s["delta"] for s in w.values() if s.get("delta") is not None]
        rows.append(
            {
                "epoch": row["epoch"],
                "metrics": {k: row.get(k) for k in metric_keys},
                "norms": {k: s["l2"] for k, s in w.items()},
                "dist_init": total["dist_init"],
                "delta": math.sqrt(sum(d * d for d in deltas)) if deltas else None,
            }
        )
    return {"run": record, "variables": variables, "metrics": metric_keys, "epochs": rows}


# ---- compare: the one entry point behind `weightlab compare` (and the Python API) --------------

DEFAULT_THRESHOLD = 0.1
RECORD_FIELDS = ("status", "experiment", "batch", "id")


def compare(
    store: Store,
    records: list[dict[str, Any]],
    *,
    by: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    per_epoch: bool = False,
    every: int = 1,
    all_keys: bool = False,
    sort_by: str | None = None,
) -> dict[str, Any]:
    """Compare runs side by side, in pairs that differ only by ``by``, and across seeds.

    Args:
        store: the store of the runs; snapshots are read one epoch at a time per run.
        records: run records as returned by ``Store.select`` (with flat ``config``).
        by: the config key that tells the two runs of a pair apart; ``None`` picks the one key
            the runs differ in (seed aside) when there is exactly one.
        threshold: relative loss gap ``|a - b| / min(|a|, |b|)`` that marks a pair's divergence.
        per_epoch: also return each pair's trajectory (losses, gap, weight distance per epoch).
        every: with ``per_epoch``, keep every k-th epoch (and the last).
        all_keys: list every config key in ``keys``, not only those that differ.
        sort_by: order the runs by a field, metric or config key (``-`` prefix: descending).

    Returns:
        ``{"keys", "by", "threshold", "runs", "pairs", "groups", "findings"}``: plain JSON-able
        data, described in docs/commands.md (`compare --format json`).

    Raises:
        UsageError: no runs, an unknown ``by`` or ``sort_by``, a negative threshold.
    """
    if not records:
        raise UsageError("no runs to compare: the selection (and --where) left none")
    if not math.isfinite(threshold) or threshold < 0 or every < 1:  # NaN compares false
        raise UsageError(f"expected threshold >= 0 and every >= 1; got {threshold}, {every}")
    records = run_order(records)
    result = side_by_side(records, all_keys=all_keys)
    keys = [k for k in differing_keys([r["config"] for r in records]) if k != "seed"]
    by = None if by is None else resolve_key(records, by, "--by")
    if by == "seed":
        raise UsageError("--by seed: runs that differ only by seed form the seed groups already")
    if by is None and len(keys) == 1:
        by = keys[0]
    groups = seed_groups(records, keys)
    pairs = make_pairs(records, groups, by) if by in keys else []
    trajectories = _Trajectories(store, threshold, per_epoch, every)
    for pair in pairs:
        for seed_pair in pair["seeds"]:
            seed_pair.update(trajectories.pair(seed_pair))
        ga, gb = groups[pair["a"]["group"]], groups[pair["b"]["group"]]
        pair.update(pair_summary(pair, ga, gb, threshold))
    result["runs"] = sort_rows(result["runs"], sort_by)
    result.update(by=by, threshold=threshold, pairs=pairs, groups=groups)
    result["findings"] = findings(result["runs"], ratio=not pairs)
    result["findings"] += [f"{g['label']}: {g['note']}" for g in groups if g["n"] > 1 and g["note"]]
    result["findings"] += _pair_findings(records, by, keys, pairs) + trajectories.notes
    return result


def _pair_findings(
    records: list[dict[str, Any]], by: str | None, keys: list[str], pairs: list[dict[str, Any]]
) -> list[str]:
    if len(records) < 2:
        return ["one run: nothing to pair it with (select more runs, e.g. a batch id)"]
    if by is None and not keys:
        return []  # seeds of one setting: the seed groups say it all
    if by is None:
        return [
            f"no pairs: the runs differ in {', '.join(keys)}; choose the key that tells a pair "
            "apart with --by KEY"
        ]
    if not pairs:
        return [f"no pairs: no two runs are identical except for {by} (with the same seed)"]
    return [p["verdict"] for p in pairs]


def resolve_key(records: list[dict[str, Any]], key: str, option: str) -> str:
    """A config key named in full or without its section (``use_bias`` for ``model.use_bias``)."""
    known = list(dict.fromkeys(k for r in records for k in r["config"]))
    if key in known:
        return key
    matches = [k for k in known if k.split(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    raise UsageError(f"{option} {key!r}: no such config key{did_you_mean(key, known)}")


def where(records: list[dict[str, Any]], conditions: Sequence[str]) -> list[dict[str, Any]]:
    """The runs whose config key (or status, experiment, batch, id) equals each KEY=VALUE.

    Raises:
        UsageError: a condition is not KEY=VALUE, names no config key, or leaves no run.
    """
    for cond in conditions:
        key, sep, value = cond.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"--where {cond!r}: expected KEY=VALUE, e.g. model.use_bias=false or "
                "status=completed"
            )
        key, value = key.strip(), value.strip()
        if key in RECORD_FIELDS:
            values = {r["id"]: str(r.get(key)) for r in records}
        else:
            full = resolve_key(records, key, "--where")
            values = {r["id"]: r["config"].get(full) for r in records}
        kept = [r for r in records if _same(values[r["id"]], value)]
        if records and not kept:
            seen = ", ".join(sorted({short_value(v) for v in values.values()}))
            raise UsageError(
                f"--where {cond!r}: no selected run has that value (they have: {seen})"
            )
        records = kept
    return records


def _same(stored: Any, text: str) -> bool:
    """A config value against a command-line value: ``false``, ``0.01`` and ``1e-2`` all work."""
    if short_value(stored) == text or str(stored) == text:
        return True
    try:
        return isinstance(stored, int | float) and float(text) == float(stored)
    except ValueError:
        return False


def run_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batches in the order they started, each batch's runs in matrix order (their ``index``).

    The runs of a parallel sweep (a Dask one most of all) start in whatever order the workers
    take them; their start times would shuffle the matrix.
    """
    first: dict[str, str] = {}
    for r in records:
        batch, at = str(r.get("batch")), str(r.get("started_at"))
        first[batch] = min(first.get(batch, at), at)

    def key(r: dict[str, Any]) -> tuple[str, str, int, str, str]:
        index = r.get("index")
        batch = str(r.get("batch"))
        n = index if isinstance(index, int) and not isinstance(index, bool) else 0
        return first[batch], batch, n, str(r.get("started_at")), str(r.get("id"))

    return sorted(records, key=key)


def sort_rows(rows: list[dict[str, Any]], sort_by: str | None) -> list[dict[str, Any]]:
    """Rows ordered by a field, metric or setting; missing and NaN values go last."""
    if not sort_by:
        return rows
    name = sort_by.lstrip("-")
    fields = [k for k in rows[0] if not isinstance(rows[0][k], dict)] if rows else []
    metrics = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
    settings = list(rows[0]["settings"]) if rows else []
    short = {k.split(".", 1)[-1]: k for k in settings}
    if name in fields:
        get: Any = lambda r: r[name]  # noqa: E731
    elif name in metrics:
        get = lambda r: r["metrics"].get(name)  # noqa: E731
    elif name in settings or name in short:
        full = name if name in settings else short[name]
        get = lambda r: r["settings"][full]  # noqa: E731
    else:
        known = list(dict.fromkeys(fields + metrics + list(short)))  # `seed`: a field and a key
        raise UsageError(
            f"--sort-by {sort_by!r}: unknown column{did_you_mean(name, known)} "
            f"(one of: {', '.join(known)})"
        )
    keyed = [(_sort_key(get(r)), r) for r in rows]
    present = [(k, r) for k, r in keyed if k is not None]
    present.sort(key=lambda kr: kr[0], reverse=sort_by.startswith("-"))
    return [r for _, r in present] + [r for k, r in keyed if k is None]


def _sort_key(v: Any) -> tuple[int, float, str] | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def _identity(record: dict[str, Any], keys: list[str]) -> tuple[str, ...]:
    return tuple(short_value(record["config"].get(k)) for k in keys)


def seed_groups(records: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """Runs that differ only by seed, with mean ± std and 95% CI of the final and best loss."""
    members: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in records:
        members.setdefault(_identity(r, keys), []).append(r)
    groups = []
    for i, (ident, runs) in enumerate(members.items()):
        settings = dict(zip(keys, ident, strict=True))
        done = [r for r in runs if finished(r)]
        groups.append(
            {
                "index": i,
                "label": _settings_label(settings) or "all runs",
                "settings": settings,
                "runs": [r["id"] for r in runs],
                "seeds": [r.get("seed") for r in runs],
                "n": len(runs),
                "diverged": sum(r["status"] == "diverged" for r in runs),
                "finished": len(done),
                "note": left_out_note(runs),
                "final_loss": describe([_final_loss(r) for r in done]),
                "best_loss": describe([(r.get("best") or {}).get("loss") for r in done]),
            }
        )
    return groups


def finished(record: dict[str, Any]) -> bool:
    """A run whose final loss is a result: it completed. A diverged run's last loss (NaN, or a
    finite 1e33 where a weight overflowed first) and a stopped run's loss are not; ``status`` is
    the one fact every table, statistic and verdict reads."""
    return record["status"] == "completed"


def left_out_note(runs: list[dict[str, Any]]) -> str | None:
    """``2 of 5 seeds diverged; statistics over the 3 that finished``, or None when all did."""
    counts: dict[str, int] = {}
    for r in runs:
        if not finished(r):
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    if not counts:
        return None
    n, done = len(runs), len(runs) - sum(counts.values())
    what = ", ".join(
        f"{k} of {n} {'seed' if n == 1 else 'seeds'} {status}" if j == 0 else f"{k} {status}"
        for j, (status, k) in enumerate(sorted(counts.items(), key=lambda kv: -kv[1]))
    )
    if not done:
        return f"{what}: no run finished, no statistics"
    return f"{what}; statistics over the {done} that finished"


def _settings_label(settings: dict[str, str]) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in settings.items())


def _final_loss(record: dict[str, Any]) -> float | None:
    loss = (record.get("final") or {}).get("loss")
    return float(loss) if isinstance(loss, int | float) else None


def describe(values: list[float | None]) -> dict[str, Any]:
    """Mean, sample std and t-based 95% confidence interval of the finite values (scipy.stats)."""
    finite = [float(v) for v in values if v is not None and _finite(v)]
    out: dict[str, Any] = {"n": len(finite), "mean": None, "std": None, "ci95": None}
    if finite:
        out["mean"] = math.fsum(finite) / len(finite)
    if len(finite) >= 2:
        import numpy as np
        from scipy import stats  # seconds to import: only for a spread to describe

        # numpy for mean and std: scipy.stats.describe's input checks are slow per call
        # (the figures: docs/benchmarks.md, "Figures behind the code").
        out["std"] = float(np.std(finite, ddof=1))
        sem = out["std"] / math.sqrt(len(finite))
        mean = out["mean"]
        ci = stats.t.interval(0.95, len(finite) - 1, loc=mean, scale=sem) if sem else (mean,) * 2
        out["ci95"] = [float(ci[0]), float(ci[1])]
    out["values"] = finite
    return out


def make_pairs(
    records: list[dict[str, Any]], groups: list[dict[str, Any]], by: str
) -> list[dict[str, Any]]:
    """Groups identical except for ``by``: each value against the first one, seed by seed."""
    seed_of = {r["id"]: r.get("seed") for r in records}
    loss_of = {r["id"]: _final_loss(r) for r in records}
    blown = {r["id"]: diverged_at(r) for r in records}
    done = {r["id"]: finished(r) for r in records}
    reference = groups[0]["settings"][by]
    short = by.rsplit(".", 1)[-1]

    def rest(g: dict[str, Any]) -> dict[str, str]:
        return {k: v for k, v in g["settings"].items() if k != by}

    pairs = []
    for gb in groups:
        ga = next(
            (g for g in groups if g["settings"][by] == reference and rest(g) == rest(gb)), None
        )
        if ga is None or gb["settings"][by] == reference:
            continue
        a_by_seed = {seed_of[i]: i for i in ga["runs"]}
        seeds = [
            {"seed": seed_of[b], "a": a_by_seed[seed_of[b]], "b": b}
            for b in gb["runs"]
            if seed_of[b] in a_by_seed
        ]
        for s in seeds:
            s.update(loss_a=loss_of[s["a"]], loss_b=loss_of[s["b"]])
            s.update(blew_up_a=blown[s["a"]], blew_up_b=blown[s["b"]])
            s["finished"] = done[s["a"]] and done[s["b"]]
        side = {"a": ga, "b": gb}
        pairs.append(
            {
                "key": by,
                **{
                    k: {
                        "value": g["settings"][by],
                        "label": f"{short}={g['settings'][by]}",
                        "group": g["index"],
                    }
                    for k, g in side.items()
                },
                "settings": rest(gb),
                "seeds": seeds,
            }
        )
    return pairs


def diverged_at(record: dict[str, Any]) -> int | None:
    """The epoch a run blew up at, from its status (run.json), never from its last loss's value."""
    if record["status"] != "diverged":
        return None
    at = record.get("diverged_at_epoch") or (record.get("divergence") or {}).get("epoch")
    return int(at) if at is not None else record.get("epochs_completed") or 0


# ---- the tie rule: one definition for apart@ and for every verdict ------------------------------

FLOAT32_NOISE = 4 * 2.0**-23
"""Relative float32 rounding (4 ulps, 4.8e-7): losses closer than this are equal on any CPU."""


def same_loss(a: float | None, b: float | None, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Two losses are a tie: they differ by at most ``threshold`` of the lower one,
    ``|a - b| <= threshold · min(|a|, |b|)``, or by float32 rounding. NaN, infinity and a
    missing loss are never a tie."""
    if a is None or b is None or not (_finite(a) and _finite(b)):
        return False
    gap, rel = loss_gap(a, b)
    return rel <= threshold or abs(gap or 0.0) <= FLOAT32_NOISE * max(abs(a), abs(b))


def pair_summary(
    pair: dict[str, Any],
    ga: dict[str, Any],
    gb: dict[str, Any],
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Seeds aggregated: divergence epoch, mean distance, Welch t-test, Cohen's d, the verdict.

    ``higher``/``lower``/``ties`` count the seeds where both runs finished (``compared``); a
    seed whose run diverged is left out of them (``blew_up`` counts those)."""
    seeds = pair["seeds"]
    epochs = sorted(s["divergence_epoch"] for s in seeds if s["divergence_epoch"] is not None)
    distances = [s["distance"] for s in seeds if _finite(s["distance"])]
    cosines = [s["cosine"] for s in seeds if _finite(s["cosine"])]
    both = [s for s in seeds if s["finished"] and _finite(s["loss_a"]) and _finite(s["loss_b"])]
    tied = [same_loss(s["loss_a"], s["loss_b"], threshold) for s in both]
    apart = [s for s, tie in zip(both, tied, strict=True) if not tie]
    out: dict[str, Any] = {
        "divergence_epoch": epochs[(len(epochs) - 1) // 2] if epochs else None,
        "distance": sum(distances) / len(distances) if distances else None,
        "cosine": sum(cosines) / len(cosines) if cosines else None,
        "higher": sum(s["loss_b"] > s["loss_a"] for s in apart),
        "lower": sum(s["loss_b"] < s["loss_a"] for s in apart),
        "ties": sum(tied),
        "compared": len(both),
        "blew_up": sum(s["blew_up_a"] is not None or s["blew_up_b"] is not None for s in seeds),
        "of": len(seeds),
        "tie": same_loss(ga["final_loss"]["mean"], gb["final_loss"]["mean"], threshold),
        **contrast(ga["final_loss"]["values"], gb["final_loss"]["values"]),
    }
    out["verdict"] = verdict(pair, ga, gb, out, threshold)
    return out


def contrast(a: list[float], b: list[float]) -> dict[str, float | None]:
    """Welch's t-test (scipy.stats.ttest_ind) and Cohen's d of ``b`` against ``a``."""
    out: dict[str, float | None] = {"t": None, "p_value": None, "cohens_d": None}
    if len(a) < 2 or len(b) < 2:
        return out
    from scipy import stats

    with warnings.catch_warnings():  # identical values in both groups: scipy warns, p is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(b, a, equal_var=False)
    import numpy as np

    na, nb, va, vb = len(a), len(b), np.var(a, ddof=1), np.var(b, ddof=1)
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    out["t"] = float(test.statistic) if _finite(float(test.statistic)) else None
    out["p_value"] = float(test.pvalue) if _finite(float(test.pvalue)) else None
    out["cohens_d"] = float(np.mean(b) - np.mean(a)) / pooled if pooled > 0 else None
    return out


def verdict(
    pair: dict[str, Any],
    ga: dict[str, Any],
    gb: dict[str, Any],
    s: dict[str, Any],
    threshold: float = DEFAULT_THRESHOLD,
) -> str:
    """One line in plain words: which side ends with the higher loss, how often, how sure.

    Only runs that finished count (``status``); means within ``threshold`` of each other (or
    float32 rounding) are a tie and are called one."""
    a, b = pair["a"]["label"], pair["b"]["label"]
    if pair["settings"]:
        b = f"{b} ({_settings_label(pair['settings'])})"
    ma, mb = ga["final_loss"]["mean"], gb["final_loss"]["mean"]
    blew = [
        f"{label} blew up in {g['diverged']}/{g['n']} run{'s' * (g['n'] != 1)}"
        for label, g in ((pair["b"]["label"], gb), (a, ga))
        if g["diverged"]
    ]
    if ma is None or mb is None:
        return "; ".join(blew) or f"{b} vs {a}: no run finished on both sides to compare"
    n = s["compared"]
    of = f"{n} seed{'s' * (n != 1)}" + (" where both finished" if n < s["of"] else "")
    mean = "mean " if max(ga["final_loss"]["n"], gb["final_loss"]["n"]) > 1 else ""
    numbers = f"{mean}{mb:.3g} vs {ma:.3g}"
    if s["tie"]:
        seeds = f" in {s['ties']}/{of}" if n else ""
        text = (
            f"{b} ends with the same loss as {a}{seeds}: a tie, within {threshold:.0%} "
            f"({numbers}, {_p_text(ga, gb, s)})"
        )
    else:
        word = "higher" if mb > ma else "lower"
        seeds = f" in {s[word]}/{of}" if n else ""
        text = f"{b} ends with {word} loss{seeds} ({numbers}, {_p_text(ga, gb, s)})"
    return "; ".join([text, *blew])


def _p_text(ga: dict[str, Any], gb: dict[str, Any], s: dict[str, Any]) -> str:
    p = s["p_value"]
    if p is None:
        few = min(ga["final_loss"]["n"], gb["final_loss"]["n"]) < 2
        return "too few seeds for a t-test" if few else "no spread within the groups: no t-test"
    shown = "p < 0.001" if p < 0.001 else f"p = {p:.2g}"
    return shown if p < 0.05 else f"{shown}: not significant"


class _Trajectories:
    """Loss gaps from the histories and weight distances from the snapshots, pair by pair."""

    def __init__(self, store: Store, threshold: float, per_epoch: bool, every: int):
        self.store, self.threshold, self.per_epoch, self.every = store, threshold, per_epoch, every
        self.notes: list[str] = []

    def losses(self, run_id: str) -> dict[int, float | None]:
        rows, damage = self.store.read_history(run_id)
        note = f"{run_id}: {damage}: its epochs after that are left out"
        if damage and note not in self.notes:
            self.notes.append(note)
        return {row["epoch"]: row.get("loss") for row in rows}

    def pair(self, seed_pair: dict[str, Any]) -> dict[str, Any]:
        a, b = seed_pair["a"], seed_pair["b"]
        la, lb = self.losses(a), self.losses(b)
        common = [e for e in sorted(set(la) & set(lb)) if e > 0]
        gaps = {e: loss_gap(la[e], lb[e]) for e in common}
        # From the epoch a run blew up (its status says so), its loss is no result, finite or not.
        blown = [x for x in (seed_pair["blew_up_a"], seed_pair["blew_up_b"]) if x is not None]
        apart = {
            e: (bool(blown) and e >= min(blown)) or not same_loss(la[e], lb[e], self.threshold)
            for e in common
        }
        snaps = sorted(set(self.snapshot_epochs(a)) & set(self.snapshot_epochs(b)))
        wanted = every_kth(snaps, self.every) if self.per_epoch else snaps[-1:]
        dist = {e: self.distance(a, b, e) for e in wanted}
        last = dist[wanted[-1]] if wanted else weight_distance({}, {})
        out: dict[str, Any] = {
            "divergence_epoch": next((e for e in common if apart[e]), None),
            "distance_epoch": wanted[-1] if wanted else None,
            **last,
        }
        if self.per_epoch:
            shown = every_kth(sorted(set(common) | set(wanted)), self.every)
            out["epochs"] = [
                {
                    "epoch": e,
                    "loss_a": la.get(e),
                    "loss_b": lb.get(e),
                    "gap": gaps[e][0] if e in gaps else None,
                    "rel_gap": gaps[e][1] if e in gaps else None,
                    "distance": dist[e]["distance"] if e in dist else None,
                    "cosine": dist[e]["cosine"] if e in dist else None,
                }
                for e in shown
            ]
        if wanted and not last["variables"] and not any(a in n and b in n for n in self.notes):
            self.notes.append(
                f"{a} and {b} have no variables of the same name and shape: no weight distance"
            )
        return out

    def snapshot_epochs(self, run_id: str) -> list[int]:
        try:
            return self.store.snapshot_epochs(run_id)
        except DamagedSnapshot as e:  # say so, go on without its distances
            note = f"{run_id}: snapshots unreadable ({e.reason}): no weight distance"
            if note not in self.notes:
                self.notes.append(note)
            return []

    def distance(self, a: str, b: str, epoch: int) -> dict[str, Any]:
        # One epoch of each run in memory at a time, never a whole trajectory.
        try:
            return weight_distance(self.store.snapshot(a, epoch), self.store.snapshot(b, epoch))
        except (OSError, ValueError, zipfile.BadZipFile, DamagedSnapshot) as e:  # say so, go on
            why = getattr(e, "reason", str(e)).split(". ")[0]
            self.notes.append(f"{a} / {b}: epoch {epoch} snapshot unreadable ({why}): no distance")
            return weight_distance({}, {})


def every_kth(epochs: list[int], every: int) -> list[int]:
    """Every k-th epoch (multiples of k), and always the last."""
    return [e for e in epochs if e % every == 0 or e == epochs[-1]]


def loss_gap(a: float | None, b: float | None) -> tuple[float | None, float]:
    """``(b - a, |b - a| / min(|a|, |b|))``; NaN and infinity give an infinite relative gap."""
    if a is None or b is None:
        return None, math.nan
    if not (_finite(a) and _finite(b)):
        return b - a, math.inf
    diff, low = abs(b - a), min(abs(a), abs(b))
    return b - a, (diff / low if low else (math.inf if diff else 0.0))


def weight_distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, Any]:
    """Relative L2 distance ``|a - b| / max(|a|, |b|)`` and cosine similarity of two snapshots.

    Only the variables with the same name and shape in both count (a bias-free run has no biases).
    """
    common = [k for k in a if k in b and a[k].shape == b[k].shape]
    out: dict[str, Any] = {
        "distance": None,
        "cosine": None,
        "variables": common,
        "only_a": [k for k in a if k not in common],
        "only_b": [k for k in b if k not in common],
    }
    if not common:
        return out
    import numpy as np

    va = np.concatenate([a[k].ravel() for k in common]).astype(np.float64)
    vb = np.concatenate([b[k].ravel() for k in common]).astype(np.float64)
    if not (np.isfinite(va).all() and np.isfinite(vb).all()):
        out["distance"] = out["cosine"] = math.nan
        return out
    na, nb = float(np.linalg.norm(va)), float(np.linalg.norm(vb))
    diff = float(np.linalg.norm(va - vb))
    out["distance"] = diff / max(na, nb) if diff else 0.0
    if na and nb:  # rounding can put a cosine just past ±1, or identical weights at 0.9999…
        out["cosine"] = 1.0 if not diff else max(-1.0, min(1.0, float(va @ vb) / (na * nb)))
    return out
