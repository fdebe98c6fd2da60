"""Honest numbers: findings that travel together are not counted as independent, the ranges
carry the uncertainty of the model's structure, and nothing reads 100-100%."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

import hipdx
from hipdx.knowledge import load_knowledge_base
from hipdx.reasoning.differential import observation_keys, observation_weights, posterior
from hipdx.reasoning.encode import encoder_for

TODAY = dt.date(2026, 11, 25)
KB = load_knowledge_base()
EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_no_example_reads_100_to_100_percent(path: Path):
    a = hipdx.assess(hipdx.parse_case(path.read_text(encoding="utf-8")), KB, TODAY)
    eps = KB.info.structure.misspecification
    for item in a.differential:
        low, high = item.range
        assert high <= 1 - eps + eps / len(KB.conditions) + 1e-9
        assert low >= eps / len(KB.conditions) - 1e-9
        assert round(low * 100) < 100  # never shown as "100-100%"


def test_a_classic_toh_leaves_early_osteonecrosis_in_the_range():
    a = hipdx.assess(hipdx.parse_case((Path(__file__).parent.parent / "examples" / "toh_man_classic.json").read_text(encoding="utf-8")), KB, TODAY)
    onfh = next(d for d in a.differential if d.id == "onfh")
    assert onfh.range[1] > 0.005  # a single MRI cannot exclude early osteonecrosis


def test_findings_of_one_group_count_less_than_independent_ones():
    raw = {"age_years": 45, "sex": "female", "imaging": [{"modality": "mri", "findings": {"edema_extent": "femoral_head", "effusion": "present", "synovitis": "present", "acetabular_edema": "present"}}]}
    observations = encoder_for(KB).encode(hipdx.parse_case(raw), TODAY)
    weights = observation_weights(KB, observations)
    grouped = [w for o, w in zip(observations, weights) if o.variable in ("effusion", "synovitis", "acetabular_edema")]
    assert grouped == pytest.approx([3 ** -0.5] * 3)
    keys = observation_keys(KB, observations)
    naive, corrected = posterior(KB, keys), posterior(KB, keys, weights)
    septic = KB.condition_ids.index("septic")
    baseline = posterior(KB, keys[:1])  # the edema alone
    assert abs(np.log(corrected[septic] / baseline[septic])) < abs(np.log(naive[septic] / baseline[septic]))


def test_the_explanation_shows_the_weight_a_finding_counted_with():
    raw = {"age_years": 45, "sex": "female", "pain": {"at_rest": "present", "at_night": "present"}}
    a = hipdx.assess(hipdx.parse_case(raw), KB, TODAY)
    rows = [c for c in a.explanation.leading[0].findings if c.variable in ("rest_pain", "night_pain")]
    assert rows and all(c.weight == pytest.approx(2 ** -0.5, abs=1e-3) for c in rows)
    assert json.loads(a.model_dump_json())["explanation"]["leading"][0]["findings"][0]["weight"] <= 1
