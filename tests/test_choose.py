"""Which series a study's analysis uses when it holds several T1 or fluid-sensitive series.

A real hip examination has axial and coronal series, a small field of view of the painful hip
and post-contrast fat-saturated T1s; the largest T1 used to be taken, so an axial T1 made the
analysis fail and a fat-saturated T1 would have been searched for bright marrow.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_files import write_dicom

from hipdx.cli import app
from hipdx.imaging.analyze import analyze_read_study, resample_onto
from hipdx.imaging.choose import BILATERAL_FIELD_MM, choose_series, left_right_field_mm
from hipdx.imaging.io import describe_acquisition, read_study
from hipdx.imaging.phantom import PhantomSpec, write_phantom
from hipdx.imaging.volume import SeriesKind, Volume

from conftest import CliRunner

# Voxel index (i = column, j = row, k = slice) -> LPS directions of each plane.
PLANES = {
    "coronal": ([1, 0, 0], [0, 0, -1], [0, 1, 0]),
    "axial": ([1, 0, 0], [0, 1, 0], [0, 0, 1]),
    "sagittal": ([0, 1, 0], [0, 0, -1], [1, 0, 0]),
}


def affine(plane: str, pixel_mm: float, spacing_mm: float, shape: tuple[int, int, int]) -> np.ndarray:
    """A grid of ``plane`` centred on the origin."""
    column, row, normal = (np.array(v, float) for v in PLANES[plane])
    a = np.eye(4)
    a[:3, 0], a[:3, 1], a[:3, 2] = column * pixel_mm, row * pixel_mm, normal * spacing_mm
    k, j, i = shape
    a[:3, 3] = -(a[:3, :3] @ [(i - 1) / 2, (j - 1) / 2, (k - 1) / 2])
    return a


def volume(kind: str, plane: str = "coronal", *, shape=(10, 64, 64), pixel_mm: float = 6.0, name: str = "",
           fat: str | None = None, agent: str | None = None) -> Volume:
    return Volume(np.zeros(shape, np.float32), affine(plane, pixel_mm, 4.0, shape), SeriesKind(kind), name or
                  f"{kind} {plane}", fat_suppression=fat, contrast_agent=agent)


# --------------------------------------------------------------------------------------
# The rules, one at a time
# --------------------------------------------------------------------------------------


def test_planes_and_field_of_view():
    assert [volume("t1", p).plane for p in PLANES] == list(PLANES)
    oblique = volume("t1")
    tilted = oblique.affine.copy()
    tilted[:3, 2] = np.array([0.0, 1.0, 1.2]) / np.linalg.norm([0.0, 1.0, 1.2]) * 4.0  # 50 degrees from coronal
    assert Volume(oblique.array, tilted).plane == "axial"  # 40 degrees from axial
    tilted[:3, 2] = np.array([1.0, 1.0, 1.0]) / np.sqrt(3) * 4.0  # 55 degrees from each
    assert Volume(oblique.array, tilted).plane == "oblique"
    assert left_right_field_mm(volume("t1", shape=(10, 64, 64), pixel_mm=6.0)) == pytest.approx(384.0)
    assert left_right_field_mm(volume("t1", "sagittal", shape=(10, 64, 64))) == pytest.approx(40.0)


def test_a_coronal_t1_is_used_before_a_larger_axial_one():
    coronal, axial = volume("t1", name="COR T1"), volume("t1", "axial", shape=(40, 64, 64), name="AX T1")
    choice = choose_series([axial, coronal])
    assert choice.t1 is coronal and choice.warnings == ()
    assert choice.reasons["t1"].startswith("'COR T1' (coronal, no fat suppression, before contrast, both hips in view)")
    assert "not used: 'AX T1' (axial)" in choice.reasons["t1"]


def test_a_plain_t1_is_used_before_a_larger_fat_saturated_post_contrast_one():
    plain = volume("t1", name="COR T1")
    fs_post = volume("t1", shape=(20, 64, 64), name="COR T1 FS POST", fat="fat-saturated", agent="Gadovist")
    choice = choose_series([fs_post, plain])
    assert choice.t1 is plain
    assert "'COR T1 FS POST' (fat-saturated, after contrast agent Gadovist)" in choice.reasons["t1"]
    # Both fat-free: the pre-contrast one, the post-contrast one passed over for that reason.
    post = volume("t1", shape=(20, 64, 64), name="COR T1 POST", agent="Gadovist")
    choice = choose_series([post, plain])
    assert choice.t1 is plain and "'COR T1 POST' (after contrast agent Gadovist)" in choice.reasons["t1"]


def test_only_a_post_contrast_t1_is_used_quietly_but_a_fat_saturated_one_with_a_warning():
    post = volume("t1", agent="Dotarem")
    assert choose_series([post]).t1 is post and choose_series([post]).warnings == ()
    fs = volume("t1", fat="fat-saturated", name="T1 FS")
    assert choose_series([fs]).warnings == ("T1 series used: 'T1 FS' is fat-saturated",)


def test_fluid_series_both_hips_then_the_t1_plane_then_stir_then_before_contrast():
    t1 = volume("t1")
    small_fov = volume("fluid", shape=(20, 128, 128), pixel_mm=1.5, name="STIR R small", fat="STIR")
    assert left_right_field_mm(small_fov) < BILATERAL_FIELD_MM
    axial_stir = volume("fluid", "axial", shape=(20, 64, 64), name="AX STIR", fat="STIR")
    coronal_fs = volume("fluid", name="COR PD FS", fat="fat-saturated")
    coronal_stir = volume("fluid", name="COR STIR", fat="STIR")
    post_stir = volume("fluid", shape=(20, 64, 64), name="COR STIR POST", fat="STIR", agent="Gadovist")

    choice = choose_series([t1, small_fov, axial_stir, coronal_fs, post_stir, coronal_stir])
    assert choice.fluid is coronal_stir and choice.warnings == ()
    reason = choice.reasons["fluid"]
    assert reason.startswith("'COR STIR' (both hips in view, coronal like the T1, STIR, before contrast)")
    assert "'STIR R small' (one hip in view (192 mm left-right))" in reason
    assert "'AX STIR' (axial, not coronal)" in reason
    assert "'COR PD FS' (fat-saturated)" in reason
    assert "'COR STIR POST' (after contrast agent Gadovist)" in reason
    # Without the coronal STIR, a coronal fat-saturated PD before an axial STIR, without a warning.
    assert choose_series([t1, axial_stir, coronal_fs]).fluid is coronal_fs
    assert choose_series([t1, axial_stir, coronal_fs]).warnings == ()
    # Only what falls short: used, with a warning each.
    assert choose_series([t1, small_fov]).warnings == ("fluid-sensitive series used: 'STIR R small' is one hip in view "
                                                       "(192 mm left-right)",)
    assert choose_series([t1, axial_stir]).warnings == ("fluid-sensitive series used: 'AX STIR' is axial, not coronal",)
    assert choose_series([t1, post_stir]).warnings == ("fluid-sensitive series used: 'COR STIR POST' is after contrast "
                                                       "agent Gadovist",)


def test_equal_series_the_larger_then_the_first_read():
    a, b, c = volume("t1", name="a"), volume("t1", shape=(12, 64, 64), name="b"), volume("t1", name="c")
    choice = choose_series([a, b, c])
    assert choice.t1 is b and choice.reasons["t1"].endswith("not used: 'a' (fewer voxels); 'c' (fewer voxels)")
    assert choose_series([a, c]).t1 is a


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"ScanningSequence": ["SE", "IR"], "InversionTime": 160, "SeriesDescription": "t2_tse_cor"}, ("STIR", None)),
        ({"SeriesDescription": "t2_tirm_cor"}, ("STIR", None)),
        ({"SeriesDescription": "pd_tse_fs_tra"}, ("fat-saturated", None)),
        ({"ScanOptions": ["FS"], "SeriesDescription": "T2 COR"}, ("fat-saturated", None)),
        ({"SeriesDescription": "COR T1 SPAIR POST GD"}, ("fat-saturated", "contrast")),
        ({"SeriesDescription": "t1_tse_cor", "ContrastBolusAgent": "Gadovist"}, (None, "Gadovist")),
        ({"SeriesDescription": "t1_tse_cor"}, (None, None)),
        # A T1 inversion (TI 800 ms) suppresses no fat.
        ({"ScanningSequence": ["IR"], "InversionTime": 800, "SeriesDescription": "t1_tir"}, (None, None)),
    ],
)
def test_describe_acquisition(headers, expected):
    assert describe_acquisition(headers) == expected


# --------------------------------------------------------------------------------------
# A whole examination on disk: the phantom plus the series a real protocol adds
# --------------------------------------------------------------------------------------


def resliced(source: Volume, plane: str, shape: tuple[int, int, int], pixel_mm: float, spacing_mm: float) -> Volume:
    """``source`` resampled onto a grid of ``plane`` centred where ``source`` is."""
    grid = affine(plane, pixel_mm, spacing_mm, shape)
    centre = source.to_patient(np.array([(n - 1) / 2 for n in source.array.shape]))
    grid[:3, 3] += centre
    target = Volume(np.zeros(shape, np.float32), grid)
    return Volume(resample_onto(source, target, tuple(slice(0, n) for n in shape)), grid, source.kind)


T1_HEADERS = dict(ScanningSequence="SE", RepetitionTime=550, EchoTime=9.1)
PD_FS_HEADERS = dict(ScanningSequence="SE", RepetitionTime=3200, EchoTime=32, ScanOptions="FS")


@pytest.fixture(scope="module")
def examination(phantoms, tmp_path_factory):
    """A phantom's coronal T1 + STIR, alone and with four more series of a real protocol."""
    plain, truth = phantoms.write("default-20ml-4mm")
    t1, stir = (next(v for v in read_study(plain).volumes if v.kind is kind) for kind in (SeriesKind.t1, SeriesKind.fluid))
    full = tmp_path_factory.mktemp("full")
    for name in ("T1", "STIR"):
        shutil.copytree(plain / name, full / name)
    # Larger than the phantom's 40 x 384 x 384 series, each would have been taken before.
    write_dicom(full / "AX_T1", resliced(t1, "axial", (60, 384, 384), 0.9, 4.0), "t1_tse_tra", **T1_HEADERS)
    fat_saturated = np.where(t1.array > 0.6 * t1.array.max(), 0.25 * t1.array, t1.array)
    post = Volume(np.concatenate([fat_saturated, fat_saturated[:6]]), t1.affine, SeriesKind.t1)
    write_dicom(full / "COR_T1_FS_POST", post, "t1_tse_fs_cor_post", ContrastBolusAgent="Gadovist", **T1_HEADERS,
                **{"ScanOptions": "FS"})
    write_dicom(full / "AX_PD_FS", resliced(stir, "axial", (60, 384, 384), 0.9, 4.0), "pd_tse_fs_tra", **PD_FS_HEADERS)
    write_dicom(full / "COR_STIR_SMALL", resliced(stir, "coronal", (40, 420, 420), 0.45, 5.2), "t2_tirm_cor_small",
                ScanningSequence=["SE", "IR"], InversionTime=160, RepetitionTime=4500, EchoTime=41)
    return truth, plain, full


