"""FHIR R4 -> Case: the hip-pain bundles, the official examples and Synthea, and the rules.

The shared data (../shared/data/fhir beside the checkout) are read through conftest.shared_data:
absent, they fail in CI or beside ../shared, and are skipped with the path elsewhere.
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hipdx
from hipdx.errors import IntegrationError, KnowledgeBaseError
from hipdx.fhir import load_code_tables, map_fhir, read_fhir, read_json
from hipdx.fhir.codes import CodeTables, default_codes_dir

from conftest import EXAMPLES, ROOT, TODAY, shared_data, shared_files

BUNDLES = ROOT / "tests" / "data" / "fhir"
EXPECTED = {  # example file -> the condition it is written for
    p.stem: p.stem.split("_")[0] for p in sorted(EXAMPLES.glob("*.json"))
}
DAY = dt.date(2026, 11, 20)
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


SHARED_FILES = shared_files("data/fhir/hl7-r4-examples", "*.json") + shared_files("data/fhir/synthea-r4", "*.json.gz")


def bundle(*resources: dict[str, Any], patient: dict[str, Any] | None = None) -> dict[str, Any]:
    """A collection Bundle with a Patient/p (male, born 1980-05-01) and the given resources."""
    pat = patient or {"resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1980-05-01"}
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in (pat, *resources)]}


def obs(rid: str, system: str, code: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2026-11-18",
        **value,
    }


def condition(
    rid: str,
    system: str,
    code: str,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    **more: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p"},
        **more,
    }
    if clinical:
        out["clinicalStatus"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]
        }
    if verification:
        out["verificationStatus"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]
        }
    return out


def reasons(mapping: Any) -> str:
    return "\n".join(f"{u.resource} {u.element}: {u.reason}" for u in mapping.unmapped)


# -- the hip-pain bundles ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundle_maps_to_the_examples_assessment(name: str, kb: hipdx.KnowledgeBase) -> None:
    """Each bundle (written from examples/NAME.json) leads with its condition, with the example's very numbers."""
    example = hipdx.parse_case((EXAMPLES / f"{name}.json").read_bytes())
    mapping = read_fhir((BUNDLES / f"{name}.bundle.json").read_bytes(), example.assessed_on or TODAY)
    from_fhir = hipdx.assess(mapping.case, kb, TODAY)
    assert from_fhir.differential[0].id == EXPECTED[name]
    direct = hipdx.assess(example, kb, TODAY)
    assert [(d.id, d.probability) for d in from_fhir.differential] == [
        (d.id, d.probability) for d in direct.differential
    ]
    assert [f.id for f in from_fhir.red_flags] == [f.id for f in direct.red_flags]
    assert mapping.unmapped == [], reasons(mapping)


def test_every_condition_has_a_bundle(kb: hipdx.KnowledgeBase) -> None:
    assert set(EXPECTED.values()) == set(kb.condition_ids)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fact_names_a_resource_of_the_bundle(name: str) -> None:
    raw = json.loads((BUNDLES / f"{name}.bundle.json").read_text())
    ids = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in raw["entry"]}
    mapping = map_fhir(raw, TODAY)
    assert {s.resource for s in mapping.sources} <= ids
    sourced = {s.field.split("[")[0] for s in mapping.sources}
    facts = mapping.case.model_dump(exclude_defaults=True, exclude={"id", "assessed_on"})
    for key, value in facts.items():
        leaves = _leaves(key, value)
        for leaf in leaves:
            assert any(leaf == f or leaf.startswith(f + ".") or f.startswith(leaf) for f in sourced), leaf


def _leaves(prefix: str, value: Any) -> list[str]:
    if prefix == "imaging":
        return ["imaging"]
    if isinstance(value, dict) and not {"value", "unit"} <= set(value):
        return [leaf for k, v in value.items() for leaf in _leaves(f"{prefix}.{k}", v)]
    return [prefix]


# -- no crash on the official examples and Synthea -------------------------------------------------


