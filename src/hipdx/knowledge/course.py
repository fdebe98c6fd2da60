"""The expected course of each diagnosis and the follow-up alert rules, as checked data.

``knowledge/data/course.yaml`` holds, per condition of the differential:

- ``pain``: the expected band of pain (0-10) by days since onset, as points joined by
  straight lines;
- ``walking``: the worst walking ability still within the course, from a day onwards;
- ``edema``: when bone marrow edema on MRI is expected to resolve;
- ``expected``: cited statements of what happens instead, where no band can be drawn
  (osteonecrosis, subchondral insufficiency fracture);
- ``follow_up``: when to review and image;

and a list of ``alerts``: rules of a known ``kind`` with their thresholds, the action and
the sources. Every band, expectation and threshold says whether it is ``reported``,
``derived``, ``transferred`` from another population or an ``estimate`` with the
reasoning, like the numbers of the knowledge base (:mod:`hipdx.knowledge.schema`). The rules are evaluated by :mod:`hipdx.reasoning.course`.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hipdx.case.model import Walking
from hipdx.errors import Problem
from hipdx.knowledge.schema import Cited, Reference

COURSE_FILE = "course.yaml"
#: ``applies_to`` value for a rule that holds whatever the leading diagnosis.
ANY_CONDITION = "any"

_ID = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]
_DAY = Annotated[float, Field(ge=0, le=3650)]
_PAIN = Annotated[float, Field(ge=0, le=10)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Where a band, a statement or a threshold comes from (nothing here is sampled, so no ``n``).
Source = Cited


class BandPoint(_Data):
    """The expected range of pain (0-10) at ``day`` days since onset."""

    day: _DAY
    low: _PAIN
    high: _PAIN

    @model_validator(mode="after")
    def _ordered(self) -> BandPoint:
        if self.low > self.high:
            raise ValueError(f"day {self.day:g}: low ({self.low:g}) is above high ({self.high:g})")
        return self


class PainBand(_Data):
    """Expected pain by days since onset; straight lines between the points, flat beyond the last."""

    points: list[BandPoint] = Field(min_length=2)
    source: Source

    @model_validator(mode="after")
    def _increasing(self) -> PainBand:
        days = [p.day for p in self.points]
        if days[0] != 0:
            raise ValueError("the first point is at day 0 (onset)")
        if any(a >= b for a, b in zip(days, days[1:])):
            raise ValueError("days must increase")
        return self

    def at(self, day: float) -> tuple[float, float]:
        """The expected (low, high) pain at ``day`` days since onset (see :func:`band_at`)."""
        return band_at([(p.day, p.low, p.high) for p in self.points], day)


def band_at(points: Sequence[tuple[float, float, float]], day: float) -> tuple[float, float]:
    """(low, high) of a band given as increasing ``(day, low, high)`` points, at ``day``.

    Straight lines between the points; flat before the first and after the last.

    >>> band_at([(0, 2, 10), (100, 0, 4)], 50)
    (1.0, 7.0)
    >>> band_at([(0, 2, 10), (100, 0, 4)], 400)
    (0.0, 4.0)
    """
    if day <= points[0][0]:
        return float(points[0][1]), float(points[0][2])
    for (d0, lo0, hi0), (d1, lo1, hi1) in zip(points, points[1:]):
        if day <= d1:
            t = (day - d0) / (d1 - d0)
            return lo0 + t * (lo1 - lo0), hi0 + t * (hi1 - hi0)
    return float(points[-1][1]), float(points[-1][2])


#: Walking ability from best to worst; the index is the order used to compare visits.
WALKING_ORDER: tuple[Walking, ...] = (Walking.normal, Walking.limp, Walking.walking_aids, Walking.unable)


class WalkingStep(_Data):
    """From ``from_day`` on, walking up to ``worst_expected`` is within the course."""

    from_day: _DAY
    worst_expected: Walking

    @model_validator(mode="after")
    def _known(self) -> WalkingStep:
        if self.worst_expected is Walking.unknown:
            raise ValueError("worst_expected must be a walking ability, not 'unknown'")
        return self


class EdemaCourse(_Data):
    """When bone marrow edema on MRI is expected to have resolved."""

    earliest_resolution_day: _DAY
    expected_resolved_by_day: _DAY
    source: Source

    @model_validator(mode="after")
    def _ordered(self) -> EdemaCourse:
        if self.earliest_resolution_day > self.expected_resolved_by_day:
            raise ValueError("earliest_resolution_day is after expected_resolved_by_day")
        return self


class Expectation(_Data):
    """A cited statement of the expected course where no band can be drawn."""

    statement: str
    source: Source


class FollowUp(_Data):
    """A review or test and the days since onset it is due."""

    what: str
    at_days: list[_DAY] = Field(min_length=1)
    source: Source


class ConditionCourse(_Data):
    """The expected course of one condition of the differential."""

    condition: _ID
    summary: str
    pain: PainBand | None = None
    walking: list[WalkingStep] = []
    walking_source: Source | None = None
    edema: EdemaCourse | None = None
    expected: list[Expectation] = []
    follow_up: list[FollowUp] = []

    @model_validator(mode="after")
    def _shape(self) -> ConditionCourse:
        if self.walking:
            if self.walking_source is None:
                raise ValueError("walking needs a walking_source")
            days = [s.from_day for s in self.walking]
            if days[0] != 0 or any(a >= b for a, b in zip(days, days[1:])):
                raise ValueError("walking: from_day starts at 0 and increases")
        if self.pain is None and not self.expected:
            raise ValueError("give a pain band or at least one expected statement")
        return self

    def worst_walking_expected(self, day: float) -> Walking | None:
        """The worst walking ability within the course at ``day``, or None when not described."""
        current = None
        for step in self.walking:
            if day >= step.from_day:
                current = step.worst_expected
        return current


class AlertKind(str, Enum):
    """What an alert rule looks at; :mod:`hipdx.reasoning.course` evaluates each kind."""

    no_improvement = "no_improvement"
    worsening = "worsening"
    new_joint_pain = "new_joint_pain"
    pregnancy_rising_pain = "pregnancy_rising_pain"
    edema_resolved_pain_persisting = "edema_resolved_pain_persisting"
    edema_persisting = "edema_persisting"


#: The thresholds each kind of rule needs, and nothing else.
THRESHOLDS: dict[AlertKind, frozenset[str]] = {
    AlertKind.no_improvement: frozenset({"after_day", "min_improvement_fraction", "min_pain"}),
    AlertKind.worsening: frozenset({"after_day", "min_rise_points"}),
    AlertKind.new_joint_pain: frozenset(),
    AlertKind.pregnancy_rising_pain: frozenset({"min_rise_points"}),
    AlertKind.edema_resolved_pain_persisting: frozenset({"min_pain"}),
    AlertKind.edema_persisting: frozenset({"after_day"}),
}


class Severity(str, Enum):
    """How soon to act, most urgent first (as the urgency of a red flag)."""

    emergency = "emergency"
    urgent = "urgent"
    soon = "soon"


class AlertRule(_Data):
    """A rule that raises an alert when the visits leave the expected course."""

    id: _ID
    kind: AlertKind
    applies_to: list[_ID] = Field(min_length=1, description="condition ids, or 'any'")
    severity: Severity
    title: str
    action: str
    ref: str | list[str]
    thresholds: dict[str, float]
    threshold_source: Source

    @model_validator(mode="after")
    def _thresholds(self) -> AlertRule:
        needed = THRESHOLDS[self.kind]
        missing, extra = sorted(needed - set(self.thresholds)), sorted(set(self.thresholds) - needed)
        if missing or extra:
            raise ValueError(
                f"a {self.kind.value} rule needs thresholds {sorted(needed)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {extra}" if extra else "")
            )
        if any(v < 0 for v in self.thresholds.values()):
            raise ValueError("thresholds are not negative")
        if self.thresholds.get("min_improvement_fraction", 0) > 1:
            raise ValueError("min_improvement_fraction is a fraction (0-1)")
        return self

    @property
    def refs(self) -> list[str]:
        return [self.ref] if isinstance(self.ref, str) else list(self.ref)

    def applies(self, condition_id: str) -> bool:
        return ANY_CONDITION in self.applies_to or condition_id in self.applies_to


class CourseFile(_Data):
    version: str = Field(pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    courses: list[ConditionCourse]
    alerts: list[AlertRule]


@dataclass(frozen=True)
class CourseKnowledge:
    """The validated course file, with the references it cites. Immutable; share one instance."""

    version: str
    digest: str
    courses: dict[str, ConditionCourse]
    alerts: tuple[AlertRule, ...]
    references: dict[str, Reference]
    condition_names: dict[str, str]

    def course(self, condition_id: str) -> ConditionCourse | None:
        """The expected course of ``condition_id``, or None when the file does not describe it."""
        return self.courses.get(condition_id)

    def alerts_for(self, condition_id: str) -> list[AlertRule]:
        """The rules that apply when ``condition_id`` leads the differential, in file order."""
        return [rule for rule in self.alerts if rule.applies(condition_id)]


def compile_course(
    course_file: CourseFile,
    references: dict[str, Reference],
    condition_names: dict[str, str],
    digest: str,
    problems: list[Problem],
) -> CourseKnowledge:
    """Check the course data against the conditions and the bibliography; problems are appended."""
    _check(course_file, set(references), set(condition_names), problems)
    cited = {ref for _, refs in _citations(course_file) for ref in refs}
    return CourseKnowledge(
        version=course_file.version,
        digest=digest,
        courses={c.condition: c for c in course_file.courses},
        alerts=tuple(course_file.alerts),
        references={key: references[key] for key in sorted(cited) if key in references},
        condition_names=condition_names,
    )


def _citations(course_file: CourseFile) -> typing.Iterator[tuple[str, list[str]]]:
    """Every place the file cites something: (where, keys)."""
    for c in course_file.courses:
        where = f"{COURSE_FILE}: courses.{c.condition}"
        if c.pain is not None:
            yield f"{where}.pain", c.pain.source.refs
        if c.walking_source is not None:
            yield f"{where}.walking_source", c.walking_source.refs
        if c.edema is not None:
            yield f"{where}.edema", c.edema.source.refs
        for i, e in enumerate(c.expected):
            yield f"{where}.expected.{i}", e.source.refs
        for i, f in enumerate(c.follow_up):
            yield f"{where}.follow_up.{i}", f.source.refs
    for rule in course_file.alerts:
        yield f"{COURSE_FILE}: alerts.{rule.id}", rule.refs
        yield f"{COURSE_FILE}: alerts.{rule.id}.threshold_source", rule.threshold_source.refs


def _check(course_file: CourseFile, references: set[str], conditions: set[str], problems: list[Problem]) -> None:
    for where, refs in _citations(course_file):
        for ref in refs:
            if ref not in references:
                problems.append(Problem(where, f"cites {ref!r}, which is not in bibliography.yaml"))
    seen: set[str] = set()
    for c in course_file.courses:
        if c.condition not in conditions:
            problems.append(Problem(f"{COURSE_FILE}: courses.{c.condition}", "unknown condition"))
        if c.condition in seen:
            problems.append(Problem(f"{COURSE_FILE}: courses.{c.condition}", "described twice"))
        seen.add(c.condition)
    rule_ids: set[str] = set()
    for rule in course_file.alerts:
        if rule.id in rule_ids:
            problems.append(Problem(f"{COURSE_FILE}: alerts.{rule.id}", "defined twice"))
        rule_ids.add(rule.id)
        unknown = sorted(set(rule.applies_to) - conditions - {ANY_CONDITION})
        if unknown:
            problems.append(Problem(f"{COURSE_FILE}: alerts.{rule.id}.applies_to", f"unknown condition(s) {unknown}"))