@pytest.mark.slow  # writes and analyses MRI phantoms
def test_the_examination_is_measured_on_the_coronal_t1_and_stir(examination):
    truth, plain, full = examination
    alone, whole = analyze_read_study(read_study(plain)), analyze_read_study(read_study(full))
    assert whole.sides == alone.sides  # same series, same measurements
    assert whole.provenance.series_used == {"t1": "t1_tse_cor", "fluid": "t2_tirm_cor"}
    t1_reason, fluid_reason = whole.provenance.series_choice["t1"], whole.provenance.series_choice["fluid"]
    assert "'t1_tse_tra' (axial)" in t1_reason and "'t1_tse_fs_cor_post' (fat-saturated, after contrast agent Gadovist)" in t1_reason
    assert "'pd_tse_fs_tra' (axial, not coronal, fat-saturated)" in fluid_reason
    assert "'t2_tirm_cor_small' (one hip in view (189 mm left-right))" in fluid_reason
    assert not any("series used" in w for w in whole.warnings)
    assert getattr(whole.sides, truth.side).edema.volume_ml == pytest.approx(truth.edema_volume_ml, rel=0.1)


@pytest.mark.slow  # writes and analyses MRI phantoms
def test_the_text_report_names_the_series_not_used(examination):
    _, _, full = examination
    result = CliRunner().invoke(app, ["mri", "analyze", str(full)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[2] == "Series used: t1: t1_tse_cor, fluid: t2_tirm_cor"
    assert lines[3] == "Not used (t1): 't1_tse_fs_cor_post' (fat-saturated, after contrast agent Gadovist); 't1_tse_tra' (axial)"
    assert lines[4].startswith("Not used (fluid): 'pd_tse_fs_tra' (axial, not coronal, fat-saturated)")
    payload = json.loads(CliRunner().invoke(app, ["mri", "analyze", str(full), "--format", "json"]).stdout)
    assert "'pd_tse_fs_tra' (axial, not coronal, fat-saturated)" in payload["provenance"]["series_choice"]["fluid"]


@pytest.mark.slow  # writes and analyses MRI phantoms
def test_an_axial_fat_saturated_pd_alone_is_used_with_a_warning(examination, tmp_path):
    truth, plain, full = examination
    shutil.copytree(plain / "T1", tmp_path / "T1")
    shutil.copytree(full / "AX_PD_FS", tmp_path / "AX_PD_FS")
    analysis = analyze_read_study(read_study(tmp_path))
    assert analysis.provenance.series_used["fluid"] == "pd_tse_fs_tra"
    assert "fluid-sensitive series used: 'pd_tse_fs_tra' is axial, not coronal" in analysis.warnings
    side = truth.side
    measured = getattr(analysis.sides, side).edema.volume_ml
    print(f"axial PD FS (resliced at 4 mm): {measured} mL of {truth.edema_volume_ml}")
    assert measured == pytest.approx(truth.edema_volume_ml, rel=0.1)  # measured 18.8 of 20.0 mL


# --------------------------------------------------------------------------------------
# The user's override on the command line
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unlabelled_pd(examination, tmp_path_factory):
    """The phantom's T1 and its STIR written as a "cor pd" without fat-saturation headers:
    the reader cannot tell it is fluid-sensitive."""
    _, plain, _ = examination
    folder = tmp_path_factory.mktemp("unlabelled")
    shutil.copytree(plain / "T1", folder / "T1")
    stir = next(v for v in read_study(plain).volumes if v.kind is SeriesKind.fluid)
    write_dicom(folder / "PD", stir, "cor pd", ScanningSequence="SE", RepetitionTime=3000, EchoTime=30)
    return folder


@pytest.mark.slow  # writes and analyses MRI phantoms
def test_series_override_on_the_command_line(examination, unlabelled_pd):
    truth, _, _ = examination
    runner = CliRunner()
    before = json.loads(runner.invoke(app, ["mri", "analyze", str(unlabelled_pd), "--format", "json"]).stdout)
    assert "fluid" not in before["provenance"]["series_used"]
    assert any("no fluid-sensitive series" in w for w in before["warnings"])
    result = runner.invoke(app, ["mri", "analyze", str(unlabelled_pd), "--format", "json", "--series", "COR PD=fluid"])
    assert result.exit_code == 0, result.output
    after = json.loads(result.stdout)
    assert after["provenance"]["series_used"]["fluid"] == "cor pd"
    assert after["sides"][truth.side]["edema"]["volume_ml"] == pytest.approx(truth.edema_volume_ml, rel=0.1)
    # The same through assess --mri.
    case = Path(__file__).resolve().parents[1] / "examples" / "toh_man_classic.json"
    assessed = runner.invoke(app, ["assess", str(case), "--format", "json", "--mri", str(unlabelled_pd),
                                   "--mri-series", "cor pd=fluid"])
    assert assessed.exit_code == 0, assessed.output
    assert json.loads(assessed.stdout)["mri_analysis"]["provenance"]["series_used"]["fluid"] == "cor pd"


@pytest.mark.slow  # writes and analyses MRI phantoms
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--series", "cor pd"], "--series: 'cor pd' is not SERIES=KIND"),
        (["--series", "=fluid"], "--series: '=fluid' is not SERIES=KIND"),
        (["--series", "cor pd=t2"], "--series: 'cor pd=t2': kind 't2' is not one of t1, fluid, unknown"),
    ],
)
def test_a_bad_series_override_is_named(unlabelled_pd, arguments, message):
    result = CliRunner().invoke(app, ["mri", "analyze", str(unlabelled_pd), *arguments])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert message in result.output


