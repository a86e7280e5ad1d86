"""The layout's promises: no import circle in ``cozoo/``, files of one job each, and a
repository that stands on its own (no pointer to a path outside it)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Dict, List, Set

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "cozoo"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, is_package: bool, level: int, target: str) -> str:
    """The absolute name of a relative import ``from <level dots><target> import ...``."""
    if level == 0:
        return target
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph() -> Dict[str, Set[str]]:
    """Explicit imports between cozoo's modules, at any depth (functions included): ``from a
    import b`` is an edge to ``a.b`` when that is a module, else to ``a``."""
    modules = _modules()
    graph: Dict[str, Set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module or "")
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_cozoo():
    graph = import_graph()
    assert "cozoo.models._registry" in graph and graph["cozoo.models.video.cox3d"]
    assert cycles(graph) == []


#: Layers, bottom up: a module imports only from its own layer and the layers below.
LAYERS = (
    ("cozoo.co", "cozoo.safe_pickle", "cozoo", "cozoo.plots"),
    ("cozoo.models",),
    ("cozoo.data", "cozoo.tasks", "cozoo.recipes", "cozoo.callbacks"),
    ("cozoo.train", "cozoo.evaluate", "cozoo.benchmark", "cozoo.figures", "cozoo.stream"),
)


def _layer(module: str) -> int:
    """The layer of a module: that of the longest prefix named in ``LAYERS``."""
    best, layer = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), index
    return layer


def test_each_layer_imports_only_from_itself_and_below():
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in import_graph().items()
        for target in targets
        if _layer(target) > _layer(source)
    )
    assert upward == []


def test_co_imports_nothing_dynamically():
    """``cozoo.co``'s imports are all visible to the circle check (``cozoo.models`` imports its
    family packages dynamically, by design: that is how a model file registers itself)."""
    dynamic = [
        str(path.relative_to(REPO))
        for path in (PACKAGE / "co").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
    ]
    assert dynamic == []


def test_no_file_in_cozoo_is_over_the_line_limit():
    long = {
        str(p.relative_to(REPO)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these along their seams (over {MAX_LINES} lines): {long}"


def test_the_repository_points_nowhere_outside_itself():
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    # (bracketed letters: this file does not match its own pattern)
    outside = re.compile(r"\.\./share[d]|share[d]/spec|share[d]/DESIGN|spe[c]/[\w-]+\.md")
    offenders = [
        name
        for name in files
        if name.endswith((".py", ".md", ".yaml", ".toml", ".cfg", ".txt", ".ipynb"))
        and outside.search((REPO / name).read_text(errors="replace"))
    ]
    assert offenders == []
