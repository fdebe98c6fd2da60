"""order-select / order-sign, the patient-view card's suggestion and links, and feedback stored per card."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import hipdx
from hipdx.service import ServiceConfig, create_app
from hipdx.service.hooks import SERVICE_ID
from hipdx.service.orders import ORDER_SELECT_ID, ORDER_SIGN_ID
from hipdx.store import AuditStore, connect, migrate

from conftest import TODAY
from test_service import request_for

CASE_URL = "https://hipdx.hospital.example/cases?patient={patient}"
ZOLEDRONIC = {"system": "http://www.whocc.no/atc", "code": "M05BA08", "display": "zoledronic acid"}
MRI_HIP = {"system": "http://loinc.org", "code": "30687-8", "display": "MR Hip WO contrast"}
MRI_CONTRAST = {"system": "http://loinc.org", "code": "30688-6", "display": "MR Hip WO and W contrast IV"}


@pytest.fixture(scope="module")
def client(kb: hipdx.KnowledgeBase) -> TestClient:
    config = ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, case_url=CASE_URL)
    return TestClient(create_app(config, kb), raise_server_exceptions=False)


def medication_request(code: dict[str, str], rid: str = "draft-zol") -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": rid, "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [code]}, "subject": {"reference": "Patient/x"}}


def service_request(code: dict[str, str], rid: str = "draft-mri") -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": rid, "status": "draft", "intent": "order",
            "code": {"coding": [code]}, "subject": {"reference": "Patient/x"}}


def order_body(name: str, hook: str, orders: list[dict[str, Any]], selections: list[str] | None = None) -> dict[str, Any]:
    body = request_for(name)
    body["hook"] = hook
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": o} for o in orders]}
    if hook == "order-select":
        body["context"]["selections"] = selections if selections is not None else [f"{o['resourceType']}/{o['id']}" for o in orders]
    return body


def with_low_clearance(body: dict[str, Any]) -> dict[str, Any]:
    """Serum creatinine 3.0 mg/dL and 70 kg: Cockcroft-Gault about 31 mL/min for this 44-year-old man."""
    body = copy.deepcopy(body)
    patient = body["context"]["patientId"]
    extra = [
        {"resourceType": "Observation", "id": "creat", "status": "final", "subject": {"reference": f"Patient/{patient}"},
         "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]}, "effectiveDateTime": "2026-11-20",
         "valueQuantity": {"value": 3.0, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}},
        {"resourceType": "Observation", "id": "weight", "status": "final", "subject": {"reference": f"Patient/{patient}"},
         "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "effectiveDateTime": "2026-11-20",
         "valueQuantity": {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
    ]
    body["prefetch"]["observations"]["entry"] += [{"resource": r} for r in extra]
    return body


# -- drug orders: the plan's safety rules -------------------------------------------------


@pytest.mark.parametrize("service", [ORDER_SELECT_ID, ORDER_SIGN_ID])
def test_bisphosphonate_for_a_pregnant_patient_is_critical_and_names_the_fact(client: TestClient, service: str) -> None:
    hook = "order-select" if service == ORDER_SELECT_ID else "order-sign"
    body = order_body("toh_pregnancy_34_weeks", hook, [medication_request(ZOLEDRONIC)])
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] == "critical"
    assert "pregnant" in card["summary"] and len(card["summary"]) < 140
    assert "**pregnant** = yes (pregnancy.status = pregnant)" in card["detail"]
    assert card["overrideReasons"] and all(r["display"] for r in card["overrideReasons"])
    assert card["links"] == [{"label": "Open the case in hipdx", "url": CASE_URL.replace("{patient}", body["context"]["patientId"]), "type": "absolute"}]



def test_an_old_not_pregnant_status_does_not_silence_the_pregnancy_check(client: TestClient) -> None:
    """A woman of 31 (pvns_hip) and a zoledronic acid order: without a current pregnancy status the card
    asks for it. Before, a 'Not pregnant' status of 2023 in the chart took the place of today's and
    the card no longer asked."""
    body = order_body("pvns_hip", "order-sign", [medication_request(ZOLEDRONIC)])
    observations = body["prefetch"]["observations"]["entry"]
    observations[:] = [e for e in observations if "82810-3" not in str(e)]
    patient = body["context"]["patientId"]
    observations.append({"resource": {
        "resourceType": "Observation", "id": "status-2023", "status": "final", "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "82810-3"}]}, "effectiveDateTime": "2023-05-01",
        "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA26683-5"}]}}})
    response = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] in ("warning", "critical")
    assert "pregnan" in card["summary"].lower(), card["summary"]


def test_zoledronic_acid_below_its_clearance_cut_off_is_critical(client: TestClient) -> None:
    body = with_low_clearance(order_body("toh_man_classic", "order-sign", [medication_request(ZOLEDRONIC)]))
    [card] = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json()["cards"]
    assert card["indicator"] == "critical"
    assert "creatinine clearance (mL/min)** = 31" in card["detail"] and "Cockcroft-Gault" in card["detail"]
    assert "below 35" in card["detail"]


def test_a_drug_whose_safety_facts_are_missing_gets_a_warning(client: TestClient) -> None:
    body = order_body("toh_man_classic", "order-sign", [medication_request(ZOLEDRONIC)])
    [card] = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json()["cards"]
    assert card["indicator"] == "warning" and "check" in card["summary"]
    assert "**creatinine clearance (mL/min)**: not known" in card["detail"]


def test_cards_name_the_facts_in_words_not_by_their_identifiers(client: TestClient) -> None:
    """A clinician reads the card in the EHR. Before, it said "check breastfeeding, creatinine clearance
    ml min, calcium mmol l, vitamin d ng ml" (the summary) and "creatinine_clearance_ml_min; bleeding_risk"
    (the details): the plan's fact identifiers, their units mangled into words."""
    body = order_body("pvns_hip", "order-sign", [medication_request(ZOLEDRONIC)])
    [order_card] = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json()["cards"]
    view = client.post(f"/cds-services/{SERVICE_ID}", json=request_for("toh_man_classic")).json()["cards"]
    for text in (order_card["summary"], order_card["detail"], *(c["detail"] for c in view)):
        for mangled in ("_ml_min", "ml min", "_mmol_l", "mmol l", "ng ml", "creatinine_clearance", "bleeding_risk"):
            assert mangled not in text, (mangled, text)
    assert "creatinine clearance" in order_card["summary"] and "calcium" in order_card["summary"]
    assert "**calcium (mmol/L)**: not known" in order_card["detail"]


