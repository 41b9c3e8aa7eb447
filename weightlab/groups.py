"""Which runs of a sweep can train as one stacked computation (the vectorized engine).

Pure functions over resolved configs; no TensorFlow. Runs share a group when they differ only in
what each member of a stacked model can hold for itself: the seed, the data seed, the kernel and
bias initializers, ``use_bias`` (per model or per layer), the learning rate and the scalar
optimizer arguments of :data:`PER_MEMBER`. Everything else (layer widths and activations, data,
batch size, epochs, loss, optimizer class and its other arguments, metrics, snapshots) must be
equal; a group that differs from another says in which keys (``split_by``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weightlab.config import RunSpec, flatten

ENGINES = ("auto", "keras", "vectorized")

# Keys a member of a group holds for itself (dotted, after flatten(); layer keys by suffix).
_FREE_TOP = {"seed", "name", "description", "data.seed"}
_FREE_MODEL = {"use_bias", "kernel_initializer", "bias_initializer"}


# Scalar optimizer arguments a member may hold for itself, besides the learning rate: those that
# Keras' update uses only in correctly rounded arithmetic (+, -, *, / and sqrt, elementwise), so a
# member's update is the same whether its neighbours share the value or not. Adam's, Adamax's and
# Nadam's betas go through a power of the step (TensorFlow's vectorized pow and its scalar pow
# differ in the last bits), FTRL's arguments through powers too: they split a group.
PER_MEMBER: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum",),
    "rmsprop": ("rho", "momentum", "epsilon"),
    "adam": ("epsilon",),
    "adamax": ("epsilon",),
    "nadam": ("epsilon",),
    "adagrad": ("epsilon",),
    "adadelta": ("rho", "epsilon"),
    "lion": ("beta_1", "beta_2"),
}
# Arguments whose zero decides whether the optimizer keeps a variable at all (a momentum of 0
# has none): members share whether theirs is zero, and the key says so (``momentum > 0``).
SWITCHES = {"momentum"}


def _free(key: str) -> bool:
    if key in _FREE_TOP:
        return True
    parts = key.split(".")
    if parts[0] == "model" and len(parts) >= 2:
        if parts[1] in _FREE_MODEL:
            return True  # model.use_bias, model.kernel_initializer(.stddev) ...
        # model.layers.N.use_bias / kernel_initializer...
        if parts[1] == "layers" and len(parts) >= 4 and parts[3] in _FREE_MODEL:
            return True
    return key == "train.optimizer.learning_rate"


def optimizer_name(ref: Any) -> str:
    """The optimizer's class as a comparable name (``adam``, ``{name: Adam}`` -> ``adam``)."""
    if isinstance(ref, str):
        name = ref
    elif isinstance(ref, dict):
        name = str(ref.get("name", ref.get("class_name", "")))
    else:
        name = str(ref)
    return name.lower().replace("_", "")


def group_key(config: dict[str, Any]) -> dict[str, str]:
    """The settings that members of one group share, as ``{dotted key: value text}``."""
    flat = flatten(_normalized(config))
    return {k: repr(v) for k, v in sorted(flat.items()) if not _free(k)}


def _normalized(config: dict[str, Any]) -> dict[str, Any]:
    """The config with what may differ (a number: the learning rate, :data:`PER_MEMBER`) set apart
    from the rest."""
    train = dict(config["train"])
    opt = train["optimizer"]
    if isinstance(opt, dict) and "class_name" in opt:
        inner = dict(opt.get("config") or {})
        lr = inner.get("learning_rate")
        if not isinstance(lr, int | float):  # a schedule: part of the key
            inner["__lr__"] = lr
        inner.pop("learning_rate", None)
        opt = {"name": opt["class_name"], **inner}
    elif isinstance(opt, dict):
        opt = dict(opt)
        lr = opt.get("learning_rate")
        if lr is not None and not isinstance(lr, int | float):
            opt["__lr__"] = opt.pop("learning_rate")
        opt.pop("learning_rate", None)
    else:
        opt = {"name": opt}
    opt["name"] = optimizer_name(opt)
    for key in PER_MEMBER.get(opt["name"], ()):
        value = opt.pop(key, None)
        if value is not None and not isinstance(value, int | float):
            opt[key] = value  # not a number: part of the key
        elif key in SWITCHES:
            opt[f"{key} > 0"] = bool(value)
    train["optimizer"] = opt
    return {**config, "train": train}


