"""Every change through the REST API (users, cases, visits, assessments, MRI jobs) is written in one
transaction with its access record: a database that refuses the record (a real trigger here, as a
full disk or a revoked INSERT would) leaves nothing of the change, and the caller reads a 503 with
Retry-After naming the audit, never a 500 or the driver's text. Before, the change was committed
first and stayed, unrecorded (SQLite answered 500, PostgreSQL 503)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from hipdx.store.tables import AccessEvent, MriJob, StoredAssessment, StoredCase, StoredVisit, Token, User

from api_support import PASSWORD, Api, api  # noqa: F401  (api: the fixture, SQLite and PostgreSQL)
from conftest import EXAMPLES, Phantoms

#: a small study (the upload only has to be DICOM; it is never analysed)
SMALL = dict(seed=2, edema_ml=25.0, band_mm=5.0, rows=64, cols=64, pixel_mm=5.4, slices=8)
REFUSAL = "no room left for Zebedee"  # the database's own words, which the caller must not read


def _refuse_access_records(engine: Engine) -> None:
    """A real trigger that refuses every new access record, as the database would."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                                    f"$$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$"))
            connection.execute(text("CREATE TRIGGER refuse_audit BEFORE INSERT ON access_event "
                                    "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"))
        else:
            connection.execute(text("CREATE TRIGGER refuse_audit BEFORE INSERT ON access_event "
                                    f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"))


def _refused(answer: Any) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["detail"].startswith("the access audit could not record this request, so it was not "
                                              "carried out (nothing was changed or shown)")
    for driver in (REFUSAL, "INSERT", "access_event", "Error"):
        assert driver not in answer.text


def _count(engine: Engine, table: Any) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _user(engine: Engine, name: str) -> tuple[str, bool, str]:
    with Session(engine) as session:
        row = session.scalars(select(User).where(User.username == name)).one()
        return row.role, row.active, row.password_hash


def test_a_user_change_whose_access_record_is_refused_is_not_made(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    admin, clinician = api.sign_in("admin"), api.sign_in("clinician")
    before, tokens = _user(api.engine, "clinician"), _count(api.engine, Token)
    _refuse_access_records(api.engine)
    with caplog.at_level(logging.DEBUG):
        _refused(api.client.post("/api/v1/users", json={"username": "dr.nurse", "password": PASSWORD, "role": "admin"},
                                 headers=admin))
    refusal = "ProgrammingError" if api.engine.dialect.name == "postgresql" else "IntegrityError"  # as SQLAlchemy names it
    assert f"unexpected {refusal} on POST /api/v1/users" in caplog.text  # the operator's clue: the class and frames
    assert REFUSAL not in caplog.text and PASSWORD not in caplog.text  # never the driver's words or a value
    _refused(api.client.patch("/api/v1/users/clinician", json={"role": "admin"}, headers=admin))
    _refused(api.client.patch("/api/v1/users/clinician", json={"active": False}, headers=admin))
    _refused(api.client.put("/api/v1/users/clinician/password", json={"password": "a new long password"},
                            headers=admin))
    with Session(api.engine) as session:
        assert session.scalars(select(User.username).where(User.username == "dr.nurse")).first() is None
    assert _user(api.engine, "clinician") == before and _count(api.engine, Token) == tokens
    assert api.client.get("/api/v1/me", headers=clinician).status_code == 200  # the tokens were not ended
    assert _count(api.engine, AccessEvent) == 0


def test_a_case_write_whose_access_record_is_refused_is_not_made(api: Api) -> None:
    headers = api.sign_in()
    case = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
    created = api.client.post("/api/v1/cases", json={"label": "first", "case": case}, headers=headers)
    assert created.status_code == 201, created.text
    case_id, stored = created.json()["id"], _count(api.engine, AccessEvent)
    visit = {"days_since_onset": 30, "pain_0_10": 4}
    _refuse_access_records(api.engine)
    _refused(api.client.post("/api/v1/cases", json={"label": "second", "case": case}, headers=headers))
    _refused(api.client.put(f"/api/v1/cases/{case_id}", json={"label": "renamed", "case": case},
                             headers=headers | {"If-Match": created.headers["etag"]}))
    _refused(api.client.post(f"/api/v1/cases/{case_id}/visits", json=visit, headers=headers))
    _refused(api.client.post(f"/api/v1/cases/{case_id}/assessments", headers=headers))
    _refused(api.client.delete(f"/api/v1/cases/{case_id}", headers=headers | {"If-Match": created.headers["etag"]}))
    with Session(api.engine) as session:
        assert [(c.label, c.version) for c in session.scalars(select(StoredCase))] == [("first", 1)]
    assert _count(api.engine, StoredVisit) == 0 and _count(api.engine, StoredAssessment) == 0
    assert _count(api.engine, AccessEvent) == stored


def test_an_mri_upload_whose_access_record_is_refused_queues_no_job(api: Api, phantoms: Phantoms) -> None:
    headers = api.sign_in()
    files = [("files", (path.name, path.read_bytes(), "application/dicom"))
             for path in sorted(phantoms.folder(SMALL).rglob("*")) if path.is_file()]
    _refuse_access_records(api.engine)
    _refused(api.client.post("/api/v1/mri/jobs", files=files, headers=headers))
    assert _count(api.engine, MriJob) == 0
    assert not any(api.context.upload_dir.glob("*/*"))  # the de-identified copies went with the job


def test_a_read_whose_access_record_is_refused_is_not_answered(api: Api) -> None:
    """No access without its record: the case is not shown (before: 500 on SQLite)."""
    headers = api.sign_in()
    case = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
    case_id = api.client.post("/api/v1/cases", json={"label": "Zebedee", "case": case}, headers=headers).json()["id"]
    _refuse_access_records(api.engine)
    for answer in (api.client.get(f"/api/v1/cases/{case_id}", headers=headers),
                   api.client.post("/api/v1/assess", json=case, headers=headers)):
        _refused(answer)
        assert "Zebedee" not in answer.text and "differential" not in answer.text


def test_a_refusal_of_the_trail_whose_record_is_refused_is_answered_503(api: Api) -> None:
    """A clinician's refused read of the audit trail is recorded before it is answered; when its row
    cannot be written the answer is 503, as every request whose record the database refuses."""
    clinician = api.sign_in("clinician")
    _refuse_access_records(api.engine)
    _refused(api.client.get("/api/v1/audit/events", headers=clinician))


def test_the_changes_are_recorded_with_their_status(api: Api) -> None:
    admin = api.sign_in("admin")
    case = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
    case_id = api.client.post("/api/v1/cases", json={"label": "first", "case": case}, headers=admin).json()["id"]
    assert api.client.post(f"/api/v1/cases/{case_id}/assessments", headers=admin).status_code == 201
    assert api.client.put("/api/v1/users/clinician/password", json={"password": "a new long password"},
                          headers=admin).status_code == 204
    assert api.client.patch("/api/v1/users/nobody", json={"active": False}, headers=admin).status_code == 404
    assert api.client.delete(f"/api/v1/cases/{case_id}", headers=admin | {"If-Match": "*"}).status_code == 204
    with Session(api.engine) as session:
        rows = [(e.action, e.what, e.status_code, e.username) for e in session.scalars(select(AccessEvent).order_by(AccessEvent.id))]
    assert rows == [("C", f"Case/{case_id}", 201, "admin"), ("C", f"Case/{case_id}/assessments/1", 201, "admin"),
                    ("U", "User/clinician", 204, "admin"), ("U", "User/nobody", 404, "admin"),
                    ("D", f"Case/{case_id}", 204, "admin")]
