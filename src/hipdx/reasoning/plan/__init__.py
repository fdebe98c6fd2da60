"""A cited management plan with safety checks, for the leading diagnosis and for the
must-not-miss conditions still to be excluded. Pure: no I/O, no clock.

The plan is built from ``treatments.yaml`` (options and the ordered plan of each
condition), the case's staging (:mod:`hipdx.reasoning.staging`: fracture grade, ARCO
stage, subchondral band) and ``safety.yaml`` (rules evaluated on facts of the case).

The facts of the case the rules test, and the renal function, are in :mod:`.facts`; how
the safety rules judge an option on them is in :mod:`.safety`: a rule never assumes a
missing fact is normal, and an option that needs one is never recommended.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from collections.abc import Mapping, Sequence

from pydantic import Field, TypeAdapter

from hipdx._version import __version__
from hipdx.case import Case
from hipdx.case.timeline import Timeline
from hipdx.errors import InputError, Problem
from hipdx.knowledge.treatment import FACTS, TreatmentKnowledge
from hipdx.reasoning.frozen import Frozen, OutputProvenance
from hipdx.reasoning.plan.facts import (
    CREATININE_UMOL_PER_MG_DL,
    Fact,
    RenalFunction,
    case_facts,
    cockcroft_gault,
    constant_facts,
    renal_function,
)
from hipdx.reasoning.plan.safety import ItemStatus, SafetyFinding, Verdict, evaluate_option, fold_text
from hipdx.reasoning.staging import BandVerdict, Staging, StageStatus, fracture_flag_urgency, stage_case


_URGENCY_RANK = {"emergency": 0, "urgent": 1, "soon": 2, "routine": 3}
# --- the plan -------------------------------------------------------------------------------------


class PlanItem(Frozen):
    order: int
    option: str
    kind: str
    role: str = Field(description="core (part of the plan) or option (one of several choices)")
    choice_group: str | None = None
    title: str
    regimen: str
    status: ItemStatus
    evidence: str = Field(description="randomised_trial, case_series, guideline, label or expert_opinion")
    basis: str = Field(description="reported (as published), transferred (from another population) or estimate (a judgement of hipdx)")
    off_label: bool
    refs: list[str]
    note: str | None = None
    context: str | None = Field(default=None, description="why this item, from the staging of the case")
    blocked_by: list[SafetyFinding] = []
    cautions: list[SafetyFinding] = []
    needs_information: list[SafetyFinding] = Field(default=[], description="safety checks whose fact is not known")
    checks_before_use: list[SafetyFinding] = Field(default=[], description="cautions whose fact is not known")

    @property
    def recommended(self) -> bool:
        return self.status in (ItemStatus.recommended, ItemStatus.caution)


class PlanSection(Frozen):
    condition: str
    title: str
    role: str = Field(description="leading or exclude")
    reason: str
    probability: float | None
    urgency: str
    summary: str
    refs: list[str]
    items: list[PlanItem]


class InformationRequest(Frozen):
    fact: str
    how: str
    blocking: bool = Field(description="True: options wait for it; False: a check before use")
    needed_for: list[str]


class FactOut(Frozen):
    name: str
    value: str
    source: str
    inputs: list[str]


class PlanProvenance(OutputProvenance):
    treatment_knowledge_version: str
    knowledge_digest: str
    assessed_on: dt.date | None
    days_since_onset: float | None
    must_not_miss_threshold: float
    differential: list[tuple[str, float]]
    red_flag_conditions: list[str]
    inputs_used: list[str]
    facts: list[FactOut]


class Plan(Frozen):
    case_id: str | None
    disclaimer: str
    sections: list[PlanSection] = Field(
        description="most urgent first; among equals the section whose weight-bearing instruction governs, then the leading diagnosis"
    )
    scope: str | None = Field(default=None, description="why the plan recommends no medicine: the patient is outside the knowledge base's scope")
    governing: list[str] = Field(default=[], description="where one section's safer instruction governs another's (weight-bearing)")
    needs_information: list[InformationRequest]
    renal_function: RenalFunction
    choice_groups: dict[str, str] = Field(description="group -> how to choose among its options")
    staging: Staging
    provenance: PlanProvenance

    def items(self) -> list[PlanItem]:
        return [item for section in self.sections for item in section.items]

    def recommended(self) -> list[PlanItem]:
        return [item for item in self.items() if item.recommended]


def _fracture_option(staging: Staging) -> tuple[str, str] | None:
    fracture = staging.femoral_neck_fracture
    if fracture.grade in ("not_reported", "none"):
        return None
    option = {
        "displaced": "fnsf_displaced",
        "tension": "fnsf_tension",
        "compression_wide": "fnsf_compression_wide",
        "compression_narrow": "fnsf_compression_narrow",
    }.get(fracture.grade, "fnsf_unmeasured")
    decided = "; ".join(str(i) for i in fracture.decided_by)
    return option, f"{fracture.label} ({decided})."


def _on_referral(staging: Staging) -> tuple[str, str] | None:
    arco = staging.system("arco_2019")
    if arco.stage is None:
        return None
    option = {"I": "refer_on_precollapse", "II": "refer_on_precollapse", "IIIA": "refer_on_pericollapse", "III": "refer_on_pericollapse"}.get(
        arco.stage, "refer_on_collapse"
    )
    prefix = "at least " if arco.status is StageStatus.at_least else ""
    return option, f"ARCO 2019 stage {prefix}{arco.stage} ({'; '.join(str(i) for i in arco.decided_by)})."


def _needs_ct(staging: Staging) -> bool:
    arco = staging.system("arco_2019")
    return arco.stage == "III" or any("collapse" in m for m in arco.missing) or any("MRI only" in n for n in arco.notes)


def _irreversible(staging: Staging) -> str | None:
    band = staging.subchondral_band
    if band.verdict is BandVerdict.irreversible_suggestive or band.other_irreversible_signs:
        return band.summary
    return None


def _section_items(
    condition: str,
    knowledge: TreatmentKnowledge,
    staging: Staging,
    facts: dict[str, Fact],
    found: dict[str, SafetyFinding] | None = None,
) -> tuple[list[PlanItem], str | None]:
    """The ordered items of one condition's plan, with stage-specific substitutions.

    Outside the knowledge base's scope (a child) the plan opens with the referral; its
    medicines are blocked by the scope rule of ``safety.yaml``.
    """
    plan = knowledge.treatments.plans[condition]
    chosen: list[tuple[str, str | None]] = []
    outside = facts["outside_scope"]
    if outside.known and outside.value is True:
        chosen.append(("refer_outside_scope", f"Outside hipdx's scope: {outside.source}."))
    urgency = None
    for option in plan.items:
        context = None
        if option == "fnsf_pathway":
            graded = _fracture_option(staging)
            if graded is not None:
                option, context = graded
                urgency = staging.femoral_neck_fracture.urgency
        elif option == "refer_on":
            staged = _on_referral(staging)
            if staged is not None:
                option, context = staged
        elif option == "ct_pericollapse" and not _needs_ct(staging):
            continue
        chosen.append((option, context))
        if option.startswith("protected_weight_bearing") and condition in ("toh", "rmo", "sif"):
            irreversible = _irreversible(staging)
            if irreversible is not None:
                chosen.append(("refer_irreversible_pattern", irreversible))
    items = _ITEMS.validate_python([_item(i + 1, option, context, facts, knowledge, found) for i, (option, context) in enumerate(chosen)])
    return items, urgency


def _option_fields(knowledge: TreatmentKnowledge) -> dict[str, dict[str, object]]:
    """Option -> the fields of its plan item that do not depend on the case (built once per knowledge)."""
    return {
        key: {
            "option": key,
            "kind": option.kind.value,
            "role": option.role,
            "choice_group": option.choice_group,
            "title": option.title,
            "regimen": fold_text(option.regimen) or "",
            "evidence": option.evidence.value,
            "basis": option.basis.value,
            "off_label": option.off_label,
            "refs": option.refs,
            "note": fold_text(option.note),
        }
        for key, option in knowledge.treatments.options.items()
    }


@dataclass(frozen=True)
class _Texts:
    """The plan's texts that do not depend on the case, folded once per knowledge."""

    disclaimer: str
    choice_groups: dict[str, str]
    summaries: dict[str, str]  # condition -> its plan's summary