@dataclass
class Group:
    """Runs that train together (``members``, in run order) and the engine chosen for them."""

    members: list[RunSpec]
    engine: str  # "vectorized" or "keras"
    reason: str  # why this engine
    split_by: list[str] = field(default_factory=list)  # keys that set it apart from other groups

    @property
    def indexes(self) -> list[int]:
        return [s.index for s in self.members]

    def describe(self) -> dict[str, Any]:
        """Plain data for ``--dry-run`` and run.json."""
        return {
            "runs": [s.index + 1 for s in self.members],
            "engine": self.engine,
            "reason": self.reason,
            "split_by": self.split_by,
        }


# Optimizers whose update is elementwise given the gradient and a learning rate: one of them over
# stacked variables updates each member as it would alone.
ELEMENTWISE = {"sgd", "adam", "nadam", "adamax", "rmsprop", "adagrad", "adadelta", "ftrl", "lion"}


# Settings the vectorized engine cannot run (decided from the config alone), and why.
def config_fallback(config: dict[str, Any]) -> str | None:
    """Why a run must train on the keras engine, or None."""
    if config["train"].get("tensorboard"):
        return "train.tensorboard needs Keras' own fit (its TensorBoard callback)"
    opt = config["train"]["optimizer"]
    args = opt.get("config", opt) if isinstance(opt, dict) else {}
    for key in ("clipnorm", "global_clipnorm", "weight_decay", "use_ema", "loss_scale_factor"):
        if args.get(key) not in (None, False, 0):
            return (
                f"train.optimizer.{key} acts on a whole variable (it would mix the members of a "
                "stacked one)"
            )
    if optimizer_name(opt) not in ELEMENTWISE:
        return (
            f"the {optimizer_name(opt)} optimizer is not one that updates elementwise "
            f"({', '.join(sorted(ELEMENTWISE))}): weight decay, norms or factored moments per "
            "variable would mix the members of a stacked one"
        )
    return None


def plan_groups(runs: list[RunSpec], engine: str = "auto") -> list[Group]:
    """Split ``runs`` into groups and choose each group's engine.

    ``keras``: every run alone on the keras engine. ``vectorized``: every group on the
    vectorized engine, also groups of one. ``auto``: groups of at least two runs vectorized,
    single runs on the keras engine. A run whose config the vectorized engine cannot run goes
    to the keras engine alone, with the reason.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}. Received: engine={engine}")
    if engine == "keras":
        return [Group([s], "keras", "--engine keras") for s in runs]
    buckets: dict[str, list[RunSpec]] = {}
    keys: dict[str, dict[str, str]] = {}
    solo: list[tuple[RunSpec, str]] = []
    for spec in runs:
        why = config_fallback(spec.config)
        if why is not None:
            solo.append((spec, why))
            continue
        key = group_key(spec.config)
        text = repr(sorted(key.items()))
        buckets.setdefault(text, []).append(spec)
        keys[text] = key
    groups: list[Group] = []
    for text, members in buckets.items():
        split = sorted(
            {
                k
                for other, okey in keys.items()
                if other != text
                for k in set(keys[text]) | set(okey)
                if keys[text].get(k) != okey.get(k)
            }
        )
        if engine == "auto" and len(members) < 2:
            groups.append(Group(members, "keras", "a group of one run: nothing to share", split))
        else:
            why = f"{len(members)} compatible runs" if len(members) > 1 else "--engine vectorized"
            groups.append(Group(members, "vectorized", why, split))
    groups += [Group([s], "keras", why) for s, why in solo]
    groups.sort(key=lambda g: g.members[0].index)
    return groups


def balanced(group: Group, parts: int) -> list[Group]:
    """``group`` cut into at most ``parts`` sub-groups of nearly equal size (for ``--jobs N``)."""
    n = len(group.members)
    parts = max(1, min(parts, n))
    if parts == 1 or group.engine != "vectorized":
        return [group]
    size, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        out.append(Group(group.members[start:stop], group.engine, group.reason, group.split_by))
        start = stop
    return out


def summary(groups: list[Group]) -> str:
    """One line: what the engine choice was, e.g. ``vectorized: 1 group of 6 runs``."""
    vec = [g for g in groups if g.engine == "vectorized"]
    ker = sum(len(g.members) for g in groups if g.engine == "keras")
    parts = []
    if vec:
        sizes = ", ".join(str(len(g.members)) for g in vec)
        parts.append(
            f"vectorized: {len(vec)} group{'s' if len(vec) != 1 else ''} "
            f"({sizes} run{'s' if sum(len(g.members) for g in vec) != 1 else ''})"
        )
    if ker:
        parts.append(f"keras: {ker} run{'s' if ker != 1 else ''}")
    return "; ".join(parts) if parts else "no runs"
