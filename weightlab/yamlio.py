"""YAML reading with the pitfalls removed, and a map from key paths to source lines.

PyYAML implements YAML 1.1, which reads ``1e-3`` as a string and ``yes``/``no``/``on``/``off`` as
booleans, and silently keeps the last of two duplicate keys. weightlab follows YAML 1.2 instead:
``1e-3`` is a float, only ``true``/``false`` are booleans, and a duplicate key is an error.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

import yaml

from weightlab import paths
from weightlab.errors import ConfigError, Problem

Path = tuple[str | int, ...]


def dotted(path: Path) -> str:
    """``("model", "layers", 0, "units")`` -> ``"model.layers.0.units"``."""
    return ".".join(str(p) for p in path)


# A config is a few hundred bytes of a handful of keys. These bounds keep a hostile or mistaken
# file (`/dev/zero`, a billion-laughs alias bomb, nesting 1000 deep) from taking the memory, the
# time or the Python stack: each is refused as a config error, before it is built.
MAX_BYTES = 1_000_000  # the size of a config file (or a command-line value)
MAX_DEPTH = 64  # lists and mappings inside each other, aliases followed
MAX_VALUES = 100_000  # keys, values and items in all, every alias counted as what it expands to


class _Refused(Exception):
    """A document over one of the bounds above, found while composing it."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and floats (see module docstring), and the bounds above.

    PyYAML's composer shares an anchored node wherever it is aliased, so the document is a graph
    whose expanded size can be exponential in the file's; the expanded size and depth of every
    node are counted as it is composed (once per node), and an alias to a node still being
    composed (``&a [*a]``) is a cycle.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._expanded:
                raise _Refused(
                    event.start_mark.line + 1,
                    f"the alias *{event.anchor} refers to the list or mapping that contains it; "
                    "a value cannot contain itself",
                )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(
                    mark.line + 1, f"nested more than {MAX_DEPTH} lists or mappings deep"
                )
            node: Any = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        children: list[Any] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        values, depth = 1, 1
        for child in children:
            v, d = self._expanded[id(child)]
            values += v
            depth = max(depth, d + 1)
        if values > MAX_VALUES:
            raise _Refused(
                node.start_mark.line + 1,
                f"this value expands to more than {MAX_VALUES} keys, values and items "
                "(aliases counted as what they repeat); a config needs a few dozen",
            )
        if depth > MAX_DEPTH:
            raise _Refused(
                node.start_mark.line + 1,
                f"nested more than {MAX_DEPTH} lists or mappings deep (aliases followed)",
            )
        self._expanded[id(node)] = (values, depth)
        return node


# Drop YAML 1.1's implicit resolvers for bool, int, float and timestamp (YAML 1.2's core schema
# has no timestamps: `2024-01-05` is a string), then add YAML 1.2 core bool, int and float.
_YAML11_ONLY = (
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# YAML 1.2 core: no `_` digit separators, no sexagesimal `1:30`, no YAML 1.1 octal `010` (which
# is 10 in YAML 1.2; octal is written `0o10`), no `0b` binary.
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9]+(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_12, list("-+0123456789"))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """A YAML 1.2 core integer: decimal (a leading zero too), ``0o`` octal or ``0x`` hex."""
    text = str(loader.construct_scalar(node))
    if not _INT_12.match(text):
        raise ValueError(f"{text!r} is not a YAML 1.2 integer (digits, 0o.. or 0x..)")
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that also quotes strings YAML 1.2 would read as floats (``'1e-3'``).

    It keeps YAML 1.1's resolvers too, so what it writes reads the same in :func:`load` and in a
    plain YAML 1.1 reader (``'yes'`` and ``'2024-01-05'`` stay quoted).
    """


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
_Dumper.add_implicit_resolver("tag:yaml.org,2002:int", _INT_12, list("-+0123456789"))

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
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ConfigError(
            Problem(source, "", f"{size} bytes is more than a config may hold ({_LIMIT_TEXT})")
        )
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
        except _Refused as e:
            raise ConfigError(Problem(f"{source}:{e.line}", "", str(e))) from None
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


_LIMIT_TEXT = f"at most {MAX_BYTES:,} bytes"


class Unreadable(Exception):
    """Why :func:`read_bounded` refused a file. ``kind``: ``missing``, ``not a file`` (``detail``
    says what it is: ``"a named pipe (FIFO)"``), ``too large`` (``size`` in bytes) or ``os``
    (``detail``: the system's reason)."""

    def __init__(self, kind: str, detail: str = "", size: int = 0):
        super().__init__(kind, detail)
        self.kind, self.detail, self.size = kind, detail, size


def read_bounded(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a config file, read with a bound: at most :data:`MAX_BYTES` + 1 bytes.

    A directory, a device (``/dev/zero``), a FIFO or a socket is refused before anything is read
    from it (a FIFO is opened without waiting for a writer), as is a file over the bound.

    Raises:
        Unreadable: the file is missing, not a regular file, too large, or cannot be read.
    """
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise Unreadable("missing") from None
    except IsADirectoryError:
        raise Unreadable("not a file", "a directory") from None
    except OSError as e:
        raise Unreadable("os", str(e.strerror or e)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # checked before fdopen, which refuses a directory itself
        os.close(fd)
        raise Unreadable("not a file", paths.mode_kind(info.st_mode))
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(MAX_BYTES + 1)
        except OSError as e:
            raise Unreadable("os", str(e.strerror or e)) from None
    if len(data) > MAX_BYTES:
        raise Unreadable("too large", size=max(info.st_size, len(data)))
    return data


def read_file(path: str | os.PathLike[str], what: str = "config file") -> str:
    """The text of a config file, read with :func:`read_bounded`'s bound.

    Raises:
        ConfigError: the file is missing, not a regular file, too large, or not UTF-8.
    """
    src = os.fspath(path)
    try:
        data = read_bounded(src)
    except Unreadable as e:
        why = {
            "missing": f"{what} not found",
            "not a file": f"the {what} is {e.detail}, not a file",
            "too large": f"the {what} is larger than a config may be ({_LIMIT_TEXT})",
        }.get(e.kind, f"cannot read the {what}: {e.detail}")
        raise ConfigError(Problem(src, "", why)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            Problem(
                f"{src}:{line}",
                "",
                f"not UTF-8 text (byte 0x{data[e.start]:02x}); a config is a UTF-8 YAML file",
            )
        ) from None


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
