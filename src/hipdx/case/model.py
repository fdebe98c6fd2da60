"""The case: what a clinician knows about one patient with atraumatic hip pain.

Every finding is one of three facts: ``present``, ``absent`` or ``unknown``. A field that
is left out is ``unknown``, never ``absent``. Numbers with a unit arrive as
``{"value": 2.1, "unit": "mg/dL"}`` and are converted once to the canonical unit;
implausible values and unknown units are rejected with the field and the reason.

The model is strict (``extra="forbid"``): a misspelt field is an error, not a silently
ignored fact.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hipdx.case.timeline import MAX_DAYS_SINCE_ONSET, date_problem, timeline_problems
from hipdx.case.units import QUANTITIES
from hipdx.jsonio import excerpt


class Presence(str, Enum):
    """A finding is present, absent, or not known: three different facts."""

    present = "present"
    absent = "absent"
    unknown = "unknown"


class Sex(str, Enum):
    female = "female"
    male = "male"
    unknown = "unknown"


class Side(str, Enum):
    left = "left"
    right = "right"
    both = "both"
    unknown = "unknown"


class PregnancyStatus(str, Enum):
    not_pregnant = "not_pregnant"
    pregnant = "pregnant"
    postpartum = "postpartum"
    unknown = "unknown"


class OnsetType(str, Enum):
    sudden = "sudden"
    gradual = "gradual"
    unknown = "unknown"


class Trauma(str, Enum):
    none = "none"
    minor = "minor"
    major = "major"
    unknown = "unknown"


class RangeOfMotion(str, Enum):
    """Hip range of motion on examination."""

    full = "full"
    painful_at_end_range = "painful_at_end_range"
    restricted = "restricted"
    severely_restricted = "severely_restricted"
    unknown = "unknown"


class Modality(str, Enum):
    radiograph = "radiograph"
    mri = "mri"
    ct = "ct"
    bone_scan = "bone_scan"


class EdemaExtent(str, Enum):
    """Extent of femoral bone marrow edema on MRI (T1 low, T2/STIR high)."""

    none = "none"
    focal = "focal"
    femoral_head = "femoral_head"
    head_and_neck = "head_and_neck"
    intertrochanteric = "intertrochanteric"
    femoral_neck = "femoral_neck"
    unknown = "unknown"


class JointSpace(str, Enum):
    preserved = "preserved"
    narrowed = "narrowed"
    destroyed = "destroyed"
    unknown = "unknown"


class Uptake(str, Enum):
    """Bone scintigraphy pattern at the symptomatic hip."""

    normal = "normal"
    diffuse_increased = "diffuse_increased"
    focal_increased = "focal_increased"
    photopenic = "photopenic"
    unknown = "unknown"


class ContrastPattern(str, Enum):
    """Femoral-head enhancement after intravenous gadolinium."""

    homogeneous_enhancement = "homogeneous_enhancement"
    subchondral_non_enhancement = "subchondral_non_enhancement"
    synovial_or_rim_enhancement = "synovial_or_rim_enhancement"
    unknown = "unknown"


class FractureSide(str, Enum):
    """Side of the femoral neck a stress fracture starts on (Shin & Gillingham 1996)."""

    tension = "tension"
    compression = "compression"
    unknown = "unknown"


class Setting(str, Enum):
    """Where the patient is seen: the prior of acute conditions depends on it."""

    outpatient_clinic = "outpatient_clinic"
    emergency_department = "emergency_department"


class Walking(str, Enum):
    """Walking ability at a visit."""

    normal = "normal"
    limp = "limp"
    walking_aids = "walking_aids"
    unable = "unable"
    unknown = "unknown"


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_enum_values=False, str_strip_whitespace=True, allow_inf_nan=False
    )


# --- the value types: strict, nothing converted --------------------------------------------

#: A number as JSON writes it, an integer or a decimal. ``true`` is not 1 and ``"45"`` is
#: not 45: a boolean or a number in quotes is refused, never converted.
Number = Annotated[float, Strict()]
#: A yes/no flag: ``true`` or ``false`` only (not 1, 0, "yes").
Flag = Annotated[bool, Strict()]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> dt.date:
    """A date given as ISO text ``"YYYY-MM-DD"`` (or a :class:`datetime.date` from Python)."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"give a date without a time, not {value.isoformat()!r}")
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{excerpt(value)} is not a calendar date") from None
    if isinstance(value, dt.date):
        reason = date_problem(value)
        if reason is not None:
            raise ValueError(reason)
        return value
    raise ValueError(
        f'give the date as text "YYYY-MM-DD", not {excerpt(value)} (a number is not read as a date)'
    )


