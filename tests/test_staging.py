"""Staging rules against their published definitions, on cases built for the boundaries."""

from __future__ import annotations

from typing import Any

import pytest

from hipdx.case import Case
from hipdx.knowledge import load_treatment_knowledge
from hipdx.reasoning import encode
from hipdx.reasoning.staging import BandVerdict, StageStatus, band_verdict, stage_case


@pytest.fixture(scope="module")
def tk():
    return load_treatment_knowledge()


def case(*studies: dict[str, Any], **fields: Any) -> Case:
    return Case.model_validate({**fields, "imaging": list(studies)})


def xr(**findings: Any) -> dict[str, Any]:
    return {"modality": "radiograph", "findings": findings}


def mri(**findings: Any) -> dict[str, Any]:
    return {"modality": "mri", "findings": findings}


NORMAL_XR = dict(subchondral_sclerosis="absent", subchondral_lucency="absent", crescent_sign="absent", collapse="absent", joint_space="preserved")


# --- ARCO 2019 ---------------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "expected"), [(0.0, "IIIA"), (2.0, "IIIA"), (2.1, "IIIB"), (5.0, "IIIB")])
def test_arco_iiia_iiib_boundary_is_2_mm(depth, expected, tk):
    c = case(xr(collapse="present", collapse_depth_mm=depth, joint_space="preserved"))
    arco = stage_case(c, tk).system("arco_2019")
    assert arco.status is StageStatus.staged
    assert arco.stage == expected
    assert "imaging.0.findings.collapse_depth_mm" in {i.field for i in arco.decided_by}


def test_arco_stage_i_needs_normal_radiograph_and_positive_mri(tk):
    c = case(xr(**NORMAL_XR), mri(double_line_sign="present", edema="present"))
    arco = stage_case(c, tk).system("arco_2019")
    assert (arco.status, arco.stage) == (StageStatus.staged, "I")
    assert "imaging.1.findings.double_line_sign" in {i.field for i in arco.decided_by}


def test_arco_stage_ii_radiograph_abnormal_without_fracture(tk):
    c = case(xr(**{**NORMAL_XR, "subchondral_sclerosis": "present"}), mri(double_line_sign="present"))
    arco = stage_case(c, tk).system("arco_2019")
    assert (arco.status, arco.stage) == (StageStatus.staged, "II")


def test_arco_stage_iv_with_joint_space_narrowed(tk):
    c = case(xr(collapse="present", collapse_depth_mm=4, joint_space="narrowed"))
    staging = stage_case(c, tk)
    assert staging.system("arco_2019").stage == "IV"
    assert staging.system("ficat_arlet").stage == "IV"
    assert staging.system("steinberg").stage == "V"
    destroyed = stage_case(case(xr(collapse="present", collapse_depth_mm=4, joint_space="destroyed")), tk)
    assert destroyed.system("steinberg").stage == "VI"


def test_narrowing_without_a_necrotic_head_is_not_osteonecrosis(tk):
    c = case(xr(**{**NORMAL_XR, "joint_space": "narrowed"}), mri(double_line_sign="absent"))
    arco = stage_case(c, tk).system("arco_2019")
    assert arco.status is StageStatus.not_applicable
    assert arco.stage is None
    assert any("osteoarthritis" in n for n in arco.notes)


def test_missing_inputs_are_named_not_assumed_normal(tk):
    # MRI positive but no radiograph: stage I is only a lower bound
    arco = stage_case(case(mri(double_line_sign="present")), tk).system("arco_2019")
    assert (arco.status, arco.stage) == (StageStatus.at_least, "I")
    assert any("subchondral_sclerosis" in m for m in arco.missing)
    assert any("collapse" in m for m in arco.missing)
    assert "joint_space" in arco.missing
    # nothing reported at all: undecidable, with the missing findings named
    empty = stage_case(Case(), tk).system("arco_2019")
    assert empty.status is StageStatus.undecidable
    assert empty.stage is None
    assert any("double_line_sign" in m for m in empty.missing)
    # collapse without a depth: stage III, IIIA/IIIB undecided, depth asked for
    arco = stage_case(case(xr(collapse="present", joint_space="preserved")), tk).system("arco_2019")
    assert arco.stage == "III"
    assert any("collapse_depth_mm" in m for m in arco.missing)
    # collapse with joint space not reported: at least III
    arco = stage_case(case(xr(collapse="present", collapse_depth_mm=1)), tk).system("arco_2019")
    assert (arco.status, arco.stage) == (StageStatus.at_least, "IIIA")
    assert "joint_space" in arco.missing


