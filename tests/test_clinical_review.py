"""Defects a clinical review found by using hipdx as its users would (session 21, review of the
clinician's outputs): each test reproduces one case a clinician meets and failed before its fix.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

import hipdx
from hipdx.knowledge import load_knowledge_base
from hipdx.reasoning.course import compare_course
from hipdx.reasoning.plan import ItemStatus
from hipdx.report import view

TODAY = dt.date(2026, 12, 8)
KB = load_knowledge_base()


def assessed(raw: dict[str, Any]) -> hipdx.Assessment:
    return hipdx.assess(hipdx.parse_case(raw), KB, TODAY)


#: six weeks post partum, breastfeeding, a compression-side fatigue line of the femoral neck on MRI
POSTPARTUM_NECK_LINE: dict[str, Any] = {
    "age_years": 31, "sex": "female", "weight_kg": 70, "side": "left",
    "pregnancy": {"status": "postpartum", "postpartum_weeks": 6, "breastfeeding": "present"},
    "onset": {"type": "gradual", "days_since_onset": 70}, "trauma": "none",
    "pain": {"weight_bearing": "present", "at_rest": "absent"}, "limp": "present", "unable_to_bear_weight": "absent",
    "labs": {"crp": {"value": 3, "unit": "mg/L"}, "temperature": {"value": 36.7, "unit": "degC"}},
    "imaging": [{"modality": "mri", "days_since_onset": 68, "findings": {
        "edema": "present", "edema_extent": "head_and_neck", "femoral_neck_fracture_line": "present",
        "femoral_neck_fracture_side": "compression", "femoral_neck_fracture_width_percent": 30,
        "fracture_displaced": "absent", "double_line_sign": "absent", "subchondral_band": "absent", "effusion": "present"}}],
}


def test_the_headline_gives_the_weight_bearing_instruction_that_governs_not_an_analgesic():
    # Before: "URGENT: Hip pain with marrow edema in pregnancy or after delivery. Paracetamol
    # (acetaminophen) as first analgesic." - the TOH section led among the urgent ones, its
    # protected weight-bearing was deferred by the fracture's no weight-bearing, and the headline
    # fell through to paracetamol while a neck fracture line asked for no weight-bearing.
    a = assessed(POSTPARTUM_NECK_LINE)
    assert a.headline.urgency == "urgent"
    assert a.headline.condition == "fnsf", a.headline.text
    assert "Paracetamol" not in a.headline.text
    assert "weight-bearing" in a.headline.text.lower()
    # the sections keep their urgencies; the governing one comes first among equals
    first = a.plan.sections[0]
    assert first.condition == "fnsf" and first.urgency == "urgent"
    assert not any(i.status is ItemStatus.deferred for i in first.items)


def test_a_fracture_option_never_names_a_looser_weight_bearing_than_it_instructs():
    # Before: 'Compression-side fatigue line under 50% of the neck width - protected
    # weight-bearing', an option whose regimen and loading (weight_bearing: none) say
    # non-weight-bearing until pain-free; the governing note then read "No weight-bearing now:
    # '... - protected weight-bearing' is the safer instruction".
    for key, option in KB.treatment.treatments.options.items():
        title = option.title.lower()
        if option.weight_bearing == "none":
            assert "protected weight-bearing" not in title and "partial weight-bearing" not in title, key
    a = assessed(POSTPARTUM_NECK_LINE)
    flag = next(f for f in a.red_flags if f.id == "femoral_neck_fracture")
    assert "protected weight-bearing" not in flag.action, flag.action


#: a woman of 58 with a past breast cancer; the MRI shows head and neck edema and no fracture line
CANCER_HISTORY_NO_LINE: dict[str, Any] = {
    "age_years": 58, "sex": "female", "weight_kg": 62, "side": "left",
    "onset": {"type": "gradual", "days_since_onset": 60}, "trauma": "none",
    "pain": {"weight_bearing": "present", "at_rest": "absent", "at_night": "absent"},
    "pregnancy": {"status": "not_pregnant", "breastfeeding": "absent"},
    "risk_factors": {"cancer_history": "present"},
    "labs": {"crp": {"value": 2, "unit": "mg/L"}, "egfr": {"value": 85, "unit": "mL/min/1.73m2"}},
    "imaging": [{"modality": "mri", "days_since_onset": 55, "findings": {
        "edema": "present", "edema_extent": "head_and_neck", "focal_lesion": "absent", "double_line_sign": "absent",
        "subchondral_band": "absent", "femoral_neck_fracture_line": "absent"}}],
}


def test_a_fracture_flag_without_a_fracture_line_does_not_ask_to_grade_the_line():
    # Before: "Femoral neck stress or insufficiency fracture not excluded: 7% in the differential:
    # The side, width and displacement of the fracture line decide the urgency; protect the hip
    # until it is graded." - for an MRI that reports no fracture line.
    a = assessed(CANCER_HISTORY_NO_LINE)
    flag = next(f for f in a.red_flags if f.condition == "fnsf")
    assert flag.kind == "probability"
    assert not flag.action.startswith("The side, width and displacement of the fracture line"), flag.action
    assert "until it is graded" not in flag.action
    assert "excluded" in flag.action


def test_the_pregnancy_flag_after_delivery_gives_the_pregnancy_advice_as_conditional():
    # Before: six weeks post partum, the flag said "avoid NSAIDs from 20 weeks of gestation; plan
    # delivery with the obstetric team" as if she were still pregnant.
    a = assessed(POSTPARTUM_NECK_LINE)
    flag = next(f for f in a.red_flags if f.id == "pregnancy_fracture_risk")
    action = " ".join(flag.action.split())
    assert "In pregnancy" in action and action.index("In pregnancy") < action.index("plan delivery"), action
    assert "after delivery" in action.lower() or "post partum" in action.lower()


def test_a_blocking_rule_without_a_source_says_so_not_empty_brackets():
    # Before: "Blocked by breastfeeding = yes (pregnancy.breastfeeding): Not given during
    # breastfeeding (hipdx rule; no lactation data retrieved). []" in the plan and the report.
    from hipdx.report.html import ReportContent, render_html
    from hipdx.report.management import format_plan

    case = hipdx.parse_case(POSTPARTUM_NECK_LINE)
    a = hipdx.assess(case, KB, TODAY)
    calcitonin = next(i for i in a.plan.items() if i.option == "calcitonin")
    assert calcitonin.status is ItemStatus.blocked and not calcitonin.blocked_by[0].refs
    assert "[]" not in format_plan(a.plan)
    assert "no source: estimate" in format_plan(a.plan)
    page = render_html(ReportContent(a, case=case, inputs=(("case file", "x.json"),)), KB)
    assert "[]" not in page and "no source: estimate" in page


def test_the_staging_caveat_does_not_contradict_its_scope():
    # Before: "Staged for: fnsf, toh (the conditions the differential supports)" and, below the
    # same stages, "... a stage does not make the diagnosis, and staging does not depend on the
    # differential."
    from hipdx.report.management import format_staging

    a = assessed(POSTPARTUM_NECK_LINE)
    assert a.staging.scope is not None
    text = " ".join(format_staging(a.staging).split())
    assert "the conditions the differential supports" in text
    assert "does not depend on the differential" not in text
    assert "a stage does not make the diagnosis" in text


#: a man with TOH whose edema had gone by day 196, with pain back at 6/10 at day 426
COURSE_WORSE: dict[str, Any] = {
    "age_years": 42, "sex": "male", "side": "right", "onset": {"type": "sudden", "days_since_onset": 433},
    "pain": {"weight_bearing": "present", "at_rest": "absent"}, "labs": {"crp": {"value": 2, "unit": "mg/L"}},
    "imaging": [{"modality": "mri", "days_since_onset": 19, "findings": {
        "edema": "present", "edema_extent": "head_and_neck", "double_line_sign": "absent", "subchondral_band": "absent"}}],
    "visits": [{"days_since_onset": 19, "pain_0_10": 8}, {"days_since_onset": 196, "pain_0_10": 2, "edema_extent": "none"},
               {"days_since_onset": 426, "pain_0_10": 6}],
}


def test_the_report_names_the_alerts_of_the_visits_beside_a_headline_without_a_red_flag():
    # Before: page 1 said "Now: No red flag. Most likely: TOH (89%). Protected weight-bearing ..."
    # and only the course section pages later said "URGENT: Pain or walking worse after the first
    # weeks" - the visits do not feed the differential, so the headline cannot know.
    from hipdx.report.html import ReportContent, course_content, render_html

    case = hipdx.parse_case(COURSE_WORSE)
    a = hipdx.assess(case, KB, TODAY)
    assert a.headline.text.startswith("No red flag")
    course, plot = course_content(case, a, KB, TODAY)
    assert course is not None and course.alerts[0].severity.value == "urgent"
    page = render_html(ReportContent(a, case=case, inputs=(("case file", "x.json"),), course=course, course_plot=plot), KB)
    top = page[page.index("Now: "):page.index('class="statement"')]
    assert "From the follow-up visits: URGENT: Pain or walking worse after the first weeks" in top


#: a woman of 78 on an anticoagulant, with heart failure and a creatinine clearance of about 21 mL/min
ELDERLY_CKD: dict[str, Any] = {
    "age_years": 78, "sex": "female", "weight_kg": 60, "side": "left",
    "onset": {"type": "sudden", "days_since_onset": 30}, "pain": {"weight_bearing": "present"},
    "comorbidities": {"anticoagulant_use": "present", "heart_failure": "present"},
    "labs": {"egfr": {"value": 22, "unit": "mL/min/1.73m2"}, "creatinine": {"value": 2.1, "unit": "mg/dL"}},
    "imaging": [{"modality": "mri", "days_since_onset": 29, "findings": {"edema": "present", "edema_extent": "head_and_neck"}}],
}


def test_the_report_names_a_blocking_fact_with_its_unit_in_words():
    # Before: "Blocked by creatinine clearance ml min = 20.9 (Cockcroft-Gault)", "Needs calcium
    # mmol l (not known)": the unit of the identifier spelt as words.
    from hipdx.report.html import ReportContent, render_html

    case = hipdx.parse_case(ELDERLY_CKD)
    page = " ".join(render_html(ReportContent(hipdx.assess(case, KB, TODAY), case=case, inputs=()), KB).split())
    assert "Blocked by <b>creatinine clearance (mL/min) = 20.9 (Cockcroft-Gault)</b>" in page
    assert "ml min" not in page
    from hipdx.report.view import fact_words

    assert fact_words("egfr_ml_min") == "eGFR (mL/min/1.73 m2)"
    assert fact_words("calcium_mmol_l") == "calcium (mmol/L)" and fact_words("heart_failure") == "heart failure"


def test_a_visits_pain_score_says_which_joint_it_is_of():
    # Before: a visit's "Pain 0-10" did not say whose pain it is; with migration to the other hip
    # (new_joint_pain at the same visit) the course read a score of the new joint as the first
    # hip's and raised "Pain or walking worse" for the hip that had recovered.
    from hipdx.web.form import LABELS

    description = hipdx.Case.model_json_schema()["$defs"]["Visit"]["properties"]["pain_0_10"]["description"]
    assert "side" in description and "new_joint_pain" in description, description
    assert LABELS["visit.pain_0_10"] == "Pain in this hip"


def test_a_study_that_reports_no_neck_fracture_line_cannot_grade_one():
    # Before: {"femoral_neck_fracture_line": "absent", "fracture_displaced": "present", ...} in one
    # MRI was accepted and graded "Displaced femoral neck fracture [emergency]" - the headline an
    # emergency fixation for a fracture line the same study said was absent. A collapse depth with
    # collapse absent was already refused; the fracture's attributes were not.
    import pytest

    base = {"age_years": 40, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 20}}
    for attribute, value in [("fracture_displaced", "present"), ("femoral_neck_fracture_side", "tension"),
                             ("femoral_neck_fracture_width_percent", 80)]:
        findings = {"femoral_neck_fracture_line": "absent", attribute: value}
        with pytest.raises(hipdx.InputError) as refused:
            hipdx.parse_case(base | {"imaging": [{"modality": "mri", "days_since_onset": 5, "findings": findings}]})
        assert attribute in str(refused.value) and "femoral_neck_fracture_line" in str(refused.value)
    # consistent reports still pass: no line and not displaced; a line with its grade
    hipdx.parse_case(base | {"imaging": [{"modality": "mri", "days_since_onset": 5, "findings": {
        "femoral_neck_fracture_line": "absent", "fracture_displaced": "absent"}}]})
    hipdx.parse_case(base | {"imaging": [{"modality": "mri", "days_since_onset": 5, "findings": {
        "femoral_neck_fracture_line": "present", "femoral_neck_fracture_side": "tension", "femoral_neck_fracture_width_percent": 30}}]})


def test_the_printed_report_dates_itself_and_the_onset_on_its_first_page():
    # Before: page 1 said "Onset of pain gradual, 70 days ago" and the date it counted from was
    # only in the provenance on the last page: "ago" is wrong as soon as the report is read later.
    from hipdx.report.html import ReportContent, render_html

    case = hipdx.parse_case(POSTPARTUM_NECK_LINE)
    page = " ".join(render_html(ReportContent(hipdx.assess(case, KB, TODAY), case=case, assessed_on=TODAY), KB).split())
    first = page[:page.index("Why: each finding")]  # the title, headline, patient and red flags
    assert "days ago" not in page
    assert "assessed on 2026-12-08" in first  # in the title, which every page's footer repeats
    assert "70 days before the assessment (about 2026-09-29)" in first


def test_a_transplant_patient_on_tacrolimus_is_not_offered_an_nsaid():
    # Before: a kidney transplant recipient on tacrolimus (eGFR 45) had the NSAID course only
    # "waiting for" bleeding risk and the like; nothing asked about or blocked the calcineurin
    # inhibitor (acute kidney injury: Delzer 2018, Chiasson 2019).
    raw = {"age_years": 52, "sex": "male", "weight_kg": 75, "onset": {"type": "sudden", "days_since_onset": 30},
           "risk_factors": {"immunosuppression": "present"},
           "comorbidities": {"calcineurin_inhibitor_use": "present", "anticoagulant_use": "absent", "heart_failure": "absent",
                             "bleeding_risk": "absent", "peptic_ulcer_history": "absent"},
           "labs": {"egfr": {"value": 45, "unit": "mL/min/1.73m2"}, "crp": {"value": 2, "unit": "mg/L"}},
           "imaging": [{"modality": "mri", "days_since_onset": 25, "findings": {"edema": "present", "edema_extent": "head_and_neck"}}]}
    a = assessed(raw)
    nsaids = [i for i in a.plan.items() if i.option == "nsaid"]
    assert nsaids and all(i.status is ItemStatus.blocked for i in nsaids)
    assert {b.fact for i in nsaids for b in i.blocked_by} >= {"calcineurin_inhibitor_use"}
    # not known: the NSAID waits for it and the plan asks
    raw["comorbidities"].pop("calcineurin_inhibitor_use")
    a = assessed(raw)
    assert "calcineurin_inhibitor_use" in {r.fact for r in a.plan.needs_information if r.blocking}
    assert not any(i.recommended for i in a.plan.items() if i.option == "nsaid")


def test_the_reports_patient_summary_shows_breastfeeding_beside_pregnancy() -> None:
    # Before: the report's summary gave "Pregnancy: postpartum, 6 weeks since delivery" and
    # nothing on breastfeeding, a fact the plan's drug rules block or wait on.
    from hipdx.report.html import patient_summary

    rows = patient_summary(hipdx.parse_case(POSTPARTUM_NECK_LINE), TODAY)
    labels = [label for label, _ in rows]
    assert labels.index("Breastfeeding") == labels.index("Pregnancy") + 1
    assert dict(rows)["Breastfeeding"] == "yes"
    unknown = {**POSTPARTUM_NECK_LINE, "pregnancy": {"status": "postpartum", "postpartum_weeks": 6}}
    assert dict(patient_summary(hipdx.parse_case(unknown), TODAY))["Breastfeeding"] == "not known"
    man = {"age_years": 40, "sex": "male"}
    assert "Breastfeeding" not in dict(patient_summary(hipdx.parse_case(man), TODAY))


@pytest.mark.parametrize("args", [[], ["--detail"], ["--format", "markdown"], ["--detail", "--format", "markdown"]])
def test_the_cli_names_the_alerts_of_the_visits_under_the_headline(tmp_path, args):
    # Before: `hipdx assess` printed "Now: No red flag. Most likely: TOH ..." and no word of the
    # visits' urgent alert, which the report and web page (6fd6ad9) name under the headline.
    from conftest import CliRunner
    from hipdx.cli import app

    path = tmp_path / "case.json"
    path.write_text(json.dumps(COURSE_WORSE))
    out = CliRunner().invoke(app, ["assess", str(path), "--today", TODAY.isoformat(), "--no-color", *args]).output
    expected = view.course_alerts_line(compare_course(hipdx.parse_case(COURSE_WORSE), "toh", KB.course, TODAY), "`hipdx course`")
    assert "URGENT: Pain or walking worse" in expected
    flat = " ".join(out.replace("*", "").split())
    assert " ".join(expected.replace("*", "").split()) in flat
    assert flat.index("Now") < flat.index("From the follow-up visits") < flat.lower().index("red flags")


def test_the_cli_json_carries_the_alerts_of_the_visits_after_the_headline(tmp_path):
    from conftest import CliRunner
    from hipdx.cli import app

    path = tmp_path / "case.json"
    path.write_text(json.dumps(COURSE_WORSE))
    out = CliRunner().invoke(app, ["assess", str(path), "--today", TODAY.isoformat(), "--format", "json"]).output
    data = json.loads(out)
    keys = list(data)
    assert keys.index("course_alerts") == keys.index("headline") + 1
    assert data["course_alerts"][0]["severity"] == "urgent"
    without = {k: v for k, v in COURSE_WORSE.items() if k != "visits"}
    path.write_text(json.dumps(without))
    out = CliRunner().invoke(app, ["assess", str(path), "--today", TODAY.isoformat(), "--format", "json"]).output
    assert json.loads(out)["course_alerts"] == []


def test_mri_without_contrast_is_not_called_a_small_yield_for_its_burden_in_pregnancy():
    # Before: a woman at 34 weeks with sudden hip pain and no imaging was told of the MRI "Its
    # expected yield is small for its burden", though MRI without contrast is the imaging of
    # choice in pregnancy (ACOG Committee Opinion 723); gadolinium and radiation stay penalised.
    from hipdx.reasoning.information import burden_of_test

    raw = {"age_years": 31, "sex": "female", "pregnancy": {"status": "pregnant", "gestational_weeks": 34},
           "onset": {"type": "sudden", "days_since_onset": 14}, "trauma": "none",
           "pain": {"weight_bearing": "present", "at_rest": "absent"},
           "labs": {"crp": {"value": 4, "unit": "mg/L"}, "temperature": {"value": 36.8, "unit": "degC"}}}
    mri = next(t for t in assessed(raw).next_tests if t.id == "mri")
    assert mri.score > 0 and "small for its burden" not in mri.reason and not mri.warnings
    tests = {t.id: t for t in KB.tests}
    pregnant = {i: burden_of_test(KB, tests[i], True)[0] for i in ("mri", "mri_contrast", "ct", "bone_scan", "radiograph")}
    assert pregnant["mri"] < pregnant["radiograph"] < pregnant["ct"] < pregnant["mri_contrast"] < pregnant["bone_scan"]
    assert burden_of_test(KB, tests["mri"], False)[0] == tests["mri"].burden  # outside pregnancy unchanged