def test_order_select_reads_only_the_selected_orders(client: TestClient) -> None:
    amoxicillin = {"system": "http://www.whocc.no/atc", "code": "J01CA04", "display": "amoxicillin"}
    orders = [medication_request(ZOLEDRONIC), medication_request(amoxicillin, "draft-amox")]
    body = order_body("toh_pregnancy_34_weeks", "order-select", orders, selections=["MedicationRequest/draft-amox"])
    assert client.post(f"/cds-services/{ORDER_SELECT_ID}", json=body).json() == {"cards": []}


def test_a_selection_that_names_no_draft_order_is_a_400_naming_it(client: TestClient) -> None:
    """order-select's selections name orders of draftOrders. Before, a selection naming none (a client's
    bug, e.g. an id without its type) was answered 200 without a card, as if the order had been checked."""
    body = order_body("toh_pregnancy_34_weeks", "order-select", [medication_request(ZOLEDRONIC)],
                      selections=["MedicationRequest/draft-zol", "draft-zol"])
    response = client.post(f"/cds-services/{ORDER_SELECT_ID}", json=body)
    assert response.status_code == 400, response.text
    assert [e for i in response.json()["issue"] for e in i.get("expression", [])] == ["context.selections[1]"]


def test_an_unknown_order_gets_no_card(client: TestClient) -> None:
    unknown = {"system": "http://www.whocc.no/atc", "code": "J01CA04", "display": "amoxicillin"}
    body = order_body("toh_pregnancy_34_weeks", "order-sign", [medication_request(unknown)])
    assert client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json() == {"cards": []}


# -- imaging orders --------------------------------------------------------------------------


def test_mri_order_names_the_sequences_that_answer_the_question(client: TestClient) -> None:
    body = order_body("toh_man_classic", "order-select", [service_request(MRI_HIP)])
    [card] = client.post(f"/cds-services/{ORDER_SELECT_ID}", json=body).json()["cards"]
    assert card["indicator"] == "info"
    assert "coronal T1" in card["detail"] and "STIR" in card["detail"] and "Vande Berg" in card["detail"]


def test_contrast_mri_in_pregnancy_warns_with_the_cores_words(client: TestClient) -> None:
    body = order_body("toh_pregnancy_34_weeks", "order-sign", [service_request(MRI_CONTRAST)])
    [card] = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json()["cards"]
    assert card["indicator"] == "warning"
    assert "gadolinium in pregnancy: only if essential" in card["detail"]
    assert "Renal function in the chart" in card["detail"]


def test_a_lower_limb_mri_without_hip_context_gets_no_card(client: TestClient) -> None:
    knee = {"system": "http://www.ama-assn.org/go/cpt", "code": "73721"}
    body = order_body("toh_man_classic", "order-sign", [service_request(knee)])
    body["prefetch"]["conditions"] = None  # no hip pain in the chart
    assert client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json() == {"cards": []}


