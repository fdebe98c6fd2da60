"""The case: what a clinician knows about one patient with atraumatic hip pain.

Every finding is one of three facts: ``present``, ``absent`` or ``unknown``. A field that
is left out is ``unknown``, never ``absent``. Numbers with a unit arrive as
``{"value": 2.1, "unit": "mg/dL"}`` and are converted once to the canonical unit;
implausible values and unknown units are rejected with the field and the reason.

The model is strict (``extra="forbid"``): a misspelt field is an error, not a silently
ignored fact.

The value types and closed value sets are in :mod:`hipdx.case.values`, the imaging studies in
:mod:`hipdx.case.studies`; their names are available here too, as the case's vocabulary.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from hipdx.case.timeline import MAX_DAYS_SINCE_ONSET, timeline_problems
from hipdx.case.units import QUANTITIES
from hipdx.case.studies import FINDING_MODALITIES, ImagingFindings, ImagingStudy
from hipdx.case.values import (
    P,
    ContrastPattern,
    Date,
    EdemaExtent,
    Flag,
    FractureSide,
    JointSpace,
    LabResult,
    Line,
    Measurement,
    Modality,
    Number,
    OnsetType,
    Paragraph,
    PregnancyStatus,
    QualitativeLab,
    Presence,
    RangeOfMotion,
    Setting,
    Sex,
    Side,
    StrictModel,
    Trauma,
    Uptake,
    Walking,
    refused_character,
)

_U = Presence.unknown


_LAB_NAMES = ("esr", "crp", "wbc", "temperature", "vitamin_d", "calcium", "creatinine", "egfr", "alp", "synovial_wbc")


def _to_canonical(name: str, m: Measurement) -> float:
    quantity = QUANTITIES[name]
    value = quantity.to_canonical(m.value, m.unit)
    if not quantity.plausible_min <= value <= quantity.plausible_max:
        accepted = f"{quantity.plausible_min:g}-{quantity.plausible_max:g} {quantity.canonical_unit}"
        low, high = quantity.plausible_in(m.unit)
        if (low, high) != (quantity.plausible_min, quantity.plausible_max):
            accepted = f"{low:.3g}-{high:.3g} {m.unit}, that is {accepted}"
        raise ValueError(
            f"{m.value:g} {m.unit} is implausible for {name} (accepted {accepted}); check the value and its unit"
        )
    return value


class Labs(StrictModel):
    """Laboratory values and vital signs, each with its unit.

    Accepted units: ESR mm/h; CRP mg/L or mg/dL; WBC 10^9/L or cells/uL; temperature
    degC or degF; 25-OH vitamin D ng/mL or nmol/L; calcium mmol/L or mg/dL; creatinine
    umol/L or mg/dL; eGFR mL/min/1.73m2; ALP U/L. ``bmd_t_score`` is unitless (SD).
    """

    esr: Measurement | None = None
    crp: Measurement | None = None
    wbc: Measurement | None = None
    temperature: Measurement | None = None
    vitamin_d: Measurement | None = None
    calcium: Measurement | None = None
    creatinine: Measurement | None = None
    egfr: Measurement | None = None
    alp: Measurement | None = None
    bmd_t_score: Number | None = Field(default=None, ge=-8.0, le=6.0)
    synovial_wbc: Measurement | None = Field(default=None, description="White cells in hip joint fluid (aspiration), cells/uL or 10^9/L")
    synovial_culture: Presence = Field(default=_U, description="Gram stain or culture of the joint fluid positive")
    paraprotein: Presence = Field(default=_U, description="A monoclonal protein on serum protein electrophoresis")
    qualitative: dict[QualitativeLab, LabResult] = Field(
        default_factory=dict,
        description=(
            "Results reported only in words, when no value was given: {\"crp\": \"raised\", "
            "\"temperature\": \"normal\"} (afebrile). Not for a lab that is also given as a value."
        ),
    )

    # a default, not default_factory: pydantic inspects a factory's signature on every instance (copied, never shared)
    _canonical: dict[str, float] = PrivateAttr(default={})

    @field_validator(*_LAB_NAMES)
    @classmethod
    def _unit_and_range(cls, m: Measurement | None, info: ValidationInfo) -> Measurement | None:
        if m is not None:
            _to_canonical(info.field_name, m)
        return m

    @model_validator(mode="after")
    def _convert(self) -> Labs:
        for name in self.qualitative:
            if getattr(self, name) is not None:
                raise ValueError(f"qualitative.{name}: {name} is also given as a value; give one or the other")
        self._canonical = {
            name: _to_canonical(name, m) for name in _LAB_NAMES if (m := getattr(self, name)) is not None
        }
        return self

    def canonical(self, name: str) -> float | None:
        """The value of lab ``name`` in its canonical unit, or None when not measured."""
        if name == "bmd_t_score":
            return self.bmd_t_score
        # read the private store directly: pydantic's private-attribute lookup is slow on hot paths
        return self.__pydantic_private__["_canonical"].get(name)  # type: ignore[index]


class Pregnancy(StrictModel):
    """Pregnancy state. Weeks of gestation when pregnant, weeks since delivery when postpartum."""

    status: PregnancyStatus = PregnancyStatus.unknown
    gestational_weeks: Number | None = Field(default=None, ge=0, le=44)
    postpartum_weeks: Number | None = Field(default=None, ge=0, le=52)
    breastfeeding: Presence = _U

    @model_validator(mode="after")
    def _consistent(self) -> Pregnancy:
        if self.gestational_weeks is not None and self.status is not PregnancyStatus.pregnant:
            raise ValueError(f"gestational_weeks: given but status is {self.status.value!r}, not 'pregnant'")
        if self.postpartum_weeks is not None and self.status is not PregnancyStatus.postpartum:
            raise ValueError(f"postpartum_weeks: given but status is {self.status.value!r}, not 'postpartum'")
        return self


class Onset(StrictModel):
    """When and how the pain began. Give a date or the days since onset, not both."""

    type: OnsetType = OnsetType.unknown
    date: Date | None = None
    days_since_onset: Number | None = Field(default=None, ge=0, le=MAX_DAYS_SINCE_ONSET)

    @model_validator(mode="after")
    def _one_time(self) -> Onset:
        if self.date is not None and self.days_since_onset is not None:
            raise ValueError("days_since_onset: give either date or days_since_onset, not both")
        return self


class Pain(StrictModel):
    """Pain features."""

    weight_bearing: Presence = _U
    at_rest: Presence = _U
    at_night: Presence = _U
    relieved_by_lying_down: Presence = _U
    severity_0_10: Number | None = Field(default=None, ge=0, le=10)


class Corticosteroids(StrictModel):
    """Systemic corticosteroid exposure, as prednisolone-equivalent dose."""

    status: Presence = _U
    dose_mg_per_day: Number | None = Field(default=None, gt=0, le=2000)
    duration_weeks: Number | None = Field(default=None, gt=0, le=5200)

    @model_validator(mode="after")
    def _dose_needs_exposure(self) -> Corticosteroids:
        if (self.dose_mg_per_day is not None or self.duration_weeks is not None) and self.status is Presence.absent:
            raise ValueError("status: a dose or duration is given but status is 'absent'")
        return self


class RiskFactors(StrictModel):
    """Risk factors and relevant history."""

    corticosteroids: Corticosteroids = Corticosteroids()
    alcohol_excess: Presence = _U
    smoking: Presence = _U
    sickle_cell_disease: Presence = _U
    sle: Presence = _U
    hiv: Presence = _U
    bariatric_surgery: Presence = _U
    osteoporosis: Presence = _U
    prior_episodes_other_joints: Presence = _U
    cancer_history: Presence = _U
    repetitive_loading: Presence = Field(
        default=_U, description="Recent increase in running, marching or other repetitive loading"
    )
    inflammatory_disease: Presence = Field(
        default=_U, description="Known spondyloarthritis, rheumatoid or psoriatic arthritis"
    )
    immunosuppression: Presence = _U
    recent_joint_procedure: Presence = Field(
        default=_U, description="Injection, arthroscopy or surgery of this hip in the last 3 months"
    )
    injection_drug_use: Presence = Field(
        default=_U, description="Injects drugs (heroin, other opioids, stimulants), now or in the recent past"
    )


class Comorbidities(StrictModel):
    """Conditions that decide whether a treatment is safe (drug labels and guidelines)."""

    coronary_heart_disease: Presence = Field(default=_U, description="Severe coronary heart disease or unstable angina")
    recent_myocardial_infarction: Presence = Field(default=_U, description="Myocardial infarction in the last 6 months")
    heart_failure: Presence = Field(default=_U, description="Congestive heart failure, NYHA II-IV")
    severe_arrhythmia: Presence = _U
    recent_stroke_or_tia: Presence = Field(default=_U, description="Stroke or TIA in the last 3 months")
    bleeding_risk: Presence = Field(default=_U, description="Active peptic ulcer, recent haemorrhage or bleeding disorder")
    hepatic_impairment: Presence = _U
    hyperparathyroidism: Presence = _U
    paget_disease: Presence = _U
    skeletal_radiation: Presence = Field(default=_U, description="Previous external-beam or implant radiation to the skeleton")
    bisphosphonate_hypersensitivity: Presence = _U
    pending_dental_surgery: Presence = Field(default=_U, description="Planned invasive dental work (osteonecrosis of the jaw risk)")
    anticoagulant_use: Presence = Field(default=_U, description="Takes an anticoagulant (warfarin, a direct oral anticoagulant, heparin)")
    calcineurin_inhibitor_use: Presence = Field(
        default=_U, description="Takes a calcineurin inhibitor (tacrolimus or ciclosporin), as after an organ transplant"
    )
    peptic_ulcer_history: Presence = Field(
        default=_U, description="History of peptic ulcer or gastrointestinal bleeding (active disease: bleeding_risk)"
    )
    open_epiphyses: Presence = Field(
        default=_U, description="Growth plates not yet closed on radiographs (adolescents and young adults)"
    )

class Visit(StrictModel):
    """One dated follow-up visit of the episode, for comparing the course with the expected one."""

    date: Date | None = None
    days_since_onset: Number | None = Field(default=None, ge=0, le=MAX_DAYS_SINCE_ONSET)
    pain_0_10: Number | None = Field(
        default=None, ge=0, le=10,
        description="Pain of the hip of this episode (the case's side) on a 0-10 scale; pain of another joint "
        "(the other hip included) is new_joint_pain with new_joint_site, not this score",
    )
    walking: Walking = Walking.unknown
    range_of_motion: RangeOfMotion = RangeOfMotion.unknown
    edema_extent: EdemaExtent = EdemaExtent.unknown
    edema_volume_ml: Number | None = Field(default=None, ge=0, le=500)
    bmd_t_score: Number | None = Field(default=None, ge=-8.0, le=6.0)
    new_joint_pain: Presence = Field(default=_U, description="New pain in another joint since the last visit")
    new_joint_site: Line | None = Field(default=None, max_length=100)
    note: Paragraph | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _one_time(self) -> Visit:
        if (self.date is None) == (self.days_since_onset is None):
            raise ValueError("days_since_onset: give exactly one of date or days_since_onset")
        return self


class Case(StrictModel):
    """Everything hipdx is told about one patient; the single input of the reasoning core.

    Examples
    --------
    >>> Case.model_validate({"age_years": 45, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 20}})
    ... # doctest: +ELLIPSIS
    Case(...)
    """

    schema_version: Literal["1"] = "1"
    id: Line | None = Field(default=None, max_length=200)
    setting: Setting = Field(
        default=Setting.outpatient_clinic,
        description="Where the patient is seen; the knowledge base's priors are those of the outpatient (referral) clinic",
    )
    note: Paragraph | None = Field(default=None, max_length=5000, description="Free-text summary; not used by the reasoning")
    assessed_on: Date | None = Field(default=None, description="Date of assessment; dates are counted from here")
    age_years: Number | None = Field(default=None, ge=0, le=120)
    sex: Sex = Sex.unknown
    weight_kg: Number | None = Field(
        default=None, ge=QUANTITIES["weight"].plausible_min, le=QUANTITIES["weight"].plausible_max
    )
    pregnancy: Pregnancy = Pregnancy()
    side: Side = Side.unknown
    onset: Onset = Onset()
    trauma: Trauma = Trauma.unknown
    pain: Pain = Pain()
    limp: Presence = _U
    unable_to_bear_weight: Presence = _U
    range_of_motion: RangeOfMotion = RangeOfMotion.unknown
    systemic_symptoms: Presence = Field(default=_U, description="Weight loss, night sweats or malaise")
    morning_stiffness: Presence = Field(default=_U, description="Morning stiffness longer than 30 minutes")
    other_joint_arthritis: Presence = Field(
        default=_U,
        description="Arthritis (pain and swelling) of another joint in the same illness, now or before the hip"
        " (oligo- or polyarthritis); not the other hip: disease of both hips is not this finding",
    )
    risk_factors: RiskFactors = RiskFactors()
    comorbidities: Comorbidities = Comorbidities()
    systolic_bp_mmhg: Number | None = Field(default=None, ge=40, le=300)
    labs: Labs = Labs()
    imaging: Annotated[list[ImagingStudy], Field(max_length=50)] = []
    visits: Annotated[list[Visit], Field(max_length=200)] = []

    @model_validator(mode="after")
    def _plausible(self) -> Case:
        preg = self.pregnancy.status
        if preg in (PregnancyStatus.pregnant, PregnancyStatus.postpartum):
            if self.sex is Sex.male:
                raise ValueError(f"pregnancy.status: {preg.value!r} is impossible for a male patient")
            if self.age_years is not None and not 10 <= self.age_years <= 60:
                raise ValueError(f"pregnancy.status: {preg.value!r} at age {self.age_years:g} is implausible")
        problems = timeline_problems(self, None)  # what can be judged without the date of assessment
        if problems:
            raise ValueError(f"{problems[0].field}: {problems[0].reason}")
        return self


__all__ = [
    "FINDING_MODALITIES",
    "P",
    "Case",
    "Comorbidities",
    "ContrastPattern",
    "Corticosteroids",
    "Date",
    "EdemaExtent",
    "Flag",
    "FractureSide",
    "ImagingFindings",
    "ImagingStudy",
    "JointSpace",
    "LabResult",
    "Labs",
    "Line",
    "Measurement",
    "Modality",
    "Number",
    "Onset",
    "OnsetType",
    "Pain",
    "Paragraph",
    "Pregnancy",
    "PregnancyStatus",
    "Presence",
    "QualitativeLab",
    "RangeOfMotion",
    "RiskFactors",
    "Setting",
    "Sex",
    "Side",
    "StrictModel",
    "Trauma",
    "Uptake",
    "Visit",
    "Walking",
    "refused_character",
]
