"""Target 2: a tiny experiment trains through weightlab in at most 0.35x plain `model.fit`.

Run: .venv/bin/python benchmarks/bench_tiny.py   (or `make bench`)
A 2->8->1 ReLU network, 1,000 samples, 50 epochs, batch 32 (32 steps per epoch). Variants,
interleaved, median of 5: the plain script `model.fit(X, y, epochs=50, batch_size=32)` (the
anchor; model built before the clock starts), the issue's hand-tuned Keras (cached tf.data,
steps_per_execution = 32), and a whole `weightlab run` with per-epoch snapshots (model building,
compiling, the run record and every snapshot included).
"""

from __future__ import annotations

from common import Lab, interleave, keras_mlp, median, print_table, timed

TINY = """
name: tiny
data: {kind: linear, samples: 1000, features: 2, offset: 3.0, validation_split: 0.0}
model: {layers: [{units: 8, activation: relu}, {units: 1}]}
train: {epochs: 50, batch_size: 32}
snapshots: {every: epoch}
"""


def main(repeats: int = 5) -> None:
    import tensorflow as tf

    lab = Lab(TINY)
    ds = lab.dataset()
    x, y = ds.x_train, ds.y_train

    def plain() -> float:
        model = keras_mlp(2, [8])
        return timed(lambda: model.fit(x, y, epochs=50, batch_size=32, verbose=0))

    def tuned() -> float:
        model = keras_mlp(2, [8])
        model.compile(optimizer="sgd", loss="mse", steps_per_execution=32)
        feed = tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(x)).batch(32)
        feed = feed.prefetch(tf.data.AUTOTUNE)
        return timed(lambda: model.fit(feed, epochs=50, verbose=0))

    records = []

    def weightlab() -> float:
        return timed(lambda: records.append(lab.run()))

    variants = {
        "plain model.fit(X, y, epochs=50, batch_size=32)": plain,
        "Keras, cached tf.data, steps_per_execution=32": tuned,
        "weightlab run (per-epoch snapshots, whole run)": weightlab,
    }
    interleave(variants, 1)  # warm-up: first-use costs fall on no variant
    records.clear()
    times = interleave(variants, repeats)
    fit = [r["timing"]["train_seconds"] + r["timing"]["snapshot_seconds"] for r in records]
    times["weightlab, of which fit (training + snapshots)"] = fit
    base = "plain model.fit(X, y, epochs=50, batch_size=32)"
    ratio = median(times["weightlab run (per-epoch snapshots, whole run)"]) / median(times[base])
    plan = records[-1]["execution"]
    print_table(
        "Target 2: tiny 2-8-1 MLP, 1,000 samples, 50 epochs, batch 32",
        times,
        base,
        f"weightlab / plain: {ratio:.3f} (target <= 0.35: {'met' if ratio <= 0.35 else 'NOT met'})"
        f"; chosen: steps_per_execution={plan['steps_per_execution']} of "
        f"{plan['steps_per_epoch']} steps per epoch, jit_compile={plan['jit_compile']}",
    )
    lab.close()


if __name__ == "__main__":
    main()
