"""The literature evaluation: vignette mapping, scoring, reports, files.

``kb`` is the bundled knowledge base (``conftest.py``); nothing here depends on its numbers
except that the two literature sets are assessed end to end.
"""

from __future__ import annotations

import datetime as dt
import json
import importlib.util
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hipdx.case import Presence
from hipdx.errors import IntegrationError
from hipdx.evaluation import (
    CATEGORY_CONDITIONS,
    EvaluationReport,
    evaluate_files,
    evaluate_records,
    render_text,
    vignette_to_case,
)
from hipdx.evaluation.scoring import (
    CaseResult,
    CaseScore,
    FlagSeen,
    Prediction,
    accepted_conditions,
    score_differential,
    summarise,
    summarise_red_flags,
)
from hipdx.evaluation.render import red_flag_lines
from hipdx.evaluation.text import age_from_text, days_after_onset, read_lab, read_t_score

from conftest import ROOT, SHARED, shared_data

DEV_SET = SHARED / "evaluation" / "literature-dev.json"
HIPDX_SET = ROOT / "evaluation" / "literature-hipdx.json"
TODAY = dt.date(2026, 11, 25)

P, A, U = Presence.present, Presence.absent, Presence.unknown


def mapped(**record):
    """Map a hand-written vignette; returns (case, used, skipped)."""
    return vignette_to_case({"id": "t-1", **record})


def mentions(lines: list[str], *fragments: str) -> bool:
    return any(all(f in line for f in fragments) for line in lines)


# --- missing, false, true -------------------------------------------------------------


def test_a_missing_key_is_unknown_never_absent():
    case, used, skipped = mapped(patient={"age_years": 50})
    assert case.age_years == 50
    assert case.limp is U and case.pain.weight_bearing is U and case.pain.at_rest is U
    assert case.risk_factors.smoking is U and case.risk_factors.corticosteroids.status is U
    assert case.range_of_motion.value == "unknown" and case.onset.type.value == "unknown"
    assert case.labs.canonical("crp") is None and case.imaging == []
    assert used == ["patient.age_years = 50 -> age_years = 50.0"]
    assert skipped == []


def test_false_is_absent_and_true_is_present():
    case, used, _ = mapped(
        history={"limp_or_antalgic_gait": False, "pain_features": {"night_pain": True, "pain_at_rest": False}},
        risk_factors={"corticosteroids": False, "alcohol": True, "low_bmd_or_osteoporosis": True, "smoking": False},
    )
    assert case.limp is A and case.pain.at_night is P and case.pain.at_rest is A
    assert case.risk_factors.corticosteroids.status is A
    assert case.risk_factors.alcohol_excess is P and case.risk_factors.osteoporosis is P
    assert case.risk_factors.smoking is A
    assert mentions(used, "risk_factors.alcohol = true", "risk_factors.alcohol_excess = present")


def test_a_non_boolean_flag_is_skipped_not_guessed():
    case, _, skipped = mapped(history={"limp_or_antalgic_gait": "yes"})
    assert case.limp is U
    assert mentions(skipped, "history.limp_or_antalgic_gait", "expected true or false")


# --- patient and history --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("45-year-old", 45.0),
        ("aged 73 and 67", None),
        ("in her 40s", None),
        ("40-50 years", None),
        ("elderly", None),
        ("18-month-old boy", 1.5),  # months, not years (issue 12)
        ("an infant of 6 weeks", 0.115),
        ("18 mo", 1.5),
        ("72 yrs", 72.0),
    ],
)
def test_age_text_gives_an_age_only_when_one_number_is_printed(text, age):
    assert age_from_text(text)[0] == age


def test_age_text_is_used_only_without_age_years():
    case, used, _ = mapped(patient={"age_text": "a 61-year-old man"})
    assert case.age_years == 61 and mentions(used, "patient.age_text", "age_years = 61.0")
    case, _, skipped = mapped(patient={"age_text": "aged 73 and 67"})
    assert case.age_years is None and mentions(skipped, "patient.age_text")


@pytest.mark.parametrize(
    ("patient", "status", "weeks"),
    [
        ({"sex": "female", "pregnancy": {"status": "pregnant", "gestational_weeks": 34}}, "pregnant", 34.0),
        ({"sex": "female", "pregnancy": {"status": "peripartum"}}, "pregnant", None),
        ({"sex": "female", "pregnancy": {"status": "postpartum", "postpartum_weeks": 0.9}}, "postpartum", None),
        ({"sex": "female", "pregnancy": {"status": "not_applicable"}}, "not_pregnant", None),
        ({"sex": "male", "pregnancy": {"status": "not_applicable"}}, "unknown", None),
        ({"sex": "female", "pregnancy": {"status": "not_stated"}}, "unknown", None),
    ],
)
def test_pregnancy_status(patient, status, weeks):
    case, _, _ = mapped(patient=patient)
    assert case.pregnancy.status.value == status
    assert case.pregnancy.gestational_weeks == weeks


