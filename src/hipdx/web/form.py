"""The case-entry form: its widgets, read from the case model, and the way back to a case.

Every field of :class:`hipdx.case.Case` has one widget, derived from its type: a finding
(:class:`~hipdx.case.model.Presence`) is three radio buttons, present / absent / not known,
"not known" by default; a closed value set is a select; a measured value is a number with a
unit select beside it; a date is a date field. Form keys are the case's dotted paths
(``pain.weight_bearing``, ``labs.crp.value``, ``imaging.0.findings.edema``), so an error the
case model reports for a field lands on that field.

Nothing is guessed on the way back: an empty field or "not known" is left out (unknown), a
number that does not read as one is an error naming the field in the clinician's words, and
the case model's own checks (units, plausibility, times) run unchanged through
:func:`hipdx.case.parse_case`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import BaseModel

from hipdx.case import Case, parse_case
from hipdx.case.model import FINDING_MODALITIES, ImagingFindings, ImagingStudy, Measurement, Modality, Presence, Sex, Visit
from hipdx.case.units import QUANTITIES
from hipdx.errors import InputError, Problem
from hipdx.jsonio import excerpt

#: Words a clinician reads for each case field (the model's names where they already read well).
LABELS: dict[str, str] = {
    "id": "Case label",
    "setting": "Seen in",
    "assessed_on": "Date of this assessment",
    "age_years": "Age",
    "sex": "Sex",
    "weight_kg": "Weight",
    "side": "Painful side",
    "note": "Note (not used by the reasoning)",
    "pregnancy.status": "Pregnancy",
    "pregnancy.gestational_weeks": "Weeks of gestation",
    "pregnancy.postpartum_weeks": "Weeks since delivery",
    "pregnancy.breastfeeding": "Breastfeeding",
    "onset.type": "Onset of pain",
    "onset.date": "Date of onset",
    "onset.days_since_onset": "Days since onset",
    "trauma": "Trauma before the pain",
    "pain.weight_bearing": "Pain on weight-bearing",
    "pain.at_rest": "Pain at rest",
    "pain.at_night": "Pain at night",
    "pain.relieved_by_lying_down": "Relieved by lying down",
    "pain.severity_0_10": "Pain severity",
    "limp": "Limp",
    "unable_to_bear_weight": "Unable to bear weight",
    "range_of_motion": "Hip range of motion",
    "systemic_symptoms": "Weight loss, night sweats or malaise",
    "morning_stiffness": "Morning stiffness over 30 minutes",
    "other_joint_arthritis": "Arthritis of another joint in this illness (not the other hip)",
    "systolic_bp_mmhg": "Systolic blood pressure",
    "risk_factors.corticosteroids.status": "Systemic corticosteroids",
    "risk_factors.corticosteroids.dose_mg_per_day": "Prednisolone-equivalent dose",
    "risk_factors.corticosteroids.duration_weeks": "Duration of corticosteroids",
    "risk_factors.alcohol_excess": "Alcohol excess",
    "risk_factors.smoking": "Smoking",
    "risk_factors.sickle_cell_disease": "Sickle cell disease",
    "risk_factors.sle": "Systemic lupus erythematosus",
    "risk_factors.hiv": "HIV infection",
    "risk_factors.bariatric_surgery": "Bariatric surgery",
    "risk_factors.osteoporosis": "Known osteoporosis",
    "risk_factors.prior_episodes_other_joints": "Earlier episodes in other joints",
    "risk_factors.cancer_history": "History of cancer",
    "risk_factors.repetitive_loading": "Recent increase in running or marching",
    "risk_factors.inflammatory_disease": "Known inflammatory arthritis",
    "risk_factors.immunosuppression": "Immunosuppression",
    "risk_factors.recent_joint_procedure": "Injection or surgery of this hip in 3 months",
    "risk_factors.injection_drug_use": "Injects drugs",
    "labs.esr": "ESR",
    "labs.crp": "CRP",
    "labs.wbc": "White cell count",
    "labs.temperature": "Temperature",
    "labs.vitamin_d": "25-OH vitamin D",
    "labs.calcium": "Calcium (albumin-corrected)",
    "labs.creatinine": "Creatinine",
    "labs.egfr": "eGFR",
    "labs.alp": "Alkaline phosphatase",
    "labs.bmd_t_score": "Bone density T-score",
    "labs.synovial_wbc": "Joint-fluid white cells",
    "labs.synovial_culture": "Joint-fluid Gram stain or culture positive",
    "labs.paraprotein": "Paraprotein on electrophoresis",
    "contrast": "With intravenous contrast",
    "date": "Date of the study",
    "days_since_onset": "Days since onset",
    "findings.osteopenia": "Osteopenia",
    "findings.subchondral_sclerosis": "Subchondral sclerosis",
    "findings.subchondral_lucency": "Subchondral lucency",
    "findings.crescent_sign": "Crescent sign",
    "findings.collapse": "Collapse of the femoral head",
    "findings.collapse_depth_mm": "Depth of collapse",
    "findings.joint_space": "Joint space",
    "findings.femoral_neck_fracture_line": "Femoral neck fracture line",
    "findings.femoral_neck_fracture_side": "Side of the neck fracture",
    "findings.fracture_displaced": "Fracture displaced",
    "findings.femoral_neck_fracture_width_percent": "Fracture line, share of neck width",
    "findings.necrotic_extent_percent": "Necrotic share of the head",
    "findings.subchondral_fracture_line": "Subchondral fracture line",
    "findings.focal_lesion": "Focal lesion",
    "findings.intra_articular_mass": "Intra-articular mass",
    "findings.iliac_lesion": "Lesion of the ilium (not sacroiliitis)",
    "findings.soft_tissue_collection": "Soft-tissue collection or abscess",
    "findings.edema": "Bone marrow edema",
    "findings.t1_low": "Low T1 signal",
    "findings.stir_high": "High STIR / fat-saturated T2 signal",
    "findings.edema_extent": "Extent of edema",
    "findings.acetabular_edema": "Acetabular edema",
    "findings.effusion": "Joint effusion",
    "findings.synovitis": "Synovitis",
    "findings.double_line_sign": "Double-line sign",
    "findings.subchondral_band": "Subchondral low-signal band",
    "findings.subchondral_band_thickness_mm": "Band thickness",
    "findings.subchondral_band_length_mm": "Band length",
    "findings.contrast_pattern": "Enhancement pattern",
    "findings.chemical_shift_signal_drop_percent": "Chemical-shift signal drop",
    "findings.uptake": "Uptake at the hip",
    "visit.date": "Date of the visit",
    "visit.days_since_onset": "Days since onset",
    "visit.pain_0_10": "Pain in this hip",
    "visit.walking": "Walking",
    "visit.range_of_motion": "Hip range of motion",
    "visit.edema_extent": "Edema on MRI",
    "visit.edema_volume_ml": "Edema volume",
    "visit.bmd_t_score": "Bone density T-score",
    "visit.new_joint_pain": "New pain in another joint",
    "visit.new_joint_site": "Where",
    "visit.note": "Note",
}

#: Units shown beside a plain number (the unit is in the field's name).
UNITS: dict[str, str] = {
    "age_years": "years",
    "weight_kg": "kg",
    "pregnancy.gestational_weeks": "weeks",
    "pregnancy.postpartum_weeks": "weeks",
    "onset.days_since_onset": "days",
    "days_since_onset": "days",
    "pain.severity_0_10": "0-10",
    "systolic_bp_mmhg": "mmHg",
    "risk_factors.corticosteroids.dose_mg_per_day": "mg/day",
    "risk_factors.corticosteroids.duration_weeks": "weeks",
    "labs.bmd_t_score": "SD",
    "findings.collapse_depth_mm": "mm",
    "findings.femoral_neck_fracture_width_percent": "%",
    "findings.necrotic_extent_percent": "%",
    "findings.subchondral_band_thickness_mm": "mm",
    "findings.subchondral_band_length_mm": "mm",
    "findings.chemical_shift_signal_drop_percent": "%",
    "visit.days_since_onset": "days",
    "visit.pain_0_10": "0-10",
    "visit.edema_volume_ml": "mL",
    "visit.bmd_t_score": "SD",
}

MODALITY_NAMES = {"radiograph": "Radiograph", "mri": "MRI", "ct": "CT", "bone_scan": "Bone scan"}

#: The sections of the form: title, the case's top-level fields, whether it starts open.
SECTIONS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("patient", "Patient", ("id", "age_years", "sex", "weight_kg", "side", "setting", "assessed_on"), True),
    ("pregnancy", "Pregnancy", ("pregnancy",), True),
    ("history", "Onset and pain", ("onset", "trauma", "pain"), True),
    ("examination", "Examination", ("limp", "unable_to_bear_weight", "range_of_motion", "systemic_symptoms", "morning_stiffness", "other_joint_arthritis"), True),
    ("risk", "Risk factors", ("risk_factors",), True),
    ("labs", "Laboratory", ("labs",), True),
    ("safety", "Safety facts for the plan", ("comorbidities", "systolic_bp_mmhg"), False),
    ("note", "Note", ("note",), False),
)

#: Women of these ages are asked about pregnancy (the case model accepts a pregnancy at 10-60).
CHILD_BEARING_AGES = (10.0, 60.0)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DIGITS = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)")


@dataclass(frozen=True)
class Widget:
    """One input of the form."""

    name: str
    label: str
    kind: str  # presence, choice, number, measurement, text, paragraph, date, flag
    choices: tuple[tuple[str, str], ...] = ()
    units: tuple[str, ...] = ()
    unit: str = ""
    hint: str = ""
    default: str = ""

    @property
    def dom_id(self) -> str:
        return "f-" + self.name.replace(".", "-")


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    widgets: tuple[Widget, ...]
    open: bool = True


@dataclass
class FormState:
    """The form as entered: its values by key and the problems found in them."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    summary: list[tuple[str, str, str]] = field(default_factory=list)  # (dom id, label, message)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)


