"""Every change through the web pages (a case saved, a visit added, corrected or deleted, MRI findings
confirmed into a case, an MRI study uploaded) is written in one transaction with its access record,
as through the REST API: a database that refuses the record (a real trigger, as a full disk or a
revoked INSERT would) leaves nothing of the change, and the clinician reads a 503 page saying so in
words, never a 500, a stack trace or the driver's text. A page that shows patient data is not shown
when its read cannot be recorded (fail-closed, as the API). Before, the change was committed first
and stayed unrecorded, the failure only logged, and the page was shown."""

from __future__ import annotations

import json
import logging
import re
from html import unescape
from typing import Any

import pytest
from sqlalchemy import select, text as sql
from sqlalchemy.orm import Session

from hipdx.store import records
from hipdx.store.tables import AccessEvent, MriJob, StoredCase, StoredVisit

from api_support import DATABASES, Api
from conftest import EXAMPLES, Phantoms
from test_audit_atomic import REFUSAL, SMALL, _count, _refuse_access_records
from test_web_pages import text
from web_support import api, example, sign_in  # noqa: F401  (api: the fixture)

VISIT = {"visit.days_since_onset": "15", "visit.pain_0_10": "4"}


pytestmark = pytest.mark.parametrize("api", DATABASES, indirect=True)  # SQLite, and PostgreSQL (slow)


def _refused(answer: Any, fragment: bool = False) -> None:
    """503 in the clinician's words (the site's message page, or its htmx fragment), nothing of the driver."""
    assert answer.status_code == 503, answer.text[-2000:]
    assert answer.headers["content-type"].startswith("text/html") and answer.headers["retry-after"] == "5"
    words = text(answer.text)
    assert "The access log could not record this, so it was not done: nothing was saved or shown." in words
    assert ('<p class="error" role="alert">' in answer.text) == fragment
    assert ("<html" in answer.text) != fragment
    for driver in (REFUSAL, "INSERT", "access_event", "Error", "Traceback"):
        assert driver not in answer.text


def _stored_case(api: Api, name: str = "toh_pregnancy_34_weeks", visits: int = 0) -> str:
    document = json.loads((EXAMPLES / f"{name}.json").read_text())
    case_id = records.create_case(api.engine, name, document, "seed").id
    for day in range(visits):
        records.add_visit(api.engine, case_id, {"days_since_onset": 10 + day, "pain_0_10": 5}, "seed")
    return str(case_id)


def _cases(api: Api) -> list[tuple[str, int, int]]:
    with Session(api.engine) as session:
        return [(c.label, c.version, len(json.dumps(c.document))) for c in session.scalars(select(StoredCase).order_by(StoredCase.id))]


def _events(api: Api) -> list[tuple[str, str, int]]:
    with Session(api.engine) as session:
        return [(e.action, e.what, e.status_code) for e in session.scalars(select(AccessEvent).order_by(AccessEvent.id))]


