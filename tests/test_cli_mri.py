"""The MRI commands end to end on a synthetic study: phantom -> analyze -> assess with --mri.

Accuracy here is checked with the tolerances the method meets today (edema volume within
20%, head centre within 3 mm, band thickness within 1 mm); the issue's 10% edema target is
tracked separately over a grid of phantoms.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hipdx.cli import app

from conftest import SHARED, CliRunner, shared_data

runner = CliRunner()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    result = runner.invoke(app, ["mri", "phantom", str(out), "--seed", "1", "--edema-ml", "30", "--band-mm", "5"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow  # writes and analyses an MRI phantom
def test_analyze_finds_both_heads_the_edema_and_the_band(study: Path) -> None:
    result = runner.invoke(app, ["mri", "analyze", str(study), "--format", "json"])
    assert result.exit_code == 0, result.output
    analysis = json.loads(result.stdout)
    truth = json.loads((study / "truth.json").read_text())
    for side in ("left", "right"):
        found = np.array(analysis["sides"][side]["femoral_head"]["center_mm"])
        expected = np.array(truth["heads"][side]["center_mm"])
        assert np.linalg.norm(found - expected) < 3.0, side
    left = analysis["sides"]["left"]
    assert left["edema"]["volume_ml"] == pytest.approx(truth["edema"]["volume_ml"], rel=0.20)
    assert left["edema"]["extent"] in ("head_and_neck", "intertrochanteric")
    assert left["subchondral_band"]["present"] == "present"
    assert abs(left["subchondral_band"]["thickness_mm"] - truth["band"]["thickness_mm"]) <= 1.0
    assert analysis["sides"]["right"]["subchondral_band"]["present"] == "absent"
    assert analysis["sides"]["right"]["edema"]["volume_ml"] < 0.1 * left["edema"]["volume_ml"]


@pytest.mark.slow  # writes and analyses an MRI phantom
def test_assess_with_an_mri_folder_adds_the_measured_findings(study: Path, tmp_path: Path) -> None:
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"age_years": 45, "sex": "male", "side": "left", "onset": {"days_since_onset": 21}}))
    result = runner.invoke(app, ["assess", str(case), "--mri", str(study), "--mri-days", "20", "--format", "json"])
    assert result.exit_code == 0, result.output
    assessment = json.loads(result.stdout)
    used = assessment["provenance"]["inputs_used"]
    assert any(field.startswith("imaging.0.findings.edema") for field in used)
    assert "mri_edema" not in assessment["provenance"]["inputs_missing"]
    assert "MRI findings measured on the left hip" in result.stderr


def test_a_missing_or_unreadable_mri_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["mri", "analyze", str(tmp_path / "nothing")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dcm").write_bytes(b"not a dicom file")
    result = runner.invoke(app, ["mri", "analyze", str(tmp_path / "junk")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "a.dcm" in result.output or "no " in result.output.lower()


@pytest.mark.slow  # writes and analyses an MRI phantom
@pytest.mark.parametrize("fmt, marker", [("text", "edema volume"), ("markdown", "| measure | right | left |")])
def test_analyze_report_formats_show_both_sides_and_the_disclaimer(study: Path, fmt: str, marker: str) -> None:
    result = runner.invoke(app, ["mri", "analyze", str(study), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert marker in result.stdout
    assert "support, not replace" in result.stdout
    assert "more edema on the left" in result.stdout


@pytest.mark.slow  # writes and analyses an MRI phantom
def test_assess_with_mri_shows_the_measurements_behind_the_findings(study: Path, tmp_path: Path) -> None:
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"age_years": 45, "sex": "male", "side": "left", "onset": {"days_since_onset": 21}}))
    as_json = runner.invoke(app, ["assess", str(case), "--mri", str(study), "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    left = data["mri_analysis"]["sides"]["left"]
    assert left["edema"]["volume_ml"] > 0 and data["mri_analysis"]["provenance"]["series_used"]
    brief = runner.invoke(app, ["assess", str(case), "--mri", str(study), "--no-color"])
    assert brief.exit_code == 0, brief.output
    assert "MRI, automatic (check the overlays): right edema" in brief.stdout
    assert f"left edema {left['edema']['volume_ml']:.1f} mL" in brief.stdout
    text = runner.invoke(app, ["assess", str(case), "--mri", str(study), "--no-color", "--detail"])
    assert text.exit_code == 0, text.output
    assert "Hip MRI - automatic measurements" in text.stdout
    assert f"{left['edema']['volume_ml']:.1f} mL" in text.stdout
    without = runner.invoke(app, ["assess", str(case), "--format", "json"])
    assert "mri_analysis" not in json.loads(without.stdout)


@pytest.mark.slow  # writes and analyses an MRI phantom
def test_the_report_shows_the_measurements_and_the_key_overlays(study: Path, tmp_path: Path) -> None:
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"age_years": 45, "sex": "male", "side": "left", "onset": {"days_since_onset": 21}}))
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(case), "--mri", str(study), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<h2>MRI: automatic measurements</h2>" in page and "subchondral low-signal band" in page
    assert page.count('src="data:image/png;base64,') >= 1 and "through both femoral head centres" in page
    assert f"MRI</th><td>{study.name} (series used: " in page


@pytest.mark.slow  # writes and analyses an MRI phantom
def test_files_the_reader_could_not_use_are_named_in_the_analysis(study: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "study"
    shutil.copytree(study, broken)
    victim = sorted((broken / "T1").iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:3000])  # truncated inside the pixel data
    (broken / "extra.nii.gz").write_bytes(b"not an image")
    result = runner.invoke(app, ["mri", "analyze", str(broken), "--format", "json"])
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert any(w.startswith(f"unreadable: T1/{victim.name}") for w in warnings), warnings
    assert any(w.startswith("unreadable:") and "extra.nii.gz" in w for w in warnings), warnings
    text = runner.invoke(app, ["mri", "analyze", str(broken)])
    assert f"warning: unreadable: T1/{victim.name}" in text.stdout


def test_phantom_into_an_unwritable_place_is_a_clear_error() -> None:
    result = runner.invoke(app, ["mri", "phantom", "/proc/hipdx-no-such-dir"])
    assert result.exit_code == 2, result.output
    assert "cannot write the phantom to /proc/hipdx-no-such-dir" in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


SIJ = SHARED / "data" / "mri" / "sij-stir"


@pytest.mark.real_data
def test_edema_with_a_mask_from_another_scan_is_refused_not_guessed() -> None:
    shared_data(SIJ)
    stir = SIJ / "1007" / "1007_STIR.nii.gz"
    other = SIJ / "1013" / "1013_disease_region.nii.gz"  # same shape, another patient's grid
    result = runner.invoke(app, ["mri", "edema", str(stir), "--bone-mask", str(other)])
    assert result.exit_code == 4, result.output
    assert "is not on the image's grid" in result.output and "1013_disease_region" in result.output
    own = runner.invoke(app, ["mri", "edema", str(stir), "--bone-mask", str(SIJ / "1007" / "1007_disease_region.nii.gz"),
                              "--format", "json"])
    assert own.exit_code == 0, own.output
    assert json.loads(own.stdout)["volume_ml"] > 0


@pytest.fixture(scope="module")
def dated_study(study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom with StudyDate 2026-10-20 on every file."""
    import shutil

    import pydicom

    out = tmp_path_factory.mktemp("dated") / "study"
    shutil.copytree(study, out)
    for path in out.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.StudyDate = "20261020"
        ds.save_as(path)
    return out