def test_an_impossible_pregnancy_is_skipped_with_the_models_reason():
    case, _, skipped = mapped(patient={"sex": "male", "pregnancy": {"status": "pregnant"}})
    assert case.sex.value == "male" and case.pregnancy.status.value == "unknown"
    assert mentions(skipped, "patient.pregnancy.status", "impossible for a male patient")


def test_history_fields():
    case, used, skipped = mapped(
        patient={"side": "bilateral_sequential"},
        history={
            "onset": "sudden",
            "trauma": "minor",
            "symptom_duration_weeks": 8.7,
            "rom_limitation": False,
            "pain_features": {"relieved_by_rest": True, "mechanical_pain": True, "movement_pain": True},
        },
    )
    assert case.side.value == "both" and case.onset.type.value == "sudden" and case.trauma.value == "minor"
    assert case.onset.days_since_onset == 61.0  # 8.7 weeks x 7 = 60.9, rounded
    assert case.range_of_motion.value == "full"
    assert case.pain.relieved_by_lying_down is P
    assert case.pain.weight_bearing is P and mentions(used, "mechanical_pain", "pain.weight_bearing = present")
    assert mentions(skipped, "history.pain_features.movement_pain", "no field")


def test_restricted_motion_remote_trauma_and_explicit_weight_bearing_pain():
    case, _, skipped = mapped(
        history={
            "rom_limitation": True,
            "trauma": "remote_minor",
            "pain_features": {"weight_bearing_pain": False, "mechanical_pain": True},
        }
    )
    assert case.range_of_motion.value == "restricted"
    assert case.trauma.value == "unknown" and mentions(skipped, "history.trauma", "remote_minor")
    assert case.pain.weight_bearing is A and mentions(skipped, "mechanical_pain", "given explicitly")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("known lung cancer", "cancer_history"),
        ("metastatic breast carcinoma treated in 2019", "cancer_history"),
        ("military recruit training", "repetitive_loading"),
        ("runs 10 miles daily", "repetitive_loading"),
        ("marathon training", "repetitive_loading"),
        ("seropositive rheumatoid arthritis", "inflammatory_disease"),
        ("ankylosing spondylitis", "inflammatory_disease"),
        ("psoriatic arthritis", "inflammatory_disease"),
        ("renal transplant recipient", "immunosuppression"),
        ("immunosuppressive therapy after transplant", "immunosuppression"),
    ],
)
def test_clear_history_terms_set_a_risk_factor_present_and_say_so(text, field):
    case, used, _ = mapped(risk_factors={"other": [text]})
    assert getattr(case.risk_factors, field) is P
    assert mentions(used, "risk_factors.other[0]", f"risk_factors.{field} = present", "the text names")


@pytest.mark.parametrize(
    "text", ["no history of cancer", "cancer excluded", "possible rheumatoid arthritis", "occupational heavy lifting"]
)
def test_negated_uncertain_or_unknown_history_terms_are_skipped(text):
    case, used, skipped = mapped(history={"other_history": text})
    assert case.risk_factors.cancer_history is U and case.risk_factors.inflammatory_disease is U
    assert used == [] and mentions(skipped, "history.other_history")


# --- laboratory strings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "printed", "canonical"),
    [
        ("crp", "CRP 45 mg/L", 45.0),
        ("crp", "0.79 mg/dL", 7.9),
        ("crp", "3.2 mg/l (reported normal)", 3.2),
        ("esr", "ESR 60 mm/h", 60.0),
        ("esr", "55 mm/hour", 55.0),
        ("wbc", "WBC 12,300/mm3", 12.3),
        ("wbc", "leucocytosis 14.1×10^9/L", 14.1),
        ("wbc", "9,5 G/L", 9.5),
        ("temperature", "temperature 38.5 °C", 38.5),
        ("temperature", "101 F", (101 - 32) * 5 / 9),
        ("vitamin_d", "25-OH vitamin D 50 nmol/L", 50 / 2.496),
        ("vitamin_d", "18 ng/mL (normal > 30 ng/mL)", 18.0),
        ("calcium", "2.4 mmol/L", 2.4),
        ("alp", "ALP 113 U/L", 113.0),
    ],
)
def test_a_printed_lab_with_number_and_unit_becomes_a_measurement(name, printed, canonical):
    case, used, _ = mapped(labs={name: printed})
    assert case.labs.canonical(name) == pytest.approx(canonical)
    assert mentions(used, f"labs.{name}", "number and unit as printed")


