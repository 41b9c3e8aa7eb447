"""YAML reading with the pitfalls removed, and a map from key paths to source lines.

PyYAML implements YAML 1.1, which reads ``1e-3`` as a string and ``yes``/``no``/``on``/``off`` as
booleans, and silently keeps the last of two duplicate keys. weightlab follows YAML 1.2 instead:
``1e-3`` is a float, only ``true``/``false`` are booleans, and a duplicate key is an error.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from weightlab.errors import ConfigError, Problem

Path = tuple[str | int, ...]


def dotted(path: Path) -> str:
    """``("model", "layers", 0, "units")`` -> ``"model.layers.0.units"``."""
    return ".".join(str(p) for p in path)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and floats (see module docstring)."""


# Drop YAML 1.1's implicit resolvers for bool, float and timestamp (YAML 1.2's core schema has no
# timestamps: `2024-01-05` is a string), then add YAML 1.2 core bool and float.
_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag
        not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that also quotes strings YAML 1.2 would read as floats (``'1e-3'``).

    It keeps YAML 1.1's resolvers too, so what it writes reads the same in :func:`load` and in a
    plain YAML 1.1 reader (``'yes'`` and ``'2024-01-05'`` stay quoted).
    """


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))

# YAML 1.1 spellings that a 1.1 reader would have taken as booleans; used for a hint.
YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


# Plain keys such as `1:` or `true:` are built as the int or bool they read as, not as strings.
_SCALAR_KEY_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool", "null")}


def _walk(
    node: yaml.Node,
    path: Path,
    lines: dict[Path, int],
    problems: list[Problem],
    source: str,
    construct: Any,
    line: int | None = None,
) -> None:
    # A mapping value is located at its key's line (`data:`), not where its content starts.
    lines[path] = line if line is not None else node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(
                    Problem(f"{source}:{line}", dotted(path), "keys must be plain strings")
                )
                continue
            key = key_node.value
            if key_node.tag in _SCALAR_KEY_TAGS:
                try:
                    key = construct(key_node)  # the key as it will be in the data, so lines match
                except (ValueError, TypeError) as e:  # `!!int abc: 1`
                    problems.append(
                        Problem(f"{source}:{line}", dotted(path), f"not valid YAML: {e}")
                    )
                    continue
            if key in seen:
                problems.append(
                    Problem(
                        f"{source}:{line}",
                        dotted((*path, key)),
                        f"duplicate key (first given on line {seen[key]}); remove one of them",
                    )
                )
                continue
            seen[key] = line
            _walk(value_node, (*path, key), lines, problems, source, construct, line)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, problems, source, construct)


def load(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    """Parse one YAML document safely.

    Args:
        text: the YAML text.
        source: how to name it in errors (a file path, or ``override 'k=v'``).

    Returns:
        The data and a map from key paths to 1-based line numbers.

    Raises:
        ConfigError: on a syntax error, a duplicate key or a tag that safe loading refuses.
    """
    try:
        loader = _Loader(text)  # the reader refuses control characters right here
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        raise ConfigError(
            Problem(
                f"{source}:{line}",
                "",
                f"not valid YAML: the control character #x{e.character:02x} is not allowed "
                '(write it escaped inside double quotes, e.g. "\\x1b")',
            )
        ) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            raise ConfigError(_yaml_problem(e, source)) from None
        except yaml.YAMLError as e:
            raise ConfigError(Problem(source, "", f"not valid YAML: {e}")) from None
        if node is None:
            return None, {}
        lines: dict[Path, int] = {}
        problems: list[Problem] = []
        _walk(node, (), lines, problems, source, loader.construct_object)
        if problems:
            raise ConfigError(problems)
        try:
            data = loader.construct_document(node)
        except yaml.constructor.ConstructorError as e:
            raise ConfigError(_yaml_problem(e, source)) from None
        except (ValueError, TypeError) as e:  # an explicit tag on a bad value: `!!int abc`
            raise ConfigError(Problem(source, "", f"not valid YAML: {e}")) from None
    finally:
        loader.dispose()
    return data, lines


def _yaml_problem(e: yaml.MarkedYAMLError, source: str) -> Problem:
    mark = e.problem_mark or e.context_mark
    where = f"{source}:{mark.line + 1}" if mark else source
    problem = e.problem or str(e)
    if e.context == "expected a single document in the stream":
        return Problem(
            where,
            "",
            "a config is a single YAML document; found a second one "
            "(remove the '---' line and what follows, or merge them)",
        )
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip().strip("'").replace("tag:yaml.org,2002:", "!!")
        return Problem(
            where,
            "",
            f"the tag {tag} is not allowed: configs are read with YAML safe "
            "loading, which builds only plain data (mappings, lists, "
            "strings, numbers, booleans, null)",
        )
    if e.context and e.context_mark and mark and e.context_mark.line != mark.line:
        problem += f" ({e.context} started on line {e.context_mark.line + 1})"
    return Problem(where, "", f"not valid YAML: {problem}")


def dump(data: Any) -> str:
    """Write plain data as block-style YAML that :func:`load` reads back unchanged."""
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
