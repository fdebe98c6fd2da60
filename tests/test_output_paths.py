"""Files the command line writes (issue 12): never over an input, never over an existing file without
--force, never through a symbolic link, never half-written (a temporary file, then one rename).

End to end with the real writers: the phantom (``mri phantom``), its analysis with the DICOM SEG,
SR and overlays, ``mri edema --out`` and ``course --plot``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hipdx.cli import app

from conftest import CliRunner

pytestmark = pytest.mark.slow  # writes and analyses MRI phantoms: in `make test`, not in `make test-fast`

runner = CliRunner()


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("outputs") / "study"
    result = runner.invoke(app, ["mri", "phantom", str(out), "--seed", "2", "--edema-ml", "20"])
    assert result.exit_code == 0, result.output
    return out


def _refused(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_seg_onto_a_slice_of_the_input_study_is_refused_and_the_slice_kept(study: Path) -> None:
    victim = study / "T1" / "IM0001.dcm"
    before = victim.read_bytes()
    result = runner.invoke(app, ["mri", "analyze", str(study), "--seg", str(victim)])
    _refused(result, "--seg", "would overwrite the input")
    assert victim.read_bytes() == before
    result = runner.invoke(app, ["mri", "analyze", str(study), "--overlays", str(study / "T1"), "--force"])
    _refused(result, "--overlays", "would overwrite the input")


def test_seg_and_sr_on_one_path_are_refused(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "both.dcm"
    result = runner.invoke(app, ["mri", "analyze", str(study), "--seg", str(out), "--sr", str(out)])
    _refused(result, "--sr", "also the output of --seg")
    assert not out.exists()


def test_existing_outputs_are_kept_unless_forced_and_links_never_followed(study: Path, tmp_path: Path) -> None:
    seg, sr, overlays = tmp_path / "seg.dcm", tmp_path / "sr.dcm", tmp_path / "overlays"
    first = runner.invoke(app, ["mri", "analyze", str(study), "--seg", str(seg), "--sr", str(sr),
                                "--overlays", str(overlays)])
    assert first.exit_code == 0, first.output
    written = _listing(tmp_path)
    assert not [name for name in written if ".tmp" in name], written  # no temporary file left behind
    assert (seg.stat().st_mode & 0o777) == (tmp_path.joinpath("plain").open("w").close() or  # as open() makes it
                                            tmp_path.joinpath("plain").stat().st_mode & 0o777)
    seg_bytes = seg.read_bytes()
    for option, path in (("--seg", seg), ("--sr", sr)):
        again = runner.invoke(app, ["mri", "analyze", str(study), option, str(path)])
        _refused(again, option, "exists", "--force")
    again = runner.invoke(app, ["mri", "analyze", str(study), "--overlays", str(overlays)])
    _refused(again, "--overlays", "exists", "--force")
    assert seg.read_bytes() == seg_bytes
    forced = runner.invoke(app, ["mri", "analyze", str(study), "--seg", str(seg), "--overlays", str(overlays), "--force"])
    assert forced.exit_code == 0, forced.output
    # A link at the output's name is refused, with or without --force; its target is untouched.
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link.dcm"
    link.symlink_to(target)
    for extra in ([], ["--force"]):
        result = runner.invoke(app, ["mri", "analyze", str(study), "--sr", str(link), *extra])
        _refused(result, "--sr", "symbolic link")
    assert target.read_text() == "keep me" and link.is_symlink()


def _nifti_pair(folder: Path) -> tuple[Path, Path]:
    import nibabel as nib

    affine = np.diag([0.8, 0.8, 4.0, 1.0])
    rng = np.random.default_rng(1)
    stir = rng.normal(100, 5, (24, 24, 6)).astype(np.float32)
    stir[8:14, 8:14, 2:4] = 300
    nib.save(nib.Nifti1Image(stir, affine), str(folder / "stir.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((24, 24, 6), np.uint8), affine), str(folder / "bone.nii.gz"))
    return folder / "stir.nii.gz", folder / "bone.nii.gz"


def test_edema_out_never_overwrites_its_input_or_an_existing_mask(tmp_path: Path) -> None:
    stir, bone = _nifti_pair(tmp_path)
    before = stir.read_bytes()
    result = runner.invoke(app, ["mri", "edema", str(stir), "--bone-mask", str(bone), "--out", str(stir), "--force"])
    _refused(result, "--out", "would overwrite the input")
    assert stir.read_bytes() == before
    out = tmp_path / "edema.nii.gz"
    assert runner.invoke(app, ["mri", "edema", str(stir), "--bone-mask", str(bone), "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["mri", "edema", str(stir), "--bone-mask", str(bone), "--out", str(out)])
    _refused(result, "--out", "exists")
    forced = runner.invoke(app, ["mri", "edema", str(stir), "--bone-mask", str(bone), "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert _listing(tmp_path) == ["bone.nii.gz", "edema.nii.gz", "stir.nii.gz"]


def test_phantom_into_a_folder_with_its_files_is_refused_unless_forced(study: Path, tmp_path: Path) -> None:
    copy = tmp_path / "again"
    shutil.copytree(study, copy)
    before = (copy / "truth.json").read_bytes()
    result = runner.invoke(app, ["mri", "phantom", str(copy), "--seed", "3"])
    _refused(result, "exists", "--force")
    assert (copy / "truth.json").read_bytes() == before
    assert _listing(copy) == _listing(study)  # nothing half-written, no temporary folder left
    assert not [p for p in tmp_path.iterdir() if p.name != "again"]


CASE = {
    "age_years": 41, "sex": "male", "side": "left", "assessed_on": "2026-03-01",
    "onset": {"type": "sudden", "date": "2025-12-01"},
    "visits": [{"date": "2026-01-01", "pain_0_10": 5}, {"date": "2026-02-01", "pain_0_10": 4}],
}


def test_course_plot_is_refused_over_the_case_an_existing_file_or_a_link(tmp_path: Path) -> None:
    case = tmp_path / "case.json"
    case.write_text(json.dumps(CASE))
    plot = tmp_path / "course.png"
    first = runner.invoke(app, ["course", str(case), "--plot", str(plot)])
    assert first.exit_code == 0, first.output
    drawn = plot.read_bytes()
    _refused(runner.invoke(app, ["course", str(case), "--plot", str(plot)]), "--plot", "exists")
    assert runner.invoke(app, ["course", str(case), "--plot", str(plot), "--force"]).exit_code == 0
    assert plot.read_bytes() == drawn  # the same drawing, replaced in one step
    link = tmp_path / "link.svg"
    link.symlink_to(case)
    _refused(runner.invoke(app, ["course", str(case), "--plot", str(link), "--force"]), "--plot", "symbolic link")
    assert json.loads(case.read_text()) == CASE
    _refused(runner.invoke(app, ["course", str(case), "--plot", str(tmp_path / "course.txt")]), ".png or .svg")


def test_overlays_may_go_into_the_folder_that_holds_the_study_never_onto_it(study: Path, tmp_path: Path) -> None:
    parent = tmp_path / "exam"
    shutil.copytree(study, parent / "study")
    result = runner.invoke(app, ["mri", "analyze", str(parent / "study"), "--overlays", str(parent)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in parent.iterdir() if p.name.startswith("overlay_")]
    # A file written into a folder never replaces an input there, --force or not.
    from hipdx.errors import InputError
    from hipdx.output import write_folder

    source = parent / "case.json"
    source.write_text("an input")
    with pytest.raises(InputError, match="would overwrite the input"):
        with write_folder(parent, option="--overlays", force=True, inputs=[source]) as staging:
            (staging / "case.json").write_text("an overlay")
    assert source.read_text() == "an input"
    assert not [p for p in tmp_path.iterdir() if p.name != "exam"]  # the temporary folder is gone
