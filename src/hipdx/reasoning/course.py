"""Follow-up visits compared with the expected course of the leading diagnosis. Pure: no I/O, no clock.

:func:`compare_course` places each dated visit of a case against the expected course in
``knowledge/data/course.yaml`` (a band of pain by days since onset, the worst expected
walking ability, when edema should resolve) and evaluates the alert rules of that file:

- ``no_improvement``: by about 3 months the pain has not fallen by a clinically important
  fraction from its worst, or lies above the expected band;
- ``worsening``: the latest pain is clearly above the lowest earlier score, or the patient
  can no longer walk, after the early weeks in which pain may still build up;
- ``new_joint_pain``: a visit reports new pain in another joint (migration);
- ``pregnancy_rising_pain``: a pregnant or postpartum patient whose pain is rising;
- ``edema_resolved_pain_persisting``: the latest MRI edema is gone but pain persists;
- ``edema_persisting``: edema still present after the expected time of resolution.

Only the visits feed the comparison; imaging studies and the presenting findings of the
case feed the differential (:func:`hipdx.reasoning.assess`), which the caller runs first to
name the leading diagnosis. Rules look at the latest visits: an alert is about what to do
now, not about a past episode that has since settled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from enum import Enum

from pydantic import Field

from hipdx.reasoning.frozen import Frozen
from hipdx.case.model import Case, EdemaExtent, Presence, PregnancyStatus, Visit, Walking
from hipdx.case.timeline import Timeline
from hipdx.knowledge.course import (
    WALKING_ORDER,
    AlertKind,
    AlertRule,
    ConditionCourse,
    CourseKnowledge,
    Severity,
)


class PainPosition(str, Enum):
    """Where a visit's pain lies relative to the expected band at that time."""

    below = "below"
    within = "within"
    above = "above"
    not_recorded = "not_recorded"
    no_expected_band = "no_expected_band"


class WalkingPosition(str, Enum):
    within = "within"
    worse_than_expected = "worse_than_expected"
    not_recorded = "not_recorded"
    no_expectation = "no_expectation"


class EdemaPosition(str, Enum):
    """A visit's MRI edema relative to the expected time of resolution."""

    present_within_course = "present_within_course"
    persisting_beyond_expected = "persisting_beyond_expected"
    resolved = "resolved"
    resolved_earlier_than_usual = "resolved_earlier_than_usual"
    not_recorded = "not_recorded"
    no_expectation = "no_expectation"


class CoursePoint(Frozen):
    """One visit placed against the expected course."""

    visit: int = Field(description="index of the visit in the case as given")
    days_since_onset: float
    date: dt.date | None
    pain_0_10: float | None
    expected_pain: tuple[float, float] | None = Field(description="(low, high) of the expected band at this time")
    pain_position: PainPosition
    walking: Walking
    walking_worst_expected: Walking | None
    walking_position: WalkingPosition
    edema_extent: EdemaExtent
    edema_volume_ml: float | None
    edema_position: EdemaPosition
    bmd_t_score: float | None
    new_joint_pain: Presence
    new_joint_site: str | None


class CourseAlert(Frozen):
    """A rule met by the visits: what was seen, what to do, and why."""

    id: str
    kind: str
    severity: Severity
    title: str
    finding: str = Field(description="what in the visits met the rule, with the numbers")
    visits: list[int] = Field(description="indices of the visits that triggered it, as given in the case")
    days_since_onset: list[float] = Field(description="days since onset of those visits")
    action: str
    refs: list[str]
    threshold_basis: str = Field(description="reported, derived, transferred or estimate: the basis of the rule's thresholds")


class ExpectedFollowUp(Frozen):
    what: str
    at_days: list[float]
    refs: list[str]


class ExpectedCourse(Frozen):
    """The expected course of the leading diagnosis, as the knowledge base states it."""

    condition: str
    summary: str
    pain_band: list[tuple[float, float, float]] | None = Field(description="(day, low, high) points; lines between")
    pain_band_basis: str | None
    pain_band_refs: list[str]
    pain_band_note: str | None
    walking: list[tuple[float, Walking]] = Field(description="(from day, worst walking ability expected)")
    edema_earliest_resolution_day: float | None
    edema_expected_resolved_by_day: float | None
    expected: list[str] = Field(description="cited statements, where no band can be drawn")
    follow_up: list[ExpectedFollowUp]


