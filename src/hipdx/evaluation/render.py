"""The evaluation report as plain text for the terminal."""

from __future__ import annotations

from hipdx.evaluation.scoring import EvaluationReport, Metrics, Prediction, RedFlagMetrics


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _metrics_line(m: Metrics) -> str:
    return (
        f"top-1 {_pct(m.top1)}  top-3 {_pct(m.top3)}  mean rank {_num(m.mean_rank, 1)}  "
        f"Brier {_num(m.brier, 3)}  log loss {_num(m.log_loss, 2)}"
    )


def _top3(top3: list[Prediction]) -> str:
    return ", ".join(f"{p.id} {p.probability:.0%}" for p in top3) or "(not assessed)"


def red_flag_lines(m: RedFlagMetrics) -> list[str]:
    """The red-flag measures in two lines: sensitivity on must-not-miss cases, false alarms on the others."""
    per_condition = ", ".join(
        f"{c} {n.flagged}/{n.cases}" + (f" ({n.emergency} emergency)" if n.emergency else "")
        for c, n in m.by_condition.items()
        if n.cases
    )
    return [
        f"must-not-miss {m.must_not_miss_cases}: flag for it {_pct(m.flag_for_condition)}, any flag "
        f"{_pct(m.any_flag)}, urgent headline {_pct(m.urgent_headline)}" + (f" ({per_condition})" if per_condition else ""),
        f"others {m.other_cases}: emergency flag {_pct(m.other_emergency_flag)}, must-not-miss flag "
        f"{_pct(m.other_must_not_miss_flag)}; TOH {m.toh_cases}: emergency flag {_pct(m.toh_emergency_flag)}, "
        f"must-not-miss flag {_pct(m.toh_must_not_miss_flag)}",
    ]


def render_text(report: EvaluationReport) -> str:
    """A plain-text report: metrics, per-file totals, confusion table, misses, errors."""
    prov = report.provenance
    lines = [
        "hipdx literature evaluation",
        f"knowledge base {prov.knowledge_base_version} (digest {prov.knowledge_base_digest}), "
        f"hipdx {prov.hipdx_version}, assessed on {prov.assessed_on}",
        "",
        f"{report.cases} cases   {_metrics_line(report)}",
    ]
    if len(report.files) > 1:
        lines += ["", "per file:"]
        width = max(len(f.path) for f in report.files)
        lines += [f"  {f.path:<{width}}  {f.cases:>3} cases  {_metrics_line(f)}" for f in report.files]

    columns = sorted({c for row in report.confusion.values() for c in row})
    if columns:
        width = max(len(c) for c in report.confusion)
        lines += ["", "confusion (rows: true category; columns: condition ranked first):"]
        lines.append(f"  {'':<{width}}  " + "  ".join(columns))
        for category, row in report.confusion.items():
            cells = "  ".join(f"{row.get(c, 0) or '.':>{len(c)}}" for c in columns)
            lines.append(f"  {category:<{width}}  {cells}")

    lines += ["", f"misses ({len(report.misses)}): true condition not ranked first"]
    if report.misses:
        width = max(len(m.id) for m in report.misses)
        for m in report.misses:
            rank = {"unmodelled": "unmodelled", "error": "not assessed"}.get(m.status, f"rank {m.rank}")
            lines.append(
                f"  {m.id:<{width}}  {m.category or '(no category)'}: {rank}, p(true) {m.probability:.0%}; "
                f"predicted {_top3(m.top3)}"
            )
    lines += ["", "red flags (must-not-miss: " + ", ".join(report.red_flags.must_not_miss_conditions) + "):"]
    lines += [f"  {line}" for line in red_flag_lines(report.red_flags)]
    for r in report.red_flag_misses:
        raised = ", ".join(f"{f.id} ({f.urgency})" for f in r.red_flags) or "none"
        lines.append(f"  no flag for {'/'.join(r.must_not_miss)}: {r.id} ({r.category}); flags raised: {raised}")
    if report.unmodelled:
        lines += ["", "categories the knowledge base does not model (counted as misses):"]
        lines += [f"  {u}" for u in report.unmodelled]
    if report.errors:
        lines += ["", "records not assessed (counted as misses):"]
        lines += [f"  {e}" for e in report.errors]
    lines += [
        "",
        "Probabilities come from a literature-based model with many estimated numbers; "
        "these are ranking results on published case reports, not validated accuracy.",
    ]
    return "\n".join(lines) + "\n"
