"""Target 1: snapshots cost (almost) nothing; Keras' own recorders are the anchors.

Run: .venv/bin/python benchmarks/bench_snapshots.py   (or `make bench`)
A 20->64->64->1 ReLU MLP, 20,000 samples, 10 epochs, batch 64 (313 steps per epoch), SGD on MSE.
Six variants, interleaved, median of 5 (after one warm-up round): plain `model.fit` (the anchor),
Keras' `TensorBoard(histogram_freq=1)`, a naive callback copying every weight after every batch,
and weightlab with `snapshots.every` never / epoch / 1. weightlab's figure is its time in `fit`
(training plus waiting for the snapshot writer), from the run record.
Targets: every epoch <= 1.03x never, every batch (every: 1) <= 1.3x never.
"""

from __future__ import annotations

import tempfile

from common import Lab, interleave, keras_mlp, median, print_table, timed

MLP = """
name: mlp
data: {kind: linear, samples: 20000, features: 20, validation_split: 0.0}
model:
  layers: [{units: 64, activation: relu}, {units: 64, activation: relu}, {units: 1}]
train: {epochs: 10, batch_size: 64}
"""


def main(repeats: int = 5) -> None:
    import keras
    import numpy as np

    lab = Lab(MLP)
    ds = lab.dataset()
    x, y = ds.x_train, ds.y_train
    logdir = tempfile.TemporaryDirectory()

    def keras_fit(*callbacks: object) -> float:
        model = keras_mlp(20, [64, 64])
        cbs = [c(model) if callable(c) else c for c in callbacks]
        return timed(lambda: model.fit(x, y, epochs=10, batch_size=64, verbose=0, callbacks=cbs))

    def naive_copy(model: keras.Model) -> keras.callbacks.Callback:
        copies: list[list[np.ndarray]] = []

        def copy(batch: int, logs: object) -> None:
            copies.append([np.array(w.numpy()) for w in model.weights])

        return keras.callbacks.LambdaCallback(on_train_batch_end=copy)

    def tensorboard(model: keras.Model) -> keras.callbacks.Callback:
        return keras.callbacks.TensorBoard(logdir.name, histogram_freq=1)

    variants = {
        "plain Keras model.fit": lambda: keras_fit(),
        "Keras + TensorBoard(histogram_freq=1)": lambda: keras_fit(tensorboard),
        "Keras + naive copy of all weights every batch": lambda: keras_fit(naive_copy),
        "weightlab, snapshots never (statistics only)": lambda: lab.fit_seconds(
            "snapshots.every=never"
        ),
        "weightlab, snapshots every epoch": lambda: lab.fit_seconds("snapshots.every=epoch"),
        "weightlab, snapshots every batch (every: 1)": lambda: lab.fit_seconds("snapshots.every=1"),
    }
    interleave(variants, 1)  # warm-up: first-use costs fall on no variant
    times = interleave(variants, repeats)
    never = median(times["weightlab, snapshots never (statistics only)"])
    epoch = median(times["weightlab, snapshots every epoch"]) / never
    batch = median(times["weightlab, snapshots every batch (every: 1)"]) / never
    print_table(
        "Target 1: snapshot cost, 20-64-64-1 MLP, 20,000 samples, 10 epochs, batch 64",
        times,
        "plain Keras model.fit",
        f"weightlab every epoch / never: {epoch:.3f} (target <= 1.03: {_met(epoch <= 1.03)})\n"
        f"weightlab every batch / never: {batch:.3f} (target <= 1.3: {_met(batch <= 1.3)})",
    )
    logdir.cleanup()
    lab.close()


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()
