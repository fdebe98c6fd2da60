"""Golden cases: the stored assessment summary of every example, compared exactly.

A summary pins the differential (probabilities and ranges to 3 decimals), the red flags, the next
tests, the headline's urgency, the staging (each part's stage or verdict and the findings that
decided it) and the plan (each section's items with their status and the safety rules behind it).
It pins decisions and ids, not prose: a reworded sentence does not change it, a changed stage,
status, rule or number does. A change of the knowledge base or of the reasoning shows up here as
a diff to review. To accept it, regenerate the files and commit them with the change::

    HIPDX_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

import hipdx
from hipdx.knowledge import KnowledgeBase

TODAY = dt.date(2026, 11, 25)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("HIPDX_UPDATE_GOLDEN") == "1"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))


def load_example(path: Path) -> hipdx.Case:
    return hipdx.parse_case(path.read_text(encoding="utf-8"))


def summarise(assessment: hipdx.Assessment, kb: KnowledgeBase) -> dict[str, Any]:
    """What a golden file pins: the differential with ranges, red flags, next tests, staging and plan."""
    return {
        "case_id": assessment.case_id,
        "knowledge_base_version": kb.version,
        "differential": [
            {"id": d.id, "probability": round(d.probability, 3), "range": [round(d.range[0], 3), round(d.range[1], 3)]}
            for d in assessment.differential
        ],
        "red_flags": [f.id for f in assessment.red_flags],
        "next_tests": [t.id for t in assessment.next_tests],
        "headline": {"urgency": assessment.headline.urgency, "condition": assessment.headline.condition},
        "staging": summarise_staging(assessment.staging),
        "plan": summarise_plan(assessment.plan),
    }


def _mm(value: float | None) -> float | None:
    """A measure (mm, days, mL/min, %) to 0.1: finer than any input, coarse enough to read."""
    return None if value is None else round(value, 1)


def _inputs(part: Any) -> dict[str, list[str]]:
    """The findings that decided a part of the staging (field = value, in the order used) and what is missing."""
    return {"decided_by": [f"{i.field} = {i.value}" for i in part.decided_by], "missing": sorted(part.missing)}


def summarise_staging(staging: Any) -> dict[str, Any] | None:
    """Each part's stage, phase, verdict or grade and the findings behind it."""
    if staging is None:
        return None
    toh, pattern, band, neck = staging.toh_phase, staging.pattern, staging.subchondral_band, staging.femoral_neck_fracture
    return {
        "scope": None if staging.scope is None else {
            "conditions": sorted(staging.scope.conditions), "not_staged": sorted(staging.scope.not_staged)
        },
        "osteonecrosis": [
            {"system": r.system, "status": r.status.value, "stage": r.stage, **_inputs(r)} for r in staging.osteonecrosis
        ],
        "toh_phase": {
            "phase": toh.phase, "beyond_expected_course": toh.beyond_expected_course,
            "days_since_onset": _mm(toh.days_since_onset), **_inputs(toh),
        },
        "pattern": {
            "bilateral": pattern.bilateral.value, "migratory": pattern.migratory.value,
            "regional_migratory_osteoporosis_pattern": pattern.regional_migratory_osteoporosis_pattern, **_inputs(pattern),
        },
        "subchondral_band": {
            "verdict": band.verdict.value, "thickness_mm": _mm(band.thickness_mm), "length_mm": _mm(band.length_mm),
            "other_irreversible_signs": sorted(band.other_irreversible_signs), **_inputs(band),
        },
        "femoral_neck_fracture": {
            "grade": neck.grade, "urgency": neck.urgency, "width_percent": _mm(neck.width_percent), **_inputs(neck),
        },
    }


def _item(item: Any) -> dict[str, Any]:
    """One plan item: its option, role and status, and the safety rules behind the status (only those that apply)."""
    out: dict[str, Any] = {"option": item.option, "role": item.role, "status": item.status.value}
    for key in ("blocked_by", "cautions", "needs_information", "checks_before_use"):
        if rules := [finding.rule for finding in getattr(item, key)]:
            out[key] = rules
    return out


def summarise_plan(plan: Any) -> dict[str, Any] | None:
    """Each section's urgency and items in the plan's order, the facts asked for and the renal function used."""
    if plan is None:
        return None
    renal = plan.renal_function
    return {
        "scope": plan.scope,
        "sections": [
            {"condition": s.condition, "role": s.role, "urgency": s.urgency, "items": [_item(i) for i in s.items]}
            for s in plan.sections
        ],
        "governing": plan.governing,
        "facts_asked_for": {
            "options_wait_for": [r.fact for r in plan.needs_information if r.blocking],
            "checks_before_use": [r.fact for r in plan.needs_information if not r.blocking],
        },
        "renal_function": {
            "creatinine_clearance_ml_min": _mm(renal.creatinine_clearance_ml_min),
            "egfr_ml_min": _mm(renal.egfr_ml_min),
            "used_for_clearance_labelled_drugs": renal.used_for_clearance_labelled_drugs,
            "used_for_egfr_labelled_drugs": renal.used_for_egfr_labelled_drugs,
        },
    }


#: A list or an object of plain values goes on one line when it fits this width; otherwise one
#: entry per line. So a changed number or status is a one-line diff.
WIDTH = 120