def test_mri_options_without_mri_are_refused():
    case = Path(__file__).resolve().parents[1] / "examples" / "toh_man_classic.json"
    for option, value in (("--mri-series", "cor pd=fluid"), ("--mri-days", "3")):
        result = CliRunner().invoke(app, ["assess", str(case), option, value])
        assert result.exit_code != 0 and f"{option} describes the MRI given with --mri" in result.output


# --------------------------------------------------------------------------------------
# Several studies in one folder; frames of reference
# --------------------------------------------------------------------------------------


def test_the_latest_study_with_a_t1_is_used_and_the_others_named():
    def study(uid, date, *vols):
        return [replace(v, study_uid=uid, study_date=date, frame_of_reference_uid=uid + ".1") for v in vols]

    old = study("1.2.1", "20260801", volume("t1", name="old T1"), volume("fluid", shape=(30, 64, 64), name="old STIR"))
    new = study("1.2.2", "20261120", volume("t1", name="new T1"), volume("fluid", name="new STIR"))
    choice = choose_series(old + new)
    assert (choice.t1.description, choice.fluid.description) == ("new T1", "new STIR")
    assert choice.warnings == ("the folder holds 2 studies: measured on the study of 2026-11-20 (2 series) (the latest "
                               "with a T1); not used: study of 2026-08-01 (2 series). Analyse each study on its own to "
                               "compare them",)
    # A newer study without a T1 (a STIR-only control) is not used for its STIR.
    stir_only = study("1.2.3", "20261125", volume("fluid", name="control STIR"))
    choice = choose_series(old + stir_only)
    assert (choice.t1.description, choice.fluid.description) == ("old T1", "old STIR")
    assert "measured on the study of 2026-08-01 (2 series) (the one with a T1)" in choice.warnings[0]
    # NIfTI volumes (no study) go with any study.
    nifti = volume("fluid", shape=(40, 64, 64), name="stir.nii.gz", fat="STIR")
    assert choose_series(new + [nifti]).fluid is nifti


