"""A resolved config -> a compiled Keras Sequential model of Dense layers."""

from __future__ import annotations

from typing import Any, Protocol

import keras

from weightlab.training._keras_compat import remake_train_function
from weightlab.training.keras_names import resolve


class StepHook(Protocol):
    """Run inside the compiled train step, after its update (:meth:`Sequential.capture_steps`)."""

    def after_step(self) -> None: ...


class Sequential(keras.Sequential):
    """Keras' Sequential, with a hook run inside each compiled train step.

    Keras calls batch callbacks once per ``steps_per_execution`` steps; what must see every step
    (per-step snapshots) goes into the step itself, through ``train_step``, Keras' extension
    point for a custom step. Without a hook the step is Keras' own.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._step_hook: StepHook | None = None

    def capture_steps(self, hook: StepHook) -> None:
        """Run ``hook.after_step()`` in every train step from now on (the train function is
        made again if it was made before, so the hook is traced into it)."""
        self._step_hook = hook
        remake_train_function(self)

    def train_step(self, data: Any) -> Any:
        logs = super().train_step(data)
        if self._step_hook is not None:
            self._step_hook.after_step()
        return logs


def build(model_cfg: dict[str, Any], features: int) -> Sequential:
    """Build the Dense stack. Layer names come from the config, never from Keras' global counter."""
    layers: list[Any] = [keras.Input(shape=(features,), name="x")]
    for layer in model_cfg["layers"]:
        activation = layer["activation"]
        layers.append(
            keras.layers.Dense(
                layer["units"],
                activation=None if activation is None else resolve("activation", activation),
                use_bias=layer["use_bias"],
                kernel_initializer=resolve("initializer", layer["kernel_initializer"]),
                bias_initializer=resolve("initializer", layer["bias_initializer"]),
                name=layer["name"],
            )
        )
    return Sequential(layers, name="weightlab")


def compile_model(
    model: keras.Sequential,
    train_cfg: dict[str, Any],
    steps_per_execution: int = 1,
    jit_compile: bool | str = "auto",
) -> None:
    """Compile with the config's optimizer, loss and metrics and the runner's execution choices."""
    model.compile(
        optimizer=resolve("optimizer", train_cfg["optimizer"]),
        loss=resolve("loss", train_cfg["loss"]),
        metrics=[_metric(m) for m in train_cfg["metrics"]],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )


def _metric(ref: Any) -> Any:
    # Plain names go to compile() as written so that Keras picks e.g. the right accuracy variant
    # and reports the metric under the name the user typed.
    return ref if isinstance(ref, str) else resolve("metric", ref)


def variables(model: keras.Sequential) -> list[tuple[str, Any]]:
    """``[("dense_1/kernel", variable), ...]`` in layer order."""
    return [(f"{layer.name}/{v.name}", v) for layer in model.layers for v in layer.weights]