@pytest.mark.parametrize(
    ("name", "printed", "reason"),
    [
        ("wbc", "3750 leukocytes", "accepted unit"),
        ("crp", "abnormal", "plain phrases"),
        ("crp", "mildly elevated in 2 of 4 patients", "accepted unit"),
        ("alp", "alkaline phosphatase 113U", "accepted unit"),
        ("vitamin_d", "18 μg/ml", "accepted unit"),
        ("crp", "< 5 mg/L", "censored"),
        ("crp", "CRP 12 mg/L, then 80 mg/L", "ambiguous"),
        ("crp", "CRP 5–10 mg/L", "a range or two values"),  # was read as 10 (issue 12)
        ("crp", "CRP rose from 5 to 50 mg/L", "a range or two values"),  # was read as 50
        ("esr", "between 40 and 60 mm/h", "a range or two values"),
        ("wbc", "WBC 9-12 x10^9/L", "a range or two values"),
    ],
)
def test_a_lab_without_a_clear_number_and_unit_is_skipped(name, printed, reason):
    assert read_lab(name, printed)[0] is None
    case, _, skipped = mapped(labs={name: printed})
    assert case.labs.canonical(name) is None and name not in case.labs.qualitative
    assert mentions(skipped, f"labs.{name}", reason)


@pytest.mark.parametrize(
    ("name", "printed", "result"),
    [
        ("crp", "normal", "normal"),
        ("crp", "raised (value not given)", "raised"),
        ("esr", "ESR elevated", "raised"),
        ("temperature", "afebrile", "normal"),
        ("temperature", "apyrexial at all visits", "normal"),
        ("temperature", "febrile (value not captured)", "raised"),
        ("temperature", "high-grade fever", "raised"),
        ("wbc", "no leukocytosis", "normal"),
        ("crp", "not elevated", "normal"),
    ],
)
def test_a_lab_printed_only_in_words_is_a_qualitative_result_never_a_number(name, printed, result):
    case, used, _ = mapped(labs={name: printed})
    assert case.labs.canonical(name) is None
    assert case.labs.qualitative[name].value == result
    assert mentions(used, f"labs.{name}", "a result in words")


def test_an_implausible_lab_is_skipped_with_the_models_reason():
    case, _, skipped = mapped(labs={"crp": "CRP 9000 mg/L", "esr": "40 mm/h"})
    assert case.labs.canonical("crp") is None and case.labs.canonical("esr") == 40
    assert mentions(skipped, "labs.crp", "implausible")


def test_bone_density_and_free_text_labs():
    assert read_t_score("T-score −2.7 at the lumbar spine") == (-2.7, "")
    case, _, skipped = mapped(labs={"bmd": "T-score -2.7", "other": ["joint aspirate 130.6×10^9/L"]})
    assert case.labs.bmd_t_score == -2.7
    assert case.labs.canonical("wbc") is None and mentions(skipped, "labs.other[0]", "not parsed")
    case, _, skipped = mapped(labs={"bmd": "osteoporosis on DXA"})
    assert case.labs.bmd_t_score is None and mentions(skipped, "labs.bmd")


# --- imaging --------------------------------------------------------------------------


def study(modality, features=None, findings="", timing=None):
    out = {"modality": modality, "findings": findings}
    if features is not None:
        out["features"] = features
    if timing is not None:
        out["timing"] = timing
    return out


def test_mri_edema_features_and_extent():
    case, _, _ = mapped(
        imaging=[
            study(
                "mri",
                {
                    "t1_low": True,
                    "t2_or_stir_high": True,
                    "bme_extent": "head_neck_and_intertrochanteric",
                    "joint_effusion": True,
                    "acetabular_edema_or_involvement": False,
                    "synovial_thickening": True,
                    "double_line_sign": False,
                    "subchondral_band_or_line": True,
                    "subchondral_fracture_or_fissure": True,
                },
            )
        ]
    )
    f = case.imaging[0].findings
    assert case.imaging[0].modality.value == "mri"
    assert f.t1_low is P and f.stir_high is P and f.edema_extent.value == "intertrochanteric"
    assert f.effusion is P and f.acetabular_edema is A and f.synovitis is P
    assert f.double_line_sign is A and f.subchondral_band is P and f.subchondral_fracture_line is P
    assert f.edema is U  # the core reads edema from STIR and extent; nothing is copied


def test_radiograph_features_and_joint_space():
    case, _, _ = mapped(
        imaging=[study("xray", {"osteopenia": True, "sclerosis": False, "joint_space": "narrowing_progressive"})]
    )
    f = case.imaging[0].findings
    assert case.imaging[0].modality.value == "radiograph"
    assert f.osteopenia is P and f.subchondral_sclerosis is A and f.joint_space.value == "narrowed"


def test_a_feature_the_modality_cannot_show_is_skipped_without_crashing():
    case, used, skipped = mapped(
        imaging=[study("mri", {"osteopenia": True, "t2_or_stir_high": True}), study("xray", {"joint_effusion": True})]
    )
    assert len(case.imaging) == 1 and case.imaging[0].findings.stir_high is P
    assert case.imaging[0].findings.osteopenia is U
    assert mentions(skipped, "imaging[0].features.osteopenia", "cannot be reported on a mri study")
    assert mentions(skipped, "imaging[1].features.joint_effusion", "cannot be reported on a radiograph")
    assert mentions(skipped, "imaging[1] (xray)", "not used")