@pytest.mark.real_data
@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.name)
def test_shared_fhir_maps_or_fails_clearly(path: Path) -> None:
    shared_data(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        mapping = read_fhir(raw, TODAY, what=path.name)
    except IntegrationError as err:
        assert err.message and "Traceback" not in str(err)
        return
    assert mapping.case.assessed_on == TODAY
    for source in mapping.sources:
        assert source.resource and source.element


@pytest.mark.real_data
def test_shared_data_are_complete() -> None:
    for path in SHARED_FILES:
        shared_data(path)
    names = [p.name for p in SHARED_FILES]
    assert sum(n.endswith(".json") for n in names) == 283
    assert sum(n.endswith(".gz") for n in names) == 98


# -- strict JSON --------------------------------------------------------------------------------------


def test_duplicate_keys_are_refused() -> None:
    text = '{"resourceType": "Patient", "id": "p", "gender": "male", "gender": "female"}'
    with pytest.raises(IntegrationError, match="gives a key twice") as err:
        read_fhir(text, DAY)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ('{"a": NaN}', "NaN is not a number hipdx accepts"),
        ("42", "must be a resource, a Bundle or an array"),
        ('[{"id": "x"}]', "no valid resourceType"),
        ('{"resourceType": "Bundle", "entry": {"resource": {}}}', "entry: must be an array"),
    ],
)
def test_bad_json_is_a_clear_error(text: str | bytes, message: str) -> None:
    with pytest.raises(IntegrationError) as err:
        read_fhir(text, DAY)
    assert message in str(err.value)


def test_read_json_plain() -> None:
    assert read_json('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}


# -- patients ------------------------------------------------------------------------------------------


def test_age_is_counted_to_the_assessment_date() -> None:
    assert map_fhir(bundle(), dt.date(2026, 4, 30)).case.age_years == 45
    assert map_fhir(bundle(), dt.date(2026, 5, 1)).case.age_years == 46


def test_a_birth_year_alone_gives_no_age() -> None:
    mapping = map_fhir(bundle(patient={"resourceType": "Patient", "id": "p", "birthDate": "1980"}), DAY)
    assert mapping.case.age_years is None
    assert "gives no day" in reasons(mapping)


def test_several_patients_need_a_choice() -> None:
    two = bundle({"resourceType": "Patient", "id": "q", "gender": "female", "birthDate": "1990-01-01"})
    with pytest.raises(IntegrationError, match="2 patients"):
        map_fhir(two, DAY)
    assert map_fhir(two, DAY, patient_id="q").case.sex.value == "female"
    with pytest.raises(IntegrationError, match="no Patient with id 'z'"):
        map_fhir(two, DAY, patient_id="z")


def test_resources_about_another_patient_are_left_out() -> None:
    other = obs("o", LOINC, "1988-5", valueQuantity={"value": 3, "unit": "mg/L", "system": UCUM, "code": "mg/L"})
    other["subject"] = {"reference": "Patient/q"}
    mapping = map_fhir(bundle(other), DAY)
    assert mapping.case.labs.crp is None
    assert "another subject" in reasons(mapping)


def test_without_a_patient_the_common_subject_is_used() -> None:
    crp = obs("o", LOINC, "1988-5", valueQuantity={"value": 3, "unit": "mg/L", "system": UCUM, "code": "mg/L"})
    mapping = map_fhir([crp], DAY)
    assert mapping.patient == "Patient/p" and mapping.case.labs.canonical("crp") == 3


def test_urn_uuid_references_resolve() -> None:
    raw = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:aaa",
                "resource": {"resourceType": "Patient", "id": "x", "gender": "female", "birthDate": "1990-02-03"},
            },
            {
                "fullUrl": "urn:uuid:bbb",
                "resource": {
                    **obs(
                        "o",
                        LOINC,
                        "4537-7",
                        valueQuantity={"value": 20, "unit": "mm/h", "system": UCUM, "code": "mm/h"},
                    ),
                    "subject": {"reference": "urn:uuid:aaa"},
                },
            },
        ],
    }
    assert map_fhir(raw, DAY).case.labs.canonical("esr") == 20


