"""The one translation of the validation library's errors into problems a clinician can act on.

Every problem says which field, what was given, what is expected and, where it helps, an
example of a correct entry: ``pain: "severe" given; expected an object (Pain features) in
braces, e.g. {"weight_bearing": "present", "at_rest": "absent"}`` instead of pydantic's
"Input should be a valid dictionary or instance of Pain". The command line, the service's
problem details and the FHIR reader all report through :func:`problems_from_validation`.

The expected form and the example are read from the models of :mod:`hipdx.case.model`
(field types, bounds, enum values, accepted units), so they follow the model when it
changes; nothing here restates a field.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import types
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from hipdx.case import model as case_model
from hipdx.case.units import QUANTITIES
from hipdx.errors import Problem
from hipdx.jsonio import excerpt, printable

#: Model-level checks name the offending field first: "pregnancy.status: impossible for ...".
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_.]*): (.+)$", re.DOTALL)

#: The models a validation error can come from, by the name pydantic gives as its title.
MODELS: dict[str, type[BaseModel]] = {
    name: cls
    for name, cls in vars(case_model).items()
    if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == case_model.__name__
}

#: The unit a number's field name carries, in words (``age_years`` -> years).
_NAME_UNITS = (
    ("_years", " years"), ("_kg", " kg"), ("_0_10", " on the 0-10 scale"), ("_mmhg", " mmHg"),
    ("_weeks", " weeks"), ("days_since_onset", " days"), ("_mm", " mm"), ("_ml", " mL"), ("_percent", "%"),
)
_EXAMPLE_DATE = "2026-11-20"


def problems_from_validation(error: ValidationError) -> list[Problem]:
    """Translate pydantic's errors into field-named problems a clinician can read.

    Examples
    --------
    >>> from hipdx.case.model import Case
    >>> try:
    ...     Case.model_validate({"pain": "severe"})
    ... except ValidationError as exc:
    ...     print(problems_from_validation(exc)[0])
    pain: "severe" given; expected an object (pain features) in braces, e.g. {"weight_bearing": "present", "at_rest": "present"}
    """
    root = MODELS.get(error.title)
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        field = ".".join(printable(str(part)) for part in loc)  # a key may come from the input
        message = item["msg"].removeprefix("Value error, ")
        prefixed = _FIELD_PREFIX.match(message)
        if prefixed and item["type"] == "value_error":
            field = ".".join(filter(None, [field, prefixed.group(1)]))
            message = prefixed.group(2)
        elif item["type"] != "value_error":
            message = describe(item, _field_at(root, loc))
        problems.append(Problem(field or "(case)", message))
    return problems


def describe(item: Any, target: _Target) -> str:
    """One pydantic error (an ``ErrorDetails``) in words: what was given, what is expected, an example."""
    kind = item["type"]
    given = excerpt(item.get("input"))
    ctx = item.get("ctx") or {}
    annotation = target.annotation
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        if annotation is case_model.Measurement:
            return (
                f"{given} given; give the value with its unit, e.g. {_json(_measurement(target.name, item.get('input')))} "
                "(a number alone is not accepted because the unit cannot be guessed)"
            )
        what = _model_words(annotation)
        return f"{given} given; expected an object{what} in braces, e.g. {_json(example(annotation, target.name))}"
    if kind == "list_type":
        return f"{given} given; expected a list in square brackets, e.g. {_json(example(annotation, target.name))}"
    if kind == "missing":
        return f"missing; it is required, e.g. {_json({target.name: example(annotation, target.name)})}"
    if kind in ("float_type", "finite_number", "float_parsing", "int_type", "int_parsing"):
        low, high = _bounds(target)
        number = _as_number(item.get("input"))
        if number is None or (low is not None and number < low) or (high is not None and number > high):
            number = _number_in(low, high) if low is not None else example(annotation, target.name)
        return (
            f"{given} is not a number; expected a number{_range(target)}, e.g. {_json(number)} "
            "(true/false and numbers in quotes are not read as numbers)"
        )
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        side = "below" if kind.startswith("greater") else "above"
        return f"{given} is {side} the accepted range; expected{_range(target) or ' ' + item['msg'].lower()}"
    if kind == "bool_type":
        return f"{given} is not true or false; expected true or false (without quotes)"
    if kind == "string_type":
        return f"{given} is not text; give it in quotes, e.g. {_json(example(annotation, target.name))}"
    if kind == "extra_forbidden":
        return f"unknown field (given {given}); check the spelling: `hipdx schema` lists every field"
    if kind == "enum":
        return f"{given} is not one of {ctx.get('expected', '')}"
    if kind == "literal_error":
        return f"{given} given; expected {ctx.get('expected', '')}"
    if kind == "string_too_short":
        return f"{given} is empty; expected text, e.g. {_json(example(annotation, target.name))}"
    if kind in ("string_too_long", "too_long"):
        given_value = item.get("input")
        what = "characters" if isinstance(given_value, str) else "items"
        size = f"{len(given_value)} {what} given; " if isinstance(given_value, (str, list)) else ""
        return f"too long: {size}at most {ctx.get('max_length', '?')} {what} are accepted"
    message = item["msg"].replace("Input should be", "expected").replace("input should be", "expected")
    return f"{given} given; {message[:1].lower()}{message[1:]}"


# -- what the model expects at a place --------------------------------------------------------


class _Target:
    """What the model expects at one place of the input: its name, type and field information."""

    def __init__(self, name: str, annotation: Any, info: FieldInfo | None) -> None:
        self.name = name
        self.annotation = annotation
        self.info = info


def _field_at(root: type[BaseModel] | None, loc: tuple[Any, ...]) -> _Target:
    """The field a location of an error points at, walking the model from ``root``."""
    annotation: Any = root
    info: FieldInfo | None = None
    name = "value"
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, int) and get_origin(annotation) is list:
            annotation, info = get_args(annotation)[0], None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields:
            info = annotation.model_fields[part]
            annotation, name = info.annotation, str(part)
        else:  # a place the model does not know (an unknown key): nothing more to say
            return _Target(name if not isinstance(part, str) else printable(part), None, None)
    return _Target(name, _unwrap(annotation), info)


def _unwrap(annotation: Any) -> Any:
    """The type behind ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _bounds(target: _Target) -> tuple[float | None, float | None]:
    low = high = None
    for meta in target.info.metadata if target.info is not None else ():
        low = getattr(meta, "ge", getattr(meta, "gt", low))
        high = getattr(meta, "le", getattr(meta, "lt", high))
    return low, high