def _texts(knowledge: TreatmentKnowledge) -> _Texts:
    treatments = knowledge.treatments
    return _Texts(
        disclaimer=" ".join(treatments.disclaimer.split()),
        choice_groups={k: f"{g.title}: {' '.join(g.note.split())}" for k, g in treatments.choice_groups.items()},
        summaries={cid: " ".join(spec.summary.split()) for cid, spec in treatments.plans.items()},
    )


def _item(
    order: int,
    key: str,
    context: str | None,
    facts: dict[str, Fact],
    knowledge: TreatmentKnowledge,
    found: dict[str, SafetyFinding] | None = None,
) -> dict[str, object]:
    """One plan item, as the data :data:`_ITEMS` validates."""
    verdict = evaluate_option(key, facts, knowledge, found)
    return {
        "order": order,
        **knowledge.attached(_option_fields)[key],
        "status": verdict.status,
        "context": context,
        "blocked_by": verdict.blocked_by,
        "cautions": verdict.cautions,
        "needs_information": verdict.needs,
        "checks_before_use": verdict.checks,
    }


#: validates the items of a section in one call (a model each is slower)
_ITEMS = TypeAdapter(list[PlanItem])


_REQUESTS = TypeAdapter(list[InformationRequest])


def _requests(sections: list[PlanSection]) -> list[InformationRequest]:
    """What the plan asks for: facts that hold options back, then checks before use."""
    blocking: dict[str, list[str]] = {}
    checks: dict[str, list[str]] = {}
    for section in sections:
        for item in section.items:
            if item.status is ItemStatus.blocked:
                continue
            for finding in item.needs_information:
                blocking.setdefault(finding.fact, [])
                if item.title not in blocking[finding.fact]:
                    blocking[finding.fact].append(item.title)
            for finding in item.checks_before_use:
                checks.setdefault(finding.fact, [])
                if item.title not in checks[finding.fact]:
                    checks[finding.fact].append(item.title)
    out = [{"fact": f, "how": FACTS[f][1], "blocking": True, "needed_for": v} for f, v in blocking.items()]
    out += [{"fact": f, "how": FACTS[f][1], "blocking": False, "needed_for": v} for f, v in checks.items() if f not in blocking]
    return _REQUESTS.validate_python(out)  # one validation of all: far cheaper than a model each


