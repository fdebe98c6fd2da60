"""One screen for a busy clinic: what to do now, red flags, the leading three, the next test, the plan.

The default of ``hipdx assess``; everything else (the explanation, the missing findings, all
tests, staging, the plan in full, references) is in the full report (``--detail``). Pure:
a function of the :class:`~hipdx.reasoning.Assessment` to a string, as text for a terminal
or as Markdown. The decision-support statement is said once, at the end.

Examples
--------
>>> from datetime import date
>>> from hipdx import Case, assess, load_knowledge_base
>>> summary = render_summary(assess(Case(age_years=44, sex="male"), load_knowledge_base(), date(2026, 1, 1)))
>>> summary.splitlines()[1].startswith("Now:")
True
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from hipdx.reasoning.assessment import Assessment

if TYPE_CHECKING:
    from hipdx.imaging.analyze import MriAnalysis
from hipdx.report import view
from hipdx.report.markup import escape_html
from hipdx.report.text import DEFAULT_WIDTH, URGENCY_STYLE, capture, heading, probability_bar

#: The leading conditions shown.
LEADING = 3
#: At most this many steps per plan section and this many sections; the rest is in --detail.
MAX_STEPS = 8
MAX_SECTIONS = 2
#: Where the rest is.
MORE = "More with --detail: why (each finding's likelihood ratio), missing findings, all tests, staging, the full plan, references."


def render_summary(
    assessment: Assessment,
    *,
    analysis: MriAnalysis | None = None,
    color: bool = False,
    width: int = DEFAULT_WIDTH,
    course_line: str = "",
) -> str:
    """The one-screen report (about 40 lines) for a terminal; one line on the MRI when ``analysis`` is given.

    ``course_line`` (:func:`hipdx.report.view.course_alerts_line`) goes under the headline.
    """
    return capture(_summary(assessment, analysis, width, course_line), color=color, width=width)


def _title(a: Assessment) -> Text:
    title = Text("hipdx", style="bold")
    if a.case_id:
        title.append(f" · case {a.case_id}")
    onset = a.provenance.days_since_onset
    if onset is not None:
        title.append(f" · day {view.days(onset)} since onset")
    return title


def _summary(a: Assessment, analysis: MriAnalysis | None, width: int, course_line: str) -> Iterator[RenderableType]:
    yield _title(a)
    yield Text.assemble(("Now: ", "bold"), (a.headline.text, URGENCY_STYLE.get(a.headline.urgency, "bold")))
    if course_line:
        yield Text(course_line, style="bold")
    if analysis is not None:
        from hipdx.report.mri import mri_in_brief  # the imaging package loads only when an MRI is given

        yield Text(mri_in_brief(analysis))

    yield heading("Red flags")
    flags = view.red_flags_by_urgency(a)
    if not flags:
        yield Text("None met (checked whatever the probabilities).", style="green")
    for flag in flags:
        style = URGENCY_STYLE.get(flag.urgency, "bold")
        yield Text.assemble((f"{flag.urgency.upper()} ", style), (flag.title, "bold"), f": {' '.join(flag.action.split())}")

    yield heading(f"Leading {LEADING} (probability and 90% range)")
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(justify="right", no_wrap=True, min_width=2)
    table.add_column(no_wrap=True, min_width=14)
    table.add_column(no_wrap=True, width=12)
    table.add_column(justify="right", no_wrap=True, min_width=13)
    table.add_column(overflow="ellipsis", no_wrap=True, style="dim", ratio=1)
    for row in view.differential_rows(a)[:LEADING]:
        short = Text(row.short, style="bold")
        if row.must_not_miss:
            short.append(f" {view.MUST_NOT_MISS_MARK}", style="bold red")
        table.add_row(
            f"{row.rank}.", short, Text(probability_bar(row.probability, 12), style="red" if row.must_not_miss else "blue"),
            Text.assemble((row.probability_text, "bold"), f" ({row.range_text})"), row.name,
        )
    yield table
    beyond = view.must_not_miss_beyond(a, LEADING)
    if beyond:
        listed = ", ".join(f"{r.short} {r.probability_text}" for r in beyond)
        yield Text(f"{view.MUST_NOT_MISS_MARK} must not miss, lower down: {listed}", style="dim")

    yield heading("Next test")
    tests = view.next_test_rows(a)
    if tests:
        yield Text.assemble((tests[0].name, "bold"), f": {tests[0].reason}")
        for warning in tests[0].warnings:
            yield Text(f"! {warning}", style="yellow")
    else:
        yield Text("None expected to add useful information.")

    yield from _plan(a, width)
    for warning in a.warnings:
        yield Text(f"! {warning}", style="yellow")
    yield Text()
    yield Text(MORE, style="dim")
    yield Text(_provenance_line(a), style="dim")
    yield Text(view.statement(a), style="dim italic")


def _plan(a: Assessment, width: int) -> Iterator[RenderableType]:
    sections = view.plan_in_brief(a)
    if not sections:
        return
    yield heading("Plan")
    for section in sections[:MAX_SECTIONS]:
        yield Text.assemble((section.title, "bold"), " ", (f"[{section.urgency}]", URGENCY_STYLE.get(section.urgency, "dim")))
        for step in section.steps[:MAX_STEPS]:
            caution = "" if step.status == "recommended" else f" ({step.status})"
            yield Text(f"  {step.order}. {step.title}{caution}")
        if len(section.steps) > MAX_STEPS:
            yield Text(f"  and {len(section.steps) - MAX_STEPS} more steps", style="dim")
        if section.waiting:
            yield Text(_wrap(_waiting(a, section), width), style="dim")
        for fact, options in section.blocked_by_fact():
            yield Text(_wrap(f"  BLOCKED by {fact}: {', '.join(options)}", width), style="red")
    if len(sections) > MAX_SECTIONS:
        yield Text(f"and {len(sections) - MAX_SECTIONS} more sections", style="dim")


def _waiting(a: Assessment, section: view.PlanSectionView) -> str:
    names = ", ".join(view.short_title(title) for title, _ in section.waiting)
    return f"  Waiting for information ({', '.join(view.facts_most_needed(a))}...): {names}"


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width=width, subsequent_indent="    "))


def _provenance_line(a: Assessment) -> str:
    p = a.provenance
    return f"hipdx {p.hipdx_version} · knowledge base {p.knowledge_base_version} ({p.knowledge_base_digest})"


def render_summary_markdown(assessment: Assessment, *, analysis: MriAnalysis | None = None, course_line: str = "") -> str:
    """The one-screen report as Markdown (text from the case escaped: no raw HTML); ``course_line`` under the headline."""
    return "\n\n".join(_markdown(assessment, analysis, course_line)) + "\n"


def _markdown(a: Assessment, analysis: MriAnalysis | None, course_line: str) -> Iterator[str]:
    title = "# hipdx" + (f": case {escape_html(a.case_id)}" if a.case_id else "")
    if a.provenance.days_since_onset is not None:
        title += f", day {view.days(a.provenance.days_since_onset)} since onset"
    yield title
    yield f"**Now ({a.headline.urgency}):** {a.headline.text}"
    if course_line:
        yield f"**{escape_html(course_line)}**"
    if analysis is not None:
        from hipdx.report.mri import mri_in_brief

        yield mri_in_brief(analysis)
    flags = view.red_flags_by_urgency(a)
    yield "## Red flags\n\n" + (
        "\n".join(f"- **{f.urgency.upper()} {f.title}**: {' '.join(f.action.split())}" for f in flags)
        or "None met (checked whatever the probabilities)."
    )
    rows = [
        f"{r.rank}. **{r.short}**{' (must not miss)' if r.must_not_miss else ''} {r.probability_text} ({r.range_text}): {r.name}"
        for r in view.differential_rows(a)[:LEADING]
    ]
    beyond = view.must_not_miss_beyond(a, LEADING)
    if beyond:
        rows.append("\nMust not miss, lower down: " + ", ".join(f"{r.short} {r.probability_text}" for r in beyond))
    yield f"## Leading {LEADING} (probability and 90% range)\n\n" + "\n".join(rows)
    tests = view.next_test_rows(a)
    yield "## Next test\n\n" + (f"**{tests[0].name}**: {tests[0].reason}" if tests else "None expected to add useful information.")
    sections = view.plan_in_brief(a)
    if sections:
        lines = ["## Plan"]
        for section in sections[:MAX_SECTIONS]:
            lines.append(f"\n**{section.title}** [{section.urgency}]\n")
            lines += [f"{s.order}. {s.title}" + ("" if s.status == "recommended" else f" ({s.status})") for s in section.steps[:MAX_STEPS]]
            if section.waiting:
                lines.append("\n" + _waiting(a, section).strip())
            lines += [f"\n- BLOCKED by {escape_html(fact)}: {', '.join(options)}" for fact, options in section.blocked_by_fact()]
        yield "\n".join(lines)
    if a.warnings:
        yield "\n".join(f"- warning: {w}" for w in a.warnings)
    yield f"_{MORE}_\n\n{_provenance_line(a)}\n\n> {view.statement(a)}"