# -- numbers and units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "quantity", "field", "canonical"),
    [
        ("1988-5", {"value": 1.5, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}, "crp", 15.0),
        ("6690-2", {"value": 7.2, "unit": "10*3/uL", "system": UCUM, "code": "10*3/uL"}, "wbc", 7.2),
        ("8310-5", {"value": 101.3, "unit": "F", "system": UCUM, "code": "[degF]"}, "temperature", 38.5),
        ("62292-8", {"value": 50, "unit": "nmol/L", "system": UCUM, "code": "nmol/L"}, "vitamin_d", 50 / 2.496),
        ("2160-0", {"value": 1.0, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}, "creatinine", 88.42),
        (
            "33914-3",
            {"value": 75, "unit": "mL/min/{1.73_m2}", "system": UCUM, "code": "mL/min/{1.73_m2}"},
            "egfr",
            75.0,
        ),
        ("17861-6", {"value": 2.4, "unit": "mmol/L"}, "calcium", 2.4),  # no UCUM system: a unit text the case accepts
        # the micro sign (U+00B5) or Greek mu (U+03BC) for UCUM's "u": read as umol/L (before: left out)
        ("2160-0", {"value": 80, "unit": "\u00b5mol/L"}, "creatinine", 80.0),
        ("2160-0", {"value": 80, "unit": "\u03bcmol/L", "system": UCUM, "code": "\u03bcmol/L"}, "creatinine", 80.0),
    ],
)
def test_labs_are_converted_through_ucum(code: str, quantity: dict[str, Any], field: str, canonical: float) -> None:
    mapping = map_fhir(bundle(obs("o", LOINC, code, valueQuantity=quantity)), DAY)
    assert mapping.case.labs.canonical(field) == pytest.approx(canonical, rel=1e-3)
    assert [s.element for s in mapping.sources if s.field == f"labs.{field}"] == ["valueQuantity"]


@pytest.mark.parametrize(
    ("quantity", "reason"),
    [
        ({"value": 3}, "no unit: a number without its unit is not read"),
        (
            {"value": 3, "unit": "milligrams per litre", "system": "http://example.org/units", "code": "MGL"},
            "unit 'MGL' is not accepted",
        ),
        ({"value": 3, "unit": "g/L", "system": UCUM, "code": "g/L"}, "unit 'g/L' is not accepted"),
        ({"value": 5, "comparator": "<", "unit": "mg/L", "system": UCUM, "code": "mg/L"}, "is a bound, not a value"),
        ({"unit": "mg/L", "system": UCUM, "code": "mg/L"}, "a quantity without a value"),
        # the UCUM code and the unit shown name two different units, ten times apart (before: the code held)
        ({"value": 3, "unit": "mg/L", "system": UCUM, "code": "mg/dL"}, "disagree"),
    ],
)
def test_a_number_is_not_guessed(quantity: dict[str, Any], reason: str) -> None:
    mapping = map_fhir(bundle(obs("o", LOINC, "1988-5", valueQuantity=quantity)), DAY)
    assert mapping.case.labs.crp is None
    assert reason in reasons(mapping)


def test_an_implausible_value_is_left_out_naming_its_source() -> None:
    crp = obs("o", LOINC, "1988-5", valueQuantity={"value": 9000, "unit": "mg/L", "system": UCUM, "code": "mg/L"})
    esr = obs("e", LOINC, "4537-7", valueQuantity={"value": 20, "unit": "mm/h", "system": UCUM, "code": "mm/h"})
    child = obs("w", LOINC, "29463-7", valueQuantity={"value": 14, "unit": "kg", "system": UCUM, "code": "kg"})
    mapping = map_fhir(bundle(crp, esr, child), DAY)
    assert mapping.case.labs.crp is None and mapping.case.weight_kg is None
    assert mapping.case.labs.canonical("esr") == 20  # the rest of the record still counts
    [crp_left] = [u for u in mapping.unmapped if u.resource == "Observation/o"]
    assert crp_left.element == "valueQuantity" and "implausible for crp" in crp_left.reason
    assert not any(s.resource in ("Observation/o", "Observation/w") for s in mapping.sources)


def test_the_latest_value_wins_and_old_ones_are_left_out() -> None:
    q = {"unit": "mg/L", "system": UCUM, "code": "mg/L"}
    early = obs("a", LOINC, "1988-5", valueQuantity={"value": 40, **q}, effectiveDateTime="2026-11-10")
    late = obs("b", LOINC, "1988-5", valueQuantity={"value": 4, **q}, effectiveDateTime="2026-11-19T08:30:00+01:00")
    stale = obs("c", LOINC, "1988-5", valueQuantity={"value": 90, **q}, effectiveDateTime="2026-01-01")
    future = obs("d", LOINC, "1988-5", valueQuantity={"value": 80, **q}, effectiveDateTime="2026-12-01")
    mapping = map_fhir(bundle(early, late, stale, future), DAY)
    assert mapping.case.labs.canonical("crp") == 4
    text = reasons(mapping)
    assert (
        "superseded by Observation/b" in text
        and "older than the 30 days" in text
        and "after the assessment date" in text
    )


@pytest.mark.parametrize("status", ["preliminary", "registered", "entered-in-error", "cancelled"])
def test_only_final_results_are_read(status: str) -> None:
    crp = obs(
        "o", LOINC, "1988-5", status=status, valueQuantity={"value": 3, "unit": "mg/L", "system": UCUM, "code": "mg/L"}
    )
    assert map_fhir(bundle(crp), DAY).case.labs.crp is None


