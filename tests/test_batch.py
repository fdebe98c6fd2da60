"""Batch assessment: the same observations and posteriors as one-by-one assessment, many at once."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import examples

from hipdx.case import Case
from hipdx.reasoning import assess
from hipdx.reasoning.encode import encoder_for
from hipdx.reasoning.batch import BatchResult, assess_batch, assess_batch_json, batch_encoder_for
from hipdx.reasoning.differential import observation_keys, observation_weights, posterior, undefined_folds


def _load_generator():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "cases.py"
    spec = importlib.util.spec_from_file_location("hipdx_benchmark_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()
TODAY = generator.TODAY

#: Red-flag triggers that ask for "not measured": ESR high with CRP unknown, then with CRP
#: normal; night pain with systemic symptoms and temperature unknown, then with a fever.
NOT_MEASURED_CASES = [
    {"labs": {"esr": {"value": 80, "unit": "mm/h"}}},
    {"labs": {"esr": {"value": 80, "unit": "mm/h"}, "crp": {"value": 3, "unit": "mg/L"}}},
    {"systemic_symptoms": "present", "pain": {"at_night": "present"}},
    {"systemic_symptoms": "present", "pain": {"at_night": "present"}, "labs": {"temperature": {"value": 38.9, "unit": "degC"}}},
]

#: Hand-made cases for the corners of the imaging rule ("the most recent study that reports
#: it"), time bands, bin edges and red flags.
EDGE_CASES = NOT_MEASURED_CASES + [
    {},
    {"sex": "female", "pregnancy": {"status": "postpartum"}},
    {"sex": "unknown", "pregnancy": {"status": "pregnant"}, "age_years": 30},
    # two MRIs on the same day: the later in the list wins
    {
        "onset": {"days_since_onset": 30},
        "imaging": [
            {"modality": "mri", "days_since_onset": 20, "findings": {"edema": "present", "effusion": "absent"}},
            {"modality": "mri", "days_since_onset": 20, "findings": {"edema": "absent", "effusion": "present"}},
        ],
    },
    # a study of unknown time counts as -1 days; a study on the day of onset (day 0) comes after it
    # (a study dated before the onset, a negative time, is refused since issue 12)
    {
        "assessed_on": "2026-01-10",
        "onset": {"days_since_onset": 10},
        "imaging": [
            {"modality": "radiograph", "findings": {"osteopenia": "present"}},
            {"modality": "radiograph", "date": "2025-12-31", "findings": {"osteopenia": "absent"}},
            {"modality": "ct", "date": "2025-12-31", "findings": {"femoral_neck_fracture_line": "present"}},
        ],
    },
    # the latest study does not report the finding: an earlier one does
    {
        "onset": {"date": "2025-11-01"},
        "imaging": [
            {"modality": "mri", "date": "2025-11-05", "findings": {"synovitis": "present", "edema": "present"}},
            {"modality": "mri", "date": "2025-12-20", "findings": {"synovitis": "unknown", "edema_extent": "femoral_neck"}},
            {"modality": "bone_scan", "date": "2025-12-21", "findings": {"uptake": "unknown"}},
        ],
    },
    # time bands: within 48 h of onset, and time not known at all
    {"onset": {"days_since_onset": 1}, "imaging": [{"modality": "mri", "days_since_onset": 1, "findings": {"edema": "absent"}}]},
    {"imaging": [{"modality": "radiograph", "findings": {"osteopenia": "present", "femoral_neck_fracture_line": "absent"}}]},
    # a subchondral band at the cut-off, a contrast study
    {
        "imaging": [
            {
                "modality": "mri",
                "contrast": True,
                "findings": {
                    "subchondral_band": "present",
                    "subchondral_band_thickness_mm": 4.2,
                    "contrast_pattern": "subchondral_non_enhancement",
                },
            }
        ]
    },
    # labs reported only in words (labs.qualitative), beside measured ones
    {"labs": {"qualitative": {"crp": "raised", "temperature": "raised", "esr": "normal", "wbc": "normal", "calcium": "raised"}}},
    {"labs": {"crp": {"value": 60, "unit": "mg/L"}, "qualitative": {"esr": "raised", "temperature": "normal", "wbc": "raised"}}},
    # a CRP raised in words may be below 50 mg/L: the infiltration pattern still holds (neoplasm_signs)
    {
        "age_years": 55,
        "pain": {"at_rest": "present", "at_night": "present"},
        "labs": {"qualitative": {"crp": "raised"}},
        "imaging": [{"modality": "mri", "findings": {"edema_extent": "head_and_neck"}}],
    },
    # corticosteroids with a CRP raised in words (septic_signs)
    {"risk_factors": {"corticosteroids": {"status": "present"}}, "labs": {"qualitative": {"crp": "raised"}}},
    # labs exactly on bin edges, in other units
    {
        "age_years": 40,
        "labs": {
            "crp": {"value": 1.0, "unit": "mg/dL"},
            "esr": {"value": 40, "unit": "mm/hr"},
            "wbc": {"value": 11000, "unit": "cells/uL"},
            "temperature": {"value": 101.3, "unit": "degF"},
            "bmd_t_score": -2.5,
        },
    },
]


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    raw = EDGE_CASES + generator.generate_cases(1000, seed=20260101)
    return [Case.model_validate(c) for c in raw]


def _reference_keys(kb, case: Case) -> np.ndarray:
    """The key row of one case, read with CaseEncoder.encode, one column per variable."""
    column = {v: i for i, v in enumerate(kb.variables)}
    observations = encoder_for(kb).encode(case, TODAY)
    row = np.full(len(column), len(kb.log_p) - 1, dtype=np.intp)
    row[[column[o.variable] for o in observations]] = observation_keys(kb, observations)
    return row


# --- the case generator ----------------------------------------------------------


def test_generated_cases_are_valid_and_varied():
    raw = generator.generate_cases(3000, seed=5)
    cases = [Case.model_validate(c) for c in raw]  # raises if any is invalid
    assert all(16 <= c.age_years <= 90 for c in cases)
    pregnant = [c for c in cases if c.pregnancy.status.value in ("pregnant", "postpartum")]
    assert pregnant and all(c.sex.value == "female" and c.age_years <= 50 for c in pregnant)
    assert {len(c.imaging) for c in cases} == {0, 1, 2, 3}
    assert {s.modality.value for c in cases for s in c.imaging} == {"radiograph", "mri", "ct", "bone_scan"}
    units = {m["unit"] for c in raw for lab in c.get("labs", {}).values() if isinstance(lab, dict) for m in [lab]}
    assert {"mg/L", "mg/dL", "cells/uL", "degF", "nmol/L", "umol/L"} <= units
    assert any(c.onset.date for c in cases) and any(c.onset.days_since_onset for c in cases)
    assert any(c.onset.date is None and c.onset.days_since_onset is None for c in cases)
    assert any(c.visits for c in cases) and any(c.comorbidities.heart_failure.value != "unknown" for c in cases)


def test_generator_is_reproducible():
    assert generator.generate_json_lines(50, seed=3) == generator.generate_json_lines(50, seed=3)
    assert generator.generate_json_lines(50, seed=3) != generator.generate_json_lines(50, seed=4)


# --- the batch encoder reads what CaseEncoder reads ------------------------------


def test_batch_keys_equal_case_encoder(kb, cases):
    matrix = batch_encoder_for(kb).keys(cases, TODAY)
    assert matrix.shape == (len(cases), len(kb.variables))
    for i, case in enumerate(cases):
        np.testing.assert_array_equal(matrix[i], _reference_keys(kb, case), err_msg=f"case {i}")


@settings(max_examples=examples(25), deadline=None, derandomize=True, database=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_batch_keys_equal_case_encoder_for_any_seed(kb, seed):
    cases = [Case.model_validate(c) for c in generator.generate_cases(20, seed=seed)]
    matrix = batch_encoder_for(kb).keys(cases, TODAY)
    for i, case in enumerate(cases):
        np.testing.assert_array_equal(matrix[i], _reference_keys(kb, case))


def test_batch_keys_do_not_depend_on_the_other_cases(kb, cases):
    full = batch_encoder_for(kb).keys(cases[:60], TODAY)
    for i in (0, 3, 4, 5, 17, 59):
        np.testing.assert_array_equal(batch_encoder_for(kb).keys([cases[i]], TODAY)[0], full[i])


# --- the batch posterior is the single assessment's ------------------------------


def test_batch_posterior_equals_single_posterior(kb, cases):
    result = assess_batch(cases, kb, TODAY)
    encoder = encoder_for(kb)
    for i, case in enumerate(cases):
        observations = encoder.encode(case, TODAY)
        single = posterior(kb, observation_keys(kb, observations), observation_weights(kb, observations), undefined_folds(kb, observations))
        np.testing.assert_allclose(result.probabilities[i], single, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_batch_agrees_with_assess(kb, cases):
    sample = cases[: len(EDGE_CASES) + 200]
    result = assess_batch(sample, kb, TODAY)
    column = {cid: j for j, cid in enumerate(result.condition_ids)}
    assert list(result.condition_ids) == kb.condition_ids
    for i, case in enumerate(sample):
        a = assess(case, kb, TODAY)
        for item in a.differential:  # assess rounds to 4 decimals
            assert abs(result.probabilities[i, column[item.id]] - item.probability) <= 0.5e-4 + 1e-12
        assert result.top_condition_ids()[i] == a.differential[0].id
        # the batch path has no staging: it reports the rule and probability flags
        assert set(result.red_flags_of(i)) == {hit.id for hit in a.red_flags if hit.kind != "staging"}
        assert result.n_observations[i] == len(encoder_for(kb).encode(case, TODAY))
        assert result.case_ids[i] == case.id


def test_red_flags_that_ask_for_a_finding_not_measured(kb):
    result = assess_batch([Case.model_validate(c) for c in NOT_MEASURED_CASES], kb, TODAY)
    assert "septic_signs" in result.red_flags_of(0)
    assert "septic_signs" not in result.red_flags_of(1)
    assert "neoplasm_signs" in result.red_flags_of(2)
    assert "neoplasm_signs" not in result.red_flags_of(3)


def test_labs_in_words_every_combination_read_as_by_the_case_encoder(kb):
    import itertools

    labs = ("esr", "crp", "wbc", "temperature", "calcium")
    raw = [
        {"age_years": 50, "labs": {"qualitative": {lab: r for lab, r in zip(labs, results) if r is not None}}}
        for results in itertools.product((None, "normal", "raised"), repeat=len(labs))
    ]
    cases = [Case.model_validate(c) for c in raw]
    matrix = batch_encoder_for(kb).keys(cases, TODAY)
    for i, case in enumerate(cases):
        np.testing.assert_array_equal(matrix[i], _reference_keys(kb, case), err_msg=str(raw[i]))


def test_red_flags_of_labs_in_words(kb):
    """A CRP raised in words counts as raised (steroids: septic signs) and may be below 50 mg/L
    (the marrow-infiltration pattern, which a CRP above 50 would explain, still holds)."""
    start = EDGE_CASES.index({"labs": {"qualitative": {"crp": "raised", "temperature": "raised", "esr": "normal", "wbc": "normal", "calcium": "raised"}}})
    sample = [Case.model_validate(c) for c in EDGE_CASES[start : start + 4]]
    result = assess_batch(sample, kb, TODAY)
    assert "neoplasm_signs" in result.red_flags_of(2)
    assert "septic_signs" in result.red_flags_of(3)
    for i, case in enumerate(sample):
        assert set(result.red_flags_of(i)) == {hit.id for hit in assess(case, kb, TODAY).red_flags if hit.kind != "staging"}


def test_empty_batch(kb):
    for result in (assess_batch([], kb, TODAY), assess_batch_json([], kb, TODAY)):
        assert isinstance(result, BatchResult)
        assert len(result) == 0
        assert result.probabilities.shape == (0, len(kb.conditions))
        assert result.top.shape == (0,)
        assert result.red_flags.shape == (0, len(result.red_flag_ids))
        assert len(result.red_flag_ids) == len(kb.red_flags) + sum(c.must_not_miss for c in kb.conditions)
        assert result.input_index.shape == (0,)
        assert result.top_condition_ids() == []
        assert result.errors == ()


# --- JSON lines ------------------------------------------------------------------


def test_json_lines_report_bad_lines_and_assess_good_ones(kb):
    good = generator.generate_json_lines(3, seed=11)
    lines = [
        good[0],
        '{"age_years": 40, "sex": ',  # 1: truncated JSON
        good[1],
        '{"age_years": 500}',  # 3: implausible
        "   \n",  # 4: blank, skipped
        '{"sex": "alien", "limp": "yes"}',  # 5: two problems
        good[2].encode(),  # 6: bytes are fine
        "[1, 2]",  # 7: not an object
        '{"agee_years": 40}',  # 8: misspelt field
    ]
    result = assess_batch_json(lines, kb, TODAY)
    assert [e.index for e in result.errors] == [1, 3, 5, 7, 8]
    assert result.input_index.tolist() == [0, 2, 6]
    errors = {e.index: e for e in result.errors}
    assert errors[1].message == "the line is not valid JSON"
    assert errors[3].message == "the case is not valid"
    assert [p.field for p in errors[3].problems] == ["age_years"]
    assert {p.field for p in errors[5].problems} == {"sex", "limp"}
    assert [p.field for p in errors[8].problems] == ["agee_years"]
    assert "line 5" in str(errors[5])
    expected = assess_batch([Case.model_validate_json(g) for g in good], kb, TODAY)
    np.testing.assert_array_equal(result.probabilities, expected.probabilities)
    assert result.case_ids == tuple(json.loads(g).get("id") for g in good)


def test_json_lines_from_a_file(kb, tmp_path):
    path = tmp_path / "cases.ndjson"
    path.write_text("\n".join(generator.generate_json_lines(25, seed=2)) + "\n", encoding="utf-8")
    with path.open(encoding="utf-8") as lines:
        result = assess_batch_json(lines, kb, TODAY)
    assert len(result) == 25 and result.errors == ()


def test_batch_counts_dates_from_today_without_assessed_on(kb):
    # onset in days, study by date: the study's time since onset depends on the assessment date
    case = Case.model_validate(
        {"onset": {"days_since_onset": 5}, "imaging": [{"modality": "mri", "date": "2025-12-31", "findings": {"edema": "absent"}}]}
    )
    results = []
    for today in (dt.date(2025, 12, 31), dt.date(2026, 1, 4)):
        single = posterior(kb, observation_keys(kb, encoder_for(kb).encode(case, today)))
        results.append(assess_batch([case], kb, today).probabilities[0])
        np.testing.assert_allclose(results[-1], single, rtol=0, atol=1e-12)
    assert not np.allclose(results[0], results[1])  # day 5 vs day 1: another time band


def test_a_line_with_a_key_twice_or_nested_too_deep_is_an_error_not_the_last_value(kb) -> None:
    lines = ['{"age_years": 50, "sex": "male", "sex": "female"}', "[" * 990 + "]" * 990, '{"age_years": 50}']
    result = assess_batch_json(lines, kb, TODAY)
    assert [e.index for e in result.errors] == [0, 1] and result.input_index.tolist() == [2]
    assert [p.field for p in result.errors[0].problems] == ["sex"]
    assert "levels deep" in str(result.errors[1])
