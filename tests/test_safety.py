"""Clinical safety gates of the plan and the red flags (issue: clinical safety).

Each test here failed on the code before the gate it checks: a child offered adult drugs,
NSAIDs and denosumab only cautioned where the labels contraindicate them, calcitonin
recommended without a dose when calcium was not known, corticosteroids not counted as
immunosuppression, two weight-bearing instructions side by side, and must-not-miss cases
without a red flag.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hipdx
from conftest import SAFE_MAN, CliRunner, examples
from hipdx.case import Case
from hipdx.cli import app
from hipdx.knowledge import load_knowledge_base
from hipdx.knowledge.treatment import MEDICINES, OptionKind
from hipdx.reasoning.assessment import RedFlagHit
from hipdx.reasoning.plan import ItemStatus, case_facts, make_plan

TODAY = dt.date(2026, 11, 25)
KB = load_knowledge_base()
TK = KB.treatment
MEDICINE_OPTIONS = {key for key, option in TK.treatments.options.items() if option.kind in MEDICINES}
COMORBIDITIES = list(Case.model_fields["comorbidities"].annotation.model_fields)

SAFE = SAFE_MAN
TOH_MRI = [{"modality": "mri", "days_since_onset": 20, "findings": {"edema": "present", "edema_extent": "head_and_neck", "double_line_sign": "absent", "subchondral_band": "absent", "focal_lesion": "absent"}}]


def case(**changes: Any) -> dict[str, Any]:
    raw = json.loads(json.dumps(SAFE))
    for key, value in changes.items():
        if "__" in key:
            outer, inner = key.split("__", 1)
            raw.setdefault(outer, {})[inner] = value
        else:
            raw[key] = value
    return raw


def toh_plan(raw: dict[str, Any], **kw: Any):
    return make_plan(Case.model_validate(raw), [("toh", 0.8), ("onfh", 0.15), ("septic", 0.01)], TK, TODAY, **kw)


def item(plan, option: str):
    return next(i for i in plan.items() if i.option == option)


def assessed(raw: dict[str, Any]) -> hipdx.Assessment:
    return hipdx.assess(hipdx.parse_case(raw), KB, TODAY)


# --- scope: a child gets no adult drug -------------------------------------------------------------

CHILD_13 = {
    **case(age_years=13, sex="female", pregnancy={"status": "not_pregnant", "breastfeeding": "absent"}),
    "onset": {"type": "sudden", "days_since_onset": 21},
    "imaging": TOH_MRI,
}


def test_a_13_year_old_is_recommended_no_medicine_and_is_referred_on():
    plan = toh_plan(CHILD_13)
    for key in MEDICINE_OPTIONS & {i.option for i in plan.items()}:
        it = item(plan, key)
        assert it.status is ItemStatus.blocked and not it.recommended, key
        assert "outside_scope_child" in {f.rule for f in it.blocked_by}, key
    assert plan.items()[0].option == "refer_outside_scope"
    assert plan.scope and "13" in plan.scope


def test_the_scope_gate_holds_on_the_command_line_too(tmp_path: Path):
    path = tmp_path / "child.json"
    path.write_text(json.dumps(CHILD_13), encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", str(path), "--format", "json", "--today", "2026-11-25"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    recommended = [i["option"] for s in plan["sections"] for i in s["items"] if i["status"] in ("recommended", "caution")]
    assert not MEDICINE_OPTIONS & set(recommended), recommended
    text = CliRunner().invoke(app, ["plan", str(path), "--today", "2026-11-25"], catch_exceptions=False).stdout
    assert "Outside hipdx's scope" in text


def test_every_medicine_carries_the_scope_rule():
    for key in MEDICINE_OPTIONS:
        assert any(r.fact == "outside_scope" and r.effect.value == "block" for r in TK.rules_for(key)), key
    assert {OptionKind.drug, OptionKind.analgesia, OptionKind.supplement} == set(MEDICINES)


def test_age_not_known_means_no_medicine_is_recommended():
    raw = case()
    del raw["age_years"]
    plan = toh_plan(raw)
    for key in MEDICINE_OPTIONS & {i.option for i in plan.items()}:
        assert not item(plan, key).recommended, key
    assert "outside_scope" in {r.fact for r in plan.needs_information}


@pytest.mark.parametrize(("age", "status"), [(17, ItemStatus.blocked), (20, ItemStatus.needs_information), (30, ItemStatus.recommended)])
def test_teriparatide_and_open_epiphyses(age, status):
    tp = item(toh_plan(case(age_years=age, comorbidities__open_epiphyses="unknown")), "teriparatide")
    assert tp.status is status
    if status is ItemStatus.blocked:
        assert "teriparatide_open_epiphyses" in {f.rule for f in tp.blocked_by}
    if status is ItemStatus.needs_information:
        assert [f.fact for f in tp.needs_information] == ["open_epiphyses"]
    closed = item(toh_plan(case(age_years=20, comorbidities__open_epiphyses="absent")), "teriparatide")
    assert closed.status is ItemStatus.recommended


def test_an_alp_of_250_is_not_judged_against_the_adult_interval_at_13_or_17():
    for age in (13, 17):
        fact = case_facts(Case.model_validate(case(age_years=age, labs={"alp": {"value": 250, "unit": "U/L"}})), TK)["alp_u_l"]
        assert not fact.known and "age-specific" in fact.source
    adult = case_facts(Case.model_validate(case(age_years=40, labs={"alp": {"value": 250, "unit": "U/L"}})), TK)["alp_u_l"]
    assert adult.known and adult.value == 250


# --- NSAIDs, denosumab, calcitonin ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"labs": {**SAFE["labs"], "egfr": {"value": 25, "unit": "mL/min/1.73m2"}, "creatinine": None}}, "nsaid_renal"),
        ({"comorbidities__heart_failure": "present"}, "nsaid_heart_failure"),
        ({"comorbidities__anticoagulant_use": "present"}, "nsaid_anticoagulant"),
        ({"comorbidities__peptic_ulcer_history": "present"}, "nsaid_peptic_ulcer_history"),
        ({"comorbidities__bleeding_risk": "present"}, "nsaid_bleeding"),
    ],
)
def test_nsaids_are_blocked_where_the_label_or_beers_says_avoid(changes, rule):
    raw = case(**changes)
    raw["labs"] = {k: v for k, v in raw["labs"].items() if v is not None}
    nsaid = item(toh_plan(raw), "nsaid")
    assert nsaid.status is ItemStatus.blocked and rule in {f.rule for f in nsaid.blocked_by}
    assert item(toh_plan(case()), "nsaid").status is ItemStatus.recommended


def test_nsaids_at_75_are_a_caution_and_unknown_anticoagulation_is_asked():
    old = item(toh_plan(case(age_years=78)), "nsaid")
    assert old.status is ItemStatus.caution and [c.rule for c in old.cautions] == ["nsaid_age_75"]
    unknown = item(toh_plan(case(comorbidities__anticoagulant_use="unknown")), "nsaid")
    assert unknown.status is ItemStatus.needs_information and [f.fact for f in unknown.needs_information] == ["anticoagulant_use"]


def test_denosumab_is_blocked_below_an_egfr_of_30():
    raw = case(labs={**SAFE["labs"], "egfr": {"value": 29, "unit": "mL/min/1.73m2"}})
    assert item(toh_plan(raw), "denosumab").status is ItemStatus.blocked


def test_calcitonin_has_its_dose_its_evidence_and_no_default_recommendation():
    option = TK.treatments.options["calcitonin"]
    assert "100 IU" in option.regimen and option.evidence.value == "case_report"
    no_labs = case()
    no_labs["labs"] = {}
    calcitonin = item(toh_plan(no_labs), "calcitonin")
    assert calcitonin.status is ItemStatus.needs_information
    assert [f.fact for f in calcitonin.needs_information] == ["calcium_mmol_l"]


# --- immunosuppression in the septic flag -----------------------------------------------------------


def test_prednisolone_with_a_raised_crp_raises_the_septic_flag():
    raw = {
        "age_years": 60,
        "sex": "female",
        "onset": {"type": "sudden", "days_since_onset": 10},
        "risk_factors": {"corticosteroids": {"status": "present", "dose_mg_per_day": 15}},
        "labs": {"crp": {"value": 28, "unit": "mg/L"}},
    }
    flags = {f.id: f for f in assessed(raw).red_flags}
    assert "corticosteroids = present and crp = raised" in flags["septic_signs"].triggered_by


# --- one weight-bearing instruction ----------------------------------------------------------------


def test_a_suspected_neck_fracture_defers_partial_weight_bearing():
    plan = toh_plan(case(), red_flags={"fnsf": "urgent"})
    assert plan.sections[0].condition == "fnsf"
    pwb = item(plan, "protected_weight_bearing")
    assert pwb.status is ItemStatus.deferred and not pwb.recommended
    assert "no weight-bearing now" in (pwb.context or "").lower()
    assert plan.governing and "deferred" in plan.governing[0]
    assert item(plan, "fnsf_pathway").recommended


# --- must-not-miss cases that raised no flag --------------------------------------------------------

MUST_NOT_MISS: dict[str, tuple[str, dict[str, Any]]] = {
    "septic on tocilizumab, CRP low": (
        "septic",
        {"age_years": 58, "sex": "female", "onset": {"type": "sudden", "days_since_onset": 4}, "unable_to_bear_weight": "present",
         "risk_factors": {"immunosuppression": "present", "inflammatory_disease": "present"}, "labs": {"crp": {"value": 3, "unit": "mg/L"}},
         "imaging": [{"modality": "mri", "days_since_onset": 3, "findings": {"edema": "present", "effusion": "present", "synovitis": "present"}}]},
    ),
    "septic early after an injection": (
        "septic",
        {"age_years": 66, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 5}, "pain": {"at_rest": "present"},
         "risk_factors": {"recent_joint_procedure": "present"}, "labs": {"crp": {"value": 8, "unit": "mg/L"}},
         "imaging": [{"modality": "mri", "days_since_onset": 4, "findings": {"edema_extent": "femoral_head", "effusion": "present"}}]},
    ),
    "diffuse marrow lymphoma, rest and night pain": (
        "neoplasm",
        {"age_years": 52, "sex": "male", "onset": {"type": "gradual", "days_since_onset": 60}, "pain": {"at_rest": "present", "at_night": "present"},
         "labs": {"crp": {"value": 6, "unit": "mg/L"}},
         "imaging": [{"modality": "mri", "days_since_onset": 50, "findings": {"edema_extent": "intertrochanteric", "focal_lesion": "absent"}}]},
    ),
    "myeloma, ESR 96 with a normal CRP": (
        "neoplasm",
        {"age_years": 67, "sex": "male", "onset": {"type": "gradual", "days_since_onset": 45},
         "labs": {"esr": {"value": 96, "unit": "mm/h"}, "crp": {"value": 4, "unit": "mg/L"}},
         "imaging": [{"modality": "mri", "days_since_onset": 40, "findings": {"edema_extent": "head_and_neck"}}]},
    ),
    "osteoid osteoma, nidus missed": (
        "neoplasm",
        {"age_years": 22, "sex": "male", "onset": {"type": "gradual", "days_since_onset": 120}, "pain": {"at_rest": "present", "at_night": "present"},
         "labs": {"crp": {"value": 2, "unit": "mg/L"}},
         "imaging": [{"modality": "mri", "days_since_onset": 110, "findings": {"edema_extent": "femoral_neck", "effusion": "present", "focal_lesion": "absent"}}]},
    ),
    "elderly steroid user with CKD, neck-only edema": (
        "fnsf",
        {"age_years": 78, "sex": "female", "onset": {"type": "sudden", "days_since_onset": 14},
         "risk_factors": {"corticosteroids": {"status": "present", "dose_mg_per_day": 7.5}}, "labs": {"egfr": {"value": 25, "unit": "mL/min/1.73m2"}},
         "imaging": [{"modality": "mri", "days_since_onset": 10, "findings": {"edema_extent": "femoral_neck"}}]},
    ),
    "SIF without collapse": (
        "sif",
        {"age_years": 71, "sex": "female", "onset": {"type": "sudden", "days_since_onset": 30},
         "imaging": [{"modality": "mri", "days_since_onset": 25, "findings": {"edema_extent": "head_and_neck", "subchondral_fracture_line": "present", "collapse": "absent"}}]},
    ),
}


@pytest.mark.parametrize("name", list(MUST_NOT_MISS))
def test_must_not_miss_cases_raise_a_flag_the_plan_and_headline_follow(name):
    condition, raw = MUST_NOT_MISS[name]
    a = assessed(raw)
    flagged = {f.condition for f in a.red_flags}
    assert condition in flagged, [f.id for f in a.red_flags]
    assert condition in {s.condition for s in a.plan.sections}
    assert a.headline.urgency in {f.urgency for f in a.red_flags}


def test_a_case_known_only_by_age_and_sex_raises_no_flag_and_no_emergency():
    a = assessed({"age_years": 45, "sex": "male"})
    assert a.red_flags == []
    assert all(s.urgency not in ("emergency", "urgent") for s in a.plan.sections)
    assert a.headline.text.startswith("No red flag")


def test_a_must_not_miss_condition_at_the_threshold_is_flagged_when_findings_are_known():
    threshold = TK.threshold("must_not_miss_probability").value
    a = assessed({"age_years": 50, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 30}, "labs": {"egfr": {"value": 25, "unit": "mL/min/1.73m2"}},
                  "imaging": [{"modality": "mri", "days_since_onset": 25, "findings": {"edema_extent": "head_and_neck"}}]})
    septic = next(d for d in a.differential if d.id == "septic")
    assert septic.probability >= threshold
    flag = next(f for f in a.red_flags if f.condition == "septic")
    assert flag.kind == "probability" and flag.urgency == "urgent"  # in the clinic, under 20%: the tier below


# --- the septic probability flag: never dropped, its urgency tiered (red_flags.yaml probability_flags) ---

#: septic arthritis 5-20% on marrow edema, a sudden onset and a poor renal function; no septic rule holds
SEPTIC_LOW = {"age_years": 50, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 30}, "labs": {"egfr": {"value": 25, "unit": "mL/min/1.73m2"}},
              "imaging": [{"modality": "mri", "days_since_onset": 25, "findings": {"edema_extent": "head_and_neck"}}]}
SEPTIC_EMERGENCY = TK.threshold("septic_emergency_probability").value


def septic_view(a: hipdx.Assessment) -> tuple[float, RedFlagHit, str]:
    """The septic probability, its flag and its plan section's urgency; the flag's urgency is the headline's."""
    p = next(d.probability for d in a.differential if d.id == "septic")
    flag = next(f for f in a.red_flags if f.condition == "septic")
    section = next(s for s in a.plan.sections if s.condition == "septic")
    assert section.urgency == flag.urgency == a.headline.urgency  # the three always agree
    return p, flag, section.urgency


