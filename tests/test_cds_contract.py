"""Contract tests: CDS Hooks 2.0's example requests and a client that sends what the CDS Hooks sandbox sends.

The sandbox (https://github.com/cds-hooks/sandbox, jwt-generator.js) signs every call, discovery
included, with ES384: header ``alg``/``typ``/``kid``/``jku``, payload ``iss``, ``aud`` (the exact
URL called), ``exp`` = ``iat`` + 300, ``jti`` a UUID; its request bodies carry ``hookInstance``,
``hook``, ``fhirServer``, ``context`` (``patientId``, ``userId``; ``draftOrders`` and ``selections``
for the order hooks) and ``prefetch``, without ``fhirAuthorization`` in open-server mode
(docs: ../shared/research/standards.md, 1.4 and 1.12). The sandbox's own key pair is public in
its repository and so never trusted; the tests sign with a fresh P-384 key in the same shape.
Every card returned is checked against the 2.0 card rules.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

import hipdx
from hipdx.service import IssuerList, ServiceConfig, create_app
from hipdx.service.hooks import SERVICE_ID
from hipdx.service.orders import ORDER_SELECT_ID, ORDER_SIGN_ID

from conftest import TODAY
from test_service import request_for
from test_service_orders import MRI_HIP, ZOLEDRONIC, medication_request, order_body, service_request

SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
BASE = "http://testserver"


@pytest.fixture(scope="module")
def sandbox_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def client(sandbox_key: ec.EllipticCurvePrivateKey, kb: hipdx.KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(sandbox_key.public_key()))
    path = tmp_path_factory.mktemp("sandbox") / "issuers.json"
    path.write_text(json.dumps({"issuers": [
        {"iss": SANDBOX_ISS, "jwks": {"keys": [{**public, "kid": SANDBOX_KID, "alg": "ES384", "use": "sig"}]}, "jku": [SANDBOX_JKU]}
    ]}))
    config = ServiceConfig(issuers=IssuerList.from_file(path), today=lambda: TODAY, case_url="https://hipdx.example/cases/{patient}")
    return TestClient(create_app(config, kb), raise_server_exceptions=False)


def sandbox_token(key: ec.EllipticCurvePrivateKey, url: str) -> str:
    """What the sandbox's jwt-generator.js produces for a call to ``url``."""
    now = int(time.time())
    payload = {"iss": SANDBOX_ISS, "aud": url, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    headers = {"alg": "ES384", "typ": "JWT", "kid": SANDBOX_KID, "jku": SANDBOX_JKU}
    return jwt.encode(payload, key, algorithm="ES384", headers=headers)


def sandbox_body(body: dict[str, Any]) -> dict[str, Any]:
    """A request as the sandbox sends it in open-server mode: fhirServer, no fhirAuthorization, no encounterId."""
    return {"hookInstance": str(uuid.uuid4()), "hook": body["hook"], "fhirServer": "http://127.0.0.1:8001",
            "context": body["context"], "prefetch": body["prefetch"]}


# -- the CDS Hooks 2.0 card rules -------------------------------------------------------------


def _no_nulls(value: Any, where: str = "card") -> None:
    assert value is not None and value != [] and value != "", f"{where} is null or empty (2.0: omit instead)"
    if isinstance(value, dict):
        for k, v in value.items():
            _no_nulls(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_nulls(v, f"{where}[{i}]")


def check_card(card: dict[str, Any]) -> None:
    """CDS Hooks 2.0, "Card attributes": required fields, enumerations, absolute URLs, suggestions, links."""
    _no_nulls(card)
    assert isinstance(card["summary"], str) and len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert isinstance(card["source"]["label"], str)
    if "url" in card["source"]:
        assert urlsplit(card["source"]["url"]).scheme in ("http", "https")
    if "detail" in card:
        assert isinstance(card["detail"], str)
    uuid.UUID(card["uuid"])
    assert ("suggestions" in card) == ("selectionBehavior" in card)
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for s in card["suggestions"]:
            assert isinstance(s["label"], str) and uuid.UUID(s["uuid"])
            for action in s.get("actions", []):
                assert action["type"] in ("create", "update", "delete") and action["description"]
                if action["type"] in ("create", "update"):
                    assert action["resource"]["resourceType"]
    for link in card.get("links", []):
        assert link["label"] and link["type"] in ("absolute", "smart") and urlsplit(link["url"]).scheme in ("http", "https")
    for reason in card.get("overrideReasons", []):
        assert reason["display"] and reason["code"]


# -- discovery ------------------------------------------------------------------------------------


def test_discovery_with_the_sandbox_token(client: TestClient, sandbox_key: ec.EllipticCurvePrivateKey) -> None:
    url = f"{BASE}/cds-services"
    response = client.get("/cds-services", headers={"Authorization": f"Bearer {sandbox_token(sandbox_key, url)}"})
    assert response.status_code == 200
    services = response.json()["services"]
    assert {s["hook"] for s in services} == {"patient-view", "order-select", "order-sign"}
    for s in services:
        assert s["id"] and s["description"] and s["hook"]
        for template in s["prefetch"].values():  # only the context tokens the hooks mark as prefetch tokens
            # patientId and encounterId: "Prefetch Token: Yes" in patient-view, order-select and order-sign
            assert template.count("{{") == template.count("{{context.patientId}}") + template.count("{{context.encounterId}}")
    assert client.get("/cds-services").status_code == 401


# -- every service, as the sandbox calls it --------------------------------------------------------


SANDBOX_CALLS = {
    SERVICE_ID: lambda: request_for("onfh_steroids_double_line"),
    ORDER_SELECT_ID: lambda: order_body("toh_man_classic", "order-select", [service_request(MRI_HIP)]),
    ORDER_SIGN_ID: lambda: order_body("toh_pregnancy_34_weeks", "order-sign", [medication_request(ZOLEDRONIC), service_request(MRI_HIP)]),
}


@pytest.mark.parametrize("service", list(SANDBOX_CALLS))
def test_each_service_answers_the_sandbox(client: TestClient, sandbox_key: ec.EllipticCurvePrivateKey, service: str) -> None:
    url = f"{BASE}/cds-services/{service}"
    body = sandbox_body(SANDBOX_CALLS[service]())
    token = sandbox_token(sandbox_key, url)
    response = client.post(f"/cds-services/{service}", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert cards
    for card in cards:
        check_card(card)
    # the same token again: a replayed jti is refused, with no detail
    again = client.post(f"/cds-services/{service}", json=body, headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401 and again.content == b""
    # a token for another service's URL is refused (aud is the exact URL called)
    other = sandbox_token(sandbox_key, f"{BASE}/cds-services/{SERVICE_ID if service != SERVICE_ID else ORDER_SIGN_ID}")
    assert client.post(f"/cds-services/{service}", json=body, headers={"Authorization": f"Bearer {other}"}).status_code == 401
    # feedback on the first card, as the sandbox's client would send it, signed for the feedback URL
    feedback_url = f"{url}/feedback"
    item = {"card": cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:00:00Z",
            "overrideReason": {"reason": cards[0].get("overrideReasons", [{"system": "urn:x", "code": "x", "display": "x"}])[0]}}
    answer = client.post(f"/cds-services/{service}/feedback", json={"feedback": [item]},
                         headers={"Authorization": f"Bearer {sandbox_token(sandbox_key, feedback_url)}"})
    assert answer.status_code == 200


def test_the_order_sign_card_is_critical_for_the_pregnant_patient(client: TestClient, sandbox_key: ec.EllipticCurvePrivateKey) -> None:
    url = f"{BASE}/cds-services/{ORDER_SIGN_ID}"
    body = sandbox_body(SANDBOX_CALLS[ORDER_SIGN_ID]())
    response = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body, headers={"Authorization": f"Bearer {sandbox_token(sandbox_key, url)}"})
    indicators = [c["indicator"] for c in response.json()["cards"]]
    assert indicators == ["critical", "info"]  # zoledronic acid blocked; the MRI without contrast: the sequences


# -- the specification's example requests ---------------------------------------------------------


#: CDS Hooks 2.0, "Calling a CDS Service", example request (its prefetch key is another service's)
SPEC_PATIENT_VIEW = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {"access_token": "some-opaque-fhir-access-token", "token_type": "Bearer", "expires_in": 300,
                          "scope": "user/Patient.read user/Observation.read", "subject": "cds-service4"},
    "context": {"userId": "Practitioner/example", "patientId": "1288992", "encounterId": "89284"},
    "prefetch": {"patientToGreet": {"resourceType": "Patient", "gender": "male", "birthDate": "1925-12-23", "id": "1288992", "active": True}},
}

#: the order-select hook's example (CDS Hooks library): a draft MedicationRequest selected among the draft orders
SPEC_ORDER_SELECT = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2eb",
    "hook": "order-select",
    "context": {
        "userId": "Practitioner/123", "patientId": "1288992", "encounterId": "89284",
        "selections": ["MedicationRequest/smart-MedicationRequest-103"],
        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": {
            "resourceType": "MedicationRequest", "id": "smart-MedicationRequest-103", "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "617993",
                                                      "display": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension"}]},
            "subject": {"reference": "Patient/1288992"}}}]},
    },
    "prefetch": {},
}


