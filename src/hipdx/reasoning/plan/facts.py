"""The facts of a case the safety rules test (``safety.yaml``): each known, not known or not applicable,
with the inputs it rests on; and the renal function the drug rules read.

Creatinine clearance is computed by Cockcroft-Gault (Cockcroft and Gault, Nephron
1976;16:31-41) when age, sex, weight and serum creatinine are known; drugs labelled by
creatinine clearance use it (eGFR when it cannot be computed), drugs labelled by eGFR use
eGFR (creatinine clearance when eGFR is not given); the plan says which value was used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import Field

from hipdx.case import Case
from hipdx.case.model import Comorbidities, Presence, PregnancyStatus, Sex
from hipdx.knowledge.treatment import FACTS, TreatmentKnowledge
from hipdx.reasoning.frozen import Frozen


#: Serum creatinine: 1 mg/dL = 88.42 umol/L (molar mass 113.12 g/mol), as in hipdx.case.units.
CREATININE_UMOL_PER_MG_DL = 88.42


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


#: each comorbidity's fact in each of its three states, made once: such a fact depends on its state alone
_COMORBIDITY_FACTS: dict[str, dict[Presence, Fact]] = {
    name: {state: _presence_fact(name, state, f"comorbidities.{name}") for state in Presence} for name in Comorbidities.model_fields
}
#: the laboratory facts: (fact, lab, whether the rule's limit is an adult reference interval), and each fact when its lab is not given
_LABS = (("calcium_mmol_l", "calcium", True), ("vitamin_d_ng_ml", "vitamin_d", False), ("alp_u_l", "alp", True))
_LAB_NOT_GIVEN = {name: _unknown(name, f"labs.{lab} not given") for name, lab, _ in _LABS}
_BP_NOT_GIVEN = _unknown("systolic_bp_mmhg", "blood pressure not given")


def constant_facts() -> list[Fact]:
    """The facts :func:`case_facts` gives as the same object for every case in that state (a
    comorbidity's three states, a lab or the blood pressure not given): their rendering can be made once."""
    return [f for states in _COMORBIDITY_FACTS.values() for f in states.values()] + [*_LAB_NOT_GIVEN.values(), _BP_NOT_GIVEN]


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
    renal: RenalFunction | None = None,
) -> dict[str, Fact]:
    """Every fact the safety rules can test, computed from the case (``renal``: the case's
    :func:`renal_function`, when the caller has it).

    A fact is *not known* when the case does not give it, and *not applicable* when it
    cannot apply (gestational weeks of a patient who is not pregnant). Pregnancy and
    breastfeeding are taken as not possible only for men and for women outside the
    child-bearing ages of ``treatments.yaml`` (an estimate).
    """
    facts = _reproductive_facts(case, knowledge)
    facts |= _renal_facts(renal if renal is not None else renal_function(case))
    facts |= _lab_facts(case, knowledge)
    comorbidities = case.comorbidities
    for name, states in _COMORBIDITY_FACTS.items():
        facts[name] = states[getattr(comorbidities, name)]
    facts["open_epiphyses"] = _open_epiphyses(case, knowledge, facts["open_epiphyses"])
    facts |= _age_facts(case, knowledge)
    facts["skeletal_malignancy_not_excluded"] = _malignancy_fact(case, knowledge, neoplasm_probability, neoplasm_red_flag)
    facts["infection_not_excluded"] = _infection_fact(knowledge, septic_probability, septic_red_flag)
    facts["neoplasm_not_yet_excluded"] = _neoplasm_not_yet_excluded(case, knowledge, neoplasm_probability, neoplasm_red_flag)
    missing = set(FACTS) - set(facts)
    if missing:  # a new fact in FACTS without code here is a programming error
        raise RuntimeError(f"facts not computed: {sorted(missing)}")
    return facts


def _reproductive_facts(case: Case, knowledge: TreatmentKnowledge) -> dict[str, Fact]:
    """Child-bearing potential, pregnancy, gestational weeks and breastfeeding."""
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
    return facts


def _renal_facts(renal: RenalFunction) -> dict[str, Fact]:
    """Creatinine clearance and eGFR, each standing in for the other when only one is known."""
    facts: dict[str, Fact] = {}
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
    return facts