class CourseReport(Frozen):
    """The course of one case against the expected course of its leading diagnosis."""

    case_id: str | None
    condition: str = Field(description="the leading diagnosis the course is compared with")
    condition_name: str
    days_since_onset: float | None = Field(description="at the assessment")
    expected: ExpectedCourse | None = Field(description="None when the knowledge base has no course for it")
    points: list[CoursePoint] = Field(description="dated visits, earliest first")
    alerts: list[CourseAlert] = Field(description="most urgent first")
    undated_visits: list[int] = Field(description="visits left out: no time since onset, or before the onset")
    rules_evaluated: list[str]
    warnings: list[str]
    course_knowledge_version: str
    course_knowledge_digest: str


_SEVERITY_ORDER = {s: i for i, s in enumerate(Severity)}


def compare_course(
    case: Case, leading_condition_id: str, course_knowledge: CourseKnowledge, today: dt.date
) -> CourseReport:
    """Compare the visits of ``case`` with the expected course of ``leading_condition_id``.

    Parameters
    ----------
    case
        A validated case; its ``visits`` are the course (in any order).
    leading_condition_id
        The leading diagnosis of the differential, e.g. ``assess(...).differential[0].id``.
    course_knowledge
        :func:`hipdx.knowledge.course.load_course_knowledge`.
    today
        Used only to place visits given by date when the case gives the onset as days
        before an assessment without ``assessed_on``.

    Raises
    ------
    KeyError
        ``leading_condition_id`` is not a condition of the knowledge base.
    InputError
        A visit comes before the onset of pain, after the assessment or more than 10 years
        after onset (:func:`hipdx.case.timeline.visit_days_since_onset`).

    Examples
    --------
    >>> from hipdx.knowledge import load_course_knowledge
    >>> case = Case.model_validate({"visits": [{"days_since_onset": 20, "pain_0_10": 8},
    ...                                        {"days_since_onset": 100, "pain_0_10": 8}]})
    >>> report = compare_course(case, "toh", load_course_knowledge(), dt.date(2026, 1, 1))
    >>> [a.id for a in report.alerts]
    ['no_improvement_3_months']
    """
    name = course_knowledge.condition_names[leading_condition_id]
    course = course_knowledge.course(leading_condition_id)
    warnings: list[str] = []

    timeline = Timeline(case, today)
    dated, unplaced = _dated_visits(case, timeline)
    if unplaced:
        warnings.append(
            f"Visit(s) {_numbers(unplaced)} cannot be placed in time (a date, but no onset date or "
            "days since onset in the case); they are left out."
        )
    points = [_place(days, index, visit, course) for days, index, visit in dated]

    if not case.visits:
        warnings.append("The case has no follow-up visits: there is no course to compare yet.")
    elif points and all(p.pain_0_10 is None for p in points):
        warnings.append("No visit records a pain score: the pain rules could not be evaluated.")
    if course is None:
        warnings.append(
            f"The knowledge base describes no expected course for {name}; only the rules that hold "
            "whatever the diagnosis were applied."
        )

    rules = course_knowledge.alerts_for(leading_condition_id)
    alerts = _alerts(case, rules, points, course)

    return CourseReport(
        case_id=case.id,
        condition=leading_condition_id,
        condition_name=name,
        days_since_onset=timeline.onset,
        expected=_expected(course) if course is not None else None,
        points=points,
        alerts=alerts,
        undated_visits=unplaced,
        rules_evaluated=[r.id for r in rules],
        warnings=warnings,
        course_knowledge_version=course_knowledge.version,
        course_knowledge_digest=course_knowledge.digest,
    )


def _dated_visits(case: Case, timeline: Timeline) -> tuple[list[tuple[float, int, Visit]], list[int]]:
    """``(days since onset, index, visit)`` of the visits placed in time, in time order, and the
    indices of those that cannot be placed."""
    dated: list[tuple[float, int, Visit]] = []
    unplaced: list[int] = []
    for index, visit in enumerate(case.visits):
        days = timeline.visit(index)  # raises for a visit before onset or after the assessment
        if days is None:
            unplaced.append(index)
        else:
            dated.append((days, index, visit))
    dated.sort(key=lambda item: (item[0], item[1]))  # visits may be given in any order
    return dated, unplaced