def test_components_are_read() -> None:
    bp = obs(
        "bp",
        LOINC,
        "85354-9",
        component=[
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": 80, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 128, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            },
        ],
    )
    mapping = map_fhir(bundle(bp), DAY)
    assert mapping.case.systolic_bp_mmhg == 128
    assert [s.element for s in mapping.sources if s.field == "systolic_bp_mmhg"] == ["component[1].valueQuantity"]


# -- malformed FHIR ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            {"valueQuantity": {"value": "3", "unit": "mg/L"}},
            "Observation/o.valueQuantity.value: must be a number, not a string",
        ),
        ({"effectiveDateTime": "18/11/2026"}, "Observation/o.effectiveDateTime: '18/11/2026' is not a FHIR date"),
        ({"effectiveDateTime": "2026-02-30"}, "Observation/o.effectiveDateTime: '2026-02-30' is not a calendar date"),
        ({"code": {"coding": {"system": LOINC, "code": "1988-5"}}}, "Observation/o.code.coding: must be an array"),
        ({"subject": "Patient/p"}, "Observation/o.subject: must be an object"),
        (
            {"valueQuantity": {"value": True, "unit": "mg/L"}},
            "Observation/o.valueQuantity.value: must be a number, not true/false",
        ),
        # a Coding read in one pass (Resource.codings' fast path) is still named element by element when wrong
        ({"code": {"coding": [{"system": LOINC, "code": "1988-5"}, "1988-5"]}}, "Observation/o.code.coding[1]: must be an object, not a string"),
        ({"code": {"coding": [{"system": LOINC, "code": 1988}]}}, "Observation/o.code.coding[0].code: must be a string, not a number"),
        ({"code": {"coding": [{"system": True, "code": "1988-5"}]}}, "Observation/o.code.coding[0].system: must be a string, not true/false"),
        ({"code": {"coding": [{"code": "x"}, {"system": [LOINC], "code": "1988-5"}]}}, "Observation/o.code.coding[1].system: must be a string, not an array"),
        ({"code": ["1988-5"]}, "Observation/o.code: must be an object, not an array"),
    ],
)
def test_malformed_fhir_names_resource_and_element(change: dict[str, Any], where: str) -> None:
    crp = {
        **obs("o", LOINC, "1988-5", valueQuantity={"value": 3, "unit": "mg/L", "system": UCUM, "code": "mg/L"}),
        **change,
    }
    with pytest.raises(IntegrationError) as err:
        map_fhir(bundle(crp), DAY)
    assert where in str(err.value)


def test_a_long_date_text_is_refused_by_name_and_not_kept() -> None:
    """Date texts are parsed once per distinct text (a memo); one longer than any FHIR dateTime is
    refused with the same message and never kept, so what a client sends cannot fill the memory."""
    from hipdx.fhir.resources import _parse_date_memo

    long_text = "2026-11-20T10:30:00Z" + "0" * 100_000
    crp = obs("o", LOINC, "1988-5", valueQuantity={"value": 3, "unit": "mg/L", "system": UCUM, "code": "mg/L"})
    before = _parse_date_memo.cache_info().currsize
    with pytest.raises(IntegrationError) as err:
        map_fhir(bundle({**crp, "effectiveDateTime": long_text}), DAY)
    assert "Observation/o.effectiveDateTime: '2026-11-20T10:30:00Z000" in str(err.value)
    assert "is not a FHIR date or dateTime" in str(err.value)
    assert _parse_date_memo.cache_info().currsize == before


# -- conditions -----------------------------------------------------------------------------------------------


def test_conditions_by_snomed_and_icd10cm() -> None:
    mapping = map_fhir(
        bundle(
            condition("a", SCT, "7200002"),
            condition("b", ICD, "C50.911", clinical="resolved"),  # a cancer history stays history
            condition("c", ICD, "M32.14"),
            condition("d", ICD, "Z79.52"),
            condition("e", ICD, "M25.552", onsetDateTime="2026-10-30"),
        ),
        DAY,
    )
    case = mapping.case
    assert case.risk_factors.alcohol_excess.value == "present"
    assert case.risk_factors.cancer_history.value == "present"
    assert case.risk_factors.sle.value == "present"
    assert case.risk_factors.corticosteroids.status.value == "present"
    assert case.side.value == "left" and case.onset.date == dt.date(2026, 10, 30)


