"""R1: a patient with repetitive loading is flagged for a femoral neck stress fracture until MRI
shows no edema reaching the neck (``stress_fracture_pattern``, red_flags.yaml; docs/model.md,
"The runner's rule re-judged on split-6")."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import hipdx
from hipdx.knowledge import load_knowledge_base

KB = load_knowledge_base()
TODAY = dt.date(2026, 12, 8)


def assessed(raw: dict[str, Any]) -> hipdx.Assessment:
    return hipdx.assess(hipdx.parse_case(raw), KB, TODAY)


def runner(findings: dict[str, Any] | None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "age_years": 24, "sex": "male", "onset": {"type": "gradual", "days_since_onset": 21},
        "risk_factors": {"repetitive_loading": "present"},
    }
    if findings is not None:
        raw["imaging"] = [{"modality": "mri", "days_since_onset": 20, "findings": findings}]
    return raw


def test_a_runner_known_by_risk_factor_alone_is_flagged_urgent_and_the_plan_and_headline_follow():
    a = assessed({"age_years": 16, "sex": "female", "risk_factors": {"repetitive_loading": "present"}})
    flags = {f.id: f for f in a.red_flags}
    assert "stress_fracture_pattern" in flags, list(flags)
    assert flags["stress_fracture_pattern"].condition == "fnsf"
    assert flags["stress_fracture_pattern"].urgency == "urgent"
    assert a.headline.urgency == "urgent"
    assert "fnsf" in {s.condition for s in a.plan.sections}


@pytest.mark.parametrize(
    ("findings", "flagged"),
    [
        (None, True),  # before MRI
        ({"edema_extent": "femoral_neck"}, True),
        ({"edema_extent": "head_and_neck"}, True),
        ({"edema_extent": "intertrochanteric"}, True),
        ({"edema": "present"}, True),  # edema of unreported extent
        ({"edema": "absent"}, False),  # MRI finds no stress injury: the flag is lifted
        ({"edema_extent": "femoral_head"}, False),
    ],
)
def test_a_runners_fracture_flag_holds_until_mri_shows_no_edema_reaching_the_neck(findings, flagged):
    a = assessed(runner(findings))
    flags = {f.id for f in a.red_flags}
    assert ("stress_fracture_pattern" in flags) is flagged, flags


def test_the_runners_flag_is_never_an_emergency():
    a = assessed(runner(None))
    assert {f.urgency for f in a.red_flags if f.id == "stress_fracture_pattern"} == {"urgent"}
    assert a.headline.urgency != "emergency"