def _most_urgent(*urgencies: str) -> str:
    return min(urgencies, key=_URGENCY_RANK.__getitem__)


#: weight-bearing instructions, safest first
_WEIGHT_BEARING_RANK = {"none": 0, "protected": 1}


def _govern_weight_bearing(sections: list[PlanSection], knowledge: TreatmentKnowledge) -> tuple[list[PlanSection], list[str]]:
    """One weight-bearing instruction for the patient: the safest one of the plan governs.

    When one section says no weight-bearing (a fracture to exclude) and another says partial
    weight-bearing (TOH), the partial one is ``deferred`` until the first condition is
    excluded, and the plan says so: the two never stand side by side as instructions. The
    governing section then comes first among the sections as urgent as it, so that the
    headline (the first section's first action) gives the instruction that governs, not an
    analgesic of a section whose loading advice was deferred.
    """
    options = knowledge.treatments.options
    instructing = [
        (_WEIGHT_BEARING_RANK[level], section, item)
        for section in sections
        for item in section.items
        if item.status is not ItemStatus.blocked and (level := options[item.option].weight_bearing) is not None
    ]
    if not instructing:
        return sections, []
    rank, governing_section, governing_item = min(instructing, key=lambda x: x[0])
    notes: list[str] = []
    out = []
    for section in sections:
        items = []
        for item in section.items:
            level = options[item.option].weight_bearing
            if level is not None and _WEIGHT_BEARING_RANK[level] > rank and item.status is not ItemStatus.blocked:
                now = "No weight-bearing now" if rank == _WEIGHT_BEARING_RANK["none"] else "Protected weight-bearing now"
                why = (
                    f"{now}: '{governing_item.title}' ({governing_section.title}) is the safer instruction and governs; "
                    f"this item applies once {governing_section.title.lower()} is excluded or treated."
                )
                item = item.model_copy(update={"status": ItemStatus.deferred, "context": why})
                notes.append(f"'{item.title}' ({section.title}) is deferred: {why}")
            items.append(item)
        out.append(section.model_copy(update={"items": items}))
    if notes:  # stable: the order by urgency, then the leading diagnosis, is kept otherwise
        out.sort(key=lambda s: (_URGENCY_RANK[s.urgency], s.condition != governing_section.condition))
    return out, notes