def test_refuted_is_absent_and_unconfirmed_is_unknown() -> None:
    mapping = map_fhir(
        bundle(
            condition("a", SCT, "7200002", clinical=None, verification="refuted"),
            condition("b", ICD, "M32.9", verification="provisional"),
            condition("c", ICD, "B20", verification="entered-in-error"),
        ),
        DAY,
    )
    assert mapping.case.risk_factors.alcohol_excess.value == "absent"
    assert mapping.case.risk_factors.sle.value == "unknown"
    assert mapping.case.risk_factors.hiv.value == "unknown"
    assert "provisional" in reasons(mapping) and "entered in error" in reasons(mapping)


def test_a_current_fact_needs_an_active_record() -> None:
    mapping = map_fhir(
        bundle(condition("a", SCT, "7200002", clinical="resolved"), condition("b", ICD, "F10.20", clinical=None)), DAY
    )
    assert mapping.case.risk_factors.alcohol_excess.value == "unknown"
    assert "asks about the present" in reasons(mapping) and "cannot tell whether" in reasons(mapping)


def test_recent_events_count_only_within_their_window() -> None:
    old = condition("a", ICD, "I21.4", onsetDateTime="2025-01-01")
    new = condition("b", ICD, "G45.9", onsetDateTime="2026-10-01")
    mapping = map_fhir(bundle(old, new), DAY)
    assert mapping.case.comorbidities.recent_myocardial_infarction.value == "unknown"
    assert mapping.case.comorbidities.recent_stroke_or_tia.value == "present"


def test_sickle_cell_trait_is_not_the_disease() -> None:
    mapping = map_fhir(bundle(condition("a", ICD, "D57.3")), DAY)
    assert mapping.case.risk_factors.sickle_cell_disease.value == "unknown"
    assert "not in hipdx's code tables" in reasons(mapping)


def test_contradictions_the_case_refuses_are_left_out_with_the_reason() -> None:
    mapping = map_fhir(bundle(condition("a", SCT, "77386006")), DAY)  # Patient/p is male
    assert mapping.case.pregnancy.status.value == "unknown" and mapping.case.sex.value == "male"
    [left] = [u for u in mapping.unmapped if u.resource == "Condition/a"]
    assert "impossible for a male patient" in left.reason


def test_pregnancy_weeks_are_carried_to_the_assessment_date() -> None:
    woman = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1993-03-03"}
    weeks = obs(
        "g",
        LOINC,
        "49051-6",
        valueQuantity={"value": 30, "unit": "wk", "system": UCUM, "code": "wk"},
        effectiveDateTime="2026-11-13",
    )
    mapping = map_fhir(bundle(weeks, patient=woman), DAY)
    assert mapping.case.pregnancy.status.value == "pregnant"
    assert mapping.case.pregnancy.gestational_weeks == pytest.approx(31)



def _status(rid: str, answer: str, day: str) -> dict[str, Any]:
    return obs(rid, LOINC, "82810-3", valueCodeableConcept={"coding": [{"system": LOINC, "code": answer}]},
               effectiveDateTime=day)


@pytest.mark.parametrize(
    "record",
    [
        _status("old", "LA26683-5", "2023-05-01"),  # "Not pregnant", three and a half years before
        _status("old", "LA15173-0", "2025-01-10"),  # "Pregnant", 22 months before
        condition("old", SCT, "77386006", clinical=None, verification="refuted", recordedDate="2022-02-01"),
        condition("old", SCT, "77386006", clinical=None, verification="refuted"),  # refuted, undated
        condition("old", SCT, "60001007", recordedDate="2024-06-01"),  # "Not pregnant (finding)", active
    ],
    ids=["not-pregnant-2023", "pregnant-2025", "refuted-2022", "refuted-undated", "not-pregnant-finding-2024"],
)
def test_an_old_pregnancy_status_is_not_the_status_now(record: dict[str, Any]) -> None:
    """Pregnancy status is a statement about one visit. Before, a 'Not pregnant' answer of 2023, a
    refuted pregnancy of 2022 (or undated) made a woman of 33 'not pregnant' today, and the plan and
    the order hooks stopped asking for the pregnancy status before a bisphosphonate or an X-ray."""
    woman = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1993-03-03"}
    mapping = map_fhir(bundle(record, patient=woman), DAY)
    assert mapping.case.pregnancy.status.value == "unknown"
    [left] = [u for u in mapping.unmapped if u.resource.endswith("/old")]
    assert "pregnancy status" in left.reason.lower() or "pregnant" in left.reason.lower(), left.reason
    assert "days" in left.reason or "no date" in left.reason, left.reason
    window = load_code_tables().windows["pregnancy_status"]
    recent = (DAY - dt.timedelta(days=window)).isoformat()
    fresh = copy.deepcopy(record)
    fresh["effectiveDateTime" if record["resourceType"] == "Observation" else "recordedDate"] = recent
    assert map_fhir(bundle(fresh, patient=woman), DAY).case.pregnancy.status.value != "unknown"

