"""Time since the onset of pain: how every time of a case is derived, and the one check it passes.

A case gives its times as dates (``onset.date``, ``imaging[i].date``, ``visits[i].date``,
``assessed_on``) or as days since the onset of pain. The reasoning uses days since onset
only, and every such number is derived here and passes one check
(:func:`days_since_onset_problem`):

- not before the onset of pain (0 days);
- not after the assessment: ``assessed_on``, else the date the assessment is made
  (``today``, the ``--today`` of the command line);
- at most :data:`MAX_DAYS_SINCE_ONSET` days (10 years).

Every date must also lie between :data:`EARLIEST_DATE` and :data:`LATEST_DATE`
(:func:`date_problem`). The case model applies these checks to what it can judge without
``today`` when the case is read; the derivations apply them again with ``today``.

Examples
--------
>>> check_days_since_onset(30, "imaging.0.days_since_onset")
30
>>> check_days_since_onset(-5, "imaging.0.days_since_onset")
Traceback (most recent call last):
...
hipdx.errors.InputError: a time in the case is impossible
  - imaging.0.days_since_onset: -5 days since the onset of pain is before the pain began
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from hipdx.errors import InputError, Problem

if TYPE_CHECKING:
    from hipdx.case.model import Case, ImagingStudy, Visit

#: Longest time since the onset of pain hipdx accepts, in days (10 years): an episode of
#: bone marrow edema lasts months (transient osteoporosis about 6-12), osteonecrosis years.
MAX_DAYS_SINCE_ONSET = 3650
#: Earliest date accepted (estimate): before clinical MRI, which shows the bone marrow
#: edema hipdx is about; it also refuses placeholders such as 0001-01-01 and 1900-01-01.
EARLIEST_DATE = dt.date(1980, 1, 1)
#: Latest date accepted (estimate): refuses placeholders such as 9999-12-31 and typed years
#: such as 2099; a date after the assessment is refused separately.
LATEST_DATE = dt.date(2100, 12, 31)


class _Dated(Protocol):
    date: dt.date | None
    days_since_onset: float | None


def date_problem(value: dt.date) -> str | None:
    """The reason ``value`` is not a plausible date, or None."""
    if EARLIEST_DATE <= value <= LATEST_DATE:
        return None
    return (
        f"{value.isoformat()} is not a plausible date for this episode "
        f"(accepted {EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()})"
    )


def _days(days: float) -> str:
    return f"{days:,.0f}" if days == int(days) else f"{days:,.1f}"


def days_since_onset_problem(days: float, assessed_days: float | None = None) -> str | None:
    """The verdict on a time since the onset of pain: None when plausible, else the reason.

    Parameters
    ----------
    days
        Days from the onset of pain to the event (a study, a visit, the assessment).
    assessed_days
        Days from the onset to the assessment, when known: no event may come after it.
    """
    if days != days:  # NaN
        return "is not a number of days"
    if days < 0:
        return f"{_days(days)} days since the onset of pain is before the pain began"
    if days > MAX_DAYS_SINCE_ONSET:
        return (
            f"{_days(days)} days since the onset of pain is more than 10 years; "
            f"hipdx accepts 0 to {MAX_DAYS_SINCE_ONSET:,} days"
        )
    if assessed_days is not None and days > assessed_days:
        return f"{_days(days)} days since the onset of pain is later than the assessment ({_days(assessed_days)} days)"
    return None


def _impossible(field: str, reason: str) -> InputError:
    return InputError("a time in the case is impossible", [Problem(field, reason)])


def check_days_since_onset(days: float, field: str, assessed_days: float | None = None) -> float:
    """Return ``days`` when it is a plausible time since the onset of pain.

    The one check of every time hipdx derives; adapters that derive a time themselves (the
    DICOM StudyDate of an MRI, say) call it too.

    Parameters
    ----------
    days
        Days from the onset of pain to the event.
    field
        The dotted field the time comes from, named in the error.
    assessed_days
        Days from the onset to the assessment, when known.

    Raises
    ------
    InputError
        Before the onset, after the assessment, or more than :data:`MAX_DAYS_SINCE_ONSET`.
    """
    reason = days_since_onset_problem(days, assessed_days)
    if reason is not None:
        raise _impossible(field, reason)
    return days


def check_date(value: dt.date, field: str) -> dt.date:
    """Return ``value`` when it lies between :data:`EARLIEST_DATE` and :data:`LATEST_DATE`.

    Raises
    ------
    InputError
        Naming ``field``, e.g. ``--today`` on the command line.
    """
    reason = date_problem(value)
    if reason is not None:
        raise _impossible(field, reason)
    return value


def _assessment(case: Case, today: dt.date | None) -> tuple[dt.date | None, str]:
    if case.assessed_on is not None:
        return case.assessed_on, "assessed_on"
    return today, "the date of the assessment"


def days_since_onset(case: Case, today: dt.date | None) -> float | None:
    """Days from the onset of pain to the assessment, or None when not known.

    ``today`` is used only when the case gives an onset date but no ``assessed_on``.

    Raises
    ------
    InputError
        The onset is after the assessment date or more than 10 years before it.
    """
    onset = case.onset
    if onset.days_since_onset is not None:
        return check_days_since_onset(onset.days_since_onset, "onset.days_since_onset")
    reference, name = _assessment(case, today)
    if onset.date is None or reference is None:
        return None
    days = float((reference - onset.date).days)
    if days < 0:
        raise _impossible("onset.date", f"is after {name} ({reference.isoformat()})")
    return check_days_since_onset(days, "onset.date")


def _event_days(
    case: Case, event: _Dated, field: str, today: dt.date | None, kind: str, onset: Callable[[], float | None]
) -> float | None:
    reference, name = _assessment(case, today)
    if event.days_since_onset is not None:
        days, where = float(event.days_since_onset), f"{field}.days_since_onset"
    elif event.date is not None:
        where = f"{field}.date"
        if reference is not None and event.date > reference:
            raise _impossible(where, f"is after {name} ({reference.isoformat()})")
        if case.onset.date is not None:
            days = float((event.date - case.onset.date).days)
            if days < 0:
                raise _impossible(where, f"is before onset.date; give {kind} of this episode only")
        elif case.onset.days_since_onset is not None and reference is not None:
            days = float(case.onset.days_since_onset - (reference - event.date).days)
            if days < 0:
                raise _impossible(
                    where,
                    f"is {_days(-days)} days before the onset of pain (onset.days_since_onset counted back from "
                    f"{reference.isoformat()}); give {kind} of this episode only",
                )
        else:
            return None
    else:
        return None
    return check_days_since_onset(days, where, onset())


def _index(items: list, item: object) -> str:
    return next((str(i) for i, candidate in enumerate(items) if candidate is item), "?")


def study_days_since_onset(case: Case, study: ImagingStudy, today: dt.date | None) -> float | None:
    """Days from the onset of pain to an imaging study, or None when not known.

    A study date is counted from ``onset.date``, or back from the assessment
    (``assessed_on``, else ``today``) when the onset is given as days before it.

    Raises
    ------
    InputError
        The study comes before the onset, after the assessment or more than 10 years after onset.
    """
    return _event_days(
        case, study, f"imaging.{_index(case.imaging, study)}", today, "studies", lambda: days_since_onset(case, today)
    )


def visit_days_since_onset(case: Case, visit: Visit, today: dt.date | None) -> float | None:
    """Days from the onset of pain to a follow-up visit, or None when not known.

    The same rule as :func:`study_days_since_onset`.

    Raises
    ------
    InputError
        The visit comes before the onset, after the assessment or more than 10 years after onset.
    """
    return _event_days(
        case, visit, f"visits.{_index(case.visits, visit)}", today, "visits", lambda: days_since_onset(case, today)
    )


_NOT_YET = object()


class Timeline:
    """The times of one case for one assessment, each derived once, when first asked for.

    The same numbers as :func:`days_since_onset`, :func:`study_days_since_onset` and
    :func:`visit_days_since_onset` (and the same errors, raised when a time is first asked
    for); one assessment builds one and hands it to every step that needs a time, so no
    time is derived twice.

    Examples
    --------
    >>> from hipdx.case.model import Case
    >>> t = Timeline(Case.model_validate({"onset": {"days_since_onset": 30},
    ...     "imaging": [{"modality": "mri", "days_since_onset": 12}]}), None)
    >>> t.onset, t.study(0)
    (30.0, 12.0)
    """

    __slots__ = ("case", "today", "_onset", "_studies", "_visits")

    def __init__(self, case: Case, today: dt.date | None) -> None:
        self.case = case
        self.today = today
        self._onset: object = _NOT_YET
        self._studies: dict[int, float | None] = {}
        self._visits: dict[int, float | None] = {}

    @classmethod
    def of(cls, case: Case, today: dt.date | None, timeline: Timeline | None = None) -> Timeline:
        """``timeline`` when it is the one of ``case`` and ``today``, else a new one."""
        if timeline is not None and timeline.case is case and timeline.today == today:
            return timeline
        return cls(case, today)

    @property
    def onset(self) -> float | None:
        """Days from the onset of pain to the assessment (:func:`days_since_onset`)."""
        if self._onset is _NOT_YET:
            self._onset = days_since_onset(self.case, self.today)
        return self._onset  # type: ignore[return-value]

    def _onset_days(self) -> float | None:
        return self.onset

    def study(self, i: int) -> float | None:
        """Days from the onset to ``case.imaging[i]`` (:func:`study_days_since_onset`)."""
        days = self._studies.get(i, _NOT_YET)
        if days is _NOT_YET:
            study = self.case.imaging[i]
            days = self._studies[i] = _event_days(self.case, study, f"imaging.{i}", self.today, "studies", self._onset_days)
        return days  # type: ignore[return-value]

    def visit(self, j: int) -> float | None:
        """Days from the onset to ``case.visits[j]`` (:func:`visit_days_since_onset`)."""
        days = self._visits.get(j, _NOT_YET)
        if days is _NOT_YET:
            visit = self.case.visits[j]
            days = self._visits[j] = _event_days(self.case, visit, f"visits.{j}", self.today, "visits", self._onset_days)
        return days  # type: ignore[return-value]


def timeline_problems(case: Case, today: dt.date | None) -> list[Problem]:
    """Every impossible time of the case: the onset, each study and each visit.

    With ``today`` None, only what can be judged from the case alone (its dates against each
    other and against ``assessed_on``).
    """
    try:
        days_since_onset(case, today)
    except InputError as err:
        return err.problems  # the other times are counted from the onset: judge it first
    problems: list[Problem] = []
    for study in case.imaging:
        try:
            study_days_since_onset(case, study, today)
        except InputError as err:
            problems += err.problems
    for visit in case.visits:
        try:
            visit_days_since_onset(case, visit, today)
        except InputError as err:
            problems += err.problems
    return problems