def make_plan(
    case: Case,
    differential: Sequence[tuple[str, float]],
    knowledge: TreatmentKnowledge,
    today: dt.date | None = None,
    *,
    red_flags: Mapping[str, str] | None = None,
    staging: Staging | None = None,
    timeline: Timeline | None = None,
) -> Plan:
    """An ordered, cited plan for the leading diagnosis and the must-not-miss conditions.

    Parameters
    ----------
    case
        A validated case.
    differential
        ``(condition id, probability)`` pairs, e.g. from an assessment's differential.
    knowledge
        :func:`hipdx.knowledge.treatment.load_treatment_knowledge`.
    today
        Date of the assessment (used only for dates in the case without ``assessed_on``).
    red_flags
        Condition -> the most urgent urgency of its red flags that hold (as
        :func:`hipdx.reasoning.red_flags.evaluate_red_flags` finds them, probability flags
        included). A flagged condition gets its section whatever its probability, at least
        as urgent as its flag; a must-not-miss condition other than the leading one gets a
        section only when flagged, and no section is ``emergency`` or ``urgent`` without a
        flag of its condition, so the flags, the plan's urgencies and the headline agree.
    staging
        The case's staging, if already computed (else it is computed here).
    timeline
        The case's times for this assessment (:class:`~hipdx.case.timeline.Timeline`), if
        the caller has them (else derived here).

    Raises
    ------
    InputError
        The differential is empty, names a condition without a plan, or gives a
        probability outside 0-1.

    Examples
    --------
    >>> from hipdx.knowledge import load_treatment_knowledge
    >>> c = Case.model_validate({"age_years": 45, "sex": "male"})
    >>> plan = make_plan(c, [("toh", 0.7), ("onfh", 0.2), ("septic", 0.02)], load_treatment_knowledge())
    >>> [s.condition for s in plan.sections]
    ['toh']
    >>> next(i for i in plan.items() if i.option == "zoledronic_acid").status.value
    'needs_information'
    """
    flag_urgency = _checked_flags(differential, red_flags, knowledge.treatments.plans)
    timeline = Timeline.of(case, today, timeline)
    staging = staging if staging is not None else stage_case(case, knowledge, today, timeline=timeline)
    probability = dict(differential)
    ranked = sorted(differential, key=lambda x: -x[1])
    threshold = knowledge.threshold("must_not_miss_probability").value
    fracture_urgency = fracture_flag_urgency(staging.femoral_neck_fracture)
    if fracture_urgency is not None:  # a graded fracture is flagged (the one rule: staging.fracture_flag_urgency)
        flag_urgency["fnsf"] = _most_urgent(flag_urgency.get("fnsf", fracture_urgency), fracture_urgency)
    renal = renal_function(case)
    facts = case_facts(
        case, knowledge, neoplasm_probability=probability.get("neoplasm"), neoplasm_red_flag="neoplasm" in flag_urgency,
        septic_probability=probability.get("septic"), septic_red_flag="septic" in flag_urgency, renal=renal,
    )
    context = _SectionContext(ranked[0][0], flag_urgency, fracture_urgency is not None, threshold, knowledge, staging, facts, {})
    sections, governing = _ordered_sections(ranked, probability, context)
    texts = knowledge.attached(_texts)
    return Plan(
        case_id=case.id,
        disclaimer=texts.disclaimer,
        sections=sections,
        scope=_scope_note(facts),
        governing=governing,
        needs_information=_requests(sections),
        renal_function=renal,
        choice_groups=texts.choice_groups,
        staging=staging,
        provenance=_provenance(case, today, knowledge, timeline, staging, facts, ranked, flag_urgency, threshold),
    )


