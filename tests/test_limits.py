"""Limits and validation gaps of issue 17: seeds, sizes, YAML bombs, values that would lie later.

None of these trains or imports TensorFlow: every case is refused (or read) at validation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import write_run
from weightlab import config
from weightlab.cli import cli
from weightlab.store import Store

BASE = "model:\n  layers: [{units: 1}]\n"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


# ---- item 2: seeds Keras accepts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (
            BASE + "seed: 18446744073709551616\n",
            [],
            "{cfg}:3: seed: expected an integer in [0, 4294967295]; got 18446744073709551616",
        ),
        (
            BASE + "seed: 4294967296\n",
            [],
            "{cfg}:3: seed: expected an integer in [0, 4294967295]; got 4294967296",
        ),
        (
            BASE + "seeds: [0, 9223372036854775807]\n",
            [],
            "{cfg}:3: seeds: item 1: expected an integer in [0, 4294967295]; "
            "got 9223372036854775807",
        ),
        (
            BASE + "data: {seed: 18446744073709551616}\n",
            [],
            "{cfg}:3: data.seed: expected an integer in [0, 4294967295]; got 18446744073709551616",
        ),
        (
            BASE,
            ["seed=18446744073709551616"],
            "override 'seed=18446744073709551616': seed: expected an integer in [0, 4294967295]",
        ),
    ],
)
def test_a_seed_beyond_what_keras_accepts_is_a_config_error(
    write_config, text: str, overrides: list[str], message: str
) -> None:
    cfg = write_config(text)
    for command in (["validate"], ["run", "--dry-run"]):
        code, out = invoke(*command, str(cfg), *overrides)
        assert code == 2, out
        assert message.format(cfg=cfg) in " ".join(out.split()), out


def test_the_largest_seed_keras_accepts_is_valid(write_config) -> None:
    cfg = write_config(BASE + "seed: 4294967295\n")
    assert config.load_experiment(cfg).runs[0].seed == 2**32 - 1


def test_seeds_option_beyond_the_range_is_refused_before_expanding(write_config) -> None:
    cfg = write_config(BASE)
    code, out = invoke("run", "--dry-run", str(cfg), "--seeds", "4294967290-4294967300")
    assert code == 2
    assert "--seeds '4294967290-4294967300': seeds: a seed must be in [0, 4294967295]" in out


def test_one_oversized_seed_in_a_run_json_does_not_break_the_store(store_dir: Path) -> None:
    store = Store.open(store_dir)
    good = write_run(store, experiment="good", batch="b1")["id"]
    bad = write_run(store, experiment="bad", batch="b2")["id"]
    path = store.run_dir(bad) / "run.json"
    record = json.loads(path.read_text())
    record["seed"] = 18446744073709551616  # as an older version (or a hand edit) left it
    path.write_text(json.dumps(record))
    for command in (["ls"], ["reindex"], ["ls", "good"], ["show", good]):
        code, out = invoke(*command, "--store", str(store_dir))
        assert code == 0, (command, out)
    assert {r["id"] for r in Store.open(store_dir).runs()} == {good, bad}
