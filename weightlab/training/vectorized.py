"""The vectorized engine: a group of compatible runs trained as one stacked computation.

Every Dense layer of the group holds one kernel of shape (members, in, out) and one bias of shape
(members, out); a batch is (members, batch, features), each member's rows in its own (seed,
epoch) order. A member's arithmetic never reads another member's numbers: the matmuls are
batched over the member axis, each member's loss is the mean over its own batch, the summed
loss gives each member's gradient exactly its own, and the optimizer's update is elementwise
(the learning rate a per-member vector). So a member's bits do not depend on its neighbours, and
it writes exactly what a keras-engine run writes: the per-member callbacks are the keras
engine's own (:class:`WeightSnapshots`, :class:`~weightlab.training.state.ResumeState`), given
a view of the member's slice of the stacked variables in place of a Keras model.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from weightlab import data, lifecycle
from weightlab.config import RunSpec
from weightlab.groups import PER_MEMBER, Group, optimizer_name
from weightlab.resume import ResumePlan, fingerprint
from weightlab.runstart import OnEvent, spec_record
from weightlab.sink import MakeSink
from weightlab.store import RunWriter, Store
from weightlab.training import _keras_compat, runner, state
from weightlab.training.keras_names import resolve
from weightlab.training.model import build, compile_model
from weightlab.training.snapshots import BatchWeightSnapshots, WeightSnapshots

ENGINE = "vectorized"
PAD = 16  # the stack holds a multiple of this many members (see _Stack)


class Unsupported(Exception):
    """The group needs something only the keras engine does; the message says what."""


# ---- a member's slice of the stacked variables, as the keras engine's callbacks see a model ----


class _View:
    """One member's slice of a stacked variable (or a shared scalar), read from the host copy."""

    def __init__(self, group: _Stack, key: str, slot: int | None, name: str, value: Any = None):
        self.group, self.key, self.slot, self.name = group, key, slot, name
        self.value = value  # a constant of this member (its learning rate)

    @property
    def path(self) -> str:
        return self.key

    @property
    def shape(self) -> tuple[int, ...]:
        full = tuple(self.group.vars[self.key].shape)
        return full[1:] if self.slot is not None else full

    def numpy(self) -> np.ndarray:
        if self.value is not None:
            return np.asarray(self.value, dtype=np.float32)
        host = self.group.host()[self.key]
        return host[self.slot] if self.slot is not None else host

    def assign(self, value: Any) -> None:
        if self.value is not None:
            return  # the member's own learning rate stays what its config says
        var = self.group.vars[self.key]
        if self.slot is None:
            var.assign(value)
        else:
            full = np.array(var.numpy())
            full[self.slot] = value
            var.assign(full)
        self.group.stale = True


class _Capture:
    """What BatchWeightSnapshots drains after each call: step copies queued by the group."""

    def __init__(self) -> None:
        self.queued: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []

    def drain(self) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        if not self.queued:
            return None
        taken, self.queued = self.queued, []
        steps = np.concatenate([s for s, _ in taken])
        return steps, {k: np.concatenate([a[k] for _, a in taken]) for k in taken[0][1]}


class _Member:
    """The keras engine's snapshot callback, reading a member's slice instead of a model."""

    capture: Any

    def set_model(self, model: Any) -> None:
        keras.callbacks.Callback.set_model(self, model)
        self.capture = _Capture() if isinstance(self, BatchWeightSnapshots) else None


class _MemberEpochs(_Member, WeightSnapshots):
    pass


class _MemberSteps(_Member, BatchWeightSnapshots):
    pass


# ---- the stacked model ----------------------------------------------------------------------


