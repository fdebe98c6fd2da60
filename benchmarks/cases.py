"""A seeded generator of varied, realistic and valid hipdx cases, for benchmarks and tests.

Each case is drawn around one clinical picture (transient osteoporosis, osteonecrosis,
stress fracture, septic arthritis, ...) so that findings hang together the way they do
in a clinic, then blurred: many fields are left out or given as ``"unknown"``, labs come
in any accepted unit, timing is given as days, as dates, or not at all, and 0-3 imaging
studies report only findings their modality can show. The pictures steer the variety;
they are not labels and carry no diagnostic claim.

Every case validates against :class:`hipdx.case.Case` (``tests/test_batch.py`` checks it).

Examples
--------
>>> from cases import generate_cases
>>> cases = generate_cases(3, seed=1)
>>> len(cases), all(16 <= c["age_years"] <= 90 for c in cases)
(3, True)
"""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

from hipdx.case.model import FINDING_MODALITIES

#: The date the benchmark and the tests assess cases on; generated dates lie before it.
TODAY = dt.date(2026, 1, 15)

PICTURES = ("toh", "onfh", "fnsf", "septic", "inflammatory", "oa", "neoplasm", "nonspecific")
_PICTURE_WEIGHTS = (20, 15, 12, 8, 8, 15, 5, 17)

#: Age range (years) of each picture; clipped to 16-90.
_AGES = {
    "toh": (25, 62),
    "onfh": (20, 65),
    "fnsf": (16, 90),
    "septic": (16, 90),
    "inflammatory": (18, 70),
    "oa": (45, 90),
    "neoplasm": (35, 90),
    "nonspecific": (16, 90),
}

#: P(present | picture) for yes/no findings; anything not listed takes the default of its
#: kind (0.15 for history and examination, 0.08 for imaging and steroids, 0.05 for other
#: risk factors).
_PRESENT: dict[str, dict[str, float]] = {
    "toh": {
        "weight_bearing": 0.95, "at_rest": 0.3, "at_night": 0.3, "relieved_by_lying_down": 0.8, "limp": 0.8,
        "osteopenia": 0.55, "edema": 0.97, "stir_high": 0.97, "t1_low": 0.9, "effusion": 0.7,
        "acetabular_edema": 0.15, "subchondral_band": 0.1, "pregnant": 0.35,
    },
    "onfh": {
        "weight_bearing": 0.9, "at_rest": 0.4, "at_night": 0.4, "limp": 0.6, "corticosteroids": 0.45,
        "alcohol_excess": 0.3, "sickle_cell_disease": 0.05, "sle": 0.08, "subchondral_sclerosis": 0.5,
        "crescent_sign": 0.15, "collapse": 0.25, "edema": 0.6, "stir_high": 0.6, "t1_low": 0.8,
        "double_line_sign": 0.7, "subchondral_band": 0.85, "effusion": 0.5,
    },
    "fnsf": {
        "weight_bearing": 0.95, "at_rest": 0.15, "limp": 0.7, "repetitive_loading": 0.7, "osteoporosis": 0.3,
        "femoral_neck_fracture_line": 0.45, "edema": 0.95, "stir_high": 0.95, "t1_low": 0.8,
        "unable_to_bear_weight": 0.25,
    },
    "septic": {
        "weight_bearing": 0.95, "at_rest": 0.85, "at_night": 0.7, "limp": 0.9, "unable_to_bear_weight": 0.6,
        "systemic_symptoms": 0.6, "immunosuppression": 0.3, "recent_joint_procedure": 0.2, "effusion": 0.95,
        "synovitis": 0.85, "edema": 0.8, "stir_high": 0.8, "acetabular_edema": 0.6, "soft_tissue_collection": 0.35,
    },
    "inflammatory": {
        "at_rest": 0.6, "at_night": 0.5, "morning_stiffness": 0.85, "inflammatory_disease": 0.7,
        "prior_episodes_other_joints": 0.4, "effusion": 0.8, "synovitis": 0.85, "edema": 0.5, "stir_high": 0.5,
        "acetabular_edema": 0.5,
    },
    "oa": {
        "weight_bearing": 0.95, "at_rest": 0.2, "morning_stiffness": 0.25, "limp": 0.6, "subchondral_sclerosis": 0.8,
        "edema": 0.45, "stir_high": 0.45, "acetabular_edema": 0.5, "effusion": 0.4,
    },
    "neoplasm": {
        "intra_articular_mass": 0.1,
        "at_rest": 0.8, "at_night": 0.8, "systemic_symptoms": 0.5, "cancer_history": 0.55, "focal_lesion": 0.8,
        "edema": 0.8, "stir_high": 0.8, "t1_low": 0.9,
    },
    "nonspecific": {"weight_bearing": 0.6, "at_rest": 0.25, "at_night": 0.2, "edema": 0.15, "stir_high": 0.15},
}