def test_edema_alone_is_not_a_positive_mri_for_osteonecrosis(tk):
    c = case(xr(**NORMAL_XR), mri(edema="present", edema_extent="head_and_neck"))
    arco = stage_case(c, tk).system("arco_2019")
    assert arco.stage is None
    assert arco.status is StageStatus.undecidable
    assert any("double_line_sign" in m for m in arco.missing)
    assert any("Marrow edema alone" in n for n in arco.notes)


def test_most_recent_study_per_finding_is_used(tk):
    c = case(
        {**xr(collapse="absent", crescent_sign="absent", joint_space="preserved"), "days_since_onset": 10},
        {**xr(collapse="present", collapse_depth_mm=3, joint_space="preserved"), "days_since_onset": 60},
        onset={"days_since_onset": 70},
    )
    assert stage_case(c, tk).system("arco_2019").stage == "IIIB"


def test_collapse_on_mri_only_is_flagged_for_ct(tk):
    arco = stage_case(case(mri(collapse="present", collapse_depth_mm=1, joint_space="preserved")), tk).system("arco_2019")
    assert arco.stage == "IIIA"
    assert any("CT" in n for n in arco.notes)


# --- Ficat-Arlet and Steinberg ---------------------------------------------------------------


def test_ficat_stages(tk):
    assert stage_case(case(xr(**NORMAL_XR), mri(double_line_sign="present")), tk).system("ficat_arlet").stage == "I"
    assert stage_case(case(xr(**{**NORMAL_XR, "subchondral_lucency": "present"})), tk).system("ficat_arlet").stage == "II"
    assert stage_case(case(xr(**{**NORMAL_XR, "crescent_sign": "present"})), tk).system("ficat_arlet").stage == "III"


@pytest.mark.parametrize(("extent", "expected"), [(14.9, "IA"), (15, "IB"), (30, "IB"), (30.1, "IC")])
def test_steinberg_extent_classes(extent, expected, tk):
    c = case(xr(**NORMAL_XR), mri(double_line_sign="present", necrotic_extent_percent=extent))
    steinberg = stage_case(c, tk).system("steinberg")
    assert steinberg.stage == expected
    assert "imaging.1.findings.necrotic_extent_percent" in {i.field for i in steinberg.decided_by}


def test_steinberg_without_extent_names_it(tk):
    steinberg = stage_case(case(xr(**NORMAL_XR), mri(double_line_sign="present")), tk).system("steinberg")
    assert steinberg.stage == "I"
    assert "necrotic_extent_percent" in steinberg.missing


def test_steinberg_crescent_without_flattening_is_iii_and_flattening_is_iv(tk):
    crescent = stage_case(case(xr(**{**NORMAL_XR, "crescent_sign": "present"})), tk).system("steinberg")
    assert crescent.stage == "III"
    assert stage_case(case(xr(collapse="present", collapse_depth_mm=4.1, joint_space="preserved")), tk).system("steinberg").stage == "IVC"
    assert stage_case(case(xr(collapse="present", collapse_depth_mm=3, joint_space="preserved")), tk).system("steinberg").stage == "IVB"
    under = stage_case(case(xr(collapse="present", collapse_depth_mm=1.5, joint_space="preserved")), tk).system("steinberg")
    assert under.stage == "IV"  # IVA also needs < 15% of the surface collapsed, not recorded


# --- subchondral band ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thickness", "verdict"),
    [
        (3.4, BandVerdict.reversible_pattern),
        (3.5, BandVerdict.reversible_pattern),
        (3.6, BandVerdict.indeterminate),
        (4.0, BandVerdict.indeterminate),
        (4.4, BandVerdict.indeterminate),
        (4.5, BandVerdict.irreversible_suggestive),
        (4.6, BandVerdict.irreversible_suggestive),
    ],
)
def test_band_thickness_verdicts(thickness, verdict, tk):
    assert band_verdict(thickness, tk) is verdict
    band = stage_case(case(mri(subchondral_band="present", subchondral_band_thickness_mm=thickness)), tk).subchondral_band
    assert band.verdict is verdict
    assert "vandeberg2011" in band.refs
    assert any("12.5 mm" in c for c in band.caveats)


