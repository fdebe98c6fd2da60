"""The ``order-select`` and ``order-sign`` CDS services: checks on a draft hip imaging or drug order.

For each draft order (``context.draftOrders``; for order-select only the ``selections``)
that the order tables recognise (``fhir/data/orders.yaml``):

- an imaging ServiceRequest for the hip: pregnancy (the core's warnings on ionising radiation
  and gadolinium, :func:`hipdx.reasoning.information.burden_of_test`), contrast (what the
  knowledge base says contrast is for, and the renal function the chart gives), and which MRI
  sequences answer the question (the knowledge base's MRI test);
- a MedicationRequest for a drug of the plan: the plan's safety rules, applied by the core
  (:func:`hipdx.reasoning.plan.case_facts` and :func:`~hipdx.reasoning.plan.evaluate_option`);
  a rule that blocks the drug (a bisphosphonate in pregnancy, creatinine clearance below its
  cut-off) gives a ``critical`` card naming the fact and where it came from.

Nothing is re-implemented here: the rules, thresholds and warnings are the core's.
No card for an order with nothing to say.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hipdx.errors import Problem
from hipdx.fhir.codes import CodeTables, load_code_tables
from hipdx.fhir.mapping import FhirMapping, map_fhir
from hipdx.knowledge import KnowledgeBase
from hipdx.knowledge.treatment import OptionKind
from hipdx.reasoning import assess
from hipdx.reasoning.information import burden_of_test
from hipdx.reasoning.plan import case_facts, evaluate_option
from hipdx.report.view import fact_label
from hipdx.service.cards import OVERRIDE_REASONS, CardLinks, case_link, source, summary_text
from hipdx.service.hooks import PREFETCH, gather, parse_request
from hipdx.service.order_names import DrugNames, order_texts

ORDER_SELECT_ID = "hipdx-order-select"
ORDER_SIGN_ID = "hipdx-order-sign"
HOOKS = {ORDER_SELECT_ID: "order-select", ORDER_SIGN_ID: "order-sign"}
_DESCRIPTION = (
    "On a draft hip imaging order (ServiceRequest) or a drug of hipdx's plan (MedicationRequest): pregnancy "
    "and contrast checks, the MRI sequences that answer the question, and the plan's drug safety rules."
)
DISCOVERY = [
    {
        "hook": hook,
        "id": sid,
        "title": f"hipdx: checks on a hip imaging or drug order ({hook})",
        "description": _DESCRIPTION,
        "prefetch": PREFETCH,
        "usageRequirements": "Reads coded data only; recognises the order codes of docs/fhir.md (orders.yaml).",
    }
    for sid, hook in HOOKS.items()
]
_NAMESPACE = uuid.UUID("7d0b2a51-3c44-5f0e-9b1e-52a4c3e1d9f0")
#: the MRI sequences that answer the question, with the knowledge base's references for them
SEQUENCE_REFS = ("vandeberg1993", "acr_on2022", "acr_stress2024")


@dataclass(frozen=True)
class Order:
    label: str  # ServiceRequest/id
    kind: str  # imaging or drug
    what: str  # the knowledge base's test id or treatment option id
    shown: str  # the order's code as read
    hip: bool
    #: "code" (the order tables know the code) or "by name" (:mod:`hipdx.service.order_names`: to confirm)
    confidence: str = "code"
    #: for an order recognised by name: how (the name found, the text it was found in)
    recognised: str = ""


def _drafts(body: Any, hook: str) -> tuple[list[dict[str, Any]], list[str] | None, list[Problem]]:
    problems = []
    context = body.get("context") if isinstance(body, dict) else None
    context = context if isinstance(context, dict) else {}
    bundle = context.get("draftOrders")
    entries: list[dict[str, Any]] = []
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        problems.append(Problem("context.draftOrders", "required: a Bundle of draft orders"))
    else:
        raw = bundle.get("entry", [])
        if not isinstance(raw, list):
            problems.append(Problem("context.draftOrders.entry", "must be an array"))
            raw = []
        for i, entry in enumerate(raw):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                problems.append(Problem(f"context.draftOrders.entry[{i}].resource", "must be a FHIR resource"))
                continue
            entries.append(resource)
    selections = None
    if hook == "order-select":
        selections = context.get("selections")
        if not isinstance(selections, list) or not all(isinstance(s, str) for s in selections):
            problems.append(Problem("context.selections", "required for order-select: an array of Type/id references"))
            selections = []
        drafted = {f"{r['resourceType']}/{r.get('id')}" for r in entries}
        problems += [Problem(f"context.selections[{i}]", f"{s!r} names no order of context.draftOrders (Type/id)")
                     for i, s in enumerate(selections) if s not in drafted]
    return entries, selections, problems


def _codings(resource: dict[str, Any], element: str) -> list[tuple[str, str]]:
    concept = resource.get(element)
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return []
    return [
        (c["system"], c["code"])
        for c in concept["coding"]
        if isinstance(c, dict) and isinstance(c.get("system"), str) and isinstance(c.get("code"), str)
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _medication_concepts(resource: dict[str, Any], bundle: list[dict[str, Any]]) -> list[Any]:
    """The order's ``medicationCodeableConcept`` and the ``code`` of the Medication it references (in the bundle or contained)."""
    concepts = [resource.get("medicationCodeableConcept")]
    ref = resource.get("medicationReference")
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        target = ref["reference"].lstrip("#")
        for other in bundle + [c for c in _list(resource.get("contained")) if isinstance(c, dict)]:
            if other.get("resourceType") == "Medication" and target in (f"Medication/{other.get('id')}", other.get("id")):
                concepts.append(other.get("code"))
    return concepts