def dump(summary: dict[str, Any]) -> str:
    """JSON laid out for review: keys in the summary's order, short rows on one line."""
    return _layout(summary, 0) + "\n"


def _layout(value: Any, depth: int) -> str:
    text = json.dumps(value)
    plain = all(
        not isinstance(v, dict | list) or (isinstance(v, list) and not any(isinstance(w, dict | list) for w in v))
        for v in (value.values() if isinstance(value, dict) else value if isinstance(value, list) else [])
    )
    if not isinstance(value, dict | list) or not value or (plain and 2 * depth + len(text) <= WIDTH):
        return text
    pad = "  " * (depth + 1)
    if isinstance(value, dict):
        body = [f"{pad}{json.dumps(k)}: {_layout(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(body) + "\n" + "  " * depth + "}"
    body = [f"{pad}{_layout(v, depth + 1)}" for v in value]
    return "[\n" + ",\n".join(body) + "\n" + "  " * depth + "]"


def readme_expectations() -> dict[str, str]:
    """file name -> expected leading diagnosis, from the table in examples/README.md."""
    rows = re.findall(r"^\| `([^`]+\.json)` \|.*\| (\w+) \|$", (EXAMPLES / "README.md").read_text(encoding="utf-8"), re.M)
    return dict(rows)


def test_there_are_enough_examples() -> None:
    assert len(EXAMPLE_FILES) >= 12


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_matches_its_golden_summary(path: Path, kb: KnowledgeBase) -> None:
    summary = summarise(hipdx.assess(load_example(path), kb, TODAY), kb)
    golden = GOLDEN / f"{path.stem}.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(dump(summary), encoding="utf-8")
        return
    assert golden.exists(), f"no golden file for {path.name}; run with HIPDX_UPDATE_GOLDEN=1"
    assert summary == json.loads(golden.read_text(encoding="utf-8"))


def test_every_golden_file_belongs_to_an_example() -> None:
    examples = {p.stem for p in EXAMPLE_FILES}
    orphans = sorted(p.name for p in GOLDEN.glob("*.json") if p.stem not in examples)
    if UPDATE:
        for name in orphans:
            (GOLDEN / name).unlink()
        return
    assert not orphans


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_is_a_documented_case(path: Path) -> None:
    case = load_example(path)
    assert case.id == path.stem
    assert case.note and len(case.note) > 200
    assert case.age_years is not None and case.sex.value != "unknown"


def test_readme_lists_every_example_with_its_expected_leading_diagnosis(kb: KnowledgeBase) -> None:
    expected = readme_expectations()
    assert sorted(expected) == [p.name for p in EXAMPLE_FILES]
    assert set(expected.values()) <= set(kb.condition_ids)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_leads_with_its_expected_diagnosis(path: Path, kb: KnowledgeBase) -> None:
    assessment = hipdx.assess(load_example(path), kb, TODAY)
    assert assessment.differential[0].id == readme_expectations()[path.name]


def test_examples_lead_with_every_condition(kb: KnowledgeBase) -> None:
    leading = {hipdx.assess(load_example(p), kb, TODAY).differential[0].id for p in EXAMPLE_FILES}
    assert leading == set(kb.condition_ids)


def _examples() -> list[tuple[hipdx.Case, hipdx.Assessment]]:
    kb = hipdx.load_knowledge_base()
    return [(case, hipdx.assess(case, kb, TODAY)) for case in map(load_example, EXAMPLE_FILES)]


def test_examples_cover_the_required_scenarios() -> None:
    examples = _examples()

    def leading(assessment: hipdx.Assessment) -> str:
        return assessment.differential[0].id

    def flags(assessment: hipdx.Assessment) -> set[str]:
        return {f.id for f in assessment.red_flags}

    # a pregnant woman at 34 weeks with TOH, flagged for fracture risk
    assert any(
        c.pregnancy.gestational_weeks == 34 and leading(a) == "toh" and "pregnancy_fracture_risk" in flags(a)
        for c, a in examples
    )
    # early TOH: a radiograph without osteopenia within 10 days of onset
    assert any(
        leading(a) == "toh"
        and any(
            s.modality.value == "radiograph"
            and s.findings.osteopenia.value == "absent"
            and (hipdx.case.study_days_since_onset(c, s, TODAY) or 99) <= 10
            for s in c.imaging
        )
        for c, a in examples
    )
    # a febrile septic hip with CRP in mg/dL
    assert any(
        c.labs.crp is not None and c.labs.crp.unit == "mg/dL" and (c.labs.canonical("temperature") or 0) >= 38.5
        and leading(a) == "septic" and "septic_signs" in flags(a)
        for c, a in examples
    )
    # a runner with a femoral neck stress fracture line
    assert any(
        c.risk_factors.repetitive_loading.value == "present"
        and any(s.findings.femoral_neck_fracture_line.value == "present" for s in c.imaging)
        and leading(a) == "fnsf" and "femoral_neck_fracture" in flags(a)
        for c, a in examples
    )
    # labs in alternative units
    assert any(
        c.labs.vitamin_d is not None and c.labs.vitamin_d.unit == "nmol/L"
        and c.labs.creatinine is not None and c.labs.creatinine.unit == "umol/L"
        and c.labs.temperature is not None and "F" in c.labs.temperature.unit
        for c, _ in examples
    )