def test_in_the_clinic_a_septic_probability_under_20_percent_is_flagged_urgent_not_emergency():
    """Fails without the tiers: the flag took the septic plan's 'emergency' at any probability."""
    p, flag, _ = septic_view(assessed(SEPTIC_LOW))
    assert TK.threshold("must_not_miss_probability").value <= p < SEPTIC_EMERGENCY
    assert (flag.kind, flag.urgency) == ("probability", "urgent")
    assert "Same day" in flag.action and "before any antibiotic" in flag.action
    assert any("20%" in t for t in flag.triggered_by) and "coakley2006" in flag.refs


def test_in_the_emergency_department_the_same_septic_probability_flag_is_an_emergency():
    """Fails without the setting's tier: the clinic's 'urgent' would send an ED patient home for bloods."""
    p, flag, _ = septic_view(assessed({**SEPTIC_LOW, "setting": "emergency_department"}))
    assert p < SEPTIC_EMERGENCY
    assert flag.urgency == "emergency" and "Do not discharge" in flag.action


def test_a_septic_probability_of_20_percent_or_more_is_an_emergency_without_a_rule():
    """Fails without the 20% tier: a probable septic hip without fever or a high CRP would wait for bloods."""
    a = assessed({**SEPTIC_LOW, "risk_factors": {"injection_drug_use": "present"}})
    p, flag, _ = septic_view(a)
    assert p >= SEPTIC_EMERGENCY
    assert (flag.kind, flag.urgency) == ("probability", "emergency")
    assert not any(f.kind == "rule" and f.condition == "septic" for f in a.red_flags)