class _PerMember:
    """An optimizer argument with each member's value, in the shape of the variable it updates.

    Keras' update reads the argument as a Python float: arithmetic with Python numbers happens in
    double precision (``1 - rho``), and the result becomes a float32 tensor where it meets one.
    This does the same, element by element, so a member's update has the bits it has when its
    whole group shares its value. It fills the variable's whole shape, never (members, 1, ...):
    Keras' ``ops.add`` takes an operand that squeezes to one axis for a bias (``bias_add``).
    """

    def __init__(self, values: Any):
        self.values = np.asarray(values, np.float64)

    def _with(self, other: Any, op: Callable[[Any, Any], Any]) -> Any:
        if isinstance(other, int | float) and not isinstance(other, bool):
            return _PerMember(op(self.values, other))
        return NotImplemented  # a tensor: it converts this one (below) and does the arithmetic

    def __add__(self, other: Any) -> Any:
        return self._with(other, lambda a, b: a + b)

    def __radd__(self, other: Any) -> Any:
        return self._with(other, lambda a, b: b + a)

    def __sub__(self, other: Any) -> Any:
        return self._with(other, lambda a, b: a - b)

    def __rsub__(self, other: Any) -> Any:
        return self._with(other, lambda a, b: b - a)

    def __mul__(self, other: Any) -> Any:
        return self._with(other, lambda a, b: a * b)

    def __rmul__(self, other: Any) -> Any:
        return self._with(other, lambda a, b: b * a)

    def __truediv__(self, other: Any) -> Any:
        return self._with(other, lambda a, b: a / b)

    def __rtruediv__(self, other: Any) -> Any:
        return self._with(other, lambda a, b: b / a)

    def __neg__(self) -> _PerMember:
        return _PerMember(-self.values)

    def _all(self, answers: np.ndarray) -> bool:
        if answers.all() != answers.any():
            raise Unsupported("members differ in a test the optimizer makes of an argument")
        return bool(answers.all())

    def __gt__(self, other: Any) -> bool:
        return self._all(self.values > other)

    def __ge__(self, other: Any) -> bool:
        return self._all(self.values >= other)

    def __lt__(self, other: Any) -> bool:
        return self._all(self.values < other)

    def __le__(self, other: Any) -> bool:
        return self._all(self.values <= other)

    def __eq__(self, other: Any) -> bool:
        return self._all(self.values == other)

    def __ne__(self, other: Any) -> bool:
        return self._all(self.values != other)

    __hash__ = None  # type: ignore[assignment]


def _convert(value: _PerMember, dtype: Any = None, name: Any = None, as_ref: bool = False) -> Any:
    return tf.constant(value.values, dtype=dtype or tf.float32, name=name)


tf.register_tensor_conversion_function(_PerMember, _convert)


def _loss_fn(ref: Any) -> Callable[[Any, Any], Any]:
    """The config's loss, unreduced: per-sample values, as Keras computes them before its mean."""
    obj = resolve("loss", ref)
    if isinstance(obj, keras.losses.Loss):
        config = {**obj.get_config(), "reduction": None}
        return type(obj).from_config(config)
    return _keras_compat.loss_function_wrapper(obj, reduction=None)


def _metric_fns(refs: list[Any], y: np.ndarray, outputs: int) -> list[tuple[str, Any, dict]]:
    """(name, function, kwargs) of each metric, the function Keras' compile() would pick."""
    y_true = tf.zeros((1, *y.shape[1:]), dtype=y.dtype)
    y_pred = tf.zeros((1, outputs))
    out = []
    for ref in refs:
        identifier = ref if isinstance(ref, str) else resolve("metric", ref)
        metric = _keras_compat.get_metric(identifier, y_true, y_pred)
        stateless = isinstance(metric, keras.metrics.MeanMetricWrapper)
        fn, kwargs = _keras_compat.metric_function(metric) if stateless else (None, {})
        if fn is None:
            raise Unsupported(f"metric {metric.name} keeps state across batches")
        out.append((metric.name, fn, kwargs))
    return out


def _same_rank(y: Any, pred: Any) -> tuple[Any, Any]:
    """What Keras' metric wrapper does to labels and predictions before the metric function."""
    return _keras_compat.squeeze_or_expand_to_same_rank(y, pred)


def _mixed(bias: Any, uses: list[bool]) -> Any:
    """Where a layer's bias is used, when only some members have one (else None)."""
    return None if bias is None or all(uses) else tf.constant(np.array(uses)[:, None, None])


