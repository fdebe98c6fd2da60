"""The course report as plain text for the terminal (``hipdx course``)."""

from __future__ import annotations

import textwrap

from hipdx.reasoning.course import CourseReport, PainPosition

_POSITION = {
    PainPosition.within: "within the band",
    PainPosition.above: "ABOVE the band",
    PainPosition.below: "below the band",
    PainPosition.not_recorded: "",
    PainPosition.no_expected_band: "",
}


def render_course_text(report: CourseReport, width: int = 88) -> str:
    """The course against the expected course, alerts first, as plain text of ``width`` columns."""
    wrap = textwrap.TextWrapper(width=width, subsequent_indent="    ")
    lines = [f"Course of {report.case_id or 'the case'} against the expected course of {report.condition_name}"]
    if report.days_since_onset is not None:
        lines.append(f"{report.days_since_onset:g} days since onset at the assessment.")
    lines.append("")

    if report.alerts:
        lines.append("Alerts")
        for n, alert in enumerate(report.alerts, start=1):
            lines += wrap.wrap(f"{n}. [{alert.severity.value.upper()}] {alert.title}")
            lines += wrap.wrap(f"    Seen: {alert.finding}")
            lines += wrap.wrap(f"    Do: {alert.action}")
            lines += wrap.wrap(f"    Sources: {', '.join(alert.refs)} (thresholds: {alert.threshold_basis})")
    else:
        lines.append("No alerts: the visits stay within the expected course.")
    lines.append("")

    if report.points:
        lines.append("Visits (earliest first)")
        lines.append(f"  {'day':>6}  {'pain':>5}  {'expected':>9}  {'':<15}  {'walking':<13}  edema")
        for p in report.points:
            pain = f"{p.pain_0_10:g}" if p.pain_0_10 is not None else "-"
            band = f"{p.expected_pain[0]:g}-{p.expected_pain[1]:g}" if p.expected_pain else "-"  # as placed: never rounded further
            walking = p.walking.value.replace("_", " ") if p.walking.value != "unknown" else "-"
            edema = p.edema_extent.value.replace("_", " ") if p.edema_extent.value != "unknown" else "-"
            lines.append(
                f"  {p.days_since_onset:>6g}  {pain:>5}  {band:>9}  {_POSITION[p.pain_position]:<15}  {walking:<13}  {edema}"
            )
        lines.append("")

    if report.expected is not None:
        lines.append("Expected course")
        lines += wrap.wrap(f"  {report.expected.summary}")
        for statement in report.expected.expected:
            lines += wrap.wrap(f"  - {statement}")
        if report.expected.pain_band_basis:
            lines += wrap.wrap(
                f"  Pain band: {report.expected.pain_band_basis} ({', '.join(report.expected.pain_band_refs)})."
            )
        for item in report.expected.follow_up:
            days = ", ".join(f"{d:g}" for d in item.at_days)
            lines += wrap.wrap(f"  Follow-up: {item.what} (days {days}; {', '.join(item.refs)})")
        lines.append("")

    for warning in report.warnings:
        lines += wrap.wrap(f"Note: {warning}")
    lines.append(f"Course knowledge {report.course_knowledge_version} ({report.course_knowledge_digest}).")
    lines.append("hipdx supports a clinician's decision; it does not replace it.")
    return "\n".join(lines) + "\n"
