"""The tests that decide: aspiration between septic and inflammatory arthritis, chemical-shift
MRI and protein electrophoresis for a tumour; and knowledge-base draws that stay put when a
variable is added."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np

import hipdx
from hipdx.knowledge import default_data_dir, load_knowledge_base

TODAY = dt.date(2026, 11, 25)
KB = load_knowledge_base()

SPLIT: dict[str, Any] = {
    "age_years": 45, "sex": "female", "onset": {"type": "sudden", "days_since_onset": 6},
    "risk_factors": {"inflammatory_disease": "present"}, "pain": {"at_rest": "present"}, "morning_stiffness": "present",
    "labs": {"crp": {"value": 60, "unit": "mg/L"}, "temperature": {"value": 37.6, "unit": "degC"}},
    "imaging": [{"modality": "mri", "days_since_onset": 5, "findings": {"edema_extent": "femoral_head", "effusion": "present", "synovitis": "present"}}],
}


def assessed(raw: dict[str, Any]) -> hipdx.Assessment:
    return hipdx.assess(hipdx.parse_case(raw), KB, TODAY)


def probability(a: hipdx.Assessment, condition: str) -> float:
    return next(d.probability for d in a.differential if d.id == condition)


def test_a_case_split_between_septic_and_inflammatory_is_told_to_aspirate():
    a = assessed(SPLIT)
    assert {d.id for d in a.differential[:2]} == {"septic", "inflammatory"}
    assert a.next_tests[0].id == "joint_aspiration"


def test_the_synovial_count_moves_the_differential_the_way_the_pooled_data_say():
    septic = []
    for cells in (10_000, 30_000, 80_000, 150_000):
        raw = {**SPLIT, "labs": {**SPLIT["labs"], "synovial_wbc": {"value": cells, "unit": "cells/uL"}}}
        septic.append(probability(assessed(raw), "septic"))
    assert septic == sorted(septic) and septic[0] < 0.3 < 0.85 < septic[-1]
    same = {**SPLIT, "labs": {**SPLIT["labs"], "synovial_wbc": {"value": 80, "unit": "10^9/L"}}}
    assert probability(assessed(same), "septic") == septic[2]


def test_chemical_shift_mri_is_proposed_for_a_marrow_lesion_and_decides():
    neo = {"age_years": 60, "sex": "male", "onset": {"type": "gradual", "days_since_onset": 60}, "pain": {"at_rest": "present", "at_night": "present"},
           "labs": {"crp": {"value": 4, "unit": "mg/L"}},
           "imaging": [{"modality": "mri", "days_since_onset": 50, "findings": {"edema_extent": "intertrochanteric", "effusion": "absent", "contrast_pattern": "homogeneous_enhancement"}, "contrast": True},
                       {"modality": "radiograph", "days_since_onset": 50, "findings": {"focal_lesion": "absent", "joint_space": "preserved"}}]}
    a = assessed(neo)
    assert "chemical_shift_mri" in [t.id for t in a.next_tests]
    def drop(percent: float) -> float:
        raw = {**neo, "imaging": [{**neo["imaging"][0], "findings": {**neo["imaging"][0]["findings"], "chemical_shift_signal_drop_percent": percent}}, neo["imaging"][1]]}
        return probability(assessed(raw), "neoplasm")
    assert drop(5) > probability(a, "neoplasm") > drop(50)


def test_a_paraprotein_raises_a_neoplasm():
    base = {"age_years": 67, "sex": "male", "imaging": [{"modality": "mri", "findings": {"edema_extent": "head_and_neck"}}]}
    with_m = {**base, "labs": {"paraprotein": "present"}}
    assert probability(assessed(with_m), "neoplasm") > probability(assessed(base), "neoplasm")


def test_adding_a_variable_does_not_move_the_draws_of_the_others(tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(default_data_dir(), data)
    extra = data / "variables" / "laboratory.yaml"
    extra.write_text(
        extra.read_text(encoding="utf-8").rstrip("\n")
        + "\n\n  - id: zz_extra\n    label: An extra test variable\n    group: laboratory\n    states: [present, absent]\n"
        + "    source: {field: labs.paraprotein}\n    likelihoods:\n"
        + "      default: {p: {present: 0.5}, basis: estimate, n: 10, note: \"test only\"}\n",
        encoding="utf-8",
    )
    other = load_knowledge_base(data)
    assert "zz_extra" in other.variables
    for vid, var in KB.variables.items():
        for key, row in var.keys.items():
            np.testing.assert_array_equal(KB.log_p_samples[row], other.log_p_samples[other.variables[vid].keys[key]])


def test_hypercalcaemia_raises_a_neoplasm_and_a_normal_calcium_lowers_it():
    base = {"age_years": 67, "sex": "male", "labs": {"esr": {"value": 96, "unit": "mm/h"}, "crp": {"value": 6, "unit": "mg/L"}},
            "imaging": [{"modality": "mri", "findings": {"edema_extent": "head_and_neck"}}]}
    def with_calcium(mmol_l: float) -> float:
        return probability(assessed({**base, "labs": {**base["labs"], "calcium": {"value": mmol_l, "unit": "mmol/L"}}}), "neoplasm")
    unknown = probability(assessed(base), "neoplasm")
    assert with_calcium(2.3) < unknown < with_calcium(2.65) < with_calcium(2.78)
    same = {**base, "labs": {**base["labs"], "calcium": {"value": 11.2, "unit": "mg/dL"}}}
    assert probability(assessed(same), "neoplasm") == with_calcium(11.2 / 4.008)