def test_allergies_and_no_known_drug_allergy() -> None:
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "a",
        "patient": {"reference": "Patient/p"},
        "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "M05BA04"}]},
    }
    assert map_fhir(bundle(allergy), DAY).case.comorbidities.bisphosphonate_hypersensitivity.value == "present"
    nkda = {**allergy, "code": {"coding": [{"system": SCT, "code": "409137002"}]}}
    assert map_fhir(bundle(nkda), DAY).case.comorbidities.bisphosphonate_hypersensitivity.value == "absent"


# -- medicines ---------------------------------------------------------------------------------------------------


def med(rid: str, system: str, code: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": "active",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"coding": [{"system": system, "code": code}]},
        **more,
    }


def test_steroid_dose_as_prednisolone_equivalent() -> None:
    dosage = [
        {
            "route": {"coding": [{"system": SCT, "code": "26643006"}]},
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 8, "unit": "mg", "system": UCUM, "code": "mg"}}],
        }
    ]
    statement = med("m", "http://www.whocc.no/atc", "H02AB04", dosage=dosage, effectivePeriod={"start": "2026-08-28"})
    steroids = map_fhir(bundle(statement), DAY).case.risk_factors.corticosteroids
    assert steroids.status.value == "present"
    assert steroids.dose_mg_per_day == 20  # methylprednisolone 16 mg/day x 1.25
    assert steroids.duration_weeks == pytest.approx(12.0)


def test_topical_and_local_forms_are_not_systemic() -> None:
    cream = med("a", "http://www.nlm.nih.gov/research/umls/rxnorm", "106258")
    no_route = med("b", "http://www.nlm.nih.gov/research/umls/rxnorm", "5492")
    mapping = map_fhir(bundle(cream, no_route), DAY)
    assert mapping.case.risk_factors.corticosteroids.status.value == "unknown"
    assert "not a systemic medicine" in reasons(mapping) and "no systemic route" in reasons(mapping)


def test_medication_reference_and_statuses() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "id": "r",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "contained": [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "B01AF02"}]},
            }
        ],
        "medicationReference": {"reference": "#med"},
    }
    assert map_fhir(bundle(request), DAY).case.comorbidities.anticoagulant_use.value == "present"
    cancelled = {**request, "status": "cancelled"}
    assert map_fhir(bundle(cancelled), DAY).case.comorbidities.anticoagulant_use.value == "unknown"


# -- imaging ---------------------------------------------------------------------------------------------------------


def finding(rid: str, code: str, value: str, **more: Any) -> dict[str, Any]:
    return obs(
        rid,
        "urn:hipdx:codesystem:finding",
        code,
        valueCodeableConcept={"coding": [{"system": "urn:hipdx:codesystem:finding-value", "code": value}]},
        **more,
    )


def test_imaging_findings_need_their_study() -> None:
    study = {
        "resourceType": "ImagingStudy",
        "id": "s",
        "status": "available",
        "subject": {"reference": "Patient/p"},
        "started": "2026-11-15T09:00:00Z",
        "series": [
            {"uid": "1.2", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MR"}}
        ],
    }
    linked = finding("f1", "imaging.edema", "present", derivedFrom=[{"reference": "ImagingStudy/s"}])
    loose = finding("f2", "imaging.double_line_sign", "absent")
    mapping = map_fhir(bundle(study, linked, loose), DAY)
    [mri] = mapping.case.imaging
    assert mri.modality.value == "mri" and mri.date == dt.date(2026, 11, 15)
    assert mri.findings.edema.value == "present" and mri.findings.double_line_sign.value == "unknown"
    assert "not linked to an ImagingStudy" in reasons(mapping)


def test_findings_that_do_not_fit_their_modality_drop_the_study() -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r",
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": LOINC, "code": "30767-8"}]},
        "effectiveDateTime": "2026-11-15",
        "result": [{"reference": "Observation/f"}],
    }
    mapping = map_fhir(bundle(report, finding("f", "imaging.double_line_sign", "present")), DAY)
    assert mapping.case.imaging == []
    assert "cannot be reported on a radiograph" in reasons(mapping)


