"""Must-not-miss rules: evaluated on the observed findings, whatever the probability."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hipdx.knowledge.base import KnowledgeBase
from hipdx.reasoning.assessment import RedFlagHit
from hipdx.reasoning.encode import Observation

#: Trigger pseudo-state: the variable is not known.
UNKNOWN = "unknown"

_URGENCY_ORDER = {"emergency": 0, "urgent": 1, "soon": 2}


def _holds(kb: KnowledgeBase, variable: str, states: list[str], observed: str | None) -> bool:
    """Whether an observed state (or aggregate) lies within the listed states.

    The pseudo-state ``unknown`` in a trigger matches a variable that was not observed,
    so a rule can ask for "CRP raised, or not measured".
    """
    if observed is None:
        return UNKNOWN in states
    var = kb.variables[variable]
    allowed: set[str] = set()
    for s in states:
        if s != UNKNOWN:
            allowed.update(var.observables[s])
    return set(var.observables[observed]) <= allowed


def evaluate_red_flags(kb: KnowledgeBase, observations: Sequence[Observation], post: np.ndarray) -> list[RedFlagHit]:
    """The red flags whose triggers hold, most urgent first."""
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
    hits.sort(key=lambda h: _URGENCY_ORDER[h.urgency])
    return hits
