"""Measure the gallery's claims (docs/gallery.md, "What the example configs show") over seeds.

Trains every example config in full (its own epochs and samples) for each seed and prints the
numbers each claim rests on, as JSON lines, so a claim can be stated with margins that hold
across seeds and CPUs. Run it once with the default TensorFlow kernels and once with
``TF_ENABLE_ONEDNN_OPTS=0`` (a cheap stand-in for another CPU)::

    .venv/bin/python benchmarks/claims.py --seeds 0,1,2 > claims-onednn-on.jsonl
    TF_ENABLE_ONEDNN_OPTS=0 .venv/bin/python benchmarks/claims.py --seeds 0,1,2 > claims-off.jsonl

Not a test: it trains for minutes. The gallery tests check the claims; this script says how
much room each threshold has.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from weightlab import data  # noqa: E402
from weightlab.config import load_experiment  # noqa: E402
from weightlab.store import Store  # noqa: E402

XOR = [
    "data={kind: xor, samples: 500}",
    "model.layers=[{units: 16, activation: relu}, {units: 16, activation: relu}, "
    "{units: 1, activation: sigmoid, name: out}]",
    "train.loss=binary_crossentropy",
    "train.metrics=[accuracy]",
    "train.epochs=60",
    "train.optimizer={name: sgd, learning_rate: 0.1}",
    "matrix={model.kernel_initializer: [glorot_uniform, {name: constant, value: 0.1}]}",
]


def train(store: Store, name: str, seed: int, *overrides: str) -> dict[str, dict]:
    from weightlab.training.sweep import run_experiment

    exp = load_experiment(REPO / "configs" / f"{name}.yaml", [*overrides, f"seed={seed}"])
    return {str(next(iter(r["cell"].values()), "")): r for r in run_experiment(exp, store)}


def rms_last_hidden(store: Store, run: dict) -> float:
    cfg = store.config(run["id"])
    snap = store.snapshot(run["id"], 0)
    x = data.load(cfg["data"], cfg["seed"]).x_train.astype(np.float64)
    x0 = float(np.sqrt(np.mean(x**2)))
    for layer in cfg["model"]["layers"][:-1]:
        name = layer["name"]
        x = np.maximum(x @ snap[f"{name}/kernel"] + snap.get(f"{name}/bias", 0), 0)
    return float(np.sqrt(np.mean(x**2))) / x0


def losses(store: Store, run: dict) -> list[float | None]:
    return [row.get("loss") for row in store.history(run["id"])[1:]]


def measure(store: Store, seed: int, only: set[str]) -> dict:
    out: dict = {"seed": seed, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}
    if "linear-regression" in only:
        (r,) = train(store, "linear-regression", seed).values()
        snap = store.snapshot(r["id"], r["epochs_completed"])
        out["linear-regression"] = {
            "w": float(snap["neuron/kernel"][0, 0]),
            "b": float(snap["neuron/bias"][0]),
            "loss": r["final"]["loss"],
        }
    if "bias-vs-no-bias" in only:
        runs = train(store, "bias-vs-no-bias", seed)
        one = train(store, "bias-vs-no-bias", seed, "model.layers=[{units: 1}]")
        out["bias-vs-no-bias"] = {
            "loss": {k: r["final"]["loss"] for k, r in runs.items()},
            "linear_unit_loss": {k: r["final"]["loss"] for k, r in one.items()},
        }
    if "initializers" in only:
        runs = train(store, "initializers", seed)
        out["initializers"] = {
            k: {
                "status": r["status"],
                "diverged_at": r["diverged_at_epoch"],
                "loss": r["final"].get("loss"),
                "best": (r.get("best") or {}).get("loss"),
            }
            for k, r in runs.items()
        }
        xor = train(store, "initializers", seed, *XOR)
        out["xor"] = {
            k: {"accuracy": r["final"]["accuracy"], "loss": r["final"]["loss"]}
            for k, r in xor.items()
        }
    if "depth" in only:
        runs = train(store, "depth", seed)
        out["depth"] = {
            k: {
                "losses": losses(store, r),
                "rms_last_hidden": rms_last_hidden(store, r),
                "first_delta": store.history(r["id"])[1]["weights"]["dense_1/kernel"]["delta"],
            }
            for k, r in runs.items()
        }
    if "learning-rate" in only:
        runs = train(store, "learning-rate", seed)
        out["learning-rate"] = {
            k: {
                "status": r["status"],
                "diverged_at": r["diverged_at_epoch"],
                "losses": losses(store, r),
                "best": r.get("best"),
                "dist_init": (r.get("weights") or {}).get("dist_init"),
            }
            for k, r in runs.items()
        }
    if "dot-product" in only:
        runs = train(store, "dot-product", seed)
        out["dot-product"] = {
            k: {
                "loss": r["final"]["loss"],
                "kernel": store.snapshot(r["id"], 30)["neuron/kernel"][:, 0].tolist(),
            }
            for k, r in runs.items()
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--only",
        default="linear-regression,bias-vs-no-bias,initializers,depth,learning-rate,dot-product",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        for seed in (int(s) for s in args.seeds.split(",")):
            print(json.dumps(measure(store, seed, only)), flush=True)


if __name__ == "__main__":
    main()