def _lab_facts(case: Case, knowledge: TreatmentKnowledge) -> dict[str, Fact]:
    """Calcium, vitamin D and ALP (an adult interval not applied under adult age), and the systolic pressure."""
    facts: dict[str, Fact] = {}
    age = case.age_years
    adult_from = knowledge.threshold("adult_reference_interval_min_age_years").value
    for name, lab, adult_interval in _LABS:
        value = case.labs.canonical(lab)
        if value is None:
            facts[name] = _LAB_NOT_GIVEN[name]
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
        else _BP_NOT_GIVEN
    )
    return facts


def _age_facts(case: Case, knowledge: TreatmentKnowledge) -> dict[str, Fact]:
    """The age, and whether it puts the patient outside hipdx's scope."""
    facts: dict[str, Fact] = {}
    age = case.age_years
    scope = knowledge.threshold("scope_min_age_years").value
    if age is None:
        facts["age_years"] = _unknown("age_years", "age not given")
        facts["outside_scope"] = _unknown("outside_scope", "age not given")
    else:
        facts["age_years"] = Fact("age_years", float(age), True, source="age_years", inputs=("age_years",))
        facts["outside_scope"] = Fact(
            "outside_scope", age < scope, True, source=f"age {age:g} (hipdx's knowledge: {scope:g} years and over)", inputs=("age_years",)
        )
    return facts


def _infection_fact(knowledge: TreatmentKnowledge, septic_probability: float | None, septic_red_flag: bool) -> Fact:
    """Infection not excluded: a septic red flag, or septic arthritis at or above the must-not-miss threshold."""
    threshold = knowledge.threshold("must_not_miss_probability").value
    septic_reasons = []
    if septic_red_flag:
        septic_reasons.append("septic red flag")
    if septic_probability is not None and septic_probability >= threshold:
        septic_reasons.append(f"septic arthritis {septic_probability:.0%} in the differential (threshold {threshold:.0%})")
    return Fact(
        "infection_not_excluded",
        bool(septic_reasons),
        True,
        source="; ".join(septic_reasons) or f"septic arthritis below {threshold:.0%} and no red flag",
        inputs=("differential.septic",),
    )


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


def _neoplasm_not_yet_excluded(case: Case, knowledge: TreatmentKnowledge, probability: float | None, red_flag: bool) -> Fact:
    """Whether a neoplasm is still to be excluded as the cause of this episode: *not known* while a
    neoplasm flag holds (a history of cancer until an MRI reports no focal lesion, a focal lesion,
    night and rest pain with edema beyond the head ...), the model ranks it at or above the
    must-not-miss threshold or a study shows a focal lesion; false (excluded) otherwise. Never
    true: hipdx does not diagnose a tumour, it asks for the diagnosis to be established
    (``safety.yaml``, bone_drug_neoplasm), so the drugs wait rather than being blocked for ever."""
    name = "neoplasm_not_yet_excluded"
    reasons: list[str] = []
    inputs: list[str] = []
    if red_flag:
        reasons.append("a neoplasm red flag holds")
        inputs.append("red_flags.neoplasm")
    threshold = knowledge.threshold("must_not_miss_probability").value
    if probability is not None and probability >= threshold:
        reasons.append(f"neoplasm {probability:.0%} in the differential (threshold {threshold:.0%})")
        inputs.append("differential.neoplasm")
    for i, study in enumerate(case.imaging):
        if study.findings.focal_lesion is Presence.present:
            reasons.append(f"focal bone lesion on {study.modality.value}")
            inputs.append(f"imaging.{i}.findings.focal_lesion")
    if reasons:
        return _unknown(name, "; ".join(reasons), inputs)
    imaged = any(study.findings.focal_lesion is Presence.absent for study in case.imaging)
    if case.risk_factors.cancer_history is Presence.unknown and not imaged:  # asked for, never assumed
        return _unknown(name, "cancer history not given and no study reports on a focal lesion", ["risk_factors.cancer_history"])
    return Fact(name, False, True, source="no neoplasm flag, neoplasm under the must-not-miss threshold, no focal lesion")


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
