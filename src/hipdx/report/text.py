"""The terminal renderer: an assessment as a coloured report, built with rich.

Pure: a function of the :class:`~hipdx.reasoning.Assessment` (and the knowledge base
for reference look-ups) to a string. Colour is a parameter; the command line decides it
(a terminal, no ``NO_COLOR``, no ``--no-color``).

Examples
--------
>>> from datetime import date
>>> from hipdx import Case, assess, load_knowledge_base
>>> kb = load_knowledge_base()
>>> text = render_text(assess(Case(age_years=44, sex="male"), kb, date(2026, 1, 1)), kb)
>>> "Differential" in text
True
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from hipdx.knowledge.base import KnowledgeBase
from hipdx.reasoning.assessment import Assessment, ConditionExplanation
from hipdx.report import view

if TYPE_CHECKING:
    from hipdx.imaging.analyze import MriAnalysis

#: Width of a report written anywhere but a terminal.
DEFAULT_WIDTH = 100
BAR_CELLS = 20
_EIGHTHS = " ▏▎▍▌▋▊▉"

URGENCY_STYLE = {"emergency": "bold red", "urgent": "bold dark_orange", "soon": "bold cyan"}
DIRECTION_STYLE = {"for": "green", "against": "red", "neutral": "dim"}
BASIS_STYLE = {"reported": "green", "derived": "cyan", "transferred": "magenta", "estimate": "yellow"}


def capture(renderables: Iterable[RenderableType], *, color: bool = False, width: int = DEFAULT_WIDTH) -> str:
    """Render rich renderables to a string, with ANSI colour only when ``color`` is true."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        color_system="standard" if color else None,
        no_color=not color,
        markup=False,
        highlight=False,
        emoji=False,
        legacy_windows=False,
        soft_wrap=False,
    )
    for renderable in renderables:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().split("\n"))


def heading(title: str) -> Group:
    """A section heading: a blank line, then the title on a rule."""
    return Group(Text(), Rule(Text(title, style="bold"), align="left", style="dim"))


def _table() -> Table:
    """A table with a ruled header, spread over the whole width (columns share it by ratio)."""
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=True)


def render_text(
    assessment: Assessment,
    kb: KnowledgeBase,
    *,
    analysis: MriAnalysis | None = None,
    color: bool = False,
    width: int = DEFAULT_WIDTH,
    course_line: str = "",
) -> str:
    """The full report of one assessment for a terminal (``hipdx assess --detail``).

    The headline, red flags, differential, explanation, missing findings, next tests, how
    sure, warnings, the MRI measurements (when ``analysis`` is given), staging, plan,
    references and provenance; the decision-support statement once, at the end.

    Parameters
    ----------
    assessment
        The assessment to show.
    kb
        The knowledge base it was made with, for the citations of its references.
    analysis
        The MRI analysis whose measured findings the case holds, if any.
    color
        Emit ANSI colour codes.
    width
        Line width in characters.
    """
    return capture(_report(assessment, kb, analysis, course_line), color=color, width=width)


def _report(a: Assessment, kb: KnowledgeBase, analysis: MriAnalysis | None, course_line: str = "") -> Iterator[RenderableType]:
    from hipdx.report.management import format_plan, format_staging

    yield _title(a)
    if course_line:  # the follow-up visits' alerts, under the headline (view.course_alerts_line)
        yield Text(course_line, style="bold")
    yield from _red_flags(a)
    yield from _differential(a)
    yield from _explanations(a)
    yield from _missing(a, kb)
    yield from _next_tests(a)
    yield from _uncertainty_and_warnings(a)
    if analysis is not None:
        from hipdx.report.mri import MRI_TITLE, format_mri_analysis

        yield heading(MRI_TITLE)
        yield Text(format_mri_analysis(analysis, title=False))
    if a.staging is not None:
        yield heading("Staging")
        yield Text(format_staging(a.staging, title=False))
    if a.plan is not None:
        yield heading("Management plan")
        yield Text(format_plan(a.plan, title=False, caveat=view.without_statement(a.plan.disclaimer, a)).rstrip())
    yield from _references(a, kb)
    yield from _footer(a)