_EDEMA_EXTENTS = {
    "toh": ("femoral_head", "head_and_neck", "intertrochanteric", "head_and_neck"),
    "onfh": ("femoral_head", "focal", "head_and_neck"),
    "fnsf": ("femoral_neck", "femoral_neck", "head_and_neck", "intertrochanteric"),
    "septic": ("head_and_neck", "femoral_head", "intertrochanteric"),
    "inflammatory": ("focal", "femoral_head"),
    "oa": ("focal", "femoral_head"),
    "neoplasm": ("focal", "intertrochanteric", "femoral_neck"),
    "nonspecific": ("focal",),
}

#: picture -> (CRP mg/L, ESR mm/h, WBC 10^9/L, temperature degC) ranges
_INFLAMMATION = {
    "septic": ((30, 300), (35, 110), (9.0, 22.0), (37.2, 39.8)),
    "inflammatory": ((8, 60), (20, 70), (5.0, 11.0), (36.4, 37.6)),
    "neoplasm": ((3, 40), (10, 80), (4.0, 12.0), (36.4, 37.8)),
}
_NORMAL_INFLAMMATION = ((0.3, 9.0), (2, 25), (4.0, 10.5), (36.1, 37.4))

_MODALITY_WEIGHTS = {"radiograph": 45, "mri": 40, "ct": 8, "bone_scan": 7}