@pytest.mark.slow  # writes and analyses an MRI phantom
def test_assess_dates_the_mri_by_its_study_date(dated_study: Path, tmp_path: Path) -> None:
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"age_years": 45, "sex": "male", "side": "left", "assessed_on": "2026-11-20",
                                "onset": {"type": "sudden", "date": "2026-10-08"}}))
    result = runner.invoke(app, ["assess", str(case), "--mri", str(dated_study), "--format", "json"])
    assert result.exit_code == 0, result.output
    assessment = json.loads(result.stdout)
    assert assessment["mri_analysis"]["provenance"]["study_date"] == "2026-10-20"
    assert "the MRI is dated 2026-10-20 (its DICOM StudyDate)" in result.stderr
    # Given days win over the date.
    result = runner.invoke(app, ["assess", str(case), "--mri", str(dated_study), "--mri-days", "5", "--format", "json"])
    assert result.exit_code == 0 and "DICOM StudyDate" not in result.stderr
    # An MRI dated before the onset is an input error naming the DICOM tag it was dated by.
    case.write_text(json.dumps({"age_years": 45, "sex": "male", "side": "left", "onset": {"date": "2026-10-25"}}))
    result = runner.invoke(app, ["assess", str(case), "--mri", str(dated_study)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "StudyDate (0008,0020) of the T1 series: is before onset.date" in result.output and "--mri-days" in result.output
