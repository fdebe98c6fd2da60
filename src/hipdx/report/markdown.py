"""The Markdown renderer: an assessment as a document for a report or a record.

Pure, and the same content as the terminal report (both take their rows from
:mod:`hipdx.report.view`), laid out as headings, lists and tables.

Examples
--------
>>> from datetime import date
>>> from hipdx import Case, assess, load_knowledge_base
>>> kb = load_knowledge_base()
>>> render_markdown(assess(Case(age_years=44, sex="male"), kb, date(2026, 1, 1)), kb).startswith("# hipdx")
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hipdx.knowledge.base import KnowledgeBase
from hipdx.reasoning.assessment import Assessment, ConditionExplanation
from hipdx.report import view
from hipdx.report.markup import escape_html, table

if TYPE_CHECKING:
    from hipdx.imaging.analyze import MriAnalysis


def render_markdown(
    assessment: Assessment, kb: KnowledgeBase, *, analysis: MriAnalysis | None = None, course_line: str = ""
) -> str:
    """The full report of one assessment as a Markdown document.

    Parameters
    ----------
    assessment
        The assessment to show.
    kb
        The knowledge base it was made with, for the citations of its references.
    analysis
        The MRI analysis whose measured findings the case holds, if any: its measurements are
        a section of the report.
    course_line
        The follow-up visits' alerts in one line (:func:`hipdx.report.view.course_alerts_line`), under the headline.
    """
    return "\n\n".join(_report(assessment, kb, analysis, course_line)) + "\n"


def _report(a: Assessment, kb: KnowledgeBase, analysis: MriAnalysis | None, course_line: str = "") -> Iterator[str]:
    from hipdx.report.management import format_plan, format_staging

    title = "# hipdx assessment" + (f": case {escape_html(a.case_id)}" if a.case_id else "")
    yield title
    yield f"**Now ({a.headline.urgency}):** {a.headline.text}"
    if course_line:
        yield f"**{escape_html(course_line)}**"
    yield f"> {view.statement(a)}"
    yield from _red_flags(a)
    yield from _differential(a)
    yield from _explanations(a)
    yield from _missing(a, kb)
    yield from _next_tests(a)
    yield "## How sure\n\n" + a.uncertainty
    yield "## Warnings\n\n" + ("\n".join(f"- {w}" for w in a.warnings) or "None.")
    if analysis is not None:
        from hipdx.report.mri import format_mri_analysis

        yield format_mri_analysis(analysis, markdown=True, heading_level=2)
    if a.staging is not None:  # plain text, escaped: no raw HTML from the case
        yield "## Staging\n\n" + escape_html(format_staging(a.staging, title=False))
    if a.plan is not None:
        caveat = view.without_statement(a.plan.disclaimer, a)
        yield "## Management plan\n\n" + format_plan(a.plan, markdown=True, heading_level=2, title=False, caveat=caveat).rstrip()
    yield from _references(a, kb)
    yield "## Provenance\n\n" + "\n".join(f"- **{label}**: {value}" for label, value in view.provenance_items(a))


def _red_flags(a: Assessment) -> Iterator[str]:
    yield "## Red flags"
    flags = view.red_flags_by_urgency(a)
    if not flags:
        yield "No red-flag rule is met. Red flags are checked whatever the probabilities."
    for flag in flags:
        v = view.red_flag_view(flag)
        yield (
            f"### {v.urgency}: {v.title}\n\n"
            f"- **Condition**: {v.condition}\n"
            f"- **Triggered by**: {v.triggered_by}\n"
            f"- **Action**: {v.action}\n"
            f"- **References**: {v.refs}"
        )


def _differential(a: Assessment) -> Iterator[str]:
    yield "## Differential"
    header = ["#", "Condition", "Probability", "90% range", "Prior", "Patient prior", "Must not miss"]
    rows = [
        [r.rank, f"**{r.short}**: {r.name}", r.probability_text, r.range_text, r.prior, r.patient_prior,
         "yes" if r.must_not_miss else ""]
        for r in view.differential_rows(a)
    ]
    yield table(header, rows)


def _explanations(a: Assessment) -> Iterator[str]:
    yield "## Why: the leading conditions"
    for explained in a.explanation.leading:
        yield _explanation(explained)


def _explanation(explained: ConditionExplanation) -> str:
    head = f"### {explained.name} ({view.percent(explained.probability)})\n\n{view.probability_path(explained)}"
    rows = view.contribution_rows(explained)
    if not rows:
        return head + "\n\nNo finding is known yet."
    header = ["Kind", "Factor or finding", "Observed", "LR", "Effect", "Basis", "References"]
    body = [[r.kind, r.factor, r.observed, r.likelihood_ratio, f"{r.arrow} {r.direction}", r.basis, r.refs] for r in rows]
    return head + "\n\n" + table(header, body)


def _missing(a: Assessment, kb: KnowledgeBase) -> Iterator[str]:
    yield "## Missing findings that matter most"
    rows = view.missing_rows(a, kb)
    if not rows:
        yield "None: no unknown finding is expected to change the differential much."
        return
    yield table(["Finding", "Expected information (bits)", "How to obtain"], [list(r) for r in rows])


def _next_tests(a: Assessment) -> Iterator[str]:
    yield "## Next tests"
    rows = view.next_test_rows(a)
    if not rows:
        yield "No test is expected to add useful information."
        return
    header = ["#", "Test", "Expected information (bits)", "Burden", "Why", "Warnings"]
    yield table(header, [[r.rank, r.name, r.bits, r.burden, r.reason, "; ".join(r.warnings)] for r in rows])


def _references(a: Assessment, kb: KnowledgeBase) -> Iterator[str]:
    refs = view.references(a, kb)
    if refs:
        yield "## References\n\n" + "\n".join(f"- `{key}`: {cited}" for key, cited in refs)