def recognise(resource: dict[str, Any], tables: CodeTables, bundle: list[dict[str, Any]], names: DrugNames) -> list[Order]:
    """The order(s) a draft resource is: by its code (:func:`classify`); a MedicationRequest whose
    code the tables do not know, by the medicine names in its text (confidence "by name")."""
    order = classify(resource, tables, bundle)
    if order is not None or resource["resourceType"] != "MedicationRequest":
        return [order] if order is not None else []
    label = f"MedicationRequest/{resource.get('id')}"
    concepts = _medication_concepts(resource, bundle)
    codes = [f"{s}|{c}" for concept in concepts for s, c in _codings({"c": concept}, "c")]
    unread = f"its code ({', '.join(codes)[:200]}) is not one hipdx reads" if codes else "it has no code"
    return [Order(label, "drug", hit.option, f"{hit.text!r}", True, "by name",
                  f"the order's text {hit.text!r} names {hit.name!r}; {unread}") for hit in names.find(order_texts(concepts))]


def classify(resource: dict[str, Any], tables: CodeTables, bundle: list[dict[str, Any]]) -> Order | None:
    """The order a draft resource is, when the order tables know its code; else None."""
    label = f"{resource.get('resourceType')}/{resource.get('id')}"
    if resource["resourceType"] == "ServiceRequest":
        for system, code in _codings(resource, "code"):
            hit = tables.imaging_orders.find(system, code)
            if hit is not None and hit.test:
                sites = [sc for concept in _list(resource.get("bodySite")) for sc in _codings({"c": concept}, "c")]
                hip = hit.hip or any(tables.hip_body_sites.find(s, c) for s, c in sites)
                return Order(label, "imaging", hit.test, f"{system}|{code} {hit.display}", hip)
    if resource["resourceType"] == "MedicationRequest":
        codes = [sc for concept in _medication_concepts(resource, bundle) for sc in _codings({"c": concept}, "c")]
        for system, code in codes:
            hit = tables.drug_orders.find(system, code)
            if hit is not None and hit.option:
                return Order(label, "drug", hit.option, f"{system}|{code} {hit.display}", True)
    return None


def order_service(
    service_id: str, body: Any, kb: KnowledgeBase, today: dt.date, allowed_servers: Sequence[str] = (), links: CardLinks | None = None
) -> dict[str, Any]:
    """The response to an order-select or order-sign request: one card per recognised order with something to say.

    Raises
    ------
    InputError
        Not a valid request of the service's hook (each problem named).
    PreconditionFailed
        Prefetch missing and not fetchable.
    IntegrationError
        Malformed FHIR in the prefetch.
    """
    hook = HOOKS[service_id]
    drafts, selections, problems = _drafts(body, hook)
    request = parse_request(body, hook, problems)
    tables = load_code_tables()
    chosen = [r for r in drafts if selections is None or f"{r.get('resourceType')}/{r.get('id')}" in selections]
    names = DrugNames.known(tables, [k for k, o in kb.treatment.treatments.options.items() if o.kind == OptionKind.drug])
    orders = [o for r in chosen for o in recognise(r, tables, drafts, names)]
    if not orders:
        return {"cards": []}
    mapping = map_fhir(gather(request, allowed_servers), today, patient_id=request.patient_id,
                       encounter_id=request.encounter_id, fhir_server=request.fhir_server)
    orders = [o for o in orders if o.hip or bool(mapping.hip_pain)]
    if not orders:
        return {"cards": []}
    assessment = assess(mapping.case, kb, today)
    probability = {d.id: d.probability for d in assessment.differential}
    flagged = {h.condition for h in assessment.red_flags}
    facts = case_facts(
        mapping.case,
        kb.treatment,
        neoplasm_probability=probability.get("neoplasm"),
        neoplasm_red_flag="neoplasm" in flagged,
        septic_probability=probability.get("septic"),
        septic_red_flag="septic" in flagged,
    )
    label = f"hipdx {assessment.provenance.hipdx_version} (knowledge base {assessment.provenance.knowledge_base_version})"
    links = links or CardLinks()
    cards = []
    for order in orders:
        made = _drug_card(order, facts, kb) if order.kind == "drug" else _imaging_card(order, facts, kb)
        if made is None:
            continue
        made["uuid"] = str(uuid.uuid5(_NAMESPACE, f"{request.hook_instance}|{order.label}|{made['summary']}"))
        made["source"] = source(label, links, assessment.headline.condition)
        if made["indicator"] != "info":
            made["overrideReasons"] = OVERRIDE_REASONS
        made_links = case_link(links, mapping.patient)
        if made_links:
            made["links"] = made_links
        cards.append(made)
    return {"cards": cards}