#: Bidirectional embedding, override and isolate controls: they reorder what a terminal or
#: a browser shows, so text can read differently from what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def refused_character(text: str, multiline: bool) -> str | None:
    """The reason ``text`` is refused as free text, or None when it is plain text.

    Refused: control characters (``ESC`` starts the terminal sequences that recolour, hide
    or erase what follows; a carriage return overwrites the line), lone surrogates and
    bidirectional controls; line breaks and tabs are allowed in ``multiline`` text only.
    """
    for position, char in enumerate(text):
        if multiline and char in "\n\t":
            continue
        if char in _BIDI_CONTROLS or (not char.isprintable() and unicodedata.category(char) != "Zs"):
            name = "a line break" if char in "\n\r" else "a tab" if char == "\t" else "a control character"
            return (
                f"is not printable text: it contains {name} (U+{ord(char):04X}) at character {position + 1}; "
                "remove it (control characters can hide or rewrite what a terminal shows)"
            )
    return None


def _single_line(text: str) -> str:
    reason = refused_character(text, multiline=False)
    if reason:
        raise ValueError(reason)
    return text


def _multiline(text: str) -> str:
    reason = refused_character(text, multiline=True)
    if reason:
        raise ValueError(reason)
    return text


#: Free text on one line (an id, a site, a unit): printable characters only.
Line = Annotated[str, AfterValidator(_single_line)]
#: Free text that may span lines (a note): printable characters, line breaks and tabs.
Paragraph = Annotated[str, AfterValidator(_multiline)]

#: A calendar date, only as ISO text ``"YYYY-MM-DD"``; a number is never read as a Unix time.
Date = Annotated[dt.date, BeforeValidator(_iso_date)]


P = Presence
_U = Presence.unknown


class Measurement(_Strict):
    """A value with its unit, as measured: ``{"value": 2.1, "unit": "mg/dL"}``."""

    value: Number
    unit: Line = Field(min_length=1)


_LAB_NAMES = ("esr", "crp", "wbc", "temperature", "vitamin_d", "calcium", "creatinine", "egfr", "alp", "synovial_wbc")


class LabResult(str, Enum):
    """A laboratory result reported only in words, against the laboratory's reference range."""

    normal = "normal"
    raised = "raised"


#: Labs whose result can be given in words (``Labs.qualitative``): those the reasoning reads
#: against a reference range (a fever counts as a raised temperature).
QualitativeLab = Literal["esr", "crp", "wbc", "temperature", "calcium"]


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


class Labs(_Strict):
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

    _canonical: dict[str, float] = PrivateAttr(default_factory=dict)

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


class Pregnancy(_Strict):
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


class Onset(_Strict):
    """When and how the pain began. Give a date or the days since onset, not both."""

    type: OnsetType = OnsetType.unknown
    date: Date | None = None
    days_since_onset: Number | None = Field(default=None, ge=0, le=MAX_DAYS_SINCE_ONSET)

    @model_validator(mode="after")
    def _one_time(self) -> Onset:
        if self.date is not None and self.days_since_onset is not None:
            raise ValueError("days_since_onset: give either date or days_since_onset, not both")
        return self


class Pain(_Strict):
    """Pain features."""

    weight_bearing: Presence = _U
    at_rest: Presence = _U
    at_night: Presence = _U
    relieved_by_lying_down: Presence = _U
    severity_0_10: Number | None = Field(default=None, ge=0, le=10)