def _range(target: _Target) -> str:
    """`` from 0 to 120 years`` for a bounded number, else an empty string."""
    low, high = _bounds(target)
    if low is None and high is None:
        return ""
    unit = next((words for suffix, words in _NAME_UNITS if target.name.endswith(suffix)), "")
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}{unit}"
    return f" of at least {low:g}{unit}" if low is not None else f" of at most {high:g}{unit}"


def _model_words(annotation: Any) -> str:
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)) or not annotation.__doc__:
        return ""
    first = annotation.__doc__.strip().split(". ")[0].splitlines()[0].rstrip(".")
    return f" ({first[:1].lower()}{first[1:]})"


def example(annotation: Any, name: str = "value") -> Any:
    """A correct value for a field of this type (the first values of an object's fields).

    >>> example(case_model.Pain)
    {'weight_bearing': 'present', 'at_rest': 'present'}
    >>> example(case_model.Presence)
    'present'
    """
    annotation = _unwrap(annotation)
    if annotation is case_model.Measurement:
        return _measurement(name, None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _object_example(annotation)
    if get_origin(annotation) is list:
        return [example(get_args(annotation)[0], name)]
    if get_origin(annotation) is Literal:
        return get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        values = [m.value for m in annotation]
        preferred = [v for v in values if v not in ("unknown", "none")]
        return "present" if "present" in values else (preferred or values)[0]
    if annotation is bool:
        return True
    if annotation is dt.date:
        return _EXAMPLE_DATE
    if annotation is str:
        return "mg/L" if name == "unit" else "text"
    if annotation in (float, int):
        return 1
    return "..."


def _object_example(model: type[BaseModel]) -> dict[str, Any]:
    """The first two fields of an object that an example needs (no flags, dates, text or lists), if valid together.

    The model checks the example: when two fields do not go together (weeks of gestation
    without a pregnancy), the first alone is shown.
    """
    usable = [(n, f) for n, f in model.model_fields.items() if _example_worthy(f.annotation)]
    for shown in (usable[:2], usable[:1]):
        candidate = {}
        for field_name, info in shown:
            value = example(info.annotation, field_name)
            low, high = _bounds(_Target(field_name, info.annotation, info))
            if isinstance(value, (int, float)) and not isinstance(value, bool) and low is not None:
                value = _number_in(low, high)
            candidate[field_name] = value
        try:
            model.model_validate(candidate)
        except ValidationError:
            continue
        return candidate
    return {}


def _example_worthy(annotation: Any) -> bool:
    """A field an example of its object shows: a measurement, a number, a closed value or an object."""
    annotation = _unwrap(annotation)
    if annotation in (float, int):
        return True
    return isinstance(annotation, type) and issubclass(annotation, (BaseModel, Enum))


def _number_in(low: float, high: float | None) -> float:
    """A round number inside an accepted range, between its ends on a log scale (an example, not a typical value).

    >>> _number_in(0, 120), _number_in(0, 10), _number_in(20, 350)
    (10, 3, 80)
    """
    if high is None:
        return low + 1
    value = math.sqrt(max(low, 1.0) * max(high, 1.0))
    rounded = float(f"{value:.1g}")
    return int(rounded) if rounded >= 1 else rounded


def _as_number(given: Any) -> float | None:
    """The number a value was meant to be (``"45"`` -> 45), or None."""
    if isinstance(given, str):
        try:
            given = float(given)
        except ValueError:
            return None
    if isinstance(given, (int, float)) and not isinstance(given, bool) and math.isfinite(given):
        return int(given) if float(given).is_integer() else given
    return None


def _measurement(name: str, given: Any) -> dict[str, Any]:
    quantity = QUANTITIES.get(name)
    unit = quantity.canonical_unit if quantity is not None else "..."
    value: Any = _as_number(given)
    if value is not None:
        pass
    elif quantity is not None:
        value = _number_in(quantity.plausible_min, quantity.plausible_max)
    else:
        value = 1
    return {"value": value, "unit": unit}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