def test_a_normal_radiograph_rules_out_its_signs_but_not_a_lesion():
    case, _, _ = mapped(imaging=[study("xray", {"normal": True})])
    f = case.imaging[0].findings
    for name in (
        "osteopenia",
        "subchondral_sclerosis",
        "subchondral_lucency",
        "collapse",
        "femoral_neck_fracture_line",
    ):
        assert getattr(f, name) is A
    assert f.joint_space.value == "preserved" and f.focal_lesion is U


def test_an_explicit_feature_beats_normal():
    case, _, skipped = mapped(imaging=[study("xray", {"normal": True, "osteopenia": True})])
    assert case.imaging[0].findings.osteopenia is P
    assert mentions(skipped, "imaging[0].features.normal", "osteopenia is taken from imaging[0].features.osteopenia")


def test_a_normal_follow_up_after_an_abnormal_study_documents_recovery():
    case, _, skipped = mapped(
        imaging=[
            study("mri", {"t2_or_stir_high": True, "bme_extent": "femoral_head_and_neck"}, timing="at presentation"),
            study("mri", {"normal": True}, timing="3 months later"),
        ]
    )
    assert len(case.imaging) == 1 and case.imaging[0].findings.edema_extent.value == "head_and_neck"
    assert mentions(skipped, "imaging[1] (mri, 3 months later)", "recovery")


def test_a_normal_first_study_is_kept():
    case, _, _ = mapped(imaging=[study("mri", {"normal": True}), study("mri", {"t2_or_stir_high": True})])
    assert [s.findings.edema for s in case.imaging] == [A, U]


@pytest.mark.parametrize(
    ("features", "text", "neck", "displaced"),
    [
        ({"fracture_line": True}, "undisplaced femoral neck stress fracture", P, U),
        ({"fracture_line": True}, "pathological intertrochanteric fracture", U, U),
        ({"fracture_line": False}, "no fracture or mass", A, U),
        ({"displaced_fracture": True}, "displaced subcapital fracture", P, P),
        ({"fracture_line": True, "displaced_fracture": False}, "transcervical stress fracture", P, A),
    ],
)
def test_fracture_lines_count_at_the_neck_only_when_the_text_says_so(features, text, neck, displaced):
    case, _, skipped = mapped(imaging=[study("mri", features, findings=text)])
    findings = case.imaging[0].findings if case.imaging else None
    assert (findings.femoral_neck_fracture_line if findings else U) is neck
    assert (findings.fracture_displaced if findings else U) is displaced
    if neck is U:
        assert mentions(skipped, "fracture_line", "femoral neck")


def test_a_subchondral_fissure_is_a_subchondral_fracture_line():
    case, _, _ = mapped(imaging=[study("xray", {"subchondral_fracture_or_fissure": True})])
    assert case.imaging[0].findings.subchondral_fracture_line is P


def test_a_mass_is_a_bone_lesion_unless_the_text_places_it_elsewhere():
    case, _, _ = mapped(imaging=[study("mri", {"mass": True}, findings="expansile lesion of the greater trochanter")])
    assert case.imaging[0].findings.focal_lesion is P
    case, _, _ = mapped(imaging=[study("mri", {"mass": True}, findings="lobulated intra-articular masses")])
    assert case.imaging[0].findings.intra_articular_mass is P and case.imaging[0].findings.focal_lesion is U
    case, _, skipped = mapped(imaging=[study("mri", {"mass": True}, findings="intramuscular mass of the adductors")])
    assert case.imaging == [] and mentions(skipped, "features.mass", "soft tissues")
    case, _, _ = mapped(
        imaging=[study("ct", {"lytic_lesion": True, "mass": True}, findings="lytic lesion with a soft-tissue mass")]
    )
    assert case.imaging[0].findings.focal_lesion is P


def test_destruction_and_soft_tissue_collections():
    case, _, _ = mapped(imaging=[study("xray", {"progressive_destruction": True})])
    assert case.imaging[0].findings.joint_space.value == "destroyed"
    case, _, _ = mapped(imaging=[study("mri", {"soft_tissue_fluid": True})])
    assert case.imaging[0].findings.soft_tissue_collection is P
    case, _, skipped = mapped(imaging=[study("xray", {"soft_tissue_fluid": True})])
    assert case.imaging == [] and mentions(skipped, "features.soft_tissue_fluid", "MRI or CT")


def test_an_absurd_symptom_duration_is_skipped_not_a_crash():
    case, _, skipped = mapped(history={"symptom_duration_weeks": 2.5681330498033083e307})
    assert case.onset.days_since_onset is None
    assert mentions(skipped, "history.symptom_duration_weeks", "implausible")


def test_bone_scan_uptake_and_normal_scan():
    case, _, _ = mapped(
        imaging=[study("bone_scan", {"uptake": "diffuse_increased"}), study("bone_scan", {"normal": True})]
    )
    assert [s.findings.uptake.value for s in case.imaging] == ["diffuse_increased"]  # the normal one is recovery
    case, _, _ = mapped(imaging=[study("bone_scan", {"normal": True})])
    assert case.imaging[0].findings.uptake.value == "normal"


