"""Hostile inputs (issue 17): configs, overrides, options, selectors and store faults.

Every case runs the real command line in a subprocess, with its address space capped at
:data:`MEMORY_BYTES` and its time at :data:`SECONDS`, against a store that already holds two good
runs. Each case asserts:

- the exit code (0 or 2; 1 only where ``check`` reports the damage it was given);
- a message naming the file (with its line) or the option, and the key;
- no traceback;
- not one byte of the good runs changed (their files are hashed before and after).

None of these imports TensorFlow (``validate`` without ``--keras``, ``run --dry-run``, readers).
The named cases of the issue are here, and more besides.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, write_run
from weightlab.store import Store

MEMORY_BYTES = 2 * 1024**3  # RLIMIT_AS of each command: a bomb would be killed, not swap
SECONDS = 30  # each command, on a loaded 2-core machine (all take well under 5 s)
BASE = "model:\n  layers: [{units: 1}]\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)

# (id, config text or bytes (None: no config file), arguments ({cfg}: the config file,
#  {dir}: its folder), exit codes allowed, message parts ({cfg}, {dir} as above))
CASES: list[tuple[str, str | bytes | None, list[str], set[int], list[str]]] = [
    # ---- YAML itself
    ("billion laughs", BASE + LAUGHS, ["validate", "{cfg}"], {2}, ["{cfg}:", "expands to more"]),
    (
        "laughs in a value",
        BASE + "description:\n  " + LAUGHS.replace("\n", "\n  ").rstrip() + "\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:", "expands to more than 100000"],
    ),
    ("self alias", BASE + "description: &a [*a]\n", ["validate", "{cfg}"], {2}, ["{cfg}:3:"]),
    (
        "nested 1000 deep",
        BASE + "description: " + "[" * 1000 + "]" * 1000 + "\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3:", "nested more than 64"],
    ),
    (
        "alias chain 200 deep",
        BASE + "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200)),
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:", "aliases followed"],
    ),
    (
        "merge-key bomb",
        BASE
        + "x: &x {a: 1}\n"
        + "".join(
            f"x{i}: &x{i} {{<<: [{', '.join([f'*x{i - 1}' if i > 1 else '*x'] * 9)}]}}\n"
            for i in range(1, 9)
        ),
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:", "expands to more"],
    ),
    ("over a megabyte", BASE + "#" * 1_100_000 + "\n", ["validate", "{cfg}"], {2}, ["{cfg}:"]),
    ("not utf-8", BASE.encode() + b"name: \xff\xfe\n", ["validate", "{cfg}"], {2}, ["{cfg}:3:"]),
    ("control character", BASE + "name: a\x07b\n", ["validate", "{cfg}"], {2}, ["{cfg}:3:"]),
    ("nul byte", BASE + "name: a\x00b\n", ["validate", "{cfg}"], {2}, ["{cfg}:3:"]),
    (
        "python tag",
        BASE + "name: !!python/object/apply:os.system [true]\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3:", "!!python/object/apply:os.system is not allowed"],
    ),
    ("duplicate key", BASE + "seed: 1\nseed: 2\n", ["validate", "{cfg}"], {2}, ["{cfg}:4: seed"]),
    (
        "/dev/zero",
        None,
        ["validate", "/dev/zero"],
        {2},
        ["/dev/zero: the config file is a character device"],
    ),
    (
        "/dev/urandom",
        None,
        ["run", "--dry-run", "/dev/urandom"],
        {2},
        ["/dev/urandom: the config file is a"],
    ),
    ("a directory", None, ["validate", "{dir}"], {2}, ["{dir}", "directory"]),
    ("octal epochs", BASE + "train: {epochs: 010}\n", ["validate", "{cfg}"], {0}, ["valid; 1 run"]),
    (
        "sexagesimal epochs",
        BASE + "train: {epochs: 1:30}\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3: train.epochs:", "'1:30'"],
    ),
    ("epochs 1e400", BASE + "train: {epochs: 1e400}\n", ["validate", "{cfg}"], {2}, ["inf"]),
    # ---- seeds and sizes
    (
        "seed 2**64",
        BASE + "seed: 18446744073709551616\n",
        ["run", "--dry-run", "{cfg}"],
        {2},
        ["{cfg}:3: seed: expected an integer in [0, 4294967295]"],
    ),
    (
        "seed override 2**63",
        BASE,
        ["validate", "{cfg}", "seed=9223372036854775808"],
        {2},
        ["override 'seed=9223372036854775808': seed:"],
    ),
    (
        "data seed -1",
        BASE + "data: {seed: -1}\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3: data.seed"],
    ),
    (
        "--seeds 0-100000000",
        BASE,
        ["run", "--dry-run", "{cfg}", "--seeds", "0-100000000"],
        {2},
        ["--seeds '0-100000000': seeds: more than 10,000 seeds"],
    ),
    (
        "--seeds beyond 2**32",
        BASE,
        ["run", "--dry-run", "{cfg}", "--seeds", "4294967295-4294967296"],
        {2},
        ["--seeds", "seeds: a seed must be in [0, 4294967295]"],
    ),
    (
        "matrix of 28800 cells",
        BASE
        + "matrix:\n"
        + "  model.layers.0.units: [1, 2]\n"
        + "".join(
            f"  train.{k}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n"
            for k in ("epochs", "batch_size")
        )
        + "  data.samples: ["
        + ", ".join(str(i) for i in range(10, 110))
        + "]\n",
        ["run", "--dry-run", "{cfg}"],
        {2},
        ["{cfg}:3: matrix: this sweep would make 28800 runs"],
    ),
    (
        "matrix of 2**40 cells",
        "model:\n  layers: ["
        + ", ".join(["1"] * 40)
        + "]\nmatrix:\n"
        + "".join(f"  model.layers.{i}.units: [1, 2]\n" for i in range(40)),
        ["run", "--dry-run", "{cfg}"],
        {2},
        ["{cfg}:3: matrix: this sweep would make 1099511627776 runs"],
    ),
    (
        "centers 10**9",
        BASE + "data: {kind: blobs, centers: 1000000000}\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3: data.centers"],
    ),
    (
        "10**11 data values",
        BASE + "data: {features: 10000, samples: 10000000}\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3: data.samples", "at most 20,000,000"],
    ),
    (
        "units 10**12",
        "model:\n  layers: [{units: 1000000000000}]\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:2: model.layers.0.units: expected at most 100000 units"],
    ),
    (
        "a billion parameters",
        "model:\n  layers: [100000, 100000, 100000]\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:2: model.layers.1.units", "at most 10,000,000"],
    ),
    (
        "units override 10**12",
        BASE,
        ["validate", "{cfg}", "model.layers.0.units=1000000000000"],
        {2},
        ["override 'model.layers.0.units=1000000000000': model.layers.0.units"],
    ),
    # ---- values that lie later
    ("offset .inf", BASE + "data: {offset: .inf}\n", ["validate", "{cfg}"], {2}, ["data.offset"]),
    (
        "weights .inf",
        BASE + "data: {features: 2, weights: [.inf, 1]}\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3: data.weights: item 0: expected a finite number"],
    ),
    (
        "center_box .inf",
        BASE + "data: {kind: blobs, center_box: [.inf, 1]}\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3: data.center_box"],
    ),
    (
        "noise -.inf override",
        BASE,
        ["validate", "{cfg}", "data.noise=-.inf"],
        {2},
        ["override 'data.noise=-.inf': data.noise"],
    ),
    (
        "learning rate .inf",
        BASE + "train: {optimizer: {name: sgd, learning_rate: .inf}}\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3: train.optimizer", "finite"],
    ),
    (
        "duplicate matrix values",
        BASE + "matrix: {train.epochs: [1, 2, 1]}\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3: matrix.train.epochs: the value 1 is given twice"],
    ),
    (
        "--matrix duplicate",
        BASE,
        ["validate", "{cfg}", "matrix={train.epochs: [3, 3]}"],
        {2},
        ["matrix.train.epochs: the value 3 is given twice"],
    ),
    ("name latest", BASE + "name: latest\n", ["validate", "{cfg}"], {2}, ["{cfg}:3: name:"]),
    (
        "name shaped like a run id",
        BASE + "name: 261129-084421-5f3a\n",
        ["validate", "{cfg}"],
        {2},
        ["{cfg}:3: name:", "shaped like a run id"],
    ),
    (
        "override bomb",
        BASE,
        ["validate", "{cfg}", "description=&a [*a, *a]"],
        {2},
        ["override 'description=&a [*a, *a]': description:"],
    ),
    (
        "override 1000 keys deep",
        BASE,
        ["validate", "{cfg}", ".".join(["data"] + ["k"] * 1000) + "=1"],
        {2},
        ["override 'data.k.k", "a key of more than 64 parts"],
    ),
    # ---- options and selectors
    ("--threshold nan", None, ["compare", "--threshold", "nan"], {2}, ["--threshold"]),
    ("--threshold inf", None, ["compare", "--threshold", "inf"], {2}, ["--threshold"]),
    ("empty selector ls", None, ["ls", ""], {2}, ["an empty selector '' selects nothing"]),
    ("empty selector show", None, ["show", ""], {2}, ["an empty selector"]),
    ("blank selector compare", None, ["compare", "  "], {2}, ["an empty selector"]),
    ("selector ../..", None, ["show", "../.."], {2}, ["no run matches '../..'"]),
    ("selector sql", None, ["ls", "x' OR 1=1 --"], {2}, ["no run matches"]),
    ("selector %", None, ["ls", "%"], {2}, ["no run matches '%'"]),
    (
        "--scheduler-timeout 0",
        BASE,
        ["run", "{cfg}", "--executor", "dask", "--scheduler", "x", "--scheduler-timeout", "0"],
        {2},
        ["--scheduler-timeout"],
    ),
]

# Store faults: a third run is damaged; the two good ones must read and stay as they were.
FAULTS: list[tuple[str, str, str | bytes, list[str], set[int], list[str]]] = [
    ("planted bomb: ls", "config.yaml", LAUGHS, ["ls"], {0}, ["good", "bad"]),
    ("planted bomb: reindex", "config.yaml", LAUGHS, ["reindex"], {0}, ["indexed 2 runs"]),
    ("planted bomb: show", "config.yaml", LAUGHS, ["show", "{bad}"], {2}, ["config.yaml:"]),
    ("planted bomb: check", "config.yaml", LAUGHS, ["check"], {1}, ["expands to more"]),
    ("planted bomb: explain", "config.yaml", LAUGHS, ["explain", "{bad}"], {2}, ["expands to"]),
    ("planted bomb: compare", "config.yaml", LAUGHS, ["compare", "good"], {0}, ["2 runs"]),
    ("planted self alias: show", "config.yaml", "x: &a [*a]\n", ["show", "{bad}"], {2}, [":1:"]),
    (
        "planted megabyte config: ls",
        "config.yaml",
        "#" * 2_000_000,
        ["ls", "good"],
        {0},
        ["completed"],
    ),
    ("oversized seed: ls", "run.json", "seed", ["ls"], {0}, ["good"]),
    ("oversized seed: reindex", "run.json", "seed", ["reindex"], {0}, ["indexed 3 runs"]),
    ("oversized seed: show", "run.json", "seed", ["show", "{bad}"], {0}, ["{bad}"]),
]


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _hash(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def _weightlab(args: list[str], store: Path, cwd: Path) -> tuple[int, str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "WEIGHTLAB_STORE": str(store),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "OPENBLAS_NUM_THREADS": "1",  # its per-thread buffers count against RLIMIT_AS
    }
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "weightlab", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SECONDS,
        preexec_fn=_limits,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("hostile") / "store"
    store = Store.open(root)
    ids = [
        write_run(store, experiment="good", batch="b1", seed=0)["id"],
        write_run(store, experiment="good", batch="b1", seed=1)["id"],
    ]
    return root, ids


def _copy(good_store: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[Path]]:
    root, ids = good_store
    store = tmp_path / "store"
    shutil.copytree(root, store)
    return store, [store / "runs" / i for i in ids]


@pytest.mark.parametrize(
    ("text", "args", "codes", "parts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_input(
    good_store, tmp_path: Path, text: str | bytes | None, args, codes, parts
) -> None:
    store, good = _copy(good_store, tmp_path)
    folder = tmp_path / "cfgs"
    folder.mkdir()
    cfg = folder / "exp.yaml"
    if isinstance(text, bytes):
        cfg.write_bytes(text)
    elif text is not None:
        cfg.write_text(text, encoding="utf-8")
    before = _hash(good)
    fill = {"cfg": str(cfg), "dir": str(folder)}
    code, out, took = _weightlab([_fill(a, fill) for a in args], store, tmp_path)
    flat = " ".join(out.split())
    assert code in codes, out
    assert "Traceback" not in out, out
    for part in parts:
        assert _fill(part, fill) in flat, out
    assert _hash(good) == before, "a good run changed"
    assert took < SECONDS


@pytest.mark.parametrize(
    ("name", "content", "args", "codes", "parts"),
    [f[1:] for f in FAULTS],
    ids=[f[0] for f in FAULTS],
)
def test_hostile_store(good_store, tmp_path: Path, name: str, content, args, codes, parts) -> None:
    import json

    store, good = _copy(good_store, tmp_path)
    bad = write_run(Store.open(store), experiment="bad", batch="b2")["id"]
    path = store / "runs" / bad / name
    if content == "seed":
        record = json.loads(path.read_text())
        record["seed"] = 18446744073709551616
        path.write_text(json.dumps(record))
    else:
        path.write_text(content) if isinstance(content, str) else path.write_bytes(content)
    before = _hash(good)
    fill = {"bad": bad}
    code, out, took = _weightlab([_fill(a, fill) for a in args], store, tmp_path)
    flat = " ".join(out.split())
    assert code in codes, out
    assert "Traceback" not in out, out
    for part in parts:
        assert _fill(part, fill) in flat, out
    assert _hash(good) == before, "a good run changed"
    assert took < SECONDS
