"""A running service whose database goes away, is locked or loses a table answers 503 with
Retry-After and words a clinician or integrator can act on, never a 500 or the driver's text (which
quotes the statement and may quote patient data), and logs no statement parameters."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import hipdx

from api_support import DATABASES, build_api, database
from conftest import EXAMPLES

SECRET = "Zebedee-Quarterman"  # a patient's name, as a case label would carry it


def _drop(api: Any, table: str) -> None:
    with api.engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {table} CASCADE" if api.engine.dialect.name == "postgresql" else f"DROP TABLE {table}"))


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

