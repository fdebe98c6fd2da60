"""A cited management plan with safety checks, for the leading diagnosis and for the
must-not-miss conditions still to be excluded. Pure: no I/O, no clock.

The plan is built from ``treatments.yaml`` (options and the ordered plan of each
condition), the case's staging (:mod:`hipdx.reasoning.staging`: fracture grade, ARCO
stage, subchondral band) and ``safety.yaml`` (rules evaluated on facts of the case).

Each safety rule tests one fact. When the fact holds, a ``block`` rule blocks the option
and names the fact; a ``caution`` rule adds a warning. When the fact is **not known**, a
block rule makes the option ``needs_information`` and the plan asks for the fact: hipdx
never assumes a missing fact is normal, and such an option is never recommended.

Creatinine clearance is computed by Cockcroft-Gault (Cockcroft and Gault, Nephron
1976;16:31-41) when age, sex, weight and serum creatinine are known; drugs labelled by
creatinine clearance use it (eGFR when it cannot be computed), drugs labelled by eGFR use
eGFR (creatinine clearance when eGFR is not given); the plan says which value was used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from enum import Enum

from pydantic import Field

from hipdx.reasoning.frozen import Frozen, OutputProvenance
from hipdx._version import __version__
from hipdx.case import Case
from hipdx.case.model import Presence, PregnancyStatus, Sex
from hipdx.errors import InputError, Problem
from hipdx.knowledge.treatment import Effect, FACTS, Option, SafetyRule, TreatmentKnowledge
from hipdx.case.timeline import Timeline
from hipdx.reasoning.staging import BandVerdict, Staging, StageStatus, fracture_flag_urgency, stage_case

#: Serum creatinine: 1 mg/dL = 88.42 umol/L (molar mass 113.12 g/mol), as in hipdx.case.units.
CREATININE_UMOL_PER_MG_DL = 88.42
_IV_BISPHOSPHONATES = ("zoledronic_acid", "pamidronate", "neridronate", "ibandronate")
_URGENCY_RANK = {"emergency": 0, "urgent": 1, "soon": 2, "routine": 3}


def cockcroft_gault(age_years: float, weight_kg: float, creatinine_umol_l: float, female: bool) -> float:
    """Creatinine clearance (mL/min) by Cockcroft-Gault.

    CrCl = (140 - age) x weight (kg) / (72 x serum creatinine (mg/dL)), x 0.85 for women
    (Cockcroft DW, Gault MH. Nephron 1976;16(1):31-41, PMID 1244564).

    Parameters
    ----------
    age_years
        Age in years.
    weight_kg
        Actual body weight in kg.
    creatinine_umol_l
        Serum creatinine in umol/L (hipdx's canonical unit; converted at 88.42 umol/L per mg/dL).
    female
        Apply the 0.85 factor.

    Examples
    --------
    >>> round(cockcroft_gault(60, 72, 88.42, female=False), 1)  # 80 x 72 / (72 x 1.0)
    80.0
    >>> round(cockcroft_gault(60, 72, 88.42, female=True), 1)
    68.0
    """
    creatinine_mg_dl = creatinine_umol_l / CREATININE_UMOL_PER_MG_DL
    clearance = (140.0 - age_years) * weight_kg / (72.0 * creatinine_mg_dl)
    return clearance * 0.85 if female else clearance


# --- facts of the case -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One fact a safety rule tests: known or not, applicable or not, and where it came from."""

    name: str
    value: bool | float | None
    known: bool
    applicable: bool = True
    source: str = ""
    inputs: tuple[str, ...] = ()

    def shown(self) -> str:
        if not self.applicable:
            return "not applicable"
        if not self.known:
            return "not known"
        if isinstance(self.value, bool):
            return "yes" if self.value else "no"
        return f"{self.value:.1f}" if isinstance(self.value, float) else str(self.value)


def _unknown(name: str, source: str = "", inputs: Iterable[str] = ()) -> Fact:
    return Fact(name, None, known=False, source=source, inputs=tuple(inputs))


def _not_applicable(name: str, source: str, inputs: Iterable[str] = ()) -> Fact:
    return Fact(name, None, known=True, applicable=False, source=source, inputs=tuple(inputs))


def _presence_fact(name: str, value: Presence, field: str) -> Fact:
    if value is Presence.unknown:
        return _unknown(name, f"{field} not given")
    return Fact(name, value is Presence.present, known=True, source=field, inputs=(field,))


class RenalFunction(Frozen):
    """Renal function and which value the renal safety rules used."""

    creatinine_clearance_ml_min: float | None = Field(description="Cockcroft-Gault, when computable")
    cockcroft_gault_missing: list[str] = Field(description="inputs missing for Cockcroft-Gault")
    egfr_ml_min: float | None
    used_for_clearance_labelled_drugs: str = Field(description="cockcroft_gault, egfr or not_known")
    used_for_egfr_labelled_drugs: str = Field(description="egfr, cockcroft_gault or not_known")
    note: str
    refs: list[str] = ["cockcroft1976"]


def renal_function(case: Case) -> RenalFunction:
    """Cockcroft-Gault clearance when computable, eGFR when given, and what each rule uses."""
    missing = []
    if case.age_years is None:
        missing.append("age_years")
    if case.weight_kg is None:
        missing.append("weight_kg")
    if case.sex is Sex.unknown:
        missing.append("sex")
    creatinine = case.labs.canonical("creatinine")
    if creatinine is None:
        missing.append("labs.creatinine")
    crcl = None
    notes = []
    if not missing:
        assert case.age_years is not None and case.weight_kg is not None and creatinine is not None
        crcl = round(cockcroft_gault(case.age_years, case.weight_kg, creatinine, case.sex is Sex.female), 1)
        notes.append(f"Cockcroft-Gault creatinine clearance {crcl:.1f} mL/min from age, sex, weight and serum creatinine.")
        if case.age_years < 18:
            notes.append("Cockcroft-Gault was derived in adults; interpret with care under 18.")
    egfr = case.labs.canonical("egfr")
    for_crcl = "cockcroft_gault" if crcl is not None else "egfr" if egfr is not None else "not_known"
    for_egfr = "egfr" if egfr is not None else "cockcroft_gault" if crcl is not None else "not_known"
    if for_crcl == "egfr":
        notes.append(
            f"Creatinine clearance not computable (missing {', '.join(missing)}): eGFR {egfr:g} is used for drugs "
            "labelled by creatinine clearance; eGFR is normalised to 1.73 m2 and can overestimate clearance in "
            "small or elderly patients."
        )
    if for_egfr == "cockcroft_gault":
        notes.append("eGFR not given: the Cockcroft-Gault clearance is used for drugs labelled by eGFR.")
    if for_crcl == "not_known":
        notes.append("Renal function not known: neither eGFR nor serum creatinine with age, sex and weight is given.")
    return RenalFunction(
        creatinine_clearance_ml_min=crcl,
        cockcroft_gault_missing=missing,
        egfr_ml_min=egfr,
        used_for_clearance_labelled_drugs=for_crcl,
        used_for_egfr_labelled_drugs=for_egfr,
        note=" ".join(notes),
    )


def case_facts(
    case: Case,
    knowledge: TreatmentKnowledge,
    *,
    neoplasm_probability: float | None = None,
    neoplasm_red_flag: bool = False,
    septic_probability: float | None = None,
    septic_red_flag: bool = False,
) -> dict[str, Fact]:
    """Every fact the safety rules can test, computed from the case.

    A fact is *not known* when the case does not give it, and *not applicable* when it
    cannot apply (gestational weeks of a patient who is not pregnant). Pregnancy and
    breastfeeding are taken as not possible only for men and for women outside the
    child-bearing ages of ``treatments.yaml`` (an estimate).
    """
    facts: dict[str, Fact] = {}
    low = knowledge.threshold("child_bearing_age_min_years").value
    high = knowledge.threshold("child_bearing_age_max_years").value
    age = case.age_years

    if case.sex is Sex.male:
        potential: Fact = Fact("child_bearing_potential", False, True, source="sex = male", inputs=("sex",))
    elif case.sex is Sex.female and age is not None:
        inside = low <= age <= high
        potential = Fact(
            "child_bearing_potential", inside, True, source=f"female, age {age:g} ({low:g}-{high:g} counted)", inputs=("sex", "age_years")
        )
    else:
        potential = _unknown("child_bearing_potential", "sex or age not given")
    facts["child_bearing_potential"] = potential

    status = case.pregnancy.status
    if status is PregnancyStatus.pregnant:
        facts["pregnant"] = Fact("pregnant", True, True, source="pregnancy.status = pregnant", inputs=("pregnancy.status",))
    elif status in (PregnancyStatus.not_pregnant, PregnancyStatus.postpartum):
        facts["pregnant"] = Fact("pregnant", False, True, source=f"pregnancy.status = {status.value}", inputs=("pregnancy.status",))
    elif potential.known and potential.value is False:
        facts["pregnant"] = Fact("pregnant", False, True, source=f"pregnancy not possible ({potential.source})", inputs=potential.inputs)
    else:
        facts["pregnant"] = _unknown("pregnant", "pregnancy status not given for a woman who may be pregnant")

    pregnant = facts["pregnant"]
    if pregnant.known and pregnant.value is True:
        weeks = case.pregnancy.gestational_weeks
        facts["gestational_weeks"] = (
            Fact("gestational_weeks", float(weeks), True, source="pregnancy.gestational_weeks", inputs=("pregnancy.gestational_weeks",))
            if weeks is not None
            else _unknown("gestational_weeks", "pregnant, gestational age not given")
        )
    elif pregnant.known:
        facts["gestational_weeks"] = _not_applicable("gestational_weeks", "not pregnant", pregnant.inputs)
    else:
        facts["gestational_weeks"] = _unknown("gestational_weeks", "pregnancy status not known")

    feeding = case.pregnancy.breastfeeding
    if feeding is not Presence.unknown:
        facts["breastfeeding"] = _presence_fact("breastfeeding", feeding, "pregnancy.breastfeeding")
    elif potential.known and potential.value is False:
        facts["breastfeeding"] = Fact("breastfeeding", False, True, source=f"not possible ({potential.source})", inputs=potential.inputs)
    else:
        facts["breastfeeding"] = _unknown("breastfeeding", "breastfeeding not stated for a woman of child-bearing age")

    renal = renal_function(case)
    crcl, egfr = renal.creatinine_clearance_ml_min, renal.egfr_ml_min
    crcl_inputs = ("age_years", "sex", "weight_kg", "labs.creatinine")
    if crcl is not None:
        facts["creatinine_clearance_ml_min"] = Fact("creatinine_clearance_ml_min", crcl, True, source="Cockcroft-Gault", inputs=crcl_inputs)
    elif egfr is not None:
        facts["creatinine_clearance_ml_min"] = Fact(
            "creatinine_clearance_ml_min", egfr, True, source="eGFR (creatinine clearance not computable)", inputs=("labs.egfr",)
        )
    else:
        facts["creatinine_clearance_ml_min"] = _unknown("creatinine_clearance_ml_min", "no eGFR and no serum creatinine with age, sex and weight")
    if egfr is not None:
        facts["egfr_ml_min"] = Fact("egfr_ml_min", egfr, True, source="eGFR", inputs=("labs.egfr",))
    elif crcl is not None:
        facts["egfr_ml_min"] = Fact("egfr_ml_min", crcl, True, source="Cockcroft-Gault clearance (eGFR not given)", inputs=crcl_inputs)
    else:
        facts["egfr_ml_min"] = _unknown("egfr_ml_min", "no eGFR and no serum creatinine with age, sex and weight")

    adult_from = knowledge.threshold("adult_reference_interval_min_age_years").value
    for name, lab, adult_interval in (("calcium_mmol_l", "calcium", True), ("vitamin_d_ng_ml", "vitamin_d", False), ("alp_u_l", "alp", True)):
        value = case.labs.canonical(lab)
        if value is None:
            facts[name] = _unknown(name, f"labs.{lab} not given")
        elif adult_interval and (age is None or age < adult_from):
            # the rule's limit is an adult reference interval: in adolescents ALP is physiologically
            # high (bone growth) and calcium runs higher, so the value cannot be judged by it
            who = "age not given" if age is None else f"age {age:g}"
            facts[name] = _unknown(
                name,
                f"labs.{lab} = {value:g} is given, but the rule's limit is an adult reference interval "
                f"(from {adult_from:g} years; {who}): judge it against the laboratory's age-specific interval",
                (f"labs.{lab}", "age_years"),
            )
        else:
            facts[name] = Fact(name, float(value), True, source=f"labs.{lab}", inputs=(f"labs.{lab}",))
    facts["systolic_bp_mmhg"] = (
        Fact("systolic_bp_mmhg", float(case.systolic_bp_mmhg), True, source="systolic_bp_mmhg", inputs=("systolic_bp_mmhg",))
        if case.systolic_bp_mmhg is not None
        else _unknown("systolic_bp_mmhg", "blood pressure not given")
    )
    for name in type(case.comorbidities).model_fields:
        facts[name] = _presence_fact(name, getattr(case.comorbidities, name), f"comorbidities.{name}")
    facts["open_epiphyses"] = _open_epiphyses(case, knowledge, facts["open_epiphyses"])
    scope = knowledge.threshold("scope_min_age_years").value
    if age is None:
        facts["age_years"] = _unknown("age_years", "age not given")
        facts["outside_scope"] = _unknown("outside_scope", "age not given")
    else:
        facts["age_years"] = Fact("age_years", float(age), True, source="age_years", inputs=("age_years",))
        facts["outside_scope"] = Fact(
            "outside_scope", age < scope, True, source=f"age {age:g} (hipdx's knowledge: {scope:g} years and over)", inputs=("age_years",)
        )

    facts["skeletal_malignancy_not_excluded"] = _malignancy_fact(case, knowledge, neoplasm_probability, neoplasm_red_flag)
    threshold = knowledge.threshold("must_not_miss_probability").value
    septic_reasons = []
    if septic_red_flag:
        septic_reasons.append("septic red flag")
    if septic_probability is not None and septic_probability >= threshold:
        septic_reasons.append(f"septic arthritis {septic_probability:.0%} in the differential (threshold {threshold:.0%})")
    facts["infection_not_excluded"] = Fact(
        "infection_not_excluded",
        bool(septic_reasons),
        True,
        source="; ".join(septic_reasons) or f"septic arthritis below {threshold:.0%} and no red flag",
        inputs=("differential.septic",),
    )
    missing = set(FACTS) - set(facts)
    if missing:  # a new fact in FACTS without code here is a programming error
        raise RuntimeError(f"facts not computed: {sorted(missing)}")
    return facts


def _open_epiphyses(case: Case, knowledge: TreatmentKnowledge, stated: Fact) -> Fact:
    """Open growth plates: as stated, else from age (under 18 counted open, closed from the threshold)."""
    name = "open_epiphyses"
    age = case.age_years
    closed_from = knowledge.threshold("epiphyses_closed_from_age_years").value
    adult_from = knowledge.threshold("adult_reference_interval_min_age_years").value
    if age is not None and age < adult_from:  # the labels exclude the paediatric population whatever the radiograph
        return Fact(name, True, True, source=f"age {age:g}: under {adult_from:g}, counted as open epiphyses", inputs=("age_years",))
    if stated.known:
        return stated
    if age is None:
        return _unknown(name, "age not given and growth plates not stated")
    if age >= closed_from:
        return Fact(name, False, True, source=f"age {age:g}: growth plates counted closed from {closed_from:g}", inputs=("age_years",))
    return _unknown(name, f"age {age:g}: growth plates may still be open before {closed_from:g}; not stated")


def _malignancy_fact(case: Case, knowledge: TreatmentKnowledge, probability: float | None, red_flag: bool) -> Fact:
    name = "skeletal_malignancy_not_excluded"
    reasons: list[str] = []
    inputs: list[str] = []
    if case.risk_factors.cancer_history is Presence.present:
        reasons.append("history of cancer")
        inputs.append("risk_factors.cancer_history")
    for i, study in enumerate(case.imaging):
        if study.findings.focal_lesion is Presence.present:
            reasons.append(f"focal bone lesion on {study.modality.value}")
            inputs.append(f"imaging.{i}.findings.focal_lesion")
    threshold = knowledge.threshold("must_not_miss_probability").value
    if probability is not None and probability >= threshold:
        reasons.append(f"neoplasm {probability:.0%} in the differential (threshold {threshold:.0%})")
        inputs.append("differential.neoplasm")
    if red_flag:
        reasons.append("neoplasm red flag")
        inputs.append("red_flags.neoplasm")
    if reasons:
        return Fact(name, True, True, source="; ".join(reasons), inputs=tuple(inputs))
    if case.risk_factors.cancer_history is Presence.absent:
        return Fact(name, False, True, source="no cancer history, no focal lesion reported", inputs=("risk_factors.cancer_history",))
    return _unknown(name, "cancer history not given")


# --- evaluating the rules ---------------------------------------------------------------------


class ItemStatus(str, Enum):
    recommended = "recommended"
    #: recommended, with warnings to heed
    caution = "caution"
    #: a fact needed by a safety check is not known; not recommended until it is
    needs_information = "needs_information"
    blocked = "blocked"
    #: a safer instruction of another section governs now (no weight-bearing while a fracture
    #: is excluded); this item applies once that condition is excluded
    deferred = "deferred"


class SafetyFinding(Frozen):
    """A safety rule that holds (or whose fact is not known) for one option."""

    rule: str
    effect: str
    fact: str
    value: str = Field(description="the fact's value and where it came from, or 'not known'")
    message: str
    basis: str
    refs: list[str]
    note: str | None = None


def _holds(rule: SafetyRule, fact: Fact) -> bool | None:
    """True/False whether the rule's test holds; None when the fact is not known."""
    if not fact.applicable:
        return False
    if not fact.known:
        return None
    if rule.is_true is not None:
        return fact.value is rule.is_true
    value = float(fact.value)  # type: ignore[arg-type]
    if rule.below is not None:
        return value < rule.below
    if rule.at_least is not None:
        return value >= rule.at_least
    assert rule.above is not None
    return value > rule.above


@lru_cache(maxsize=4096)
def _squash(text: str | None) -> str | None:
    """Data text with its line breaks and runs of spaces folded (memoised: the texts are few)."""
    return " ".join(text.split()) if text else None


def _finding(rule: SafetyRule, fact: Fact) -> SafetyFinding:
    shown = fact.shown()
    value = f"{shown} ({fact.source})" if fact.known and fact.source else shown
    return SafetyFinding(
        rule=rule.id,
        effect=rule.effect.value,
        fact=rule.fact,
        value=value,
        message=rule.message,
        basis=rule.basis.value,
        refs=rule.refs,
        note=_squash(rule.note),
    )


@dataclass(frozen=True)
class _Verdict:
    status: ItemStatus
    blocked_by: list[SafetyFinding]
    cautions: list[SafetyFinding]
    needs: list[SafetyFinding]
    checks: list[SafetyFinding]


def evaluate_option(option: str, facts: dict[str, Fact], knowledge: TreatmentKnowledge) -> _Verdict:
    """Apply every safety rule of ``option`` to the facts."""
    blocked, cautions, needs, checks = [], [], [], []
    for rule in knowledge.rules_for(option):
        fact = facts[rule.fact]
        holds = _holds(rule, fact)
        if holds is None:
            (needs if rule.effect is Effect.block else checks).append(_finding(rule, fact))
        elif holds:
            (blocked if rule.effect is Effect.block else cautions).append(_finding(rule, fact))
    if blocked:
        status = ItemStatus.blocked
    elif needs:
        status = ItemStatus.needs_information
    elif cautions:
        status = ItemStatus.caution
    else:
        status = ItemStatus.recommended
    return _Verdict(status, blocked, cautions, needs, checks)


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
    sections: list[PlanSection] = Field(description="most urgent first; the leading diagnosis first among equals")
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
    condition: str, knowledge: TreatmentKnowledge, staging: Staging, facts: dict[str, Fact]
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
    items = [_item(i + 1, option, knowledge.treatments.options[option], context, facts, knowledge) for i, (option, context) in enumerate(chosen)]
    return items, urgency


def _item(order: int, key: str, option: Option, context: str | None, facts: dict[str, Fact], knowledge: TreatmentKnowledge) -> PlanItem:
    verdict = evaluate_option(key, facts, knowledge)
    return PlanItem(
        order=order,
        option=key,
        kind=option.kind.value,
        role=option.role,
        choice_group=option.choice_group,
        title=option.title,
        regimen=_squash(option.regimen) or "",
        status=verdict.status,
        evidence=option.evidence.value,
        basis=option.basis.value,
        off_label=option.off_label,
        refs=option.refs,
        note=_squash(option.note),
        context=context,
        blocked_by=verdict.blocked_by,
        cautions=verdict.cautions,
        needs_information=verdict.needs,
        checks_before_use=verdict.checks,
    )


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
    out = [InformationRequest(fact=f, how=FACTS[f][1], blocking=True, needed_for=v) for f, v in blocking.items()]
    out += [InformationRequest(fact=f, how=FACTS[f][1], blocking=False, needed_for=v) for f, v in checks.items() if f not in blocking]
    return out


def _most_urgent(*urgencies: str) -> str:
    return min(urgencies, key=_URGENCY_RANK.__getitem__)


#: weight-bearing instructions, safest first
_WEIGHT_BEARING_RANK = {"none": 0, "protected": 1}


def _govern_weight_bearing(sections: list[PlanSection], knowledge: TreatmentKnowledge) -> tuple[list[PlanSection], list[str]]:
    """One weight-bearing instruction for the patient: the safest one of the plan governs.

    When one section says no weight-bearing (a fracture to exclude) and another says partial
    weight-bearing (TOH), the partial one is ``deferred`` until the first condition is
    excluded, and the plan says so: the two never stand side by side as instructions.
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
    plans = knowledge.treatments.plans
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
    flagged = set(flag_urgency)
    timeline = Timeline.of(case, today, timeline)

    staging = staging if staging is not None else stage_case(case, knowledge, today, timeline=timeline)
    probability = dict(differential)
    ranked = sorted(differential, key=lambda x: -x[1])
    leading = ranked[0][0]
    threshold = knowledge.threshold("must_not_miss_probability").value
    fracture_urgency = fracture_flag_urgency(staging.femoral_neck_fracture)
    if fracture_urgency is not None:  # a graded fracture is flagged (the one rule: staging.fracture_flag_urgency)
        flagged.add("fnsf")
        flag_urgency["fnsf"] = _most_urgent(flag_urgency.get("fnsf", fracture_urgency), fracture_urgency)
    facts = case_facts(
        case,
        knowledge,
        neoplasm_probability=probability.get("neoplasm"),
        neoplasm_red_flag="neoplasm" in flagged,
        septic_probability=probability.get("septic"),
        septic_red_flag="septic" in flagged,
    )

    sections: list[PlanSection] = []
    for cid, p in [(leading, ranked[0][1])] + [(c, probability.get(c, 0.0)) for c in plans if c != leading]:
        spec = plans[cid]
        why = []
        if cid in flagged:
            fracture_line = cid == "fnsf" and fracture_urgency is not None
            why.append("a femoral neck fracture line is reported" if fracture_line else f"a red flag holds ({flag_urgency[cid]})")
        if cid == leading:
            role, reason = "leading", f"Leading diagnosis ({p:.0%})" + (f"; {why[0]}." if why else ".")
        elif cid in flagged:
            role = "exclude" if spec.must_not_miss else "flagged"
            if p >= threshold:
                why.append(f"probability {p:.0%} is at or above the {threshold:.0%} threshold")
            reason = ("Must not miss: " if spec.must_not_miss else "Red flag: ") + " and ".join(why) + "."
        else:
            continue
        items, _ = _section_items(cid, knowledge, staging, facts)
        urgency = spec.urgency
        if cid in flagged:
            urgency = _most_urgent(urgency, flag_urgency[cid])
        elif _URGENCY_RANK[urgency] <= _URGENCY_RANK["urgent"]:
            # an emergency or urgent pathway without a red flag: only the patient's age, sex and risk
            # factors put it first (no finding yet); it is not announced as an emergency
            urgency = "soon"
            reason += " No finding raises a red flag yet: it leads on age, sex and risk factors alone; record the findings."
        sections.append(
            PlanSection(
                condition=cid,
                title=spec.title,
                role=role,
                reason=reason,
                probability=probability.get(cid),
                urgency=urgency,
                summary=" ".join(spec.summary.split()),
                refs=spec.refs,
                items=items,
            )
        )
    sections.sort(key=lambda s: (_URGENCY_RANK[s.urgency], s.role != "leading"))
    sections, governing = _govern_weight_bearing(sections, knowledge)
    outside = facts["outside_scope"]
    scope = (
        f"Outside hipdx's scope ({outside.source}): no medicine is recommended (each is blocked by the scope rule); "
        "refer to a paediatric team."
        if outside.known and outside.value is True
        else None
    )

    used = sorted({i for f in facts.values() if f.known for i in f.inputs} | set(staging.provenance.inputs_used))
    groups = {k: f"{g.title}: {' '.join(g.note.split())}" for k, g in knowledge.treatments.choice_groups.items()}
    return Plan(
        case_id=case.id,
        disclaimer=" ".join(knowledge.treatments.disclaimer.split()),
        sections=sections,
        scope=scope,
        governing=governing,
        needs_information=_requests(sections),
        renal_function=renal_function(case),
        choice_groups=groups,
        staging=staging,
        provenance=PlanProvenance(
            hipdx_version=__version__,
            treatment_knowledge_version=knowledge.version,
            knowledge_digest=knowledge.digest,
            assessed_on=case.assessed_on or today,
            days_since_onset=timeline.onset,
            must_not_miss_threshold=threshold,
            differential=[(c, round(p, 4)) for c, p in ranked],
            red_flag_conditions=sorted(flagged),
            inputs_used=used,
            facts=[FactOut(name=f.name, value=f.shown(), source=f.source, inputs=list(f.inputs)) for f in facts.values()],
        ),
    )


# --- plain renderings (for the command line; the report package may render richer) -----------------
