"""Enhanced (multi-frame) MR images: a whole series in one file, geometry in functional groups.

The legacy-converted files are made by highdicom's converter (DICOM PS3.3 A.71) from the
phantom's single-frame series; the "scanner" Enhanced MR Image is that file with its converted
attributes replaced by the MR functional groups a scanner writes (MR Timing, MR Echo, MR
Modifier, Spectrally Selected Suppression, Contrast/Bolus Agent Sequence).
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from highdicom.legacy import LegacyConvertedEnhancedMRImage
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import EnhancedMRImageStorage, generate_uid

from hipdx.cli import app
from hipdx.imaging.analyze import analyze_read_study
from hipdx.imaging.io import read_study
from hipdx.imaging.multiframe import classic_headers
from hipdx.imaging.volume import SeriesKind

from conftest import CliRunner

pytestmark = pytest.mark.slow  # writes and analyses MRI phantoms: in `make test`, not in `make test-fast`


def convert(folder: Path) -> pydicom.Dataset:
    """The single-frame series in ``folder`` as one Legacy Converted Enhanced MR Image."""
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    logging.disable(logging.WARNING)  # the converter logs the attributes it cannot fill (window, laterality)
    try:
        return LegacyConvertedEnhancedMRImage(
            datasets, series_instance_uid=datasets[0].SeriesInstanceUID, series_number=int(datasets[0].SeriesNumber),
            sop_instance_uid=generate_uid(entropy_srcs=[str(folder)]), instance_number=1,
        )
    finally:
        logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def studies(phantoms, tmp_path_factory):
    """(single-frame phantom folder, the same as two multi-frame files, their datasets)."""
    single = phantoms.folder(dict(seed=1, edema_ml=12.0, band_mm=4.0))
    multi = tmp_path_factory.mktemp("multi")
    converted = {}
    for name in ("T1", "STIR"):
        converted[name] = convert(single / name)
        converted[name].save_as(multi / f"{name}.dcm")
    return single, multi, converted


def by_kind(study, kind):
    return next(s for s in study.series if s.volume.kind is kind)


def test_a_legacy_converted_series_reads_as_its_single_frame_files(studies):
    single, multi, _ = studies
    a, b = read_study(single), read_study(multi)
    assert b.problems == () and b.warnings == ()
    for kind in (SeriesKind.t1, SeriesKind.fluid):
        x, y = by_kind(a, kind), by_kind(b, kind)
        assert np.array_equal(x.volume.array, y.volume.array)
        assert np.allclose(x.volume.affine, y.volume.affine, atol=1e-4)
        assert x.volume.fat_suppression == y.volume.fat_suppression
        assert set(y.files) == {f"{'T1' if kind is SeriesKind.t1 else 'STIR'}.dcm"}
    assert "TR 550 ms and TE 9.1 ms" in by_kind(b, SeriesKind.t1).kind_reason
    assert "TI 160 ms (STIR)" in by_kind(b, SeriesKind.fluid).kind_reason
    assert analyze_read_study(b).sides == analyze_read_study(a).sides


def test_frames_in_any_order(studies, tmp_path):
    single, _, converted = studies
    ds = copy.deepcopy(converted["T1"])
    order = np.random.default_rng(0).permutation(int(ds.NumberOfFrames))
    frames = ds.pixel_array
    ds.PerFrameFunctionalGroupsSequence = Sequence([ds.PerFrameFunctionalGroupsSequence[i] for i in order])
    ds.PixelData = np.ascontiguousarray(frames[order]).tobytes()
    ds.save_as(tmp_path / "shuffled.dcm")
    assert np.array_equal(read_study(tmp_path).volumes[0].array, by_kind(read_study(single), SeriesKind.t1).volume.array)


def scanner_enhanced(legacy: pydicom.Dataset, *, tr: float, te: float, ti: float | None = None,
                     suppression: str = "NONE", agent: str | None = None) -> pydicom.Dataset:
    """``legacy`` as a scanner's Enhanced MR Image: acquisition in MR functional groups, no
    converted attributes, no description naming the sequence, rescaling x 2 - 10 per frame."""
    ds = copy.deepcopy(legacy)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    ds.SeriesDescription = ds.ProtocolName = "hip cor 3"
    for keyword in ("ContrastBolusAgent",):
        if keyword in ds:
            del ds[keyword]
    shared = ds.SharedFunctionalGroupsSequence[0]
    del shared.UnassignedSharedConvertedAttributesSequence
    del shared.PixelValueTransformationSequence
    timing, echo, modifier = Dataset(), Dataset(), Dataset()
    timing.RepetitionTime = tr
    echo.EffectiveEchoTime = te
    modifier.InversionRecovery = "YES" if ti else "NO"
    if ti:
        modifier.InversionTimes = [ti]
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    shared.MREchoSequence = Sequence([echo])
    shared.MRModifierSequence = Sequence([modifier])
    ds.SpectrallySelectedSuppression = suppression
    if agent:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-B0322", "SRT", agent
        ds.ContrastBolusAgentSequence = Sequence([code])
    stored = ds.pixel_array.astype(np.uint16)
    for item in ds.PerFrameFunctionalGroupsSequence:
        del item.UnassignedPerFrameConvertedAttributesSequence
        rescale = Dataset()
        rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = 2, -10, "US"
        item.PixelValueTransformationSequence = Sequence([rescale])
    ds.PixelData = stored.tobytes()
    return ds


def test_a_scanner_enhanced_mr_image_is_classified_from_its_mr_functional_groups(studies, tmp_path):
    single, _, converted = studies
    stir = scanner_enhanced(converted["STIR"], tr=4500, te=41, ti=160)
    t2_fs = scanner_enhanced(converted["STIR"], tr=3000, te=60, suppression="FAT")
    t1_post = scanner_enhanced(converted["T1"], tr=550, te=9.1, agent="gadobutrol")
    assert classic_headers(stir)["InversionTime"] == 160 and classic_headers(stir)["ScanningSequence"] == "IR"
    for name, ds in (("stir", stir), ("t2fs", t2_fs), ("t1", t1_post)):
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[name])
        ds.save_as(tmp_path / f"{name}.dcm")
    study = read_study(tmp_path)
    found = {s.files[0]: s for s in study.series}
    assert found["stir.dcm"].volume.kind is SeriesKind.fluid and found["stir.dcm"].volume.fat_suppression == "STIR"
    assert "TI 160 ms (STIR)" in found["stir.dcm"].kind_reason
    assert found["t2fs.dcm"].volume.kind is SeriesKind.fluid and found["t2fs.dcm"].volume.fat_suppression == "fat-saturated"
    assert "with fat saturation (ScanOptions)" in found["t2fs.dcm"].kind_reason
    assert found["t1.dcm"].volume.kind is SeriesKind.t1 and found["t1.dcm"].volume.contrast_agent == "gadobutrol"
    # Per-frame rescaling (x 2 - 10) applied to every frame.
    reference = by_kind(read_study(single), SeriesKind.t1).volume.array
    assert np.array_equal(found["t1.dcm"].volume.array, reference * 2 - 10)


def test_mri_analyze_reads_a_multi_frame_study_and_exports_seg_and_sr_on_its_frames(studies, tmp_path):
    import highdicom as hd

    single, multi, converted = studies
    runner = CliRunner()
    result = runner.invoke(app, ["mri", "analyze", str(multi), "--format", "json"])
    assert result.exit_code == 0, result.output
    expected = json.loads(runner.invoke(app, ["mri", "analyze", str(single), "--format", "json"]).stdout)
    assert json.loads(result.stdout)["sides"] == expected["sides"]
    paths = {name: tmp_path / f"{name}.dcm" for name in ("seg", "sr", "seg1", "sr1")}
    for folder, seg, sr in ((multi, "seg", "sr"), (single, "seg1", "sr1")):
        done = runner.invoke(app, ["mri", "analyze", str(folder), "--seg", str(paths[seg]), "--sr", str(paths[sr])])
        assert done.exit_code == 0, done.output
    seg, seg1 = hd.seg.segread(paths["seg"]), hd.seg.segread(paths["seg1"])
    t1 = converted["T1"]
    # Every SEG frame references a frame of the one multi-frame T1, at that frame's position.
    positions = {i + 1: [float(v) for v in g.PlanePositionSequence[0].ImagePositionPatient]
                 for i, g in enumerate(t1.PerFrameFunctionalGroupsSequence)}
    for group in seg.PerFrameFunctionalGroupsSequence:
        source = group.DerivationImageSequence[0].SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID == t1.SOPInstanceUID
        here = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        assert here == pytest.approx(positions[int(source.ReferencedFrameNumber)], abs=1e-3)
    # The same segments and voxels as the SEG of the single-frame files.
    assert [d.SegmentLabel for d in seg.SegmentSequence] == [d.SegmentLabel for d in seg1.SegmentSequence]
    for number in range(1, len(seg.SegmentSequence) + 1):
        counts = [int(s.get_volume(segment_numbers=[number], combine_segments=True).array.sum()) for s in (seg, seg1)]
        assert counts[0] == counts[1] > 0, number
    # An SR without a SEG: each group names the frames of the multi-frame T1 it lies on.
    alone = tmp_path / "sr_alone.dcm"
    assert runner.invoke(app, ["mri", "analyze", str(multi), "--sr", str(alone)]).exit_code == 0
    frames = [item.ReferencedFrameNumber for item in _walk(pydicom.dcmread(alone))
              if item.get("ReferencedSOPInstanceUID") == t1.SOPInstanceUID and "ReferencedFrameNumber" in item]
    assert frames and all(1 <= int(f) <= int(t1.NumberOfFrames) for values in frames
                          for f in (values if isinstance(values, list | pydicom.multival.MultiValue) else [values]))
    # dciodvfy (the test extra) finds no error in the SEG, the SR and the SR alone.
    dciodvfy = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")
    for path in (paths["seg"], paths["sr"], alone):
        run = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=120)
        errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (path.name, errors)


def _walk(ds: pydicom.Dataset):
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield item
                yield from _walk(item)


def test_broken_multi_frame_files_are_named(studies, tmp_path):
    _, _, converted = studies
    missing_position = copy.deepcopy(converted["T1"])
    del missing_position.PerFrameFunctionalGroupsSequence[3].PlanePositionSequence
    missing_position.save_as(tmp_path / "no_position.dcm")
    too_few = copy.deepcopy(converted["T1"])
    too_few.SeriesInstanceUID = generate_uid(entropy_srcs=["too few"])
    too_few.PerFrameFunctionalGroupsSequence = Sequence(list(too_few.PerFrameFunctionalGroupsSequence)[:-1])
    too_few.save_as(tmp_path / "too_few.dcm")
    truncated = copy.deepcopy(converted["STIR"])
    truncated.PixelData = truncated.PixelData[: len(truncated.PixelData) // 3]
    truncated.save_as(tmp_path / "truncated.dcm")
    (tmp_path / "ok").mkdir()
    converted["STIR"].save_as(tmp_path / "ok" / "stir.dcm")
    study = read_study(tmp_path)
    problems = {p.field: p.reason for p in study.problems}
    assert "frame 4 has no ImagePositionPatient" in problems["no_position.dcm"]
    assert "39 per-frame functional groups for 40 frames" in problems["too_few.dcm"]
    assert "cannot decode multi-frame pixel data" in problems["truncated.dcm"]
    assert [s.files[0] for s in study.series] == ["ok/stir.dcm"]


def test_damaged_frame_geometry_and_rescaling_are_refused_per_frame_naming_the_tag(studies, tmp_path):
    _, _, converted = studies
    damaged = copy.deepcopy(converted["T1"])
    frames = damaged.PerFrameFunctionalGroupsSequence
    measures = Dataset()
    measures.PixelSpacing = [-0.9, 0.9]
    measures.SliceThickness = 4.0
    frames[4].PixelMeasuresSequence = Sequence([measures])
    rescale = Dataset()
    rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = 0, 0, "US"
    frames[6].PixelValueTransformationSequence = Sequence([rescale])  # was read as slope 1
    damaged.save_as(tmp_path / "t1.dcm")
    study = read_study(tmp_path)
    problems = {p.field: p.reason for p in study.problems}
    assert "PixelSpacing (0028,0030) = -0.9\\0.9" in problems["t1.dcm frame 5"]
    assert "RescaleSlope (0028,1053) = 0" in problems["t1.dcm frame 7"]
    assert study.volumes[0].array.shape[0] == len(frames)  # both frames' places filled between neighbours
    no_frames = copy.deepcopy(converted["STIR"])
    no_frames.NumberOfFrames = 0
    no_frames.save_as(tmp_path / "stir.dcm")
    problems = {p.field: p.reason for p in read_study(tmp_path).problems}
    assert "NumberOfFrames (0028,0008) = 0" in problems["stir.dcm"]