def test_a_must_not_miss_condition_the_model_ranks_first_at_50_percent_is_flagged_on_patient_facts_alone():
    """An injecting drug user known by age, sex and that risk factor alone: septic arthritis leads, and
    no red-flag rule reads risk factors alone. Fails without must_not_miss_leading_probability: no
    flag (a probability flag needed a finding), so the headline did not name the leading condition.
    (The runner of hipdx-024, the first case of this kind, is now flagged by its own rule, R1.)"""
    a = assessed({"age_years": 22, "sex": "female", "risk_factors": {"injection_drug_use": "present"}})
    leading = a.differential[0]
    assert leading.id == "septic" and leading.probability >= TK.threshold("must_not_miss_leading_probability").value
    assert not any(f.kind == "rule" for f in a.red_flags)
    flag = next(f for f in a.red_flags if f.condition == "septic")
    assert (flag.kind, flag.urgency) == ("probability", "urgent")
    assert any("patient's facts alone" in t for t in flag.triggered_by)
    assert a.plan.sections[0].condition == "septic" and a.plan.sections[0].urgency == a.headline.urgency == "urgent"


def test_on_patient_facts_alone_a_probable_septic_hip_is_flagged_urgent_never_emergency():
    a = assessed({"age_years": 35, "sex": "male", "risk_factors": {"injection_drug_use": "present", "immunosuppression": "present"}})
    p, flag, _ = septic_view(a)
    assert p >= SEPTIC_EMERGENCY and a.differential[0].id == "septic"
    assert flag.urgency == "urgent" and "Same day" in flag.action  # asks for the bloods and the findings


