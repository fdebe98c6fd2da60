"""The REST API (/api/v1) on SQLite and PostgreSQL: sign-in, stored cases with visits and
re-assessment, assess/plan/course of case JSON and FHIR, problem details, roles, the audit trail
as FHIR AuditEvents, cookie sessions with CSRF, no patient data in the logs, the replay cache
shared by two app instances, MRI jobs on de-identified real DICOM, and the settings."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import stat
import time
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

import hipdx
from hipdx.cli import app as cli_app
from hipdx.errors import InputError
from hipdx.service import IssuerList
from hipdx.service.settings import load_settings, secret_key
from hipdx.service.hooks import SERVICE_ID

from api_support import DATABASES, PASSWORD, Api, api, build_api, database, shared_api  # noqa: F401  (fixtures)
from conftest import EXAMPLES, ROOT, CliRunner, shared_data
from test_service import issuers_file, keys, request_for, token  # noqa: F401  (fixtures)

CASE = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
BUNDLE = json.loads((ROOT / "tests" / "data" / "fhir" / "toh_man_classic.bundle.json").read_text())
SERIES = "data/mri/pelvis-t1/series-01"  # in ../shared
LABEL = "Zebediah Quuxworth MRN-7731"  # a name no log line may ever hold


def _problem(answer: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body


def test_health_readiness_and_openapi(api: Api) -> None:
    assert api.client.get("/api/v1/health").json()["status"] == "ok"
    ready = api.client.get("/api/v1/ready")
    assert ready.status_code == 200 and ready.json()["database"] in ("sqlite", "postgresql")
    schema = api.client.get("/openapi.json").json()
    assert {"/api/v1/cases", "/api/v1/cases/{case_id}/visits", "/api/v1/mri/jobs", "/api/v1/assess"} <= set(schema["paths"])
    assert "Case" in schema["components"]["schemas"] and "Visit" in schema["components"]["schemas"]


def test_readiness_fails_on_a_database_without_the_schema(tmp_path: Path, kb: hipdx.KnowledgeBase) -> None:
    built = build_api(f"sqlite:///{tmp_path / 'a.db'}", kb, tmp_path, users=False)
    from hipdx.store import migrate

    migrate(built.engine, "base")
    _problem(built.client.get("/api/v1/ready"), 503)
    built.engine.dispose()


def test_patient_data_needs_a_signed_in_user(api: Api) -> None:
    for method, path in (("GET", "/api/v1/cases"), ("POST", "/api/v1/assess"), ("GET", "/api/v1/cases/1"),
                         ("POST", "/api/v1/mri/jobs"), ("GET", "/api/v1/audit/events")):
        answer = api.client.request(method, path, json=CASE)
        _problem(answer, 401)
        assert answer.headers["www-authenticate"] == "Bearer"
    _problem(api.client.get("/api/v1/cases", headers={"Authorization": "Bearer nonsense"}), 401)
    _problem(api.client.post("/api/v1/auth/token", json={"username": "clinician", "password": "wrong password!"}), 401)
    _problem(api.client.post("/api/v1/auth/token", json={"username": "nobody", "password": PASSWORD}), 401)
    headers = api.sign_in(fresh=True)  # through POST /api/v1/auth/token
    assert api.client.get("/api/v1/me", headers=headers).json() == {"username": "clinician", "role": "clinician",
                                                                    "via": "bearer"}
    assert api.client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    _problem(api.client.get("/api/v1/cases", headers=headers), 401)  # signed out: the token is dead


def test_stored_cases_with_visits_and_reassessment(api: Api, kb: hipdx.KnowledgeBase) -> None:
    headers = api.sign_in()
    case = copy.deepcopy(CASE)
    case.pop("assessed_on", None)
    created = api.client.post("/api/v1/cases", json={"label": LABEL, "case": case}, headers=headers)
    assert created.status_code == 201, created.text
    number = created.json()["id"]
    assert created.headers["location"] == f"/api/v1/cases/{number}"
    api.client.post("/api/v1/cases", json={"label": "another patient", "case": case}, headers=headers)
    found = api.client.get("/api/v1/cases", params={"q": "quuxworth"}, headers=headers).json()
    assert found["total"] == 1 and found["cases"][0]["id"] == number
    assert api.client.get("/api/v1/cases", params={"q": "%"}, headers=headers).json()["total"] == 0  # not a wildcard
    assert api.client.get("/api/v1/cases", headers=headers).json()["total"] == 2

    visit = {"days_since_onset": 30, "pain_0_10": 4}
    added = api.client.post(f"/api/v1/cases/{number}/visits", json=visit, headers=headers)
    assert added.status_code == 201, added.text
    stored = api.client.get(f"/api/v1/cases/{number}", headers=headers).json()
    assert stored["case"]["visits"][-1] == visit and stored["version"] == 2 and stored["visits_added"] == 1

    assessed = api.client.post(f"/api/v1/cases/{number}/assessments", headers=headers)
    assert assessed.status_code == 201, assessed.text
    assert assessed.json()["provenance"] == {"hipdx_version": hipdx.__version__, "knowledge_base_digest": kb.digest}
    [kept] = api.client.get(f"/api/v1/cases/{number}/assessments", headers=headers).json()["assessments"]
    assert kept["case_version"] == 2 and kept["assessment"]["differential"][0]["id"] == "toh"
    assert kept["provenance"]["knowledge_base_digest"] == kb.digest
    course = api.client.get(f"/api/v1/cases/{number}/course", headers=headers).json()
    assert len(course["course"]["points"]) == 1

    changed = api.client.put(f"/api/v1/cases/{number}", json={"label": "renamed", "case": case},
                             headers=headers | {"If-Match": f'"case-{number}-v2"'})
    assert changed.status_code == 200 and changed.json()["version"] == 3
    assert changed.json()["case"]["visits"][-1] == visit  # added visits stay
    assert api.client.delete(f"/api/v1/cases/{number}", headers=headers | {"If-Match": changed.headers["etag"]}).status_code == 204
    _problem(api.client.get(f"/api/v1/cases/{number}", headers=headers), 404, "path.case_id")


def test_assess_plan_and_course_of_json_and_fhir(api: Api) -> None:
    headers = api.sign_in()
    assessment = api.client.post("/api/v1/assess", json=CASE, headers=headers).json()
    assert assessment["differential"][0]["id"] == "toh" and assessment["provenance"]["knowledge_base_digest"]
    from_fhir = api.client.post("/api/v1/assess", json=BUNDLE, params={"today": "2026-11-20"}, headers=headers)
    assert from_fhir.status_code == 200, from_fhir.text
    assert from_fhir.json()["fhir_mapping"]["sources"] > 0
    plan = api.client.post("/api/v1/plan", json=CASE, headers=headers).json()
    assert plan["plan"]["sections"] and plan["headline"]["text"]
    course = api.client.post("/api/v1/course", json=CASE, headers=headers).json()
    assert "alerts" in course["course"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/api/v1/assess", '{"age_years": 45, "age_years": 46}', 400, "body.age_years"),
        ("POST", "/api/v1/assess", '{"age_years": "45"}', 400, "body.age_years"),
        ("POST", "/api/v1/assess", '{"labs": {"crp": {"value": 3, "unit": "furlongs"}}}', 400, None),
        ("POST", "/api/v1/assess", "{not json", 400, None),
        ("POST", "/api/v1/assess", "", 400, "body"),
        ("POST", "/api/v1/assess?today=yesterday", "{}", 400, "query.today"),
        ("POST", "/api/v1/assess?patient=a%20b", json.dumps(BUNDLE), 400, "query.patient"),
        ("POST", "/api/v1/assess", '{"resourceType": "Bundle", "entry": 3}', 400, None),
        ("POST", "/api/v1/cases", '{"label": "x"}', 400, "body.case"),
        ("POST", "/api/v1/cases", '{"label": "", "case": {}}', 400, "body.label"),
        ("POST", "/api/v1/cases", '{"label": "a\\u0000b", "case": {}}', 400, "body.label"),
        ("POST", "/api/v1/cases", '{"label": "x", "case": {"sex": "unicorn"}}', 400, "body.case.sex"),
        ("POST", "/api/v1/cases", '{"label": "x", "case": {}, "extra": 1}', 400, "body.extra"),
        ("POST", "/api/v1/cases", "[1, 2]", 400, "body"),
        ("GET", "/api/v1/cases?limit=0", None, 400, "query.limit"),
        ("GET", "/api/v1/cases?offset=-1", None, 400, "query.offset"),
        ("GET", "/api/v1/cases?q=%00", None, 400, "query.q"),
        ("GET", "/api/v1/cases/0", None, 400, "path.case_id"),
        ("GET", "/api/v1/cases/99999999999999", None, 400, "path.case_id"),
        ("GET", "/api/v1/cases/abc", None, 400, "path.case_id"),
        ("GET", "/api/v1/cases/12345", None, 404, "path.case_id"),
        ("POST", "/api/v1/cases/12345/visits", '{"pain_0_10": 3}', 404, "path.case_id"),
        ("GET", "/api/v1/mri/jobs/not-a-uuid", None, 400, "path.job_id"),
        ("GET", "/api/v1/mri/jobs/00000000-0000-0000-0000-000000000000", None, 404, "path.job_id"),
        ("POST", "/api/v1/mri/jobs", "{}", 415, "header.content-type"),
        ("GET", "/api/v1/nowhere", None, 404, None),
    ],
)
def test_malformed_input_is_a_problem_naming_the_field(
    shared_api: tuple[Api, dict[str, str]], method: str, path: str, body: str | None, status: int, field: str | None
) -> None:
    api, signed_in = shared_api
    headers = signed_in | {"Content-Type": "application/json"}
    _problem(api.client.request(method, path, content=body, headers=headers), status, field)


def test_a_visit_against_the_timeline_is_refused(api: Api) -> None:
    headers = api.sign_in()
    number = api.client.post("/api/v1/cases", json={"label": "x", "case": CASE}, headers=headers).json()["id"]
    body = _problem(api.client.post(f"/api/v1/cases/{number}/visits", json={"days_since_onset": 4000},
                                    headers=headers), 400)
    assert [e["field"] for e in body["errors"]] == ["body.days_since_onset"]  # the visit sent is the body
    _problem(api.client.post(f"/api/v1/cases/{number}/visits", json={"pain_0_10": 11}, headers=headers), 400)


def test_roles_and_the_audit_trail_as_fhir_auditevents(api: Api, tmp_path: Path) -> None:
    clinician, admin = api.sign_in("clinician"), api.sign_in("admin")
    number = api.client.post("/api/v1/cases", json={"label": LABEL, "case": CASE}, headers=clinician).json()["id"]
    api.client.get(f"/api/v1/cases/{number}", headers=clinician | {"X-Forwarded-For": "10.1.2.3"})
    api.client.post("/api/v1/assess", json=CASE, headers=clinician)
    api.client.post(f"/cds-services/{SERVICE_ID}", json=request_for("toh_man_classic"))
    _problem(api.client.get("/api/v1/audit/events", headers=clinician), 403)
    _problem(api.client.post("/api/v1/users", json={"username": "x", "password": PASSWORD, "role": "admin"},
                             headers=clinician), 403)
    assert api.client.post("/api/v1/users", json={"username": "nurse", "password": PASSWORD, "role": "clinician"},
                           headers=admin).status_code == 201
    _problem(api.client.post("/api/v1/users", json={"username": "nurse", "password": PASSWORD, "role": "clinician"},
                             headers=admin), 409, "body.username")

    answer = api.client.get("/api/v1/audit/events", headers=admin)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/fhir+json")
    events = [entry["resource"] for entry in answer.json()["entry"]]
    for event in events:
        AuditEvent.model_validate(event)  # R4B, as the project validates all the FHIR it writes
    by_what = {(e["action"], e["entity"][0]["what"].get("display")): e for e in events if e["id"].startswith("access")}
    created, read = by_what[("C", f"Case/{number}")], by_what[("R", f"Case/{number}")]
    assert created["agent"][0]["who"]["display"] == "clinician" and created["outcome"] == "0"
    assert read["agent"][0]["network"]["address"] == "10.1.2.3"
    assert ("E", "assessment") in by_what
    [cds] = [e for e in events if e["id"].startswith("cds")]
    assert cds["entity"][0]["what"]["reference"].startswith("Patient/")
    assert LABEL not in json.dumps(events)  # the trail says which case, not who the patient is

    out = tmp_path / "audit.json"
    url = str(api.engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(cli_app, ["db", "audit-export", "--out", str(out), "--database-url", url],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    exported = json.loads(out.read_text())
    Bundle.model_validate(exported)  # written an entry at a time: still one valid FHIR Bundle
    exported_ids = [e["resource"]["id"] for e in exported["entry"]]
    assert exported_ids[:-1] == [e["id"] for e in events]  # the same trail, same order
    assert f"wrote {len(events) + 1} AuditEvents" in result.output
    # then the admin's read of the trail above, recorded as it happened: who, from where, which period
    reading = exported["entry"][-1]["resource"]
    assert reading["action"] == "R" and reading["agent"][0]["who"]["display"] == "admin"
    assert reading["entity"][0]["what"]["display"] == f"AuditEvent: first event to now, {len(events)} events"
    assert reading["outcomeDesc"] == "GET /api/v1/audit/events -> 200" and reading["agent"][0]["network"]["address"]


def test_session_cookie_needs_the_csrf_token(api: Api) -> None:
    api.context.session_cookie_secure = False  # the test client speaks plain HTTP
    answer = api.client.post("/api/v1/auth/session", json={"username": "clinician", "password": PASSWORD})
    assert answer.status_code == 200
    csrf = answer.json()["csrf_token"]
    assert "httponly" in answer.headers["set-cookie"].lower() and "samesite=strict" in answer.headers["set-cookie"].lower()
    assert api.client.get("/api/v1/cases").status_code == 200  # a safe request needs the cookie only
    _problem(api.client.post("/api/v1/cases", json={"label": "x", "case": CASE}), 403)
    _problem(api.client.post("/api/v1/cases", json={"label": "x", "case": CASE}, headers={"X-CSRF-Token": "0" * 64}), 403)
    assert api.client.post("/api/v1/cases", json={"label": "x", "case": CASE},
                           headers={"X-CSRF-Token": csrf}).status_code == 201


def test_no_patient_data_and_no_token_in_the_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answer = api.client.post("/api/v1/auth/token", json={"username": "clinician", "password": PASSWORD})
    secret = answer.json()["access_token"]
    headers = {"Authorization": f"Bearer {secret}"}
    case = copy.deepcopy(CASE) | {"id": "Quuxworth-case"}
    number = api.client.post("/api/v1/cases", json={"label": LABEL, "case": case}, headers=headers).json()["id"]
    api.client.get("/api/v1/cases", params={"q": "Quuxworth"}, headers=headers)
    api.client.post(f"/api/v1/cases/{number}/assessments", headers=headers)
    api.client.post("/api/v1/assess", json=case | {"sex": "Quuxworth"}, headers=headers)  # refused: quotes the value
    api.client.post(f"/cds-services/{SERVICE_ID}", json=request_for("toh_man_classic"))
    # the server's records: not the test client's own request lines (httpx2, "http://testserver/...")
    server = [r for r in caplog.records if not (r.name.startswith("httpx") and "http://testserver" in r.getMessage())]
    assert server  # something was logged at all
    text = "".join(f"{r.getMessage()} {r.args} {r.exc_text or ''}" for r in server)
    for forbidden in ("Quuxworth", secret, PASSWORD, BUNDLE["entry"][0]["resource"].get("birthDate", "@@")):
        assert forbidden not in text


@pytest.mark.parametrize("kind", DATABASES)  # PostgreSQL (slow: it migrates each time) in `make test`
def test_the_replay_cache_is_shared_by_two_app_instances(
    tmp_path: Path, kb: hipdx.KnowledgeBase, keys: dict[str, Any], issuers_file: Path, kind: str
) -> None:
    from hipdx.store.replay import DatabaseReplayCache

    for url in database(kind, tmp_path / kind):
        (tmp_path / kind).mkdir(exist_ok=True)
        instances = []
        for n in range(2):
            issuers = IssuerList.from_file(issuers_file)
            built = build_api(url, kb, tmp_path / kind, users=n == 0, issuers=issuers, insecure_no_auth=False)
            issuers.replay = DatabaseReplayCache(built.engine)
            instances.append(built)
        url_called = f"http://testserver/cds-services/{SERVICE_ID}"
        jwt = token(keys, aud=url_called)
        body = request_for("toh_man_classic")
        first = instances[0].client.post(url_called, json=body, headers={"Authorization": f"Bearer {jwt}"})
        again = instances[1].client.post(url_called, json=body, headers={"Authorization": f"Bearer {jwt}"})
        assert (first.status_code, again.status_code) == (200, 401)
        fresh = token(keys, aud=url_called)
        assert instances[1].client.post(url_called, json=body,
                                        headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
        for built in instances:
            built.engine.dispose()


def _wait(api: Api, url: str, headers: dict[str, str], seconds: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = api.client.get(url, headers=headers).json()
        assert 0 <= job["progress"] <= 1
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"the job did not end in {seconds} s: {job}")


@pytest.mark.real_data
@pytest.mark.slow  # analyses a real MRI series
def test_mri_job_on_real_dicom_is_deidentified_and_analysed(tmp_path: Path, kb: hipdx.KnowledgeBase) -> None:
    built = build_api(f"sqlite:///{tmp_path / 'mri.db'}", kb, tmp_path)
    headers = built.sign_in()
    files = sorted(shared_data(SERIES).iterdir())
    original = pydicom.dcmread(files[0], stop_before_pixels=True)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        for path in files:
            handle.write(path, f"study/{path.name}")
        handle.writestr("study/notes.txt", "not DICOM")
    hostile = io.BytesIO()
    with zipfile.ZipFile(hostile, "w") as handle:
        handle.write(files[0], f"../../evil/{files[0].name}")
    refused = built.client.post("/api/v1/mri/jobs", content=hostile.getvalue(),
                                headers=headers | {"Content-Type": "application/zip"})
    assert refused.status_code == 422 and "outside its folder" in refused.json()["detail"], refused.text
    answer = built.client.post("/api/v1/mri/jobs", content=archive.getvalue(),
                               headers=headers | {"Content-Type": "application/zip"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["files"] == len(files) and len(answer.json()["left_out"]) == 1
    job = _wait(built, answer.headers["location"], headers)
    assert job["state"] == "done", job
    assert job["result"]["sides"]["right"]["femoral_head"] is not None

    stored = sorted((tmp_path / "uploads" / job["id"]).iterdir())
    assert len(stored) == len(files) and not (tmp_path / "evil").exists()
    for path in stored[:5]:
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.get("PatientName", "")) in ("", "ANONYMIZED") and ds.get("PatientID") != original.PatientID
        assert ds.StudyInstanceUID != original.StudyInstanceUID and ds.StudyDate != original.StudyDate
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113105"]
        assert not any(element.tag.is_private for element in ds)
    assert len({pydicom.dcmread(p, stop_before_pixels=True).FrameOfReferenceUID for p in stored}) == 1

    multipart = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in files[:2]]
    second = built.client.post("/api/v1/mri/jobs", files=multipart + [("files", ("x.txt", b"hello", "text/plain"))],
                               headers=headers)
    assert second.status_code == 202 and second.json()["files"] == 2
    assert _wait(built, second.headers["location"], headers)["state"] in ("done", "failed")
    _problem(built.client.post("/api/v1/mri/jobs", files=[("files", ("x.txt", b"hello", "text/plain"))],
                               headers=headers), 400)
    _problem(built.client.post("/api/v1/mri/jobs", content=b"PK\x03\x04broken",
                               headers=headers | {"Content-Type": "application/zip"}), 422, "body")
    built.context.jobs.shutdown(wait=True)
    built.engine.dispose()


def test_settings_secure_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIPDX_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    assert settings.database_url is None and settings.effective_database_url().startswith("sqlite:///")
    assert settings.cors_origins == [] and settings.session_cookie_secure and not settings.insecure_no_auth
    key = secret_key(settings)
    path = tmp_path / "data" / "secret.key"
    assert len(key) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key(settings) == key  # kept, not regenerated
    path.chmod(0o644)
    with pytest.raises(InputError, match="readable or writable by others"):
        secret_key(settings)
    config = tmp_path / "hipdx.toml"
    config.write_text('cors_origins = ["https://ehr.example.org"]\ntoken_lifetime_minutes = 60\n')
    monkeypatch.setenv("HIPDX_CONFIG", str(config))
    monkeypatch.setenv("HIPDX_TOKEN_LIFETIME_MINUTES", "30")
    settings = load_settings()
    assert settings.cors_origins == ["https://ehr.example.org"] and settings.token_lifetime_minutes == 30
    config.write_text("no_such_setting = 1\n")
    with pytest.raises(InputError, match="configuration"):
        load_settings()
    monkeypatch.setenv("HIPDX_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(InputError, match="not found"):
        load_settings()
    os.environ.pop("HIPDX_CONFIG", None)


def test_user_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    runner = CliRunner()
    refused = runner.invoke(cli_app, ["db", "user-add", "dr.lee", "--password-stdin", "--database-url", url],
                            input=PASSWORD + "\n", catch_exceptions=False)
    assert refused.exit_code == 2 and "hipdx db upgrade" in refused.output  # a database by URL is upgraded first
    assert runner.invoke(cli_app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    added = runner.invoke(cli_app, ["db", "user-add", "dr.lee", "--role", "admin", "--password-stdin",
                                    "--database-url", url], input=PASSWORD + "\n", catch_exceptions=False)
    assert added.exit_code == 0 and "dr.lee (admin) added" in added.output, added.output
    again = runner.invoke(cli_app, ["db", "user-add", "dr.lee", "--password-stdin", "--database-url", url],
                          input=PASSWORD + "\n", catch_exceptions=False)
    assert again.exit_code == 2 and "exists already" in again.output
    short = runner.invoke(cli_app, ["db", "user-add", "x", "--password-stdin", "--database-url", url],
                          input="short\n", catch_exceptions=False)
    assert short.exit_code == 2 and "at least 12" in short.output
    demo = runner.invoke(cli_app, ["db", "demo-user", "--database-url", url], catch_exceptions=False)
    assert demo.exit_code == 0 and "password: " in demo.output
    from hipdx.store import connect
    from hipdx.store.users import list_users

    engine = connect(url)
    assert list_users(engine) == [("demo", "clinician", True), ("dr.lee", "admin", True)]
    engine.dispose()


def test_rest_reads_a_calcineurin_inhibitor_from_fhir_and_from_the_case_json(api: Api) -> None:
    # The case's calcineurin_inhibitor_use (it blocks NSAIDs) comes through the REST door from a
    # tacrolimus MedicationRequest (with its source) and from the case JSON.
    headers = api.sign_in()
    tacrolimus = {"resourceType": "MedicationRequest", "id": "tac", "status": "active", "intent": "order",
                  "subject": {"reference": "Patient/p"}, "authoredOn": "2025-06-01",
                  "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "42316"}]},
                  "dosageInstruction": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]}}]}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1974-03-02"}}, {"resource": tacrolimus}]}
    got = api.client.post("/api/v1/assess", json=bundle, params={"today": "2026-12-08"}, headers=headers)
    assert got.status_code == 200, got.text
    assert "calcineurin_inhibitor_use" not in {r["fact"] for r in got.json()["plan"]["needs_information"]}
    case = copy.deepcopy(CASE)
    case.setdefault("comorbidities", {})["calcineurin_inhibitor_use"] = "present"
    got = api.client.post("/api/v1/assess", json=case, headers=headers)
    assert got.status_code == 200, got.text
    assert "calcineurin_inhibitor_use" not in {r["fact"] for r in got.json()["plan"]["needs_information"]}