class _Stack:
    """The group's stacked variables, optimizer and compiled epoch functions."""

    def __init__(
        self,
        cfgs: list[dict[str, Any]],
        seeds: list[int],
        datasets: list[data.Dataset],
        members: list[Any],
    ):
        # A member's bits must not depend on its neighbours, and two things in TensorFlow's CPU
        # kernels would make them: an elementwise function that is not correctly rounded (exp,
        # log, sigmoid, softplus, pow, and the rsqrt Grappler makes of ``x / sqrt(y)``) computes
        # a tensor's last ``size % packet`` elements with scalar code, whose last bits differ
        # from the vectorized code's; and the batch matmul of a batch of one takes another
        # kernel (``LaunchBatchMatMul``, Eigen's path). So the stack always holds a multiple of
        # PAD members: every tensor with the member axis then has a size that is a multiple of
        # the widest float packet (AVX-512's 16), and no element of any member goes through a
        # scalar tail. The phantoms are copies of the first member, masked from the first step
        # (zero gradients, as a diverged member's), reading its data rows; they are never
        # recorded.
        self.real = len(cfgs)  # the members that are recorded: slots 0 .. real - 1
        extra = -len(cfgs) % PAD
        cfgs, seeds = cfgs + [cfgs[0]] * extra, seeds + [seeds[0]] * extra
        datasets, members = datasets + [datasets[0]] * extra, members + [members[0]] * extra
        cfg = cfgs[0]
        self.n = len(cfgs)
        train = cfg["train"]
        self.batch = int(train["batch_size"])
        self.shuffle = bool(train["shuffle"])
        self.epochs = int(train["epochs"])
        first = datasets[0]
        self.rows = len(first.x_train)
        self.spe = runner.steps_per_epoch(first, train)
        outputs = int(cfg["model"]["layers"][-1]["units"])

        def targets(ys: list[Any]) -> Any:
            y = np.concatenate([np.asarray(a) for a in ys])
            # Labels (n,) against one output: Keras squeezes the (batch, 1) prediction and takes
            # the mean over the batch; per member, that is the mean of (batch, 1) against (batch,
            # 1), which a stacked (members, batch) label array would not give.
            return tf.constant(y[..., None] if y.ndim == 1 and outputs == 1 else y)

        # Each distinct dataset is held once, its rows end to end; a member reads its rows at
        # ``base[member] + row`` (members with one data seed share one copy).
        held = list({id(d): d for d in datasets}.values())
        where = {id(d): i for i, d in enumerate(held)}
        at = np.array([where[id(d)] for d in datasets], np.int64)
        self.base = tf.constant((at * self.rows)[:, None])
        self.x = tf.constant(np.concatenate([d.x_train for d in held]))
        self.y = targets([d.y_train for d in held])
        self.has_val = first.x_val is not None
        if self.has_val:
            self.val_rows = len(np.asarray(first.x_val))
            self.val_base = tf.constant((at * self.val_rows)[:, None])
            self.xv = tf.constant(np.concatenate([np.asarray(d.x_val) for d in held]))
            self.yv = targets([d.y_val for d in held])
        self.seeds = tf.constant(seeds, dtype=tf.int64)
        layers = cfg["model"]["layers"]
        self.layers: list[dict[str, Any]] = []
        self.vars: dict[str, Any] = {}
        trainable = []
        for i, layer in enumerate(layers):
            name = layer["name"]
            uses = [bool(c["model"]["layers"][i]["use_bias"]) for c in cfgs]
            kernel = np.stack([m.initial[f"{name}/kernel"] for m in members])
            # The keras engine's paths (model/layer/variable): the optimizer names its slot
            # variables after them, and a member's resume state is matched by those names.
            with keras.name_scope("weightlab"), keras.name_scope(name):
                k = keras.Variable(kernel, name="kernel")
                b = None
                if any(uses):
                    zeros = np.zeros((kernel.shape[2],), np.float32)
                    bias = np.stack([m.initial.get(f"{name}/bias", zeros) for m in members]).astype(
                        np.float32
                    )
                    b = keras.Variable(bias, name="bias")
            act = layer["activation"]
            entry = {
                "name": name,
                "kernel": k,
                "bias": b,
                "mixed": _mixed(b, uses),
                "uses": np.array(uses),
                "activation": None if act is None else resolve("activation", act),
            }
            self.layers.append(entry)
            self.vars[f"{name}/kernel"] = k
            trainable.append(k)
            if b is not None:
                self.vars[f"{name}/bias"] = b
                entry["bias_index"] = len(trainable)
                trainable.append(b)
        self.trainable = trainable
        self.alive = tf.Variable(np.arange(self.n) < self.real, trainable=False)
        lrs = [float(m.lr) for m in members]
        self.lr = tf.constant(np.array(lrs, np.float32))
        self.optimizer = resolve("optimizer", train["optimizer"])
        self._per_member_rate(self.optimizer, members)
        self.optimizer.build(trainable)
        for v in self.optimizer.variables:
            self.vars[v.name] = v
        self.loss = _loss_fn(train["loss"])
        self.metrics = _metric_fns(train["metrics"], first.y_train, outputs)
        # Epoch accumulators (loss and each metric: sums per member, and the sample count).
        self.sums = tf.Variable(tf.zeros((1 + len(self.metrics), self.n)), trainable=False)
        self.counts = tf.Variable(tf.zeros((1 + len(self.metrics),)), trainable=False)
        self.order = tf.Variable(tf.zeros((self.n, self.rows), tf.int64), trainable=False)
        self._host: dict[str, np.ndarray] | None = None
        self.stale = True
        self.run_steps = tf.function(self._run_steps, reduce_retracing=True)
        self.begin = tf.function(self._begin)
        self.validate = tf.function(self._validate)
        variables = list(self.vars.values())
        self.read_all = tf.function(lambda: [tf.identity(v.value) for v in variables])

    def _per_member_rate(self, optimizer: Any, members: list[Any]) -> None:
        """Give the optimizer's update each member's learning rate (a broadcast vector), and each
        member's value of an argument of :data:`PER_MEMBER` where the members' values differ."""
        update = type(optimizer).update_step
        n, lr = self.n, self.lr
        varying = {
            name: np.array([m.hyper[name] for m in members], np.float64)
            for name in members[0].hyper
            if len({m.hyper[name] for m in members}) > 1
        }

        def update_step(gradient: Any, variable: Any, learning_rate: Any) -> Any:
            rank = len(variable.shape)
            shape = [n] + [1] * (rank - 1)
            rate = tf.reshape(lr, shape) if rank >= 1 else learning_rate
            shared = {name: getattr(optimizer, name) for name in varying}
            for name, values in varying.items():
                full = np.broadcast_to(values.reshape(shape), tuple(variable.shape))
                setattr(optimizer, name, _PerMember(full))
            try:
                return update(optimizer, gradient, variable, rate)
            finally:
                for name, value in shared.items():
                    setattr(optimizer, name, value)

        _keras_compat.override_update_step(optimizer, update_step)

    # -- host copies -----------------------------------------------------------------------------

    def host(self) -> dict[str, np.ndarray]:
        """Every stacked variable as numpy, read once per recorded point, in one call: an eager
        read costs two dispatched ops a variable, which for a group's few dozen variables once an
        epoch was a third of a 32-member group's time."""
        if self.stale or self._host is None:
            values = self.read_all()
            self._host = {k: np.asarray(v) for k, v in zip(self.vars, values, strict=True)}
            self.stale = False
        return self._host

    # -- compiled parts --------------------------------------------------------------------------

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            z = tf.linalg.matmul(x, layer["kernel"])
            if layer["bias"] is not None:
                zb = z + tf.expand_dims(layer["bias"], 1)
                z = zb if layer["mixed"] is None else tf.where(layer["mixed"], zb, z)
            x = z if layer["activation"] is None else layer["activation"](z)
        return x

    def _per_member(self, y: Any, pred: Any) -> tuple[Any, Any]:
        values = tf.reshape(self.loss(y, pred), [self.n, -1])  # (members, batch)
        size = tf.cast(tf.shape(values)[1], tf.float32)
        return tf.reduce_sum(values, axis=1) / size, size

    def _accumulate(self, losses: Any, size: Any, y: Any, pred: Any) -> None:
        sums = [losses * size]
        counts = [size]
        for _, fn, kwargs in self.metrics:
            y_true, y_pred = _same_rank(y, pred)
            values = tf.cast(fn(y_true, y_pred, **kwargs), tf.float32)
            values = tf.reshape(values, [self.n, -1])
            sums.append(tf.reduce_sum(values, axis=1))
            counts.append(tf.cast(tf.shape(values)[1], tf.float32))
        self.sums.assign_add(tf.stack(sums))
        self.counts.assign_add(tf.stack(counts))

    def _begin(self, epoch: Any) -> None:
        """Each member's row order of ``epoch`` (the keras engine's), and fresh accumulators."""
        n, shuffle = self.rows, self.shuffle
        orders = tf.map_fn(
            lambda seed: runner.epoch_order(n, seed, epoch, shuffle),
            self.seeds,
            fn_output_signature=tf.int64,
        )
        self.order.assign(orders)
        self.sums.assign(tf.zeros_like(self.sums))
        self.counts.assign(tf.zeros_like(self.counts))

    def _run_steps(self, start: Any, stop: Any) -> None:
        alive = self.alive
        for s in tf.range(start, stop):
            lo = s * self.batch
            hi = tf.minimum(lo + self.batch, self.rows)
            rows = self.order[:, lo:hi] + self.base
            x = tf.gather(self.x, rows)
            y = tf.gather(self.y, rows)
            with tf.GradientTape() as tape:
                pred = self.forward(x)
                losses, size = self._per_member(y, pred)
                total = tf.reduce_sum(losses)
            grads = tape.gradient(total, self.trainable)
            masked = []
            for var, grad in zip(self.trainable, grads, strict=True):
                keep = tf.reshape(alive, [self.n] + [1] * (len(var.shape) - 1))
                masked.append(tf.where(keep, grad, tf.zeros_like(grad)))
            for layer in self.layers:
                if layer["mixed"] is not None:
                    i = layer["bias_index"]
                    uses = tf.reshape(layer["mixed"], [self.n, 1])
                    masked[i] = tf.where(uses, masked[i], tf.zeros_like(masked[i]))
            self.optimizer.apply(masked, self.trainable)
            self._accumulate(losses, size, y, pred)

    def _validate(self) -> tuple[Any, Any]:
        """Epoch results: training (sums, counts) and, with validation data, their val_ twins."""
        train = (self.sums.read_value(), self.counts.read_value())
        if not self.has_val:
            return train, train
        self.sums.assign(tf.zeros_like(self.sums))
        self.counts.assign(tf.zeros_like(self.counts))
        rows = self.val_rows
        for lo in tf.range(0, rows, self.batch):
            hi = tf.minimum(lo + self.batch, rows)
            at = tf.range(lo, hi, dtype=tf.int64)[None, :] + self.val_base
            x, y = tf.gather(self.xv, at), tf.gather(self.yv, at)
            pred = self.forward(x)
            losses, size = self._per_member(y, pred)
            self._accumulate(losses, size, y, pred)
        return train, (self.sums.read_value(), self.counts.read_value())

    def epoch_logs(self) -> list[dict[str, float]]:
        """Every member's logs of the epoch just trained, named and ordered as Keras' fit."""
        (ts, tc), (vs, vc) = self.validate()
        ts, tc, vs, vc = ts.numpy(), tc.numpy(), vs.numpy(), vc.numpy()
        names = ["loss", *(m[0] for m in self.metrics)]
        logs = []
        for slot in range(self.real):
            row = {
                name: float(np.float32(ts[i, slot]) / np.float32(tc[i]))
                for i, name in enumerate(names)
            }
            if self.has_val:
                row |= {
                    f"val_{name}": float(np.float32(vs[i, slot]) / np.float32(vc[i]))
                    for i, name in enumerate(names)
                }
            # Keras' fit hands its logs through its tree utilities, which sort dict keys: the
            # training logs by name, then the validation logs by name.
            train = sorted(k for k in row if not k.startswith("val_"))
            logs.append({k: row[k] for k in train + sorted(k for k in row if k not in train)})
        return logs


