"""The headline: what to do now, in one line, agreeing with the red flags and the plan.

The plan makes every flagged condition a section at least as urgent as its flag, and no
section ``emergency`` or ``urgent`` without a flag (:func:`hipdx.reasoning.plan.make_plan`);
the headline is the most urgent of them. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hipdx.reasoning.assessment import DifferentialItem, Headline, RedFlagHit
from hipdx.reasoning.plan import ItemStatus, Plan
from hipdx.reasoning.red_flags import URGENCY_ORDER


def flag_urgencies(red_flags: Sequence[RedFlagHit]) -> Mapping[str, str]:
    """Condition -> the most urgent urgency of its flags."""
    out: dict[str, str] = {}
    for hit in red_flags:
        if hit.condition not in out or URGENCY_ORDER[hit.urgency] < URGENCY_ORDER[out[hit.condition]]:
            out[hit.condition] = hit.urgency
    return out


def headline(differential: Sequence[DifferentialItem], red_flags: Sequence[RedFlagHit], plan: Plan | None) -> Headline:
    """One line: the most urgent flag or plan section and its first action.

    Examples
    --------
    A case without a red flag and without a plan names the leading condition:

    >>> d = DifferentialItem(id="toh", name="Transient osteoporosis of the hip", short="TOH", probability=0.8,
    ...     range=(0.6, 0.9), prior=0.2, patient_prior=0.3, must_not_miss=False)
    >>> headline([d], [], None).text
    'No red flag. Most likely: TOH (80%).'
    """
    leading = differential[0]
    flags = sorted(red_flags, key=lambda h: URGENCY_ORDER[h.urgency])
    if plan is not None and plan.sections:
        section = plan.sections[0]
        flag = next((h for h in flags if h.condition == section.condition), None)
        action = next(
            (i.title for i in section.items if i.status not in (ItemStatus.blocked, ItemStatus.deferred) and i.role == "core"),
            section.title,
        )
        if flag is not None:
            text = f"{section.urgency.upper()}: {flag.title}. {action}."
        elif flags:  # the leading section is the most urgent; a less urgent flag is named after it
            text = f"Most likely: {leading.short} ({leading.probability:.0%}). {action}. Also flagged: {flags[0].title}."
        else:
            text = f"No red flag. Most likely: {leading.short} ({leading.probability:.0%}). {action}."
        return Headline(urgency=section.urgency, condition=section.condition, text=text)
    if flags:
        return Headline(urgency=flags[0].urgency, condition=flags[0].condition, text=f"{flags[0].urgency.upper()}: {flags[0].title}. {flags[0].action}")
    return Headline(urgency="routine", condition=leading.id, text=f"No red flag. Most likely: {leading.short} ({leading.probability:.0%}).")
