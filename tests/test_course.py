"""The course: visits against the expected course, the alert rules, the course knowledge file and the plot."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

import hipdx
from hipdx.errors import InputError, KnowledgeBaseError
from hipdx.knowledge import default_data_dir, load_knowledge_base
from hipdx.knowledge import load_course_knowledge
from hipdx.knowledge.course import THRESHOLDS, CourseKnowledge
from hipdx.reasoning.course import CourseReport, PainPosition, compare_course
from hipdx.report.course import render_course_text
from hipdx.report.plot import DPI, FIGURE_SIZE_IN, plot_course

TODAY = dt.date(2026, 11, 25)


@pytest.fixture(scope="module")
def course_kb() -> CourseKnowledge:
    return load_course_knowledge()


def course_of(visits: list[dict[str, Any]], leading: str = "toh", **case: Any) -> CourseReport:
    raw = {"age_years": 45, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 400}, **case, "visits": visits}
    return compare_course(hipdx.parse_case(raw), leading, load_course_knowledge(), TODAY)


def alert_ids(report: CourseReport) -> list[str]:
    return [a.id for a in report.alerts]


#: A course of transient osteoporosis of the hip that resolves on time.
IMPROVING = [
    {"days_since_onset": 14, "pain_0_10": 7, "walking": "walking_aids", "edema_extent": "head_and_neck"},
    {"days_since_onset": 45, "pain_0_10": 6, "walking": "walking_aids"},
    {"days_since_onset": 90, "pain_0_10": 4, "walking": "limp", "edema_extent": "femoral_head"},
    {"days_since_onset": 180, "pain_0_10": 1, "walking": "normal", "edema_extent": "focal"},
    {"days_since_onset": 300, "pain_0_10": 0, "walking": "normal", "edema_extent": "none"},
]


# -- the alert rules on constructed courses ---------------------------------------------------


def test_toh_improving_on_time_raises_no_alert() -> None:
    report = course_of(IMPROVING)
    assert report.alerts == []
    assert {p.pain_position for p in report.points} == {PainPosition.within}
    assert report.warnings == []


def test_flat_pain_at_100_days_raises_the_3_month_alert() -> None:
    report = course_of([
        {"days_since_onset": 10, "pain_0_10": 6},
        {"days_since_onset": 50, "pain_0_10": 6},
        {"days_since_onset": 100, "pain_0_10": 6},
    ])
    assert alert_ids(report) == ["no_improvement_3_months"]
    alert = report.alerts[0]
    assert alert.severity.value == "soon"
    assert alert.days_since_onset[-1] == 100
    assert "osteonecrosis" in alert.action and "MRI" in alert.action
    assert {"bmb2023", "farrar2001"} <= set(alert.refs)


def test_the_3_month_alert_waits_for_3_months() -> None:
    assert course_of([{"days_since_onset": 10, "pain_0_10": 6}, {"days_since_onset": 80, "pain_0_10": 6}]).alerts == []


def test_pain_above_the_band_after_3_months_alerts_without_earlier_scores() -> None:
    report = course_of([{"days_since_onset": 200, "pain_0_10": 7}])
    assert alert_ids(report) == ["no_improvement_3_months"]
    assert report.points[0].pain_position is PainPosition.above


def test_mild_flat_pain_is_not_a_failure_to_improve() -> None:
    assert course_of([{"days_since_onset": 20, "pain_0_10": 2}, {"days_since_onset": 100, "pain_0_10": 2}]).alerts == []


def test_worsening_after_the_first_weeks_alerts() -> None:
    report = course_of([
        {"days_since_onset": 20, "pain_0_10": 7},
        {"days_since_onset": 50, "pain_0_10": 4},
        {"days_since_onset": 70, "pain_0_10": 7},
    ])
    assert alert_ids(report) == ["worsening_toh"]
    alert = report.alerts[0]
    assert alert.severity.value == "urgent"
    assert alert.days_since_onset == [50, 70]
    assert "fracture" in alert.action


def test_pain_building_up_in_the_first_weeks_is_within_the_course() -> None:
    report = course_of([{"days_since_onset": 3, "pain_0_10": 3}, {"days_since_onset": 30, "pain_0_10": 8}])
    assert report.alerts == []


def test_becoming_unable_to_walk_counts_as_worsening() -> None:
    report = course_of([
        {"days_since_onset": 50, "pain_0_10": 5, "walking": "limp"},
        {"days_since_onset": 60, "pain_0_10": 5, "walking": "unable"},
    ])
    assert alert_ids(report) == ["worsening_toh"]
    assert "unable to walk" in report.alerts[0].finding


def test_new_joint_pain_raises_the_migration_alert() -> None:
    visits = [*IMPROVING[:3], {"days_since_onset": 120, "pain_0_10": 3, "new_joint_pain": "present",
                               "new_joint_site": "right knee"}]
    report = course_of(visits)
    assert alert_ids(report) == ["migration"]
    assert "right knee" in report.alerts[0].finding
    assert report.alerts[0].visits == [3]
    assert "evangelatos2019" in report.alerts[0].refs


def test_pregnant_with_rising_pain_raises_the_fracture_risk_alert() -> None:
    visits = [{"days_since_onset": 10, "pain_0_10": 5}, {"days_since_onset": 24, "pain_0_10": 6}]
    pregnant = {"sex": "female", "age_years": 32, "pregnancy": {"status": "pregnant", "gestational_weeks": 34}}
    report = course_of(visits, **pregnant)
    assert alert_ids(report) == ["pregnancy_fracture_risk"]
    alert = report.alerts[0]
    assert alert.severity.value == "urgent"
    assert "protected weight-bearing" in alert.action and "gadolinium" in alert.action
    assert "arch_osteoporos2017" in alert.refs
    # the same course in a man raises nothing: pain may still build up in the first weeks
    assert course_of(visits).alerts == []


def test_postpartum_counts_as_pregnancy_for_the_fracture_risk_alert() -> None:
    visits = [{"days_since_onset": 10, "pain_0_10": 4}, {"days_since_onset": 20, "pain_0_10": 5}]
    postpartum = {"sex": "female", "age_years": 30, "pregnancy": {"status": "postpartum", "postpartum_weeks": 3}}
    assert "pregnancy_fracture_risk" in alert_ids(course_of(visits, **postpartum))


def test_edema_gone_but_pain_persisting_alerts() -> None:
    report = course_of([
        {"days_since_onset": 30, "pain_0_10": 7, "edema_extent": "head_and_neck"},
        {"days_since_onset": 150, "pain_0_10": 6, "edema_extent": "none"},
    ])
    assert "edema_resolved_pain_persisting" in alert_ids(report)
    alert = next(a for a in report.alerts if a.id == "edema_resolved_pain_persisting")
    assert alert.visits == [1]
    assert "reconsider the diagnosis" in alert.action


def test_edema_persisting_beyond_12_months_alerts() -> None:
    report = course_of([{"days_since_onset": 30, "pain_0_10": 7}, {"days_since_onset": 390, "pain_0_10": 1,
                                                                   "edema_extent": "femoral_head"}])
    assert alert_ids(report) == ["edema_persisting"]


def test_visits_out_of_order_are_sorted_and_keep_their_index() -> None:
    shuffled = [IMPROVING[3], IMPROVING[0], IMPROVING[4], IMPROVING[1], IMPROVING[2]]
    report = course_of(shuffled)
    assert [p.days_since_onset for p in report.points] == [14, 45, 90, 180, 300]
    assert [p.visit for p in report.points] == [1, 3, 4, 0, 2]
    assert report.alerts == []


def test_visits_by_date_are_counted_from_the_onset_date() -> None:
    raw = {"onset": {"type": "sudden", "date": "2026-01-01"}, "assessed_on": "2026-06-01",
           "visits": [{"date": "2026-01-15", "pain_0_10": 7}, {"date": "2026-04-11", "pain_0_10": 7}]}
    report = compare_course(hipdx.parse_case(raw), "toh", load_course_knowledge(), TODAY)
    assert [p.days_since_onset for p in report.points] == [14, 100]
    assert alert_ids(report) == ["no_improvement_3_months"]


def test_visits_that_cannot_be_placed_are_left_out_with_a_warning() -> None:
    raw = {"visits": [{"date": "2026-01-15", "pain_0_10": 7}]}
    report = compare_course(hipdx.parse_case(raw), "toh", load_course_knowledge(), TODAY)
    assert report.points == [] and report.undated_visits == [0]
    assert any("cannot be placed" in w for w in report.warnings)


def test_osteonecrosis_has_no_band_and_its_own_worsening_rule() -> None:
    report = course_of([{"days_since_onset": 100, "pain_0_10": 4}, {"days_since_onset": 130, "pain_0_10": 7}],
                       leading="onfh")
    assert report.expected is not None and report.expected.pain_band is None
    assert report.expected.expected  # cited statements instead
    assert alert_ids(report) == ["worsening_onfh"]
    assert {p.pain_position for p in report.points} == {PainPosition.no_expected_band}


def test_a_diagnosis_without_a_course_gets_only_the_rules_for_any_diagnosis() -> None:
    visits = [{"days_since_onset": 10, "pain_0_10": 6},
              {"days_since_onset": 100, "pain_0_10": 6, "new_joint_pain": "present"}]
    report = course_of(visits, leading="septic")
    assert report.expected is None
    assert alert_ids(report) == ["migration"]
    assert any("no expected course" in w for w in report.warnings)


def test_every_alert_cites_references_of_the_bibliography(course_kb: CourseKnowledge) -> None:
    for rule in course_kb.alerts:
        assert set(rule.refs) <= set(course_kb.references)
        assert set(rule.thresholds) == THRESHOLDS[rule.kind]


def test_the_leading_diagnosis_comes_from_the_differential() -> None:
    raw = {
        "age_years": 44, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 100},
        "pain": {"weight_bearing": "present"}, "trauma": "none",
        "imaging": [{"modality": "mri", "days_since_onset": 20, "findings": {
            "edema": "present", "t1_low": "present", "stir_high": "present", "edema_extent": "head_and_neck",
            "subchondral_band": "absent", "double_line_sign": "absent"}}],
        "visits": [{"days_since_onset": 20, "pain_0_10": 7}, {"days_since_onset": 100, "pain_0_10": 7}],
    }
    case = hipdx.parse_case(raw)
    leading = hipdx.assess(case, load_knowledge_base(), TODAY).differential[0].id
    report = compare_course(case, leading, load_course_knowledge(), TODAY)
    assert report.condition == leading
    text = render_course_text(report)
    assert report.condition_name in text and "supports a clinician's decision" in text


# -- the course knowledge file --------------------------------------------------------------


def _copy_base(tmp_path: Path) -> Path:
    """A copy of the whole knowledge base: the course file is checked with the rest of it."""
    return Path(shutil.copytree(default_data_dir(), tmp_path / "data"))


def test_a_missing_reference_fails_to_load_and_is_named(tmp_path: Path) -> None:
    data_dir = _copy_base(tmp_path)
    course = yaml.safe_load((data_dir / "course.yaml").read_text())
    course["alerts"][0]["ref"] = ["bmb2023", "no_such_paper1999"]
    (data_dir / "course.yaml").write_text(yaml.safe_dump(course))
    with pytest.raises(KnowledgeBaseError) as err:
        load_course_knowledge(data_dir)
    assert any("no_such_paper1999" in p.reason and "no_improvement_3_months" in p.field for p in err.value.problems)


def test_every_problem_of_the_file_is_listed(tmp_path: Path) -> None:
    data_dir = _copy_base(tmp_path)
    course = yaml.safe_load((data_dir / "course.yaml").read_text())
    del course["alerts"][0]["thresholds"]["after_day"]
    course["courses"][0]["pain"]["source"] = {"basis": "estimate"}
    (data_dir / "course.yaml").write_text(yaml.safe_dump(course))
    with pytest.raises(KnowledgeBaseError) as err:
        load_course_knowledge(data_dir)
    reasons = " | ".join(str(p) for p in err.value.problems)
    assert "after_day" in reasons and "needs a note" in reasons


def test_an_unknown_condition_fails_to_load(tmp_path: Path) -> None:
    data_dir = _copy_base(tmp_path)
    course = yaml.safe_load((data_dir / "course.yaml").read_text())
    course["alerts"][0]["applies_to"] = ["toh", "gout"]
    (data_dir / "course.yaml").write_text(yaml.safe_dump(course))
    with pytest.raises(KnowledgeBaseError, match="inconsistent") as err:
        load_course_knowledge(data_dir)
    assert any("gout" in p.reason for p in err.value.problems)


# -- the plot -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alerting_report() -> CourseReport:
    return course_of([
        {"days_since_onset": 10, "pain_0_10": 8},
        {"days_since_onset": 60, "pain_0_10": 5, "new_joint_pain": "present", "new_joint_site": "left knee"},
        {"days_since_onset": 75},
        {"days_since_onset": 120, "pain_0_10": 7, "edema_extent": "none"},
    ], id="plot-case")


def test_the_png_is_a_valid_png_of_the_expected_size(alerting_report: CourseReport, tmp_path: Path) -> None:
    path = plot_course(alerting_report, tmp_path / "course.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (round(FIGURE_SIZE_IN[0] * DPI), round(FIGURE_SIZE_IN[1] * DPI)) == (1000, 600)


def test_the_svg_is_valid_svg_of_the_expected_size(alerting_report: CourseReport, tmp_path: Path) -> None:
    path = plot_course(alerting_report, tmp_path / "course.svg")
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == ("720pt", "432pt")


def test_the_plot_is_reproducible(alerting_report: CourseReport, tmp_path: Path) -> None:
    first = plot_course(alerting_report, tmp_path / "a.svg").read_bytes()
    assert plot_course(alerting_report, tmp_path / "b.svg").read_bytes() == first


def test_a_course_without_band_or_visits_still_plots(tmp_path: Path) -> None:
    path = plot_course(course_of([], leading="onfh"), tmp_path / "empty.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unknown_plot_format_is_an_input_error(alerting_report: CourseReport, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.png or \.svg"):
        plot_course(alerting_report, tmp_path / "course.pdf")


# -- the command line -----------------------------------------------------------------------


def test_hipdx_course_prints_alerts_and_writes_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hipdx.cli import main

    case = {"id": "flat", "age_years": 45, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 110},
            "visits": [{"days_since_onset": 20, "pain_0_10": 7}, {"days_since_onset": 100, "pain_0_10": 7}]}
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps(case))
    png = tmp_path / "course.png"
    assert main(["course", str(case_file), "--plot", str(png), "--today", "2026-11-25"]) == 0
    out = capsys.readouterr().out
    assert "Differential (re-run on the whole case)" in out and "No improvement by about 3 months" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["course", str(case_file), "--format", "json", "--today", "2026-11-25"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["course"]["condition"] == data["differential"][0]["id"]
    assert [a["id"] for a in data["course"]["alerts"]] == ["no_improvement_3_months"]

    assert main(["course", str(case_file), "--plot", str(tmp_path / "course.pdf")]) == InputError.exit_code
    assert ".png or .svg" in capsys.readouterr().err


# -- the course table says what its numbers show -----------------------------------------------


@pytest.mark.parametrize("day", [45, 95, 100, 150, 200])
@pytest.mark.parametrize("pain", [0, 3, 4, 5, 6, 7])
def test_the_table_labels_a_pain_by_the_band_it_shows(day: int, pain: int) -> None:
    """A pain of 6 against a band shown as 0-6 is within it, never "ABOVE the band"."""
    report = course_of([{"days_since_onset": day, "pain_0_10": pain}])
    row = next(line for line in render_course_text(report).splitlines() if line.split()[:2] == [str(day), str(pain)])
    low, high = (float(x) for x in row.split()[2].split("-"))
    expected = "ABOVE the band" if pain > high else "below the band" if pain < low else "within the band"
    assert expected in row, row
