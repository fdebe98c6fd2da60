"""The CDS Hooks 2.0 service: discovery, patient-view cards, prefetch rules, JWT checking, errors.

Requests follow the spec's examples (https://cds-hooks.hl7.org/2.0/) and the request shape the
CDS Hooks sandbox sends. A FHIR server the service fetches from is a real HTTP server on
loopback, started by the test.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from sqlalchemy import text

import hipdx
from hipdx.errors import InputError
from hipdx.service import IssuerList, ServiceConfig, create_app
from hipdx.service.cards import SUMMARY_LIMIT, summary_text
from hipdx.service.hooks import PREFETCH, SERVICE_ID
from hipdx.store import AuditStore, connect, migrate
from hipdx.store.replay import DatabaseReplayCache

from conftest import LoopbackHTTPServer, ROOT, TODAY, send_json

BUNDLES = ROOT / "tests" / "data" / "fhir"
BASE = "http://testserver"
URL = f"{BASE}/cds-services/{SERVICE_ID}"
ISS = "https://ehr.example.org"

#: the spec's example request (CDS Hooks 2.0, "Calling a CDS Service"), prefetching its own key only
SPEC_REQUEST: dict[str, Any] = {
    "hookInstance": "23f1a303-991f-4118-86c5-11d99a39222e",
    "fhirServer": "https://fhir.example.org",
    "hook": "patient-view",
    "fhirAuthorization": {
        "access_token": "some-opaque-fhir-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read user/Observation.read",
        "subject": "cds-service4",
    },
    "context": {"userId": "Practitioner/example", "patientId": "1288992", "encounterId": "89284"},
    "prefetch": {
        "patientToGreet": {
            "resourceType": "Patient",
            "gender": "male",
            "birthDate": "1925-12-23",
            "id": "1288992",
            "active": True,
        }
    },
}


def server_shaped(name: str) -> tuple[str, list[dict[str, Any]]]:
    """The bundle's resources as a FHIR server holds them: references as Type/id."""
    raw = json.loads((BUNDLES / f"{name}.bundle.json").read_text())
    by_url = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in raw["entry"]}
    text = json.dumps([e["resource"] for e in raw["entry"]])
    for url, ref in by_url.items():
        text = text.replace(f'"{url}"', f'"{ref}"')
    resources = json.loads(text)
    return resources[0]["id"], resources


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def prefetch_of(resources: list[dict[str, Any]]) -> dict[str, Any]:
    types = {
        "conditions": "Condition",
        "observations": "Observation",
        "medicationStatements": "MedicationStatement",
        "medicationRequests": "MedicationRequest",
        "allergies": "AllergyIntolerance",
        "imagingReports": "DiagnosticReport",
        "imagingStudies": "ImagingStudy",
    }
    out: dict[str, Any] = {"patient": next(r for r in resources if r["resourceType"] == "Patient")}
    for key, rtype in types.items():
        found = [r for r in resources if r["resourceType"] == rtype]
        out[key] = searchset(found) if found else None
    return out


def request_for(name: str, **more: Any) -> dict[str, Any]:
    patient, resources = server_shaped(name)
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "context": {"patientId": patient, "userId": "Practitioner/COREPRACTITIONER1"},
        "prefetch": prefetch_of(resources),
        **more,
    }


# -- keys and tokens ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    es = ec.generate_private_key(ec.SECP384R1())
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    es_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(es.public_key()))
    rs_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rs.public_key()))
    return {
        "es": es,
        "rs": rs,
        "jwks": {"keys": [{**es_jwk, "kid": "es-1", "alg": "ES384"}, {**rs_jwk, "kid": "rs-1", "alg": "RS384"}]},
    }


def token(
    keys: dict[str, Any],
    *,
    alg: str = "ES384",
    kid: str = "es-1",
    aud: str | list[Any] = URL,
    drop: str | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4()), **claims}
    if drop:
        del payload[drop]
    key = keys["es"] if alg == "ES384" else keys["rs"]
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