# ---- a member -------------------------------------------------------------------------------


class _Run:
    """One member: its spec, data, writer, initial arrays and the keras engine's callbacks."""

    def __init__(
        self, spec: RunSpec, dataset: data.Dataset, writer: Any, seed: int, shared: _Twins
    ):
        self.spec, self.dataset, self.writer, self.seed = spec, dataset, writer, seed
        self.config = spec.config
        self.record = writer.record
        self.initial = _initial(self.config, seed, dataset.features)
        self.twin = shared.twin(self.config, dataset.features)
        self.lr = shared.rate(self.config)
        self.hyper = shared.hyper(self.config)
        self.layers = [
            SimpleNamespace(name=layer.name, weights=list(layer.weights))
            for layer in self.twin.layers
        ]
        self.snap: WeightSnapshots | None = None
        self.keep: state.ResumeState | None = None
        self._model: keras.Model | None = None

    @property
    def model(self) -> keras.Model:
        """The member's own Keras model (for the replay of a diverged epoch), made when asked."""
        if self._model is None:
            self._model = _keras_member(self.config, self.seed, self.dataset.features)
        return self._model


def _initial(cfg: dict[str, Any], seed: int, features: int) -> dict[str, np.ndarray]:
    """A member's epoch-0 arrays, drawn as :func:`~weightlab.training.model.build` draws them.

    ``build`` makes every layer's initializers first (a random one takes its seed from Python's
    random stream when it is made, the bias's too when the layer has none), then Keras creates
    each layer's kernel and bias in turn; the same calls in the same order after the same
    :func:`runner.set_determinism` give the same bits, without a Keras model per member.
    """
    runner.set_determinism(seed)
    made = [
        (layer, resolve("initializer", layer["kernel_initializer"]), layer["bias_initializer"])
        for layer in cfg["model"]["layers"]
    ]
    made = [(layer, k, resolve("initializer", b)) for layer, k, b in made]
    arrays: dict[str, np.ndarray] = {}
    fan_in = features
    for layer, kernel, bias in made:
        units, name = int(layer["units"]), layer["name"]
        arrays[f"{name}/kernel"] = np.array(kernel((fan_in, units), dtype="float32"))
        if layer["use_bias"]:
            arrays[f"{name}/bias"] = np.array(bias((units,), dtype="float32"))
        fan_in = units
    return arrays


