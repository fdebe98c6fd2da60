"""Error messages in the clinician's words: which field, what was given, what is expected, an example.

The one formatter of validation errors (:mod:`hipdx.case.problems`) over many malformed
cases, and a sweep that gives every field of every case model values of the wrong kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

import hipdx
from hipdx.case import model as case_model
from hipdx.case.problems import _unwrap, example
from hipdx.cli import app
from hipdx.errors import InputError

from conftest import CliRunner

BASE: dict[str, Any] = {"age_years": 45, "sex": "male"}
#: Words of the validation library that must never reach a clinician.
LIBRARY_WORDS = ("Input should", "instance of", "Field required", "valid dictionary", "Value error", "pydantic", "[type=")


def problems_of(patch: dict[str, Any]) -> list[str]:
    with pytest.raises(InputError) as caught:
        hipdx.parse_case({**BASE, **patch})
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        # an object expected: the field, what was given, an example object
        ({"pain": "severe"}, ['pain: "severe" given; expected an object (pain features) in braces, e.g. {"weight_bearing": "present"']),
        ({"pain": 5}, ["pain: 5 given; expected an object"]),
        ({"onset": "sudden"}, ['onset: "sudden" given; expected an object (when and how the pain began)', '"type": "sudden"']),
        ({"labs": [1, 2]}, ["labs: [1, 2] given; expected an object", '{"esr": {"value": ', '"unit": "mm/h"}']),
        ({"imaging": [5]}, ["imaging.0: 5 given; expected an object (one dated imaging study of the hip)", '"modality": ']),
        ({"imaging": [{"modality": "mri", "findings": []}]}, ["imaging.0.findings: [] given; expected an object"]),
        ({"visits": [None]}, ["visits.0: null given; expected an object"]),
        ({"risk_factors": []}, ["risk_factors: [] given; expected an object (risk factors and relevant history)"]),
        # a list expected
        ({"imaging": {"modality": "mri"}}, ['imaging: {"modality": "mri"} given; expected a list in square brackets, e.g. [{"modality": ']),
        ({"visits": {"pain_0_10": 5}}, ["visits: {\"pain_0_10\": 5} given; expected a list in square brackets"]),
        # a measurement: the value with its unit
        ({"labs": {"crp": 5}}, ['labs.crp: 5 given; give the value with its unit, e.g. {"value": 5, "unit": "mg/L"}']),
        ({"labs": {"temperature": "39"}}, ['labs.temperature: "39" given; give the value with its unit, e.g. {"value": 39, "unit": "degC"}']),
        ({"labs": {"crp": {"value": 5}}}, ['labs.crp.unit: missing; it is required, e.g. {"unit": "mg/L"}']),
        ({"labs": {"crp": {"unit": "mg/L"}}}, ['labs.crp.value: missing; it is required, e.g. {"value": ']),
        ({"labs": {"crp": {"value": 5, "unit": ""}}}, ['labs.crp.unit: "" is empty; expected text']),
        ({"labs": {"crp": {"value": 5, "unit": "mg/dl/x"}}}, ["labs.crp: unit 'mg/dl/x' is not accepted for crp; use one of: mg/L, mg/dL"]),
        # numbers: the accepted range with its unit
        ({"age_years": "45"}, ['age_years: "45" is not a number; expected a number from 0 to 120 years, e.g. 45']),
        ({"age_years": True}, ["age_years: true is not a number; expected a number from 0 to 120 years"]),
        ({"age_years": -3}, ["age_years: -3 is below the accepted range; expected from 0 to 120 years"]),
        ({"age_years": 250}, ["age_years: 250 is above the accepted range; expected from 0 to 120 years"]),
        ({"weight_kg": 3}, ["weight_kg: 3 is below the accepted range; expected from 20 to 350 kg"]),
        ({"visits": [{"pain_0_10": 11}]}, ["visits.0.pain_0_10: 11 is above the accepted range; expected from 0 to 10 on the 0-10 scale"]),
        ({"imaging": [{"modality": "mri", "findings": {"subchondral_band_thickness_mm": 0}}]},
         ["imaging.0.findings.subchondral_band_thickness_mm: 0 is below the accepted range; expected from 0 to 30 mm"]),
        # closed values, flags, text
        ({"sex": "m"}, ["sex: \"m\" is not one of 'female', 'male' or 'unknown'"]),
        ({"pain": {"weight_bearing": "yes"}}, ["pain.weight_bearing: \"yes\" is not one of 'present', 'absent' or 'unknown'"]),
        ({"imaging": [{"modality": "pet"}]}, ["imaging.0.modality: \"pet\" is not one of 'radiograph', 'mri', 'ct' or 'bone_scan'"]),
        ({"imaging": [{"modality": "mri", "contrast": "yes"}]}, ['imaging.0.contrast: "yes" is not true or false; expected true or false (without quotes)']),
        ({"id": 5}, ["id: 5 is not text; give it in quotes"]),
        ({"id": "x" * 300}, ["id: too long: 300 characters given; at most 200 characters are accepted"]),
        ({"imaging": [{"modality": "mri"}] * 51}, ["imaging: too long: 51 items given; at most 50 items are accepted"]),
        ({"schema_version": "2"}, ["schema_version: \"2\" given; expected '1'"]),
        # required, unknown, dates, the model's own checks
        ({"imaging": [{}]}, ['imaging.0.modality: missing; it is required, e.g. {"modality": ']),
        ({"labs": {"crpp": {"value": 5, "unit": "mg/L"}}}, ["labs.crpp: unknown field (given {\"value\": 5, \"unit\": \"mg/L\"}); check the spelling"]),
        ({"onset": {"type": "sudden", "date": "yesterday"}}, ['onset.date: give the date as text "YYYY-MM-DD", not "yesterday"']),
        ({"onset": {"type": "sudden", "date": "2026-13-01"}}, ['onset.date: "2026-13-01" is not a calendar date']),
        ({"pregnancy": {"status": "pregnant"}}, ["pregnancy.status: 'pregnant' is impossible for a male patient"]),
    ],
)
def test_each_malformed_case_is_named_in_the_clinicians_words(patch: dict[str, Any], expected: list[str]) -> None:
    problems = problems_of(patch)
    text = "\n".join(problems)
    for part in expected:
        assert part in text, text
    for words in LIBRARY_WORDS:
        assert words not in text, text


def test_every_problem_is_listed_each_with_its_field() -> None:
    problems = problems_of({"pain": "severe", "age_years": "old", "labs": {"crp": 5}, "imaging": {}})
    assert [p.split(":")[0] for p in problems] == ["age_years", "pain", "labs.crp", "imaging"]


def test_an_example_given_is_itself_accepted() -> None:
    """The examples the messages give are valid entries of their fields."""
    for field in ("pain", "onset", "labs", "risk_factors", "comorbidities"):
        annotation = case_model.Case.model_fields[field].annotation
        hipdx.parse_case({**BASE, field: example(annotation, field)})
    hipdx.parse_case({**BASE, "imaging": example(case_model.Case.model_fields["imaging"].annotation, "imaging")})
    hipdx.parse_case({**BASE, "visits": example(case_model.Case.model_fields["visits"].annotation, "visits")})


# -- the sweep: every field of every model, given values of the wrong kind ----------------------


def _fields(model: type[BaseModel], path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], type[BaseModel], str]]:
    """(path to the object, its model, field name) for every field reachable from ``model``."""
    for name, info in model.model_fields.items():
        yield path, model, name
        inner = _unwrap(info.annotation)
        if get_origin(inner) is list:
            inner, step = _unwrap(get_args(inner)[0]), (name, 0)
        else:
            step = (name,)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from _fields(inner, path + step)


def _minimal(model: type[BaseModel]) -> dict[str, Any]:
    """The smallest valid object of a model: its required fields, each with its example."""
    return {n: example(f.annotation, n) for n, f in model.model_fields.items() if f.is_required()}


def _case_with(path: tuple[Any, ...], model: type[BaseModel], name: str, value: Any) -> dict[str, Any]:
    case: dict[str, Any] = dict(BASE)
    node: Any = case
    current: type[BaseModel] = case_model.Case
    for i, step in enumerate(path):
        if isinstance(step, int):
            continue
        annotation = _unwrap(current.model_fields[step].annotation)
        is_list = get_origin(annotation) is list
        current = _unwrap(get_args(annotation)[0]) if is_list else annotation
        child = _minimal(current)
        node[step] = [child] if is_list else child
        node = child
    node[name] = value
    return case


WRONG_KINDS: tuple[Any, ...] = ("x", 7, -1e9, 1e9, [], {}, True, [1], {"a": 1})
SWEEP = [(path, model, name) for path, model, name in _fields(case_model.Case)]


def test_the_sweep_reaches_every_model() -> None:
    models = {model for _, model, _ in SWEEP}
    assert {case_model.Case, case_model.Pain, case_model.Labs, case_model.Measurement, case_model.ImagingStudy,
            case_model.ImagingFindings, case_model.Visit, case_model.Pregnancy, case_model.Onset} <= models
    assert len(SWEEP) > 100


@pytest.mark.parametrize(("path", "model", "name"), SWEEP, ids=[".".join(map(str, p + (n,))) for p, _, n in SWEEP])
def test_a_value_of_the_wrong_kind_in_any_field_is_explained(path: tuple[Any, ...], model: type[BaseModel], name: str) -> None:
    refused = 0
    for value in WRONG_KINDS:
        try:
            hipdx.parse_case(_case_with(path, model, name, value))
        except InputError as exc:
            refused += 1
            assert exc.problems, exc.message
            for problem in exc.problems:
                text = str(problem)
                assert problem.field and problem.field != "(case)", text
                for words in LIBRARY_WORDS:
                    assert words not in text, text
                assert len(problem.reason) > 10, text
    assert refused >= len(WRONG_KINDS) - 3, "most wrong kinds of value are refused"


# -- the adapters report through it -------------------------------------------------------------


def test_the_command_line_says_which_field_what_was_given_and_an_example(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    path.write_text(json.dumps({**BASE, "pain": "severe"}), encoding="utf-8")
    result = CliRunner().invoke(app, ["assess", str(path), "--today", "2026-11-25"], catch_exceptions=False)
    assert result.exit_code == 2
    assert 'pain: "severe" given; expected an object (pain features) in braces, e.g. {"weight_bearing": "present"' in result.stderr
    assert "Input should" not in result.output and "Traceback" not in result.output