class _Draw:
    """The random choices of one case."""

    def __init__(self, rng: random.Random, picture: str) -> None:
        self.rng = rng
        self.picture = picture

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def presence(self, name: str, missing: float = 0.35, default: float = 0.15) -> str | None:
        """present / absent by the picture, ``"unknown"`` now and then, or None (left out)."""
        u = self.rng.random()
        if u < missing:
            return None
        if u < missing + 0.04:
            return "unknown"
        return "present" if self.chance(_PRESENT[self.picture].get(name, default)) else "absent"

    def uniform(self, low: float, high: float, digits: int = 1) -> float:
        return round(self.rng.uniform(low, high), digits)


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def _presences(
    d: _Draw, names: list[tuple[str, str]], missing: float = 0.35, default: float = 0.15
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, profile_name in names:
        _put(out, field, d.presence(profile_name, missing, default))
    return out


def _patient(d: _Draw, case: dict[str, Any]) -> None:
    rng = d.rng
    low, high = _AGES[d.picture]
    if d.picture == "fnsf":  # young athletes and recruits, or older insufficiency fractures
        low, high = (17, 40) if d.chance(0.6) else (60, 90)
    age = min(90.0, max(16.0, rng.uniform(low, high)))
    case["age_years"] = round(age) if d.chance(0.8) else round(age, 1)
    sex = rng.choices(["female", "male", "unknown"], weights=[48, 48, 4])[0]
    if d.chance(0.97):
        case["sex"] = sex
    if case.get("sex") == "female" and 16 <= age <= 50:  # pregnancy only for women of child-bearing age
        if d.chance(_PRESENT[d.picture].get("pregnant", 0.03)):
            if d.chance(0.6):
                pregnancy: dict[str, Any] = {"status": "pregnant"}
                _put(pregnancy, "gestational_weeks", rng.choice([None, d.uniform(12, 41, 0)]))
            else:
                pregnancy = {"status": "postpartum"}
                _put(pregnancy, "postpartum_weeks", rng.choice([None, d.uniform(0, 30, 0)]))
                _put(pregnancy, "breastfeeding", d.presence("breastfeeding", missing=0.4))
            case["pregnancy"] = pregnancy
        elif d.chance(0.6):
            case["pregnancy"] = {"status": rng.choice(["not_pregnant", "not_pregnant", "unknown"])}
    if d.chance(0.5):
        case["weight_kg"] = d.uniform(45, 130)
    if d.chance(0.8):
        case["side"] = rng.choices(["left", "right", "both", "unknown"], weights=[45, 45, 7, 3])[0]


def _timing(d: _Draw, case: dict[str, Any]) -> str:
    """Onset of pain; returns how studies are timed: 'days', 'dates' or 'none'."""
    rng = d.rng
    onset: dict[str, Any] = {}
    sudden = {"toh": 0.6, "fnsf": 0.5, "septic": 0.7}.get(d.picture, 0.3)
    kind = rng.choices(["sudden", "gradual", "unknown", None], weights=[sudden * 80, (1 - sudden) * 80, 5, 15])[0]
    _put(onset, "type", kind)
    mode = rng.choices(["days", "dates", "dates_no_assessed", "none"], weights=[50, 25, 5, 20])[0]
    days = round(rng.expovariate(1 / 45) + 1, rng.choice([0, 1]))
    days = min(days, 1500.0)
    if mode == "days":
        onset["days_since_onset"] = days
    elif mode == "dates":
        assessed = TODAY - dt.timedelta(days=rng.randint(0, 400))
        case["assessed_on"] = assessed.isoformat()
        onset["date"] = (assessed - dt.timedelta(days=int(days))).isoformat()
    elif mode == "dates_no_assessed":
        onset["date"] = (TODAY - dt.timedelta(days=int(days))).isoformat()
    if onset:
        case["onset"] = onset
    return mode


def _history(d: _Draw, case: dict[str, Any]) -> None:
    rng = d.rng
    if d.chance(0.75):
        case["trauma"] = rng.choices(["none", "minor", "major", "unknown"], weights=[80, 12, 2, 6])[0]
    pain = _presences(
        d,
        [("weight_bearing", "weight_bearing"), ("at_rest", "at_rest"), ("at_night", "at_night"),
         ("relieved_by_lying_down", "relieved_by_lying_down")],
    )
    if d.chance(0.6):
        pain["severity_0_10"] = float(rng.randint(2, 10))
    if pain:
        case["pain"] = pain
    for name in ("limp", "unable_to_bear_weight", "systemic_symptoms", "morning_stiffness"):
        _put(case, name, d.presence(name))
    if d.chance(0.65):
        rom = {
            "toh": ["painful_at_end_range", "painful_at_end_range", "full", "restricted"],
            "oa": ["restricted", "restricted", "severely_restricted", "painful_at_end_range"],
            "septic": ["severely_restricted", "restricted"],
        }.get(d.picture, ["full", "painful_at_end_range", "restricted", "unknown"])
        case["range_of_motion"] = rng.choice(rom)


def _risk_factors(d: _Draw, case: dict[str, Any]) -> None:
    names = [
        "alcohol_excess", "smoking", "sickle_cell_disease", "sle", "hiv", "bariatric_surgery", "osteoporosis",
        "prior_episodes_other_joints", "cancer_history", "repetitive_loading", "inflammatory_disease",
        "immunosuppression", "recent_joint_procedure",
    ]
    risk = _presences(d, [(n, n) for n in names], missing=0.45, default=0.05)
    steroids = d.presence("corticosteroids", missing=0.4, default=0.08)
    if steroids is not None:
        cs: dict[str, Any] = {"status": steroids}
        if steroids == "present":
            _put(cs, "dose_mg_per_day", d.rng.choice([None, d.uniform(2.5, 60)]))
            _put(cs, "duration_weeks", d.rng.choice([None, d.uniform(1, 300)]))
        risk["corticosteroids"] = cs
    if risk:
        case["risk_factors"] = risk


def _comorbidities(d: _Draw, case: dict[str, Any]) -> None:
    names = [
        "coronary_heart_disease", "recent_myocardial_infarction", "heart_failure", "severe_arrhythmia",
        "recent_stroke_or_tia", "bleeding_risk", "hepatic_impairment", "hyperparathyroidism", "paget_disease",
        "skeletal_radiation", "bisphosphonate_hypersensitivity", "pending_dental_surgery",
    ]
    if d.chance(0.4):
        comorbidities = _presences(d, [(n, n) for n in names], missing=0.6, default=0.04)
        if comorbidities:
            case["comorbidities"] = comorbidities
    if d.chance(0.4):
        case["systolic_bp_mmhg"] = float(d.rng.randint(100, 175))


def _visits(d: _Draw, case: dict[str, Any], timing: str) -> None:
    """0-2 follow-up visits, timed like the case's studies (always timed: a visit needs a time)."""
    rng = d.rng
    onset = case.get("onset", {})
    visits = []
    for _ in range(rng.choices([0, 1, 2], weights=[80, 14, 6])[0]):
        visit: dict[str, Any] = {}
        if timing == "days":
            visit["days_since_onset"] = d.uniform(0, int(onset["days_since_onset"]), 0)  # not after the assessment
        elif timing.startswith("dates"):
            start = dt.date.fromisoformat(onset["date"])
            end = dt.date.fromisoformat(case["assessed_on"]) if "assessed_on" in case else TODAY
            visit["date"] = (start + dt.timedelta(days=rng.randint(0, (end - start).days))).isoformat()
        else:
            visit["days_since_onset"] = d.uniform(1, 200, 0)
        _put(visit, "pain_0_10", rng.choice([None, float(rng.randint(0, 9))]))
        _put(visit, "walking", rng.choice([None, "normal", "limp", "walking_aids", "unable", "unknown"]))
        _put(visit, "range_of_motion", rng.choice([None, "full", "painful_at_end_range", "restricted"]))
        if d.chance(0.2):
            visit["edema_extent"] = rng.choice(_EDEMA_EXTENTS[d.picture] + ("none",))
        _put(visit, "new_joint_pain", d.presence("new_joint_pain", missing=0.6, default=0.05))
        visits.append(visit)
    if visits:
        case["visits"] = visits


def _labs(d: _Draw, case: dict[str, Any]) -> None:
    rng = d.rng
    crp, esr, wbc, temp = _INFLAMMATION.get(d.picture, _NORMAL_INFLAMMATION)
    if d.chance(0.3):  # most pictures sometimes come with a raised marker
        crp, esr = (5, 40), (10, 45)
    labs: dict[str, Any] = {}

    def measured(p: float) -> bool:
        return d.chance(p)

    if measured(0.6):
        mg_l = rng.uniform(*crp)
        labs["crp"] = rng.choice([{"value": round(mg_l, 1), "unit": "mg/L"}, {"value": round(mg_l / 10, 2), "unit": "mg/dL"}])
    if measured(0.5):
        labs["esr"] = {"value": float(rng.randint(*esr)), "unit": rng.choice(["mm/h", "mm/hr"])}
    if measured(0.5):
        g_l = rng.uniform(*wbc)
        labs["wbc"] = rng.choice(
            [
                {"value": round(g_l, 1), "unit": "10^9/L"},
                {"value": round(g_l, 1), "unit": "G/L"},
                {"value": round(g_l, 1), "unit": "x10^3/uL"},
                {"value": float(round(g_l * 1000, -1)), "unit": "cells/uL"},
                {"value": float(round(g_l * 1000, -1)), "unit": "/mm3"},
            ]
        )
    if measured(0.45):
        c = rng.uniform(*temp)
        labs["temperature"] = rng.choice(
            [{"value": round(c, 1), "unit": "degC"}, {"value": round(c, 1), "unit": "°C"},
             {"value": round(c * 9 / 5 + 32, 1), "unit": "degF"}]
        )
    if measured(0.25):
        ng_ml = rng.uniform(6, 60)
        labs["vitamin_d"] = rng.choice(
            [{"value": round(ng_ml, 1), "unit": "ng/mL"}, {"value": round(ng_ml * 2.496, 0), "unit": "nmol/L"}]
        )
    if measured(0.3):
        mmol = rng.uniform(2.05, 2.65)
        labs["calcium"] = rng.choice(
            [{"value": round(mmol, 2), "unit": "mmol/L"}, {"value": round(mmol * 4.008, 1), "unit": "mg/dL"}]
        )
    if measured(0.35):
        umol = rng.uniform(45, 160)
        labs["creatinine"] = rng.choice(
            [{"value": round(umol), "unit": "umol/L"}, {"value": round(umol / 88.42, 2), "unit": "mg/dL"},
             {"value": round(umol), "unit": "µmol/L"}]
        )
    if measured(0.25):
        labs["egfr"] = {"value": float(rng.randint(35, 120)), "unit": rng.choice(["mL/min/1.73m2", "mL/min"])}
    if measured(0.25):
        labs["alp"] = {"value": float(rng.randint(35, 260)), "unit": rng.choice(["U/L", "IU/L"])}
    if measured(0.15 if d.picture != "toh" else 0.35):
        labs["bmd_t_score"] = d.uniform(-3.8, 1.5)
    if labs:
        case["labs"] = labs


def _findings(d: _Draw, modality: str, contrast: bool) -> dict[str, Any]:
    rng = d.rng
    seen = {name for name, modalities in FINDING_MODALITIES.items() if modality in {m.value for m in modalities}}
    yes_no = [
        "osteopenia", "subchondral_sclerosis", "subchondral_lucency", "crescent_sign", "collapse",
        "femoral_neck_fracture_line", "fracture_displaced", "subchondral_fracture_line", "focal_lesion", "edema",
        "t1_low", "stir_high", "acetabular_edema", "effusion", "synovitis", "double_line_sign", "subchondral_band",
        "intra_articular_mass", "soft_tissue_collection",
    ]
    findings = _presences(d, [(n, n) for n in yes_no if n in seen], missing=0.4, default=0.08)
    if findings.get("collapse") == "present" and d.chance(0.5):
        findings["collapse_depth_mm"] = d.uniform(0.5, 6)
    if findings.get("femoral_neck_fracture_line") == "absent" and findings.get("fracture_displaced") == "present":
        findings["fracture_displaced"] = "absent"  # no line, no displaced fracture in the same study (parse_case refuses it)
    if findings.get("femoral_neck_fracture_line") == "present":
        _put(findings, "femoral_neck_fracture_side", rng.choice([None, "tension", "compression", "unknown"]))
        if d.chance(0.4):
            findings["femoral_neck_fracture_width_percent"] = d.uniform(10, 90, 0)
    if modality != "bone_scan" and d.picture == "onfh" and d.chance(0.3):
        findings["necrotic_extent_percent"] = d.uniform(10, 80, 0)
        if findings.get("fracture_displaced") == "present" and d.chance(0.7):
            findings["fracture_displaced"] = "absent"
    if "joint_space" in seen and d.chance(0.55):
        js = ["narrowed", "narrowed", "destroyed", "preserved"] if d.picture in ("oa", "septic") else ["preserved"] * 4 + ["narrowed"]
        findings["joint_space"] = rng.choice(js + ["unknown"])
    if modality == "mri":
        edema = findings.get("edema")
        if edema == "present" and d.chance(0.75):
            findings["edema_extent"] = rng.choice(_EDEMA_EXTENTS[d.picture])
        elif edema == "absent" and d.chance(0.3):
            findings["edema_extent"] = "none"
        elif edema is None and d.chance(0.15):
            findings["edema_extent"] = rng.choice(_EDEMA_EXTENTS[d.picture] + ("unknown",))
        if findings.get("subchondral_band") == "present":
            if d.chance(0.6):
                findings["subchondral_band_thickness_mm"] = d.uniform(0.5, 9.0)
            if d.chance(0.4):
                findings["subchondral_band_length_mm"] = d.uniform(2, 30)
        if contrast and d.chance(0.85):
            pattern = {
                "toh": "homogeneous_enhancement",
                "onfh": "subchondral_non_enhancement",
                "septic": "synovial_or_rim_enhancement",
                "inflammatory": "synovial_or_rim_enhancement",
            }.get(d.picture, rng.choice(["homogeneous_enhancement", "subchondral_non_enhancement", "unknown"]))
            findings["contrast_pattern"] = pattern
    if modality == "bone_scan" and d.chance(0.85):
        uptake = {
            "toh": "diffuse_increased",
            "fnsf": "focal_increased",
            "neoplasm": "focal_increased",
            "onfh": rng.choice(["photopenic", "focal_increased"]),
        }.get(d.picture, rng.choice(["normal", "diffuse_increased", "focal_increased"]))
        findings["uptake"] = uptake
    return findings


def _imaging(d: _Draw, case: dict[str, Any], timing: str) -> None:
    rng = d.rng
    n = rng.choices([0, 1, 2, 3], weights=[25, 35, 25, 15])[0]
    studies = []
    onset_days = case.get("onset", {}).get("days_since_onset")
    onset_date = case.get("onset", {}).get("date")
    for _ in range(n):
        modality = rng.choices(list(_MODALITY_WEIGHTS), weights=list(_MODALITY_WEIGHTS.values()))[0]
        contrast = modality == "mri" and d.chance(0.2)
        study: dict[str, Any] = {"modality": modality}
        if contrast:
            study["contrast"] = True
        when = rng.random()
        if timing == "days" and when < 0.8:
            study["days_since_onset"] = min(onset_days, round(rng.uniform(0, onset_days), rng.choice([0, 1])))
        elif timing == "days" and when < 0.9:  # dated study, onset in days: counted back from the assessment
            assessed = dt.date.fromisoformat(case["assessed_on"]) if "assessed_on" in case else TODAY
            study["date"] = (assessed - dt.timedelta(days=rng.randint(0, int(onset_days)))).isoformat()
        elif timing.startswith("dates") and when < 0.9:
            start = dt.date.fromisoformat(onset_date)
            end = dt.date.fromisoformat(case["assessed_on"]) if "assessed_on" in case else TODAY
            study["date"] = (start + dt.timedelta(days=rng.randint(0, (end - start).days))).isoformat()
        findings = _findings(d, modality, contrast)
        if findings or d.chance(0.5):
            study["findings"] = findings
        studies.append(study)
    if studies:
        case["imaging"] = studies


def generate_case(rng: random.Random, index: int = 0) -> dict[str, Any]:
    """One case as a JSON-ready dict."""
    picture = rng.choices(PICTURES, weights=_PICTURE_WEIGHTS)[0]
    d = _Draw(rng, picture)
    case: dict[str, Any] = {}
    if d.chance(0.7):
        case["id"] = f"gen-{index:06d}"
    if d.chance(0.05):
        case["note"] = "Generated case; pain for some weeks, seen in clinic."
    _patient(d, case)
    timing = _timing(d, case)
    _history(d, case)
    _risk_factors(d, case)
    _comorbidities(d, case)
    _labs(d, case)
    _imaging(d, case, timing)
    _visits(d, case, timing)
    return case


def generate_cases(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` varied cases as JSON-ready dicts; the same ``seed`` gives the same cases."""
    rng = random.Random(seed)
    return [generate_case(rng, i) for i in range(n)]


def generate_json_lines(n: int, seed: int = 0) -> list[str]:
    """The same cases as :func:`generate_cases`, each serialised to one line of JSON."""
    return [json.dumps(c, separators=(",", ":"), ensure_ascii=False) for c in generate_cases(n, seed)]
