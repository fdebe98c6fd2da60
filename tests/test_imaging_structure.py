"""The imaging wing stays a house one can live in: small modules, short functions, no private imports.

Measured with ``ast`` on the source: a module of ``src/hipdx/imaging`` holds at most
``MAX_MODULE_LINES`` lines, a function (docstring included) at most ``MAX_FUNCTION_LINES``, and
no module imports another module's private (``_``-prefixed) name: what two modules share is a
public name of one of them, or a module of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hipdx.imaging

IMAGING = Path(hipdx.imaging.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(IMAGING.glob("*.py"))


def test_no_imaging_module_is_over_600_lines() -> None:
    long = {p.name: n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_imaging_function_is_over_80_lines() -> None:
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.name}:{node.name}"] = lines
    assert long == {}


def test_no_imaging_module_imports_a_private_name_of_another() -> None:
    private = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hipdx"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.endswith("__")]  # dunders (__version__) are public
    assert private == []
