"""The renderers: pure functions of an assessment (and the knowledge base) to text."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from hipdx import assess, load_knowledge_base, parse_case
from hipdx.knowledge.schema import Reference
from hipdx.reasoning.assessment import Assessment, RedFlagHit
from hipdx.report import (
    describe_condition,
    implied_range,
    reference_gaps,
    render_brief,
    render_markdown,
    render_text,
)
from hipdx.report import view
from hipdx.report.markup import cell, table
from hipdx.report.text import probability_bar

KB = load_knowledge_base()


@pytest.fixture(scope="module")
def febrile() -> Assessment:
    case = parse_case(
        {
            "id": "febrile",
            "age_years": 67,
            "sex": "male",
            "onset": {"type": "sudden", "days_since_onset": 3},
            "labs": {"crp": {"value": 120, "unit": "mg/L"}, "temperature": {"value": 39.1, "unit": "degC"}},
        }
    )
    return assess(case, KB, date(2026, 11, 25))


def _flag(urgency: str, title: str, probability: float) -> RedFlagHit:
    return RedFlagHit(
        id=f"flag_{urgency}",
        kind="rule",
        condition="septic",
        condition_name="Septic arthritis",
        urgency=urgency,
        title=title,
        triggered_by=["crp = high"],
        action="Act.",
        refs=["borzio2016"],
        condition_probability=probability,
    )


# -- text -----------------------------------------------------------------------------------


def test_text_contains_every_condition(febrile: Assessment) -> None:
    text = render_text(febrile, KB)
    for item in febrile.differential:
        assert item.short in text
    assert "\x1b[" not in text


def test_text_colour_only_when_asked(febrile: Assessment) -> None:
    assert "\x1b[" in render_text(febrile, KB, color=True)


def test_text_shows_ranges_and_the_must_not_miss_marker(febrile: Assessment) -> None:
    text = render_text(febrile, KB)
    top = febrile.differential[0]
    assert f"{view.percent(top.probability)} ({view.percent_range(*top.range)})" in text
    assert view.MUST_NOT_MISS_LEGEND in text


def test_text_explains_the_leading_conditions(febrile: Assessment) -> None:
    text = render_text(febrile, KB, width=160)
    for explained in febrile.explanation.leading:
        assert explained.name in text
        assert view.probability_path(explained) in text
        for contribution in explained.findings:
            assert contribution.label in text


def test_red_flags_show_whatever_the_probability_and_most_urgent_first(febrile: Assessment) -> None:
    flags = [_flag("soon", "A flag that can wait", 0.5), _flag("emergency", "An unlikely emergency", 0.0001)]
    assessment = febrile.model_copy(update={"red_flags": flags})
    for rendered in (render_text(assessment, KB), render_markdown(assessment, KB)):
        assert "An unlikely emergency" in rendered
        assert rendered.index("An unlikely emergency") < rendered.index("A flag that can wait")


def test_text_without_red_flags_says_so(febrile: Assessment) -> None:
    text = render_text(febrile.model_copy(update={"red_flags": []}), KB)
    assert "No red-flag rule is met" in text


def test_footer_carries_the_provenance(febrile: Assessment) -> None:
    text = " ".join(render_text(febrile, KB).split())
    assert f"hipdx: {febrile.provenance.hipdx_version}" in text
    assert febrile.provenance.knowledge_base_version in text
    assert febrile.provenance.knowledge_base_digest in text
    assert f"inputs used: {len(febrile.provenance.inputs_used)}" in text


def test_brief_block(febrile: Assessment) -> None:
    text = render_brief(febrile, title="febrile (case.json)", note="First line\nsecond line")
    assert "febrile (case.json)" in text and "First line" in text and "second line" not in text
    for item in febrile.differential[:3]:
        assert item.short in text
    assert febrile.red_flags[0].title in text
    if febrile.next_tests:
        assert febrile.next_tests[0].name in " ".join(text.split())
    else:
        assert "next test: none proposed" in text


# -- markdown -------------------------------------------------------------------------------


def test_markdown_has_a_table_row_per_condition(febrile: Assessment) -> None:
    lines = render_markdown(febrile, KB).splitlines()
    for rank, item in enumerate(febrile.differential, start=1):
        assert sum(line.startswith(f"| {rank} | **{item.short}**: {item.name} |") for line in lines) == 1


def test_markdown_contains_the_same_content(febrile: Assessment) -> None:
    md = render_markdown(febrile, KB)
    for heading in ("## Red flags", "## Differential", "## Why", "## Missing findings", "## Next tests",
                    "## How sure", "## Warnings", "## References", "## Provenance"):
        assert heading in md
    assert febrile.red_flags[0].title in md
    for row in view.next_test_rows(febrile):
        assert row.name in md
    for key, citation in view.references(febrile, KB):
        assert f"- `{key}`: {citation}" in md


def test_markdown_table_cells_are_escaped() -> None:
    assert cell("a | b\nc") == "a \\| b c"
    assert table(["x", "y"], [["1", "a|b"]]).splitlines() == ["| x | y |", "|---|---|", "| 1 | a\\|b |"]


# -- shared formatting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "text"), [(0.624, "62%"), (0.0, "0%"), (0.0004, "<1%"), (0.9996, ">99%"), (1.0, "100%")]
)
def test_percent(p: float, text: str) -> None:
    assert view.percent(p) == text


@pytest.mark.parametrize(("lr", "text"), [(19.593, "20"), (1.522, "1.5"), (0.0634, "0.063"), (1.0, "1")])
def test_likelihood_ratio(lr: float, text: str) -> None:
    assert view.likelihood_ratio(lr) == text


def test_probability_bar() -> None:
    assert probability_bar(0.0) == " " * 20
    assert probability_bar(1.0) == "█" * 20
    assert probability_bar(0.5, cells=4) == "██  "


def test_citation() -> None:
    full = Reference(authors="Doe J", year=2020, journal="J Hip", pmid="12345678", doi="10.1000/x")
    assert view.citation("doe2020", full) == "Doe J 2020, J Hip, PMID 12345678"
    gap = Reference(year=2019, doi="10.1000/y")
    assert view.citation("gap", gap) == "[authors not retrieved] 2019, doi:10.1000/y"
    assert view.citation("unknown_key", None) == "unknown_key"


def test_first_sentence_and_line() -> None:
    assert view.first_sentence("One thing. Another.") == "One thing."
    assert view.first_line("\n  first \nsecond") == "first"
    assert view.first_line(None) == ""


# -- knowledge base views -------------------------------------------------------------------------


def test_implied_range_is_deterministic_and_sensible() -> None:
    low, high = implied_range(np.array([0.5, 0.5]), 100)[0]
    assert low == pytest.approx(0.42, abs=0.01) and high == pytest.approx(0.58, abs=0.01)
    np.testing.assert_array_equal(implied_range(np.array([0.2, 0.8]), 10), implied_range(np.array([0.2, 0.8]), 10))
    wide = implied_range(np.array([0.2, 0.8]), 5)[0]
    narrow = implied_range(np.array([0.2, 0.8]), 500)[0]
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


def test_describe_condition_labels_time_bands() -> None:
    profile = describe_condition(KB, "toh")
    banded = next(v for v in profile.variables if KB.variables[v.id].spec.time_bands_days)
    bounds = KB.variables[banded.id].spec.time_bands_days
    assert [b.from_days for b in banded.bands] == [0.0, *bounds]
    assert [b.to_days for b in banded.bands] == [*bounds, None]
    assert banded.bands[-1].days == f"{bounds[-1]:g} days or more"


def test_a_transferred_number_is_labelled_as_such_wherever_it_is_shown() -> None:
    """The radiograph fracture line in a stress fracture (Kiuru 2002: all sites and grades)."""
    case = parse_case(
        {
            "id": "late_line",
            "age_years": 23,
            "sex": "female",
            "onset": {"type": "gradual", "days_since_onset": 40},
            "imaging": [{"modality": "radiograph", "days_since_onset": 35, "findings": {"femoral_neck_fracture_line": "present"}}],
        }
    )
    assessment = assess(case, KB, date(2026, 11, 25))
    fnsf = next(e for e in assessment.explanation.leading if e.condition == "fnsf")
    line = next(c for c in fnsf.findings if c.variable == "xr_neck_fracture_line")
    assert line.basis == "transferred"
    assert line.refs == ["kiuru2002"]
    report = " ".join(render_text(assessment, KB, width=200).split())
    assert "transferred" in report

    profile = describe_condition(KB, "fnsf")
    late = next(v for v in profile.variables if v.id == "xr_neck_fracture_line").bands[-1]
    assert late.source.basis == "transferred" and late.source.n == 50
    assert late.source.n_effective == pytest.approx(1 / (1 / 50 + 1 / 20), abs=0.01)
    # the range shown is drawn with the smaller n, so it is wider than the study alone implies
    shown = late.estimates[0].range
    study_only = implied_range(np.array([0.56, 0.44]), 50)[0]
    assert shown[1] - shown[0] > study_only[1] - study_only[0]


def test_reference_gaps_match_the_bibliography() -> None:
    gaps = dict(reference_gaps(KB))
    for key, ref in KB.references.items():
        assert (key in gaps) == (ref.authors is None or ref.title is None)