def choice_label(value: str) -> str:
    """An enum value in words: ``unknown`` -> ``not known``, ``head_and_neck`` -> ``head and neck``."""
    return "not known" if value == "unknown" else value.replace("_", " ")


def _label(path: str, leaf_path: str) -> str:
    return LABELS.get(path) or LABELS.get(leaf_path) or path.rsplit(".", 1)[-1].replace("_", " ").capitalize()


def _unwrap(annotation: Any) -> Any:
    """The type inside ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        else:
            return annotation


def _widgets(model: type[BaseModel], prefix: str, label_prefix: str, names: Iterable[str] | None = None) -> list[Widget]:
    out: list[Widget] = []
    fields = model.model_fields
    for name in names or fields:
        info = fields[name]
        path = f"{prefix}{name}"
        leaf = f"{label_prefix}{name}"
        kind_type = _unwrap(info.annotation)
        label = _label(path, leaf)
        hint = info.description or ""
        unit = UNITS.get(path) or UNITS.get(leaf, "")
        if kind_type is Presence:
            out.append(Widget(path, label, "presence", hint=hint))
        elif isinstance(kind_type, type) and issubclass(kind_type, Enum):
            default = info.default.value if isinstance(info.default, Enum) else ""
            out.append(Widget(path, label, "choice", tuple((e.value, choice_label(e.value)) for e in kind_type), hint=hint, default=default))
        elif kind_type is Measurement:
            quantity = QUANTITIES[name]
            out.append(Widget(path, label, "measurement", units=quantity.accepted_units, unit=quantity.canonical_unit, hint=hint))
        elif isinstance(kind_type, type) and issubclass(kind_type, BaseModel):
            out.extend(_widgets(kind_type, f"{path}.", f"{leaf}."))
        elif kind_type is float:
            out.append(Widget(path, label, "number", unit=unit, hint=hint))
        elif kind_type is bool:
            out.append(Widget(path, label, "flag", hint=hint))
        elif kind_type is dt.date:
            out.append(Widget(path, label, "date", hint=hint))
        elif kind_type is str:
            out.append(Widget(path, label, "paragraph" if name == "note" else "text", hint=hint))
        # lists (imaging, visits) have their own parts of the form
    return out


def case_sections() -> tuple[Section, ...]:
    """The sections of the form, every widget derived from the case model."""
    return tuple(Section(sid, title, tuple(_widgets(Case, "", "", names)), opened) for sid, title, names, opened in SECTIONS)


def _shown_for(finding: str, modality: Modality) -> bool:
    related = {"collapse_depth_mm": "collapse", "subchondral_band_length_mm": "subchondral_band_thickness_mm"}
    allowed = FINDING_MODALITIES.get(related.get(finding, finding))
    if finding == "contrast_pattern":
        return modality is Modality.mri
    return allowed is not None and modality in allowed


def study_widgets(index: int, modality: Modality) -> tuple[Widget, ...]:
    """The inputs of one imaging study: its time, and the findings its modality can show."""
    prefix = f"imaging.{index}."
    timing = _widgets(ImagingStudy, prefix, "", ["date", "days_since_onset"])
    if modality is Modality.mri:
        timing += _widgets(ImagingStudy, prefix, "", ["contrast"])
    findings = [n for n in ImagingFindings.model_fields if _shown_for(n, modality)]
    return tuple(timing + _widgets(ImagingFindings, f"{prefix}findings.", "findings.", findings))


def visit_widgets() -> tuple[Widget, ...]:
    """The inputs of one follow-up visit (keys ``visit.<field>``)."""
    return tuple(_widgets(Visit, "visit.", "visit."))


def visit_from_form(values: Mapping[str, str], widgets: Mapping[str, Widget]) -> tuple[dict[str, Any], list[Problem]]:
    """The visit JSON object the visit form describes, and the problems of values that are not
    of the right kind; the case model checks the rest."""
    raw, problems, _ = case_from_form(((k, v) for k, v in values.items() if k.startswith("visit.")), widgets)
    return raw.get("visit", {}), problems


#: every input a study can have, by its key below ``imaging.N.``
_STUDY_WIDGETS: dict[str, Widget] = {
    w.name.split(".", 2)[2]: w for modality in Modality for w in study_widgets(0, modality)
}


def all_widgets(sections: Sequence[Section]) -> dict[str, Widget]:
    return {w.name: w for s in sections for w in s.widgets}


def pregnancy_relevant(values: Mapping[str, str]) -> bool:
    """Pregnancy is asked about for a woman of child-bearing age (or whose age is not given)."""
    if values.get("sex") != Sex.female.value:
        return values.get("pregnancy.status", "unknown") not in ("", "unknown")  # never hide what was entered
    age = _number_or_none(values.get("age_years", ""))
    return age is None or CHILD_BEARING_AGES[0] <= age <= CHILD_BEARING_AGES[1]


def _number_or_none(text: str) -> float | int | None:
    """The number written, as written: "200" is the integer 200 (so that every message quotes
    it back as "200", not "200.0"), "2.5" a float; None when the text is not a number."""
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        return None
    return int(text) if text.lstrip("+-").isdigit() else float(text)


def studies(values: Mapping[str, str]) -> list[tuple[int, Modality]]:
    """The imaging studies the form holds, by index, with their modality."""
    out = []
    for key, value in values.items():
        m = re.fullmatch(r"imaging\.(\d+)\.modality", key)
        if m and value in Modality._value2member_map_:
            out.append((int(m.group(1)), Modality(value)))
    return sorted(out)


# --- case -> form -------------------------------------------------------------------------


def values_from_case(raw: Mapping[str, Any]) -> dict[str, str]:
    """The form's values for a case given as its JSON object (an example, a stored case)."""
    out: dict[str, str] = {}

    def walk(obj: Any, prefix: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{prefix}{k}.")
        elif isinstance(obj, bool):
            out[prefix[:-1]] = "true" if obj else ""
        elif isinstance(obj, float) and obj.is_integer():
            out[prefix[:-1]] = str(int(obj))
        elif obj is not None:
            out[prefix[:-1]] = str(obj)

    for key, value in raw.items():
        if key == "imaging":
            for i, study in enumerate(value or []):
                walk(study, f"imaging.{i}.")
        elif key == "visits":
            if value:
                out["visits_json"] = json.dumps(value, separators=(",", ":"))
        elif key != "schema_version":
            walk(value, f"{key}.")
    return out


# --- form -> case -------------------------------------------------------------------------


def _set(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _widget_for(key: str, widgets: Mapping[str, Widget]) -> Widget | None:
    if key in widgets:
        return widgets[key]
    m = re.fullmatch(r"imaging\.(\d+)\.(.+)", key)
    if m:
        w = _STUDY_WIDGETS.get(m.group(2))
        if w is not None:
            return Widget(key, w.label, w.kind, w.choices, w.units, w.unit, w.hint, w.default)
    return None


def case_from_form(
    items: Iterable[tuple[str, str]], widgets: Mapping[str, Widget]
) -> tuple[dict[str, Any], list[Problem], dict[int, int]]:
    """The case JSON object the form describes, the problems of values that are not even of
    the right kind (a number that is not one; the case model checks the rest), and the form
    index of each study the case keeps (position in the case's list -> index in the form)."""
    values = dict(items)
    raw: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, text in values.items():
        text = text.strip()
        if key == "visits_json":
            if text:
                try:
                    raw["visits"] = json.loads(text)
                except ValueError:
                    problems.append(Problem("visits", "the visits carried with this case could not be read; reload the case"))
            continue
        if re.fullmatch(r"imaging\.\d+\.modality", key):
            if text not in Modality._value2member_map_:
                problems.append(Problem(key, f"{excerpt(text)} is not an imaging modality"))
            continue
        if key.endswith(".unit") and key[: -len(".unit")] in widgets:
            continue  # read with its value
        if key.endswith(".value") and key[: -len(".value")] in widgets:
            key = key[: -len(".value")]
        widget = _widget_for(key, widgets)
        if widget is None:
            continue  # a control (a button) or a key this form does not hold: nothing to read
        if text in ("", "unknown"):
            continue
        path = key.split(".")
        if widget.kind in ("number", "measurement"):
            number = _number_or_none(text)
            if number is None:
                hint = " with a decimal point (2.5, not 2,5)" if "," in text else ""
                problems.append(Problem(f"{key}.value" if widget.kind == "measurement" else key, f"{excerpt(text)} is not a number; give a number{hint} such as 45 or 2.5"))
                continue
            if widget.kind == "measurement":
                unit = values.get(f"{key}.unit", "").strip() or widget.unit
                _set(raw, path, {"value": number, "unit": unit})
            else:
                _set(raw, path, number)
        elif widget.kind == "flag":
            _set(raw, path, text in ("true", "on", "yes"))
        elif widget.kind == "date" and not _DATE.fullmatch(text):
            problems.append(Problem(key, f"{excerpt(text)} is not a date; give it as YYYY-MM-DD"))
        else:
            _set(raw, path, text)
    # a study is kept when it says something: a time or a finding
    study_map: dict[int, int] = {}
    studies_raw = raw.pop("imaging", {})
    kept = []
    for index, modality in studies(values):
        study = studies_raw.get(str(index), {})
        if study:
            study_map[len(kept)] = index
            kept.append({"modality": modality.value, **study})
    if kept:
        raw["imaging"] = kept
    return raw, problems, study_map


def problem_key(problem_field: str, keys: Iterable[str], study_map: Mapping[int, int] | None = None) -> str | None:
    """The form key a problem of the case belongs to (the field, or the first key under it)."""
    field_path = problem_field
    if study_map:
        m = re.match(r"imaging\.(\d+)(.*)", field_path)
        if m and int(m.group(1)) in study_map:
            field_path = f"imaging.{study_map[int(m.group(1))]}{m.group(2)}"
    keys = list(keys)
    for candidate in (field_path, f"{field_path}.value"):
        if candidate in keys:
            return candidate
    under = [k for k in keys if k.startswith(field_path + ".")]
    if under:
        return under[0]
    parent = field_path.rsplit(".", 1)[0] if "." in field_path else None
    while parent:
        if parent in keys or f"{parent}.value" in keys:
            return parent if parent in keys else f"{parent}.value"
        parent = parent.rsplit(".", 1)[0] if "." in parent else None
    return None


_IDENTIFIER = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
_BOUND = re.compile(r"Input should be (less|greater) than( or equal to)? (\S+)")


def in_words(message: str, given: str = "") -> str:
    """A message of the case model in the clinician's words: field identifiers spelt out
    (``days_since_onset`` -> ``days since onset``) and a bound said as one."""
    bound = _BOUND.fullmatch(message.strip())
    if bound:
        side, equal, limit = bound.groups()
        limit = limit.rstrip(".")
        if side == "less":
            wanted = f"at most {limit}" if equal else f"below {limit}"
        else:
            wanted = f"at least {limit}" if equal else f"above {limit}"
        message = f"{given + ' is out of range; ' if given else ''}give a value {wanted}"
    return _IDENTIFIER.sub(lambda m: m.group(0).replace("_", " "), message)


def form_state(
    values: Mapping[str, str],
    widgets: Mapping[str, Widget],
    problems: Sequence[Problem] = (),
    study_map: Mapping[int, int] | None = None,
) -> FormState:
    """The form with each problem placed on its field, and a summary naming each field.

    ``study_map`` turns a study's position in the case into its index in the form."""
    state = FormState(values=dict(values))
    keys = list(widgets) + [
        w.name for index, modality in studies(values) for w in study_widgets(index, modality)
    ]
    for problem in problems:
        key = problem_key(problem.field, keys, study_map or {}) if problem.field and problem.field != "(case)" else None
        widget = _widget_for(key.removesuffix(".value"), widgets) if key else None
        if widget is None and key:
            widget = _widget_for(key, widgets)
        label = widget.label if widget else "The case"
        if key and key.startswith("imaging."):
            index = int(key.split(".")[1])
            modality = dict(studies(values)).get(index)
            label = f"{MODALITY_NAMES.get(modality.value, 'Imaging') if modality else 'Imaging'} {index + 1}: {label}"
        message = in_words(problem.reason, values.get(key or "", "").strip())
        dom_key = (widget.name if widget else key) or ""
        state.errors.setdefault(dom_key, []).append(message)
        state.summary.append(("f-" + dom_key.replace(".", "-") if dom_key else "case-form", label, message))
    return state


def read_form(items: Iterable[tuple[str, str]], widgets: Mapping[str, Widget], today: dt.date) -> tuple[Case | None, FormState]:
    """The case the form describes, or None and the form with every problem on its field."""
    items = list(items)
    values = dict(items)
    raw, problems, study_map = case_from_form(items, widgets)
    if problems:
        return None, form_state(values, widgets, problems)
    try:
        case = parse_case(raw, today)
    except InputError as err:
        return None, form_state(values, widgets, err.problems or [Problem("", err.message)], study_map)
    return case, FormState(values=values)