@pytest.fixture(scope="module")
def issuers_file(keys: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("issuers")
    (folder / "ehr-jwks.json").write_text(json.dumps(keys["jwks"]))
    path = folder / "issuers.json"
    path.write_text(json.dumps({"issuers": [{"iss": ISS, "jwks_file": "ehr-jwks.json"}]}))
    return path


@pytest.fixture
def secured(issuers_file: Path, kb: hipdx.KnowledgeBase) -> TestClient:
    config = ServiceConfig(issuers=IssuerList.from_file(issuers_file), today=lambda: TODAY)
    return TestClient(create_app(config, kb), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def open_client(kb: hipdx.KnowledgeBase) -> TestClient:
    config = ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY)
    return TestClient(create_app(config, kb), raise_server_exceptions=False)


# -- discovery -------------------------------------------------------------------------------------------


def test_discovery(open_client: TestClient) -> None:
    response = open_client.get("/cds-services")
    assert response.status_code == 200
    service, select, sign = response.json()["services"]
    assert (select["hook"], select["id"], sign["hook"], sign["id"]) == (
        "order-select", "hipdx-order-select", "order-sign", "hipdx-order-sign")
    assert select["prefetch"] == sign["prefetch"] == PREFETCH
    assert service["hook"] == "patient-view" and service["id"] == SERVICE_ID
    assert service["description"] and service["title"]
    assert service["prefetch"] == PREFETCH
    patient_keys = {k: t for k, t in service["prefetch"].items() if k != "encounter"}
    assert all("{{context.patientId}}" in template for template in patient_keys.values())
    assert service["prefetch"]["encounter"] == "Encounter/{{context.encounterId}}"  # the setting (docs/fhir.md)


# -- cards ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "indicator"),
    [
        ("toh_man_classic", "info"),
        ("septic_febrile_crp_mg_dl", "critical"),
        ("fnsf_runner_fracture_line", "critical"),
        ("onfh_steroids_double_line", "warning"),
        ("toh_pregnancy_34_weeks", None),
    ],
)
def test_one_card_from_the_headline(
    name: str, indicator: str | None, open_client: TestClient, kb: hipdx.KnowledgeBase
) -> None:
    response = open_client.post(f"/cds-services/{SERVICE_ID}", json=request_for(name))
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    example = hipdx.parse_case((ROOT / "examples" / f"{name}.json").read_bytes())
    assessment = hipdx.assess(example, kb, TODAY)
    assert card["summary"] == summary_text(assessment.headline.text) and len(card["summary"]) < SUMMARY_LIMIT
    assert card["indicator"] in ("info", "warning", "critical")
    if indicator:
        assert card["indicator"] == indicator
    urgent = any(f.urgency in ("emergency", "urgent") for f in assessment.red_flags)
    assert (card["indicator"] == "critical") == urgent
    assert card["source"]["label"].startswith(f"hipdx {hipdx.__version__}")
    assert "| Differential | Probability | Range |" in card["detail"]
    assert assessment.differential[0].name in card["detail"]
    for key in ("suggestions", "selectionBehavior", "links", "overrideReasons"):
        assert key not in card or card[key]  # no empty or null optional fields
    assert uuid.UUID(card["uuid"])


def test_all_bundles_give_a_valid_card(open_client: TestClient) -> None:
    for path in sorted(BUNDLES.glob("*.bundle.json")):
        name = path.name.removesuffix(".bundle.json")
        response = open_client.post(f"/cds-services/{SERVICE_ID}", json=request_for(name))
        assert response.status_code == 200, (name, response.text)
        [card] = response.json()["cards"]
        assert {"uuid", "summary", "indicator", "detail", "source"} <= set(card)
        assert set(card) <= {"uuid", "summary", "indicator", "detail", "source", "suggestions", "selectionBehavior", "overrideReasons", "links"}
        assert ("suggestions" in card) == ("selectionBehavior" in card)
        assert 0 < len(card["summary"]) < 140 and "\n" not in card["summary"]


def test_no_card_without_hip_pain_or_marrow_edema(open_client: TestClient) -> None:
    body = request_for("toh_man_classic")
    patient = body["prefetch"]["patient"]
    body["prefetch"] = {key: None for key in PREFETCH} | {"patient": patient}
    assert open_client.post(f"/cds-services/{SERVICE_ID}", json=body).json() == {"cards": []}
    conditions = body["prefetch"]["conditions"] = searchset(
        [
            {
                "resourceType": "Condition",
                "id": "c",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "64859006"}]},
                "clinicalStatus": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
                },
                "subject": {"reference": f"Patient/{patient['id']}"},
            }
        ]
    )
    assert conditions and open_client.post(f"/cds-services/{SERVICE_ID}", json=body).json() == {"cards": []}


def test_marrow_edema_alone_is_enough_for_a_card(open_client: TestClient) -> None:
    body = request_for("rmo_migratory")
    complaint = [
        e
        for e in body["prefetch"]["conditions"]["entry"]
        if e["resource"]["code"]["coding"][0]["code"].startswith("M25.55")
    ]
    for entry in complaint:
        body["prefetch"]["conditions"]["entry"].remove(entry)
    [card] = open_client.post(f"/cds-services/{SERVICE_ID}", json=body).json()["cards"]
    assert card["summary"]


def test_summary_is_cut_at_a_word() -> None:
    long = "URGENT: " + "word " * 60
    short = summary_text(long)
    assert len(short) < 140 and short.endswith("…") and " wor…" not in short


# -- prefetch ---------------------------------------------------------------------------------------------------