def test_a_fluid_series_of_the_t1s_frame_of_reference_is_preferred():
    t1 = replace(volume("t1"), frame_of_reference_uid="1.9.1")
    moved = replace(volume("fluid", shape=(30, 64, 64), name="STIR after moving", fat="STIR"), frame_of_reference_uid="1.9.2")
    same = replace(volume("fluid", name="PD FS", fat="fat-saturated"), frame_of_reference_uid="1.9.1")
    choice = choose_series([t1, moved, same])
    assert choice.fluid is same and choice.warnings == ()
    assert choice.reasons["fluid"].startswith("'PD FS' (same frame of reference as the T1, both hips")
    assert "'STIR after moving' (another frame of reference than the T1 (not registered))" in choice.reasons["fluid"]
    assert choose_series([t1, moved]).warnings == (
        "fluid-sensitive series used: 'STIR after moving' is another frame of reference than the T1 (not registered)",)


@pytest.mark.slow  # writes and analyses MRI phantoms
def test_two_studies_on_disk_are_not_mixed(tmp_path):
    # The prior study's STIR is larger: taking the largest of each kind measured the current T1's
    # femoral heads on the prior STIR (another session, another patient position).
    truths = {}
    for folder, seed, edema, slices, date in (("a_prior", 1, 0.0, 44, "20260801"), ("b_current", 3, 20.0, 40, "20261120")):
        truths[folder] = write_phantom(tmp_path / folder, PhantomSpec(seed=seed, edema_ml=edema, slices=slices))
        for path in (tmp_path / folder).rglob("*.dcm"):
            ds = pydicom.dcmread(path)
            ds.StudyDate = date
            ds.save_as(path)
    analysis = analyze_read_study(read_study(tmp_path))
    current = analyze_read_study(read_study(tmp_path / "b_current"))
    assert analysis.sides == current.sides
    assert any(w.startswith("the folder holds 2 studies: measured on the study of 2026-11-20 (2 series) (the latest with "
                            "a T1); not used: study of 2026-08-01 (2 series)") for w in analysis.warnings)
    assert getattr(analysis.sides, truths["b_current"].side).edema.volume_ml == pytest.approx(20.0, rel=0.1)