class Corticosteroids(_Strict):
    """Systemic corticosteroid exposure, as prednisolone-equivalent dose."""

    status: Presence = _U
    dose_mg_per_day: Number | None = Field(default=None, gt=0, le=2000)
    duration_weeks: Number | None = Field(default=None, gt=0, le=5200)

    @model_validator(mode="after")
    def _dose_needs_exposure(self) -> Corticosteroids:
        if (self.dose_mg_per_day is not None or self.duration_weeks is not None) and self.status is Presence.absent:
            raise ValueError("status: a dose or duration is given but status is 'absent'")
        return self


class RiskFactors(_Strict):
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


class Comorbidities(_Strict):
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
    peptic_ulcer_history: Presence = Field(
        default=_U, description="History of peptic ulcer or gastrointestinal bleeding (active disease: bleeding_risk)"
    )
    open_epiphyses: Presence = Field(
        default=_U, description="Growth plates not yet closed on radiographs (adolescents and young adults)"
    )


_XR_CT = frozenset({Modality.radiograph, Modality.ct})
_MRI = frozenset({Modality.mri})
_STRUCTURAL = frozenset({Modality.radiograph, Modality.ct, Modality.mri})
_SCAN = frozenset({Modality.bone_scan})

#: The modalities on which each imaging finding can be seen; a finding reported on
#: another modality is an input error.
FINDING_MODALITIES: dict[str, frozenset[Modality]] = {
    "osteopenia": _XR_CT,
    "subchondral_sclerosis": _XR_CT,
    "subchondral_lucency": _XR_CT,
    "crescent_sign": _XR_CT,
    "collapse": _STRUCTURAL,
    "joint_space": _STRUCTURAL,
    "femoral_neck_fracture_line": _STRUCTURAL,
    "femoral_neck_fracture_side": _STRUCTURAL,
    "fracture_displaced": _STRUCTURAL,
    "femoral_neck_fracture_width_percent": _STRUCTURAL,
    "necrotic_extent_percent": _STRUCTURAL,
    "subchondral_fracture_line": _STRUCTURAL,
    "focal_lesion": _STRUCTURAL,
    "intra_articular_mass": _STRUCTURAL,
    "soft_tissue_collection": frozenset({Modality.mri, Modality.ct}),
    "edema": _MRI,
    "t1_low": _MRI,
    "stir_high": _MRI,
    "edema_extent": _MRI,
    "acetabular_edema": _MRI,
    "effusion": _MRI,
    "synovitis": _MRI,
    "double_line_sign": _MRI,
    "subchondral_band": _MRI,
    "subchondral_band_thickness_mm": _MRI,
    "subchondral_band_length_mm": _MRI,
    "contrast_pattern": _MRI,
    "chemical_shift_signal_drop_percent": _MRI,
    "uptake": _SCAN,
}