def test_spec_example_without_our_prefetch_is_412(open_client: TestClient) -> None:
    response = open_client.post(f"/cds-services/{SERVICE_ID}", json=SPEC_REQUEST)
    assert response.status_code == 412
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert {"prefetch.conditions", "prefetch.patient"} <= {e for i in outcome["issue"] for e in i.get("expression", [])}
    assert "not one this service may call" in outcome["issue"][0]["diagnostics"]


def test_missing_prefetch_without_fhir_server_is_412(open_client: TestClient) -> None:
    body = request_for("toh_man_classic")
    del body["prefetch"]["observations"]
    response = open_client.post(f"/cds-services/{SERVICE_ID}", json=body)
    assert response.status_code == 412
    assert "prefetch missing: observations; and no fhirServer" in response.json()["issue"][0]["diagnostics"]
    body["prefetch"]["observations"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception"}],
    }
    assert open_client.post(f"/cds-services/{SERVICE_ID}", json=body).status_code == 412


class _FhirServer(BaseHTTPRequestHandler):
    resources: list[dict[str, Any]] = []
    seen_tokens: list[str] = []
    delay_s = 0.0  # a slow server
    pages = 1  # a search answered in this many pages (the first holds the resources; each links the next)
    raw: bytes | None = None  # an answer of its own to every search (bytes as sent)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen_tokens.append(self.headers.get("Authorization", ""))
        time.sleep(self.delay_s)
        parts = urlsplit(self.path)
        rtype, _, rid = parts.path.strip("/").partition("/")
        if rid:
            found = [r for r in self.resources if r["resourceType"] == rtype and r["id"] == rid]
            status, body = (200, found[0]) if found else (404, {"resourceType": "OperationOutcome"})
        else:
            patient = parse_qs(parts.query).get("patient", [""])[0]
            found = [
                r
                for r in self.resources
                if r["resourceType"] == rtype
                and r.get("subject", r.get("patient", {})).get("reference") == f"Patient/{patient}"
            ]
            page = int(parse_qs(parts.query).get("page", ["1"])[0])
            status, body = 200, searchset(found if page == 1 else [])
            if page < self.pages:
                host, port = self.server.server_address[:2]
                body["link"] = [{"relation": "next", "url": f"http://{host}:{port}/{rtype}?patient={patient}&page={page + 1}"}]
        send_json(self, status, self.raw if self.raw is not None and not rid else json.dumps(body).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fhir_server() -> Iterator[str]:
    _, _FhirServer.resources = server_shaped("septic_febrile_crp_mg_dl")
    _FhirServer.seen_tokens, _FhirServer.delay_s, _FhirServer.pages, _FhirServer.raw = [], 0.0, 1, None
    with LoopbackHTTPServer.serving(_FhirServer) as url:
        yield url


def test_missing_prefetch_is_fetched_from_an_allowed_fhir_server(fhir_server: str, kb: hipdx.KnowledgeBase) -> None:
    client = TestClient(
        create_app(
            ServiceConfig(issuers=None, insecure_no_auth=True, fhir_servers=(fhir_server,), today=lambda: TODAY), kb
        )
    )
    body = request_for(
        "septic_febrile_crp_mg_dl",
        fhirServer=fhir_server,
        fhirAuthorization={
            "access_token": "opaque-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "hipdx",
        },
    )
    body["prefetch"] = {"patient": body["prefetch"]["patient"]}  # the client prefetched the Patient only
    response = client.post(f"/cds-services/{SERVICE_ID}", json=body)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] == "critical" and "septic" in card["detail"].lower()
    assert _FhirServer.seen_tokens and set(_FhirServer.seen_tokens) == {"Bearer opaque-token"}



def _fetching_request(fhir_server: str) -> dict[str, Any]:
    body = request_for("septic_febrile_crp_mg_dl", fhirServer=fhir_server,
                       fhirAuthorization={"access_token": "opaque-token", "token_type": "Bearer", "expires_in": 300,
                                          "scope": "patient/*.read", "subject": "hipdx"})
    body["prefetch"] = {"patient": body["prefetch"]["patient"]}  # the rest is fetched
    return body


def test_a_search_longer_than_the_pages_read_is_a_412_not_a_card_from_part_of_the_chart(
    fhir_server: str, kb: hipdx.KnowledgeBase
) -> None:
    """The service follows `next` links up to MAX_PAGES pages. Before, a search with more pages was cut
    there and the card made from what had been read, saying nothing: a partial chart (the newest CRP
    could be on a page not read). Now the call is a 412 naming the key and why."""
    from hipdx.service.hooks import MAX_PAGES

    client = TestClient(create_app(
        ServiceConfig(issuers=None, insecure_no_auth=True, fhir_servers=(fhir_server,), today=lambda: TODAY), kb))
    _FhirServer.pages = MAX_PAGES
    assert client.post(f"/cds-services/{SERVICE_ID}", json=_fetching_request(fhir_server)).status_code == 200
    _FhirServer.pages = MAX_PAGES + 1
    response = client.post(f"/cds-services/{SERVICE_ID}", json=_fetching_request(fhir_server))
    assert response.status_code == 412, response.text
    issues = response.json()["issue"]
    assert any(f"more than {MAX_PAGES} pages" in i["diagnostics"] for i in issues), issues
    assert {"prefetch.conditions"} <= {e for i in issues for e in i.get("expression", [])}