def test_order_request_without_draft_orders_is_a_400_naming_the_field(client: TestClient) -> None:
    body = request_for("toh_man_classic")
    body["hook"] = "order-select"
    response = client.post(f"/cds-services/{ORDER_SELECT_ID}", json=body)
    assert response.status_code == 400
    expressions = {e for issue in response.json()["issue"] for e in issue.get("expression", [])}
    assert {"context.draftOrders", "context.selections"} <= expressions


# -- patient-view: suggestion, links, source -------------------------------------------------


def test_patient_view_card_suggests_the_next_test_and_links_the_case(client: TestClient) -> None:
    body = request_for("toh_early_normal_radiograph")
    [card] = client.post(f"/cds-services/{SERVICE_ID}", json=body).json()["cards"]
    [suggestion] = card["suggestions"]
    assert card["selectionBehavior"] == "at-most-one"
    assert uuid.UUID(suggestion["uuid"]) and suggestion["label"].startswith("Order: ")
    [action] = suggestion["actions"]
    assert action["type"] == "create" and action["description"]
    request = action["resource"]
    assert request["resourceType"] == "ServiceRequest" and request["status"] == "draft"
    assert request["subject"] == {"reference": f"Patient/{body['context']['patientId']}"}
    assert request["code"]["text"] == suggestion["label"].removeprefix("Order: ")  # DXA: no order code in the tables, text only
    assert card["source"]["url"] == "http://testserver/knowledge-base"
    assert card["links"][0]["type"] == "absolute" and card["links"][0]["url"].startswith("https://hipdx.hospital.example/")
    kb_page = client.get("/knowledge-base").json()
    assert kb_page["digest"] and "vandeberg1993" in kb_page["references"]


# -- feedback --------------------------------------------------------------------------------


@pytest.fixture
def stored(kb: hipdx.KnowledgeBase, tmp_path: Path) -> tuple[TestClient, AuditStore]:
    engine = connect(f"sqlite:///{tmp_path / 'audit.db'}")
    migrate(engine)
    store = AuditStore(engine, hipdx.__version__, kb.digest)
    config = ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, store=store)
    return TestClient(create_app(config, kb), raise_server_exceptions=False), store


def test_feedback_stores_accepted_and_overridden_cards_with_the_reason(stored: tuple[TestClient, AuditStore]) -> None:
    client, store = stored
    feedback = {"feedback": [
        {"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "accepted",
         "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}], "outcomeTimestamp": "2026-11-25T10:00:00Z"},
        {"card": "9368d37b-283f-44a0-93ea-547cebab93ee", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:01:00Z",
         "overrideReason": {"reason": {"system": "urn:hipdx:codesystem:override-reason", "code": "patient-declined", "display": "Patient declined"},
                            "userComment": "free text the service must not keep"}},
    ]}
    assert client.post(f"/cds-services/{ORDER_SIGN_ID}/feedback", json=feedback).status_code == 200
    overridden, accepted = store.card_feedback()
    assert (accepted.service_id, accepted.outcome, accepted.accepted_suggestions) == (
        ORDER_SIGN_ID, "accepted", "e56e1945-20b3-4393-8503-a1a20fd73152")
    assert (overridden.override_reason_code, overridden.override_reason_display, overridden.user_comment_given) == (
        "patient-declined", "Patient declined", True)
    assert "free text" not in repr(vars(overridden))


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"outcome": "accepted", "outcomeTimestamp": "2026-11-25T10:00:00Z", "acceptedSuggestions": [{"id": "s"}]}, "feedback[0].card"),
        ({"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-11-25T10:00:00Z"}, "feedback[0].outcome"),
        ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-25T10:00:00Z"}, "feedback[0].acceptedSuggestions"),
        ({"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}, "feedback[0].outcomeTimestamp"),
    ],
)
def test_invalid_feedback_is_a_400_naming_the_item(stored: tuple[TestClient, AuditStore], item: dict[str, Any], field: str) -> None:
    client, store = stored
    response = client.post(f"/cds-services/{SERVICE_ID}/feedback", json={"feedback": [item]})
    assert response.status_code == 400
    assert field in {e for issue in response.json()["issue"] for e in issue.get("expression", [])}
    assert store.card_feedback() == []


def test_feedback_for_an_unknown_service_is_a_404(client: TestClient) -> None:
    assert client.post("/cds-services/nope/feedback", json={"feedback": []}).status_code == 404


# -- drug orders under a code hipdx does not read: recognised by name -------------------------

#: an RxNorm clinical drug (SCD) code, deliberately one hipdx's tables do not hold (no code is invented
#: for it: hipdx must not need to know it); the display is the SCD's name form
SCD_ZOLEDRONIC = {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "0000000",
                  "display": "zoledronic acid 5 MG in 100 ML Injection"}


