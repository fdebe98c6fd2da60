"""Variables added in the seventh accuracy round (issue 11): facts the vignette records carry that
the base did not read, from the case JSON, a vignette record and (where a code exists) FHIR."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import hipdx
from hipdx.case import Case, Presence
from hipdx.evaluation.vignette import vignette_to_case
from hipdx.fhir import map_fhir
from hipdx.knowledge import KnowledgeBase

P, U = Presence.present, Presence.unknown
DAY = dt.date(2026, 11, 20)


def probability(assessment: hipdx.Assessment, condition: str) -> float:
    return next(d.probability for d in assessment.differential if d.id == condition)


def first(assessment: hipdx.Assessment) -> str:
    return assessment.differential[0].id


def hipdx_finding(code: str, value: str) -> dict[str, Any]:
    """A bundle with one Observation in hipdx's own finding code system (fhir/data/findings.yaml)."""
    observation = {
        "resourceType": "Observation",
        "id": "o",
        "status": "final",
        "code": {"coding": [{"system": "urn:hipdx:codesystem:finding", "code": code}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2026-11-18",
        "valueCodeableConcept": {"coding": [{"system": "urn:hipdx:codesystem:finding-value", "code": value}]},
    }
    patient = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1994-05-01"}
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient}, {"resource": observation}]}


# --- injection drug use -> septic arthritis -------------------------------------------------

#: A woman of 32 with rest pain, stiffness and a narrowed, destroyed joint and a normal temperature.
DESTROYED_HIP = {
    "age_years": 32,
    "sex": "female",
    "pain": {"at_rest": "present"},
    "range_of_motion": "restricted",
    "labs": {"qualitative": {"temperature": "normal"}},
    "imaging": [{"modality": "radiograph", "days_since_onset": 70, "findings": {"joint_space": "destroyed"}}],
}


def test_injection_drug_use_is_a_fact_of_the_case_json() -> None:
    case = Case.model_validate({"risk_factors": {"injection_drug_use": "present"}})
    assert case.risk_factors.injection_drug_use is P
    assert Case.model_validate({}).risk_factors.injection_drug_use is U


def test_injection_drug_use_raises_septic_arthritis(run, kb: KnowledgeBase) -> None:
    without = run(DESTROYED_HIP)
    injecting = run({**DESTROYED_HIP, "risk_factors": {"injection_drug_use": "present"}})
    assert first(without) != "septic"
    assert first(injecting) == "septic"
    assert probability(injecting, "septic") > 3 * probability(without, "septic")
    spec = kb.variables["injection_drug_use"].spec
    assert spec.group == "patient"


@pytest.mark.parametrize(
    "text",
    ["intravenous drug use", "injected into her femoral veins for 2 years", "injecting drug user (heroin)", "IVDU"],
)
def test_a_vignette_naming_injection_drug_use_sets_it_present(text: str) -> None:
    case, used, _ = vignette_to_case({"id": "v", "risk_factors": {"other": [text]}})
    assert case.risk_factors.injection_drug_use is P
    assert any("risk_factors.injection_drug_use = present" in line for line in used)


@pytest.mark.parametrize("text", ["no intravenous drug use", "denies injecting drugs", "intra-articular injection"])
def test_a_negated_or_unrelated_injection_is_not_drug_use(text: str) -> None:
    case, _, _ = vignette_to_case({"id": "v", "history": {"other_history": [text]}})
    assert case.risk_factors.injection_drug_use is U


def test_injection_drug_use_comes_from_fhir_in_hipdx_codes() -> None:
    mapping = map_fhir(hipdx_finding("risk_factors.injection_drug_use", "present"), DAY)
    assert mapping.case.risk_factors.injection_drug_use is P
