"""Golden cases: the stored assessment summary of every example, compared exactly.

A change of the knowledge base or of the reasoning shows up here as a diff to review. To
accept it, regenerate the files and commit them with the change::

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
    """What a golden file pins: the differential with ranges, red flags and next tests."""
    return {
        "case_id": assessment.case_id,
        "knowledge_base_version": kb.version,
        "differential": [
            {"id": d.id, "probability": round(d.probability, 3), "range": [round(d.range[0], 3), round(d.range[1], 3)]}
            for d in assessment.differential
        ],
        "red_flags": [f.id for f in assessment.red_flags],
        "next_tests": [t.id for t in assessment.next_tests],
    }


def dump(summary: dict[str, Any]) -> str:
    """JSON with one line per condition, so a changed number is a one-line diff."""
    lines = ["{"]
    for key, value in summary.items():
        if key == "differential":
            items = ",\n".join(f"    {json.dumps(item)}" for item in value)
            lines.append(f'  "differential": [\n{items}\n  ],')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines[-1] = lines[-1].rstrip(",")
    return "\n".join(lines) + "\n}\n"


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
