"""pinc/calls keeps DESIGN.md's shape: small modules, no import cycle, a pure tracker."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pinc" / "calls"
MAX_LINES = 400
PARTS = (
    "tracker",
    "state",
    "names",
    "channels",
    "legs",
    "transfers",
    "cdr",
    "closing",
    "clock",
    "parking",
    "conference",
)
# The tracker reads no clock and does no I/O: none of these may be imported by its parts.
IMPURE = ("time", "datetime.datetime.now", "socket", "trio", "os", "pathlib", "sqlite3")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _local_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        deps = set()
        for name in _imports(path):
            if name.startswith("pinc.calls."):
                deps.add(name.removeprefix("pinc.calls."))
            elif name == "pinc.calls":  # from pinc.calls import a, b
                tree = ast.parse(path.read_text())
                for node in ast.walk(tree):
                    if isinstance(node, ast.ImportFrom) and node.module == "pinc.calls":
                        deps.update(alias.name for alias in node.names)
        graph[path.stem] = deps
    return graph


def test_every_part_exists_and_no_module_is_too_long() -> None:
    for part in PARTS:
        assert (PACKAGE / f"{part}.py").is_file(), part
    for path in PACKAGE.glob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_LINES, f"{path.name}: {lines} lines"


def test_no_import_cycle() -> None:
    graph = _local_graph()
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        assert node not in stack, " -> ".join([*stack, node])
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, [*stack, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_the_tracker_parts_are_pure() -> None:
    for part in PARTS:
        imported = _imports(PACKAGE / f"{part}.py")
        bad = {name for name in imported for m in IMPURE if name == m or name.startswith(m + ".")}
        assert not bad, f"{part}.py imports {bad}"