def test_a_case_or_visit_saved_on_a_page_whose_access_record_is_refused_is_not_saved(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    token = sign_in(api)
    case_id = _stored_case(api, visits=2)
    before, visits, events = _cases(api), _count(api.engine, StoredVisit), _count(api.engine, AccessEvent)
    _refuse_access_records(api.engine)
    client, data = api.client, example("toh_man_classic") | {"csrf_token": token}
    with caplog.at_level(logging.DEBUG):
        _refused(client.post("/cases/save", data=data, follow_redirects=False))  # a new case
        _refused(client.post("/cases/save", data=data | {"case_key": case_id, "case_version": str(before[0][1])}, follow_redirects=False))  # a change
        _refused(client.post(f"/cases/{case_id}/visits", data=VISIT | {"csrf_token": token}, follow_redirects=False))
        version = {"csrf_token": token, "version": str(before[0][1])}
        _refused(client.post(f"/cases/{case_id}/visits/2", data=VISIT | version, follow_redirects=False))
        _refused(client.post(f"/cases/{case_id}/visits/1/delete", data=version, follow_redirects=False))
    assert _cases(api) == before and _count(api.engine, StoredVisit) == visits == 2
    assert records.get_case(api.engine, int(case_id)).visits == [{"days_since_onset": 10, "pain_0_10": 5},
                                                                  {"days_since_onset": 11, "pain_0_10": 5}]
    assert _count(api.engine, AccessEvent) == events
    assert REFUSAL not in caplog.text  # the log names the driver error's class and frames, never its words


def test_the_page_of_a_refused_save_sends_the_form_again(api: Api) -> None:
    """The 503 page keeps what the clinician entered: once the database records again, its Try again saves the case."""
    token = sign_in(api)
    data = example("toh_man_classic") | {"csrf_token": token}
    _refuse_access_records(api.engine)
    answer = api.client.post("/cases/save", data=data, follow_redirects=False)
    _refused(answer)
    kept = [(unescape(n), unescape(v)) for n, v in
            re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', answer.text.split("<main", 1)[1])]
    assert kept == list(data.items()) and '<form method="post" action="/cases/save">' in answer.text
    with Session(api.engine) as session:  # the trigger gone: the database records again
        session.execute(sql("DROP TRIGGER refuse_audit" + (" ON access_event" if api.engine.dialect.name == "postgresql" else "")))
        session.commit()
    again = api.client.post("/cases/save", data=dict(kept), follow_redirects=False)  # the browser sends the kept form
    assert again.status_code == 303
    assert _cases(api) == [("toh_man_classic", 1, _cases(api)[0][2])] and _events(api)[-1][0] == "C"


def test_a_page_whose_read_cannot_be_recorded_is_not_shown(api: Api) -> None:
    """Fail-closed, as the REST API: no patient data on a page without its access record."""
    sign_in(api)
    case_id = _stored_case(api, visits=1)
    _refuse_access_records(api.engine)
    for path in ("/", f"/cases/{case_id}", f"/cases/{case_id}/assessment", f"/cases/{case_id}/visits/1"):
        answer = api.client.get(path)
        _refused(answer)
        assert "toh_pregnancy" not in answer.text, path
    fragment = api.client.get(f"/cases/{case_id}", headers={"HX-Request": "true"})  # htmx: the site's error fragment
    _refused(fragment, fragment=True)
    assert "toh_pregnancy" not in fragment.text


def test_the_pages_record_their_changes_as_before(api: Api) -> None:
    """The web's own object names ("case 12", "case 12 visit 2"), now written with the change; the API's stay "Case/12"."""
    token = sign_in(api)
    client = api.client
    saved = client.post("/cases/save", data=example("toh_man_classic") | {"csrf_token": token}, follow_redirects=False)
    case_id = saved.headers["location"].rsplit("/", 1)[1]
    assert client.post("/cases/save", data=example("toh_man_classic") | {"csrf_token": token, "case_key": case_id,
                                                                   "case_version": "1"},
                       follow_redirects=False).status_code == 303
    assert client.post(f"/cases/{case_id}/visits", data=VISIT | {"csrf_token": token}, follow_redirects=False).status_code == 303
    version = {"csrf_token": token, "version": str(records.get_case(api.engine, int(case_id)).version)}
    assert client.post(f"/cases/{case_id}/visits/1", data=VISIT | version, follow_redirects=False).status_code == 303
    version["version"] = str(int(version["version"]) + 1)
    assert client.post(f"/cases/{case_id}/visits/1/delete", data=version, follow_redirects=False).status_code == 303
    document = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
    created = client.post("/api/v1/cases", json={"label": "by the API", "case": document}, headers=api.sign_in())
    assert created.status_code == 201
    assert _events(api) == [("C", f"case {case_id}", 303), ("U", f"case {case_id}", 303), ("U", f"case {case_id} visit", 303),
                            ("U", f"case {case_id} visit 1", 303), ("D", f"case {case_id} visit 1", 303),
                            ("C", f"Case/{created.json()['id']}", 201)]


def _upload(api: Api, case_id: str, token: str, phantoms: Phantoms) -> Any:
    files = [("files", (path.name, path.read_bytes(), "application/dicom"))
             for path in sorted(phantoms.folder(SMALL).rglob("*")) if path.is_file()]
    return api.client.post(f"/cases/{case_id}/mri", data={"csrf_token": token}, files=files, follow_redirects=False)


def test_an_mri_upload_on_a_page_whose_access_record_is_refused_queues_no_job(api: Api, phantoms: Phantoms) -> None:
    token = sign_in(api)
    case_id = _stored_case(api)
    _refuse_access_records(api.engine)
    _refused(_upload(api, case_id, token, phantoms))
    assert _count(api.engine, MriJob) == 0
    assert not any(api.context.upload_dir.glob("*/*"))  # the de-identified copies went with the job


def test_an_mri_upload_on_a_page_is_recorded_as_before(api: Api, phantoms: Phantoms) -> None:
    token = sign_in(api)
    case_id = _stored_case(api)
    answer = _upload(api, case_id, token, phantoms)
    assert answer.status_code == 303, answer.text
    job_id = answer.headers["location"].rsplit("/", 1)[1]
    assert _events(api) == [("C", f"case {case_id} MRI {job_id}", 303)]
    assert records.get_job(api.engine, job_id)["case_id"] == str(case_id)  # tied in the job's own transaction


def _done_job(api: Api, case_id: str, phantoms: Phantoms) -> str:
    """A finished analysis of the case (the phantom of 20 mL of edema of the right hip), as the job runner leaves it."""
    _, analysis = phantoms.analysed(dict(seed=3, side="right", edema_ml=20.0, slices=24, rows=192, cols=192, pixel_mm=1.6))
    job_id = "0b8e0f64-6a1e-4a8e-9a52-3c1f2f0d9a11"
    records.create_job(api.engine, job_id, 48, "clinician", case_id=int(case_id))
    records.update_job(api.engine, job_id, state="done", stage="done", progress=1.0, result=analysis.model_dump(mode="json"))
    return job_id


@pytest.mark.slow  # a phantom analysed
def test_mri_findings_confirmed_on_a_page_whose_access_record_is_refused_are_not_added(api: Api, phantoms: Phantoms) -> None:
    token = sign_in(api)
    case_id = _stored_case(api)
    job_id = _done_job(api, case_id, phantoms)
    before = _cases(api)
    _refuse_access_records(api.engine)
    _refused(api.client.post(f"/cases/{case_id}/mri/{job_id}/confirm", data={"csrf_token": token, "days_since_onset": "20"}))
    assert _cases(api) == before and records.get_job(api.engine, job_id)["added_findings"] is None
    with Session(api.engine) as session:  # the trigger gone, the same confirmation is written with its record
        session.execute(sql("DROP TRIGGER refuse_audit" + (" ON access_event" if api.engine.dialect.name == "postgresql" else "")))
        session.commit()
    added = api.client.post(f"/cases/{case_id}/mri/{job_id}/confirm", data={"csrf_token": token, "days_since_onset": "20"})
    assert added.status_code == 200 and "MRI findings added" in text(added.text)
    assert _events(api)[-1] == ("U", f"case {case_id} MRI {job_id} findings", 200)