def _named(display: str, text: str | None = None, rid: str = "draft-scd") -> dict[str, Any]:
    order = medication_request(SCD_ZOLEDRONIC | {"display": display}, rid)
    if text is not None:
        order["medicationCodeableConcept"]["text"] = text
    return order


def test_a_clinical_drug_code_is_recognised_by_its_name_in_pregnancy(client: TestClient) -> None:
    """Before, an SCD-coded zoledronic acid order got no card at all: the drug passed its pregnancy block unchecked."""
    body = order_body("toh_pregnancy_34_weeks", "order-sign", [_named(SCD_ZOLEDRONIC["display"])])
    response = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] == "critical" and "pregnant" in card["summary"] and "recognised by name" in card["summary"]
    assert "**Recognised by its name, to confirm** (confidence: by name)" in card["detail"]
    assert "'zoledronic acid 5 MG in 100 ML Injection' names 'zoledronic acid'" in card["detail"]
    assert "http://www.nlm.nih.gov/research/umls/rxnorm|0000000) is not one hipdx reads" in card["detail"]
    assert "**pregnant** = yes" in card["detail"] and card["overrideReasons"]


def test_a_contained_medication_named_in_another_form_is_recognised_with_low_clearance(client: TestClient) -> None:
    """A contained Medication whose text says 'Zoledronate' (the salt's form of zoledronic acid), no code at all."""
    order = {"resourceType": "MedicationRequest", "id": "draft-contained", "status": "draft", "intent": "order",
             "contained": [{"resourceType": "Medication", "id": "med", "code": {"text": "ZOLEDRONATE 5mg/100mL inj"}}],
             "medicationReference": {"reference": "#med"}, "subject": {"reference": "Patient/x"}}
    body = with_low_clearance(order_body("toh_man_classic", "order-sign", [order]))
    [card] = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json()["cards"]
    assert card["indicator"] == "critical" and "below 35" in card["detail"]
    assert "names 'zoledronate'; it has no code" in card["detail"]


@pytest.mark.parametrize("display", [
    "amoxicillin 500 MG Oral Capsule",  # a drug hipdx does not check
    "denosumabxyz 60 MG/ML Injection",  # a known name inside another word
    "xyzdenosumab 60 MG/ML Injection",
    "prednisolonexyz 5 MG Oral Tablet",
    "zoledronic acidic 5 MG",
])
def test_an_unrelated_or_merely_containing_name_gets_no_card(client: TestClient, display: str) -> None:
    body = order_body("toh_pregnancy_34_weeks", "order-sign", [_named(display, text=display)])
    assert client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json() == {"cards": []}


def test_a_known_code_still_wins_over_the_name(client: TestClient) -> None:
    """The code read first: ATC zoledronic acid with a text naming denosumab is checked as zoledronic acid, by code."""
    order = medication_request(ZOLEDRONIC)
    order["medicationCodeableConcept"]["text"] = "denosumab"
    body = order_body("toh_pregnancy_34_weeks", "order-sign", [order])
    [card] = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json()["cards"]
    assert "Zoledronic acid" in card["summary"] and "recognised by name" not in card["detail"].lower()


def test_the_known_names_come_from_the_order_table_and_the_knowledge_base(kb: hipdx.KnowledgeBase) -> None:
    from hipdx.fhir.codes import load_code_tables
    from hipdx.knowledge.treatment import OptionKind
    from hipdx.service.order_names import DrugNames

    drugs = [k for k, o in kb.treatment.treatments.options.items() if o.kind == OptionKind.drug]
    names = DrugNames.known(load_code_tables(), drugs).names
    assert names["zoledronic acid"] == names["zoledronate"] == "zoledronic_acid"  # the table's display, its salt form
    assert names["calcitonin"] == "calcitonin" and names["paracetamol"] == "analgesia_paracetamol"
    assert names["neridronate"] == names["neridronic acid"] == "neridronate"  # a knowledge-base option without a code
    assert not any("anti-inflammatory" in n for n in names)  # a class matched by prefix is not a name


def test_a_drug_recognised_by_name_with_nothing_against_it_gets_no_card(client: TestClient) -> None:
    """As for an order recognised by its code: no alert for a paracetamol order with nothing to say."""
    body = order_body("toh_man_classic", "order-sign", [_named("Acetaminophen 325 MG Oral Tablet", text="paracetamol 500 MG Oral Tablet")])
    assert client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json() == {"cards": []}
    body = order_body("toh_man_classic", "order-sign", [_named("Calcitonin Salmon 200 UNT/ACTUAT Nasal Spray")])
    [card] = client.post(f"/cds-services/{ORDER_SIGN_ID}", json=body).json()["cards"]
    assert card["indicator"] == "warning" and "(recognised by name): check calcium" in card["summary"]
