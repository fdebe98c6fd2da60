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


# --- arthritis of another joint -> inflammatory arthritis --------------------------------------

#: A woman of 50 with a gradual, restricted hip, an effusion and synovitis on MRI.
INFLAMED_HIP = {
    "age_years": 50,
    "sex": "female",
    "onset": {"type": "gradual", "days_since_onset": 60},
    "range_of_motion": "restricted",
    "imaging": [{"modality": "mri", "days_since_onset": 50, "findings": {"effusion": "present", "synovitis": "present"}}],
}


def test_arthritis_of_another_joint_is_a_finding_of_the_case_json() -> None:
    case = Case.model_validate({"other_joint_arthritis": "present"})
    assert case.other_joint_arthritis is P
    assert Case.model_validate({}).other_joint_arthritis is U


def test_arthritis_of_another_joint_raises_inflammatory_arthritis(run, kb: KnowledgeBase) -> None:
    alone = run(INFLAMED_HIP)
    with_other = run({**INFLAMED_HIP, "other_joint_arthritis": "present"})
    assert probability(with_other, "inflammatory") > 2 * probability(alone, "inflammatory")
    assert first(with_other) == "inflammatory"
    # polyarticular septic arthritis exists (about 15%): septic loses less than the monoarticular conditions
    assert probability(with_other, "septic") / probability(alone, "septic") > (
        probability(with_other, "toh") / probability(alone, "toh")
    )
    assert kb.variables["other_joint_arthritis"].spec.group == "history"  # a finding, not the patient's prior


@pytest.mark.parametrize(
    "text",
    [
        "arthritis first in the right shoulder, relieved with NSAIDs",
        "two painful joints (left hip, right wrist), one swollen (right wrist)",
        "acute polyarthritis",
        "oligoarticular onset",
    ],
)
def test_a_vignette_naming_arthritis_of_another_joint_sets_it_present(text: str) -> None:
    case, used, _ = vignette_to_case({"id": "v", "history": {"other_history": [text]}})
    assert case.other_joint_arthritis is P
    assert any("other_joint_arthritis = present" in line for line in used)


@pytest.mark.parametrize(
    "text", ["no complaints in other joints", "denied other joint pain, swelling or stiffness", "knee pain"]
)
def test_other_joints_without_arthritis_leave_it_unknown(text: str) -> None:
    case, _, _ = vignette_to_case({"id": "v", "history": {"other_history": [text]}})
    assert case.other_joint_arthritis is U


def test_arthritis_of_another_joint_comes_from_fhir_in_hipdx_codes() -> None:
    mapping = map_fhir(hipdx_finding("other_joint_arthritis", "present"), DAY)
    assert mapping.case.other_joint_arthritis is P


# --- a lesion of the ilium -> neoplasm -----------------------------------------------------------

#: A man of 65 with three months of hip-region pain and a normal temperature.
ILIAC_PAIN = {
    "age_years": 65,
    "sex": "male",
    "onset": {"type": "gradual", "days_since_onset": 90},
    "labs": {"qualitative": {"temperature": "normal"}},
}


def test_a_lesion_of_the_ilium_is_a_finding_of_structural_imaging_only() -> None:
    case = Case.model_validate({"imaging": [{"modality": "ct", "findings": {"iliac_lesion": "present"}}]})
    assert case.imaging[0].findings.iliac_lesion is P
    with pytest.raises(ValueError, match="iliac_lesion"):
        Case.model_validate({"imaging": [{"modality": "bone_scan", "findings": {"iliac_lesion": "present"}}]})


def test_a_lesion_of_the_ilium_raises_neoplasm(run, kb: KnowledgeBase) -> None:
    without = run(ILIAC_PAIN)
    iliac = run({**ILIAC_PAIN, "imaging": [{"modality": "mri", "days_since_onset": 80, "findings": {"iliac_lesion": "present"}}]})
    assert first(without) != "neoplasm"
    assert first(iliac) == "neoplasm"
    assert probability(iliac, "neoplasm") > 3 * probability(without, "neoplasm")


def test_a_lesion_of_the_ilium_and_a_focal_lesion_count_as_one_dependence_group(kb: KnowledgeBase) -> None:
    groups = kb.info.structure.dependence_groups
    assert any({"focal_lesion", "iliac_lesion"} <= set(group.members) for group in groups.values())


def test_the_vignette_key_iliac_bone_involvement_becomes_the_finding() -> None:
    record = {
        "id": "v",
        "imaging": [{"modality": "other", "findings": "lesion of the left ilium", "features": {"iliac_bone_involvement": True}}],
    }
    case, used, skipped = vignette_to_case(record)
    assert case.imaging[0].findings.iliac_lesion is P
    assert not any("iliac_bone_involvement" in line for line in skipped)


def test_a_lesion_of_the_ilium_comes_from_fhir_in_hipdx_codes() -> None:
    study = {
        "resourceType": "ImagingStudy",
        "id": "s",
        "status": "available",
        "subject": {"reference": "Patient/p"},
        "started": "2026-11-15T09:00:00Z",
        "series": [{"uid": "1.2", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MR"}}],
    }
    bundle = hipdx_finding("imaging.iliac_lesion", "present")
    bundle["entry"][1]["resource"]["derivedFrom"] = [{"reference": "ImagingStudy/s"}]
    bundle["entry"].append({"resource": study})
    [mri] = map_fhir(bundle, DAY).case.imaging
    assert mri.findings.iliac_lesion is P
