"""A running service whose database goes away, is locked or loses a table answers 503 with
Retry-After and words a clinician or integrator can act on, never a 500 or the driver's text (which
quotes the statement and may quote patient data), and logs no statement parameters."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, text as sql

import hipdx
from hipdx.store import records

from api_support import DATABASES, PASSWORD, Api, build_api, database
from conftest import EXAMPLES
from test_web_pages import text
from web_support import api, example, sign_in  # noqa: F401  (api: the pages' fixture)

SECRET = "Zebedee-Quarterman"  # a patient's name, as a case label would carry it


def _drop(api: Any, table: str) -> None:
    with api.engine.begin() as connection:
        connection.execute(sql(f"DROP TABLE {table} CASCADE" if api.engine.dialect.name == "postgresql" else f"DROP TABLE {table}"))


@pytest.mark.parametrize("kind", DATABASES)
def test_the_api_answers_503_when_its_database_fails(kind: str, tmp_path: Path, kb: hipdx.KnowledgeBase,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    for url in database(kind, tmp_path):
        api = build_api(url, kb, tmp_path)
        try:
            headers = api.sign_in()
            case = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
            assert api.client.post("/api/v1/cases", json={"label": SECRET, "case": case}, headers=headers).status_code == 201
            _drop(api, "case_assessment")
            _drop(api, "case_visit")
            _drop(api, "patient_case")
            with caplog.at_level(logging.DEBUG):
                for answer in (api.client.get("/api/v1/cases", headers=headers),
                               api.client.post("/api/v1/cases", json={"label": SECRET, "case": case}, headers=headers)):
                    assert answer.status_code == 503, answer.text
                    assert answer.headers["content-type"].startswith("application/problem+json")
                    assert answer.headers["retry-after"] == "5"
                    body = answer.json()
                    assert body["status"] == 503 and "database is not available" in body["detail"]
                    assert "patient_case" not in answer.text and "SELECT" not in answer.text and SECRET not in answer.text
            assert SECRET not in caplog.text  # the INSERT's parameters are not in the log
            assert "OperationalError" in caplog.text or "ProgrammingError" in caplog.text
        finally:
            api.context.jobs.shutdown(wait=True)
            api.engine.dispose()



# --- the clinician's pages: a page in the site's layout, in words; the API and CDS clients keep their JSON ---


def _page_in_words(answer: Any, said: str) -> None:
    """503 with Retry-After, the site's page (not the service's JSON) saying what happened, nothing of the driver."""
    assert answer.status_code == 503, answer.text[-2000:]
    assert answer.headers["content-type"].startswith("text/html") and answer.headers["retry-after"] == "5"
    assert "<html" in answer.text and 'href="/kb"' in answer.text  # in the app's layout, its navigation
    words = text(answer.text)
    assert "The record store is not available just now" in words and said in words, words
    assert "Try again in a moment" in words
    for driver in ("patient_case", "SELECT", "INSERT", "no such table", "does not exist", "Error", "Traceback"):
        assert driver not in answer.text


def _hidden(html: str) -> list[tuple[str, str]]:
    return [(unescape(n), unescape(v)) for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', html)]


@pytest.mark.parametrize("api", DATABASES, indirect=True)
def test_a_page_whose_database_fails_answers_a_page_the_api_its_json(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """Before, a page (read or form posted) got the service's JSON OperationOutcome in the browser."""
    token = sign_in(api)
    case = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
    case_id = records.create_case(api.engine, SECRET, case, "seed").id
    bearer = api.sign_in()
    for table in ("case_assessment", "case_visit", "patient_case"):
        _drop(api, table)
    form = example("toh_man_classic") | {"id": SECRET, "csrf_token": token}
    with caplog.at_level(logging.DEBUG):
        pages = [api.client.get("/"), api.client.get(f"/cases/{case_id}")]
        saved = api.client.post("/cases/save", data=form, follow_redirects=False)
        refused = [api.client.get("/api/v1/cases", headers=bearer),
                   api.client.post("/api/v1/cases", json={"label": SECRET, "case": case}, headers=bearer)]
    for answer, path in zip(pages, ("/", f"/cases/{case_id}")):
        _page_in_words(answer, "so this page cannot be shown")
        assert f'<a href="{path}">Try again</a>' in answer.text and SECRET not in answer.text
    _page_in_words(saved, "so the new case was not saved: nothing of it was stored.")
    assert '<form method="post" action="/cases/save">' in saved.text
    assert _hidden(saved.text.split("<main", 1)[1]) == list(form.items())  # the entries come back, to send again
    assert "What you entered is kept on this page" in text(saved.text)
    for answer in refused:  # the REST API: problem details, as before
        assert answer.status_code == 503 and answer.headers["content-type"].startswith("application/problem+json")
        assert answer.headers["retry-after"] == "5" and "database is not available" in answer.json()["detail"]
    assert SECRET not in caplog.text  # the INSERT's parameters are not in the log
    assert "OperationalError" in caplog.text or "ProgrammingError" in caplog.text


def _fill(path: str, kb: hipdx.KnowledgeBase) -> str:
    """A page's path with its parameters given (an unknown case or job is fine: the store is asked first)."""
    values = {"case_id": "1", "job_id": "0b8e0f64-6a1e-4a8e-9a52-3c1f2f0d9a11", "number": "1", "side": "left", "name": "1.png",
              "condition_id": kb.condition_ids[0], "variable_id": next(iter(kb.variables)), "key": next(iter(kb.references)),
              "patient_id": "p1"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], path)


def _routes(routes: list[Any]) -> Iterator[Any]:
    """Every FastAPI route of the app, those of included routers too (FastAPI keeps them in their router)."""
    from fastapi.routing import APIRoute

    for route in routes:
        if hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


@pytest.mark.parametrize("api", DATABASES, indirect=True)
def test_every_page_answers_a_page_when_the_database_is_away(api: Api, kb: hipdx.KnowledgeBase) -> None:
    """Every route of the pages, read and posted, with every table of the store gone: a page in
    words (503), never the service's JSON or a 500; the CDS discovery and the API keep theirs."""
    token = sign_in(api)
    bearer = api.sign_in()
    store = MetaData()
    store.reflect(api.engine)
    store.drop_all(api.engine)  # every table of the store gone, the users' too
    service = ("/api", "/cds-services", "/knowledge-base", "/openapi.json", "/static")
    routes = [(method, _fill(r.path, kb)) for r in _routes(api.client.app.routes) if not r.path.startswith(service)
              for method in sorted(r.methods)]
    assert len(routes) > 30
    for method, path in routes:
        posted = {"csrf_token": token, "username": "clinician", "password": PASSWORD} if method == "POST" else None
        answer = api.client.request(method, path, data=posted, follow_redirects=False)
        assert answer.headers["content-type"].startswith("text/html"), (method, path, answer.text[:300])
        if (method, path) == ("GET", "/sign-in"):  # the one page that asks the store nothing
            continue
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5", (method, path, answer.text[:300])
        assert "The record store is not available just now" in text(answer.text)
        assert PASSWORD not in answer.text  # a form with a password is never sent back in the page
    fragment = api.client.post("/fragments/differential", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert fragment.status_code == 503 and fragment.headers["retry-after"] == "5"  # htmx: the site's error fragment
    assert fragment.text.startswith('<p class="error" role="alert">The record store is not available') and "<html" not in fragment.text
    assert api.client.get("/cds-services").json()["services"]
    problem = api.client.get("/api/v1/me", headers=bearer)
    assert problem.status_code == 503 and problem.headers["content-type"].startswith("application/problem+json")