class ImagingFindings(_Strict):
    """Typed findings of one imaging study. Leave out what the report does not say."""

    # radiograph / CT
    osteopenia: Presence = _U
    subchondral_sclerosis: Presence = _U
    subchondral_lucency: Presence = _U
    crescent_sign: Presence = _U
    # any structural modality
    collapse: Presence = Field(default=_U, description="Flattening or depression of the femoral head")
    collapse_depth_mm: Number | None = Field(default=None, ge=0, le=30)
    joint_space: JointSpace = JointSpace.unknown
    femoral_neck_fracture_line: Presence = _U
    femoral_neck_fracture_side: FractureSide = FractureSide.unknown
    fracture_displaced: Presence = _U
    femoral_neck_fracture_width_percent: Number | None = Field(
        default=None, ge=0, le=100, description="Length of a neck fracture line as a percentage of the neck width"
    )
    necrotic_extent_percent: Number | None = Field(
        default=None, ge=0, le=100, description="Share of the femoral head occupied by a necrotic segment"
    )
    subchondral_fracture_line: Presence = _U
    focal_lesion: Presence = Field(default=_U, description="Lytic, sclerotic or marrow-replacing focal lesion")
    intra_articular_mass: Presence = Field(default=_U, description="Nodular or villous mass within the joint")
    soft_tissue_collection: Presence = Field(
        default=_U, description="Fluid collection or abscess in the soft tissues around the hip"
    )
    # MRI
    edema: Presence = Field(default=_U, description="Bone marrow edema of the proximal femur")
    t1_low: Presence = _U
    stir_high: Presence = Field(default=_U, description="High signal on STIR or fat-saturated T2/PD")
    edema_extent: EdemaExtent = EdemaExtent.unknown
    acetabular_edema: Presence = _U
    effusion: Presence = _U
    synovitis: Presence = _U
    double_line_sign: Presence = _U
    subchondral_band: Presence = Field(default=_U, description="Subchondral low-signal band or line on T1/T2")
    subchondral_band_thickness_mm: Number | None = Field(default=None, gt=0, le=30)
    subchondral_band_length_mm: Number | None = Field(default=None, gt=0, le=80)
    contrast_pattern: ContrastPattern = ContrastPattern.unknown
    chemical_shift_signal_drop_percent: Number | None = Field(
        default=None, ge=-50, le=100, description="Signal drop of the marrow lesion from in-phase to opposed-phase images (chemical-shift MRI), %"
    )
    # bone scintigraphy
    uptake: Uptake = Uptake.unknown

    @model_validator(mode="after")
    def _coherent(self) -> ImagingFindings:
        measured = self.subchondral_band_thickness_mm is not None or self.subchondral_band_length_mm is not None
        if measured and self.subchondral_band is Presence.absent:
            raise ValueError("subchondral_band: measurements given but subchondral_band is 'absent'")
        if self.edema is Presence.absent and self.edema_extent not in (EdemaExtent.unknown, EdemaExtent.none):
            raise ValueError(f"edema_extent: edema is 'absent' but edema_extent is {self.edema_extent.value!r}")
        if self.collapse_depth_mm is not None and self.collapse is Presence.absent:
            raise ValueError("collapse_depth_mm: given but collapse is 'absent'")
        return self

    def reported(self) -> list[str]:
        """Names of the findings this study reports (not left at unknown)."""
        out = []
        for name in FINDING_MODALITIES:
            value = getattr(self, name)
            if value is None or getattr(value, "value", None) == "unknown":
                continue
            out.append(name)
        return out


class ImagingStudy(_Strict):
    """One dated imaging study of the hip."""

    modality: Modality
    contrast: Flag = Field(default=False, description="MRI with intravenous gadolinium")
    date: Date | None = None
    days_since_onset: Number | None = Field(default=None, ge=0, le=MAX_DAYS_SINCE_ONSET)
    findings: ImagingFindings = ImagingFindings()

    @model_validator(mode="after")
    def _findings_fit_modality(self) -> ImagingStudy:
        if self.date is not None and self.days_since_onset is not None:
            raise ValueError("days_since_onset: give either date or days_since_onset, not both")
        if self.contrast and self.modality is not Modality.mri:
            raise ValueError(f"contrast: contrast is only modelled for MRI, not {self.modality.value}")
        wrong = [n for n in self.findings.reported() if self.modality not in FINDING_MODALITIES[n]]
        if wrong:
            raise ValueError(
                f"findings.{wrong[0]}: {', '.join(wrong)} cannot be reported on a {self.modality.value} study "
                f"(seen on: {', '.join(sorted(m.value for m in FINDING_MODALITIES[wrong[0]]))})"
            )
        if self.findings.contrast_pattern is not ContrastPattern.unknown and not self.contrast:
            raise ValueError("findings.contrast_pattern: given for an MRI without contrast; set contrast: true")
        return self


class Visit(_Strict):
    """One dated follow-up visit of the episode, for comparing the course with the expected one."""

    date: Date | None = None
    days_since_onset: Number | None = Field(default=None, ge=0, le=MAX_DAYS_SINCE_ONSET)
    pain_0_10: Number | None = Field(default=None, ge=0, le=10)
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


class Case(_Strict):
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