def test_diagnoses_in_reports_are_not_findings() -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r",
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": LOINC, "code": "30687-8"}]},
        "effectiveDateTime": "2026-11-15",
        "conclusionCode": [{"coding": [{"system": SCT, "code": "203476003"}]}],
    }
    assert "a coded diagnosis is a conclusion" in reasons(map_fhir(bundle(report), DAY))


# -- the code tables ----------------------------------------------------------------------------------------------


def test_code_tables_load_and_cite_their_sources() -> None:
    tables = load_code_tables()
    assert tables.sources and len(tables.digest) == 16
    assert tables.fact_codes.find(ICD, "M81.0").entry.field == "risk_factors.osteoporosis"
    assert tables.medications.find("http://www.whocc.no/atc", "H02BX01").drug_class == "systemic_corticosteroid"


def test_a_code_without_a_listed_source_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "codes"
    shutil.copytree(default_codes_dir(), folder)
    facts = folder / "facts.yaml"
    facts.write_text(facts.read_text().replace("source: synthea_r4", "source: nowhere", 1))
    with pytest.raises(KnowledgeBaseError) as err:
        CodeTables(folder)
    assert "source 'nowhere' is not in sources.yaml" in str(err.value)


def test_a_field_the_case_lacks_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "codes"
    shutil.copytree(default_codes_dir(), folder)
    facts = folder / "facts.yaml"
    facts.write_text(facts.read_text().replace("field: risk_factors.sle", "field: risk_factors.lupus", 1))
    with pytest.raises(KnowledgeBaseError, match="inconsistent") as err:
        CodeTables(folder)
    assert "risk_factors.lupus: is not a field of the case model" in str(err.value)


def test_a_key_given_twice_in_a_table_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "codes"
    shutil.copytree(default_codes_dir(), folder)
    units = folder / "units.yaml"
    units.write_text(units.read_text().replace('crp: {"mg/L": "mg/L"', 'crp: {"mg/L": "mg/L", "mg/L": "mg/dL"', 1))
    with pytest.raises(KnowledgeBaseError, match="repeats a key"):
        CodeTables(folder)


def test_every_finding_code_is_a_case_field() -> None:
    tables = load_code_tables()
    case = hipdx.Case()
    for code in tables.findings:
        node: Any = case if not code.startswith("imaging.") else hipdx.case.ImagingFindings()
        for part in code.removeprefix("imaging.").split("."):
            node = getattr(node, part)


def test_mapping_does_not_change_its_input() -> None:
    raw = json.loads((BUNDLES / "toh_man_classic.bundle.json").read_text())
    before = copy.deepcopy(raw)
    map_fhir(raw, TODAY)
    assert raw == before


# -- no crash whatever an element holds (property) ----------------------------------------------------------------


_FUZZ_BUNDLE = json.loads((BUNDLES / "onfh_steroids_double_line.bundle.json").read_text())


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*path, i))
    return out


_FUZZ_PATHS = _paths(_FUZZ_BUNDLE)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["2026-11-20", "2026-13-01", "2026", "Patient/x", "#m", "urn:uuid:0", "mg/L", "http://loinc.org", "1988-5"]
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["reference", "coding", "system", "code", "value", "unit", "start"]), children, max_size=3
        )
    ),
    max_leaves=6,
)


@pytest.mark.slow  # a long property run (300 changed bundles)
@settings(max_examples=300)
@given(changes=st.lists(st.tuples(st.sampled_from(_FUZZ_PATHS), _JSON | st.just(...)), min_size=1, max_size=3))
def test_any_element_changed_maps_or_fails_clearly(changes: list[tuple[tuple[Any, ...], Any]]) -> None:
    """Whatever an element of a real bundle holds (or when it is removed): a mapping or an IntegrationError."""
    raw = copy.deepcopy(_FUZZ_BUNDLE)
    for path, value in changes:
        node: Any = raw
        try:
            for key in path[:-1]:
                node = node[key]
            if value is ...:
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or replaced the parent
    try:
        mapping = map_fhir(raw, TODAY)
    except IntegrationError as err:
        assert err.message
        return
    assert mapping.case.assessed_on == TODAY


