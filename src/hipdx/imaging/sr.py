"""The measurements of an analysed study as a TID 1500 Measurement Report (Comprehensive 3D SR, highdicom).

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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage

from hipdx._version import __version__
from hipdx.case.model import EdemaExtent, Presence, Side
from hipdx.errors import ImagingError
from hipdx.imaging.results import SIDE_ORDER, Finding, MriAnalysis, finding_masks
from hipdx.imaging.parameters import BAND_CUTOFF_MM, BAND_INDETERMINATE_MM
from hipdx.imaging.dicom_out import (
    ALGORITHM_NAME,
    DEVICE_OBSERVER_UID,
    LATERALITY,
    MANUFACTURER,
    SR_SERIES_NUMBER,
    declare_local_scheme,
    existing_instances,
    frame_numbers,
    local_code,
    no_fluid_series,
    segment_tracking_id,
)

if TYPE_CHECKING:  # pragma: no cover
    import highdicom as hd


_EXTENT_CODE = {
    EdemaExtent.none: "extent-none",
    EdemaExtent.focal: "extent-focal",
    EdemaExtent.femoral_head: "extent-head",
    EdemaExtent.femoral_neck: "extent-neck",
    EdemaExtent.head_and_neck: "extent-head-neck",
    EdemaExtent.intertrochanteric: "extent-trochant",
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


#: Finding -> prefixes of the analysis parameters (``MriAnalysis.provenance.parameters``: the method in
#: words and every tuned parameter as "group.name", groups of ``imaging/data/parameters.yaml``) of its method.
_PARAMETER_PREFIXES = {
    Finding.femoral_head: ("femur.", "head_search.", "head_fit.", "anatomy.", "partner", "parameters_file"),
    Finding.edema: ("edema_", "edema.", "analysis.edema_", "analysis.region_", "analysis.reference_", "parameters_file"),
    Finding.subchondral_band: ("band.", "parameters_file"),
    Finding.acetabular_edema: ("acetabular_", "joint.acetabul", "parameters_file"),
    Finding.effusion: ("joint.effusion", "joint.capsule", "analysis.effusion_", "parameters_file"),
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
        self.images = existing_instances(source)
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
        site = [hd.sr.FindingSite(_FINDING_SITE[finding], laterality=LATERALITY[side])]
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

    The groups and their content are in the module's description.

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

    images = existing_instances(source)
    if all(getattr(analysis.sides, side.value).edema.volume_ml is None for side in SIDE_ORDER):
        raise no_fluid_series()
    builder = _ReportBuilder(analysis, source, segmentation)
    for side in SIDE_ORDER:
        builder.side(side)
    evidence = images + existing_instances(fluid_source) if fluid_source else list(images)
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
    declare_local_scheme(sr)
    return sr