def _provenance(
    case: Case,
    today: dt.date | None,
    knowledge: TreatmentKnowledge,
    timeline: Timeline,
    staging: Staging,
    facts: dict[str, Fact],
    ranked: Sequence[tuple[str, float]],
    flag_urgency: Mapping[str, str],
    threshold: float,
) -> PlanProvenance:
    """What the plan was made from: versions, date, differential, flags, the facts and the inputs they used."""
    used = sorted({i for f in facts.values() if f.known for i in f.inputs} | set(staging.provenance.inputs_used))
    return PlanProvenance(
        hipdx_version=__version__,
        treatment_knowledge_version=knowledge.version,
        knowledge_digest=knowledge.digest,
        assessed_on=case.assessed_on or today,
        days_since_onset=timeline.onset,
        must_not_miss_threshold=threshold,
        differential=[(c, round(p, 4)) for c, p in ranked],
        red_flag_conditions=sorted(flag_urgency),
        inputs_used=used,
        facts=[_CONSTANT_FACT_OUT.get(f) or _fact_out(f) for f in facts.values()],
    )


def _fact_out(fact: Fact) -> FactOut:
    return FactOut(name=fact.name, value=fact.shown(), source=fact.source, inputs=list(fact.inputs))


#: the provenance row of each fact that is the same for every case in its state, made once
_CONSTANT_FACT_OUT = {fact: _fact_out(fact) for fact in constant_facts()}


def _checked_flags(differential: Sequence[tuple[str, float]], red_flags: Mapping[str, str] | None, plans: Mapping) -> dict[str, str]:
    """The red flags' urgency by condition, after the differential and the flags are checked.

    Raises
    ------
    InputError
        The differential is empty, names a condition without a plan, or gives a probability
        outside 0-1; a flag names an unknown condition or urgency.
    """
    problems = []
    for i, (cid, p) in enumerate(differential):
        if cid not in plans:
            problems.append(Problem(f"differential.{i}", f"no plan for condition {cid!r}"))
        if not 0.0 <= p <= 1.0:
            problems.append(Problem(f"differential.{i}", f"probability {p!r} is outside 0-1"))
    if not differential:
        problems.append(Problem("differential", "is empty"))
    if problems:
        raise InputError("cannot make a plan from this differential", problems)
    flag_urgency = dict(red_flags or {})
    unknown_flags = set(flag_urgency) - set(plans)
    bad_urgency = {u for u in flag_urgency.values() if u not in _URGENCY_RANK}
    if unknown_flags or bad_urgency:
        raise InputError(
            "cannot make a plan",
            [Problem("red_flags", f"unknown condition(s) {sorted(unknown_flags)} or urgency {sorted(bad_urgency)}")],
        )
    return flag_urgency