def test_unspecified_modalities_keep_only_findings_alike_on_every_structural_study():
    case, used, skipped = mapped(
        imaging=[study("multimodal", {"joint_space": "destroyed", "synovitis": True, "osteopenia": True})]
    )
    f = case.imaging[0].findings
    assert case.imaging[0].modality.value == "ct" and f.joint_space.value == "destroyed"
    assert f.synovitis is U and f.osteopenia is U
    assert mentions(skipped, "features.synovitis", "modality not specified")
    assert mentions(used, "imaging[0].modality", "modality not specified")


def test_ultrasound_and_studies_before_onset_are_not_used():
    case, _, skipped = mapped(
        imaging=[
            study("ultrasound", {"joint_effusion": True}),
            study("mri", {"subchondral_band_or_line": True}, timing="before symptoms (serial MRI)"),
        ]
    )
    assert case.imaging == []
    assert mentions(skipped, "imaging[0].modality", "not used") and mentions(skipped, "imaging[1].timing", "before")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("absent subchondral enhancement, non-enhancing subchondral segment", "subchondral_non_enhancement"),
        ("marked enhancement of thickened synovium", "synovial_or_rim_enhancement"),
        ("homogeneous enhancement of the femoral head and neck", "homogeneous_enhancement"),
        ("no enhancement", "unknown"),
    ],
)
def test_contrast_patterns_are_read_only_when_clear(text, pattern):
    case, _, _ = mapped(imaging=[study("mri", {"t2_or_stir_high": True, "contrast_enhancement": text})])
    assert case.imaging[0].contrast is True
    assert case.imaging[0].findings.contrast_pattern.value == pattern


@pytest.mark.parametrize(
    ("timing", "days"),
    [
        ("1 week after onset", 7.0),
        ("5-6 weeks after onset", 38.5),
        ("5 days after pain onset", 5.0),
        ("3 months later", None),
    ],
)
def test_study_timing_is_read_only_when_counted_from_onset(timing, days):
    assert days_after_onset(timing)[0] == days
    case, _, skipped = mapped(imaging=[study("xray", {"osteopenia": True}, timing=timing)])
    assert case.imaging[0].days_since_onset == days
    if days is None:
        assert mentions(skipped, "imaging[0].timing")


def test_a_study_timed_after_the_assessment_keeps_its_findings_but_not_its_time():
    case, _, skipped = mapped(
        history={"symptom_duration_weeks": 1},
        imaging=[study("xray", {"osteopenia": True}, timing="6 weeks after onset")],
    )
    assert case.imaging[0].findings.osteopenia is P and case.imaging[0].days_since_onset is None
    assert mentions(skipped, "imaging[0].timing", "later than")


def test_every_fact_is_accounted_for():
    case, used, skipped = mapped(
        patient={"age_years": 40, "side_text": "left first"},
        history={"new_key_of_a_future_format": True},
        imaging=[study("mri", {"t2_or_stir_high": True, "cortical_cleft": True}, findings="edema")],
        outcome={"text": "resolved"},
        final_diagnosis={"category": "transient_osteoporosis_of_hip"},
    )
    assert mentions(skipped, "history.new_key_of_a_future_format", "no field")
    assert mentions(skipped, "imaging[0].features.cortical_cleft", "no field")
    assert mentions(skipped, "outcome", "would reveal the answer")
    assert mentions(skipped, "narrative text", "patient.side_text", "imaging[0].findings")
    assert not mentions(used + skipped, "final_diagnosis")


def test_a_record_that_is_not_an_object_raises():
    with pytest.raises(IntegrationError, match="JSON object"):
        vignette_to_case(["not", "a", "record"])  # type: ignore[arg-type]


# --- scoring --------------------------------------------------------------------------


def test_every_category_maps_to_conditions_of_the_knowledge_base(kb):
    for category, conditions in CATEGORY_CONDITIONS.items():
        assert accepted_conditions(category, kb.condition_ids) == conditions, category
    assert CATEGORY_CONDITIONS["rapidly_destructive_osteoarthritis"] == ("oa",)
    assert CATEGORY_CONDITIONS["neoplasm_lymphoma"] == CATEGORY_CONDITIONS["neoplasm_metastasis"] == ("neoplasm",)
    assert CATEGORY_CONDITIONS["bone_marrow_edema_syndrome_with_possible_early_osteonecrosis"] == ("toh", "onfh")
    assert accepted_conditions("chondrosarcoma", kb.condition_ids) == ()


def diff(**probabilities):
    return [Prediction(id=c, probability=p) for c, p in probabilities.items()]


def test_score_of_one_accepted_condition_by_hand():
    s = score_differential(("onfh",), diff(toh=0.6, onfh=0.3, sif=0.1))
    assert s.rank == 2 and s.probability == pytest.approx(0.3)
    assert s.brier == pytest.approx(0.6**2 + 0.7**2 + 0.1**2)
    assert s.log_loss == pytest.approx(-math.log(0.3))


