"""Units: every value arrives with its unit, is converted once, and nothing is guessed."""

from __future__ import annotations

import math

import pytest

from hipdx import InputError, parse_case
from hipdx.case import Labs
from hipdx.case.units import QUANTITIES


def canonical(name: str, value: float, unit: str) -> float | None:
    return parse_case({"labs": {name: {"value": value, "unit": unit}}}).labs.canonical(name)


@pytest.mark.parametrize(
    ("name", "value", "unit", "expected"),
    [
        ("crp", 2.1, "mg/dL", 21.0),
        ("crp", 18.5, "mg/dL", 185.0),
        ("crp", 21.0, "mg/L", 21.0),
        ("vitamin_d", 50.0, "nmol/L", 50.0 / 2.496),
        ("vitamin_d", 32.0, "nmol/L", 12.82),
        ("vitamin_d", 20.0, "ng/mL", 20.0),
        ("vitamin_d", 20.0, "ug/L", 20.0),
        ("calcium", 10.0, "mg/dL", 2.495),
        ("calcium", 9.3, "mg/dL", 2.32),
        ("calcium", 2.4, "mmol/L", 2.4),
        ("creatinine", 1.0, "mg/dL", 88.42),
        ("creatinine", 0.95, "mg/dL", 84.0),
        ("creatinine", 84.0, "umol/L", 84.0),
        ("wbc", 7500.0, "cells/uL", 7.5),
        ("wbc", 7500.0, "/mm3", 7.5),
        ("wbc", 7.5, "10^9/L", 7.5),
        ("wbc", 7.5, "G/L", 7.5),
        ("temperature", 98.6, "degF", 37.0),
        ("temperature", 102.2, "F", 39.0),
        ("temperature", 100.4, "°F", 38.0),
        ("temperature", 38.0, "degC", 38.0),
        ("temperature", 38.0, "°C", 38.0),
        ("esr", 30.0, "mm/hr", 30.0),
        ("egfr", 75.0, "mL/min", 75.0),
        ("alp", 210.0, "IU/L", 210.0),
    ],
)
def test_conversion_to_the_canonical_unit(name: str, value: float, unit: str, expected: float) -> None:
    assert canonical(name, value, unit) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    "spelling",
    ["umol/L", "µmol/L", "μmol/L", "UMOL/L", " umol/l ", "umol / L"],
)
def test_unit_spellings_are_normalised(spelling: str) -> None:
    assert canonical("creatinine", 84.0, spelling) == pytest.approx(84.0)


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("crp", "mmol/L"),
        ("crp", "g/L"),
        ("crp", "mg"),
        ("temperature", "K"),
        ("vitamin_d", "nmol"),
        ("wbc", "%"),
        ("creatinine", "mmol/L"),
        ("calcium", "mEq/L"),
        ("esr", "mm"),
    ],
)
def test_an_unknown_unit_is_rejected_with_the_accepted_ones(name: str, unit: str) -> None:
    with pytest.raises(InputError) as info:
        parse_case({"labs": {name: {"value": 1.0, "unit": unit}}})
    [problem] = info.value.problems
    assert problem.field == f"labs.{name}"
    assert repr(unit) in problem.reason
    assert QUANTITIES[name].canonical_unit in problem.reason


@pytest.mark.parametrize(
    ("name", "value", "unit"),
    [
        ("crp", 70.0, "mg/dL"),  # 700 mg/L: a mg/L value typed as mg/dL
        ("temperature", 120.0, "degF"),
        ("temperature", 98.6, "degC"),  # a Fahrenheit value typed as Celsius
        ("wbc", 7.5, "cells/uL"),  # 0.0075 x10^9/L: a 10^9/L value typed as cells/uL
        ("calcium", 9.3, "mmol/L"),  # a mg/dL value typed as mmol/L
        ("esr", -4.0, "mm/h"),
        ("vitamin_d", 4000.0, "nmol/L"),  # 1603 ng/mL, beyond the reported intoxications
    ],
)
def test_plausibility_is_judged_after_conversion(name: str, value: float, unit: str) -> None:
    with pytest.raises(InputError) as info:
        parse_case({"labs": {name: {"value": value, "unit": unit}}})
    [problem] = info.value.problems
    assert problem.field == f"labs.{name}"
    assert "implausible" in problem.reason


def test_a_value_at_the_edge_in_another_unit_is_accepted() -> None:
    assert canonical("temperature", 110.0, "degF") == pytest.approx(43.33, abs=0.01)
    assert canonical("crp", 60.0, "mg/dL") == pytest.approx(600.0)


@pytest.mark.parametrize("name", sorted(QUANTITIES))
def test_every_accepted_unit_converts_its_canonical_unit_identically(name: str) -> None:
    quantity = QUANTITIES[name]
    assert quantity.canonical_unit in quantity.accepted_units
    middle = (quantity.plausible_min + quantity.plausible_max) / 2
    assert quantity.to_canonical(middle, quantity.canonical_unit) == middle
    for unit in quantity.accepted_units:
        a, b = quantity.to_canonical(1.0, unit), quantity.to_canonical(2.0, unit)
        assert math.isfinite(a) and b > a  # increasing: no unit flips the scale