@pytest.mark.parametrize("service", list(SANDBOX_CALLS))
def test_the_spec_example_without_our_prefetch_is_a_412_naming_the_keys(client: TestClient, sandbox_key: ec.EllipticCurvePrivateKey, service: str) -> None:
    body = dict(SPEC_PATIENT_VIEW)
    if service != SERVICE_ID:
        hook = "order-select" if service == ORDER_SELECT_ID else "order-sign"
        body = {**body, "hook": hook, "context": {**body["context"], "selections": ["ServiceRequest/draft-mri"],
                "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": service_request(MRI_HIP)}]}}}
    url = f"{BASE}/cds-services/{service}"
    response = client.post(f"/cds-services/{service}", json=body, headers={"Authorization": f"Bearer {sandbox_token(sandbox_key, url)}"})
    assert response.status_code == 412  # hooks.smarthealthit.org is not a FHIR server this service may call
    expressions = {e for i in response.json()["issue"] for e in i.get("expression", [])}
    assert "prefetch.patient" in expressions and "prefetch.conditions" in expressions


def test_the_spec_order_select_example_gets_no_card_for_an_antibiotic(client: TestClient, sandbox_key: ec.EllipticCurvePrivateKey) -> None:
    url = f"{BASE}/cds-services/{ORDER_SELECT_ID}"
    response = client.post(f"/cds-services/{ORDER_SELECT_ID}", json=SPEC_ORDER_SELECT,
                           headers={"Authorization": f"Bearer {sandbox_token(sandbox_key, url)}"})
    assert response.status_code == 200 and response.json() == {"cards": []}


def test_the_spec_feedback_examples_are_accepted(client: TestClient, sandbox_key: ec.EllipticCurvePrivateKey) -> None:
    url = f"{BASE}/cds-services/{SERVICE_ID}/feedback"
    accepted = {"feedback": [{"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "accepted",
                              "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}], "outcomeTimestamp": "2020-12-11T00:00:00Z"}]}
    overridden = {"feedback": [{"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "overridden",
                                "overrideReason": {"reason": {"code": "reason-code-provided-by-service",
                                                              "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons",
                                                              "display": "Patient refused"},
                                                   "userComment": "Patient refused this medication"},
                                "outcomeTimestamp": "2020-12-11T00:00:00Z"}]}
    for body in (accepted, overridden):
        response = client.post(f"/cds-services/{SERVICE_ID}/feedback", json=body, headers={"Authorization": f"Bearer {sandbox_token(sandbox_key, url)}"})
        assert response.status_code == 200, response.text