def test_a_prefetched_page_with_a_next_link_is_missing_not_the_whole_search(
    fhir_server: str, open_client: TestClient, kb: hipdx.KnowledgeBase
) -> None:
    """CDS Hooks 2.0: prefetch is submitted at once, no `next` links. A prefetched Bundle that still has
    one is the first page only: it is missing (412 naming it, or fetched whole from an allowed FHIR
    server), not read as the whole search as before."""
    body = request_for("septic_febrile_crp_mg_dl")
    body["prefetch"]["observations"]["link"] = [
        {"relation": "self", "url": "https://fhir.example.org/Observation?patient=x"},
        {"relation": "next", "url": "https://fhir.example.org/Observation?patient=x&page=2"},
    ]
    response = open_client.post(f"/cds-services/{SERVICE_ID}", json=body)
    assert response.status_code == 412, response.text
    assert [e for i in response.json()["issue"] for e in i.get("expression", [])] == ["prefetch.observations"]
    client = TestClient(create_app(
        ServiceConfig(issuers=None, insecure_no_auth=True, fhir_servers=(fhir_server,), today=lambda: TODAY), kb))
    fetched = client.post(f"/cds-services/{SERVICE_ID}", json={**body, "fhirServer": fhir_server})
    assert fetched.status_code == 200, fetched.text
    assert len(_FhirServer.seen_tokens) == 1  # the one missing key, fetched whole


def test_a_fhir_server_answer_is_read_as_strictly_as_the_prefetch(fhir_server: str, kb: hipdx.KnowledgeBase) -> None:
    """What hipdx fetches is read by the same strict reader as the prefetch. Before, it was read with
    json.loads: a key given twice was silently settled (the last one held), where the same Bundle
    prefetched is refused; and an answer of any size was read into memory."""
    from hipdx.service.app import MAX_BODY_BYTES

    client = TestClient(create_app(
        ServiceConfig(issuers=None, insecure_no_auth=True, fhir_servers=(fhir_server,), today=lambda: TODAY), kb))
    _FhirServer.raw = b'{"resourceType": "Bundle", "type": "searchset", "type": "collection", "entry": []}'
    twice = client.post(f"/cds-services/{SERVICE_ID}", json=_fetching_request(fhir_server))
    assert twice.status_code == 422, twice.text
    assert "twice" in twice.text and "conditions" in twice.text
    _FhirServer.raw = b'{"resourceType": "Bundle", "type": "searchset", "entry": [], "x": "' + b"a" * MAX_BODY_BYTES + b'"}'
    huge = client.post(f"/cds-services/{SERVICE_ID}", json=_fetching_request(fhir_server))
    assert huge.status_code == 412, huge.text
    assert "larger than" in huge.text
    _FhirServer.raw = b"<html>502 Bad Gateway</html>"  # a proxy's page: not retrieved
    page = client.post(f"/cds-services/{SERVICE_ID}", json=_fetching_request(fhir_server))
    assert page.status_code == 412 and "not JSON" in page.text, page.text

@pytest.mark.slow  # a real server and a 3 s wait
def test_a_slow_fhir_server_does_not_stall_the_worker(fhir_server: str, kb: hipdx.KnowledgeBase) -> None:
    """Real HTTP on loopback: while patient-view fetches the chart from a slow FHIR server, the same
    worker answers other calls. Before, patient-view ran on the event loop (order-select and
    order-sign ran in the thread pool), and every call of the worker waited for the fetch."""
    import socket

    import httpx2 as httpx
    import uvicorn

    _FhirServer.delay_s = 0.5  # a page: eight keys fetched one after another, about 4 s
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(ServiceConfig(issuers=None, insecure_no_auth=True, fhir_servers=(fhir_server,),
                                   today=lambda: TODAY), kb)
    service = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not service.started and time.monotonic() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    answers: dict[str, Any] = {}

    def hook_call() -> None:
        with httpx.Client(timeout=30) as client:
            answers["hook"] = client.post(f"{base}/cds-services/{SERVICE_ID}", json=_fetching_request(fhir_server))

    try:
        caller = threading.Thread(target=hook_call)
        caller.start()
        while not _FhirServer.seen_tokens and caller.is_alive():  # the hook call is now fetching
            time.sleep(0.01)
        start = time.monotonic()
        with httpx.Client(timeout=30) as client:
            other = client.get(f"{base}/knowledge-base")
        waited = time.monotonic() - start
        caller.join(30)
        assert other.status_code == 200 and waited < 1.5, waited  # not queued behind the fetch
        assert answers["hook"].status_code == 200, answers["hook"].text
    finally:
        service.should_exit = True
        thread.join(timeout=10)