def test_in_the_emergency_department_a_probable_septic_hip_on_patient_facts_alone_is_an_emergency():
    """The setting's tier holds whatever the flag rests on: an injecting drug user in the emergency
    department, septic arthritis leading on patient facts alone, is not sent home for next-day bloods.
    Fails without it: 'never above urgent' capped the setting's tier too (headline and plan urgent)."""
    a = assessed({"age_years": 22, "sex": "female", "setting": "emergency_department",
                  "risk_factors": {"injection_drug_use": "present"}})
    p, flag, _ = septic_view(a)
    assert a.differential[0].id == "septic" and flag.kind == "probability"
    assert flag.urgency == "emergency" and "Do not discharge" in flag.action
    assert any("emergency department" in t for t in flag.triggered_by)
    assert a.plan.sections[0].condition == "septic" and a.plan.sections[0].urgency == a.headline.urgency == "emergency"


def test_a_septic_rule_is_an_emergency_whatever_the_tier_of_the_probability():
    a = assessed({**SEPTIC_LOW, "labs": {**SEPTIC_LOW["labs"], "crp": {"value": 80, "unit": "mg/L"}}})
    _, flag, _ = septic_view(a)
    assert (flag.id, flag.urgency) == ("septic_signs", "emergency")


# --- property: no blocked or out-of-scope medicine is ever recommended ---------------------------


