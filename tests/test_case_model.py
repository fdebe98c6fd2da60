"""The case model: three-state findings, strictness, plausibility checks, field-named problems."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import pytest

from hipdx import Case, InputError, parse_case
from hipdx.case import ImagingFindings, Modality, Presence
from hipdx.case.model import FINDING_MODALITIES
from hipdx.errors import Problem


def problems_of(raw: Any) -> list[Problem]:
    with pytest.raises(InputError) as info:
        parse_case(raw)
    return info.value.problems


def fields_of(raw: Any) -> list[str]:
    return [p.field for p in problems_of(raw)]


# --- three-state findings --------------------------------------------------------------


def test_every_finding_left_out_is_unknown_not_absent() -> None:
    case = Case()
    presence_fields = [
        case.limp,
        case.unable_to_bear_weight,
        case.systemic_symptoms,
        case.morning_stiffness,
        case.pain.weight_bearing,
        case.pain.at_night,
        case.risk_factors.alcohol_excess,
        case.risk_factors.corticosteroids.status,
        case.pregnancy.breastfeeding,
    ]
    assert all(value is Presence.unknown for value in presence_fields)
    assert case.sex.value == case.side.value == case.range_of_motion.value == "unknown"
    assert all(getattr(case.labs, name) is None for name in ("crp", "esr", "wbc", "temperature"))
    assert case.imaging == []


def test_explicit_unknown_equals_left_out() -> None:
    explicit = parse_case({"limp": "unknown", "pain": {"at_night": "unknown"}, "risk_factors": {"smoking": "unknown"}})
    assert explicit == Case()


@pytest.mark.parametrize("state", ["present", "absent"])
def test_present_and_absent_are_facts_distinct_from_unknown(state: str) -> None:
    case = parse_case({"limp": state})
    assert case.limp is Presence(state)
    assert case != Case()


@pytest.mark.parametrize("bad", ["yes", "no", True, None, 1, "Present "])
def test_a_finding_takes_only_the_three_states(bad: Any) -> None:
    assert fields_of({"limp": bad}) == ["limp"]


def test_only_known_imaging_findings_are_listed() -> None:
    findings = ImagingFindings(edema=Presence.present, double_line_sign=Presence.absent)
    assert findings.reported() == ["edema", "double_line_sign"]
    assert ImagingFindings().reported() == []


# --- field-named problems for implausible or malformed input ---------------------------


@pytest.mark.parametrize(
    ("raw", "field", "reason_part"),
    [
        ({"age_years": 300}, "age_years", "120"),
        ({"age_years": -1}, "age_years", "0"),
        ({"labs": {"esr": {"value": -4, "unit": "mm/h"}}}, "labs.esr", "implausible"),
        ({"labs": {"crp": {"value": 4, "unit": "mmol/L"}}}, "labs.crp", "mg/dL"),
        ({"labs": {"crp": {"value": 4}}}, "labs.crp.unit", ""),
        ({"labs": {"bmd_t_score": -12}}, "labs.bmd_t_score", ""),
        (
            {"sex": "male", "pregnancy": {"status": "postpartum", "postpartum_weeks": 41}},
            "pregnancy.status",
            "male",
        ),
        ({"age_years": 80, "pregnancy": {"status": "pregnant"}}, "pregnancy.status", "80"),
        ({"pregnancy": {"status": "not_pregnant", "gestational_weeks": 20}}, "pregnancy.gestational_weeks", ""),
        ({"pregnancy": {"status": "pregnant", "gestational_weeks": 50}}, "pregnancy.gestational_weeks", ""),
        (
            {"imaging": [{"modality": "mri", "findings": {"subchondral_band": "absent", "subchondral_band_thickness_mm": 5}}]},
            "imaging.0.findings.subchondral_band",
            "absent",
        ),
        (
            {"imaging": [{"modality": "mri", "findings": {"edema": "absent", "edema_extent": "head_and_neck"}}]},
            "imaging.0.findings.edema_extent",
            "absent",
        ),
        (
            {"imaging": [{"modality": "radiograph", "findings": {"collapse": "absent", "collapse_depth_mm": 2}}]},
            "imaging.0.findings.collapse_depth_mm",
            "",
        ),
        (
            {"imaging": [{"modality": "radiograph", "findings": {"double_line_sign": "present"}}]},
            "imaging.0.findings.double_line_sign",
            "radiograph",
        ),
        (
            {"imaging": [{"modality": "mri", "findings": {"osteopenia": "present"}}]},
            "imaging.0.findings.osteopenia",
            "mri",
        ),
        (
            {"imaging": [{"modality": "bone_scan", "findings": {"edema": "present"}}]},
            "imaging.0.findings.edema",
            "bone_scan",
        ),
        (
            {"imaging": [{"modality": "mri", "findings": {"contrast_pattern": "subchondral_non_enhancement"}}]},
            "imaging.0.findings.contrast_pattern",
            "contrast",
        ),
        ({"imaging": [{"modality": "ct", "contrast": True}]}, "imaging.0.contrast", "MRI"),
        ({"imaging": [{"modality": "ultrasound"}]}, "imaging.0.modality", "ultrasound"),
        (
            {"risk_factors": {"corticosteroids": {"status": "absent", "dose_mg_per_day": 20}}},
            "risk_factors.corticosteroids.status",
            "absent",
        ),
        ({"limpp": "present"}, "limpp", "unknown field"),
        ({"risk_factors": {"smokin": "present"}}, "risk_factors.smokin", "unknown field"),
        ({"imaging": [{"modality": "mri", "findings": {"edemma": "present"}}]}, "imaging.0.findings.edemma", "unknown field"),
        ({"schema_version": "2"}, "schema_version", ""),
        ({"id": "line\nbreak"}, "id", "printable"),
    ],
)
def test_implausible_or_malformed_values_name_their_field(raw: dict, field: str, reason_part: str) -> None:
    problems = problems_of(raw)
    assert [p.field for p in problems] == [field], problems
    assert reason_part in problems[0].reason


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"assessed_on": "2026-01-01", "onset": {"date": "2026-02-01"}}, "onset.date"),
        ({"onset": {"date": "2026-02-01"}, "imaging": [{"modality": "mri", "date": "2026-01-15"}]}, "imaging.0.date"),
        ({"assessed_on": "2026-03-01", "imaging": [{"modality": "mri", "date": "2026-04-01"}]}, "imaging.0.date"),
        (
            {"onset": {"days_since_onset": 10}, "imaging": [{"modality": "mri", "days_since_onset": 20}]},
            "imaging.0.days_since_onset",
        ),
        ({"onset": {"date": "2026-02-01", "days_since_onset": 3}}, "onset.days_since_onset"),
        ({"imaging": [{"modality": "mri", "date": "2026-02-01", "days_since_onset": 3}]}, "imaging.0.days_since_onset"),
        ({"onset": {"date": "2026-02-30"}}, "onset.date"),
    ],
)
def test_inconsistent_dates_are_rejected(raw: dict, field: str) -> None:
    assert fields_of(raw) == [field]


def test_the_second_study_is_named_by_its_index() -> None:
    raw = {
        "onset": {"date": "2026-02-01"},
        "imaging": [{"modality": "radiograph", "date": "2026-02-03"}, {"modality": "mri", "date": "2026-01-20"}],
    }
    assert fields_of(raw) == ["imaging.1.date"]


def test_every_problem_is_listed_at_once() -> None:
    raw = {"age_years": 300, "limp": "yes", "labs": {"esr": {"value": -4, "unit": "mm/h"}}, "colour": "blue"}
    assert sorted(fields_of(raw)) == ["age_years", "colour", "labs.esr", "limp"]


def test_the_error_lists_each_problem_in_its_text() -> None:
    with pytest.raises(InputError) as info:
        parse_case({"age_years": 300, "limp": "yes"})
    text = str(info.value)
    assert "age_years:" in text and "limp:" in text
    assert info.value.http_status == 400 and info.value.exit_code == 2


@pytest.mark.parametrize(
    ("raw", "message_part"),
    [
        ('{"age_years": ', "not valid JSON"),
        ("{'age_years': 40}", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('"a case"', "JSON object"),
        ("42", "JSON object"),
        ("null", "JSON object"),
        (b"\xff\xfe\x00", "not"),
        ([{"age_years": 40}], "JSON object"),
    ],
)
def test_malformed_json_or_not_an_object_is_an_input_error(raw: Any, message_part: str) -> None:
    with pytest.raises(InputError) as info:
        parse_case(raw)
    assert message_part in info.value.message


# --- what is accepted -------------------------------------------------------------------


def test_json_text_bytes_and_mapping_give_the_same_case() -> None:
    raw = {"age_years": 44, "sex": "male", "labs": {"crp": {"value": 0.4, "unit": "mg/dL"}}}
    text = json.dumps(raw)
    assert parse_case(text) == parse_case(text.encode()) == parse_case(raw)


def test_a_case_round_trips_through_json() -> None:
    raw = {
        "id": "round-trip",
        "age_years": 33,
        "sex": "female",
        "pregnancy": {"status": "pregnant", "gestational_weeks": 34},
        "onset": {"type": "sudden", "date": "2026-10-01"},
        "labs": {"temperature": {"value": 99.1, "unit": "degF"}},
        "imaging": [
            {"modality": "mri", "contrast": True, "date": "2026-10-20",
             "findings": {"edema_extent": "head_and_neck", "contrast_pattern": "homogeneous_enhancement"}},
        ],
    }
    case = parse_case(raw)
    assert parse_case(case.model_dump_json()) == case


def test_the_case_is_immutable() -> None:
    case = Case(age_years=40)
    with pytest.raises(Exception):
        case.age_years = 41  # type: ignore[misc]


@pytest.mark.parametrize("finding", sorted(FINDING_MODALITIES))
def test_each_finding_is_accepted_on_its_own_modalities_only(finding: str) -> None:
    annotation = ImagingFindings.model_fields[finding].annotation
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        value: Any = next(v.value for v in annotation if v.value != "unknown")
    else:  # a measurement
        value = 2.0
    for modality in Modality:
        study = {"modality": modality.value, "findings": {finding: value}}
        if finding == "contrast_pattern" and modality is Modality.mri:
            study["contrast"] = True
        if modality in FINDING_MODALITIES[finding]:
            parse_case({"imaging": [study]})
        else:
            assert fields_of({"imaging": [study]}) == [f"imaging.0.findings.{finding}"]


def test_json_schema_describes_the_case() -> None:
    schema = Case.model_json_schema()
    json.dumps(schema)  # serialisable
    assert schema["additionalProperties"] is False
    for name in ("age_years", "pregnancy", "onset", "labs", "imaging", "risk_factors"):
        assert name in schema["properties"]
    presence = schema["$defs"]["Presence"]
    assert presence["enum"] == ["present", "absent", "unknown"]


def test_a_lab_value_without_its_unit_is_refused_and_the_message_says_why() -> None:
    with pytest.raises(InputError) as err:
        parse_case({"labs": {"crp": 5}})
    (problem,) = err.value.problems
    assert problem.field == "labs.crp"
    assert "unit" in problem.reason and "cannot be guessed" in problem.reason


# --- strict types: nothing converted (issue 12) ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "reason_part"),
    [
        ({"age_years": True}, "age_years", "true is not a number"),
        ({"age_years": False}, "age_years", "false is not a number"),
        ({"age_years": "45"}, "age_years", '"45" is not a number'),
        ({"labs": {"crp": {"value": True, "unit": "mg/L"}}}, "labs.crp.value", "true is not a number"),
        ({"labs": {"bmd_t_score": True}}, "labs.bmd_t_score", "true is not a number"),
        ({"pain": {"severity_0_10": True}}, "pain.severity_0_10", "not a number"),
        ({"visits": [{"days_since_onset": True}]}, "visits.0.days_since_onset", "not a number"),
        ({"imaging": [{"modality": "mri", "contrast": 1}]}, "imaging.0.contrast", "1 is not true or false"),
        ({"imaging": [{"modality": "mri", "contrast": "yes"}]}, "imaging.0.contrast", "not true or false"),
        ({"onset": {"date": 0}}, "onset.date", "YYYY-MM-DD"),
        ({"onset": {"date": 1700000000}}, "onset.date", "a number is not read as a date"),
        ({"assessed_on": 20260101}, "assessed_on", "YYYY-MM-DD"),
        ({"assessed_on": "2026-01-01T00:00:00"}, "assessed_on", "YYYY-MM-DD"),
        ({"imaging": [{"modality": "mri", "date": True}]}, "imaging.0.date", "YYYY-MM-DD"),
        ({"visits": [{"date": 86400}]}, "visits.0.date", "YYYY-MM-DD"),
        ({"assessed_on": "2026-02-30"}, "assessed_on", "not a calendar date"),
    ],
)
def test_booleans_text_and_numbers_are_not_converted(raw: dict, field: str, reason_part: str) -> None:
    problems = problems_of(raw)
    assert [p.field for p in problems] == [field], problems
    assert reason_part in problems[0].reason, problems[0].reason


def test_integers_and_decimals_are_numbers_and_iso_dates_are_dates() -> None:
    case = parse_case({"age_years": 45, "labs": {"crp": {"value": 5, "unit": "mg/L"}, "bmd_t_score": -2.5},
                       "assessed_on": "2026-03-01", "onset": {"date": "2026-02-01"}})
    assert case.age_years == 45.0 and isinstance(case.age_years, float)
    assert case.labs.canonical("crp") == 5.0
    assert case.onset.date is not None and case.onset.date.isoformat() == "2026-02-01"


# --- free text: no control characters (issue 12) ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"note": "fine\u001b[8m hidden"}, "note"),
        ({"note": "overwritten\rALL CLEAR"}, "note"),
        ({"note": "csi \u009b2J"}, "note"),
        ({"note": "reads \u202eright to left"}, "note"),
        ({"id": "case\u001b[31m"}, "id"),
        ({"id": "line\nbreak"}, "id"),
        ({"visits": [{"days_since_onset": 10, "new_joint_site": "knee\u001b[8m"}]}, "visits.0.new_joint_site"),
        ({"visits": [{"days_since_onset": 10, "note": "\u0007bell"}]}, "visits.0.note"),
        ({"labs": {"crp": {"value": 5, "unit": "mg/L\u001b[0m"}}}, "labs.crp.unit"),
    ],
)
def test_control_characters_in_free_text_are_refused_naming_the_field(raw: dict, field: str) -> None:
    problems = problems_of(raw)
    assert [p.field for p in problems] == [field], problems
    assert "not printable text" in problems[0].reason and "U+" in problems[0].reason
    assert "\u001b" not in str(problems[0])


def test_notes_keep_line_breaks_tabs_and_any_language() -> None:
    case = parse_case({"note": "douleur de hanche\n\tdepuis 3 semaines, 5\u00a0mg", "id": "caf\u00e9-\u6771\u4eac"})
    assert case.note is not None and "\n\t" in case.note


# --- impossible times (issue 12) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "reason_part"),
    [
        ({"onset": {"date": "0001-01-01"}}, "onset.date", "not a plausible date"),
        ({"onset": {"date": "9999-12-31"}}, "onset.date", "not a plausible date"),
        ({"assessed_on": "1900-01-01"}, "assessed_on", "not a plausible date"),
        ({"assessed_on": "2026-11-25", "onset": {"date": "2010-01-01"}}, "onset.date", "more than 10 years"),
        (
            {"assessed_on": "2026-03-01", "onset": {"days_since_onset": 10},
             "imaging": [{"modality": "mri", "date": "2026-01-01"}]},
            "imaging.0.date",
            "before the onset of pain",
        ),
        (
            {"assessed_on": "2026-02-01", "onset": {"date": "2026-01-01"},
             "imaging": [{"modality": "mri", "days_since_onset": 40}]},
            "imaging.0.days_since_onset",
            "later than the assessment (31 days)",
        ),
        (
            {"assessed_on": "2026-03-01", "onset": {"date": "2026-01-01"}, "visits": [{"date": "2026-04-01"}]},
            "visits.0.date",
            "is after assessed_on",
        ),
        ({"onset": {"date": "2026-01-01"}, "visits": [{"date": "2025-12-01"}]}, "visits.0.date", "before onset.date"),
        (
            {"onset": {"days_since_onset": 30}, "visits": [{"days_since_onset": 10}, {"days_since_onset": 45}]},
            "visits.1.days_since_onset",
            "later than the assessment (30 days)",
        ),
    ],
)
def test_impossible_times_are_refused_naming_the_field(raw: dict, field: str, reason_part: str) -> None:
    problems = problems_of(raw)
    assert [p.field for p in problems] == [field], problems
    assert reason_part in problems[0].reason, problems[0].reason


def test_the_one_check_of_a_time_since_onset_is_public() -> None:
    from hipdx.case import check_date, check_days_since_onset

    assert check_days_since_onset(0, "x") == 0 and check_days_since_onset(3650, "x") == 3650
    for days, assessed in ((-1, None), (3651, None), (40, 30)):
        with pytest.raises(InputError) as info:
            check_days_since_onset(days, "imaging.0.date", assessed)
        assert info.value.problems[0].field == "imaging.0.date"
    import datetime as dt

    assert check_date(dt.date(2026, 1, 1), "--today") == dt.date(2026, 1, 1)
    with pytest.raises(InputError, match="--today"):
        check_date(dt.date(1, 1, 1), "--today")


def test_an_unknown_field_with_control_characters_is_named_escaped() -> None:
    # found by the fuzz target: the unknown key itself reached the terminal
    problems = problems_of({"\u001b[8mlimp": "present"})
    assert problems[0].field == "\\x1b[8mlimp" and "unknown field" in problems[0].reason


# --- laboratory results reported only in words -------------------------------------------


def test_a_lab_result_in_words_is_normal_or_raised_for_a_lab_with_a_reference_range() -> None:
    case = parse_case({"labs": {"qualitative": {"crp": "raised", "temperature": "normal"}}})
    assert {k: v.value for k, v in case.labs.qualitative.items()} == {"crp": "raised", "temperature": "normal"}
    assert case.labs.canonical("crp") is None  # never turned into a number
    assert fields_of({"labs": {"qualitative": {"crp": "high"}}}) == ["labs.qualitative.crp"]
    assert fields_of({"labs": {"qualitative": {"egfr": "raised"}}})[0].startswith("labs.qualitative.egfr")


def test_a_lab_given_as_a_value_and_in_words_is_refused_naming_it() -> None:
    problems = problems_of({"labs": {"crp": {"value": 12, "unit": "mg/L"}, "qualitative": {"crp": "normal"}}})
    assert len(problems) == 1 and "qualitative.crp" in str(problems[0]) and "one or the other" in str(problems[0])
