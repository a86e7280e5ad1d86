"""The modules of ``cozoo.co`` import one another without cycles, at any level.

Imports inside functions count too: a function-level import of a module that imports this one
back is a hidden circle (it works only because of the order in which modules are loaded).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import cozoo.co

PACKAGE = Path(cozoo.co.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["cozoo.co", *parts])


def imports_of(path: Path, known: Set[str]) -> Set[str]:
    """The ``cozoo.co`` modules that ``path`` imports anywhere (``from . import x`` counts
    ``x`` when it is a module; ``importlib.import_module`` is refused: it cannot be checked)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            raise AssertionError(f"{name} imports dynamically (line {node.lineno})")
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names} & known
            found.update(submodules)
            if target in known and (node.module or len(submodules) < len(node.names)):
                found.add(target)  # names taken from the module itself, not its submodules
    found.discard(name)
    return found


def import_graph() -> Dict[str, Set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, known) for p in paths}


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle of ``graph`` (a list of modules, the first repeated last), or []."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_find_cycle_finds_a_function_level_circle():
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_module_of_cozoo_co_imports_a_module_that_imports_it_back():
    graph = import_graph()
    # The package imports its modules; a module importing the package is a cycle through it.
    package_users = [m for m, deps in graph.items() if "cozoo.co" in deps and m != "cozoo.co"]
    assert package_users == []
    graph.pop("cozoo.co")
    assert "cozoo.co.convert" in graph["cozoo.co.flops"]  # the graph sees function-level imports
    assert find_cycle(graph) == []
