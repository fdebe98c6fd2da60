"""Results that leave hipdx as images: the masks behind an analysis, a DICOM SEG and a TID 1500 SR.

:func:`study_masks` gives the femoral heads and the finding masks of each side on the T1 grid
that :func:`analyze_study` kept with its :class:`~hipdx.imaging.analyze.MriAnalysis` (the
masks are not serialised; the analysis is not repeated). The overlays
(:mod:`hipdx.report.overlay`) and the DICOM SEG use these masks.

:func:`build_segmentation` turns the masks into a binary DICOM Segmentation with one segment
per side and :class:`Finding` (femoral head, bone marrow edema, acetabular edema, joint
effusion) on the analysed T1 series; :func:`build_measurement_report` turns the measurements
into a Comprehensive 3D SR following TID 1500 "Measurement Report" (imaging.md 6.1; the IHE
AI Results profile uses the same pair). Given the SEG, each measurement group of the SR is a
TID 1411 volumetric ROI group that references the segment it was measured on (SOP Instance
UID and segment number) and shares its tracking identifier and UID; without a SEG, each
group is a TID 1501 group that lists the source images it was measured on. Build both first,
then write them with :func:`write_dicom`: nothing is written when either is refused.
highdicom 0.28.2 builds both; it is imported only when they are built.

Codes come from pydicom's bundled dictionary (``pydicom.sr.codedict.codes``: SNOMED CT
``SCT``, DICOM ``DCM``, ``UCUM``); the few concepts it has no code for use the private scheme
``99HIPDX`` (:data:`LOCAL_CODES`), declared in the Coding Scheme Identification Sequence.

Example
-------
>>> study = read_study("exam/")                                          # doctest: +SKIP
>>> analysis = analyze_study(list(study.volumes))                        # doctest: +SKIP
>>> masks = study_masks(list(study.volumes), analysis)                   # doctest: +SKIP
>>> source = source_datasets(study, series_of(study, masks.t1))          # doctest: +SKIP
>>> seg = build_segmentation(source, masks)                              # doctest: +SKIP
>>> sr = build_measurement_report(source, analysis, segmentation=seg)    # doctest: +SKIP
>>> write_dicom(seg, "seg.dcm"), write_dicom(sr, "sr.dcm")               # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage, generate_uid

from hipdx import __version__
from hipdx.case.model import EdemaExtent, Presence, Side
from hipdx.errors import ImagingError, InputError
from hipdx.imaging import multiframe
from hipdx.imaging.analyze import analyze_study
from hipdx.imaging.results import SIDE_ORDER, DISPLAY_COLOURS, Finding, MriAnalysis, StudyMasks, masks_of, finding_masks
from hipdx.imaging.volume import Volume
from hipdx.reasoning.encode import BAND_CUTOFF_MM, BAND_INDETERMINATE_MM

if TYPE_CHECKING:  # pragma: no cover
    import highdicom as hd

    from hipdx.imaging.series import Series, Study

__all__ = [
    "ALGORITHM_NAME",
    "DISPLAY_COLOURS",
    "DicomOutputs",
    "Finding",
    "LOCAL_CODES",
    "LOCAL_SCHEME",
    "SEG_SERIES_NUMBER",
    "SR_SERIES_NUMBER",
    "StudyMasks",
    "build_dicom_outputs",
    "build_measurement_report",
    "build_segmentation",
    "finding_masks",
    "frame_numbers",
    "local_code",
    "record_files_written",
    "segment_tracking_id",
    "series_of",
    "source_datasets",
    "study_masks",
    "write_dicom",
]

#: Algorithm identification written into the SEG and the SR.
ALGORITHM_NAME = "hipdx"
#: Manufacturer and series numbers of what hipdx writes.
MANUFACTURER = "hipdx developers"
SEG_SERIES_NUMBER = 901
SR_SERIES_NUMBER = 902
#: The device observer of the SR: one UID per hipdx version (the same on every machine).
DEVICE_OBSERVER_UID = generate_uid(entropy_srcs=[ALGORITHM_NAME, __version__])



#: The private coding scheme of concepts that no bundled dictionary codes (PS3.3 8.2: a
#: private scheme designator starts with "99").
LOCAL_SCHEME = "99HIPDX"
LOCAL_SCHEME_NAME = "hipdx local concepts"
#: code value (at most 16 characters) -> meaning.
LOCAL_CODES: dict[str, str] = {
    "subchondral-band": "Subchondral low-signal band",
    "band-thickness": "Subchondral band thickness",
    "band-cutoff": f"Subchondral band thickness against the {BAND_CUTOFF_MM:g} mm cut-off",
    "below-cutoff": "Below the cut-off",
    "at-cutoff": "At or above the cut-off",
    "edema-fraction": "Edema fraction of femoral head and neck",
    "edema-signal": "Edema signal relative to normal marrow",
    "extent-none": "No edema",
    "extent-focal": "Focal edema",
    "extent-head": "Edema of the femoral head",
    "extent-neck": "Edema of the femoral neck",
    "extent-head-neck": "Edema of the femoral head and neck",
    "extent-trochant": "Edema extending to the intertrochanteric region",
    "radius-other": "Taken from the contralateral femoral head",
}
_EXTENT_CODE = {
    EdemaExtent.none: "extent-none",
    EdemaExtent.focal: "extent-focal",
    EdemaExtent.femoral_head: "extent-head",
    EdemaExtent.femoral_neck: "extent-neck",
    EdemaExtent.head_and_neck: "extent-head-neck",
    EdemaExtent.intertrochanteric: "extent-trochant",
}
_LATERALITY = {Side.right: codes.SCT.Right, Side.left: codes.SCT.Left}
#: Finding -> (segmented property category, type, anatomic region, primary anatomic structure).
_SEGMENT_CODES: dict[Finding, tuple[Code, Code, Code | None, Code | None]] = {
    Finding.femoral_head: (codes.SCT.AnatomicalStructure, codes.SCT.FemoralHead, None, None),
    Finding.edema: (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Edema, codes.SCT.ProximalFemur,
                    codes.SCT.BoneMarrow),
    Finding.acetabular_edema: (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Edema, codes.SCT.Acetabulum,
                               codes.SCT.BoneMarrow),
    Finding.effusion: (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Effusion, codes.SCT.HipJoint, None),
}
#: Finding -> finding site of its SR group.
_FINDING_SITE = {
    Finding.femoral_head: codes.SCT.FemoralHead,
    Finding.edema: codes.SCT.ProximalFemur,
    Finding.acetabular_edema: codes.SCT.Acetabulum,
    Finding.effusion: codes.SCT.HipJoint,
    Finding.subchondral_band: codes.SCT.FemoralHead,
}
#: The segment a finding's SR group was measured on: the band on the femoral head.
_MEASURED_ON = {Finding.subchondral_band: Finding.femoral_head}


def local_code(value: str) -> Code:
    """The ``99HIPDX`` code ``value`` (one of :data:`LOCAL_CODES`)."""
    return Code(value, LOCAL_SCHEME, LOCAL_CODES[value])


def segment_tracking_id(side: Side, finding: Finding) -> str:
    """Tracking identifier of a finding, the same in the SEG segment and the SR group."""
    return f"{ALGORITHM_NAME} {side.value} {finding.value}"


def study_masks(volumes: list[Volume], analysis: MriAnalysis | None = None) -> StudyMasks:
    """The femoral heads and finding masks of a study: those kept by :func:`analyze_study`.

    Parameters
    ----------
    volumes
        The volumes of one study (``read_study(path).volumes``).
    analysis
        ``analyze_study(volumes)`` when the caller has it: its masks are returned as they are
        (no second search). Without it, or for an analysis of other volumes or read back from
        JSON, the study is analysed here.

    Returns
    -------
    StudyMasks
        Without a fluid-sensitive series, ``edema_by_side`` is empty.

    Raises
    ------
    ImagingError
        No T1-weighted series, or the T1 series cannot be searched for femoral heads.
    """
    masks = analysis.masks if analysis is not None else None
    if masks is not None and any(v is masks.t1 for v in volumes):
        return masks
    masks = analyze_study(volumes).masks
    assert masks is not None  # analyze_study always keeps them
    return masks


def series_of(study: Study, volume: Volume) -> Series:
    """The series of ``study`` whose volume is ``volume`` (as returned by :func:`study_masks`)."""
    for series in study.series:
        if series.volume is volume or (volume.series_uid and series.volume.series_uid == volume.series_uid):
            return series
    raise ImagingError(f"the volume {volume.description or volume.source!r} is not a series of the study {study.source}")


def source_datasets(study: Study, series: Series) -> list[pydicom.Dataset | None]:
    """The pydicom datasets of the files of ``series``, in the slice order of its volume.

    A slice filled in for a missing one (``""`` in ``Series.files``) gives ``None``.

    Raises
    ------
    ImagingError
        The series was read from NIfTI (there are no DICOM files to reference), or a file
        cannot be read again. The slices of a multi-frame file share its dataset.
    """
    root = Path(study.source)
    base = root if root.is_dir() else root.parent
    out: list[pydicom.Dataset | None] = []
    read: dict[str, pydicom.Dataset] = {}  # a multi-frame file holds several slices: read once
    for name in series.files:
        if not name:
            out.append(None)
            continue
        if name in read:
            out.append(read[name])
            continue
        path = base / name
        if path.name.lower().endswith((".nii", ".nii.gz")):
            raise ImagingError(f"{name}: a NIfTI image has no DICOM instances to reference; SEG and SR need DICOM")
        try:
            read[name] = pydicom.dcmread(path)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise ImagingError(f"{name}: cannot be read again for the DICOM export: {exc}") from None
        out.append(read[name])
    return out


def frame_numbers(source: list[pydicom.Dataset | None], volume: Volume) -> list[int | None]:
    """Per slice of ``volume``: its frame number (from 1) in its multi-frame source dataset, None
    for a single-frame source or a filled-in slice. A frame is matched by its position (0.05 mm).

    Raises
    ------
    ImagingError
        A slice matches no frame of its multi-frame source.
    """
    out: list[int | None] = []
    positions: dict[int, np.ndarray] = {}
    for k, ds in enumerate(source):
        if ds is None or int(ds.get("NumberOfFrames") or 1) <= 1:
            out.append(None)
            continue
        if id(ds) not in positions:
            positions[id(ds)] = np.array([f.position for f in multiframe.frames_of(ds)])
        distance = np.linalg.norm(positions[id(ds)] - volume.to_patient(np.array([k, 0, 0])), axis=1)
        frame = int(np.argmin(distance))
        if distance[frame] > 0.05:
            raise ImagingError(f"slice {k + 1} of {volume.description!r} matches no frame of its multi-frame file")
        out.append(frame + 1)
    return out


#: Type 2 attributes (present, possibly empty) that highdicom copies from the source images.
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
                 "AccessionNumber", "ReferringPhysicianName")


def _with_type2(ds: pydicom.Dataset) -> pydicom.Dataset:
    """A shallow copy of ``ds`` with the type 2 patient and study attributes it lacks, empty."""
    missing = [k for k in _TYPE2_COPIED if k not in ds]
    if not missing:
        return ds
    out = ds.copy()
    for keyword in missing:
        setattr(out, keyword, "")
    return out


def _existing(datasets: list[pydicom.Dataset | None]) -> list[pydicom.Dataset]:
    """Each distinct dataset once (a multi-frame file stands for several slices), in order."""
    distinct = {id(ds): ds for ds in datasets if ds is not None}
    found = [_with_type2(ds) for ds in distinct.values()]
    if not found:
        raise ImagingError("no source DICOM instances to reference")
    return found



def _no_fluid_series() -> ImagingError:
    return ImagingError(
        "the study has no fluid-sensitive series (STIR or fat-saturated T2/PD) covering the hips: "
        "bone marrow edema, acetabular edema and effusion were not measured, so there is nothing to export"
    )


def _with_laterality(item: pydicom.Dataset, keyword: str, side: Side) -> None:
    """Add the side as a modifier (CID 244 Laterality) to a coded item: ``keyword`` is the modifier sequence."""
    modifier = pydicom.Dataset()
    code = _LATERALITY[side]
    modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning = code.value, code.scheme_designator, code.meaning
    setattr(item, keyword, [modifier])


def _declare_local_scheme(dataset: pydicom.Dataset) -> None:
    item = pydicom.Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = LOCAL_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = MANUFACTURER
    item.CodingSchemeVersion = __version__
    dataset.CodingSchemeIdentificationSequence = [item]


def build_segmentation(
    source: list[pydicom.Dataset | None], analysis: MriAnalysis, *, masks: StudyMasks | None = None
) -> hd.seg.Segmentation:
    """The findings of an analysed study as a binary DICOM Segmentation on its T1 series.

    One segment per side (right first) and reported finding (:func:`finding_masks`): femoral head (SCT Anatomical
    structure / Femoral head, laterality as a property type modifier), bone marrow edema (SCT
    Morphologically abnormal structure / Edema, region Proximal femur, structure Bone marrow),
    acetabular edema (Edema, region Acetabulum, structure Bone marrow) and joint effusion
    (Effusion, region Hip joint); lesions carry the laterality as an anatomic region modifier.
    Each segment has the tracking identifier :func:`segment_tracking_id`, a new tracking UID,
    the recommended display colour of the overlays and the algorithm identification (hipdx
    and its version, algorithm type AUTOMATIC). Slices without any segment are left out.

    Parameters
    ----------
    source
        The datasets of the T1 series the masks lie on, one per slice in the slice order of
        the masks (:func:`source_datasets`); ``None`` for a filled-in slice.
    analysis
        ``analyze_study(volumes)``: which findings are reported.
    masks
        ``study_masks(volumes, analysis)``; by default those ``analysis`` kept.

    Returns
    -------
    highdicom.seg.Segmentation
        Not yet written: see :func:`write_dicom`.

    Raises
    ------
    ImagingError
        The study has no fluid-sensitive series; no bone marrow edema, acetabular edema or
        effusion is reported (a SEG of the femoral heads alone is not written); the analysis
        has no masks; the masks do not match the source series or mark a slice without a
        source image.
    """
    import highdicom as hd

    masks = masks_of(analysis, masks)
    if masks.fluid is None:
        raise _no_fluid_series()
    found = finding_masks(analysis, masks)
    if not any(finding is not Finding.femoral_head for _, finding, _ in found):
        raise ImagingError(
            "no bone marrow edema, acetabular edema or joint effusion was found: a DICOM SEG of the findings "
            "would hold the femoral heads only (write the SR alone: it reports the findings absent)"
        )
    first = _existing(source)[0]
    rows, cols = int(first.Rows), int(first.Columns)
    shape = (len(source), rows, cols)
    if masks.t1.array.shape != shape:
        raise ImagingError(f"the masks have shape {masks.t1.array.shape}; the source series has "
                           f"{len(source)} slices of {rows} x {cols}")
    stack = np.stack([mask for _, _, mask in found], axis=-1).astype(np.uint8)
    missing = [k for k, ds in enumerate(source) if ds is None]
    marked = [k + 1 for k in missing if stack[k].any()]
    if marked:
        raise ImagingError(f"the masks mark slices without a source image: {marked}")
    keep = [k for k, ds in enumerate(source) if ds is not None]
    frames = frame_numbers(source, masks.t1)
    if any(f is not None for f in frames):
        # One multi-frame T1: the SEG's frames follow its frames (highdicom references each).
        if len({id(source[k]) for k in keep}) != 1:
            raise ImagingError("the T1 series mixes multi-frame and other files: no DICOM SEG can reference it")
        by_frame = np.zeros((int(first.NumberOfFrames),) + stack.shape[1:], np.uint8)
        for k in keep:
            by_frame[frames[k] - 1] = stack[k]
        images, pixels = [_with_type2(source[keep[0]])], by_frame
    else:
        images, pixels = [_with_type2(source[k]) for k in keep], stack[keep]
    algorithm = hd.AlgorithmIdentificationSequence(name=ALGORITHM_NAME, family=codes.DCM.ArtificialIntelligence,
                                                   version=__version__, source=MANUFACTURER)
    descriptions = []
    for number, (side, finding, _) in enumerate(found, start=1):
        category, kind, region, structure = _SEGMENT_CODES[finding]
        rgb = [int(DISPLAY_COLOURS[finding][i:i + 2], 16) for i in (1, 3, 5)]
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=f"{side.value} {finding.value}",
            segmented_property_category=category,
            segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[region] if region is not None else None,
            primary_anatomic_structures=[structure] if structure is not None else None,
            tracking_id=segment_tracking_id(side, finding),
            tracking_uid=hd.UID(),
            display_color=hd.color.CIELabColor.from_rgb(*rgb),
        )
        if region is None:
            _with_laterality(description.SegmentedPropertyTypeCodeSequence[0],
                             "SegmentedPropertyTypeModifierCodeSequence", side)
        else:
            _with_laterality(description.AnatomicRegionSequence[0], "AnatomicRegionModifierSequence", side)
        descriptions.append(description)
    try:
        seg = hd.seg.Segmentation(
            source_images=images,  # type: ignore[arg-type]
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=ALGORITHM_NAME,
            software_versions=__version__,
            device_serial_number="0",
            content_label="HIPDX",
            content_description="hipdx hip MRI findings",
            series_description="hipdx hip MRI findings",
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ImagingError(f"the DICOM SEG cannot be built from the source series: {exc}") from None
    return seg


def _segments_of(segmentation: pydicom.Dataset, images: list[pydicom.Dataset]) -> dict[str, tuple[int, str]]:
    """Tracking identifier -> (segment number, tracking UID) of a SEG of the same study and frame of reference."""
    if segmentation.get("SOPClassUID") != SegmentationStorage:
        raise ImagingError(f"the segmentation given to the SR is not a DICOM SEG (SOP class {segmentation.get('SOPClassUID')})")
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID"):
        if segmentation.get(keyword) != images[0].get(keyword):
            raise ImagingError(f"the DICOM SEG has another {keyword} than the analysed series: "
                               "it was not made from this study")
    return {str(item.get("TrackingID", "")): (int(item.SegmentNumber), str(item.get("TrackingUID", "")))
            for item in segmentation.SegmentSequence}


#: Finding -> prefixes of the analysis parameters (``MriAnalysis.provenance.parameters``) of its method.
_PARAMETER_PREFIXES = {
    Finding.femoral_head: ("hough_",),
    Finding.edema: ("edema_", "region_involved"),
    Finding.subchondral_band: ("band_",),
    Finding.acetabular_edema: ("acetabular_",),
    Finding.effusion: ("effusion_",),
}


def _parameters(analysis: MriAnalysis, finding: Finding) -> list[str]:
    """The method behind a finding's numbers, as algorithm parameters (TID 4019), ``name: value``."""
    prefixes = _PARAMETER_PREFIXES[finding]
    out = [f"{key}: {value}" for key, value in sorted(analysis.provenance.parameters.items()) if key.startswith(prefixes)]
    if finding is Finding.subchondral_band:
        out.append(f"band_cutoff_mm: {BAND_CUTOFF_MM:g} (Vande Berg et al., J Radiol 2011;92:557-566), "
                   f"indeterminate within {BAND_INDETERMINATE_MM:g} mm")
    return out