class _Twins:
    """Keras models that stand for a group's members: one per layout of biases (their variable
    and optimizer variable names and order, which the resume state follows), and each optimizer
    config's learning rate and other per-member arguments."""

    def __init__(self) -> None:
        self.models: dict[str, keras.Model] = {}
        self.optimizers: dict[str, Any] = {}

    def twin(self, cfg: dict[str, Any], features: int) -> keras.Model:
        key = repr([bool(layer["use_bias"]) for layer in cfg["model"]["layers"]])
        if key not in self.models:
            self.models[key] = _keras_member(cfg, 0, features)
        return self.models[key]

    def _optimizer(self, cfg: dict[str, Any]) -> Any:
        key = repr(cfg["train"]["optimizer"])
        if key not in self.optimizers:
            self.optimizers[key] = resolve("optimizer", cfg["train"]["optimizer"])
        return self.optimizers[key]

    def rate(self, cfg: dict[str, Any]) -> float:
        return float(np.float32(self._optimizer(cfg).learning_rate.numpy()))

    def hyper(self, cfg: dict[str, Any]) -> dict[str, float]:
        """The member's own values of the optimizer arguments that may differ in a group."""
        optimizer = self._optimizer(cfg)
        names = PER_MEMBER.get(optimizer_name(cfg["train"]["optimizer"]), ())
        return {name: float(getattr(optimizer, name)) for name in names}


