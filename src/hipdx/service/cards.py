"""An assessment as one CDS Hooks 2.0 card. Pure.

- ``summary``: the assessment's headline, under 140 characters (cut at a word, with an ellipsis).
- ``indicator``: ``critical`` only when a red flag is ``emergency`` or ``urgent``; ``warning``
  for an actionable gap: something to act on ``soon`` (a red flag, or the plan's most urgent
  section, e.g. referral of a pre-collapse osteonecrosis); ``info`` otherwise. Safety facts
  the chart lacks are listed in the detail, not raised as a warning: nearly every chart lacks
  some, and interruptive alerts are overridden 49-96 % of the time when they are frequent.
- ``detail``: GitHub-flavoured Markdown with the differential, red flags, the next test and
  what the chart did not say.
- ``source``: hipdx with its version and the knowledge base's.
"""

from __future__ import annotations

import uuid
from typing import Any

from hipdx.fhir.mapping import FhirMapping
from hipdx.reasoning.assessment import Assessment

SUMMARY_LIMIT = 140  # characters, exclusive (CDS Hooks 2.0: "<140 characters")
_NAMESPACE = uuid.UUID("3c1b3f8e-6a59-5a7d-9d1e-2f0b8c9a4e11")


def summary_text(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """``text`` on one line, shorter than ``limit`` characters, cut at a word if needed.

    >>> summary_text("URGENT: possible femoral neck stress fracture. Non-weight-bearing now.", 40)
    'URGENT: possible femoral neck stress…'
    """
    flat = " ".join(text.split())
    if len(flat) < limit:
        return flat
    cut = flat[: limit - 2]
    if " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" .,;:") + "…"


def indicator(assessment: Assessment) -> str:
    """critical, warning or info (see the module docstring)."""
    urgencies = {flag.urgency for flag in assessment.red_flags}
    if urgencies & {"emergency", "urgent"}:
        return "critical"
    if "soon" in urgencies or assessment.headline.urgency == "soon":
        return "warning"
    return "info"


def card(assessment: Assessment, mapping: FhirMapping, hook_instance: str) -> dict[str, Any]:
    """The one card for a patient-view call."""
    prov = assessment.provenance
    return {
        "uuid": str(uuid.uuid5(_NAMESPACE, f"{hook_instance}|{assessment.headline.text}")),
        "summary": summary_text(assessment.headline.text),
        "indicator": indicator(assessment),
        "detail": detail(assessment, mapping),
        "source": {
            "label": f"hipdx {prov.hipdx_version} (knowledge base {prov.knowledge_base_version})",
            "topic": {"system": "urn:hipdx:codesystem:condition", "code": assessment.headline.condition},
        },
    }


def detail(a: Assessment, mapping: FhirMapping) -> str:
    """The card's Markdown."""
    lines = [f"**{a.headline.text}**", ""]
    if a.red_flags:
        lines += ["**Red flags**", ""]
        lines += [f"- **{h.urgency.upper()}** {h.title}: {h.action}" for h in a.red_flags]
        lines.append("")
    lines += ["| Differential | Probability | Range |", "|---|---|---|"]
    lines += [f"| {d.name} | {d.probability:.0%} | {d.range[0]:.0%}–{d.range[1]:.0%} |" for d in a.differential[:5]]
    lines.append("")
    if a.next_tests:
        test = a.next_tests[0]
        lines += [f"**Next test:** {test.name}. {test.reason}"]
        lines += [f"- {w}" for w in test.warnings]
        lines.append("")
    if a.plan is not None and a.plan.needs_information:
        lines.append(
            "**Not in the chart, needed for the plan:** " + "; ".join(r.fact for r in a.plan.needs_information[:6])
        )
        lines.append("")
    missing = [m.label for m in a.explanation.missing_that_matter[:4]]
    if missing:
        lines += ["**Findings that would change the ranking:** " + "; ".join(missing), ""]
    left_out = [u for u in mapping.unmapped if not u.reason.endswith("is not read by hipdx")]
    lines.append(
        f"Read {len(mapping.sources)} facts from the chart; {len(left_out)} coded items were not used (see hipdx fhir map)."
    )
    lines += ["", a.uncertainty, "", f"_{a.disclaimer}_"]
    return "\n".join(lines)