def test_two_accepted_conditions_take_the_better_rank_and_the_summed_probability():
    s = score_differential(("toh", "onfh"), diff(sif=0.5, onfh=0.3, toh=0.2))
    assert s.rank == 2 and s.probability == pytest.approx(0.5)
    assert s.brier == pytest.approx(0.5**2 + 0.5**2)  # merged class (0.5 - 1)^2 plus sif 0.5^2


def test_an_unmodelled_category_is_a_miss_with_an_extra_class():
    s = score_differential((), diff(toh=0.7, onfh=0.3))
    assert s.rank is None and s.probability == 0
    assert s.brier == pytest.approx(1 + 0.49 + 0.09)
    assert s.log_loss == pytest.approx(-math.log(1e-6))


def test_metrics_of_a_tiny_report_by_hand():
    scores = [
        CaseScore(rank=1, probability=0.8, brier=0.1, log_loss=0.2),
        CaseScore(rank=3, probability=0.2, brier=0.9, log_loss=1.6),
        CaseScore(rank=None, probability=0.0, brier=1.5, log_loss=13.8),
    ]
    m = summarise(scores, n_conditions=10)
    assert m.model_dump() == {
        "cases": 3,
        "top1": round(1 / 3, 4),
        "top3": round(2 / 3, 4),
        "mean_rank": 5.0,  # (1 + 3 + 11) / 3: the unranked case counts as rank 10 + 1
        "brier": round(2.5 / 3, 4),
        "log_loss": 5.2,
    }
    assert summarise([], 10).top1 is None


def toh_record(rid="r-1", category="transient_osteoporosis_of_hip"):
    return {
        "id": rid,
        "patient": {"age_years": 40, "sex": "male"},
        "history": {"onset": "sudden", "trauma": "none"},
        "imaging": [study("mri", {"t1_low": True, "t2_or_stir_high": True, "bme_extent": "femoral_head_and_neck"})],
        "final_diagnosis": {"category": category},
    }


def test_records_with_an_unknown_category_or_no_mapping_are_misses_not_crashes(kb):
    records = [
        toh_record("ok"),
        toh_record("unmodelled", category="chondroblastoma"),
        "not an object",
        {"id": "no-category", "patient": {"age_years": 30}},
    ]
    report = evaluate_records(records, kb, TODAY)
    assert report.cases == 4
    by_id = {r.id: r for r in report.per_case}
    assert by_id["ok"].status == "scored" and by_id["ok"].accepted == ["toh"]
    assert by_id["unmodelled"].status == "unmodelled" and by_id["unmodelled"].rank is None
    assert report.unmodelled == ["unmodelled (chondroblastoma)"]
    assert by_id["<records>#2"].status == "error" and by_id["no-category"].status == "error"
    assert len(report.errors) == 2 and mentions(report.errors, "no-category", "final_diagnosis.category")
    assert {m.id for m in report.misses} >= {"unmodelled", "<records>#2", "no-category"}
    assert report.top1 is not None and report.top1 <= 0.25
    assert report.confusion["chondroblastoma"] == {by_id["unmodelled"].top3[0].id: 1}
    assert report.confusion["(no category)"] == {"(not assessed)": 2}
    assert mentions(report.errors, "<records>#2", "JSON object")


def test_per_case_results_carry_their_facts_and_scores(kb):
    report = evaluate_records([toh_record()], kb, TODAY)
    result = report.per_case[0]
    assert len(result.top3) == 3 and result.rank is not None
    assert result.probability == next((p.probability for p in result.top3 if p.id == "toh"), result.probability)
    assert result.n_used == len(result.used) == 7 and result.n_skipped == len(result.skipped)
    assert report.provenance.knowledge_base_digest == kb.digest and report.provenance.n_conditions == 10


# --- files ----------------------------------------------------------------------------


def check_report(report: EvaluationReport, n: int) -> None:
    assert report.cases == n == len(report.per_case)
    for value in (report.top1, report.top3):
        assert value is not None and 0.0 <= value <= 1.0
    assert report.top1 <= report.top3
    assert 1.0 <= report.mean_rank <= 11.0 and 0.0 <= report.brier <= 2.0 and report.log_loss >= 0.0
    assert sum(sum(row.values()) for row in report.confusion.values()) == n
    assert len(report.misses) == sum(r.rank != 1 for r in report.per_case)
    json.dumps(report.model_dump(mode="json"))  # what `hipdx evaluate --format json` prints


@pytest.mark.real_data
def test_development_set(kb):
    shared_data(DEV_SET)
    report = evaluate_files([DEV_SET], kb, TODAY)
    check_report(report, 17)
    assert report.errors == [] and report.unmodelled == []
    text = render_text(report)
    assert "17 cases" in text and "confusion" in text
    assert all(m.id in text for m in report.misses)


def test_project_set_and_per_file_totals(kb):
    report = evaluate_files([HIPDX_SET], kb, TODAY)
    check_report(report, 43)
    assert report.errors == [] and report.unmodelled == []