def test_the_encoder_reads_the_band_cutoff_from_the_data(tmp_path):
    """One home for the cut-off: staging.yaml. A base with another cut-off encodes by it."""
    import datetime as dt
    import shutil

    from hipdx.knowledge import default_data_dir, load_knowledge_base

    data = tmp_path / "data"
    shutil.copytree(default_data_dir(), data)
    staging = data / "staging.yaml"
    text = staging.read_text()
    start = text.index("  band_cutoff_mm:\n")
    assert text[start:].split("\n")[1] == "    value: 4.0"
    staging.write_text(text[:start] + text[start:].replace("    value: 4.0", "    value: 6.0", 1))
    c = case(mri(subchondral_band="present", subchondral_band_thickness_mm=5.0))
    states = {}
    for kb in (load_knowledge_base(), load_knowledge_base(data)):
        observed = encode.encoder_for(kb).encode(c, dt.date(2026, 1, 1))
        states[kb.treatment.threshold("band_cutoff_mm").value] = next(o.state for o in observed if o.variable == "subchondral_band")
    assert states == {4.0: "thick", 6.0: "thin"}


def test_band_without_thickness_and_not_reported(tk):
    band = stage_case(case(mri(subchondral_band="present")), tk).subchondral_band
    assert band.verdict is BandVerdict.thickness_not_measured
    assert band.missing == ["imaging.0.findings.subchondral_band_thickness_mm"]
    assert stage_case(Case(), tk).subchondral_band.verdict is BandVerdict.not_reported
    absent = stage_case(case(mri(subchondral_band="absent")), tk).subchondral_band
    assert absent.verdict is BandVerdict.absent


def test_band_length_is_reported_but_not_used(tk):
    band = stage_case(case(mri(subchondral_band="present", subchondral_band_thickness_mm=2, subchondral_band_length_mm=20)), tk).subchondral_band
    assert band.verdict is BandVerdict.reversible_pattern
    assert "unverified" in band.summary


# --- femoral neck stress fracture -----------------------------------------------------------------


def neck(**findings: Any):
    return stage_case(case(mri(femoral_neck_fracture_line="present", **findings)), load_treatment_knowledge()).femoral_neck_fracture


def test_tension_side_is_urgent():
    f = neck(femoral_neck_fracture_side="tension", fracture_displaced="absent")
    assert (f.grade, f.urgency) == ("tension", "urgent")
    assert "same day" in (f.action or "")


def test_displaced_is_an_emergency():
    f = neck(femoral_neck_fracture_side="compression", femoral_neck_fracture_width_percent=10, fracture_displaced="present")
    assert (f.grade, f.urgency) == ("displaced", "emergency")


@pytest.mark.parametrize(("width", "grade", "urgency"), [(49.9, "compression_narrow", "urgent"), (50, "compression_wide", "urgent"), (80, "compression_wide", "urgent")])
def test_compression_width_boundary(width, grade, urgency):
    f = neck(femoral_neck_fracture_side="compression", femoral_neck_fracture_width_percent=width, fracture_displaced="absent")
    assert (f.grade, f.urgency) == (grade, urgency)
    assert f.width_percent == width


def test_fracture_missing_side_or_width_takes_the_dangerous_grade():
    side = neck()
    assert (side.grade, side.urgency) == ("side_unknown", "urgent")
    assert "femoral_neck_fracture_side" in side.missing
    assert any("fracture_displaced" in m for m in side.missing)
    width = neck(femoral_neck_fracture_side="compression", fracture_displaced="absent")
    assert (width.grade, width.urgency) == ("compression_width_unknown", "urgent")
    assert "femoral_neck_fracture_width_percent" in width.missing


def test_no_fracture_line(tk):
    assert stage_case(case(mri(femoral_neck_fracture_line="absent")), tk).femoral_neck_fracture.grade == "none"
    assert stage_case(Case(), tk).femoral_neck_fracture.grade == "not_reported"


# --- TOH phase and pattern ---------------------------------------------------------------------------


def test_toh_phase_early_established_and_estimate(tk):
    early = stage_case(Case.model_validate({"onset": {"days_since_onset": 20}}), tk).toh_phase
    assert early.phase == "early"
    assert early.estimate and "estimate" in early.note.lower()
    assert "osteopenia (radiograph)" in early.missing
    osteopenic = stage_case(case(xr(osteopenia="present"), onset={"days_since_onset": 30}), tk).toh_phase
    assert osteopenic.phase == "established"
    later = stage_case(Case.model_validate({"onset": {"days_since_onset": 90}}), tk).toh_phase
    assert later.phase == "established"
    assert not later.beyond_expected_course
    beyond = stage_case(Case.model_validate({"onset": {"days_since_onset": 400}}), tk).toh_phase
    assert beyond.beyond_expected_course


def test_toh_phase_resolving_from_mri_or_pain(tk):
    c = case(
        {**mri(edema_extent="head_and_neck"), "days_since_onset": 20},
        {**mri(edema_extent="focal"), "days_since_onset": 100},
        onset={"days_since_onset": 110},
    )
    assert stage_case(c, tk).toh_phase.phase == "resolving"
    v = Case.model_validate(
        {"onset": {"days_since_onset": 80}, "visits": [{"days_since_onset": 10, "pain_0_10": 8}, {"days_since_onset": 80, "pain_0_10": 3}]}
    )
    assert stage_case(v, tk).toh_phase.phase == "resolving"