def _keras_member(cfg: dict[str, Any], seed: int, features: int) -> keras.Model:
    """The member's Keras model, built and compiled as the keras engine does (same seed draws)."""
    runner.set_determinism(seed)
    model = build(cfg["model"], features)
    compile_model(model, cfg["train"])
    model.optimizer.build(model.trainable_variables)
    return model


def _shim(group: _Stack, slot: int, run: _Run) -> Any:
    """A stand-in for the member's Keras model: its layers' variables and optimizer variables."""
    layers = []
    for layer in run.layers:
        views = [_View(group, f"{layer.name}/{v.name}", slot, v.name) for v in layer.weights]
        layers.append(SimpleNamespace(name=layer.name, weights=views))
    weights = [v for layer in layers for v in layer.weights]
    opt_views = []
    for v in run.twin.optimizer.variables:
        if v.name not in group.vars:
            raise Unsupported(f"optimizer variable {v.name} has no stacked twin")
        if len(v.shape) == 0:
            value = run.lr if v.name == "learning_rate" else None
            opt_views.append(_View(group, v.name, None, v.name, value))
        else:
            opt_views.append(_View(group, v.name, slot, v.name))
    # The step counter, read from the group's host copy like every other variable (an eager
    # read of the variable itself, once a member and epoch, cost more than the epoch's steps).
    key = next(k for k, v in group.vars.items() if v is group.optimizer.iterations)
    iterations = _View(group, key, None, key)
    optimizer = SimpleNamespace(variables=opt_views, iterations=iterations, built=True)
    return SimpleNamespace(
        layers=layers,
        weights=weights,
        optimizer=optimizer,
        stop_training=False,
        trainable_variables=weights,
    )


def check(specs: list[RunSpec], dataset: data.Dataset) -> None:
    """Raise :class:`Unsupported` when the group cannot train vectorized (before anything is
    written)."""
    cfg = specs[0].config
    _metric_fns(cfg["train"]["metrics"], dataset.y_train, int(cfg["model"]["layers"][-1]["units"]))
    opt = resolve("optimizer", cfg["train"]["optimizer"])
    for attr in ("clipnorm", "global_clipnorm", "weight_decay"):
        if getattr(opt, attr, None):
            raise Unsupported(f"the optimizer's {attr} acts on a whole variable")
    if getattr(opt, "use_ema", False):
        raise Unsupported("the optimizer's use_ema")
    if not isinstance(opt.learning_rate, tf.Variable | keras.Variable) and callable(
        _keras_compat.learning_rate_source(opt)
    ):
        raise Unsupported("a learning-rate schedule")


