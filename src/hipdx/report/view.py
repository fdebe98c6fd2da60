"""What every renderer shows, as plain strings: one place decides the content and wording.

The terminal and Markdown renderers differ only in layout and style; the rows, labels
and numbers they print come from here, so the two never drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

from hipdx.knowledge.base import KnowledgeBase
from hipdx.knowledge.schema import Reference
from hipdx.reasoning.assessment import (
    Assessment,
    ConditionExplanation,
    Contribution,
    DifferentialItem,
    MissingFinding,
    NextTest,
    RedFlagHit,
)
from hipdx.reasoning.course import CourseReport

#: Most urgent first.
URGENCY_ORDER = ("emergency", "urgent", "soon")
#: Groups whose findings come from an imaging study, so the day of the study matters.
IMAGING_GROUPS = frozenset({"radiograph", "mri", "ct", "bone_scan", "imaging"})
ARROWS = {"for": "▲", "against": "▼", "neutral": "·"}
MUST_NOT_MISS = "must not miss"
MUST_NOT_MISS_MARK = "!"
MUST_NOT_MISS_LEGEND = "must not miss: rule it out actively, whatever its probability"


def percent(p: float) -> str:
    """A probability as a whole percentage; "<1%" and ">99%" instead of a misleading 0 or 100.

    >>> percent(0.624), percent(0.0004), percent(0.0)
    ('62%', '<1%', '0%')
    """
    if 0 < p < 0.005:
        return "<1%"
    if 0.995 < p < 1:
        return ">99%"
    return f"{p * 100:.0f}%"


def percent_range(low: float, high: float) -> str:
    """A range of probabilities: ``"33-92%"``."""
    return f"{low * 100:.0f}-{high * 100:.0f}%"


def likelihood_ratio(lr: float) -> str:
    """A likelihood ratio with two significant figures, without scientific notation.

    >>> likelihood_ratio(19.593), likelihood_ratio(1.522), likelihood_ratio(0.0634)
    ('20', '1.5', '0.063')
    """
    return f"{lr:.0f}" if lr >= 10 else f"{lr:.2g}"


def state_label(state: str) -> str:
    """A state identifier in words: ``head_and_neck`` -> ``head and neck``."""
    return state.replace("_", " ")


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph (the disclaimer's one-line form)."""
    head, dot, _ = text.strip().partition(". ")
    return head + "." if dot else head