def _presence(present: Presence) -> Code | None:
    return {Presence.present: codes.SCT.Present, Presence.absent: codes.SCT.Absent}.get(present)


class _ReportBuilder:
    """Measurement groups of one analysis, each referencing its segment or its source images."""

    def __init__(self, analysis: MriAnalysis, source: list[pydicom.Dataset | None], segmentation: pydicom.Dataset | None):
        import highdicom as hd

        self.hd = hd
        self.analysis = analysis
        self.source = source
        self.images = _existing(source)
        self.segmentation = segmentation
        self.segments = _segments_of(segmentation, self.images) if segmentation is not None else {}
        self.reported: dict[tuple[Side, Finding], np.ndarray] = {}
        self.frames: list[int | None] = [None] * len(source)
        if analysis.masks is not None and analysis.masks.t1.array.shape[0] == len(source):
            self.reported = {(side, finding): mask for side, finding, mask in finding_masks(analysis)}
            self.frames = frame_numbers(source, analysis.masks.t1)
        self.groups: list[Any] = []

    def _source_images(self, side: Side, finding: Finding) -> list[Any]:
        """The slices a reported finding lies on, else those of the femoral head it was sought around."""
        mask = self.reported.get((side, finding), self.reported.get((side, Finding.femoral_head)))
        if mask is None:
            return []
        # One reference per image; the frames it lies on for a multi-frame image.
        images: dict[int, tuple[pydicom.Dataset, list[int]]] = {}
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            ds = self.source[k]
            if ds is not None:
                images.setdefault(id(ds), (ds, []))[1].extend([self.frames[k]] if self.frames[k] else [])
        return [self.hd.sr.SourceImageForMeasurementGroup(ds.SOPClassUID, ds.SOPInstanceUID,
                                                          referenced_frame_numbers=sorted(frames) or None)
                for ds, frames in images.values()]

    def add(self, side: Side, finding: Finding, measurements: list[Any], evaluations: list[Any],
            finding_type: Code, surface: Any = None) -> None:
        """One group: on ``surface`` (a volume surface) when given, else on its segment or its source images."""
        hd = self.hd
        site = [hd.sr.FindingSite(_FINDING_SITE[finding], laterality=_LATERALITY[side])]
        on = _MEASURED_ON.get(finding, finding)
        number, segment_uid = self.segments.get(segment_tracking_id(side, on), (None, ""))
        if self.segmentation is not None and number is None and (side, on) in self.reported:
            raise ImagingError(f"the DICOM SEG has no segment {segment_tracking_id(side, on)!r} though the analysis "
                               "reports it: give the SEG built from this analysis")
        algorithm = hd.sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=__version__,
                                                  parameters=_parameters(self.analysis, finding) or None)
        common: dict[str, Any] = dict(finding_type=finding_type, algorithm_id=algorithm, finding_sites=site,
                                      measurements=measurements or None, qualitative_evaluations=evaluations or None)
        # The same finding keeps its segment's tracking UID; the band is a finding of its own.
        uid = segment_uid if segment_uid and on is finding else hd.UID()
        tracking = hd.sr.TrackingIdentifier(uid=uid, identifier=segment_tracking_id(side, finding))
        if surface is not None:
            self.groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking, referenced_volume_surface=surface, **common))
        elif number is not None:
            self.groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                referenced_segment=hd.sr.ReferencedSegment.from_segmentation(self.segmentation, number),
                **common,
            ))
        else:
            self.groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                source_images=self._source_images(side, finding) or None,
                **common,
            ))

    def measurement(self, name: Code, value: float, unit: Code, **kwargs: Any) -> Any:
        return self.hd.sr.Measurement(name, float(value), unit, **kwargs)

    def side(self, side: Side) -> None:
        hd, out = self.hd, getattr(self.analysis.sides, side.value)
        mm, ml, percent = codes.UCUM.Millimeter, Code("mL", "UCUM", "mL"), Code("%", "UCUM", "%")
        volume_method = codes.DCM.SumOfSegmentedVoxelMethodForVolume
        frame_of_reference = self.images[0].FrameOfReferenceUID
        if out.femoral_head is not None:
            # The fitted sphere as an ELLIPSOID of three equal axes (end points along x, y, z; patient LPS mm).
            centre, radius = np.asarray(out.femoral_head.center_mm, dtype=float), float(out.femoral_head.radius_mm)
            ends = np.concatenate([[centre - radius * axis, centre + radius * axis] for axis in np.eye(3)])
            sphere = hd.sr.VolumeSurface(hd.sr.GraphicTypeValues3D.ELLIPSOID, ends, frame_of_reference,
                                         source_series=hd.sr.SourceSeriesForSegmentation(self.images[0].SeriesInstanceUID))
            # A head found by the second search beside the other takes the other head's radius: said as its method.
            method = local_code("radius-other") if out.femoral_head.found_by == "partner search" else None
            self.add(side, Finding.femoral_head, [self.measurement(codes.SCT.Radius, radius, mm, method=method)], [],
                     codes.SCT.FemoralHead, surface=sphere)
        edema = out.edema
        if edema.volume_ml is not None:
            measurements = [self.measurement(codes.SCT.Volume, edema.volume_ml, ml, method=volume_method)]
            if edema.fraction is not None:
                measurements.append(self.measurement(local_code("edema-fraction"), 100.0 * edema.fraction, percent))
            if edema.signal_ratio is not None:
                measurements.append(self.measurement(local_code("edema-signal"), edema.signal_ratio,
                                                     Code("1", "UCUM", "no units")))
            evaluations = []
            if edema.extent in _EXTENT_CODE:
                present = codes.SCT.Absent if edema.extent is EdemaExtent.none else codes.SCT.Present
                evaluations = [hd.sr.QualitativeEvaluation(codes.SCT.Edema, present),
                               hd.sr.QualitativeEvaluation(codes.SCT.Extent, local_code(_EXTENT_CODE[edema.extent]))]
            self.add(side, Finding.edema, measurements, evaluations, codes.SCT.Edema)
        band = out.subchondral_band
        # No band found under T1-dark marrow is not "absent" (hipdx.imaging.band.undecided_because).
        absence_undecided = band.present is Presence.unknown and band.undecided_because is not None
        if band.present is not Presence.unknown or absence_undecided:
            presence = codes.SCT.Indeterminate if absence_undecided else _presence(band.present)
            measurements, evaluations = [], [hd.sr.QualitativeEvaluation(local_code("subchondral-band"), presence)]
            if band.thickness_mm is not None:
                measurements.append(self.measurement(local_code("band-thickness"), band.thickness_mm, mm))
                verdict = (codes.SCT.Indeterminate if band.indeterminate
                           else local_code("at-cutoff" if band.thickness_mm >= BAND_CUTOFF_MM else "below-cutoff"))
                evaluations.append(hd.sr.QualitativeEvaluation(local_code("band-cutoff"), verdict))
            if band.length_mm is not None:
                measurements.append(self.measurement(codes.SCT.Length, band.length_mm, mm))
            self.add(side, Finding.subchondral_band, measurements, evaluations, local_code("subchondral-band"))
        for finding, joint, kind in ((Finding.acetabular_edema, out.acetabular_edema, codes.SCT.Edema),
                                     (Finding.effusion, out.effusion, codes.SCT.Effusion)):
            if joint.volume_ml is None:
                continue
            present = _presence(joint.present)
            evaluations = [hd.sr.QualitativeEvaluation(kind, present)] if present is not None else []
            self.add(side, finding, [self.measurement(codes.SCT.Volume, joint.volume_ml, ml, method=volume_method)],
                     evaluations, kind)