def _alerts(case: Case, rules: Sequence[AlertRule], points: list[CoursePoint], course: ConditionCourse | None) -> list[CourseAlert]:
    """The alerts of the rules that hold on the placed visits, most severe first (the pregnancy
    rule only in pregnancy or post partum)."""
    pregnant_or_postpartum = case.pregnancy.status in (PregnancyStatus.pregnant, PregnancyStatus.postpartum)
    alerts = []
    for rule in rules:
        if rule.kind is AlertKind.pregnancy_rising_pain and not pregnant_or_postpartum:
            continue
        hit = _EVALUATORS[rule.kind](rule, points, course)
        if hit is not None:
            finding, triggering = hit
            alerts.append(_alert(rule, finding, triggering))
    alerts.sort(key=lambda a: _SEVERITY_ORDER[a.severity])
    return alerts


def _numbers(indices: list[int]) -> str:
    return ", ".join(str(i + 1) for i in indices)


# -- placing one visit ----------------------------------------------------------------------


#: The expected pain band is reported to one decimal of the 0-10 scale, and a visit's pain is
#: placed against the band as reported, so that a reader who sees the band and the label never
#: finds them disagreeing (a pain of 6 was once "above" a band shown as 0-6, its edge being 5.83).
PAIN_BAND_DECIMALS = 1


def _place(days: float, index: int, visit: Visit, course: ConditionCourse | None) -> CoursePoint:
    band = course.pain.at(days) if course is not None and course.pain is not None else None
    expected_pain = (round(band[0], PAIN_BAND_DECIMALS), round(band[1], PAIN_BAND_DECIMALS)) if band else None
    if visit.pain_0_10 is None:
        pain_position = PainPosition.not_recorded
    elif expected_pain is None:
        pain_position = PainPosition.no_expected_band
    elif visit.pain_0_10 > expected_pain[1]:
        pain_position = PainPosition.above
    elif visit.pain_0_10 < expected_pain[0]:
        pain_position = PainPosition.below
    else:
        pain_position = PainPosition.within

    worst = course.worst_walking_expected(days) if course is not None else None
    if visit.walking is Walking.unknown:
        walking_position = WalkingPosition.not_recorded
    elif worst is None:
        walking_position = WalkingPosition.no_expectation
    elif _walking_rank(visit.walking) > _walking_rank(worst):
        walking_position = WalkingPosition.worse_than_expected
    else:
        walking_position = WalkingPosition.within

    return CoursePoint(
        visit=index,
        days_since_onset=days,
        date=visit.date,
        pain_0_10=visit.pain_0_10,
        expected_pain=expected_pain,
        pain_position=pain_position,
        walking=visit.walking,
        walking_worst_expected=worst,
        walking_position=walking_position,
        edema_extent=visit.edema_extent,
        edema_volume_ml=visit.edema_volume_ml,
        edema_position=_edema_position(days, visit.edema_extent, course),
        bmd_t_score=visit.bmd_t_score,
        new_joint_pain=visit.new_joint_pain,
        new_joint_site=visit.new_joint_site,
    )


def _edema_position(days: float, extent: EdemaExtent, course: ConditionCourse | None) -> EdemaPosition:
    if extent is EdemaExtent.unknown:
        return EdemaPosition.not_recorded
    if course is None or course.edema is None:
        return EdemaPosition.no_expectation
    if extent is EdemaExtent.none:
        if days < course.edema.earliest_resolution_day:
            return EdemaPosition.resolved_earlier_than_usual
        return EdemaPosition.resolved
    if days > course.edema.expected_resolved_by_day:
        return EdemaPosition.persisting_beyond_expected
    return EdemaPosition.present_within_course


def _walking_rank(walking: Walking) -> int:
    return WALKING_ORDER.index(walking)


# -- the rules ------------------------------------------------------------------------------

