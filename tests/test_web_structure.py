"""The web wing stays a house one can live in (issue 13's measures, as for the imaging wing):
small modules, short functions, no private imports, and every page's URL still answered.

Measured with ``ast`` on the source: a module of ``src/hipdx/web`` holds at most
``MAX_MODULE_LINES`` lines, a function (docstring included) at most ``MAX_FUNCTION_LINES``, and
no module imports another module's private (``_``-prefixed) name.
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import hipdx.web
from hipdx.knowledge import load_knowledge_base
from hipdx.web import web_router

WEB = Path(hipdx.web.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(WEB.glob("*.py"))


def _long_functions(source: str, limit: int) -> dict[str, int]:
    long = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                long[node.name] = lines
    return long


def test_the_measure_finds_a_long_function() -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(85))
    assert _long_functions(f"def outer():\n    def inner():\n{body}\n", MAX_FUNCTION_LINES) == {"outer": 87, "inner": 86}


def test_no_web_module_is_over_600_lines() -> None:
    long = {p.name: n for p in _modules() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_web_function_is_over_80_lines() -> None:
    long = {}
    for path in _modules():
        long |= {f"{path.name}:{name}": n for name, n in _long_functions(path.read_text(encoding="utf-8"), MAX_FUNCTION_LINES).items()}
    assert long == {}


def test_no_web_module_imports_a_private_name_of_another() -> None:
    private = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hipdx"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.endswith("__")]  # dunders (__version__) are public
    assert private == []


def _routes(router) -> list[tuple[str, str]]:
    """(method, path) of every route, through the included routers, in the order they are matched."""
    out = []
    for route in router.routes:
        inner = getattr(route, "original_router", None)  # FastAPI keeps an included router as one route
        if inner is not None:
            out += _routes(inner)
        else:
            out += [(method, route.path) for method in sorted(route.methods)]
    return out


def test_every_page_is_still_answered_and_new_before_an_id() -> None:
    """The URLs of the pages (module docstring of :mod:`hipdx.web.pages` and :mod:`hipdx.web.mri`)."""
    routes = _routes(web_router(load_knowledge_base(), dt.date.today))
    expected = [
        ("GET", "/sign-in"), ("POST", "/sign-in"), ("POST", "/sign-out"),
        ("GET", "/"), ("GET", "/patients/{patient_id}"), ("GET", "/cases/new"), ("GET", "/cases/{case_id}"),
        ("POST", "/cases/entry"), ("POST", "/cases/from-fhir"), ("POST", "/cases/save"), ("POST", "/cases/{case_id}/visits"),
        ("GET", "/cases/{case_id}/course.svg"), ("POST", "/assessment"), ("GET", "/cases/{case_id}/assessment"),
        ("POST", "/fragments/differential"), ("POST", "/fragments/pregnancy"), ("POST", "/fragments/study"),
        ("GET", "/kb"), ("GET", "/kb/conditions/{condition_id}"), ("GET", "/kb/findings/{variable_id}"), ("GET", "/kb/references/{key}"),
        ("GET", "/static/mri/mri.css"), ("GET", "/cases/{case_id}/mri"), ("POST", "/cases/{case_id}/mri"),
        ("GET", "/cases/{case_id}/mri/{job_id}"), ("GET", "/cases/{case_id}/mri/{job_id}/progress"),
        ("GET", "/cases/{case_id}/mri/{job_id}/view/{side}"), ("GET", "/cases/{case_id}/mri/{job_id}/slices/{side}/{name}"),
        ("POST", "/cases/{case_id}/mri/{job_id}/confirm"), ("GET", "/static/{name}"),
    ]
    assert [r for r in expected if r not in routes] == []
    assert routes.index(("GET", "/cases/new")) < routes.index(("GET", "/cases/{case_id}"))
