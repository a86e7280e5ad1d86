"""The notebooks' promises: executed and committed with their outputs, no errors, small files,
and code that reads nothing outside the repository or the cozoo cache (temporary folders are
made with ``tempfile``, which needs no literal path).

The notebooks themselves run in the test command through nbmake (``pyproject.toml``); this file
checks what nbmake does not: what was committed. A new notebook in ``notebooks/`` is covered by
both without an edit here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: The notebooks of issue 16.
REQUIRED = (
    "01_continual_layers",
    "02_convert_and_deploy",
    "03_video_stream",
    "04_skeleton_stream",
    "05_online_detection",
)
#: Bytes per notebook file (outputs and PNG figures included).
SIZE_LIMIT = 400_000
#: The cozoo cache as a notebook may spell it (``$COZOO_CACHE`` is read by cozoo itself).
CACHE = "~/.cache/cozoo"
#: Attributes and names whose use reaches for folders the checks cannot follow.
_REACHING = {
    "home": "Path.home() (outside the repository)",
    "expanduser": "expanduser (a home folder)",
    "pardir": "os.pardir (a parent folder)",
    "parent": ".parent (climbs out of a folder)",
    "parents": ".parents (climbs out of a folder)",
    "chdir": "chdir (moves the working folder)",
    "getenv": "an environment variable as a path",
    "environ": "an environment variable as a path",
    "__file__": "__file__ (a path of the machine)",
}
#: Of those, the ones that are suspect as bare names too (``from os import environ``); a
#: variable called ``parent`` (a joint's parent) is not.
_REACHING_NAMES = {"expanduser", "pardir", "chdir", "getenv", "environ", "__file__"}


def _load(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: Dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _code_cells(notebook: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code" and _source(c).strip()]


def _outside_literal(text: str) -> Optional[str]:
    """Why the string literal ``text`` names a path outside the repository and cache, or None."""
    if text.startswith("~"):
        if text == CACHE or text.startswith(CACHE + "/"):
            return None
        return "a home path outside the cozoo cache"
    if re.match(r"/[\w.~-]", text) or re.match(r"[A-Za-z]:[\\/]", text) or text.startswith("\\\\"):
        return "an absolute path"
    if text.startswith("file:"):
        return "a file URL"
    if re.search(r"(^|[\\/])\.\.([\\/]|$)", text):
        return "a parent folder (..)"
    return None


def outside_paths(source: str) -> List[str]:
    """What in the code ``source`` of one cell may read outside the repository or the cache:
    string literals that are absolute, home (other than the cache) or parent paths, calls that
    climb folders or read the environment, shell escapes and magics."""
    problems: List[str] = []
    lines = []
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):  # IPython: the shell can read anything
            problems.append(f"line {number}: shell escape or magic {stripped.split()[0]!r}")
            lines.append("")
        else:
            lines.append(line)
    tree = ast.parse("\n".join(lines))
    for node in ast.walk(tree):
        reason = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            why = _outside_literal(node.value)
            reason = f"{why}: {node.value!r}" if why else None
        elif isinstance(node, ast.Attribute) and node.attr in _REACHING:
            reason = _REACHING[node.attr]
        elif isinstance(node, ast.Name) and node.id in _REACHING_NAMES:
            reason = _REACHING[node.id]
        if reason:
            problems.append(f"line {node.lineno}: {reason}")
    return problems


# --------------------------------------------------------------------------------------------
# The checker itself
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "open('/etc/hostname').read()",
        "np.load('../data/x.npy')",
        "np.load('data/../../x.npy')",
        "torch.load(Path.home() / 'model.pt')",
        "p = os.path.expanduser('~/videos/a.mp4')",
        "open('~/videos/a.mp4')",
        "root = os.environ['DATA']",
        "root = Path(__file__).parent",
        "from os import environ\nroot = environ['DATA']",
        "x = r'C:\\\\data\\\\x.npy'",
        "!cat /etc/hostname",
        "%load ../other.py",
    ],
)
def test_the_checker_flags_reading_outside(source):
    assert outside_paths(source), source


@pytest.mark.parametrize(
    "source",
    [
        "tmp = tempfile.TemporaryDirectory()\npath = os.path.join(tmp.name, 'step.onnx')",
        "root = '~/.cache/cozoo/kinetics_sample'",
        "x = np.load('data/x.npy')",
        "print(f'{a} / {b}', 'ms / step', 'x/y')",
        "for child, parent in links:\n    print(child, parent)",
    ],
)
def test_the_checker_passes_repository_cache_and_temporary_paths(source):
    assert outside_paths(source) == []


# --------------------------------------------------------------------------------------------
# Every notebook
# --------------------------------------------------------------------------------------------
def test_the_notebooks_of_the_issue_are_there():
    assert {p.stem for p in NOTEBOOKS} >= set(REQUIRED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_reads_outside_the_repository_or_cache(path):
    problems = [
        f"cell {index}: {problem}"
        for index, cell in enumerate(_load(path)["cells"])
        if cell["cell_type"] == "code"
        for problem in outside_paths(_source(cell))
    ]
    assert problems == []


def run_order_problems(notebook: Dict[str, Any]) -> List[str]:
    """Code cells that did not run, or not in order in one kernel (counts 1, 2, 3, ...)."""
    counts = [cell.get("execution_count") for cell in _code_cells(notebook)]
    if not counts:
        return ["a notebook without code"]
    expected = list(range(1, len(counts) + 1))
    return [] if counts == expected else [f"execution counts {counts}, expected {expected}"]


def error_outputs(notebook: Dict[str, Any]) -> List[str]:
    """Error outputs, and tracebacks printed to stderr, of the code cells."""
    errors = []
    for index, cell in enumerate(_code_cells(notebook)):
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                errors.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}")
            elif output["output_type"] == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))
                if "Traceback" in text or "Error" in text:
                    errors.append(f"cell {index}: stderr {text[:200]!r}")
    return errors


def _code(source: str, count: Optional[int], outputs: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"cell_type": "code", "source": source, "execution_count": count, "outputs": outputs}


def test_the_checks_flag_unexecuted_reordered_and_failed_notebooks():
    ok = [_code("a = 1", 1, []), {"cell_type": "markdown", "source": "x"}, _code("b = 2", 2, [])]
    assert run_order_problems({"cells": ok}) == [] and error_outputs({"cells": ok}) == []
    assert run_order_problems({"cells": [_code("a = 1", None, []), _code("b = 2", None, [])]})
    assert run_order_problems({"cells": [_code("a = 1", 2, []), _code("b = 2", 1, [])]})
    assert run_order_problems({"cells": [{"cell_type": "markdown", "source": "x"}]})
    error = {"output_type": "error", "ename": "ValueError", "evalue": "no", "traceback": []}
    assert error_outputs({"cells": [_code("f()", 1, [error])]})
    stderr = {"output_type": "stream", "name": "stderr", "text": "Traceback (most recent..."}
    assert error_outputs({"cells": [_code("f()", 1, [stderr])]})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_committed_from_one_run(path):
    assert run_order_problems(_load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_error_in_the_committed_outputs(path):
    assert error_outputs(_load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figures_are_embedded_pngs_and_the_file_is_small(path):
    notebook = _load(path)
    images = [
        (kind, output["data"][kind])
        for cell in _code_cells(notebook)
        for output in cell.get("outputs", [])
        for kind in output.get("data", {})
        if kind.startswith("image/")
    ]
    assert images, "every notebook shows at least one figure"
    assert {kind for kind, _ in images} == {"image/png"}
    assert path.stat().st_size < SIZE_LIMIT