def build_measurement_report(
    source: list[pydicom.Dataset | None],
    analysis: MriAnalysis,
    *,
    segmentation: pydicom.Dataset | None = None,
    fluid_source: list[pydicom.Dataset | None] | None = None,
) -> hd.sr.Comprehensive3DSR:
    """The measurements of both hips as a TID 1500 Measurement Report (Comprehensive 3D SR).

    Per side (right first), each group with the finding site and its laterality (SCT Right /
    Left), the tracking identifier :func:`segment_tracking_id` and the algorithm
    identification (hipdx, its version and the method parameters of the analysis):

    ========================  ==========================  ================================================
    group                     finding site                content
    ========================  ==========================  ================================================
    femoral head              SCT Femoral head            SCT Radius (mm), inferred from the centre
                                                          (SCOORD3D POINT, patient LPS mm)
    bone marrow edema         SCT Proximal femur          SCT Volume (mL, DCM Sum of segmented voxel
                                                          method), fraction of head and neck (%),
                                                          signal ratio; SCT Edema = Present/Absent,
                                                          SCT Extent = extent class
    subchondral band          SCT Femoral head            thickness (mm), SCT Length (mm); band =
                                                          Present/Absent (Indeterminate when none
                                                          was found under T1-dark marrow); cut-off
                                                          class or SCT Indeterminate
    acetabular edema          SCT Acetabulum              SCT Volume (mL); SCT Edema = Present/Absent
    joint effusion            SCT Hip joint               SCT Volume (mL); SCT Effusion = Present/Absent
    ========================  ==========================  ================================================

    With ``segmentation``, every group is a TID 1411 volumetric ROI group referencing the
    segment it was measured on (the band: the femoral head) and carrying that segment's
    tracking UID; a finding without a segment (nothing segmented) and every group without
    ``segmentation`` is a TID 1501 group listing the source images it was measured on.
    What was not measured (no femoral head, no fluid-sensitive coverage) has no group.

    Parameters
    ----------
    source
        Datasets of the analysed T1 series (:func:`source_datasets`): the evidence and image library.
    analysis
        ``analyze_study(volumes)``; its masks give the source images of groups without a segment.
    segmentation
        The SEG of this analysis (:func:`build_segmentation`, or ``highdicom.seg.segread``).
    fluid_source
        Datasets of the fluid-sensitive series the edema was measured on: added to the evidence.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        Not yet written: see :func:`write_dicom`.

    Raises
    ------
    ImagingError
        No source datasets; the study had no fluid-sensitive series covering the hips (no edema
        measured); ``segmentation`` is not a SEG of this study or lacks a segmented finding;
        highdicom rejects the content.
    """
    import highdicom as hd

    images = _existing(source)
    if all(getattr(analysis.sides, side.value).edema.volume_ml is None for side in SIDE_ORDER):
        raise _no_fluid_series()
    builder = _ReportBuilder(analysis, source, segmentation)
    for side in SIDE_ORDER:
        builder.side(side)
    evidence = images + _existing(fluid_source) if fluid_source else list(images)
    if segmentation is not None:
        evidence.append(segmentation)
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_OBSERVER_UID, name=ALGORITHM_NAME, manufacturer_name=MANUFACTURER,
            model_name=ALGORITHM_NAME, serial_number="0"),
    )
    try:
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=device),
            procedure_reported=codes.SCT.ImagingProcedure,
            imaging_measurements=builder.groups,
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report,
            series_instance_uid=hd.UID(),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            series_description="hipdx hip MRI measurements",
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ImagingError(f"the DICOM SR cannot be built: {exc}") from None
    _declare_local_scheme(sr)
    return sr