@pytest.mark.real_data
def test_development_and_project_sets_per_file_totals(kb):
    report = evaluate_files([HIPDX_SET], kb, TODAY)
    both = evaluate_files([shared_data(DEV_SET), HIPDX_SET], kb, TODAY)
    check_report(both, 60)
    assert [(f.path, f.cases) for f in both.files] == [(str(DEV_SET), 17), (str(HIPDX_SET), 43)]
    assert both.files[1].top1 == report.top1
    assert "per file" in render_text(both)


def test_bad_files_raise_naming_the_file(kb, tmp_path):
    missing = tmp_path / "nowhere.json"
    with pytest.raises(IntegrationError, match="nowhere.json.*not found"):
        evaluate_files([missing], kb, TODAY)
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    with pytest.raises(IntegrationError, match="broken.json.*not valid JSON"):
        evaluate_files([broken], kb, TODAY)
    an_object = tmp_path / "object.json"
    an_object.write_text('{"id": "case-1"}', encoding="utf-8")
    with pytest.raises(IntegrationError, match="object.json.*JSON array"):
        evaluate_files([an_object], kb, TODAY)


def test_public_api():
    import hipdx.evaluation as evaluation

    assert evaluation.__all__ == sorted(evaluation.__all__)
    assert {"evaluate_files", "evaluate_records", "render_text", "EvaluationReport", "vignette_to_case"} <= set(
        evaluation.__all__
    )
    fields = set(EvaluationReport.model_fields)
    expected = {"cases", "top1", "top3", "mean_rank", "brier", "log_loss", "confusion", "misses", "per_case", "files"}
    assert expected | {"provenance"} <= fields


# --- robustness -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
FEATURE_KEYS = [
    "normal",
    "osteopenia",
    "sclerosis",
    "fracture_line",
    "displaced_fracture",
    "collapse",
    "t1_low",
    "t2_or_stir_high",
    "bone_marrow_edema",
    "bme_extent",
    "joint_space",
    "uptake",
    "mass",
    "joint_effusion",
    "subchondral_band_or_line",
    "osteonecrosis_signs",
    "contrast_enhancement",
    "acetabular_edema_or_involvement",
]
studies = st.fixed_dictionaries(
    {"modality": st.sampled_from(["xray", "mri", "ct", "bone_scan", "pet_ct", "multimodal", "other", "ultrasound"])},
    optional={
        "timing": st.sampled_from(["1 week after onset", "at presentation", "3 months later", "before symptoms"])
        | st.text(max_size=20),
        "findings": st.sampled_from(["femoral neck fracture", "soft-tissue mass", ""]) | st.text(max_size=20),
        "features": st.dictionaries(st.sampled_from(FEATURE_KEYS), json_values | st.booleans(), max_size=8),
    },
)
records = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=300),
        "patient": st.dictionaries(
            st.sampled_from(["age_years", "age_text", "sex", "side", "pregnancy"]), json_values, max_size=5
        ),
        "history": st.dictionaries(
            st.sampled_from(
                [
                    "onset",
                    "trauma",
                    "symptom_duration_weeks",
                    "pain_features",
                    "limp_or_antalgic_gait",
                    "rom_limitation",
                    "other_history",
                ]
            ),
            json_values,
            max_size=6,
        ),
        "risk_factors": st.dictionaries(
            st.sampled_from(["corticosteroids", "alcohol", "low_bmd_or_osteoporosis", "other"]), json_values, max_size=4
        ),
        "labs": st.dictionaries(st.sampled_from(["crp", "esr", "wbc", "temperature", "bmd", "other"]), json_values),
        "imaging": st.lists(studies, max_size=4) | json_values,
    },
)


@pytest.mark.slow  # a long property run (300 records)
@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_no_record_crashes_the_mapping(record):
    case, used, skipped = vignette_to_case(record)
    assert all(isinstance(line, str) for line in used + skipped)
    assert len(case.imaging) <= len(record.get("imaging") or []) if isinstance(record.get("imaging"), list) else True


@pytest.mark.parametrize(
    ("printed", "t_score"),
    [
        ("T-score: 2.5 below the mean", -2.5),  # was read as +2.5 (issue 12)
        ("T-score 1.8 SD below the young-adult mean", -1.8),
        ("T-score 1.0 above the mean", 1.0),
        ("T-score +0.4", 0.4),
        ("T-score -2.7", -2.7),
        ("T-score 2.5", None),  # no sign, no direction: the minus may have been dropped
        ("T-score -2.5 above the mean", None),  # the sign and the words disagree
    ],
)
def test_a_t_score_is_read_with_its_sign_or_direction_or_refused(printed, t_score):
    assert read_t_score(printed)[0] == t_score
    if t_score is None:
        assert read_t_score(printed)[1]


# --- red flags on must-not-miss cases ----------------------------------------------------


def flag(condition, urgency, kind="rule"):
    return FlagSeen(id=f"{condition}_x", kind=kind, condition=condition, urgency=urgency)


