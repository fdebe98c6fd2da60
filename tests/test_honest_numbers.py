"""Honest numbers: findings that travel together are not counted as independent, the ranges
carry the uncertainty of the model's structure, and nothing reads 100-100%."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import hipdx
from hipdx.knowledge import default_data_dir, load_knowledge_base
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


# --- a condition defined by migration needs the migration to lead ---------------------------------

RMO_LIKE = {"age_years": 55, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 30}, "labs": {"bmd_t_score": -3.0},
            "imaging": [{"modality": "mri", "days_since_onset": 25, "findings": {"edema_extent": "head_and_neck", "subchondral_band": "absent"}}]}


@pytest.fixture(scope="module")
def rmo_heavy_kb(tmp_path_factory):
    """The bundled base with the priors of TOH (0.225) and RMO (0.03) swapped, so that the model
    alone would rank RMO first."""
    data = tmp_path_factory.mktemp("kb") / "data"
    shutil.copytree(default_data_dir(), data)
    conditions = data / "conditions.yaml"
    text = conditions.read_text(encoding="utf-8")
    toh, rmo = text.index("  - id: toh\n"), text.index("  - id: rmo\n")
    assert text.count("    prior: 0.225\n", toh, rmo) == 1 and "    prior: 0.03\n" in text[rmo:]
    text = text[:toh] + text[toh:rmo].replace("    prior: 0.225\n", "    prior: 0.03\n") + text[rmo:].replace("    prior: 0.03\n", "    prior: 0.225\n", 1)
    conditions.write_text(text, encoding="utf-8")
    return load_knowledge_base(data)


@pytest.mark.parametrize("episodes", ["absent", "unknown"])
def test_rmo_does_not_lead_without_a_previous_episode(episodes: str, rmo_heavy_kb):
    raw = {**RMO_LIKE, "risk_factors": {} if episodes == "unknown" else {"prior_episodes_other_joints": episodes}}
    case = hipdx.parse_case(raw)
    observations = encoder_for(rmo_heavy_kb).encode(case, TODAY)
    unfolded = posterior(rmo_heavy_kb, observation_keys(rmo_heavy_kb, observations), observation_weights(rmo_heavy_kb, observations))
    assert rmo_heavy_kb.condition_ids[int(np.argmax(unfolded))] == "rmo"  # the model alone would put it first
    a = hipdx.assess(case, rmo_heavy_kb, TODAY)
    assert a.differential[0].id == "toh"
    toh, rmo = a.differential[0], next(d for d in a.differential if d.id == "rmo")
    assert toh.probability == pytest.approx(rmo.probability, abs=1e-4)  # they share the mass: indistinguishable
    with_episode = hipdx.assess(hipdx.parse_case({**RMO_LIKE, "risk_factors": {"prior_episodes_other_joints": "present"}}), rmo_heavy_kb, TODAY)
    assert with_episode.differential[0].id == "rmo"


def test_the_batch_path_applies_the_same_rule(rmo_heavy_kb):
    cases = [hipdx.parse_case({**RMO_LIKE, "risk_factors": {"prior_episodes_other_joints": s}}) for s in ("absent", "present")]
    cases.append(hipdx.parse_case(RMO_LIKE))
    result = hipdx.assess_batch(cases, rmo_heavy_kb, TODAY)
    for i, case in enumerate(cases):
        single = hipdx.assess(case, rmo_heavy_kb, TODAY)
        assert result.top_condition_ids()[i] == single.differential[0].id
        for item in single.differential:
            assert result.probabilities[i, rmo_heavy_kb.condition_ids.index(item.id)] == pytest.approx(item.probability, abs=1e-4)


# --- the setting's prior --------------------------------------------------------------------------


def test_the_emergency_department_raises_acute_conditions_and_the_clinic_is_the_base():
    raw = {"age_years": 45, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 3},
           "imaging": [{"modality": "mri", "days_since_onset": 2, "findings": {"edema_extent": "head_and_neck"}}]}
    default = hipdx.assess(hipdx.parse_case(raw), KB, TODAY)
    clinic = hipdx.assess(hipdx.parse_case({**raw, "setting": "outpatient_clinic"}), KB, TODAY)
    ed = hipdx.assess(hipdx.parse_case({**raw, "setting": "emergency_department"}), KB, TODAY)
    p = lambda a, c: next(d.probability for d in a.differential if d.id == c)  # noqa: E731
    assert p(default, "septic") == p(clinic, "septic") < p(ed, "septic")
    assert p(ed, "onfh") < p(clinic, "onfh")
    assert "setting" not in {c.variable for c in clinic.explanation.leading[0].patient_factors}
    assert "setting" in {c.variable for c in ed.explanation.leading[0].patient_factors}
