"""Must-not-miss red flags: fixed rules on the findings, and the model's own ranking.

Two kinds of flag, both evaluated on every assessment:

* **Rule flags** (``red_flags.yaml``): a trigger's findings hold, whatever the probability
  of the condition (a fracture line is a flag even when the differential favours TOH).
* **Staging flags**: a femoral neck fracture the staging grades, at its grade's urgency.
* **Probability flags**: a must-not-miss condition (``conditions.yaml``) reaches the plan's
  ``must_not_miss_probability`` (5%, ``treatments.yaml``) while no rule of its own holds.
  The model ranking a fracture, an infection or a tumour that high is itself a reason to
  exclude it, and the plan opens that condition's exclusion pathway at the same threshold,
  so the two always agree. A flag must rest on findings: a case known only by age, sex,
  pregnancy and risk factors raises no probability flag (the differential then rests on the
  prior alone; the findings that matter are asked for instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hipdx.knowledge.base import KnowledgeBase
from hipdx.reasoning.assessment import RedFlagHit
from hipdx.reasoning.encode import Observation
from hipdx.reasoning.staging import Staging

#: Trigger pseudo-state: the variable is not known.
UNKNOWN = "unknown"

URGENCY_ORDER = {"emergency": 0, "urgent": 1, "soon": 2, "routine": 3}


def probability_flag_id(condition: str) -> str:
    """The id of the probability flag of one must-not-miss condition."""
    return f"{condition}_probability"


def probability_flag_ids(kb: KnowledgeBase) -> tuple[str, ...]:
    """The ids of every probability flag, in knowledge-base order of their conditions."""
    return tuple(probability_flag_id(c.id) for c in kb.conditions if c.must_not_miss)


def _holds(kb: KnowledgeBase, variable: str, states: list[str], observed: str | None) -> bool:
    """Whether an observed state (or aggregate) lies within the listed states.

    The pseudo-state ``unknown`` in a trigger matches a variable that was not observed,
    so a rule can ask for "CRP raised, or not measured". It also matches an aggregate that
    is only partly known and may lie within the states: a CRP reported as "raised" without
    a value may be below 50 mg/L, so "CRP not above 50, or not known" still holds.
    """
    if observed is None:
        return UNKNOWN in states
    var = kb.variables[variable]
    allowed: set[str] = set()
    for s in states:
        if s != UNKNOWN:
            allowed.update(var.observables[s])
    covered = set(var.observables[observed])
    return covered <= allowed or (UNKNOWN in states and bool(covered & allowed))


def rests_on_findings(kb: KnowledgeBase, observations: Sequence[Observation]) -> bool:
    """Whether any finding beyond the patient's age, sex, pregnancy and risk factors is known."""
    return any(kb.variables[o.variable].spec.group != "patient" for o in observations)


def evaluate_red_flags(kb: KnowledgeBase, observations: Sequence[Observation], post: np.ndarray) -> list[RedFlagHit]:
    """The red flags that hold, most urgent first: rule flags, then probability flags."""
    seen = {o.variable: o.state for o in observations}
    hits = []
    for rf in kb.red_flags:
        triggered = []
        for trigger in rf.triggers:
            if all(_holds(kb, v, states, seen.get(v)) for v, states in trigger.all_of.items()):
                triggered.append(" and ".join(f"{v} = {seen.get(v, UNKNOWN)}" for v in trigger.all_of))
        if triggered:
            ci = kb.condition_ids.index(rf.condition)
            hits.append(
                RedFlagHit(
                    id=rf.id,
                    kind="rule",
                    condition=rf.condition,
                    condition_name=kb.conditions[ci].name,
                    urgency=rf.urgency,
                    title=rf.title,
                    triggered_by=triggered,
                    action=" ".join(rf.action.split()),
                    refs=rf.refs,
                    condition_probability=round(float(post[ci]), 4),
                )
            )
    hits += _probability_flags(kb, observations, post, {h.condition for h in hits})
    hits.sort(key=lambda h: URGENCY_ORDER[h.urgency])
    return hits


def staging_flags(kb: KnowledgeBase, staging: Staging, post: np.ndarray, flags: Sequence[RedFlagHit]) -> list[RedFlagHit]:
    """A femoral neck fracture the staging grades (a line, or a displaced fracture) is a red flag.

    The rules of ``red_flags.yaml`` flag a reported fracture line; a displaced fracture
    reported without a line is graded by the staging, and flagged here at its grade's urgency
    (``staging.yaml``), so the flag and the plan's fracture pathway always agree.
    """
    fracture = staging.femoral_neck_fracture
    if fracture.grade in ("not_reported", "none") or fracture.urgency is None:
        return []
    urgency = fracture.urgency
    if any(f.condition == "fnsf" and URGENCY_ORDER[f.urgency] <= URGENCY_ORDER[urgency] for f in flags):
        return []
    ci = kb.condition_ids.index("fnsf")
    return [
        RedFlagHit(
            id="femoral_neck_fracture_graded",
            kind="staging",
            condition="fnsf",
            condition_name=kb.conditions[ci].name,
            urgency=urgency,
            title=fracture.label,
            # the finding, not the index of the study it came from (the order of studies is not a fact)
            triggered_by=[f"{i.field.rsplit('.', 1)[-1]} = {i.value}" for i in fracture.decided_by],
            action=fracture.action or "",
            refs=fracture.refs,
            condition_probability=round(float(post[ci]), 4),
        )
    ]


def _probability_flags(
    kb: KnowledgeBase, observations: Sequence[Observation], post: np.ndarray, ruled: set[str]
) -> list[RedFlagHit]:
    if not rests_on_findings(kb, observations):
        return []
    threshold = kb.treatment.threshold("must_not_miss_probability").value
    plans = kb.treatment.treatments.plans
    hits = []
    for ci, condition in enumerate(kb.conditions):
        p = float(post[ci])
        if not condition.must_not_miss or condition.id in ruled or p < threshold:
            continue
        plan = plans[condition.id]
        hits.append(
            RedFlagHit(
                id=probability_flag_id(condition.id),
                kind="probability",
                condition=condition.id,
                condition_name=condition.name,
                urgency=plan.urgency,
                title=f"{condition.name} not excluded: {p:.0%} in the differential",
                triggered_by=[f"probability {p:.1%} >= the must-not-miss threshold {threshold:.0%}"],
                action=" ".join(plan.summary.split()) + " See the exclusion pathway in the plan.",
                refs=plan.refs,
                condition_probability=round(p, 4),
            )
        )
    return hits