def result(rid, category, must_not_miss, flags, headline="routine", status="scored"):
    return CaseResult(
        id=rid, file="f", category=category, accepted=must_not_miss or ["toh"], status=status, top3=[], rank=1,
        probability=0.5, brier=0.0, log_loss=0.0, n_used=0, n_skipped=0, used=[], skipped=[],
        must_not_miss=must_not_miss, red_flags=flags, headline_urgency=headline,
    )


def test_red_flag_measures_by_hand():
    results = [
        result("s1", "septic_arthritis", ["septic"], [flag("septic", "emergency")], "emergency"),
        result("f1", "femoral_neck_stress_or_insufficiency_fracture", ["fnsf"], [flag("septic", "emergency")], "emergency"),
        result("n1", "neoplasm_lymphoma", ["neoplasm"], []),
        result("n2", "neoplasm_metastasis", ["neoplasm"], [], headline=None, status="error"),  # not assessed: no flag
        result("t1", "transient_osteoporosis_of_hip", [], [flag("septic", "emergency", "probability")], "emergency"),
        result("t2", "transient_osteoporosis_of_hip", [], [flag("toh", "urgent")], "urgent"),  # a flag of TOH itself
        result("o1", "osteonecrosis_femoral_head", [], [flag("fnsf", "urgent")], "urgent"),
        result("o2", "osteonecrosis_femoral_head", [], [], status="error"),  # not scored: not counted
    ]
    m = summarise_red_flags(results, ("fnsf", "septic", "neoplasm"))
    assert (m.must_not_miss_cases, m.flag_for_condition, m.any_flag, m.urgent_headline) == (4, 0.25, 0.5, 0.5)
    assert {c: (n.cases, n.flagged) for c, n in m.by_condition.items()} == {"fnsf": (1, 0), "septic": (1, 1), "neoplasm": (2, 0)}
    # an emergency flag counts for its own condition only (f1's septic emergency is not a fracture emergency)
    assert {c: n.emergency for c, n in m.by_condition.items()} == {"fnsf": 0, "septic": 1, "neoplasm": 0}
    assert "septic 1/1 (1 emergency)" in red_flag_lines(m)[0]
    assert (m.other_cases, m.other_emergency_flag, m.other_must_not_miss_flag) == (3, round(1 / 3, 4), round(2 / 3, 4))
    assert (m.toh_cases, m.toh_emergency_flag, m.toh_must_not_miss_flag) == (2, 0.5, 0.5)
    empty = summarise_red_flags([], ("fnsf",))
    assert empty.flag_for_condition is None and empty.toh_emergency_flag is None


def test_the_report_counts_red_flags_of_the_conditions_the_knowledge_base_marks_must_not_miss(kb):
    febrile = {
        "id": "septic-fever",
        "patient": {"age_years": 50, "sex": "male"},
        "labs": {"temperature": "39.2 °C"},
        "final_diagnosis": {"category": "septic_arthritis"},
    }
    bare = {"id": "tumour-bare", "patient": {"age_years": 65, "sex": "male"}, "final_diagnosis": {"category": "neoplasm_lymphoma"}}
    report = evaluate_records([febrile, bare, toh_record("toh-1")], kb, TODAY)
    assert report.red_flags.must_not_miss_conditions == [c.id for c in kb.conditions if c.must_not_miss]
    by_id = {r.id: r for r in report.per_case}
    assert by_id["septic-fever"].must_not_miss == ["septic"] and by_id["toh-1"].must_not_miss == []
    assert any(f.condition == "septic" and f.urgency == "emergency" for f in by_id["septic-fever"].red_flags)
    assert by_id["septic-fever"].headline_urgency == "emergency"
    assert report.red_flags.must_not_miss_cases == 2 and report.red_flags.flag_for_condition == 0.5
    assert [m.id for m in report.red_flag_misses] == ["tumour-bare"]  # age and sex alone raise no flag
    assert report.red_flags.toh_cases == 1
    text = render_text(report)
    assert "must-not-miss 2: flag for it 50%" in text and "no flag for neoplasm: tumour-bare" in text


@pytest.mark.real_data
def test_split_score_lists_red_flag_misses_of_development_vignettes_only(monkeypatch, capsys):
    shared_data(DEV_SET)
    spec = importlib.util.spec_from_file_location("split_score", ROOT / "evaluation" / "split_score.py")
    split_score = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(split_score)
    monkeypatch.setattr("sys.argv", ["split_score.py", "--show-development-red-flag-misses"])
    split_score.main()
    out = capsys.readouterr().out
    held_out = {i for part, ids in split_score.parts().items() if part.startswith("held_out") for i in ids}
    listed = [line.split(": ", 1)[1].split()[0] for line in out.splitlines() if line.strip().startswith("no flag for")]
    assert listed and not set(listed) & held_out
    assert out.count(": flag for it ") == len(split_score.parts())  # one red-flag line per part, held-out included