@dataclass(frozen=True)
class _SectionContext:
    """What every section of one plan is decided on."""

    leading: str
    flag_urgency: Mapping[str, str]
    fracture_graded: bool
    threshold: float
    knowledge: TreatmentKnowledge
    staging: Staging
    facts: dict[str, Fact]
    found: dict[str, SafetyFinding]  # the safety findings built so far, by rule id (evaluate_option)


def _ordered_sections(
    ranked: Sequence[tuple[str, float]], probability: Mapping[str, float], context: _SectionContext
) -> tuple[list[PlanSection], list[str]]:
    """The sections (the leading condition's, then every flagged one's), most urgent first, and
    the notes of the weight-bearing instruction that governs (:func:`_govern_weight_bearing`)."""
    plans = context.knowledge.treatments.plans
    sections = [
        section
        for cid, p in [ranked[0]] + [(c, probability.get(c, 0.0)) for c in plans if c != context.leading]
        if (section := _section(cid, p, probability.get(cid), context))
    ]
    sections.sort(key=lambda s: (_URGENCY_RANK[s.urgency], s.role != "leading"))
    return _govern_weight_bearing(sections, context.knowledge)


def _section(cid: str, p: float, shown_probability: float | None, context: _SectionContext) -> PlanSection | None:
    """The section of one condition: the leading one, or a flagged one; ``None`` for any other.

    ``p`` is the probability that decides (0 for a condition not in the differential),
    ``shown_probability`` the one the section shows (``None`` for such a condition).
    """
    flag_urgency, threshold, knowledge = context.flag_urgency, context.threshold, context.knowledge
    spec = knowledge.treatments.plans[cid]
    flagged = cid in flag_urgency
    why = []
    if flagged:
        fracture_line = cid == "fnsf" and context.fracture_graded
        why.append("a femoral neck fracture line is reported" if fracture_line else f"a red flag holds ({flag_urgency[cid]})")
    if cid == context.leading:
        role, reason = "leading", f"Leading diagnosis ({p:.0%})" + (f"; {why[0]}." if why else ".")
    elif flagged:
        role = "exclude" if spec.must_not_miss else "flagged"
        if p >= threshold:
            why.append(f"probability {p:.0%} is at or above the {threshold:.0%} threshold")
        reason = ("Must not miss: " if spec.must_not_miss else "Red flag: ") + " and ".join(why) + "."
    else:
        return None
    items, _ = _section_items(cid, knowledge, context.staging, context.facts, context.found)
    urgency = spec.urgency
    if flagged:
        urgency = _most_urgent(urgency, flag_urgency[cid])
    elif _URGENCY_RANK[urgency] <= _URGENCY_RANK["urgent"]:
        # an emergency or urgent pathway without a red flag: only the patient's age, sex and risk
        # factors put it first (no finding yet); it is not announced as an emergency
        urgency = "soon"
        reason += " No finding raises a red flag yet: it leads on age, sex and risk factors alone; record the findings."
    return PlanSection(
        condition=cid,
        title=spec.title,
        role=role,
        reason=reason,
        probability=shown_probability,
        urgency=urgency,
        summary=knowledge.attached(_texts).summaries[cid],
        refs=spec.refs,
        items=items,
    )


def _scope_note(facts: Mapping[str, Fact]) -> str | None:
    """The plan's note when the patient is outside hipdx's scope (a child), else ``None``."""
    outside = facts["outside_scope"]
    if outside.known and outside.value is True:
        return (
            f"Outside hipdx's scope ({outside.source}): no medicine is recommended (each is blocked by the scope rule); "
            "refer to a paediatric team."
        )
    return None

__all__ = [
    "CREATININE_UMOL_PER_MG_DL",
    "Fact",
    "FactOut",
    "InformationRequest",
    "ItemStatus",
    "Plan",
    "PlanItem",
    "PlanProvenance",
    "PlanSection",
    "RenalFunction",
    "SafetyFinding",
    "Verdict",
    "case_facts",
    "cockcroft_gault",
    "evaluate_option",
    "make_plan",
    "renal_function",
]
