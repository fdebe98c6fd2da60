"""Turning raw input (JSON text or a mapping) into a validated :class:`Case`.

The times of a case (days since the onset of pain) are derived and checked in
:mod:`hipdx.case.timeline`, their one home.

All problems are collected and reported together, each with the dotted path of the
field and the reason, as one :class:`~hipdx.errors.InputError`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ValidationError

from hipdx.case.model import Case
from hipdx.case.problems import problems_from_validation
from hipdx.case.timeline import timeline_problems
from hipdx.errors import InputError
from hipdx.jsonio import loads


def parse_case(raw: str | bytes | dict[str, Any], today: date | None = None) -> Case:
    """Validate a case given as JSON text or an already decoded mapping.

    Parameters
    ----------
    raw
        The case.
    today
        The date the assessment is made, when known (the command line's ``--today``): the
        times the case counts from it (an onset date without ``assessed_on``) are checked
        too, by :func:`hipdx.case.timeline.timeline_problems`. Without it they are checked
        when the reasoning derives them.

    Raises
    ------
    InputError
        Malformed JSON (including a key given twice, see :func:`hipdx.jsonio.loads`), a
        field that does not exist, a value of the wrong type or unit, an implausible value
        or an impossible time; every problem is listed.
    """
    if isinstance(raw, (str, bytes)):
        raw = loads(raw, "the case")
    if not isinstance(raw, dict):
        raise InputError(f"a case must be a JSON object, not {type(raw).__name__}")
    try:
        case = Case.model_validate(raw)
    except ValidationError as exc:
        raise InputError("the case is not valid", problems_from_validation(exc)) from None
    problems = timeline_problems(case, today) if today is not None else []
    if problems:
        raise InputError("the case is not valid", problems)
    return case


__all__ = ["parse_case", "problems_from_validation"]