def train_group(
    specs: list[RunSpec],
    datasets: list[data.Dataset],
    store: Store | None,
    batch: str,
    *,
    source: dict[str, Any] | None = None,
    on_event: OnEvent | None = None,
    make_writer: MakeSink = RunWriter,
    group_info: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``specs`` as one stacked computation; each member recorded as a keras-engine run.

    Returns:
        The members' final records. KeyboardInterrupt marks every member in flight
        ``interrupted`` after the same epoch and is re-raised.
    """
    emit = on_event or (lambda event: None)
    runs = []
    for slot, (spec, dataset) in enumerate(zip(specs, datasets, strict=True)):
        data_info = {**dataset.info, "fingerprint": fingerprint(dataset)}
        record = spec_record(spec, batch, data=data_info, versions=runner.versions(), source=source)
        # In run.json from the start: a member killed mid-training resumes on this engine.
        group = {**(group_info or {}), "members": len(specs), "slot": slot}
        record["execution"] = {"engine": ENGINE, "group": group}
        writer = make_writer(store, record, spec.config)
        runs.append((spec, dataset, writer))
    return _train_members(runs, emit, group_info or {}, None)


def resume_member(plan: ResumePlan, store: Store, *, on_event: OnEvent | None = None) -> dict:
    """Continue one interrupted or crashed member alone (a group of one, the same bits)."""
    saved = state.load(plan.state)
    writer = RunWriter.reopen(store, plan.run_id, plan.lock)
    spec = RunSpec(
        index=int(plan.record.get("index", 0)),
        seed=int(plan.record["seed"]),
        cell=dict(plan.record.get("cell") or {}),
        config=plan.config,
        locate=None,  # type: ignore[arg-type]
    )
    info = dict((plan.record.get("execution") or {}).get("group") or {})
    with lifecycle.stop_on_signals():
        return _train_members(
            [(spec, plan.dataset, writer)], on_event or (lambda e: None), info, saved
        )[0]


def _train_members(
    runs: list[tuple[RunSpec, data.Dataset, Any]],
    emit: OnEvent,
    group_info: dict[str, Any],
    saved: dict[str, np.ndarray] | None,
) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    members: list[_Run] = []
    fit_start: float | None = None
    for _, _, writer in runs:
        emit({"type": "run_start", "run": writer.record})
    try:
        twins = _Twins()
        for spec, dataset, writer in runs:
            members.append(_Run(spec, dataset, writer, spec.seed, twins))
        group = _Stack(
            [m.config for m in members],
            [m.seed for m in members],
            [m.dataset for m in members],
            members,
        )
        every = members[0].config["snapshots"]["every"]
        for slot, m in enumerate(members):
            record = m.record
            plan = runner.plan_execution(m.twin, m.dataset, m.config["train"], every)
            record["execution"] = {
                **plan,
                "steps_per_execution": plan["steps_per_epoch"]
                if not isinstance(every, int)
                else min(every, plan["steps_per_epoch"]),
                "jit_compile": False,
                "feeding": "one stacked batch per step: each member's rows in its own order",
                "step_snapshots": "copied after each call of `every` steps"
                if isinstance(every, int)
                else None,
                "engine": ENGINE,
                "group": (record.get("execution") or {}).get("group")
                or {**group_info, "members": len(members), "slot": slot},
            }
            cls = _MemberSteps if isinstance(every, int) else _MemberEpochs

            def on_epoch(epoch: int, logs: dict[str, Any], record: dict[str, Any] = record) -> None:
                emit({"type": "epoch", "run": record, "epoch": epoch, "logs": logs})

            m.snap = cls(m.writer, every, on_epoch)
            m.snap.set_model(_shim(group, slot, m))
            m.keep = state.ResumeState(m.writer, m.snap)
            m.keep.set_model(m.snap.model)
        initial_epoch = 0
        if saved is not None:
            m = members[0]
            assert m.snap is not None and m.keep is not None
            initial_epoch = runner._restore(m.snap.model, saved, m.snap, m.keep, m.writer)
        fit_start = time.perf_counter()
        with lifecycle.polling():  # a first signal sets a flag that _fit turns into a stop
            _fit(group, members, initial_epoch, every)
        for m in members:
            assert m.snap is not None and m.keep is not None
            m.snap.close()
            if m.snap.diverged_at_epoch is not None:
                runner._record_divergence(
                    m.record, m.snap, m.keep, m.model, m.dataset, m.config, m.seed
                )
            else:
                m.record["status"] = "completed"
    except KeyboardInterrupt as e:
        for m in members:
            if m.record["status"] == "running":
                m.record["status"] = "interrupted"
                done = m.snap.epochs_completed if m.snap is not None else 0
                m.record["error"] = f"interrupted by {lifecycle.signal_name(e)} after epoch {done}"
        for _, _, writer in runs[len(members) :]:
            writer.record["status"] = "interrupted"
            writer.record["error"] = f"interrupted by {lifecycle.signal_name(e)} after epoch 0"
        raise
    except Exception as e:
        text = traceback.format_exc()
        for _, _, writer in runs:
            if writer.record["status"] == "running":
                writer.record["status"] = "failed"
                writer.record["error"] = runner.summarize_error(e)
                writer.write_text("error.txt", text)
    finally:
        with lifecycle.signals_deferred():
            by_writer = {id(m.writer): m for m in members}
            for _, _, writer in runs:
                member = by_writer.get(id(writer))
                snap = member.snap if member else None
                keep = member.keep if member else None
                runner._finish(writer, snap, keep, fit_start, t0, resuming=saved is not None)
                emit({"type": "run_end", "run": writer.record})
    return [writer.record for _, _, writer in runs]


def _fit(group: _Stack, members: list[_Run], initial_epoch: int, every: str | int) -> None:
    """The epochs: steps, then each live member's callbacks, as Keras' fit calls them."""
    for m in members:
        assert m.snap is not None and m.keep is not None
        m.snap.on_train_begin()
        m.keep.on_train_begin()
    spe = group.spe
    live = list(range(len(members)))
    lifecycle.check_stop()
    for epoch in range(initial_epoch, group.epochs):
        group.begin(tf.constant(epoch, tf.int64))
        for i in live:
            members[i].snap.on_epoch_begin(epoch)  # type: ignore[union-attr]
        if isinstance(every, int):
            start = 0
            while start < spe:
                done = epoch * spe + start  # steps taken before this call
                stop = min(spe, start + every - done % every)
                group.run_steps(tf.constant(start, tf.int64), tf.constant(stop, tf.int64))
                group.stale = True
                if (epoch * spe + stop) % every == 0:
                    _queue_steps(group, members, live, epoch * spe + stop)
                for i in live:
                    members[i].snap.on_train_batch_end(stop - 1)  # type: ignore[union-attr]
                start = stop
                if start < spe:
                    lifecycle.check_stop()  # between calls of `every` steps, as Keras' callback
        else:
            group.run_steps(tf.constant(0, tf.int64), tf.constant(spe, tf.int64))
            group.stale = True
        logs = group.epoch_logs()
        stopped = []
        interrupt: KeyboardInterrupt | None = None
        # Every member records the epoch before a signal (or an event handler's interrupt)
        # stops them: all in flight end after the same epoch.
        with lifecycle.signals_deferred():
            for i in live:
                m = members[i]
                assert m.snap is not None and m.keep is not None
                try:
                    m.snap.on_epoch_end(epoch, logs[i])
                except KeyboardInterrupt as e:
                    interrupt = interrupt or e  # as in Keras' fit: this member's state is not saved
                    continue
                m.keep.on_epoch_end(epoch, logs[i])
                if m.snap.model.stop_training:
                    stopped.append(i)
        if interrupt is not None:
            raise interrupt
        if stopped:
            alive = group.alive.numpy()
            alive[stopped] = False
            group.alive.assign(alive)
            live = [i for i in live if i not in stopped]
        if not live:
            break
        lifecycle.check_stop()  # after the epoch's callbacks: an epoch that ended is recorded


def _queue_steps(group: _Stack, members: list[_Run], live: list[int], step: int) -> None:
    """Queue one per-step copy for every live member (its BatchWeightSnapshots drains it)."""
    host = group.host()
    for i in live:
        m = members[i]
        assert m.snap is not None
        arrays = {
            f"{layer.name}/{v.name}": np.array(host[f"{layer.name}/{v.name}"][i])[None]
            for layer in m.layers
            for v in layer.weights
        }
        m.snap.capture.queued.append((np.array([step], np.int64), arrays))


def train_planned(
    groups: list[Group],
    datasets: Callable[[RunSpec], data.Dataset],
    store: Store | None,
    batch: str,
    *,
    source: dict[str, Any] | None = None,
    on_event: OnEvent | None = None,
    fail_fast: bool = False,
) -> list[dict[str, Any]]:
    """Train every group in turn (each on its engine); the records in run order."""
    records: list[dict[str, Any]] = []
    for group in groups:
        lifecycle.check_stop()  # a stop that came between groups (or was swallowed)
        records += train_one(group, datasets, store, batch, source=source, on_event=on_event)
        if fail_fast and any(r["status"] == "failed" for r in records):
            break
    return sorted(records, key=lambda r: r["index"])


def train_one(
    group: Group,
    datasets: Callable[[RunSpec], data.Dataset],
    store: Store | None,
    batch: str,
    *,
    source: dict[str, Any] | None = None,
    on_event: OnEvent | None = None,
    make_writer: MakeSink = RunWriter,
) -> list[dict[str, Any]]:
    """Train one group: stacked on the vectorized engine, or run by run on the keras engine
    (also when the vectorized engine turns out not to support it, with the reason recorded)."""
    reason = group.reason
    if group.engine == "vectorized":
        try:
            check(group.members, datasets(group.members[0]))
        except Unsupported as e:
            reason = f"fell back to the keras engine: {e}"
        else:
            info = {**group.describe(), "members": len(group.members)}
            info.pop("engine")
            return train_group(
                group.members,
                [datasets(s) for s in group.members],
                store,
                batch,
                source=source,
                on_event=on_event,
                make_writer=make_writer,
                group_info=info,
            )
    execution = {"engine": "keras", "engine_reason": reason}
    return [
        runner.train_run(
            spec,
            datasets(spec),
            store,
            batch,
            source=source,
            on_event=on_event,
            make_writer=make_writer,
            execution=execution,
        )
        for spec in group.members
    ]
