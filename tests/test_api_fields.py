"""Every error of the REST API names its field where it is in the request, as FastAPI's own validation does.

``body.sex`` (a field of the JSON body, also when the strict reader refuses a key given twice),
``body.case.sex`` and ``body.label`` (a stored case), ``query.patient`` (the ``?patient=`` that
chooses the FHIR patient: wrong, or missing when the input holds several), ``body`` (not JSON at
all). Before, a key given twice was ``sex``, and the patient choice ``body``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from api_support import Api, shared_api  # noqa: F401  (the fixture)
from conftest import EXAMPLES, ROOT, CliRunner
from hipdx.cli import app as cli_app

CASE = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
BUNDLE = json.loads((ROOT / "tests" / "data" / "fhir" / "toh_man_classic.bundle.json").read_text())
TWO = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": {"resourceType": "Patient", "id": "a", "gender": "male"}},
    {"resource": {"resourceType": "Patient", "id": "b", "gender": "female"}}]}


def _fields(answer: Any, status: int = 400) -> list[str]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in answer.json()["errors"]]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/assess", '{"sex": "male", "sex": "female", "age_years": 40}', "body.sex"),
        ("/api/v1/assess", '{"labs": {"crp": 1, "crp": 2}}', "body.labs.crp"),
        ("/api/v1/assess", '{"sex": "unicorn"}', "body.sex"),  # as the case model's own check says it
        ("/api/v1/cases", '{"label": "x", "case": {"sex": "male", "sex": "female"}}', "body.case.sex"),
        ("/api/v1/cases", '{"label": "a", "label": "b", "case": {}}', "body.label"),
        ("/api/v1/cases", '{"label": "", "case": {}}', "body.label"),
        ("/api/v1/cases", '{"case": {}}', "body.label"),
        ("/api/v1/assess", "{not json", "body"),
    ],
)
def test_a_body_field_is_named_under_body(shared_api: tuple[Api, dict[str, str]], path: str, body: str, field: str) -> None:
    api, headers = shared_api
    answer = api.client.post(path, content=body, headers=headers | {"Content-Type": "application/json"})
    assert _fields(answer) == [field]


@pytest.mark.parametrize(("bundle", "params", "reason"), [
    (BUNDLE, {"patient": "zz"}, "'zz' is none of the input's patients"),
    (TWO, {"patient": "zz"}, "'zz' is none of the input's patients (Patient/a, Patient/b)"),
    (TWO, {}, "required: the input holds 2 patients (Patient/a, Patient/b)"),
    (BUNDLE, {"patient": "a b"}, "pattern"),
])
def test_the_fhir_patient_choice_is_named_query_patient(shared_api: tuple[Api, dict[str, str]], bundle: dict[str, Any],
                                                        params: dict[str, str], reason: str) -> None:
    api, headers = shared_api
    answer = api.client.post("/api/v1/assess", json=bundle, params=params, headers=headers)
    assert _fields(answer) == ["query.patient"] and reason in answer.json()["errors"][0]["reason"]
    assert api.client.post("/api/v1/assess", json=TWO, params={"patient": "b"}, headers=headers).status_code == 200


def test_the_command_line_names_its_own_option(tmp_path: Any) -> None:
    path = tmp_path / "two.json"
    path.write_text(json.dumps(TWO))
    result = CliRunner().invoke(cli_app, ["fhir", "map", str(path), "--today", "2026-11-20"])
    assert result.exit_code != 0 and "--patient: required: the input holds 2 patients" in result.output