def write_dicom(dataset: pydicom.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write a SEG or SR built here as a DICOM file (with its file meta information).

    Raises
    ------
    InputError
        ``path`` is a folder or cannot be written (the message names it and why).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder; give a file name such as {path / 'out.dcm'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset.save_as(path, enforce_file_format=True)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


@dataclass(frozen=True)
class DicomOutputs:
    """The DICOM SEG and SR of one analysed study, built and not yet written (:func:`write_dicom`).

    ``not_built`` says why neither was built when one was asked for (damaged pixels), else None.
    """

    segmentation: hd.seg.Segmentation | None = None
    report: hd.sr.Comprehensive3DSR | None = None
    not_built: str | None = None


def build_dicom_outputs(study: Study, analysis: MriAnalysis, *, seg: bool, sr: bool) -> DicomOutputs:
    """The SEG and/or SR of an analysed study, both built before anything is written.

    The one path from an analysis to its DICOM outputs, for the command line, the service and
    the PACS: the SR references the SEG's segments when both are asked for, and the
    fluid-sensitive series is added to the SR's evidence when it can be read again (else a
    warning is added to ``analysis.warnings`` saying why). An analysis resting on damaged pixels
    (``analysis.damaged_pixels``: more non-finite voxels than the reader accepts) gets neither:
    its numbers are not added to a case, so they are not sent to a PACS either; the reason is
    added to the warnings and returned in ``not_built``.

    Parameters
    ----------
    study
        The study read by :func:`hipdx.imaging.io.read_study` that ``analysis`` was made on.
    analysis
        ``analyze_read_study(study)``, with its masks.
    seg, sr
        Which outputs to build.

    Raises
    ------
    ImagingError
        As :func:`build_segmentation` and :func:`build_measurement_report`; the T1 series is
        not a DICOM series of ``study``.
    """
    if not (seg or sr):
        return DicomOutputs()
    if analysis.damaged_pixels:
        asked = " and ".join(name for name, wanted in (("SEG", seg), ("SR", sr)) if wanted)
        why = (f"no DICOM {asked} written: the analysis rests on damaged pixels (" + "; ".join(analysis.damaged_pixels)
               + ")")
        analysis.warnings.append(why)
        return DicomOutputs(not_built=why)
    masks = masks_of(analysis, None)
    source = source_datasets(study, series_of(study, masks.t1))
    segmentation = build_segmentation(source, analysis, masks=masks) if seg else None
    report = None
    if sr:
        fluid_source = None
        if masks.fluid is not None:
            try:
                fluid_source = source_datasets(study, series_of(study, masks.fluid))
            except ImagingError as exc:
                analysis.warnings.append(f"the fluid-sensitive series is not in the SR evidence: {exc}")
        report = build_measurement_report(source, analysis, segmentation=segmentation, fluid_source=fluid_source)
    return DicomOutputs(segmentation, report)


def record_files_written(analysis: MriAnalysis, paths: list[Path]) -> None:
    """Record the files written from ``analysis`` (SEG, SR, overlays) in its provenance."""
    analysis.provenance.parameters["files_written"] = [str(p) for p in paths]