@st.composite
def safety_cases(draw) -> dict[str, Any]:
    presence = st.sampled_from(["present", "absent", "unknown"])
    sex = draw(st.sampled_from(["male", "female", "unknown"]))
    raw: dict[str, Any] = {"sex": sex, "onset": {"type": "sudden", "days_since_onset": draw(st.integers(2, 200))}}
    if draw(st.booleans()):
        raw["age_years"] = draw(st.integers(0, 100))
    age = raw.get("age_years")
    if sex == "female" and (age is None or 10 <= age <= 60):
        status = draw(st.sampled_from(["pregnant", "postpartum", "not_pregnant", "unknown"]))
        raw["pregnancy"] = {"status": status, "breastfeeding": draw(presence)}
        if status == "pregnant":
            raw["pregnancy"]["gestational_weeks"] = draw(st.integers(4, 40))
    labs: dict[str, Any] = {}
    if draw(st.booleans()):
        labs["egfr"] = {"value": draw(st.integers(5, 120)), "unit": "mL/min/1.73m2"}
    if draw(st.booleans()):
        labs["calcium"] = {"value": draw(st.floats(1.8, 3.0)), "unit": "mmol/L"}
    if draw(st.booleans()):
        labs["alp"] = {"value": draw(st.integers(40, 600)), "unit": "U/L"}
    if draw(st.booleans()):
        labs["crp"] = {"value": draw(st.floats(0.5, 200)), "unit": "mg/L"}
    raw["labs"] = labs
    raw["comorbidities"] = {name: draw(presence) for name in COMORBIDITIES}
    raw["risk_factors"] = {"cancer_history": draw(presence), "immunosuppression": draw(presence)}
    raw["imaging"] = [
        {"modality": "mri", "days_since_onset": 1, "findings": {
            "edema_extent": draw(st.sampled_from(["head_and_neck", "femoral_neck", "femoral_head", "intertrochanteric"])),
            "femoral_neck_fracture_line": draw(presence), "focal_lesion": draw(presence), "effusion": draw(presence)}}
    ]
    return raw


