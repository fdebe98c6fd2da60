"""An :class:`~hipdx.reasoning.Assessment` as FHIR R4: RiskAssessment, ClinicalImpression, Provenance.

One ``collection`` Bundle holds:

- a **RiskAssessment**: one prediction per condition, most probable first, with the point
  probability as ``probabilityDecimal``, the 5th-95th percentile range as a ``Range`` in the
  extension :data:`RANGE_EXTENSION` (R4 allows one ``probability[x]``, so the range cannot
  sit beside the decimal) and in words in ``rationale``; the outcome coded with hipdx's
  condition code and a SNOMED CT code where the tables hold one;
- a **ClinicalImpression** carrying the headline (``description``), the uncertainty
  (``summary``), each red flag as a ``finding`` coded by its condition, and the explanation,
  next tests, staging and plan as Markdown ``note``s;
- a **Device** naming hipdx, its version, the knowledge base's version and digest, and the
  code tables' digest;
- a **Provenance** targeting both, with the Device as author and, when the assessment came
  from FHIR, every resource the case was read from as a ``source`` entity.

Pure: the caller gives the time of recording; identifiers are UUIDs derived from the
content, so the same assessment recorded at the same instant gives the same Bundle.
"""

from __future__ import annotations

import datetime as dt
import html
import uuid
from typing import Any

from hipdx.fhir.codes import CodeTables, load_code_tables
from hipdx.fhir.mapping import FhirMapping
from hipdx.reasoning.assessment import Assessment, DifferentialItem, RedFlagHit

#: extension holding a prediction's 5th-95th percentile range (hipdx's own; no HL7 extension fits)
RANGE_EXTENSION = "urn:hipdx:fhir:StructureDefinition:probability-range"
#: extension holding the headline's urgency on the ClinicalImpression
URGENCY_EXTENSION = "urn:hipdx:fhir:StructureDefinition:urgency"
_NAMESPACE = uuid.UUID("7d7e0bb6-2d4b-5b36-9a56-4f1d3c1a8e21")
_UCUM = "http://unitsofmeasure.org"


def assessment_bundle(
    assessment: Assessment,
    *,
    recorded: dt.datetime,
    subject: str | None = None,
    mapping: FhirMapping | None = None,
    management_text: tuple[str, str] | None = None,
    tables: CodeTables | None = None,
) -> dict[str, Any]:
    """The assessment as a FHIR R4 ``collection`` Bundle (a JSON-ready dict).

    Parameters
    ----------
    assessment
        What :func:`hipdx.assess` returned.
    recorded
        When the assessment is recorded (timezone-aware); Provenance.recorded and the
        ClinicalImpression's date.
    subject
        The patient reference (``Patient/123``); default: the mapping's patient, else the
        case id as a display-only reference.
    mapping
        The FHIR mapping the case came from: its resources become Provenance sources.
    management_text
        (staging, plan) as Markdown, when the caller has rendered them; else they are summarised.
    tables
        The code tables (default: the bundled ones).

    Raises
    ------
    ValueError
        ``recorded`` has no timezone (a FHIR instant needs one).
    """
    if recorded.tzinfo is None:
        raise ValueError("recorded must be timezone-aware (a FHIR instant carries its offset)")
    t = tables or load_code_tables()
    prov = assessment.provenance
    seed = f"{assessment.case_id}|{prov.knowledge_base_digest}|{recorded.isoformat()}|{assessment.headline.text}"
    ids = {
        kind: str(uuid.uuid5(_NAMESPACE, f"{seed}|{kind}"))
        for kind in ("risk", "impression", "device", "provenance", "bundle")
    }
    url = {kind: f"urn:uuid:{value}" for kind, value in ids.items()}
    subject_ref = _subject(subject, mapping, assessment)
    when = (mapping.assessed_on if mapping else None) or recorded.date()

    device = _device(ids["device"], assessment, t)
    risk = _risk_assessment(ids["risk"], url["device"], assessment, t, subject_ref, when, mapping)
    impression = _clinical_impression(ids["impression"], url["risk"], assessment, t, subject_ref, when, recorded, management_text)
    provenance = _provenance(ids["provenance"], url, assessment, recorded, mapping)
    return {
        "resourceType": "Bundle",
        "id": ids["bundle"],
        "type": "collection",
        "timestamp": recorded.isoformat(),
        "entry": [
            {"fullUrl": url[k], "resource": r}
            for k, r in (("risk", risk), ("impression", impression), ("device", device), ("provenance", provenance))
        ],
    }


