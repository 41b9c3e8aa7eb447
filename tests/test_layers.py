"""The package's layers: no import cycle, and TensorFlow only under weightlab/training/.

Read from the source with :mod:`ast`, without importing anything: every import counts, the ones
inside functions too (they hid the cycles this test now keeps out), and those under
``if TYPE_CHECKING:``: a cycle only the type checker follows still ties two layers together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "weightlab"
HEAVY = ("tensorflow", "keras")  # imported only under weightlab/training/


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["weightlab", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (``if TYPE_CHECKING:`` blocks included)."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _imported_names(path: Path, module: str) -> list[str]:
    """The dotted names ``path`` imports: ``from . import x`` and ``from weightlab import x``
    name ``weightlab.x`` (a module, or an attribute of the package)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            up = parts[: len(parts) - (node.level - 1)]
            base = ".".join(up + ([node.module] if node.module else []))
        names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def module_graph(root: Path = PACKAGE) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """The package's modules -> the package modules each imports, and every name each imports."""
    files = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    edges: dict[str, set[str]] = {m: set() for m in files}
    names: dict[str, list[str]] = {}
    for module, path in files.items():
        names[module] = _imported_names(path, module)
        for name in names[module]:
            while name and name not in files:  # `weightlab.store.Store` -> `weightlab.store`
                name = name.rpartition(".")[0]
            if name and name != module:
                edges[module].add(name)
    return edges, names


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each in cycle order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_cycle_through(sorted(component), edges))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _cycle_through(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One cycle inside a strongly connected component, from its first module back to it."""
    inside, start = set(component), component[0]
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(edges[v] & inside):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                todo.append(w)
    return component  # unreachable for a real component


def _heavy(name: str) -> bool:
    return name.split(".")[0] in HEAVY


GRAPH, NAMES = module_graph()


def test_the_walk_sees_the_package() -> None:
    """An empty graph would pass everything below: the walk must find known edges, including
    one made inside a function (executors imports the training package only when it trains)."""
    assert len(GRAPH) > 30
    assert "weightlab.config" in GRAPH["weightlab.store"]  # a top-level import
    assert "weightlab.training.sweep" in GRAPH["weightlab.executors"]  # inside run_sweep
    assert "weightlab.text" in GRAPH["weightlab.expect"]
    assert any(_heavy(n) for n in NAMES["weightlab.training.runner"])


def test_no_import_cycle() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize(
    ("a", "b"), [("weightlab.executors", "weightlab.training.runner")], ids=["executors-runner"]
)
def test_executors_and_the_runner_do_not_import_each_other(a: str, b: str) -> None:
    assert b not in GRAPH[a]
    assert a not in GRAPH[b]
    assert "weightlab.executors" not in set().union(
        *(GRAPH[m] for m in GRAPH if m.startswith("weightlab.training"))
    ), "the training package builds on weightlab.runstart, not on the executors"


def test_tensorflow_and_keras_are_imported_only_under_training() -> None:
    outside = {
        module: sorted(n for n in names if _heavy(n))
        for module, names in NAMES.items()
        if not module.startswith("weightlab.training")
    }
    assert not {m: n for m, n in outside.items() if n}


def test_the_cycle_finder_finds_cycles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(edges) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_resolved_in_every_form(tmp_path: Path) -> None:
    root = tmp_path / "weightlab"
    (root / "training").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("def f():\n    from . import b\n")
    (root / "b.py").write_text("from weightlab import c\n")
    (root / "e.py").write_text("")
    (root / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from weightlab import e\n"
        "import weightlab.training.d\n"
    )
    (root / "training" / "__init__.py").write_text("")
    (root / "training" / "d.py").write_text("from ..a import f\nimport tensorflow as tf\n")
    edges, names = module_graph(root)
    assert edges["weightlab.a"] == {"weightlab.b"}
    assert edges["weightlab.b"] == {"weightlab.c"}
    assert edges["weightlab.c"] == {"weightlab.e", "weightlab.training.d"}  # TYPE_CHECKING counts
    assert edges["weightlab.training.d"] == {"weightlab.a"}
    assert cycles(edges) == [
        ["weightlab.a", "weightlab.b", "weightlab.c", "weightlab.training.d", "weightlab.a"]
    ]
    assert "tensorflow" in names["weightlab.training.d"]


if __name__ == "__main__":  # the module map: python tests/test_layers.py
    for module in sorted(GRAPH):
        print(f"{module}: {', '.join(sorted(GRAPH[module])) or '-'}")
    found = cycles(GRAPH)
    print(f"\nimport cycles: {len(found)}")
    for cycle in found:
        print("  " + " -> ".join(cycle))