#: What a rule evaluator returns when the rule is met: the finding in words and the
#: triggering points.
_Hit = tuple[str, list[CoursePoint]] | None


#: A visit with a pain score, and the score.
_Scored = tuple[CoursePoint, float]


def _pain_points(points: Sequence[CoursePoint], from_day: float = 0.0) -> list[_Scored]:
    return [(p, p.pain_0_10) for p in points if p.pain_0_10 is not None and p.days_since_onset >= from_day]


def _day(p: CoursePoint) -> str:
    return f"day {p.days_since_onset:g}"


def _no_improvement(rule: AlertRule, points: Sequence[CoursePoint], course: ConditionCourse | None) -> _Hit:
    after = rule.thresholds["after_day"]
    fraction = rule.thresholds["min_improvement_fraction"]
    scored = _pain_points(points)
    if not scored or scored[-1][0].days_since_onset < after:
        return None  # too early to tell
    (latest, pain), earlier = scored[-1], scored[:-1]
    if latest.expected_pain is not None and pain > latest.expected_pain[1]:
        low, high = latest.expected_pain
        return (
            f"Pain {pain:g}/10 at {_day(latest)} is above the expected band "
            f"({round(low, 1):g}-{round(high, 1):g}/10 at that time).",
            [latest],
        )
    if not earlier or pain < rule.thresholds["min_pain"]:
        return None
    worst, worst_pain = max(earlier, key=lambda s: (s[1], -s[0].days_since_onset))
    fall = worst_pain - pain
    if fall >= fraction * worst_pain:
        return None
    change = f"a fall of {fall / worst_pain:.0%}" if fall > 0 else "no fall"
    return (
        f"Pain {pain:g}/10 at {_day(latest)} against a worst of {worst_pain:g}/10 at {_day(worst)}: "
        f"{change}, where at least {fraction:.0%} is expected by day {after:g}.",
        [worst, latest],
    )


def _rising(scored: Sequence[_Scored], min_rise: float) -> tuple[_Scored, _Scored] | None:
    """(lowest earlier, latest) when the latest pain is at least ``min_rise`` above the lowest earlier."""
    if len(scored) < 2:
        return None
    latest = scored[-1]
    lowest = min(scored[:-1], key=lambda s: (s[1], -s[0].days_since_onset))
    return (lowest, latest) if latest[1] - lowest[1] >= min_rise else None


def _lost_walking(points: Sequence[CoursePoint]) -> tuple[CoursePoint, CoursePoint] | None:
    """(an earlier visit walking better, latest) when the latest visit records 'unable to walk'."""
    known = [p for p in points if p.walking is not Walking.unknown]
    if len(known) < 2 or known[-1].walking is not Walking.unable:
        return None
    better = [p for p in known[:-1] if p.walking is not Walking.unable]
    return (better[-1], known[-1]) if better else None


def _worse(points: Sequence[CoursePoint], from_day: float, min_rise: float) -> _Hit:
    window = [p for p in points if p.days_since_onset >= from_day]
    findings, triggering = [], []
    rise = _rising(_pain_points(window), min_rise)
    if rise is not None:
        (lowest, low), (latest, high) = rise
        findings.append(f"pain rose from {low:g}/10 at {_day(lowest)} to {high:g}/10 at {_day(latest)}")
        triggering += [lowest, latest]
    lost = _lost_walking(window)
    if lost is not None:
        before, latest = lost
        findings.append(
            f"walking went from {before.walking.value.replace('_', ' ')} at {_day(before)} "
            f"to unable to walk at {_day(latest)}"
        )
        triggering += [before, latest]
    if not findings:
        return None
    unique = sorted({p.visit: p for p in triggering}.values(), key=lambda p: p.days_since_onset)
    return "; ".join(findings), unique


def _worsening(rule: AlertRule, points: Sequence[CoursePoint], course: ConditionCourse | None) -> _Hit:
    after = rule.thresholds["after_day"]
    hit = _worse(points, after, rule.thresholds["min_rise_points"])
    if hit is None:
        return None
    window = f" (visits from day {after:g} on compared)" if after > 0 else ""
    return _sentence(hit[0] + window), hit[1]