# -- bad requests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("{not json", 400, "not valid JSON"),
        ('{"hook": "patient-view", "hook": "order-sign"}', 400, "given twice"),
        ("[]", 400, "a CDS Hooks request is a JSON object"),
        (
            json.dumps({"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p"}}),
            400,
            "this service answers patient-view",
        ),
        (json.dumps({"hook": "patient-view", "context": {}}), 400, "context.patientId"),
        (
            json.dumps(
                {"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"}, "prefetch": {"patient": 3}}
            ),
            400,
            "prefetch.patient must be",
        ),
    ],
)
def test_bad_requests_are_4xx_with_an_outcome(body: str, status: int, message: str, open_client: TestClient) -> None:
    response = open_client.post(
        f"/cds-services/{SERVICE_ID}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    text = json.dumps(response.json())
    assert message in text and "Traceback" not in text


def test_malformed_fhir_in_prefetch_is_422(open_client: TestClient) -> None:
    body = request_for("toh_man_classic")
    body["prefetch"]["observations"]["entry"][0]["resource"]["effectiveDateTime"] = "yesterday"
    response = open_client.post(f"/cds-services/{SERVICE_ID}", json=body)
    assert response.status_code == 422
    assert "effectiveDateTime" in json.dumps(response.json())


def test_unknown_service_is_404(open_client: TestClient) -> None:
    assert open_client.post("/cds-services/nope", json=SPEC_REQUEST).status_code == 404


def test_a_cds_call_is_routed_before_the_pages_are_tried(open_client: TestClient) -> None:
    """The CDS routes come before the pages' (about 35 routes, 0.065 ms of CPU a call to try them
    all first); no page has a CDS path, so the order changes no answer."""
    from starlette.routing import Match

    scope = {"type": "http", "method": "POST", "path": f"/cds-services/{SERVICE_ID}", "root_path": "", "headers": []}
    tried = []
    for route in open_client.app.router.routes:  # type: ignore[attr-defined]
        tried.append(route)
        if route.matches(scope)[0] == Match.FULL:
            break
    assert [getattr(r, "path", None) for r in tried][-1] == "/cds-services/{service_id}"
    assert all(isinstance(getattr(r, "path", None), str) for r in tried)  # no included router (the pages') before it
    assert open_client.get("/kb").status_code == 200 and open_client.get("/knowledge-base").json()["digest"]


def test_feedback_is_acknowledged(open_client: TestClient) -> None:
    feedback = {
        "feedback": [
            {
                "card": "f6b95768-b1c8-40dc-8385-bf3504b82ffb",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
                "outcomeTimestamp": "2020-12-11T00:00:00Z",
            }
        ]
    }
    assert open_client.post(f"/cds-services/{SERVICE_ID}/feedback", json=feedback).status_code == 200
    assert open_client.post(f"/cds-services/{SERVICE_ID}/feedback", json={"x": 1}).status_code == 400


# -- JWT --------------------------------------------------------------------------------------------------------------


def test_valid_es384_and_rs384_tokens_are_accepted(secured: TestClient, keys: dict[str, Any]) -> None:
    body = request_for("toh_man_classic")
    for alg, kid in (("ES384", "es-1"), ("RS384", "rs-1")):
        response = secured.post(
            f"/cds-services/{SERVICE_ID}",
            json=body,
            headers={"Authorization": f"Bearer {token(keys, alg=alg, kid=kid)}"},
        )
        assert response.status_code == 200, response.text
    discovery = secured.get(
        "/cds-services", headers={"Authorization": f"Bearer {token(keys, aud=f'{BASE}/cds-services')}"}
    )
    assert discovery.status_code == 200



def test_an_audience_given_as_a_one_element_array_is_accepted(secured: TestClient, keys: dict[str, Any]) -> None:
    """CDS Hooks 2.0, "Trusting CDS Clients": ``aud`` is a string or an array of strings (RFC 7519 4.1.3),
    e.g. ``["https://cds.example.org/cds-services/some-service"]``. Before, PyJWT's strict audience
    refused every array: a conforming client got 401 on every call."""
    body = request_for("toh_man_classic")
    response = secured.post(
        f"/cds-services/{SERVICE_ID}", json=body, headers={"Authorization": f"Bearer {token(keys, aud=[URL])}"}
    )
    assert response.status_code == 200, response.text
    discovery = secured.get(
        "/cds-services", headers={"Authorization": f"Bearer {token(keys, aud=[f'{BASE}/cds-services'])}"}
    )
    assert discovery.status_code == 200
    # the value must still be the URL called: another service's, a second audience or an empty array is refused
    for aud in ([f"{BASE}/cds-services/other"], [URL, "https://other.example.org/cds-services/x"], [], [[URL]]):
        refused = secured.post(
            f"/cds-services/{SERVICE_ID}", json=body, headers={"Authorization": f"Bearer {token(keys, aud=aud)}"}
        )
        assert refused.status_code == 401, aud

def _bad_tokens(keys: dict[str, Any]) -> list[tuple[str, str | None]]:
    now = int(time.time())
    hs = jwt.encode(
        {"iss": ISS, "aud": URL, "exp": now + 300, "iat": now, "jti": "x"},
        "secret-secret-secret-secret-secret",
        algorithm="HS256",
        headers={"kid": "es-1"},
    )
    unsigned = jwt.encode(
        {"iss": ISS, "aud": URL, "exp": now + 300, "iat": now, "jti": "y"},
        None,
        algorithm="none",
        headers={"kid": "es-1"},
    )
    other = ec.generate_private_key(ec.SECP384R1())
    forged = jwt.encode(
        {"iss": ISS, "aud": URL, "exp": now + 300, "iat": now, "jti": "z"},
        other,
        algorithm="ES384",
        headers={"kid": "es-1"},
    )
    no_typ = jwt.encode(
        {"iss": ISS, "aud": URL, "exp": now + 300, "iat": now, "jti": "t"},
        keys["es"],
        algorithm="ES384",
        headers={"kid": "es-1", "typ": None},
    )
    return [
        ("no typ", f"Bearer {no_typ}"),
        ("no header", None),
        ("not bearer", "Basic abc"),
        ("garbage", "Bearer not.a.jwt"),
        ("HS256", f"Bearer {hs}"),
        ("none", f"Bearer {unsigned}"),
        ("forged signature", f"Bearer {forged}"),
        ("wrong audience", f"Bearer {token(keys, aud=BASE + '/cds-services/other')}"),
        ("audience as a prefix", f"Bearer {token(keys, aud=BASE)}"),
        ("unknown issuer", f"Bearer {token(keys, iss='https://evil.example.org')}"),
        ("unknown kid", f"Bearer {token(keys, kid='nope')}"),
        ("expired", f"Bearer {token(keys, exp=now - 600, iat=now - 900)}"),
        ("issued in the future", f"Bearer {token(keys, iat=now + 600, exp=now + 900)}"),
        ("too long-lived", f"Bearer {token(keys, exp=now + 7200)}"),
        ("no jti", f"Bearer {token(keys, drop='jti')}"),
        ("no exp", f"Bearer {token(keys, drop='exp')}"),
        ("no iat", f"Bearer {token(keys, drop='iat')}"),
    ]


def test_every_bad_token_is_401_without_detail(secured: TestClient, keys: dict[str, Any]) -> None:
    body = request_for("toh_man_classic")
    for label, header in _bad_tokens(keys):
        headers = {"Authorization": header} if header else {}
        response = secured.post(f"/cds-services/{SERVICE_ID}", json=body, headers=headers)
        assert response.status_code == 401, label
        assert response.content == b"", label
    assert secured.get("/cds-services").status_code == 401



def test_a_refused_call_is_logged_with_the_route_it_called(
    secured: TestClient, keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The operator sees which service a refused token called (its route template). Before, the CDS
    service's plain Starlette route carries no ``route`` in its scope and the log said "(no route)"."""
    caplog.set_level(logging.WARNING, logger="hipdx.service")
    body = request_for("toh_man_classic")
    headers = {"Authorization": f"Bearer {token(keys, kid='nope')}"}
    assert secured.post(f"/cds-services/{SERVICE_ID}", json=body, headers=headers).status_code == 401
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("401 ")]
    assert line.startswith("401 POST /cds-services/{service_id}: "), line

def test_a_replayed_token_is_refused(secured: TestClient, keys: dict[str, Any]) -> None:
    body = request_for("toh_man_classic")
    header = {"Authorization": f"Bearer {token(keys)}"}
    assert secured.post(f"/cds-services/{SERVICE_ID}", json=body, headers=header).status_code == 200
    assert secured.post(f"/cds-services/{SERVICE_ID}", json=body, headers=header).status_code == 401


def test_public_url_sets_the_audience(issuers_file: Path, keys: dict[str, Any], kb: hipdx.KnowledgeBase) -> None:
    config = ServiceConfig(
        issuers=IssuerList.from_file(issuers_file), public_url="https://cds.hospital.org/hipdx", today=lambda: TODAY
    )
    client = TestClient(create_app(config, kb))
    good = token(keys, aud=f"https://cds.hospital.org/hipdx/cds-services/{SERVICE_ID}")
    assert (
        client.post(
            f"/cds-services/{SERVICE_ID}",
            json=request_for("toh_man_classic"),
            headers={"Authorization": f"Bearer {good}"},
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/cds-services/{SERVICE_ID}",
            json=request_for("toh_man_classic"),
            headers={"Authorization": f"Bearer {token(keys)}"},
        ).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{}", "at least one issuer"),
        ('{"issuers": [{"jwks": {"keys": []}}]}', "needs an 'iss'"),
        (
            '{"issuers": [{"iss": "x", "jwks": {"keys": [{"kty": "oct", "kid": "a", "k": "c2VjcmV0"}]}}]}',
            "not an ES384 or RS384 key",
        ),
        ('{"issuers": [{"iss": "x", "jwks_file": "missing.json"}]}', "cannot read jwks_file"),
    ],
)
def test_bad_issuer_files_are_clear_errors(content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        IssuerList.from_file(path)
    assert message in str(err.value)


def test_private_keys_are_refused_in_the_issuer_file(keys: dict[str, Any], tmp_path: Path) -> None:
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(keys["es"]))
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [{"iss": ISS, "jwks": {"keys": [{**private, "kid": "k"}]}}]}))
    with pytest.raises(InputError, match="private key"):
        IssuerList.from_file(path)