def test_unmeasured_labs_are_none_and_the_t_score_has_no_unit() -> None:
    labs = Labs.model_validate({"crp": {"value": 1.2, "unit": "mg/dL"}, "bmd_t_score": -2.7})
    assert labs.canonical("crp") == pytest.approx(12.0)
    assert labs.canonical("esr") is None
    assert labs.canonical("bmd_t_score") == -2.7


def test_the_measured_value_and_unit_are_kept_as_given() -> None:
    case = parse_case({"labs": {"crp": {"value": 1.2, "unit": "mg/dL"}}})
    assert (case.labs.crp.value, case.labs.crp.unit) == (1.2, "mg/dL")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "canonical_value", "other_value", "other_unit"),
    [
        ("crp", 15.0, 1.5, "mg/dL"),
        ("temperature", 39.0, 102.2, "degF"),
        ("wbc", 13.5, 13500.0, "cells/uL"),
        ("esr", 45.0, 45.0, "mm/hr"),
    ],
)
def test_the_assessment_does_not_depend_on_the_unit(run, name, canonical_value, other_value, other_unit) -> None:
    base = {"age_years": 50, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 5}}
    unit = QUANTITIES[name].canonical_unit
    in_canonical = run({**base, "labs": {name: {"value": canonical_value, "unit": unit}}})
    in_other = run({**base, "labs": {name: {"value": other_value, "unit": other_unit}}})
    assert in_canonical.differential == in_other.differential
    assert in_canonical.red_flags == in_other.red_flags
    # and the value counts: the same number in the other unit would mean something else
    without = run(base)
    assert in_canonical.differential != without.differential


# --- plausible ranges in both units (issue 12) ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "unit"),
    [
        ("calcium", 2.4, "mg/dL"),  # 0.6 mmol/L: a usual mmol/L value typed as mg/dL
        ("calcium", 2.1, "mg/dL"),
        ("calcium", 2.6, "mg/dL"),
        ("calcium", 8.5, "mmol/L"),  # a usual mg/dL value typed as mmol/L
        ("creatinine", 0.9, "umol/L"),  # a mg/dL value typed as umol/L
        ("creatinine", 80.0, "mg/dL"),  # 7074 umol/L: a umol/L value typed as mg/dL
        ("wbc", 7.0, "/uL"),
        ("wbc", 7000.0, "10^9/L"),
        ("temperature", 37.0, "degF"),  # 2.8 degC
        ("temperature", 98.6, "C"),
    ],
)
def test_a_usual_value_in_the_other_unit_is_refused(name: str, value: float, unit: str) -> None:
    with pytest.raises(InputError) as info:
        parse_case({"labs": {name: {"value": value, "unit": unit}}})
    [problem] = info.value.problems
    assert problem.field == f"labs.{name}" and "implausible" in problem.reason


def test_the_refusal_gives_the_accepted_range_in_the_unit_given() -> None:
    with pytest.raises(InputError) as info:
        parse_case({"labs": {"calcium": {"value": 2.4, "unit": "mg/dL"}}})
    assert "accepted 4.01-24 mg/dL, that is 1-6 mmol/L" in info.value.problems[0].reason


@pytest.mark.parametrize(
    ("name", "value", "unit"),
    [
        ("vitamin_d", 1220.0, "ng/mL"),  # the highest reported intoxication (Galior 2018)
        ("calcium", 23.1, "mg/dL"),  # 5.76 mmol/L, the same review
        ("calcium", 1.2, "mmol/L"),
        ("wbc", 500.0, "10^9/L"),  # leukaemic hyperleukocytosis
        ("wbc", 500_000.0, "/uL"),
    ],
)
def test_survivable_extremes_are_accepted_in_both_units(name: str, value: float, unit: str) -> None:
    assert canonical(name, value, unit) is not None


@pytest.mark.parametrize("name", sorted(QUANTITIES))
def test_every_range_is_the_same_in_every_unit(name: str) -> None:
    quantity = QUANTITIES[name]
    for unit in quantity.accepted_units:
        low, high = quantity.plausible_in(unit)
        assert quantity.to_canonical(low, unit) == pytest.approx(quantity.plausible_min, abs=1e-9)
        assert quantity.to_canonical(high, unit) == pytest.approx(quantity.plausible_max, rel=1e-9)


def test_weight_has_one_plausible_range() -> None:
    weight = QUANTITIES["weight"]
    for bad in (weight.plausible_min - 1, weight.plausible_max + 1):
        with pytest.raises(InputError):
            parse_case({"weight_kg": bad})
    assert parse_case({"weight_kg": weight.plausible_max}).weight_kg == weight.plausible_max
