"""A defect of hipdx's own met by a page (here a database that refuses a case with an integrity
error, which is not a store outage) is answered as a 500 page in the site's layout, in words, never
the service's JSON OperationOutcome nor the driver's text; the REST API keeps its JSON 500."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import text as sql

from api_support import Api
from conftest import EXAMPLES
from test_web_pages import text
from web_support import api, example, sign_in  # noqa: F401  (api: the fixture, SQLite)

WORDS = "the case of Zebedee may not be kept"  # the database's own words, which no answer may show


def _refuse_cases(api: Api) -> None:
    """A real SQLite trigger: every new case is refused with an integrity error (RAISE(ABORT))."""
    with api.engine.begin() as connection:
        connection.execute(sql(f"CREATE TRIGGER refuse_case BEFORE INSERT ON patient_case BEGIN SELECT RAISE(ABORT, '{WORDS}'); END"))


def test_a_page_meeting_a_defect_answers_a_500_page_and_the_api_its_json(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    token, bearer = sign_in(api), api.sign_in()
    _refuse_cases(api)
    with caplog.at_level(logging.ERROR):
        answer = api.client.post("/cases/save", data=example("toh_man_classic") | {"csrf_token": token},
                                 follow_redirects=False)
        fragment = api.client.post("/cases/save", data=example("toh_man_classic") | {"csrf_token": token},
                                   headers={"HX-Request": "true"}, follow_redirects=False)
        case = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
        through_api = api.client.post("/api/v1/cases", json={"label": "x", "case": case}, headers=bearer)
    assert through_api.status_code == 500 and through_api.headers["content-type"].startswith("application/")
    assert WORDS not in through_api.text  # the API's clients read JSON, as before
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("text/html")
    assert "<html" in answer.text and "Something went wrong" in answer.text
    assert "what you sent may not have been saved: look at the case list before sending it again" in text(answer.text)
    assert fragment.status_code == 500 and "<html" not in fragment.text and 'role="alert"' in fragment.text
    for leaked in (WORDS, "IntegrityError", "Traceback", "INSERT", "resourceType"):
        assert leaked not in answer.text and leaked not in fragment.text
    assert "unexpected IntegrityError on POST /cases/save" in caplog.text and WORDS not in caplog.text
    rest = api.client.get("/", follow_redirects=False)  # a read still answers: only the insert is refused
    assert rest.status_code == 200


def test_the_log_names_the_route_never_a_patient_id_in_the_path(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """A failure on ``/patients/{patient_id}`` (where a CDS card's link lands: the id is the EHR's
    patient identifier) is logged with the route's template; before, the path itself, id included."""
    sign_in(api)
    with api.engine.begin() as connection:
        connection.execute(sql("DROP TABLE patient_case"))
    with caplog.at_level(logging.ERROR):
        answer = api.client.get("/patients/MRN-77321-Zebedee", follow_redirects=False)
    assert answer.status_code == 503  # the page links back to the path (the clinician's own): only the log is bare
    assert "on GET /patients/{patient_id}" in caplog.text
    assert "MRN-77321" not in caplog.text
