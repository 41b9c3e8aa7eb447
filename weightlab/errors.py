"""Domain exceptions. The CLI maps them to exit codes; the library never calls sys.exit."""

from __future__ import annotations

from dataclasses import dataclass


class WeightlabError(Exception):
    """Base class for every error a user can cause or meet. Exit code 1."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where it is, which key, what is wrong."""

    location: str  # "configs/x.yaml:12", "override 'train.epochs=abc'", ...
    key: str  # dotted key path, "" for the whole document
    message: str

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class ConfigError(WeightlabError):
    """The config (file, override or matrix) is invalid. Exit code 2; nothing was written."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem("", "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems in the config:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class UsageError(WeightlabError):
    """A command was called wrongly (bad selector, bad option value). Exit code 2."""

    exit_code = 2


class RunNotFound(UsageError):
    """A selector matched no run, or a prefix matched several."""


class StoreError(WeightlabError):
    """The run store cannot be read or written."""


class StoreReadOnly(StoreError):
    """A command that writes was given a store it cannot write. Exit code 2, before any work."""

    exit_code = 2


class DamagedSnapshot(StoreError):
    """A snapshot file cannot be read back (truncated, tampered, not numeric). Exit code 2, as
    for any damaged run (:class:`weightlab.runfiles.DamagedRun`): the input is bad."""

    exit_code = 2

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason  # numpy's or zipfile's own words


class DataError(WeightlabError):
    """A dataset file cannot be loaded (bad CSV cell, missing array). Exit code 2."""

    exit_code = 2


class Invalid(Exception):
    """Raised by a checker; the message says what was expected and what was given."""
