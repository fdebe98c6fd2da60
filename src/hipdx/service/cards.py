"""An assessment as one CDS Hooks 2.0 card. Pure.

- ``summary``: the assessment's headline, under 140 characters (cut at a word, with an ellipsis).
- ``indicator``: ``critical`` only when a red flag is ``emergency`` or ``urgent``; ``warning``
  for an actionable gap: something to act on ``soon`` (a red flag, or the plan's most urgent
  section, e.g. referral of a pre-collapse osteonecrosis); ``info`` otherwise. Safety facts
  the chart lacks are listed in the detail, not raised as a warning: nearly every chart lacks
  some, and interruptive alerts are overridden 49-96 % of the time when they are frequent.
- ``detail``: GitHub-flavoured Markdown with where the patient is seen (read from the
  encounter, or the clinic assumed and why: the septic flag's urgency depends on it), the
  differential, red flags, the next test and what the chart did not say.
- ``source``: hipdx with its version and the knowledge base's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hipdx.fhir.codes import load_code_tables
from hipdx.fhir.mapping import FhirMapping
from hipdx.reasoning.assessment import Assessment
from hipdx.report.view import fact_label

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


#: why a clinician overrides a card (CDS Hooks 2.0 ``overrideReasons``: each Coding has a display)
OVERRIDE_SYSTEM = "urn:hipdx:codesystem:override-reason"
OVERRIDE_REASONS = [
    {"system": OVERRIDE_SYSTEM, "code": "already-addressed", "display": "Already addressed"},
    {"system": OVERRIDE_SYSTEM, "code": "not-applicable", "display": "Does not apply to this patient"},
    {"system": OVERRIDE_SYSTEM, "code": "benefit-outweighs-risk", "display": "Clinical judgement: the benefit outweighs the risk"},
    {"system": OVERRIDE_SYSTEM, "code": "patient-declined", "display": "Patient declined"},
]


@dataclass(frozen=True)
class CardLinks:
    """Absolute URLs the cards point to, from the service's configuration.

    knowledge_base
        The knowledge base the card rests on (``source.url``).
    case
        Opens the patient's case in hipdx (a card link of type ``absolute``); ``{patient}``
        is replaced by the patient's id. None: no link (the web app is not configured).
    """

    knowledge_base: str | None = None
    case: str | None = None


def source(label: str, links: CardLinks, topic: str) -> dict[str, Any]:
    out: dict[str, Any] = {"label": label}
    if links.knowledge_base:
        out["url"] = links.knowledge_base
    out["topic"] = {"system": "urn:hipdx:codesystem:condition", "code": topic}
    return out


def case_link(links: CardLinks, patient_reference: str) -> list[dict[str, Any]]:
    """The link that opens the case in hipdx, when configured."""
    if not links.case:
        return []
    patient = patient_reference.rsplit("/", 1)[-1]
    return [{"label": "Open the case in hipdx", "url": links.case.replace("{patient}", quote(patient, safe="")), "type": "absolute"}]


def next_test_suggestion(assessment: Assessment, patient_reference: str, hook_instance: str) -> list[dict[str, Any]]:
    """The next test as a draft ServiceRequest to create (coded where the order tables hold a code)."""
    if not assessment.next_tests:
        return []
    test = assessment.next_tests[0]
    tables = load_code_tables()
    code = tables.suggestion_codes.get(test.id)
    concept: dict[str, Any] = {"text": test.name}
    if code is not None:
        concept["coding"] = [tables.coding(code)]
    request = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": patient_reference},
        "code": concept,
        "reasonCode": [{"text": summary_text(f"hipdx: {test.reason}", 250)}],
    }
    return [
        {
            "label": summary_text(f"Order: {test.name}", 140),
            "uuid": str(uuid.uuid5(_NAMESPACE, f"{hook_instance}|suggest|{test.id}")),
            "isRecommended": True,
            "actions": [{"type": "create", "description": f"Create a draft order: {test.name}", "resource": request}],
        }
    ]


def card(assessment: Assessment, mapping: FhirMapping, hook_instance: str, links: CardLinks | None = None) -> dict[str, Any]:
    """The one card for a patient-view call."""
    links = links or CardLinks()
    prov = assessment.provenance
    level = indicator(assessment)
    out: dict[str, Any] = {
        "uuid": str(uuid.uuid5(_NAMESPACE, f"{hook_instance}|{assessment.headline.text}")),
        "summary": summary_text(assessment.headline.text),
        "indicator": level,
        "detail": detail(assessment, mapping),
        "source": source(f"hipdx {prov.hipdx_version} (knowledge base {prov.knowledge_base_version})", links, assessment.headline.condition),
    }
    suggestions = next_test_suggestion(assessment, mapping.patient, hook_instance)
    if suggestions:
        out["suggestions"] = suggestions
        out["selectionBehavior"] = "at-most-one"
    if level != "info":
        out["overrideReasons"] = OVERRIDE_REASONS
    found_links = case_link(links, mapping.patient)
    if found_links:
        out["links"] = found_links
    return out


def setting_line(mapping: FhirMapping) -> str:
    """Where the patient is seen, as read from the encounter or as assumed: the red flags' urgency depends on it."""
    where = mapping.case.setting.value.replace("_", " ")
    read = next((s for s in mapping.sources if s.field == "setting"), None)
    if read is not None:
        return f"**Seen in:** {where} ({read.resource}, class {read.value.split('|', 1)[-1]})."
    assumed = next((a for a in mapping.assumed if a.field == "setting"), None)
    reason = assumed.reason if assumed is not None else "no encounter read"
    return f"**Seen in: {where} (assumed).** {reason}."


def detail(a: Assessment, mapping: FhirMapping) -> str:
    """The card's Markdown."""
    lines = [f"**{a.headline.text}**", "", setting_line(mapping), ""]
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
            "**Not in the chart, needed for the plan:** " + "; ".join(fact_label(r.fact) for r in a.plan.needs_information[:6])
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