def _device(device_id: str, assessment: Assessment, t: CodeTables) -> dict[str, Any]:
    """hipdx as a Device: its version, the knowledge base's version and digest, the code tables' digest."""
    prov = assessment.provenance
    return {
        "resourceType": "Device",
        "id": device_id,
        "deviceName": [{"name": "hipdx", "type": "manufacturer-name"}],
        "version": [
            {"type": {"text": "software"}, "value": prov.hipdx_version},
            {"type": {"text": "knowledge base"}, "value": f"{prov.knowledge_base} {prov.knowledge_base_version}"},
            {"type": {"text": "knowledge-base digest"}, "value": prov.knowledge_base_digest},
            {"type": {"text": "FHIR code-tables digest"}, "value": t.digest},
        ],
        "note": [{"text": "hipdx supports a clinician's decision; it does not replace it."}],
    }


def _risk_assessment(
    risk_id: str,
    device_url: str,
    assessment: Assessment,
    t: CodeTables,
    subject_ref: dict[str, str],
    when: dt.date,
    mapping: FhirMapping | None,
) -> dict[str, Any]:
    """The differential as a RiskAssessment, one prediction per condition, based on the case's sources."""
    prov = assessment.provenance
    risk = {
        "resourceType": "RiskAssessment",
        "id": risk_id,
        "text": _narrative(
            f"Differential diagnosis of atraumatic hip pain with bone marrow edema (hipdx {prov.hipdx_version}): "
            + "; ".join(
                f"{d.name} {d.probability:.0%} (range {d.range[0]:.0%}-{d.range[1]:.0%})"
                for d in assessment.differential
            )
        ),
        "status": "final",
        "method": {
            "text": f"hipdx Bayesian differential, knowledge base {prov.knowledge_base} {prov.knowledge_base_version} ({prov.knowledge_base_digest})"
        },
        "code": {"text": "Differential diagnosis of atraumatic hip pain with bone marrow edema"},
        "subject": subject_ref,
        "occurrenceDateTime": when.isoformat(),
        "performer": {"reference": device_url},
        "prediction": [_prediction(item, t) for item in assessment.differential],
        "note": [{"text": assessment.uncertainty}, {"text": assessment.disclaimer}],
    }
    if mapping is not None:
        risk["basis"] = [{"reference": ref} for ref in _source_resources(mapping)][:100]
    return risk


def _clinical_impression(
    impression_id: str,
    risk_url: str,
    assessment: Assessment,
    t: CodeTables,
    subject_ref: dict[str, str],
    when: dt.date,
    recorded: dt.datetime,
    management_text: tuple[str, str] | None,
) -> dict[str, Any]:
    """The headline, the uncertainty, the red flags as findings and the rest as Markdown notes."""
    impression = {
        "resourceType": "ClinicalImpression",
        "id": impression_id,
        "extension": [{"url": URGENCY_EXTENSION, "valueCode": assessment.headline.urgency}],
        "text": _narrative(assessment.headline.text),
        "status": "completed",
        "description": assessment.headline.text,
        "subject": subject_ref,
        "effectiveDateTime": when.isoformat(),
        "date": recorded.isoformat(),
        "summary": assessment.uncertainty,
        "finding": [_finding(hit, t) for hit in assessment.red_flags],
        "supportingInfo": [{"reference": risk_url, "display": "hipdx differential (RiskAssessment)"}],
        "note": [{"text": text} for text in _notes(assessment, management_text) if text],
    }
    # no assessor: it must be a Practitioner; the author, a Device, is named in the Provenance
    if not impression["finding"]:
        del impression["finding"]
    return impression


def _provenance(
    provenance_id: str, url: dict[str, str], assessment: Assessment, recorded: dt.datetime, mapping: FhirMapping | None
) -> dict[str, Any]:
    """Who made the RiskAssessment and the ClinicalImpression (hipdx's Device), when, and from which resources."""
    prov = assessment.provenance
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": provenance_id,
        "target": [{"reference": url["risk"]}, {"reference": url["impression"]}],
        "recorded": recorded.isoformat(),
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                    "display": "create",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                            "display": "Assembler",
                        }
                    ]
                },
                "who": {
                    "reference": url["device"],
                    "display": f"hipdx {prov.hipdx_version}, knowledge base {prov.knowledge_base_version} ({prov.knowledge_base_digest})",
                },
            }
        ],
    }
    if mapping is not None:
        provenance["entity"] = [{"role": "source", "what": {"reference": ref}} for ref in _source_resources(mapping)]
    return provenance


def _subject(subject: str | None, mapping: FhirMapping | None, assessment: Assessment) -> dict[str, str]:
    if subject:
        return {"reference": subject}
    if mapping is not None and "/" in mapping.patient:
        return {"reference": mapping.patient}
    return {"display": f"case {assessment.case_id}" if assessment.case_id else "the assessed patient"}


def _source_resources(mapping: FhirMapping) -> list[str]:
    """Every resource the case was read from, once, as a reference."""
    return list(
        dict.fromkeys(s.resource for s in mapping.sources if "/" in s.resource or s.resource.startswith("urn:"))
    )


