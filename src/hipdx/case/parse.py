"""Turning raw input (JSON text or a mapping) into a validated :class:`Case`.

The times of a case (days since the onset of pain) are derived and checked in
:mod:`hipdx.case.timeline`, their one home.

All problems are collected and reported together, each with the dotted path of the
field and the reason, as one :class:`~hipdx.errors.InputError`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pydantic import ValidationError

from hipdx.case.model import Case
from hipdx.case.timeline import timeline_problems
from hipdx.errors import InputError, Problem
from hipdx.jsonio import excerpt, loads, printable


#: Model-level checks name the offending field first: "pregnancy.status: impossible for ...".
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_.]*): (.+)$", re.DOTALL)


def problems_from_validation(error: ValidationError) -> list[Problem]:
    """Translate pydantic's errors into field-named problems a clinician can read."""
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(printable(str(part)) for part in item["loc"])  # a key may come from the input
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        prefixed = _FIELD_PREFIX.match(message)
        if prefixed and item["type"] == "value_error":
            field = ".".join(filter(None, [field, prefixed.group(1)]))
            message = prefixed.group(2)
        if item["type"] == "model_type" and "Measurement" in message:
            message = (
                f"give the value with its unit, e.g. {{\"value\": {excerpt(item.get('input'))}, \"unit\": \"...\"}}; "
                "a number alone is not accepted because the unit cannot be guessed"
            )
        if item["type"] in ("float_type", "finite_number"):
            message = (
                f"{excerpt(item.get('input'))} is not a number; give a number such as 45 or 2.1 "
                "(true/false and numbers in quotes are not read as numbers)"
            )
        elif item["type"] == "bool_type":
            message = f"{excerpt(item.get('input'))} is not true or false"
        elif item["type"] == "string_type":
            message = f"{excerpt(item.get('input'))} is not text; give it in quotes"
        elif item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; `hipdx schema` lists every field)"
        elif item["type"] == "enum":
            expected = item.get("ctx", {}).get("expected", "")
            message = f"{excerpt(item.get('input'))} is not one of {expected}"
        problems.append(Problem(field or "(case)", message))
    return problems


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
