"""Fuzz targets as property tests: hostile input ends as a result or an InputError, never a crash.

Two doors are fuzzed: the case door (JSON text -> :func:`hipdx.parse_case` -> the core and its
renderers) and the vignette door of ``hipdx evaluate`` (a file -> records -> cases, and the
free-text readers). In the fast suite each target tries a bounded number of examples
(deterministic, like every property test here); ``make fuzz`` selects the ``fuzz``
Hypothesis profile (``HIPDX_HYPOTHESIS_PROFILE=fuzz``, random, ``HIPDX_FUZZ_EXAMPLES`` per
target). ``docs/reliability.md`` records the long runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from conftest import examples

import hipdx
from hipdx.case import Case
from hipdx.errors import InputError, IntegrationError
from hipdx.evaluation.run import read_vignette_file
from hipdx.evaluation.text import age_from_text, days_after_onset, read_lab, read_t_score
from hipdx.evaluation.vignette import vignette_to_case
from hipdx.reasoning.course import compare_course
from hipdx.reasoning.staging import stage_case
from hipdx.report import render_brief, render_markdown, render_text
from hipdx.report.management import format_plan, format_staging

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 25)
KB = hipdx.load_knowledge_base()
EXAMPLES = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "examples").glob("*.json"))]
VIGNETTES = json.loads((ROOT / "evaluation" / "literature-hipdx.json").read_text(encoding="utf-8"))

FUZZING = os.environ.get("HIPDX_HYPOTHESIS_PROFILE") == "fuzz"  # the fuzz profile of conftest.py
FUZZ = settings(
    max_examples=settings.default.max_examples if FUZZING else examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# --- strategies ------------------------------------------------------------------------------

#: Values that broke a promise once, or are near an edge.
HOSTILE_STRINGS = [
    "\u001b[8m", "\u001b[2J", "\r", "\u009b", "\u202e", "\x00", "<script>x</script>", "&amp;", "\ud83d\ude00",
    "2099-01-01", "0001-01-01", "9999-12-31", "1900-01-01", "2026-02-30", "2026-11-25", "1970-01-01", "",
    " ", "NaN", "Infinity", "1e999", "9" * 45, "mg/dL", "mg/L", "mmol/L", "degF", "/uL", "10^9/L", "x" * 300,
]
FIELD_NAMES = sorted(
    set(Case.model_fields)
    | {"value", "unit", "date", "days_since_onset", "modality", "findings", "status", "type", "crp", "calcium", "edema"}
)
ENUM_VALUES = ["present", "absent", "unknown", "mri", "radiograph", "ct", "bone_scan", "male", "female", "left",
               "right", "both", "sudden", "gradual", "pregnant", "postpartum", "head_and_neck", "full", "restricted"]

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-5, 4000)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(HOSTILE_STRINGS)
    | st.sampled_from(ENUM_VALUES)
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
JSONISH_TEXT = st.lists(
    st.sampled_from(list('{}[]",: 0123456789.eE-+\\') + ["true", "null", "NaN", "\\u001b", '"sex"', '"crp"', '"value"']),
    max_size=80,
).map("".join)


#: Replacements a clinician could type: most cases mutated with these are still valid.
PLAUSIBLE_LEAF = (
    st.sampled_from(ENUM_VALUES)
    | st.integers(0, 120)
    | st.floats(0, 100, allow_nan=False)
    | st.sampled_from(["2026-01-01", "2026-11-20", "2026-11-25", "2026-12-01", "2016-01-01"])
)


@st.composite
def mutated(draw: st.DrawFn, value: Any, depth: int = 0, leaf: st.SearchStrategy[Any] = JSON_VALUE) -> Any:
    """``value`` with one node replaced, deleted, added to or retyped, found by a random walk."""
    if isinstance(value, dict) and value and depth < 6 and (depth == 0 or draw(st.integers(0, 3)) > 0):
        key = draw(st.sampled_from(sorted(value)))
        action = draw(st.sampled_from(["walk", "walk", "replace", "delete", "add"]))
        out = dict(value)
        if action == "walk":
            out[key] = draw(mutated(value[key], depth + 1, leaf))
        elif action == "replace":
            out[key] = draw(leaf)
        elif action == "delete":
            del out[key]
        else:
            out[draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=8))] = draw(leaf)
        return out
    if isinstance(value, list) and value and depth < 6 and (depth == 0 or draw(st.integers(0, 3)) > 0):
        i = draw(st.integers(0, len(value) - 1))
        out_list = list(value)
        out_list[i] = draw(mutated(value[i], depth + 1, leaf))
        if draw(st.booleans()):
            out_list.append(draw(leaf))
        return out_list
    return draw(leaf)


@st.composite
def text_mutated(draw: st.DrawFn, text: str) -> str:
    """``text`` with a key given twice, a character inserted or deleted, or cut short."""
    action = draw(st.sampled_from(["none", "none", "duplicate", "insert", "delete", "cut"]))
    if action == "duplicate" and text.startswith("{") and len(text) > 2:
        key = draw(st.sampled_from(FIELD_NAMES))
        return "{" + json.dumps(key) + ": " + json.dumps(draw(JSON_VALUE)) + ", " + text[1:]
    if not text:
        return text
    at = draw(st.integers(0, len(text) - 1))
    if action == "insert":
        return text[:at] + draw(st.sampled_from(list('{}[]",:\\') + HOSTILE_STRINGS)) + text[at:]
    if action == "delete":
        return text[:at] + text[at + 1 :]
    if action == "cut":
        return text[:at]
    return text


PLAUSIBLY_MUTATED = (
    st.sampled_from(EXAMPLES)
    .flatmap(lambda case: mutated(case, leaf=PLAUSIBLE_LEAF))
    .flatmap(lambda case: st.one_of(st.just(case), mutated(case, leaf=PLAUSIBLE_LEAF)))
    .map(json.dumps)
)
CASE_TEXT = st.one_of(
    JSONISH_TEXT,
    st.text(max_size=60),
    st.binary(max_size=60),
    JSON_VALUE.map(json.dumps),
    st.sampled_from(EXAMPLES).flatmap(lambda case: mutated(case)).map(json.dumps).flatmap(text_mutated),
    st.sampled_from(EXAMPLES).flatmap(lambda case: mutated(case)).flatmap(mutated).map(json.dumps),
    *[PLAUSIBLY_MUTATED] * 4,  # weighted: about half the examples reach the core and the renderers
)


# --- the case door ---------------------------------------------------------------------------


def case_door(text: str | bytes) -> Case | None:
    """Everything a case goes through, from JSON text to every rendering; None when refused."""
    try:
        case = hipdx.parse_case(text, TODAY)
    except InputError as err:
        assert err.problems or err.message  # an error always says something
        assert "\u001b" not in str(err)  # and quotes nothing a terminal would obey
        return None
    assessment = hipdx.assess(case, KB, TODAY)
    render_text(assessment, KB, color=True)
    render_markdown(assessment, KB)
    render_brief(assessment, title=case.id or "case", note=case.note, color=True)
    format_staging(stage_case(case, KB.treatment, TODAY))
    format_plan(assessment.plan, markdown=True)
    compare_course(case, assessment.differential[0].id, KB.course, TODAY)
    return case


@FUZZ
@given(CASE_TEXT)
def test_case_json_gives_a_case_or_an_input_error(text: str | bytes) -> None:
    event("refused" if case_door(text) is None else "accepted: assessed and rendered")


def test_every_example_passes_the_case_door_unchanged() -> None:
    for example in EXAMPLES:
        assert case_door(json.dumps(example)) is not None


# --- the vignette door ---------------------------------------------------------------------

VIGNETTE_RECORD = st.one_of(
    JSON_VALUE,
    st.sampled_from(VIGNETTES).flatmap(lambda record: mutated(record)),
    st.sampled_from(VIGNETTES).flatmap(lambda record: mutated(record)).flatmap(mutated),
)
PRINTED = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(list("0123456789.,-–− <>()") + ["mg/L", "mg/dL", "T-score", "below", "above", "month", "year",
                                                         "weeks", "after onset", "from", "to", "and", "×10^9/L", "°C",
                                                         "9" * 400]),
        max_size=40,
    ).map("".join),
)


@FUZZ
@given(VIGNETTE_RECORD)
def test_a_vignette_record_gives_a_case_or_an_integration_error(record: Any) -> None:
    try:
        case, used, skipped = vignette_to_case(record)
    except IntegrationError:
        event("refused")
        return
    event("mapped and assessed")
    assert all(isinstance(line, str) and "\u001b" not in line for line in used + skipped)
    hipdx.assess(case, KB, TODAY)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.lists(VIGNETTE_RECORD, max_size=3).map(json.dumps).flatmap(text_mutated)))
def test_a_vignette_file_gives_records_or_an_integration_error(tmp_path_factory: Any, content: str | bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzzed-vignettes.json"  # one file, rewritten by each example
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    try:
        records = read_vignette_file(path)
    except IntegrationError:
        return
    assert isinstance(records, list)


@FUZZ
@given(PRINTED, st.sampled_from(["crp", "esr", "wbc", "temperature", "vitamin_d", "calcium", "alp", "nothing"]))
def test_the_free_text_readers_return_a_value_or_a_reason(printed: str, name: str) -> None:
    for value, reason in (read_lab(name, printed), read_t_score(printed), age_from_text(printed),
                          days_after_onset(printed)):
        assert (value is None) == bool(reason)


def test_a_number_too_long_for_a_float_is_not_read_from_print() -> None:
    long = "9" * 400
    assert read_lab("crp", f"CRP {long} mg/L")[0] is None  # was a ValidationError (infinite value)
    assert read_t_score(f"T-score -{long}")[0] is None
    assert age_from_text(f"{long} years")[0] is None
    assert days_after_onset(f"{long} weeks after onset")[0] is None
