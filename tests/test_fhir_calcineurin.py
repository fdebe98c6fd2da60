"""A calcineurin inhibitor in the record (MedicationRequest, MedicationStatement) blocks NSAIDs.

Before: the FHIR reader set only risk_factors.immunosuppression from tacrolimus or ciclosporin,
so a transplant recipient's plan asked whether the patient takes a calcineurin inhibitor although
the chart held the prescription (safety rule nsaid_calcineurin_inhibitor: Delzer 2018, Chiasson 2019).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import hipdx
from hipdx.fhir import map_fhir
from hipdx.reasoning.plan import ItemStatus

DAY = dt.date(2026, 12, 8)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
SCT = "http://snomed.info/sct"
ORAL = {"route": {"coding": [{"system": SCT, "code": "26643006", "display": "Oral route"}]}}
PATIENT = {"resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1974-03-02"}


def request(rid: str, system: str, code: str, status: str = "active", **more: Any) -> dict[str, Any]:
    """A MedicationRequest (an order, taken by mouth)."""
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
            "subject": {"reference": "Patient/p"}, "authoredOn": "2025-06-01",
            "medicationCodeableConcept": {"coding": [{"system": system, "code": code}]},
            "dosageInstruction": [ORAL], **more}


def statement(rid: str, system: str, code: str, status: str = "active", **more: Any) -> dict[str, Any]:
    return {"resourceType": "MedicationStatement", "id": rid, "status": status, "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": {"coding": [{"system": system, "code": code}]},
            "effectivePeriod": {"start": "2025-06-01"}, "dosage": [ORAL], **more}


def mapped(*resources: dict[str, Any]) -> Any:
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in (PATIENT, *resources)]}
    return map_fhir(bundle, DAY)


@pytest.mark.parametrize(
    "resource",
    [
        request("tac", RXNORM, "42316"),  # tacrolimus (RxNorm ingredient)
        statement("csa", RXNORM, "3008"),  # cyclosporine (RxNorm ingredient, HL7 PDDI value set)
        request("tac-atc", ATC, "L04AD02"),  # tacrolimus (WHO ATC)
        statement("voc", ATC, "L04AD03"),  # voclosporin (WHO ATC)
        request("csa-hold", RXNORM, "3008", status="on-hold"),  # paused, to be resumed
    ],
    ids=["tacrolimus-request", "ciclosporin-statement", "tacrolimus-atc", "voclosporin-atc", "on-hold"],
)
def test_a_current_calcineurin_inhibitor_is_read_with_its_source(resource: dict[str, Any]) -> None:
    mapping = mapped(resource)
    assert mapping.case.comorbidities.calcineurin_inhibitor_use.value == "present"
    assert mapping.case.risk_factors.immunosuppression.value == "present"
    source = next(s for s in mapping.sources if s.field == "comorbidities.calcineurin_inhibitor_use")
    assert source.resource == f"{resource['resourceType']}/{resource['id']}"
    assert f"status {resource['status']}" in source.value


@pytest.mark.parametrize(
    "resource",
    [
        request("done", RXNORM, "42316", status="completed"),
        request("stop", RXNORM, "42316", status="stopped"),
        request("err", RXNORM, "42316", status="entered-in-error"),
        statement("ended", RXNORM, "3008", effectivePeriod={"start": "2025-06-01", "end": "2026-10-01"}),
        statement("eye", RXNORM, "3008", dosage=[]),  # ciclosporin without a systemic route (eye drops)
        statement("other", ATC, "L04AX01"),  # azathioprine: an immunosuppressant, not a calcineurin inhibitor
    ],
    ids=["completed", "stopped", "entered-in-error", "ended", "no-systemic-route", "azathioprine"],
)
def test_a_past_or_other_medicine_leaves_the_fact_unknown(resource: dict[str, Any]) -> None:
    mapping = mapped(resource)
    assert mapping.case.comorbidities.calcineurin_inhibitor_use.value == "unknown"


def test_a_stopped_one_says_why_it_is_not_read_as_current() -> None:
    mapping = mapped(request("stop", RXNORM, "42316", status="stopped"))
    assert mapping.case.risk_factors.immunosuppression.value == "present"  # past exposure still counts there
    assert any(u.resource == "MedicationRequest/stop" and "calcineurin inhibitor taken now" in u.reason
               for u in mapping.unmapped)


def _plan(*resources: dict[str, Any]) -> hipdx.Assessment:
    case = mapped(*resources).case.model_dump(mode="json", exclude_unset=True)
    case.update({"weight_kg": 75, "onset": {"type": "sudden", "days_since_onset": 30},
                 "imaging": [{"modality": "mri", "days_since_onset": 25,
                              "findings": {"edema": "present", "edema_extent": "head_and_neck"}}]})
    case.setdefault("comorbidities", {}).update({"anticoagulant_use": "absent", "heart_failure": "absent",
                                  "bleeding_risk": "absent", "peptic_ulcer_history": "absent"})
    case["labs"] = {"egfr": {"value": 45, "unit": "mL/min/1.73m2"}, "crp": {"value": 2, "unit": "mg/L"}}
    return hipdx.assess(hipdx.parse_case(case), hipdx.load_knowledge_base(), DAY)


def test_the_transplant_patients_plan_blocks_the_nsaid_and_does_not_ask() -> None:
    a = _plan(request("tac", RXNORM, "42316"))
    assert "calcineurin_inhibitor_use" not in {r.fact for r in a.plan.needs_information}
    nsaids = [i for i in a.plan.items() if i.option == "nsaid"]
    assert nsaids and all(i.status is ItemStatus.blocked for i in nsaids)
    # a completed course leaves it unknown: asked for
    a = _plan(request("done", RXNORM, "42316", status="completed"))
    assert "calcineurin_inhibitor_use" in {r.fact for r in a.plan.needs_information}


def test_a_hipdx_coded_observation_and_the_web_form_carry_the_fact() -> None:
    observation = {"resourceType": "Observation", "id": "o", "status": "final", "subject": {"reference": "Patient/p"},
                   "code": {"coding": [{"system": "urn:hipdx:codesystem:finding",
                                        "code": "comorbidities.calcineurin_inhibitor_use"}]},
                   "effectiveDateTime": "2026-12-01",
                   "valueCodeableConcept": {"coding": [{"system": "urn:hipdx:codesystem:finding-value", "code": "absent"}]}}
    assert mapped(observation).case.comorbidities.calcineurin_inhibitor_use.value == "absent"
    from hipdx.web import form as forms

    widgets = forms.all_widgets(forms.case_sections())
    raw = {"age_years": 52, "sex": "male", "comorbidities": {"calcineurin_inhibitor_use": "present"}}
    case, state = forms.read_form(forms.values_from_case(raw).items(), widgets, DAY)
    assert case is not None and case.comorbidities.calcineurin_inhibitor_use.value == "present", state.summary