@settings(max_examples=examples(40), deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(safety_cases())
def test_no_blocked_or_out_of_scope_medicine_is_ever_recommended(raw):
    c = hipdx.parse_case(raw)
    a = hipdx.assess(c, KB, TODAY)
    scope = TK.threshold("scope_min_age_years").value
    for it in a.plan.items():
        if it.blocked_by or it.needs_information:
            assert not it.recommended, it.option
        if it.option in MEDICINE_OPTIONS and (c.age_years is None or c.age_years < scope):
            assert not it.recommended, (it.option, c.age_years)
        if it.recommended and it.option in MEDICINE_OPTIONS:
            facts = case_facts(c, TK)
            for rule in TK.rules_for(it.option):
                if rule.effect.value == "block" and rule.fact not in ("skeletal_malignancy_not_excluded", "infection_not_excluded"):
                    assert facts[rule.fact].known, (it.option, rule.id)
    sections = {s.condition for s in a.plan.sections}
    assert {f.condition for f in a.red_flags} <= sections


# --- staging only what the differential supports ------------------------------------------------


def test_a_toh_case_gets_no_osteonecrosis_stage_and_a_fracture_no_resolution_promise():
    toh = assessed({"age_years": 44, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 40},
                    "labs": {"crp": {"value": 3, "unit": "mg/L"}},
                    "imaging": [{"modality": "mri", "days_since_onset": 35, "findings": {"edema_extent": "head_and_neck", "double_line_sign": "absent", "subchondral_band": "absent", "effusion": "present"}}]})
    assert "toh" in toh.staging.scope.conditions and "onfh" not in toh.staging.scope.conditions
    assert all(r.status.value == "not_applicable" and "not staged" in r.notes[0] for r in toh.staging.osteonecrosis)
    runner = assessed({"age_years": 24, "sex": "female", "onset": {"type": "gradual", "days_since_onset": 20}, "risk_factors": {"repetitive_loading": "present"},
                       "imaging": [{"modality": "mri", "days_since_onset": 18, "findings": {"edema_extent": "femoral_neck", "femoral_neck_fracture_line": "present", "femoral_neck_fracture_side": "compression", "femoral_neck_fracture_width_percent": 30, "subchondral_band": "absent"}}]})
    assert runner.differential[0].id == "fnsf"
    assert "resolution is likely" not in runner.staging.subchondral_band.summary
    assert runner.staging.toh_phase.phase == "not_staged"
    assert runner.staging.femoral_neck_fracture.grade == "compression_narrow"  # a fact of the findings, always graded


