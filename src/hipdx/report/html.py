"""The printable report: an assessment as one HTML document (Jinja2 templates), and as PDF (WeasyPrint).

:func:`render_html` is a pure function of a :class:`ReportContent` (the assessment and what the
adapter gathered beside it: the case, the MRI analysis with its overlay images, the course
and its plot, the inputs) to a self-contained HTML string: the stylesheet inline, images as
``data:`` URIs, nothing fetched. The web app renders the same templates: the sections are
macros of ``_sections.html`` (``{% import "_sections.html" as section %}``), fed by
:func:`report_context`. :func:`render_pdf` lays the HTML out on A4 pages.

Text from the case (its id, its note) is escaped by the templates' autoescaping; no value is
marked safe except the images and the plot, which hipdx draws itself.

Examples
--------
>>> from datetime import date
>>> from hipdx import Case, assess, load_knowledge_base
>>> kb = load_knowledge_base()
>>> page = render_html(ReportContent(assess(Case(age_years=44, sex="male"), kb, date(2026, 1, 1))), kb)
>>> page.startswith("<!DOCTYPE html>")
True
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from hipdx.case.model import Case
from hipdx.knowledge.base import KnowledgeBase
from hipdx.reasoning.assessment import Assessment
from hipdx.report import view

if TYPE_CHECKING:
    from hipdx.imaging.analyze import MriAnalysis
    from hipdx.reasoning.course import CourseReport


@dataclass(frozen=True)
class Image:
    """A picture for the report: a caption and its bytes (PNG or SVG)."""

    caption: str
    data: bytes
    media_type: str = "image/png"

    @property
    def uri(self) -> Markup:
        """The image as a ``data:`` URI (drawn by hipdx, so safe to place in the page)."""
        return Markup(f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}")


@dataclass(frozen=True)
class ReportContent:
    """Everything one report shows: the assessment, and what the adapter gathered beside it.

    Parameters
    ----------
    assessment
        The assessment.
    case
        The case it was made from, for the patient summary (None: the summary is left out).
    analysis
        The MRI analysis whose measured findings the case holds, if any.
    overlays
        Key overlay images of that MRI (:func:`hipdx.report.overlay.write_overlays`).
    course
        The course against the expected course, when the case has visits.
    course_plot
        The course drawn (:func:`hipdx.report.plot.course_svg`).
    inputs
        (label, value) pairs naming the inputs: files with their SHA-256, the MRI folder, the date.
    assessed_on
        The date of the assessment: on every page, and the day "days since onset" counts to.
    """

    assessment: Assessment
    case: Case | None = None
    analysis: MriAnalysis | None = None
    overlays: tuple[Image, ...] = ()
    course: CourseReport | None = None
    course_plot: Image | None = None
    inputs: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    assessed_on: dt.date | None = None


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment of the report templates: autoescaped, strict about undefined names."""
    env = Environment(
        loader=PackageLoader("hipdx.report", "templates"),
        autoescape=select_autoescape(("html",)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["percent"] = view.percent
    env.filters["label"] = view.state_label
    env.filters["fact"] = view.fact_words
    return env


def stylesheet() -> Markup:
    """The one print stylesheet of the reports (inlined, so a saved page stays whole; hipdx's own, so not escaped)."""
    return Markup(resources.files("hipdx.report").joinpath("templates/report.css").read_text(encoding="utf-8"))


def render_html(content: ReportContent, kb: KnowledgeBase) -> str:
    """The report of one assessment as a self-contained HTML document.

    Parameters
    ----------
    content
        The assessment and what goes with it.
    kb
        The knowledge base it was made with, for the citations of its references.
    """
    return environment().get_template("report.html").render(report_context(content, kb))


def report_context(content: ReportContent, kb: KnowledgeBase) -> dict[str, Any]:
    """What the templates show, as plain values (the web app's pages take the same)."""
    a = content.assessment
    return {
        "a": a,
        "css": stylesheet(),
        "title": "hipdx report" + (f": case {a.case_id}" if a.case_id else "")
        + (f", assessed on {content.assessed_on.isoformat()}" if content.assessed_on else ""),
        "statement": view.statement(a),
        "headline": a.headline,
        "patient": patient_summary(content.case, content.assessed_on) if content.case is not None else [],
        "red_flags": [view.red_flag_view(f) for f in view.red_flags_by_urgency(a)],
        "differential": view.differential_rows(a),
        "legend": view.MUST_NOT_MISS_LEGEND,
        "explanations": [(e, view.probability_path(e), view.contribution_rows(e)) for e in a.explanation.leading],
        "missing": view.missing_rows(a, kb),
        "next_tests": view.next_test_rows(a),
        "staging": staging_rows(a),
        "staging_caveat": " ".join(a.staging.provenance.caveat.split()) if a.staging is not None else "",
        "plan": a.plan,
        "plan_caveat": view.without_statement(a.plan.disclaimer, a) if a.plan is not None else "",
        "plan_status": view.PLAN_STATUS,
        "mri": mri_rows(content.analysis) if content.analysis is not None else None,
        "overlays": content.overlays,
        "course": content.course,
        "course_line": view.course_alerts_line(content.course, "Course, below"),
        "course_plot": content.course_plot,
        "references": report_references(a, kb),
        "provenance": view.provenance_items(a),
        "inputs": content.inputs,
    }


# -- the parts built here ---------------------------------------------------------------------


def patient_summary(case: Case, assessed_on: dt.date | None = None) -> list[tuple[str, str]]:
    """(label, value) of who the patient is and when the pain began; what is not known says so.

    The onset is dated against the assessment, never "ago": a printed report is read later.
    """
    rows = [("Assessed on", assessed_on.isoformat())] if assessed_on is not None else []
    rows += [
        ("Age", f"{case.age_years:g} years" if case.age_years is not None else "not known"),
        ("Sex", case.sex.value.replace("_", " ")),
    ]
    if case.pregnancy.status.value in ("pregnant", "postpartum"):
        weeks = case.pregnancy.gestational_weeks or case.pregnancy.postpartum_weeks
        suffix = "" if weeks is None else f", {weeks:g} weeks" + (" since delivery" if case.pregnancy.status.value == "postpartum" else "")
        rows.append(("Pregnancy", case.pregnancy.status.value + suffix))
    feeding = case.pregnancy.breastfeeding.value
    if feeding != "unknown" or case.pregnancy.status.value in ("pregnant", "postpartum"):
        # a drug fact (the plan blocks or waits on it) beside pregnancy; "not known" said where it matters
        rows.append(("Breastfeeding", {"present": "yes", "absent": "no"}.get(feeding, "not known")))
    rows.append(("Side", case.side.value))
    onset = case.onset.type.value
    if case.onset.days_since_onset is not None:
        days = case.onset.days_since_onset
        onset += f", {days:g} days before the assessment"
        if assessed_on is not None:
            onset += f" (about {(assessed_on - dt.timedelta(days=days)).isoformat()})"
    elif case.onset.date is not None:
        onset += f", on {case.onset.date.isoformat()}"
    rows.append(("Onset of pain", onset))
    rows.append(("Seen in", view.state_label(case.setting.value)))
    rows.append(("Imaging studies", str(len(case.imaging)) or "none"))
    rows.append(("Visits", str(len(case.visits))))
    if view.first_line(case.note):
        rows.append(("Note", view.first_line(case.note)))
    return rows


def staging_rows(a: Assessment) -> list[tuple[str, str, str]]:
    """(system, result, what decided it) for every part of the staging."""
    s = a.staging
    if s is None:
        return []

    def inputs(items: list[Any]) -> str:
        return "; ".join(str(i) for i in items) or "-"

    rows = []
    for r in s.osteonecrosis:
        result = {"at_least": f"at least {r.stage}", "staged": r.stage or ""}.get(r.status.value, view.state_label(r.status.value))
        if r.definition:
            result += f": {r.definition}"
        why = inputs(r.decided_by) + (f" (missing: {', '.join(r.missing)})" if r.missing else "")
        rows.append((r.name, result, why))
    p = s.toh_phase
    phase = view.state_label(p.phase) + (" - beyond the expected course" if p.beyond_expected_course else "")
    rows.append(("TOH phase (estimate)", phase, inputs(p.decided_by)))
    pat = s.pattern
    pattern = f"bilateral {pat.bilateral.value}; migratory {pat.migratory.value}"
    if pat.regional_migratory_osteoporosis_pattern:
        pattern += "; regional migratory osteoporosis pattern"
    rows.append(("Pattern", pattern, inputs(pat.decided_by)))
    b = s.subchondral_band
    rows.append(("Subchondral band", f"{view.state_label(b.verdict.value)}: {b.summary}", inputs(b.decided_by)))
    f = s.femoral_neck_fracture
    rows.append(("Femoral neck fracture", f.label + (f" [{f.urgency}] {f.action}" if f.urgency else ""), inputs(f.decided_by)))
    return rows


def mri_rows(analysis: MriAnalysis) -> dict[str, Any]:
    """The measurements side by side, with the comparison, notes, warnings and series used."""
    from hipdx.report.mri import DISCLAIMER, ROWS, mri_notes, side_to_side

    return {
        "rows": [(label, cell(analysis.sides.right), cell(analysis.sides.left)) for label, cell in ROWS],
        "comparison": side_to_side(analysis),
        "notes": mri_notes(analysis) + list(analysis.warnings),
        "series": ", ".join(f"{kind}: {desc}" for kind, desc in analysis.provenance.series_used.items()) or "none",
        "caveat": DISCLAIMER,
    }


def report_references(a: Assessment, kb: KnowledgeBase) -> list[tuple[str, str]]:
    """(key, citation) for every reference the report cites: the assessment's, the staging's and the plan's."""
    keys = view.cited_keys(a)
    if a.staging is not None:
        s = a.staging
        for part in [*s.osteonecrosis, s.toh_phase, s.pattern, s.subchondral_band, s.femoral_neck_fracture]:
            keys += part.refs
    if a.plan is not None:
        for section in a.plan.sections:
            keys += section.refs
            for item in section.items:
                keys += item.refs + [r for f in item.blocked_by for r in f.refs]
    return [(key, view.citation(key, kb.references.get(key))) for key in dict.fromkeys(keys)]


def course_content(case: Case, assessment: Assessment, kb: KnowledgeBase, day: dt.date) -> tuple[CourseReport | None, Image | None]:
    """The course of a case with visits against the expected course of its leading condition, and its plot
    (None, None without visits): what a report shows of the course, for ``hipdx report`` and the pages."""
    if not case.visits:
        return None, None
    from hipdx.reasoning.course import compare_course
    from hipdx.report.plot import course_svg

    report = compare_course(case, assessment.differential[0].id, kb.course, day)
    caption = f"Pain at each visit against the expected course of {report.condition_name}."
    return report, Image(caption, course_svg(report, statement=False), "image/svg+xml")  # the report states it once


def render_pdf(html: str) -> bytes:
    """The HTML laid out on A4 pages as PDF (WeasyPrint). Only ``data:`` URIs are read: nothing is fetched."""
    import weasyprint

    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)
    return weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf()
