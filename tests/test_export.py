"""DICOM SEG of the edema and TID 1500 SR of the measurements, on a phantom written to disk."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

pytest.importorskip("highdicom")

from hipdx.errors import ImagingError, InputError  # noqa: E402
from hipdx.imaging.analyze import analyze_study  # noqa: E402
from hipdx.imaging.export import (  # noqa: E402
    SEGMENT_LABEL,
    series_of,
    source_datasets,
    study_masks,
    write_edema_seg,
    write_measurement_sr,
)
from hipdx.imaging.io import read_study  # noqa: E402
from hipdx.imaging.phantom import write_phantom  # noqa: E402

SEG_STORAGE = UID("1.2.840.10008.5.1.4.1.1.66.4")
COMPREHENSIVE_3D_SR = UID("1.2.840.10008.5.1.4.1.1.88.34")
SMALL = dict(seed=2, edema_ml=25.0, band_mm=5.0, rows=256, cols=256, pixel_mm=1.35, slices=32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    write_phantom(folder, **SMALL)
    study = read_study(folder)
    volumes = list(study.volumes)
    analysis = analyze_study(volumes)
    masks = study_masks(volumes, analysis)
    assert masks is analysis.masks  # no second search
    source = source_datasets(study, series_of(study, masks.t1))
    out = tmp_path_factory.mktemp("export")
    seg = write_edema_seg(source, masks.edema, out / "edema-seg.dcm")
    sr = write_measurement_sr(source, analysis, out / "measurements-sr.dcm")
    return masks, analysis, source, seg, sr


def _content_items(ds):
    for item in getattr(ds, "ContentSequence", []):
        yield item
        yield from _content_items(item)


def test_seg_references_the_source_series_and_has_a_frame_per_edema_slice(exported):
    masks, _, source, seg_path, _ = exported
    seg = pydicom.dcmread(seg_path)
    assert seg.SOPClassUID == SEG_STORAGE
    assert seg.SegmentationType == "BINARY"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == masks.t1.series_uid
    assert seg.StudyInstanceUID == source[0].StudyInstanceUID
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == SEGMENT_LABEL
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "79654002"  # SCT Edema
    assert segment.SegmentAlgorithmName == "hipdx"
    positive = [k for k in range(masks.edema.shape[0]) if masks.edema[k].any()]
    assert positive and int(seg.NumberOfFrames) == len(positive)
    # Each frame points at the source slice it segments, and holds that slice's mask.
    by_uid = {ds.SOPInstanceUID: k for k, ds in enumerate(source)}
    frames = seg.pixel_array.reshape(len(positive), *masks.edema.shape[1:])
    slices = [
        by_uid[f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        for f in seg.PerFrameFunctionalGroupsSequence
    ]
    assert sorted(slices) == positive
    for frame, k in zip(frames, slices):
        assert np.array_equal(frame.astype(bool), masks.edema[k])


def test_sr_is_a_tid1500_report_with_the_measured_edema_volume(exported):
    masks, analysis, _, _, sr_path = exported
    sr = pydicom.dcmread(sr_path)
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.SeriesInstanceUID == masks.t1.series_uid
    numbers = {}
    for item in _content_items(sr):
        if item.ValueType == "NUM":
            name = item.ConceptNameCodeSequence[0].CodeMeaning
            numbers.setdefault(name, []).append(float(item.MeasuredValueSequence[0].NumericValue))
    left = analysis.sides.left
    assert left.edema.volume_ml in numbers["Volume"]
    if left.subchondral_band.thickness_mm is not None:
        assert left.subchondral_band.thickness_mm in numbers["Subchondral band thickness"]
    assert left.femoral_head.radius_mm in numbers["Radius"]
    texts = [str(getattr(i, "TextValue", "")) for i in _content_items(sr)]
    assert "hipdx" in texts  # algorithm name


def test_a_mask_of_another_shape_is_refused(exported, tmp_path):
    masks, _, source, _, _ = exported
    with pytest.raises(ImagingError, match="shape"):
        write_edema_seg(source, masks.edema[:-1], tmp_path / "seg.dcm")


def test_a_folder_as_output_is_refused(exported, tmp_path):
    masks, analysis, source, _, _ = exported
    with pytest.raises(InputError, match="is a folder"):
        write_measurement_sr(source, analysis, tmp_path)


def test_analyze_command_writes_overlays_seg_and_sr(tmp_path):
    from typer.testing import CliRunner

    from hipdx.cli import app

    study = tmp_path / "study"
    write_phantom(study, **SMALL)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["mri", "analyze", str(study), "--format", "json", "--overlays", str(out / "ov"),
                                      "--seg", str(out / "seg.dcm"), "--sr", str(out / "sr.dcm")])
    assert result.exit_code == 0, result.output
    assert pydicom.dcmread(out / "seg.dcm").SOPClassUID == SEG_STORAGE
    assert pydicom.dcmread(out / "sr.dcm").SOPClassUID == COMPREHENSIVE_3D_SR
    assert list((out / "ov").glob("overlay_*.png"))
    assert str(out / "sr.dcm") in result.output  # files_written in the provenance


def test_analyze_command_refuses_a_file_as_overlay_folder(tmp_path):
    from typer.testing import CliRunner

    from hipdx.cli import app

    (tmp_path / "f").write_text("x")
    result = CliRunner().invoke(app, ["mri", "analyze", str(tmp_path), "--overlays", str(tmp_path / "f")])
    assert result.exit_code == InputError.exit_code
    assert "is a file" in result.output