def _title(a: Assessment) -> Text:
    title = Text("hipdx assessment", style="bold")
    if a.case_id:
        title.append(f" · case {a.case_id}")
    title.append("\n")
    title.append("Now: ", style="bold")
    title.append(a.headline.text, style=URGENCY_STYLE.get(a.headline.urgency, "bold"))
    return title


def _red_flags(a: Assessment) -> Iterator[RenderableType]:
    yield heading("RED FLAGS")
    flags = view.red_flags_by_urgency(a)
    if not flags:
        yield Text("No red-flag rule is met. Red flags are checked whatever the probabilities.", style="green")
        return
    for flag in flags:
        v = view.red_flag_view(flag)
        style = URGENCY_STYLE.get(flag.urgency, "bold")
        body = Table.grid(padding=(0, 1))
        body.add_column(style="bold", no_wrap=True)
        body.add_column()
        body.add_row("Condition", v.condition)
        body.add_row("Triggered by", v.triggered_by)
        body.add_row("Action", v.action)
        body.add_row("References", v.refs)
        yield Panel(body, title=Text(f"{v.urgency}: {v.title}", style=style), title_align="left", border_style=style)


def probability_bar(p: float, cells: int = BAR_CELLS) -> str:
    """A horizontal bar of ``cells`` characters, filled in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, p)) * cells * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (_EIGHTHS[part] if part else "")
    return bar.ljust(cells)


def _differential(a: Assessment) -> Iterator[RenderableType]:
    yield heading("Differential (all conditions, most probable first)")
    table = _table()
    table.add_column("#", justify="right", width=2)
    table.add_column("Condition", width=14)
    table.add_column("Probability", width=BAR_CELLS)
    table.add_column("(90% range)", justify="right", width=15)
    table.add_column("Patient prior", justify="right", width=7)
    table.add_column("Name", overflow="ellipsis", no_wrap=True, style="dim", ratio=1)
    for row in view.differential_rows(a):
        condition = Text(row.short, style="bold")
        if row.must_not_miss:
            condition.append(f" {view.MUST_NOT_MISS_MARK}", style="bold red")
        table.add_row(
            row.rank,
            condition,
            Text(probability_bar(row.probability), style="red" if row.must_not_miss else "blue"),
            Text.assemble((row.probability_text, "bold"), f" ({row.range_text})"),
            row.patient_prior,
            row.name,
        )
    yield table
    yield Text(f"{view.MUST_NOT_MISS_MARK} {view.MUST_NOT_MISS_LEGEND}", style="dim")


def _explanations(a: Assessment) -> Iterator[RenderableType]:
    yield heading("Why: the leading conditions")
    for explained in a.explanation.leading:
        yield _explanation(explained)


def _explanation(explained: ConditionExplanation) -> Group:
    title = Text.assemble("\n", (explained.name, "bold"), "  ", (view.percent(explained.probability), "bold"))
    path = Text(view.probability_path(explained), style="dim")
    rows = view.contribution_rows(explained)
    if not rows:
        return Group(title, path, Text("No finding is known yet.", style="italic"), Text())
    table = _table()
    table.add_column("", style="italic dim", no_wrap=True)
    table.add_column("Factor or finding", ratio=4)
    table.add_column("Observed", ratio=3)
    table.add_column("LR", justify="right", no_wrap=True)
    table.add_column("Effect", no_wrap=True)
    table.add_column("Basis", no_wrap=True)
    table.add_column("Refs", ratio=3, style="dim")
    for i, row in enumerate(rows):
        first_of_kind = i == 0 or rows[i - 1].kind != row.kind
        table.add_row(
            row.kind if first_of_kind else "",
            row.factor,
            row.observed,
            row.likelihood_ratio,
            Text(f"{row.arrow} {row.direction}", style=DIRECTION_STYLE.get(row.direction, "")),
            Text(row.basis, style=BASIS_STYLE.get(row.basis, "")),
            row.refs,
            end_section=i + 1 < len(rows) and rows[i + 1].kind != row.kind,
        )
    return Group(title, path, table)


def _missing(a: Assessment, kb: KnowledgeBase) -> Iterator[RenderableType]:
    yield heading("Missing findings that matter most")
    rows = view.missing_rows(a, kb)
    if not rows:
        yield Text("None: no unknown finding is expected to change the differential much.")
        return
    table = _table()
    table.add_column("Finding", ratio=3)
    table.add_column("Bits", justify="right", no_wrap=True)
    table.add_column("How to obtain", ratio=3)
    for row in rows:
        table.add_row(row.finding, row.bits, row.obtained_by)
    yield table


def _next_tests(a: Assessment) -> Iterator[RenderableType]:
    yield heading("Next tests (expected information against burden)")
    rows = view.next_test_rows(a)
    if not rows:
        yield Text("No test is expected to add useful information.")
        return
    table = _table()
    table.add_column("#", justify="right")
    table.add_column("Test", style="bold", ratio=2)
    table.add_column("Bits", justify="right", no_wrap=True)
    table.add_column("Burden", justify="right", no_wrap=True)
    table.add_column("Why", ratio=3)
    for row in rows:
        why = Text(row.reason)
        for warning in row.warnings:
            why.append(f"\n! {warning}", style="yellow")
        table.add_row(row.rank, row.name, row.bits, row.burden, why)
    yield table


def _uncertainty_and_warnings(a: Assessment) -> Iterator[RenderableType]:
    yield heading("How sure")
    yield Text(a.uncertainty)
    yield heading("Warnings")
    if not a.warnings:
        yield Text("None.", style="dim")
    for warning in a.warnings:
        yield Text(f"! {warning}", style="yellow")


def _references(a: Assessment, kb: KnowledgeBase) -> Iterator[RenderableType]:
    refs = view.references(a, kb)
    if not refs:
        return
    yield heading("References")
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(style="dim", overflow="fold")
    for key, cited in refs:
        table.add_row(key, cited)
    yield table


def _footer(a: Assessment) -> Iterator[RenderableType]:
    yield Rule(style="dim")
    yield Text(" · ".join(f"{label}: {value}" for label, value in view.provenance_items(a)), style="dim")
    yield Text(view.statement(a), style="dim italic")


def render_brief(
    assessment: Assessment,
    *,
    title: str,
    note: str | None = None,
    color: bool = False,
    width: int = DEFAULT_WIDTH,
) -> str:
    """A compact block for a list of cases: top three conditions, red flags, best next test.

    ``title`` names the case (its id and file); ``note`` is the case's free-text note, of
    which the first line is shown.
    """
    return capture(_brief(assessment, title, note), color=color, width=width)


def _indented(*lines: RenderableType, no_wrap: bool = False) -> Padding:
    """Lines indented by two spaces; each wraps under itself, or is cut with an ellipsis."""
    grid = Table.grid()
    grid.add_column(no_wrap=no_wrap, overflow="ellipsis" if no_wrap else "fold")
    for line in lines:
        grid.add_row(line)
    return Padding.indent(grid, 2)


def _brief(a: Assessment, title: str, note: str | None) -> Iterator[RenderableType]:
    yield Text(title, style="bold")
    if view.first_line(note):
        yield _indented(Text(view.first_line(note), style="italic"), no_wrap=True)
    top = Table.grid(padding=(0, 2))
    top.add_column(justify="right")
    top.add_column(style="bold")
    top.add_column(justify="right")
    top.add_column()
    top.add_column()
    for row in view.differential_rows(a)[:3]:
        marker = Text(f"{view.MUST_NOT_MISS_MARK} {view.MUST_NOT_MISS}", style="red") if row.must_not_miss else ""
        top.add_row(f"  {row.rank}.", row.short, row.probability_text, f"({row.range_text})", marker)
    yield top
    flags = Text("red flags: ")
    for i, flag in enumerate(view.red_flags_by_urgency(a)):
        flags.append("; " if i else "")
        flags.append(f"{flag.urgency.upper()} {flag.title}", style=URGENCY_STYLE.get(flag.urgency, ""))
    if not a.red_flags:
        flags.append("none", style="dim")
    tests = view.next_test_rows(a)
    best = f"{tests[0].name} ({tests[0].bits} bits)" if tests else "none proposed"
    yield _indented(flags, f"next test: {best}")
    yield Text()
