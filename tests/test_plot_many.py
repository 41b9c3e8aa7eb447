"""Plots of many runs (issue 16): one colour per group of seeds with a band, diverged runs kept
out of the y range, the legend outside the axes, labels that never overlap, no colour twice."""

from __future__ import annotations

import pytest
from conftest import write_run

from weightlab import plot as plots

INITS = [
    "glorot_uniform",
    "he_normal",
    {"name": "random_normal", "stddev": 0.01},
    "zeros",
    {"name": "constant", "value": 0.1},
    {"name": "random_normal", "stddev": 20.0},
]


@pytest.fixture
def batch30(store):
    """configs/initializers.yaml with 5 seeds: 30 runs, the last 5 blow up (loss 3e33)."""
    for i, init in enumerate(INITS):
        for seed in range(5):
            blew = i == len(INITS) - 1
            write_run(
                store,
                batch="many",
                seed=seed,
                epochs=6,
                cell={"model.kernel_initializer": init},
                losses=[3e33] * 6 if blew else [(0.3 + 0.02 * seed) / (1 + e) for e in range(6)],
                diverged_at=1 + seed % 2 if blew else None,
                status="diverged" if blew else "completed",
            )
    return store.select(["many"])


def drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_thirty_runs_are_six_groups_with_bands_and_a_sane_y_range(store, batch30):
    fig, info = plots.figure(store, batch30, "loss")
    assert [len(g["runs"]) for g in info["groups"]] == [5] * 6
    assert info["groups"][0]["label"] == "kernel_init=glorot_uniform"  # matrix order
    low, high = info["y_range"]
    assert high < 1, "the diverged runs' 3e33 must not set the y range"
    assert len(info["diverged"]) == 5
    (ax,) = fig.axes
    assert len(ax.collections) == 6, "one seed band per group"
    renderer = drawn(fig)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert not overlap(box, ax.get_window_extent(renderer)), "the legend covers the axes"
    assert legend.get_title().get_text() == "kernel_init"
    entries = [t.get_text() for t in legend.get_texts()]
    assert entries[:6] == [
        "glorot_uniform",
        "he_normal",
        "random_normal(stddev=0.01)",
        "zeros",
        "constant(value=0.1)",
        "random_normal(stddev=20)",
    ]
    labels = [t for t in ax.texts if t.get_text().startswith("blew up")]
    assert [t.get_text() for t in labels] == [
        "blew up at epoch 1 (3 runs)",
        "blew up at epoch 2 (2 runs)",
    ]
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not overlap(*boxes), "blew-up labels overlap"


def test_no_colour_repeats_after_ten(store):
    for i in range(23):
        write_run(store, batch="c", cell={"train.batch_size": 8 * (i + 1)})
    fig, info = plots.figure(store, store.select(["c"]), "loss")
    (legend,) = fig.legends
    colours = [
        tuple(h.get_color()) if not isinstance(h.get_color(), str) else h.get_color()
        for h in legend.legend_handles[:23]
    ]
    assert len(info["groups"]) == 23 and len(set(colours)) == 23


def test_biases_of_17_runs_title_once_and_panels_only_with_biases(store):
    for i in range(17):
        bias = i % 4 != 0  # 5 of them have no bias
        write_run(
            store,
            batch="b",
            seed=i % 3,
            use_bias=bias,
            cell={"model.layers.0.units": 3 + i // 3, "model.use_bias": bias},
        )
    fig, info = plots.figure(store, store.select(["b"]), "biases")
    title = fig.get_suptitle()
    assert title.count("17") == 1 and "(first 8 of 17 runs) (17 runs)" not in title
    assert "8 of the 12 runs with biases" in title
    drawn_panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(drawn_panels) == 9  # 8 runs, and one panel that names the 5 without biases
    assert sum(v is None for v in info["biases"].values()) == 5
    assert sum(1 for ax in drawn_panels if ax.texts) == 1
    assert drawn_panels[-1].get_title() == "5 runs without biases"