def _table_codes(system: str) -> list[Any]:
    tables = load_code_tables()
    found = []
    for table in (
        tables.fact_codes,
        tables.complaints,
        tables.pregnancy_conditions,
        tables.quantity_codes,
        tables.answer_codes,
        tables.presence_values,
        tables.medications,
        tables.systemic_routes,
        tables.modalities,
        tables.imaging_orders,
        tables.drug_orders,
        tables.hip_body_sites,
    ):
        found += [c for c in table.codes() if c.system == system]
    found += [c for c in tables.suggestion_codes.values() if c.system == system]
    found += [v for answer in tables.answers for v in answer.values if v.system == system]
    found += [c for codes in tables.condition_codes.values() for c in codes if c.system == system]
    return found


@pytest.mark.filterwarnings(
    "ignore:(read|open)_text is deprecated:DeprecationWarning"
)  # how simple-icd-10-cm 1.5.0 loads its data
@pytest.mark.slow  # reads the whole ICD-10-CM tabular list
def test_every_icd10cm_code_is_in_the_tabular_list() -> None:
    import simple_icd_10_cm as icd

    codes = _table_codes("icd10cm")
    assert len(codes) > 40
    for code in codes:
        if code.code == "C":  # the chapter of malignant neoplasms, C00-C96, matched as a prefix
            continue
        assert icd.is_valid_item(code.code), code.code
        assert icd.get_description(code.code) == code.display, code.code


def test_every_unverified_code_is_listed_in_the_docs() -> None:
    docs = (ROOT / "docs" / "fhir.md").read_text()
    unverified = {
        c.code
        for system in ("sct", "loinc", "rxnorm", "atc", "cpt")
        for c in _table_codes(system)
        if c.confidence == "unverified"
    }
    assert unverified
    missing = sorted(code for code in unverified if code not in docs)
    assert not missing, f"docs/fhir.md does not name these unverified codes: {missing}"


def test_a_table_finds_what_a_scan_of_its_codes_finds() -> None:
    """The lookup by system and prefix length finds, for every listed code and codes around it
    (a child, a parent, another system), the exact code first, else the longest matching prefix
    of the same system, the earlier listed on a tie: what a scan of the sorted codes finds."""
    tables = load_code_tables()
    names = [
        "fact_codes", "complaints", "pregnancy_conditions", "quantity_codes", "answer_codes", "presence_values",
        "medications", "systemic_routes", "modalities", "imaging_orders", "drug_orders", "hip_body_sites",
    ]
    prefixes = 0
    for name in names:
        table = getattr(tables, name)
        listed = table.codes()
        exact = {(tables.uri(c.system), c.code): c for c in reversed(listed) if c.match == "exact"}
        ordered = sorted((c for c in listed if c.match == "prefix"), key=lambda c: -len(c.code))
        prefixes += len(ordered)
        for listed_code in listed:
            for code in {listed_code.code, listed_code.code + "1", listed_code.code + ".9", listed_code.code[:-1]}:
                for system in {tables.uri(listed_code.system), "http://snomed.info/sct", "urn:other"}:
                    scanned = exact.get((system, code)) or next(
                        (c for c in ordered if tables.uri(c.system) == system and code.startswith(c.code)), None
                    )
                    assert table.find(system, code) is scanned, (name, system, code)
    assert prefixes > 10  # ICD-10-CM categories, ATC classes


def test_the_longest_prefix_of_the_code_s_own_system_wins() -> None:
    from hipdx.fhir.codes import Code, Table

    def code(system: str, text: str, display: str, match: str = "prefix") -> Code:
        return Code(system=system, code=text, display=display, source="s", confidence="good", match=match)  # type: ignore[arg-type]

    uris = {"icd": "urn:icd", "atc": "urn:atc"}
    listed = [
        code("icd", "M8", "class"), code("icd", "M80", "category"), code("icd", "M80", "category again"),
        code("icd", "M80.0", "exact", "exact"), code("atc", "M80.01", "another system"),
    ]
    table = Table(listed, uris)
    assert table.find("urn:icd", "M80.0").display == "exact"  # type: ignore[union-attr]
    assert table.find("urn:icd", "M80.01").display == "category"  # type: ignore[union-attr]
    assert table.find("urn:icd", "M81").display == "class"  # type: ignore[union-attr]
    assert table.find("urn:icd", "M") is None  # shorter than every prefix
    assert table.find("urn:atc", "M80.012").display == "another system"  # type: ignore[union-attr]
    assert table.find("urn:atc", "M80") is None and table.find("urn:other", "M80") is None
