"""The package's shape, checked from the source with `ast`: no import cycles, layers imported only downwards,
modules of a readable size. See docs/architecture.md for the picture these tests keep true."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "safepoint"

#: Layers from the bottom up: a module may import its own layer or any layer below it, never one above.
LAYERS = [
    ["errors", "model", "version"],
    ["stores"],
    ["core"],
    ["runtime"],
    ["session"],
    ["repository"],
    ["agents"],
    ["integrations", "demo", "testing"],
    ["cli", "dashboard", "mcp"],
    ["__init__", "__main__"],
]
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every safepoint module `name` imports, wherever the import stands (top level, function, TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from x import y` imports module x.y when there is one, else a name defined in x
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each a group of mutual imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(name: str) -> int:
    top = name.split(".")[1] if "." in name else "__init__"
    for rank, members in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"safepoint.{top} is in no layer of tests/test_architecture.py: add it to LAYERS")


def test_the_graph_sees_known_imports() -> None:
    graph = import_graph()
    assert "safepoint.core.history" in graph["safepoint.session"]
    assert "safepoint.runtime.steps" in graph["safepoint.session"]
    assert "safepoint.session" in graph["safepoint.repository"]
    assert "safepoint.core.codec" in graph["safepoint.runtime.steps"]  # `from ..core import codec`


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(import_graph()) == []


def test_layers_import_only_downwards() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(name)
    ]
    assert upward == []


def test_modules_stay_readable() -> None:
    long = {name: n for name, path in all_modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}