def test_toh_phase_orders_visits_given_by_date_by_their_date(tk):
    """A visit given by its date has a time since onset like one given in days (one timeline)."""
    import datetime as dt

    v = Case.model_validate(
        {
            "onset": {"date": "2026-01-01"},
            "assessed_on": "2026-04-01",
            # listed out of order: the later visit, with half the pain, is first
            "visits": [{"date": "2026-03-20", "pain_0_10": 3}, {"date": "2026-01-10", "pain_0_10": 8}],
        }
    )
    phase = stage_case(v, tk, dt.date(2026, 4, 1)).toh_phase
    assert phase.phase == "resolving"
    pain = next(i for i in phase.decided_by if i.field.endswith("pain_0_10"))
    assert (pain.field, pain.days_since_onset) == ("visits.0.pain_0_10", 78.0)
    migratory = Case.model_validate(
        {"onset": {"date": "2026-01-01"}, "visits": [{"date": "2026-02-01", "new_joint_pain": "present"}]}
    )
    seen = next(i for i in stage_case(migratory, tk, dt.date(2026, 4, 1)).pattern.decided_by if i.field == "visits.0.new_joint_pain")
    assert seen.days_since_onset == 31.0


def test_toh_phase_undecidable_without_onset(tk):
    phase = stage_case(Case(), tk).toh_phase
    assert phase.phase == "undecidable"
    assert phase.missing


def test_bilateral_and_migratory_patterns(tk):
    bilateral = stage_case(Case.model_validate({"side": "both"}), tk).pattern
    assert bilateral.bilateral.value == "present"
    assert not bilateral.regional_migratory_osteoporosis_pattern
    prior = stage_case(Case.model_validate({"risk_factors": {"prior_episodes_other_joints": "present"}}), tk).pattern
    assert prior.regional_migratory_osteoporosis_pattern
    visit = Case.model_validate({"visits": [{"days_since_onset": 60, "new_joint_pain": "present", "new_joint_site": "left knee"}]})
    migratory = stage_case(visit, tk).pattern
    assert migratory.regional_migratory_osteoporosis_pattern
    assert "visits.0.new_joint_pain" in {i.field for i in migratory.decided_by}
    unknown = stage_case(Case(), tk).pattern
    assert unknown.migratory.value == "unknown"
    assert "risk_factors.prior_episodes_other_joints" in unknown.missing


def test_staging_provenance(tk):
    s = stage_case(case(xr(collapse="present", collapse_depth_mm=3, joint_space="preserved")), tk)
    assert s.provenance.staging_data_version == tk.staging.version
    assert "imaging.0.findings.collapse" in s.provenance.inputs_used
    assert s.provenance.inputs_missing


def test_format_staging_names_stage_inputs_and_estimate(tk):
    from hipdx.report.management import format_staging

    text = format_staging(stage_case(case(xr(collapse="present", collapse_depth_mm=2.0, joint_space="preserved")), tk))
    assert "IIIA" in text and "imaging.0.findings.collapse_depth_mm = 2" in text
    assert "TOH phase (estimate)" in text


def test_a_narrow_compression_line_is_as_urgent_in_the_staging_as_its_flag_plan_and_headline():
    """Clinical review: a compression-side line under 50% was [soon] in the staging beside an URGENT flag."""
    import datetime

    from hipdx import assess, load_knowledge_base, parse_case

    a = assess(parse_case({
        "age_years": 24, "sex": "female", "onset": {"type": "gradual", "days_since_onset": 20},
        "imaging": [{"modality": "mri", "days_since_onset": 18, "findings": {
            "edema_extent": "femoral_neck", "femoral_neck_fracture_line": "present", "femoral_neck_fracture_side": "compression",
            "femoral_neck_fracture_width_percent": 30, "fracture_displaced": "absent"}}]}), load_knowledge_base(), datetime.date(2026, 12, 8))
    fracture = a.staging.femoral_neck_fracture
    assert fracture.grade == "compression_narrow"
    fnsf_flags = {f.urgency for f in a.red_flags if f.condition == "fnsf"}
    section = next(s for s in a.plan.sections if s.condition == "fnsf")
    assert fnsf_flags == {"urgent"} and fracture.urgency == "urgent" and section.urgency == "urgent"
    assert a.headline.urgency == "urgent"
    assert "stop weight-bearing now" in (fracture.action or "").lower()