def _pregnancy_rising_pain(rule: AlertRule, points: Sequence[CoursePoint], course: ConditionCourse | None) -> _Hit:
    hit = _worse(points, 0.0, rule.thresholds["min_rise_points"])
    if hit is None:
        return None
    return _sentence("pregnant or postpartum, and " + hit[0]), hit[1]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _new_joint_pain(rule: AlertRule, points: Sequence[CoursePoint], course: ConditionCourse | None) -> _Hit:
    new = [p for p in points if p.new_joint_pain is Presence.present]
    if not new:
        return None
    seen = "; ".join(f"{p.new_joint_site or 'site not given'} at {_day(p)}" for p in new)
    return f"New pain in another joint: {seen}.", new


def _latest_edema(points: Sequence[CoursePoint]) -> CoursePoint | None:
    known = [p for p in points if p.edema_extent is not EdemaExtent.unknown]
    return known[-1] if known else None


def _edema_resolved_pain_persisting(
    rule: AlertRule, points: Sequence[CoursePoint], course: ConditionCourse | None
) -> _Hit:
    edema = _latest_edema(points)
    if edema is None or edema.edema_extent is not EdemaExtent.none:
        return None
    since = _pain_points(points, edema.days_since_onset)
    if not since or since[-1][1] < rule.thresholds["min_pain"]:
        return None
    visit, pain = since[-1]
    return (
        f"No edema on MRI at {_day(edema)}, but pain {pain:g}/10 at {_day(visit)} "
        f"(alert from {rule.thresholds['min_pain']:g}/10).",
        [edema] if visit.visit == edema.visit else [edema, visit],
    )


def _edema_persisting(rule: AlertRule, points: Sequence[CoursePoint], course: ConditionCourse | None) -> _Hit:
    edema = _latest_edema(points)
    after = rule.thresholds["after_day"]
    if edema is None or edema.edema_extent is EdemaExtent.none or edema.days_since_onset <= after:
        return None
    extent = edema.edema_extent.value.replace("_", " ")
    return f"Edema ({extent}) still present at {_day(edema)}, beyond day {after:g}.", [edema]


_EVALUATORS: dict[AlertKind, Callable[[AlertRule, Sequence[CoursePoint], ConditionCourse | None], _Hit]] = {
    AlertKind.no_improvement: _no_improvement,
    AlertKind.worsening: _worsening,
    AlertKind.new_joint_pain: _new_joint_pain,
    AlertKind.pregnancy_rising_pain: _pregnancy_rising_pain,
    AlertKind.edema_resolved_pain_persisting: _edema_resolved_pain_persisting,
    AlertKind.edema_persisting: _edema_persisting,
}


def _alert(rule: AlertRule, finding: str, triggering: list[CoursePoint]) -> CourseAlert:
    refs = list(dict.fromkeys(rule.refs + rule.threshold_source.refs))
    return CourseAlert(
        id=rule.id,
        kind=rule.kind.value,
        severity=rule.severity,
        title=rule.title,
        finding=finding,
        visits=[p.visit for p in triggering],
        days_since_onset=[p.days_since_onset for p in triggering],
        action=" ".join(rule.action.split()),
        refs=refs,
        threshold_basis=rule.threshold_source.basis.value,
    )


def _expected(course: ConditionCourse) -> ExpectedCourse:
    pain = course.pain
    return ExpectedCourse(
        condition=course.condition,
        summary=" ".join(course.summary.split()),
        pain_band=[(p.day, p.low, p.high) for p in pain.points] if pain is not None else None,
        pain_band_basis=pain.source.basis.value if pain is not None else None,
        pain_band_refs=pain.source.refs if pain is not None else [],
        pain_band_note=" ".join(pain.source.note.split()) if pain is not None and pain.source.note else None,
        walking=[(s.from_day, s.worst_expected) for s in course.walking],
        edema_earliest_resolution_day=course.edema.earliest_resolution_day if course.edema else None,
        edema_expected_resolved_by_day=course.edema.expected_resolved_by_day if course.edema else None,
        expected=[" ".join(e.statement.split()) for e in course.expected],
        follow_up=[ExpectedFollowUp(what=f.what, at_days=list(f.at_days), refs=f.source.refs) for f in course.follow_up],
    )
