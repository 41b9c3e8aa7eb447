"""Getting started: the starter config of ``weightlab init`` and the gallery of ``configs/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weightlab.errors import UsageError, WeightlabError

# Installed from a wheel, the example configs are package data (pyproject.toml maps the package
# weightlab.configs to the repository's configs/ folder); in a checkout or an editable install they
# are that folder itself.
PACKAGED = Path(__file__).resolve().parent / "configs"
CHECKOUT = Path(__file__).resolve().parent.parent / "configs"
GALLERY = PACKAGED if PACKAGED.is_dir() else CHECKOUT

STARTER = """\
# A weightlab experiment. Validate it with `weightlab validate {path}` (no TensorFlow, instant),
# train it with `weightlab run {path}`, then look at the runs with `weightlab compare` and
# `weightlab show latest`. `weightlab schema` describes every key (one line each), and the
# example configs show more: `weightlab configs` lists them, `weightlab run depth` runs one.
# Any key can be overridden on the command line:
#   weightlab run {path} train.epochs=5 model.use_bias=false
name: {name}
seed: 0                          # same seed, same machine: bit-identical weights

data:
  kind: linear                   # linear | blobs | xor | moons | circles | sklearn | csv | npz
  samples: 500
  features: 2
  weights: [2.0, -1.0]           # y = x·w_true + offset + noise
  offset: 3.0                    # the intercept a bias has to learn
  noise: 0.1

model:
  use_bias: true                 # try false: the model can no longer learn the offset
  kernel_initializer: glorot_uniform
  bias_initializer: zeros
  layers:                        # Dense layers, input to output
    - {{units: 8, activation: relu}}
    - {{units: 1, name: out}}

train:
  optimizer: {{name: sgd, learning_rate: 0.05}}
  loss: mse
  metrics: [mae]
  epochs: 30
  batch_size: 32

snapshots:
  every: epoch                   # every weight and bias tensor after every epoch (and epoch 0)

# One run per combination of these values (comment it out for a single run):
matrix:
  model.use_bias: [true, false]

# What must hold after training: `weightlab run` lists what is unmet and exits 1 (for CI;
# add --smoke for a 2-epoch check). Keys are fields of the run's run.json.
expect:
  status: completed
  final.loss: {{max: 100.0}}
"""


def starter(path: str) -> str:
    """The commented starter config, named after ``path``'s file name."""
    stem = Path(path).stem
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in stem).lstrip("_.-")
    return STARTER.format(path=path, name=safe or "experiment")


def write_starter(path: str, *, force: bool = False) -> Path:
    """Write the starter config to ``path``; never overwrite a file unless ``force``.

    A missing folder is created, as for every file weightlab writes (``plot -o``, ``export``).

    Raises:
        UsageError: the file exists (and not ``force``).
    """
    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{path} already exists; choose another PATH or add --force")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(starter(path), encoding="utf-8")
    except OSError as e:
        raise WeightlabError(f"cannot write {path}: {e}") from None
    return target


def _folder() -> Path:
    if not GALLERY.is_dir():
        raise WeightlabError(
            f"the example configs are not installed here ({GALLERY} does not exist); "
            "they are in the configs/ folder of the weightlab repository"
        )
    return GALLERY


def names() -> list[str]:
    """The gallery's config names (``depth``, ...), sorted."""
    return sorted(p.stem for p in _folder().glob("*.yaml"))


def resolve(config: str) -> tuple[str, bool]:
    """``config`` itself, or the gallery config it names when no such file exists.

    ``depth``, ``depth.yaml`` and ``configs/depth.yaml`` (the paths the docs use) all name the
    gallery's ``depth.yaml`` from any folder. Returns the path to read and whether it is the
    gallery's; anything else is returned unchanged (and reported missing by the loader).
    """
    path = Path(config)
    if path.exists() or not GALLERY.is_dir():
        return config, False
    stem = path.name.removesuffix(".yaml")
    bare = path.parent in (Path("."), Path("configs")) and path.suffix in ("", ".yaml")
    if bare and stem in names():
        return str(GALLERY / f"{stem}.yaml"), True
    return config, False


def summary(text: str) -> str:
    """The first paragraph of a config's header comment, joined into one line."""
    lines: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if not body:
            if lines:
                break
            continue
        lines.append(body)
    return " ".join(lines)


def entries() -> list[dict[str, Any]]:
    """Every gallery config: ``{"name", "path", "runs", "summary"}``, sorted by name.

    ``path`` is where the file is (installed package data, or a checkout's ``configs/``).
    """
    from weightlab.config import load_experiment

    out = []
    for path in sorted(_folder().glob("*.yaml")):
        experiment = load_experiment(path, check_files=False)
        out.append(
            {
                "name": path.stem,
                "path": str(path),
                "runs": experiment.describe(),
                "summary": summary(path.read_text(encoding="utf-8")),
            }
        )
    return out


def text(name: str) -> str:
    """The text of gallery config ``name`` (with or without ``.yaml``).

    Raises:
        UsageError: no such config (with a did-you-mean).
    """
    from weightlab.text import did_you_mean

    known = names()
    stem = Path(name).name.removesuffix(".yaml")
    if stem not in known:
        raise UsageError(
            f"no example config {name!r}{did_you_mean(stem, known)} (known: {', '.join(known)})"
        )
    return (GALLERY / f"{stem}.yaml").read_text(encoding="utf-8")
