"""Schema and loader of the staging, treatment and safety data (``staging.yaml``,
``treatments.yaml``, ``safety.yaml``).

These files hold the knowledge behind :mod:`hipdx.reasoning.staging` and
:mod:`hipdx.reasoning.plan`: the thresholds of the staging rules, the management
options with their published regimens and evidence level, the plan of each condition
and the safety rules evaluated on a case. Every threshold, option and rule cites its
source from ``bibliography.yaml``; a judgement is marked ``basis: estimate`` and carries
its reasoning in ``note``. :func:`load_treatment_knowledge` checks all of this and lists
every problem in one :class:`~hipdx.errors.KnowledgeBaseError`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from functools import cached_property
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hipdx.errors import Problem
from hipdx.knowledge.schema import Cited, Reference

_T = typing.TypeVar("_T")
_ID = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- staging.yaml ---------------------------------------------------------------------


class Threshold(Cited):
    """One number of a staging rule, with its unit."""

    value: float
    unit: str


class StagingSystem(Cited):
    """A published staging system: its name and the definition of each stage."""

    name: str
    stages: dict[str, str] = Field(min_length=1)


class FractureGrade(Cited):
    """What a femoral neck stress fracture grade implies."""

    label: str
    urgency: str = Field(pattern=r"^(emergency|urgent|soon)$")
    action: str


#: Thresholds the staging code reads; the loader checks they are all defined.
STAGING_THRESHOLDS = (
    "arco_iiia_max_depression_mm",
    "steinberg_extent_a_below_percent",
    "steinberg_extent_c_above_percent",
    "steinberg_flattening_a_below_mm",
    "steinberg_flattening_c_above_mm",
    "band_cutoff_mm",
    "band_indeterminate_margin_mm",
    "band_length_unverified_mm",
    "neck_compression_width_cutoff_percent",
    "toh_early_max_days",
    "toh_established_max_days",
    "toh_expected_resolution_max_days",
)
STAGING_SYSTEMS = ("arco_2019", "ficat_arlet", "steinberg")
FRACTURE_GRADES = (
    "displaced",
    "tension",
    "compression_wide",
    "compression_narrow",
    "compression_width_unknown",
    "side_unknown",
)


class StagingFile(_Data):
    version: str = Field(pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    systems: dict[_ID, StagingSystem]
    thresholds: dict[_ID, Threshold]
    fracture_grades: dict[_ID, FractureGrade]
    subchondral_band_caveats: list[str] = Field(min_length=1)
    toh_phase: Cited
    migratory_pattern: Cited
    caveat: str


# --- treatments.yaml --------------------------------------------------------------------


class Evidence(str, Enum):
    """Evidence level of a management option, highest first."""

    randomised_trial = "randomised_trial"
    case_series = "case_series"
    #: single case reports only
    case_report = "case_report"
    guideline = "guideline"
    label = "label"
    expert_opinion = "expert_opinion"


class OptionKind(str, Enum):
    urgent_pathway = "urgent_pathway"
    weight_bearing = "weight_bearing"
    analgesia = "analgesia"
    supplement = "supplement"
    drug = "drug"
    rehabilitation = "rehabilitation"
    imaging = "imaging"
    densitometry = "densitometry"
    referral = "referral"


class Option(Cited):
    """One management option with its regimen as published."""

    kind: OptionKind
    title: str
    regimen: str
    evidence: Evidence
    role: str = Field(default="core", pattern=r"^(core|option)$")
    choice_group: _ID | None = None
    off_label: bool = False
    gadolinium: bool = False
    ionising_radiation: bool = False
    #: the weight-bearing this option instructs: "none" (no weight-bearing at all) or
    #: "protected" (partial, with crutches); None when it says nothing about loading
    weight_bearing: str | None = Field(default=None, pattern=r"^(none|protected)$")


class ConditionPlan(_Data):
    title: str
    summary: str
    urgency: str = Field(default="routine", pattern=r"^(emergency|urgent|soon|routine)$")
    must_not_miss: bool = False
    items: list[_ID] = Field(min_length=1)
    ref: str | list[str] | None = None

    @property
    def refs(self) -> list[str]:
        if self.ref is None:
            return []
        return [self.ref] if isinstance(self.ref, str) else list(self.ref)


class ChoiceGroup(_Data):
    title: str
    note: str


#: Kinds of option that are medicines: outside the knowledge base's scope none may be recommended.
MEDICINES = frozenset({OptionKind.drug, OptionKind.analgesia, OptionKind.supplement})

#: Options the plan code selects by the stage or fracture grade (not listed in a plan).
CODE_OPTIONS = (
    "fnsf_displaced",
    "fnsf_tension",
    "fnsf_compression_wide",
    "fnsf_compression_narrow",
    "fnsf_unmeasured",
    "refer_on_precollapse",
    "refer_on_pericollapse",
    "refer_on_collapse",
    "refer_irreversible_pattern",
    "refer_outside_scope",
)

#: Thresholds the plan code reads.
PLAN_THRESHOLDS = (
    "must_not_miss_probability",
    "child_bearing_age_min_years",
    "child_bearing_age_max_years",
    "scope_min_age_years",
    "adult_reference_interval_min_age_years",
    "epiphyses_closed_from_age_years",
)


class TreatmentsFile(_Data):
    version: str = Field(pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    disclaimer: str
    thresholds: dict[_ID, Threshold]
    choice_groups: dict[_ID, ChoiceGroup]
    options: dict[_ID, Option]
    plans: dict[_ID, ConditionPlan]


# --- safety.yaml ---------------------------------------------------------------------------


class Effect(str, Enum):
    block = "block"
    caution = "caution"


#: The facts a safety rule can test; :func:`hipdx.reasoning.plan.case_facts` computes them.
FACTS: dict[str, tuple[str, str]] = {
    # name: (kind, how the fact is obtained when it is not known)
    "pregnant": ("bool", "ask about pregnancy or do a pregnancy test"),
    "gestational_weeks": ("number", "gestational age in weeks"),
    "breastfeeding": ("bool", "ask whether the patient is breastfeeding"),
    "child_bearing_potential": ("bool", "sex and age of the patient"),
    "creatinine_clearance_ml_min": ("number", "serum creatinine with age, sex and weight (Cockcroft-Gault), or eGFR"),
    "egfr_ml_min": ("number", "eGFR (or serum creatinine with age, sex and weight)"),
    "calcium_mmol_l": ("number", "serum calcium (albumin-corrected)"),
    "vitamin_d_ng_ml": ("number", "serum 25-OH vitamin D"),
    "alp_u_l": ("number", "serum alkaline phosphatase"),
    "systolic_bp_mmhg": ("number", "blood pressure"),
    "skeletal_malignancy_not_excluded": ("bool", "history of cancer; imaging for a focal bone lesion"),
    "neoplasm_not_yet_excluded": (
        "bool",
        "exclude a neoplasm first: MRI of the pelvis with T1-weighted images showing no focal lesion, "
        "no neoplasm flag and neoplasm under the must-not-miss threshold (a biopsy for a focal lesion)",
    ),
    "infection_not_excluded": ("bool", "exclude septic arthritis first (aspiration, see the septic pathway)"),
    "coronary_heart_disease": ("bool", "ask about severe coronary heart disease or unstable angina"),
    "recent_myocardial_infarction": ("bool", "ask about myocardial infarction in the last 6 months"),
    "heart_failure": ("bool", "ask about heart failure (NYHA II-IV)"),
    "severe_arrhythmia": ("bool", "ask about severe arrhythmia; ECG"),
    "recent_stroke_or_tia": ("bool", "ask about stroke or TIA in the last 3 months"),
    "bleeding_risk": ("bool", "ask about active peptic ulcer, recent haemorrhage or a bleeding disorder"),
    "hepatic_impairment": ("bool", "liver function"),
    "hyperparathyroidism": ("bool", "history; serum calcium and PTH"),
    "paget_disease": ("bool", "history of Paget's disease of bone"),
    "skeletal_radiation": ("bool", "ask about previous radiotherapy to the skeleton"),
    "bisphosphonate_hypersensitivity": ("bool", "ask about allergy to bisphosphonates"),
    "pending_dental_surgery": ("bool", "ask about planned invasive dental work; dental examination"),
    "age_years": ("number", "the patient's age"),
    "outside_scope": ("bool", "the patient's age (hipdx's knowledge is for adults: see the scope_min_age_years threshold)"),
    "anticoagulant_use": ("bool", "ask whether the patient takes an anticoagulant (warfarin, a DOAC, heparin)"),
    "peptic_ulcer_history": ("bool", "ask about a past peptic ulcer or gastrointestinal bleeding"),
    "calcineurin_inhibitor_use": ("bool", "ask whether the patient takes tacrolimus or ciclosporin (an organ transplant)"),
    "open_epiphyses": ("bool", "pelvic radiograph: are the growth plates closed?"),
}


class SafetyRule(Cited):
    """One safety check: a fact, a test on it, and what follows when it holds."""

    id: _ID
    options: list[_ID] = Field(min_length=1)
    fact: str
    is_true: bool | None = None
    below: float | None = None
    at_least: float | None = None
    above: float | None = None
    effect: Effect
    message: str

    @model_validator(mode="after")
    def _one_test(self) -> SafetyRule:
        tests = [t for t in (self.is_true, self.below, self.at_least, self.above) if t is not None]
        if len(tests) != 1:
            raise ValueError("a rule has exactly one of is_true, below, at_least or above")
        if self.fact not in FACTS:
            raise ValueError(f"unknown fact {self.fact!r}; known: {', '.join(sorted(FACTS))}")
        kind = FACTS[self.fact][0]
        if (self.is_true is not None) != (kind == "bool"):
            raise ValueError(f"fact {self.fact!r} is a {kind}; test it with {'is_true' if kind == 'bool' else 'below, at_least or above'}")
        return self


class SafetyFile(_Data):
    version: str = Field(pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    rules: list[SafetyRule]


@dataclass(frozen=True)
class TreatmentKnowledge:
    """The validated staging, treatment and safety knowledge. Immutable; share one instance."""

    staging: StagingFile
    treatments: TreatmentsFile
    safety: SafetyFile
    references: dict[str, Reference]
    digest: str

    @property
    def version(self) -> str:
        return self.treatments.version

    def threshold(self, name: str) -> Threshold:
        """A staging or plan threshold by name."""
        found = self.staging.thresholds.get(name) or self.treatments.thresholds.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def rules_for(self, option: str) -> list[SafetyRule]:
        """The safety rules of one option, in file order."""
        return self._rules_by_option.get(option, [])

    @cached_property
    def _rules_by_option(self) -> dict[str, list[SafetyRule]]:
        by_option: dict[str, list[SafetyRule]] = {}
        for rule in self.safety.rules:
            for option in rule.options:
                by_option.setdefault(option, []).append(rule)
        return by_option

    @cached_property
    def _attached(self) -> dict[typing.Callable[[TreatmentKnowledge], typing.Any], typing.Any]:
        return {}

    def attached(self, build: typing.Callable[[TreatmentKnowledge], _T]) -> _T:
        """What ``build`` derives from this knowledge, built on first use and kept with it.

        As :meth:`hipdx.knowledge.KnowledgeBase.attached`: how the plan keeps the tables it
        compiles from the options and safety rules (one per knowledge and ``build``).
        """
        try:
            return self._attached[build]
        except KeyError:
            value = self._attached[build] = build(self)
            return value


def compile_treatment(
    staging: StagingFile,
    treatments: TreatmentsFile,
    safety: SafetyFile,
    references: dict[str, Reference],
    digest: str,
    problems: list[Problem],
) -> TreatmentKnowledge:
    """Check the staging, treatment and safety data against each other and the bibliography.

    Problems are appended to ``problems``; the loader raises once with all of them.
    """
    _check(staging, treatments, safety, references, problems)
    return TreatmentKnowledge(staging, treatments, safety, references, digest)


def _cited_items(staging: StagingFile, treatments: TreatmentsFile, safety: SafetyFile) -> typing.Iterator[tuple[str, list[str]]]:
    for key, system in staging.systems.items():
        yield f"staging.yaml: systems.{key}", system.refs
    for key, threshold in staging.thresholds.items():
        yield f"staging.yaml: thresholds.{key}", threshold.refs
    for key, grade in staging.fracture_grades.items():
        yield f"staging.yaml: fracture_grades.{key}", grade.refs
    yield "staging.yaml: toh_phase", staging.toh_phase.refs
    yield "staging.yaml: migratory_pattern", staging.migratory_pattern.refs
    for key, threshold in treatments.thresholds.items():
        yield f"treatments.yaml: thresholds.{key}", threshold.refs
    for key, option in treatments.options.items():
        yield f"treatments.yaml: options.{key}", option.refs
    for key, plan in treatments.plans.items():
        yield f"treatments.yaml: plans.{key}", plan.refs
    for rule in safety.rules:
        yield f"safety.yaml: {rule.id}", rule.refs


def _check(
    staging: StagingFile,
    treatments: TreatmentsFile,
    safety: SafetyFile,
    refs: dict[str, Reference],
    problems: list[Problem],
) -> None:
    for where, cited in _cited_items(staging, treatments, safety):
        for ref in cited:
            if ref not in refs:
                problems.append(Problem(where, f"cites {ref!r}, which is not in bibliography.yaml"))
    for name in STAGING_THRESHOLDS:
        if name not in staging.thresholds:
            problems.append(Problem("staging.yaml: thresholds", f"{name!r} is not defined"))
    for name in STAGING_SYSTEMS:
        if name not in staging.systems:
            problems.append(Problem("staging.yaml: systems", f"{name!r} is not defined"))
    for name in FRACTURE_GRADES:
        if name not in staging.fracture_grades:
            problems.append(Problem("staging.yaml: fracture_grades", f"{name!r} is not defined"))
    for name in PLAN_THRESHOLDS:
        if name not in treatments.thresholds:
            problems.append(Problem("treatments.yaml: thresholds", f"{name!r} is not defined"))
    for key, option in treatments.options.items():
        if option.choice_group is not None and option.choice_group not in treatments.choice_groups:
            problems.append(Problem(f"treatments.yaml: options.{key}", f"unknown choice_group {option.choice_group!r}"))
        if option.kind is OptionKind.drug and not any(key in r.options for r in safety.rules):
            problems.append(Problem(f"treatments.yaml: options.{key}", "a drug without any safety rule"))
        if option.kind in MEDICINES and not any(
            key in r.options and r.fact == "outside_scope" and r.effect is Effect.block for r in safety.rules
        ):
            problems.append(
                Problem(f"treatments.yaml: options.{key}", "a medicine without the scope rule (a block on the fact outside_scope)")
            )
    for key, plan in treatments.plans.items():
        for item in plan.items:
            if item not in treatments.options:
                problems.append(Problem(f"treatments.yaml: plans.{key}", f"unknown option {item!r}"))
        if len(set(plan.items)) != len(plan.items):
            problems.append(Problem(f"treatments.yaml: plans.{key}", "an option is listed twice"))
    for name in CODE_OPTIONS:
        if name not in treatments.options:
            problems.append(Problem("treatments.yaml: options", f"{name!r} is not defined"))
    ids = [r.id for r in safety.rules]
    if len(set(ids)) != len(ids):
        problems.append(Problem("safety.yaml", "rule ids must be unique"))
    for rule in safety.rules:
        for option in rule.options:
            if option not in treatments.options:
                problems.append(Problem(f"safety.yaml: {rule.id}", f"unknown option {option!r}"))
            elif treatments.options[option].kind is OptionKind.urgent_pathway and rule.effect is Effect.block:
                problems.append(Problem(f"safety.yaml: {rule.id}", f"blocks the urgent pathway {option!r}; use a caution"))