def test_service_needs_issuers_or_an_explicit_opt_out() -> None:
    with pytest.raises(ValueError, match="insecure_no_auth"):
        ServiceConfig(issuers=None)


def test_dates_default_to_the_clock(kb: hipdx.KnowledgeBase) -> None:
    config = ServiceConfig(issuers=None, insecure_no_auth=True)
    assert config.today() == dt.date.today()


# -- hipdx serve ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --cds-issuers FILE"),
        (["--insecure-no-auth", "--cds-issuers", "x.json"], "contradict each other"),
        (["--cds-issuers", "missing.json"], "cannot read missing.json"),
        (["--insecure-no-auth", "--fhir-server", "ftp://x"], "not an http(s) URL"),
    ],
)
def test_serve_refuses_bad_options(args: list[str], message: str) -> None:
    from conftest import CliRunner

    from hipdx.cli import app

    result = CliRunner().invoke(app, ["serve", *args], catch_exceptions=False)
    assert result.exit_code == 2 and message in result.output


def test_serve_starts_uvicorn_with_the_app(
    issuers_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn
    from conftest import CliRunner

    from hipdx.cli import app
    from hipdx.service.factory import app_from_environment
    from hipdx.service.settings import Settings

    # serve hands its settings to the workers in HIPDX_* variables: restored after the test
    for name in Settings.model_fields:
        monkeypatch.setenv(f"HIPDX_{name.upper()}", "")
        monkeypatch.delenv(f"HIPDX_{name.upper()}")
    monkeypatch.setenv("HIPDX_DATA_DIR", str(tmp_path / "data"))
    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda application, **options: started.update(app=application, **options))
    result = CliRunner().invoke(
        app,
        ["serve", "--cds-issuers", str(issuers_file), "--port", "9123", "--cors-origin", "http://127.0.0.1:8080"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert started["port"] == 9123 and started["host"] == "127.0.0.1" and started["factory"]
    assert started["app"] == "hipdx.service.factory:app_from_environment"
    client = TestClient(app_from_environment())  # what each worker builds
    assert client.get("/api/v1/ready").status_code == 200  # the embedded database was created on start
    assert client.get("/cds-services").status_code == 401  # the issuers file turned authentication on
    preflight = client.options(
        "/cds-services",
        headers={
            "Origin": "http://127.0.0.1:8080",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.headers.get("access-control-allow-origin") == "http://127.0.0.1:8080"


def test_a_jku_header_must_be_one_the_allow_list_names(keys: dict[str, Any], tmp_path: Path, kb: hipdx.KnowledgeBase) -> None:
    """The sandbox's header shape: alg, typ, kid and jku. hipdx never fetches the jku; it must be listed."""
    listed = "https://ehr.example.org/.well-known/jwks.json"
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [{"iss": ISS, "jwks": keys["jwks"], "jku": [listed]}]}))
    client = TestClient(create_app(ServiceConfig(issuers=IssuerList.from_file(path), today=lambda: TODAY), kb))
    now = int(time.time())

    def signed(jku: str) -> str:
        claims = {"iss": ISS, "aud": URL, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, keys["es"], algorithm="ES384", headers={"kid": "es-1", "typ": "JWT", "jku": jku})

    body = request_for("toh_man_classic")
    ok = client.post(f"/cds-services/{SERVICE_ID}", json=body, headers={"Authorization": f"Bearer {signed(listed)}"})
    assert ok.status_code == 200
    other = client.post(
        f"/cds-services/{SERVICE_ID}", json=body, headers={"Authorization": f"Bearer {signed('https://evil.example.org/jwks')}"}
    )
    assert other.status_code == 401 and other.content == b""


def test_tenants_are_checked_when_listed(keys: dict[str, Any], tmp_path: Path, kb: hipdx.KnowledgeBase) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [{"iss": ISS, "jwks": keys["jwks"], "tenants": ["hospital-a"]}]}))
    client = TestClient(create_app(ServiceConfig(issuers=IssuerList.from_file(path), today=lambda: TODAY), kb))
    body = request_for("toh_man_classic")
    good = client.post(f"/cds-services/{SERVICE_ID}", json=body, headers={"Authorization": f"Bearer {token(keys, tenant='hospital-a')}"})
    bad = client.post(f"/cds-services/{SERVICE_ID}", json=body, headers={"Authorization": f"Bearer {token(keys, tenant='hospital-b')}"})
    none = client.post(f"/cds-services/{SERVICE_ID}", json=body, headers={"Authorization": f"Bearer {token(keys)}"})
    assert (good.status_code, bad.status_code, none.status_code) == (200, 401, 401)