def _drug_card(order: Order, facts: dict[str, Any], kb: KnowledgeBase) -> dict[str, Any] | None:
    option = kb.treatment.treatments.options.get(order.what)
    if option is None:
        return None
    verdict = evaluate_option(order.what, facts, kb.treatment)
    name = option.title
    said: list[str] = []
    if order.confidence == "by name":  # never silently: the clinician confirms which drug the order is
        said = [f"**Recognised by its name, to confirm** (confidence: by name): {order.recognised}; hipdx checked it "
                f"as {option.title}.", ""]
        name = f"{name} (recognised by name)"
    if verdict.blocked_by:
        first = verdict.blocked_by[0]
        lines = [*said, f"**{name}** ({order.label}, {order.shown}) is contraindicated for this patient by hipdx's plan:", ""]
        lines += [f"- **{fact_label(f.fact, True)}** = {f.value}: {f.message} ({', '.join(f.refs)})" for f in verdict.blocked_by]
        return {
            "summary": summary_text(f"Do not give {name}: {fact_label(first.fact)} = {first.value.split(' (')[0]}"),
            "indicator": "critical",
            "detail": "\n".join(lines + _checks(verdict)),
        }
    if verdict.needs:
        missing = ", ".join(dict.fromkeys(fact_label(f.fact) for f in verdict.needs))
        lines = [*said, f"**{name}** ({order.label}): the chart does not give what its safety rules need:", ""]
        lines += [f"- **{fact_label(f.fact, True)}**: not known. {f.message} ({', '.join(f.refs)})" for f in verdict.needs]
        return {"summary": summary_text(f"{name}: check {missing} before ordering"), "indicator": "warning", "detail": "\n".join(lines + _checks(verdict))}
    if verdict.cautions:
        lines = [*said, f"**{name}** ({order.label}): cautions of hipdx's plan:", ""]
        lines += [f"- **{fact_label(f.fact, True)}** = {f.value}: {f.message} ({', '.join(f.refs)})" for f in verdict.cautions]
        return {"summary": summary_text(f"{name}: {verdict.cautions[0].message}"), "indicator": "warning", "detail": "\n".join(lines)}
    return None  # nothing to say: no card, as for an order recognised by its code (no alert to confirm a harmless match)


def _checks(verdict: Any) -> list[str]:
    if not verdict.checks:
        return []
    return ["", "Also to check: " + "; ".join(f.message for f in verdict.checks)]


def _imaging_card(order: Order, facts: dict[str, Any], kb: KnowledgeBase) -> dict[str, Any] | None:
    tests = {t.id: t for t in kb.tests_file.tests}
    test = tests.get(order.what)
    if test is None:
        return None
    pregnant = facts["pregnant"]
    _, warnings = burden_of_test(kb, test, pregnant.known and pregnant.value is True)
    warnings = [w for w in warnings if w != "invasive"]
    lines = [f"**{test.name}** ({order.label}, {order.shown})", ""]
    indicator = "info"
    if warnings:
        indicator = "warning"
        lines += [f"- **Pregnant** ({pregnant.source}): {w}." for w in warnings]
    elif (test.ionising_radiation or test.gadolinium) and not pregnant.known:
        indicator = "warning"
        lines.append(f"- **Pregnancy status not known** ({pregnant.source}): confirm it before ionising radiation or gadolinium.")
    if test.gadolinium:
        renal = facts["egfr_ml_min"]
        lines.append(f"- **Contrast:** {test.note or ''} Renal function in the chart: {renal.shown()} ({renal.source}).")
    summary = f"{test.name.split(' (')[0]}: " + ("; ".join(warnings) if warnings else "check the sequences")
    if test.modality == "mri":
        mri = tests.get("mri")
        refs = [kb.references[r] for r in SEQUENCE_REFS if r in kb.references]
        cited = "; ".join(f"{r.authors or 'ACR'} {r.year}" + (f", {r.title}" if r.title else "") for r in refs)
        lines.append(
            f"- **Sequences that answer the question:** {mri.name if mri else test.name} - coronal T1 (a low-signal "
            f"subchondral band or fracture line, marrow replacement) and coronal STIR or fat-suppressed T2/PD (the edema "
            f"and its extent, effusion), both hips in one field of view. Sources: {cited}."
        )
        if not warnings:
            summary = "Hip MRI: ask for coronal T1 and STIR (or fat-suppressed T2) of both hips"
    elif indicator == "info":
        return None
    return {"summary": summary_text(summary), "indicator": indicator, "detail": "\n".join(lines)}