def _codes(condition: str, t: CodeTables) -> list[dict[str, str]]:
    return [t.coding(code) for code in t.condition_codes.get(condition, [])]


def _prediction(item: DifferentialItem, t: CodeTables) -> dict[str, Any]:
    low, high = item.range
    rationale = (
        f"{item.probability:.1%}; 5th-95th percentile {low:.1%}-{high:.1%} when every number of the knowledge base is "
        f"sampled from its uncertainty; prior {item.prior:.1%}, prior for this patient {item.patient_prior:.1%}"
        + ("; must not be missed" if item.must_not_miss else "")
    )
    return {
        "extension": [
            {
                "url": RANGE_EXTENSION,
                "valueRange": {
                    "low": {"value": low, "system": _UCUM, "code": "1"},
                    "high": {"value": high, "system": _UCUM, "code": "1"},
                },
            }
        ],
        "outcome": {"coding": _codes(item.id, t), "text": item.name},
        "probabilityDecimal": item.probability,
        "rationale": rationale,
    }


def _finding(hit: RedFlagHit, t: CodeTables) -> dict[str, Any]:
    return {
        "itemCodeableConcept": {"coding": _codes(hit.condition, t), "text": f"RED FLAG [{hit.urgency}]: {hit.title}"},
        "basis": f"{hit.action} Triggered by: {' | or: '.join(hit.met_by or hit.triggered_by) or hit.kind}. Sources: {', '.join(hit.refs) or '-'}.",
    }


def _notes(a: Assessment, management_text: tuple[str, str] | None) -> list[str]:
    lines = ["## Differential", "", "| condition | probability | range |", "|---|---|---|"]
    lines += [f"| {d.name} | {d.probability:.0%} | {d.range[0]:.0%}-{d.range[1]:.0%} |" for d in a.differential]
    differential = "\n".join(lines)
    explanation = ["## Explanation"]
    for cond in a.explanation.leading:
        explanation.append(
            f"\n**{cond.name}** ({cond.probability:.0%}; prior {cond.prior:.0%}, for this patient {cond.patient_prior:.0%})"
        )
        strongest = sorted([*cond.patient_factors, *cond.findings], key=lambda c: -abs(c.log10_lr))
        for c in strongest[:8]:
            explanation.append(
                f"- {c.label} = {c.observed}: likelihood ratio {c.likelihood_ratio:g} ({c.direction}; {c.basis})"
            )
    if a.explanation.missing_that_matter:
        explanation.append(
            "\nMissing findings that matter: "
            + "; ".join(f"{m.label} ({', '.join(m.obtained_by) or '-'})" for m in a.explanation.missing_that_matter)
        )
    flags = ["## Red flags"] + ([f"- [{h.urgency}] {h.title}: {h.action}" for h in a.red_flags] or ["None."])
    tests = ["## Next tests"] + (
        [
            f"- {n.name}: {n.reason}" + (f" Warnings: {'; '.join(n.warnings)}" if n.warnings else "")
            for n in a.next_tests
        ]
        or ["None proposed."]
    )
    if management_text is not None:
        staging, plan = management_text
    else:
        staging = _staging_summary(a)
        plan = _plan_summary(a)
    warnings = ["## Warnings"] + [f"- {w}" for w in a.warnings] if a.warnings else []
    return [
        differential,
        "\n".join(flags),
        "\n".join(explanation),
        "\n".join(tests),
        staging,
        plan,
        "\n".join(warnings),
        a.disclaimer,
    ]


def _staging_summary(a: Assessment) -> str:
    if a.staging is None:
        return ""
    s = a.staging
    lines = ["## Staging"]
    lines += [f"- {r.name}: {r.stage or r.status.value.replace('_', ' ')}" for r in s.osteonecrosis]
    lines.append(f"- TOH phase (estimate): {s.toh_phase.phase}")
    lines.append(
        f"- Subchondral band: {s.subchondral_band.verdict.value.replace('_', ' ')} - {s.subchondral_band.summary}"
    )
    lines.append(f"- Femoral neck fracture: {s.femoral_neck_fracture.label}")
    return "\n".join(lines)


def _plan_summary(a: Assessment) -> str:
    if a.plan is None:
        return ""
    lines = ["## Plan"]
    for section in a.plan.sections:
        lines.append(f"\n**{section.title}** [{section.urgency}]: {section.summary}")
        lines += [
            f"- {item.title} ({item.status.value.replace('_', ' ')}; {item.evidence.replace('_', ' ')})"
            for item in section.items
        ]
    return "\n".join(lines)


def _narrative(text: str) -> dict[str, str]:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{html.escape(text)}</p></div>'}