def test_an_onfh_with_collapse_gets_its_stage_and_no_toh_phase():
    onfh = assessed(json.loads((Path(__file__).parent.parent / "examples" / "onfh_alcohol_collapse.json").read_text(encoding="utf-8")))
    assert onfh.staging.system("arco_2019").stage is not None
    assert onfh.staging.toh_phase.phase == "not_staged"


# --- a raised white count alone is no septic emergency (clinical review) ---------------------------

PREGNANT_WBC_11 = {
    "age_years": 31, "sex": "female", "pregnancy": {"status": "pregnant", "gestational_weeks": 32},
    "onset": {"type": "gradual", "days_since_onset": 14}, "pain": {"weight_bearing": "present"}, "unable_to_bear_weight": "absent",
    "labs": {"wbc": {"value": 11.0, "unit": "10^9/L"}, "crp": {"value": 8, "unit": "mg/L"}, "temperature": {"value": 37.0, "unit": "degC"}},
}


def test_a_white_count_of_11_alone_in_late_pregnancy_is_no_septic_emergency():
    """Borzio 2016: serum WBC not predictive; Margaretten 2007: LR+ about 1.4; leucocytosis of pregnancy."""
    a = assessed(PREGNANT_WBC_11)
    assert "septic_signs" not in {f.id for f in a.red_flags}
    assert a.headline.urgency != "emergency"
    assert next(d for d in a.differential if d.id == "septic").probability < 0.05


@pytest.mark.parametrize("extra", [{"crp": {"value": 20, "unit": "mg/L"}}, {"temperature": {"value": 37.8, "unit": "degC"}}])
def test_a_raised_white_count_still_flags_infection_with_a_raised_crp_or_a_low_grade_temperature(extra):
    raw = {**PREGNANT_WBC_11, "labs": {**PREGNANT_WBC_11["labs"], **extra}}
    flag = next(f for f in assessed(raw).red_flags if f.id == "septic_signs")
    assert flag.urgency == "emergency" and any("wbc" in t for t in flag.triggered_by), flag.triggered_by


# --- a history of cancer holds the tumour flag until an MRI shows no focal lesion (clinical review) ---

CANCER_TOH = {
    "age_years": 52, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 30},
    "risk_factors": {"cancer_history": "present", "corticosteroids": {"status": "absent"}}, "labs": {"crp": {"value": 3, "unit": "mg/L"}},
}
CLEAR_MRI = {"modality": "mri", "days_since_onset": 28, "findings": {
    "edema": "present", "edema_extent": "head_and_neck", "focal_lesion": "absent", "femoral_neck_fracture_line": "absent",
    "double_line_sign": "absent", "subchondral_band": "absent"}}


def _waiting_for_neoplasm(a: hipdx.Assessment) -> set[str]:
    return {i.option for i in a.plan.items() if "neoplasm_not_yet_excluded" in {f.fact for f in i.needs_information}}


def test_cancer_history_holds_the_bone_drugs_until_the_mri_excludes_a_tumour():
    before = assessed(CANCER_TOH)
    assert "neoplasm_signs" in {f.id for f in before.red_flags}
    assert {"denosumab", "zoledronic_acid", "calcitonin"} <= _waiting_for_neoplasm(before)
    assert not any(i.recommended for i in before.plan.items() if i.option in ("denosumab", "zoledronic_acid", "calcitonin"))
    after = assessed({**CANCER_TOH, "imaging": [CLEAR_MRI]})
    assert "neoplasm" not in {f.condition for f in after.red_flags}
    assert _waiting_for_neoplasm(after) == set()
    assert next(i for i in after.plan.items() if i.option == "teriparatide").status.value == "blocked"
    a_lesion = assessed({**CANCER_TOH, "imaging": [{**CLEAR_MRI, "findings": {**CLEAR_MRI["findings"], "focal_lesion": "present"}}]})
    assert "neoplasm_signs" in {f.id for f in a_lesion.red_flags}
    assert not any(i.recommended for i in a_lesion.plan.items() if i.option in ("denosumab", "zoledronic_acid", "calcitonin", "teriparatide"))