def first_line(text: str | None) -> str:
    """The first non-empty line of a free-text note, or an empty string."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def days(value: float) -> str:
    """Days as a whole number when it is one: ``30`` not ``30.0``."""
    return f"{value:g}"


def urgency_rank(urgency: str) -> int:
    return URGENCY_ORDER.index(urgency) if urgency in URGENCY_ORDER else len(URGENCY_ORDER)


def red_flags_by_urgency(assessment: Assessment) -> list[RedFlagHit]:
    """The red flags met, most urgent first (stable within one urgency)."""
    return sorted(assessment.red_flags, key=lambda flag: urgency_rank(flag.urgency))


def course_alerts_line(course: CourseReport | None, where: str) -> str:
    """The alerts of the follow-up visits in one line, most urgent first, for the top of a page
    beside the headline ('' without any); ``where`` names the part that gives each alert in full.

    The headline comes from the presenting findings (visits do not feed the differential), so
    a page that shows the course must not let "No red flag" at its top stand alone above an
    urgent alert of the visits further down.
    """
    if course is None or not course.alerts:
        return ""
    alerts = "; ".join(f"{alert.severity.value.upper()}: {alert.title}" for alert in course.alerts)
    return f"From the follow-up visits: {alerts} (each with what to do: {where})."


def citation(key: str, ref: Reference | None) -> str:
    """A short citation: authors year, journal, PMID (or DOI, or URL).

    A key the base does not hold is shown as it is, so nothing cited is lost.
    """
    if ref is None:
        return key
    parts = [f"{ref.authors or '[authors not retrieved]'} {ref.year}"]
    if ref.journal:
        parts.append(ref.journal)
    if ref.pmid:
        parts.append(f"PMID {ref.pmid}")
    elif ref.doi:
        parts.append(f"doi:{ref.doi}")
    elif ref.url:
        parts.append(ref.url)
    return ", ".join(parts)


def cited_keys(assessment: Assessment) -> list[str]:
    """Every reference key the assessment cites, in order of first appearance."""
    keys: list[str] = []
    for flag in assessment.red_flags:
        keys.extend(flag.refs)
    for explained in assessment.explanation.leading:
        for contribution in [*explained.patient_factors, *explained.findings]:
            keys.extend(contribution.refs)
    return list(dict.fromkeys(keys))


def references(assessment: Assessment, kb: KnowledgeBase) -> list[tuple[str, str]]:
    """(key, short citation) for every reference the assessment cites."""
    return [(key, citation(key, kb.references.get(key))) for key in cited_keys(assessment)]


def way_to_obtain(kb: KnowledgeBase, how: str) -> str:
    """The name of a test hipdx can propose, or the word itself (``history``, ``examination``)."""
    return next((t.name for t in kb.tests if t.id == how), how)


# -- rows --------------------------------------------------------------------------------


class RedFlagView(NamedTuple):
    urgency: str
    title: str
    condition: str
    triggered_by: str
    action: str
    refs: str


def red_flag_view(flag: RedFlagHit) -> RedFlagView:
    return RedFlagView(
        urgency=flag.urgency.upper(),
        title=flag.title,
        condition=f"{flag.condition_name}: {percent(flag.condition_probability)} in this model",
        triggered_by=" | or: ".join(flag.met_by or flag.triggered_by),
        action=" ".join(flag.action.split()),
        refs=", ".join(flag.refs),
    )


class DifferentialRow(NamedTuple):
    rank: str
    short: str
    name: str
    probability: float
    probability_text: str
    range_text: str
    prior: str
    patient_prior: str
    must_not_miss: bool


def differential_rows(assessment: Assessment) -> list[DifferentialRow]:
    """One row per condition, most probable first."""
    return [_differential_row(rank, item) for rank, item in enumerate(assessment.differential, start=1)]


def _differential_row(rank: int, item: DifferentialItem) -> DifferentialRow:
    return DifferentialRow(
        rank=str(rank),
        short=item.short,
        name=item.name,
        probability=item.probability,
        probability_text=percent(item.probability),
        range_text=percent_range(*item.range),
        prior=percent(item.prior),
        patient_prior=percent(item.patient_prior),
        must_not_miss=item.must_not_miss,
    )


def probability_path(explained: ConditionExplanation) -> str:
    """``prior 20% -> patient prior 31% -> posterior 64%``."""
    return (
        f"prior {percent(explained.prior)} -> patient prior {percent(explained.patient_prior)} "
        f"-> posterior {percent(explained.probability)}"
    )


class ContributionRow(NamedTuple):
    kind: str
    factor: str
    observed: str
    likelihood_ratio: str
    direction: str
    arrow: str
    basis: str
    refs: str


def contribution_rows(explained: ConditionExplanation) -> list[ContributionRow]:
    """Patient factors first, then findings; each by its weight as the core ordered them."""
    return [_contribution_row("patient", c) for c in explained.patient_factors] + [
        _contribution_row("finding", c) for c in explained.findings
    ]


def _contribution_row(kind: str, c: Contribution) -> ContributionRow:
    observed = state_label(c.observed)
    if c.group in IMAGING_GROUPS and c.days_since_onset is not None:
        observed += f" (day {days(c.days_since_onset)})"
    return ContributionRow(
        kind=kind,
        factor=c.label,
        observed=observed,
        likelihood_ratio=likelihood_ratio(c.likelihood_ratio),
        direction=c.direction,
        arrow=ARROWS.get(c.direction, "?"),
        basis=c.basis,
        refs=", ".join(c.refs) or "-",
    )


class MissingRow(NamedTuple):
    finding: str
    bits: str
    obtained_by: str


def missing_rows(assessment: Assessment, kb: KnowledgeBase) -> list[MissingRow]:
    """The unknown findings that would tell most, and how to get them."""
    return [_missing_row(m, kb) for m in assessment.explanation.missing_that_matter]


def _missing_row(m: MissingFinding, kb: KnowledgeBase) -> MissingRow:
    return MissingRow(
        finding=m.label,
        bits=f"{m.expected_information_bits:.2f}",
        obtained_by="; ".join(way_to_obtain(kb, how) for how in m.obtained_by) or "-",
    )


class NextTestRow(NamedTuple):
    rank: str
    name: str
    bits: str
    burden: str
    reason: str
    warnings: list[str]


def next_test_rows(assessment: Assessment) -> list[NextTestRow]:
    """The proposed next tests, best first."""
    return [_next_test_row(rank, t) for rank, t in enumerate(assessment.next_tests, start=1)]


def _next_test_row(rank: int, t: NextTest) -> NextTestRow:
    return NextTestRow(
        rank=str(rank),
        name=t.name,
        bits=f"{t.expected_information_bits:.2f}",
        burden=f"{t.burden:g}",
        reason=t.reason,
        warnings=list(t.warnings),
    )


def provenance_items(assessment: Assessment) -> list[tuple[str, str]]:
    """(label, value) pairs saying what produced the assessment and from which inputs."""
    p = assessment.provenance
    onset = "not known" if p.days_since_onset is None else days(p.days_since_onset)
    return [
        ("hipdx", p.hipdx_version),
        ("knowledge base", f"{p.knowledge_base_version} (digest {p.knowledge_base_digest})"),
        ("days since onset", onset),
        ("inputs used", str(len(p.inputs_used))),
        ("model findings not known", str(len(p.inputs_missing))),
        ("uncertainty samples", str(p.n_uncertainty_samples)),
    ]


# -- the statement and the plan in brief ----------------------------------------------------


def statement(assessment: Assessment) -> str:
    """The decision-support statement, on one line; every report shows it once."""
    return " ".join(assessment.disclaimer.split())


def without_statement(text: str, assessment: Assessment) -> str:
    """``text`` without a leading copy of the statement's first sentence (shown once elsewhere).

    >>> from types import SimpleNamespace
    >>> a = SimpleNamespace(disclaimer="hipdx supports a decision. More.")
    >>> without_statement("hipdx supports a decision. Drugs are off-label.", a)
    'Drugs are off-label.'
    """
    text = " ".join(text.split())
    first = first_sentence(statement(assessment))
    return text[len(first):].strip() if text.startswith(first) else text


PLAN_STATUS = {
    "recommended": "recommended",
    "caution": "recommended, with caution",
    "needs_information": "needs information",
    "blocked": "BLOCKED",
    "deferred": "deferred (a safer instruction governs)",
}


class PlanStepRow(NamedTuple):
    order: str
    title: str
    status: str


class PlanSectionView(NamedTuple):
    title: str
    urgency: str
    steps: list[PlanStepRow]
    waiting: list[tuple[str, list[str]]]
    blocked: list[tuple[str, list[str]]]

    def blocked_by_fact(self) -> list[tuple[str, list[str]]]:
        """(the fact that blocked, the short names of the options it blocked), in order of appearance."""
        grouped: dict[str, list[str]] = {}
        for title, facts in self.blocked:
            for fact in facts:
                grouped.setdefault(fact, []).append(short_title(title))
        return list(grouped.items())


def short_title(title: str) -> str:
    """An option's name without its dose and qualifiers: ``Zoledronic acid 5 mg IV once`` -> ``Zoledronic acid``.

    >>> short_title("Calcitonin (salmon) 100 IU SC daily"), short_title("NSAID for a short course, if not contraindicated")
    ('Calcitonin', 'NSAID for a short course')
    """
    words: list[str] = []
    for word in title.split():
        if word[0].isdigit() or word.startswith("("):
            break
        words.append(word.rstrip(","))
        if word.endswith(","):
            break
    return " ".join(words) or title


def facts_most_needed(assessment: Assessment, limit: int = 4) -> list[str]:
    """The unknown facts that most options wait for, in words, most needed first."""
    if assessment.plan is None:
        return []
    blocking = [r for r in assessment.plan.needs_information if r.blocking]
    ranked = sorted(blocking, key=lambda r: -len(r.needed_for))
    return [fact_label(r.fact) for r in ranked[:limit]]


#: the unit a plan fact's identifier ends with, and how a clinician writes it
_UNIT_SUFFIXES = {"_ml_min": "mL/min", "_mmol_l": "mmol/L", "_ng_ml": "ng/mL", "_u_l": "U/L", "_mmhg": "mmHg"}
#: names a clinician writes otherwise than the words of the fact's identifier
_FACT_NAMES = {"egfr": "eGFR", "vitamin_d": "25-OH vitamin D", "alp": "alkaline phosphatase", "systolic_bp": "systolic blood pressure"}


def fact_label(fact: str, with_unit: bool = False) -> str:
    """A fact's name in words: ``creatinine_clearance_ml_min`` -> ``creatinine clearance``, or with
    ``with_unit`` (for a line that shows its value) ``creatinine clearance (mL/min)``;
    ``egfr_ml_min`` -> ``eGFR (mL/min/1.73 m2)``, ``heart_failure`` -> ``heart failure``."""
    for suffix, unit in _UNIT_SUFFIXES.items():
        if fact.endswith(suffix):
            name = fact.removesuffix(suffix)
            words = _FACT_NAMES.get(name, state_label(name))
            unit = "mL/min/1.73 m2" if name == "egfr" else unit
            return f"{words} ({unit})" if with_unit else words
    return _FACT_NAMES.get(fact, state_label(fact))


def fact_words(fact: str) -> str:
    """:func:`fact_label` with its unit (the templates' ``fact`` filter)."""
    return fact_label(fact, with_unit=True)


def plan_in_brief(assessment: Assessment) -> list[PlanSectionView]:
    """Per plan section: the steps to take now, the options waiting for a fact, the options blocked.

    A step is a core item that is recommended (with or without caution). An option waiting
    names the facts it needs; a blocked option names the facts that blocked it, with their values.
    """
    if assessment.plan is None:
        return []
    out = []
    for section in assessment.plan.sections:
        steps = [
            PlanStepRow(str(i.order), i.title, PLAN_STATUS[i.status.value])
            for i in section.items
            if i.recommended and i.role == "core"
        ]
        waiting = [
            (i.title, list(dict.fromkeys(f.fact for f in i.needs_information)))
            for i in section.items
            if i.status.value == "needs_information"
        ]
        blocked = [
            (i.title, list(dict.fromkeys(f"{f.fact} = {f.value}" for f in i.blocked_by)))
            for i in section.items
            if i.status.value == "blocked"
        ]
        out.append(PlanSectionView(section.title, section.urgency, steps, waiting, blocked))
    return out


def must_not_miss_beyond(assessment: Assessment, shown: int = 3) -> list[DifferentialRow]:
    """The must-not-miss conditions ranked below the first ``shown``: a short report names them too."""
    return [row for row in differential_rows(assessment)[shown:] if row.must_not_miss]
