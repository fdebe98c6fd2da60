"""Plain-text and Markdown renderings of the staging and the management plan."""

from __future__ import annotations

from hipdx.reasoning.plan import ItemStatus, Plan
from hipdx.reasoning.staging import StageInput, StageStatus, Staging
from hipdx.report.markup import escape_html


def format_staging(staging: Staging, *, title: bool = True) -> str:
    """The staging as plain text: each result, what decided it and what is missing.

    ``title=False`` leaves out the first line (``Staging - case``), for a report that gives
    the section its own heading.
    """

    def inputs(items: list[StageInput]) -> str:
        return "; ".join(str(i) for i in items) or "-"

    lines = ["Staging" + (f" - {staging.case_id}" if staging.case_id else ""), ""] if title else []
    if staging.scope is not None:
        lines.append(f"Staged for: {', '.join(staging.scope.conditions)} (the conditions the differential supports)")
        lines += [f"  {note}" for note in staging.scope.not_staged]
        lines.append("")
    for r in staging.osteonecrosis:
        stage = {StageStatus.at_least: f"at least {r.stage}", StageStatus.staged: r.stage}.get(r.status, r.status.value.replace("_", " "))
        lines.append(f"{r.name}: {stage}" + (f" - {r.definition}" if r.definition else ""))
        lines.append(f"  decided by: {inputs(r.decided_by)}")
        if r.missing:
            lines.append(f"  missing: {', '.join(r.missing)}")
        lines += [f"  note: {n}" for n in r.notes]
        lines.append(f"  source: {', '.join(r.refs)}")
    p = staging.toh_phase
    lines += ["", f"TOH phase (estimate): {p.phase}" + (" - beyond the expected course" if p.beyond_expected_course else "")]
    lines.append(f"  decided by: {inputs(p.decided_by)}")
    if p.missing:
        lines.append(f"  missing: {', '.join(p.missing)}")
    pat = staging.pattern
    lines.append(
        f"Pattern: bilateral {pat.bilateral.value}; migratory {pat.migratory.value}"
        + ("; regional migratory osteoporosis pattern" if pat.regional_migratory_osteoporosis_pattern else "")
    )
    lines += [f"  note: {n}" for n in pat.notes]
    b = staging.subchondral_band
    lines += ["", f"Subchondral band: {b.verdict.value.replace('_', ' ')} - {b.summary}", f"  source: {', '.join(b.refs)}"]
    f = staging.femoral_neck_fracture
    lines.append(f"Femoral neck fracture: {f.label}" + (f" [{f.urgency}] {f.action}" if f.urgency else ""))
    if f.missing:
        lines.append(f"  missing: {', '.join(f.missing)}")
    prov = staging.provenance
    lines += ["", " ".join(prov.caveat.split()), f"hipdx {prov.hipdx_version}, staging data {prov.staging_data_version} ({prov.knowledge_digest})"]
    return "\n".join(lines)


_STATUS_LABEL = {
    ItemStatus.recommended: "recommended",
    ItemStatus.caution: "recommended, with caution",
    ItemStatus.needs_information: "NEEDS INFORMATION",
    ItemStatus.blocked: "BLOCKED",
    ItemStatus.deferred: "DEFERRED (a safer instruction governs)",
}


def format_plan(plan: Plan, markdown: bool = False, *, heading_level: int = 1, title: bool = True,
                caveat: str | None = None) -> str:
    """The plan as plain text or Markdown: sections, items with status, evidence and sources.

    Parameters
    ----------
    plan
        The plan.
    markdown
        Markdown instead of plain text.
    heading_level
        In Markdown, the level of the plan's title (its sections one below).
    title
        Give the title line (``Management plan - case``); a report with its own heading leaves it out.
    caveat
        The plan's caveat as shown instead of ``plan.disclaimer`` (a report that gives the
        decision-support statement once passes the disclaimer without it).
    """
    h1, h2, bullet = ("#" * heading_level + " ", "#" * (heading_level + 1) + " ", "- ") if markdown else ("", "", "  - ")
    case_id = (escape_html(plan.case_id) if markdown else plan.case_id) if plan.case_id else ""
    lines = [f"{h1}Management plan" + (f" - {case_id}" if case_id else ""), ""] if title else []
    lines += [plan.disclaimer if caveat is None else caveat, ""]
    if plan.scope:
        lines += [f"{'**' if markdown else ''}{plan.scope}{'**' if markdown else ''}", ""]
    for note in plan.governing:
        lines.append(f"{bullet}{note}")
    if plan.governing:
        lines.append("")
    for section in plan.sections:
        lines.append(f"{h2}{section.title} [{section.urgency}]")
        lines.append(section.reason + " " + section.summary)
        for item in section.items:
            tag = "option" if item.role == "option" else "core"
            lines.append(
                f"{item.order}. {item.title} - {_STATUS_LABEL[item.status]} ({tag}; evidence: {item.evidence.replace('_', ' ')}"
                + ("; off-label" if item.off_label else "")
                + f"; sources: {', '.join(item.refs) or 'none (estimate)'})"
            )
            lines.append(f"{bullet}{item.regimen}")
            if item.context:
                lines.append(f"{bullet}Why: {item.context}")
            for finding in item.blocked_by:
                lines.append(f"{bullet}Blocked by {finding.fact} = {finding.value}: {finding.message} [{', '.join(finding.refs) or 'no source: estimate'}]")
            for finding in item.needs_information if item.status is not ItemStatus.blocked else []:
                lines.append(f"{bullet}Needs {finding.fact} (not known) for: {finding.message}")
            for finding in item.cautions:
                lines.append(f"{bullet}Caution ({finding.fact} = {finding.value}): {finding.message}")
        lines.append("")
    if plan.needs_information:
        lines.append(f"{h2}Information needed")
        for request in plan.needs_information:
            kind = "before these options" if request.blocking else "check before use"
            lines.append(f"{bullet}{request.fact}: {request.how} ({kind}: {'; '.join(request.needed_for)})")
        lines.append("")
    lines.append(f"{h2}Renal function")
    lines.append(plan.renal_function.note or "Not needed.")
    lines.append("")
    prov = plan.provenance
    lines.append(f"hipdx {prov.hipdx_version}, treatment knowledge {prov.treatment_knowledge_version} ({prov.knowledge_digest})")
    return "\n".join(lines)
