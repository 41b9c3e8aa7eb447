"""The Keras internals weightlab relies on: one module reaches them, and a missing one says so.

No training here beyond one tiny fit: these run in seconds once TensorFlow is imported.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.keras

PACKAGE = Path(__file__).resolve().parent.parent / "weightlab"
COMPAT = PACKAGE / "training" / "_keras_compat.py"


@pytest.fixture(scope="module")
def compat():
    from weightlab.training import _keras_compat

    return _keras_compat


# The number of entries of INTERNALS (a constant so that collection needs no TensorFlow); a new
# internal is added here too, and gets its own case below.
N_INTERNALS = 15


def test_every_internal_resolves(compat):
    owners = compat._owners(compat.INTERNALS)
    for internal in compat.INTERNALS:
        assert owners[internal.owner] is not None, internal.name
        assert hasattr(owners[internal.owner], internal.attribute), internal.name
        assert compat._problem(internal, owners) is None, internal.name
    assert len(compat.INTERNALS) == N_INTERNALS, "count the new internal in N_INTERNALS"
    names = [i.name for i in compat.INTERNALS]
    assert len(set(names)) == len(names)


def _take_away(monkeypatch, compat, internal):
    """Make ``internal`` disappear (or change its signature) the way a Keras release could."""
    if internal.owner in compat._PROBES:
        real = compat._PROBES[internal.owner]

        def without():
            obj = real()
            delattr(obj, internal.attribute)
            return obj

        monkeypatch.setitem(compat._PROBES, internal.owner, without)
        return
    if internal.owner.startswith("keras.src."):
        owner = importlib.import_module(internal.owner)
    else:
        path, _, name = internal.owner.rpartition(".")
        owner = getattr(importlib.import_module(path), name)
    if internal.attribute in vars(owner):
        monkeypatch.delattr(owner, internal.attribute)
    if hasattr(owner, internal.attribute):  # inherited: a changed signature instead
        monkeypatch.setattr(owner, internal.attribute, lambda self: None, raising=False)


@pytest.mark.parametrize("index", range(N_INTERNALS))
def test_a_missing_internal_fails_the_import_check_naming_it(monkeypatch, compat, index):
    import keras
    import tensorflow as tf

    internal = compat.INTERNALS[index]
    compat.check()  # whole before
    _take_away(monkeypatch, compat, internal)
    with pytest.raises(compat.KerasCompatError) as raised:
        compat.check()
    text = str(raised.value)
    assert f"{internal.owner}" in text and internal.attribute in text, text
    assert f"Keras {keras.__version__}" in text and f"TensorFlow {tf.__version__}" in text
    assert f"tested with Keras {compat.TESTED['keras']}" in text
    assert internal.purpose in text
    others = [i for i in compat.INTERNALS if i is not internal and i.owner != internal.owner]
    assert not any(f"{i.name} " in text for i in others), "only the missing one is named"
    monkeypatch.undo()
    compat.check()  # whole again


def test_the_check_runs_when_training_imports_it(monkeypatch, compat):
    from keras.src.utils import rng_utils

    from weightlab.errors import WeightlabError

    monkeypatch.delattr(rng_utils, "random")
    try:
        with pytest.raises(WeightlabError, match="keras.src.utils.rng_utils has no attribute"):
            importlib.reload(compat)
    finally:
        monkeypatch.undo()
        importlib.reload(compat)


def test_tested_versions_are_inside_the_pins(compat):
    """The versions the error message recommends are ones pyproject.toml allows."""
    text = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert '"keras>=3,<4"' in text and '"tensorflow>=2.16,<3"' in text
    assert compat.TESTED["keras"].split(".")[0] == "3"
    major, minor = (int(p) for p in compat.TESTED["tensorflow"].split(".")[:2])
    assert major == 2 and minor >= 16


def test_only_the_compat_module_reaches_keras_internals(compat):
    private = [i.attribute for i in compat.INTERNALS if i.attribute.startswith("_")]
    words = ["keras.src", "train_function", *(f".{a}" for a in private)]
    pattern = re.compile("|".join(r"(?<!\w)" + re.escape(w) + r"\b" for w in words))
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == COMPAT:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
    assert "keras.src" in COMPAT.read_text(encoding="utf-8")


def test_importing_the_check_starts_no_tensorflow_runtime():
    """Workers set their thread pools after importing training: the check must leave it possible."""
    code = (
        "import weightlab.training._keras_compat\n"
        "import tensorflow as tf\n"
        "tf.config.threading.set_intra_op_parallelism_threads(1)\n"
        "print('pools set')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0 and "pools set" in out.stdout, out.stderr[-2000:]


def test_use_python_random_gives_keras_a_stream_of_its_own(compat):
    import random

    import keras
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    saved = seed_generator.python_random, rng_utils.random
    try:
        stream = compat.use_python_random()
        assert seed_generator.python_random is stream and rng_utils.random is stream
        keras.utils.set_random_seed(7)
        drawn = seed_generator.make_default_seed()
        random.random()  # another thread's draw from the global stream changes nothing
        keras.utils.set_random_seed(7)
        random.random()
        assert seed_generator.make_default_seed() == drawn
    finally:
        seed_generator.python_random, rng_utils.random = saved


def _tiny(steps_per_execution: int):
    from weightlab.training.model import build, compile_model
    from weightlab.training.runner import set_determinism

    set_determinism(0)
    cfg = {
        "layers": [
            {
                "units": 2,
                "name": "out",
                "activation": None,
                "use_bias": True,
                "kernel_initializer": "glorot_uniform",
                "bias_initializer": "zeros",
            }
        ]
    }
    model = build(cfg, 3)
    train = {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "loss": "mse", "metrics": []}
    compile_model(model, train, steps_per_execution=steps_per_execution, jit_compile=False)
    return model


def test_keras_calls_the_subclass_train_step_every_step():
    import tensorflow as tf

    from weightlab.training.model import Sequential

    model = _tiny(steps_per_execution=4)
    assert isinstance(model, Sequential)

    class Count:
        def __init__(self):
            self.calls = tf.Variable(0, dtype=tf.int64, trainable=False)

        def after_step(self):
            self.calls.assign_add(1)

    hook = Count()
    model.capture_steps(hook)
    x = np.ones((40, 3), np.float32)
    model.fit(x, np.zeros((40, 2), np.float32), batch_size=4, epochs=2, verbose=0, shuffle=False)
    assert int(hook.calls.numpy()) == 20 == int(model.optimizer.iterations.numpy())
    assert "train_step" not in vars(model), "the step is the class's, not patched in"

    # A hook set after the train function was made is traced into a fresh one.
    again = Count()
    model.capture_steps(again)
    model.fit(x, np.zeros((40, 2), np.float32), batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert int(again.calls.numpy()) == 10 and int(hook.calls.numpy()) == 20


def test_step_capture_copies_every_step_through_the_subclass(tmp_path):
    from weightlab.training.snapshots import StepCapture

    model = _tiny(steps_per_execution=5)
    capture = StepCapture(model, every=1)
    assert "train_step" not in vars(model)
    x = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(30, 2)).astype(np.float32)
    seen = []
    for _ in range(3):  # one execution of 5 steps per fit call, drained after each
        model.fit(x[:20], y[:20], batch_size=4, epochs=1, verbose=0, shuffle=False)
        taken = capture.drain()
        assert taken is not None
        steps, arrays = taken
        seen.extend(steps.tolist())
        assert np.array_equal(arrays["out/kernel"][-1], model.layers[-1].kernel.numpy())
        assert np.array_equal(arrays["out/bias"][-1], model.layers[-1].bias.numpy())
    assert seen == list(range(1, 16))
    assert capture.drain() is None


def test_step_capture_refuses_a_plain_keras_model():
    import keras

    from weightlab.training.snapshots import StepCapture

    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    plain.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match="weightlab Sequential"):
        StepCapture(plain, every=1)
