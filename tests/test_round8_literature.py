"""Literature corrections of the eighth accuracy round (issue 11): estimates replaced by the
figures of a cited primary source, each pinned by the behaviour it changes."""

from __future__ import annotations

import datetime as dt

import hipdx
from hipdx.knowledge import KnowledgeBase

DAY = dt.date(2026, 11, 20)


def probability(assessment: hipdx.Assessment, condition: str) -> float:
    return next(d.probability for d in assessment.differential if d.id == condition)


def odds_change(with_finding: hipdx.Assessment, without: hipdx.Assessment, a: str, b: str) -> float:
    """How much a finding multiplies the odds of condition a against condition b."""
    return (probability(with_finding, a) / probability(with_finding, b)) / (
        probability(without, a) / probability(without, b)
    )


# --- transient osteoporosis: pain at rest and at night (Ann Intern Med 1987, 56 patients) -------

#: A man of 45 with hip pain on weight-bearing and edema of the head and neck on MRI.
TOH_LIKE = {
    "age_years": 45,
    "sex": "male",
    "pain": {"weight_bearing": "present"},
    "imaging": [{"modality": "mri", "days_since_onset": 20, "findings": {"t1_low": "present", "stir_high": "present", "edema_extent": "head_and_neck"}}],
}


def test_night_pain_counts_against_transient_osteoporosis(run) -> None:
    """Nocturnal pain in 6 of 56 transient regional osteoporoses: night pain divides TOH's odds
    against osteonecrosis (0.40) by about 0.11 / 0.40, not the 0.30 / 0.40 of the old estimate."""
    without = run(TOH_LIKE)
    with_night = run({**TOH_LIKE, "pain": {"weight_bearing": "present", "at_night": "present"}})
    change = odds_change(with_night, without, "toh", "onfh")
    assert 0.2 < change < 0.4


def test_rest_and_night_pain_of_toh_cite_the_series(kb: KnowledgeBase) -> None:
    for variable, p in (("rest_pain", 0.32), ("night_pain", 0.11)):
        for condition in ("toh", "rmo"):
            entry = kb.variables[variable].spec.likelihoods[condition]
            assert entry.p["present"] == p
            assert entry.ref == "lakhanpal1987" and entry.basis.value == "transferred" and entry.n == 56