def test_the_card_is_the_same_without_the_explanation_it_does_not_show(kb: hipdx.KnowledgeBase) -> None:
    """patient-view assesses with ``explain=False`` (speed): for every bundle, the card built from the
    full assessment and the one the service answers are equal, and only the explanation differs."""
    from hipdx.fhir.mapping import map_fhir
    from hipdx.reasoning import assess
    from hipdx.service.cards import card
    from hipdx.service.hooks import gather, parse_request, patient_view

    for path in sorted(BUNDLES.glob("*.bundle.json")):
        body = request_for(path.name.removesuffix(".bundle.json"))
        mapping = map_fhir(gather(parse_request(body), ()), TODAY, patient_id=body["context"]["patientId"])
        full, lean = assess(mapping.case, kb, TODAY), assess(mapping.case, kb, TODAY, explain=False)
        assert full.explanation.leading and not lean.explanation.leading
        assert lean.model_copy(update={"explanation": full.explanation}) == full, path.name
        assert patient_view(body, kb, TODAY)["cards"] == [card(full, mapping, body["hookInstance"])], path.name


def test_a_signed_call_answers_503_when_its_token_cannot_be_recorded(
    issuers_file: Path, keys: dict[str, Any], kb: hipdx.KnowledgeBase, tmp_path: Path
) -> None:
    # the token's jti is written with the call's record: without it a replay could not be refused,
    # so the answer is withheld; the database's failure is a 503 to retry, not a 500 to report
    engine = connect(f"sqlite:///{tmp_path / 'hipdx.db'}")
    migrate(engine)
    store = AuditStore(engine, hipdx.__version__, kb.digest)
    issuers = IssuerList.from_file(issuers_file)
    issuers.replay = DatabaseReplayCache(engine)  # shared by the workers, as `hipdx serve` sets it
    config = ServiceConfig(issuers=issuers, store=store, today=lambda: TODAY)
    client = TestClient(create_app(config, kb), raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {token(keys)}"}
    assert client.post(URL, json=request_for("toh_man_classic"), headers=headers).status_code == 200
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE cds_call"))
    answer = client.post(URL, json=request_for("toh_man_classic"), headers={"Authorization": f"Bearer {token(keys)}"})
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert "database is not available" in answer.text and "cds_call" not in answer.text
    engine.dispose()


def test_only_a_call_that_must_fetch_from_the_fhir_server_leaves_the_event_loop() -> None:
    """``fetches`` decides where a patient-view call runs: in the thread pool only when it reads over
    the network (a key missing and a FHIR server this service may call); a complete prefetch is CPU
    work answered on the event loop (benchmarks/README.md: in the pool, 16 calls at once contend for
    the GIL). Fails without the decision (every call went to the pool)."""
    from hipdx.service.hooks import fetches, parse_request

    server = "http://127.0.0.1:9/fhir"
    whole = request_for("septic_febrile_crp_mg_dl", fhirServer=server)
    part = {**whole, "prefetch": {"patient": whole["prefetch"]["patient"]}}
    paged = {**whole, "prefetch": {**whole["prefetch"], "conditions": {
        "resourceType": "Bundle", "type": "searchset", "link": [{"relation": "next", "url": f"{server}/Condition?page=2"}]}}}
    assert not fetches(parse_request(whole), (server,))
    assert fetches(parse_request(part), (server,)) and fetches(parse_request(paged), (server,))
    assert not fetches(parse_request(part), ())  # nothing it may call: a 412 at once, on the loop
