"""Results that leave hipdx as images: the masks behind an analysis, a DICOM SEG and a TID 1500 SR.

:func:`study_masks` gives the femoral heads and the edema mask of each side on the T1 grid
that :func:`analyze_study` kept with its :class:`~hipdx.imaging.analyze.MriAnalysis` (the
masks are not serialised; the analysis is not repeated). The overlays
(:mod:`hipdx.report.overlay`) and the DICOM SEG use these masks.

:func:`write_edema_seg` writes the edema as a binary DICOM Segmentation referencing the
analysed series; :func:`write_measurement_sr` writes the measurements of both hips as a
DICOM Comprehensive 3D SR following TID 1500 "Measurement Report" (imaging.md 6.1; the IHE
AI Results profile uses the same pair). Both carry the algorithm identification (hipdx and
its version). highdicom 0.28.2 builds both; it is imported only when they are written.

Example
-------
>>> study = read_study("exam/")                                         # doctest: +SKIP
>>> analysis = analyze_study(list(study.volumes))                       # doctest: +SKIP
>>> masks = study_masks(list(study.volumes), analysis)                  # doctest: +SKIP
>>> t1 = series_of(study, masks.t1)                                     # doctest: +SKIP
>>> write_edema_seg(source_datasets(study, t1), masks.edema, "seg.dcm") # doctest: +SKIP
>>> write_measurement_sr(source_datasets(study, t1), analysis, "sr.dcm") # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom

from hipdx import __version__
from hipdx.errors import ImagingError, InputError
from hipdx.imaging.analyze import MriAnalysis, StudyMasks, analyze_study
from hipdx.imaging.volume import Volume

if TYPE_CHECKING:  # pragma: no cover
    from hipdx.imaging.io import Series, Study

#: Algorithm identification written into the SEG and the SR.
ALGORITHM_NAME = "hipdx"
ALGORITHM_FAMILY = "Artificial Intelligence"  # the only DCM family code for a software algorithm
SEGMENT_LABEL = "Bone marrow edema"
#: Manufacturer and series numbers of what hipdx writes.
MANUFACTURER = "hipdx developers"
SEG_SERIES_NUMBER = 901
SR_SERIES_NUMBER = 902


def study_masks(volumes: list[Volume], analysis: MriAnalysis | None = None) -> StudyMasks:
    """The femoral heads and edema masks of a study: those kept by :func:`analyze_study`.

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
        cannot be read again.
    """
    root = Path(study.source)
    base = root if root.is_dir() else root.parent
    out: list[pydicom.Dataset | None] = []
    for name in series.files:
        if not name:
            out.append(None)
            continue
        path = base / name
        if path.name.lower().endswith((".nii", ".nii.gz")):
            raise ImagingError(f"{name}: a NIfTI image has no DICOM instances to reference; SEG and SR need DICOM")
        try:
            out.append(pydicom.dcmread(path))
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise ImagingError(f"{name}: cannot be read again for the DICOM export: {exc}") from None
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
    found = [_with_type2(ds) for ds in datasets if ds is not None]
    if not found:
        raise ImagingError("no source DICOM instances to reference")
    return found


def _save(dataset: pydicom.Dataset, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder; give a file name such as {path / 'out.dcm'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset.save_as(path, enforce_file_format=True)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def write_edema_seg(
    source: list[pydicom.Dataset | None], edema_mask: np.ndarray, path: str | os.PathLike[str]
) -> Path:
    """Write the edema as a binary DICOM Segmentation referencing the source series.

    Parameters
    ----------
    source
        The datasets of the series the mask lies on (T1 or fluid-sensitive), one per slice in
        the slice order of the mask (:func:`source_datasets`); ``None`` for a filled-in slice.
    edema_mask
        Boolean mask, shape (slices, rows, columns) of the source series.
    path
        File to write (``.dcm``).

    Returns
    -------
    Path
        The file written: one segment "Bone marrow edema" (SCT 79654002 Edema, category
        Morphologically altered structure), algorithm hipdx and its version; one frame per
        slice with edema (empty slices are left out).

    Raises
    ------
    ImagingError
        The mask does not match the source series, or marks a slice without a source image.
    InputError
        The file cannot be written.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    mask = np.asarray(edema_mask).astype(bool)
    first = _existing(source)[0]
    rows, cols = int(first.Rows), int(first.Columns)
    if mask.ndim != 3 or mask.shape != (len(source), rows, cols):
        raise ImagingError(
            f"the edema mask has shape {mask.shape}; the source series has {len(source)} slices of {rows} x {cols}"
        )
    missing = [k for k, ds in enumerate(source) if ds is None]
    if any(mask[k].any() for k in missing):
        raise ImagingError(f"the edema mask marks slices without a source image: {[k + 1 for k in missing if mask[k].any()]}")
    keep = [k for k, ds in enumerate(source) if ds is not None]
    images = [_with_type2(source[k]) for k in keep]
    algorithm = hd.AlgorithmIdentificationSequence(name=ALGORITHM_NAME, family=codes.DCM.ArtificialIntelligence,
                                                   version=__version__)
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=hd.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure"),
        segmented_property_type=codes.SCT.Edema,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        anatomic_regions=[codes.SCT.Femur],
        tracking_id="hipdx bone marrow edema",
        tracking_uid=hd.UID(),
    )
    try:
        seg = hd.seg.Segmentation(
            source_images=images,
            pixel_array=mask[keep].astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=hd.UID(),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=ALGORITHM_NAME,
            software_versions=__version__,
            device_serial_number="0",
            series_description="hipdx bone marrow edema",
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ImagingError(f"the DICOM SEG cannot be built from the source series: {exc}") from None
    return _save(seg, path)


def _mm(value: float) -> tuple[float, object]:
    from pydicom.sr.codedict import codes

    return float(value), codes.UCUM.Millimeter


def write_measurement_sr(
    source: list[pydicom.Dataset | None], analysis: MriAnalysis, path: str | os.PathLike[str]
) -> Path:
    """Write the measurements of both hips as a TID 1500 Measurement Report (Comprehensive 3D SR).

    Per measured side, with finding site "Head of femur" and its laterality:

    * femoral head: a planar ROI group whose region is the centre (SCOORD3D POINT in the frame
      of reference of the source series, patient LPS mm) with the radius (mm);
    * edema (finding type SCT Edema): volume in mL (UCUM ``mL``) and share of head and neck (%);
    * subchondral band (local code ``99HIPDX``): thickness and length in mm, when present.

    Every group carries the algorithm identification (hipdx and its version).

    Parameters
    ----------
    source
        Datasets of the analysed series (:func:`source_datasets`): the evidence of the report.
    analysis
        ``analyze_study(volumes)``.
    path
        File to write (``.dcm``).

    Raises
    ------
    ImagingError
        No source datasets, or highdicom rejects the content.
    InputError
        The file cannot be written.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    images = _existing(source)
    frame_of_reference = images[0].FrameOfReferenceUID
    algorithm = hd.sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=__version__)
    ml = hd.sr.CodedConcept("mL", "UCUM", "mL")
    percent = hd.sr.CodedConcept("%", "UCUM", "%")
    band_code = hd.sr.CodedConcept("subchondral-band", "99HIPDX", "Subchondral low-signal band")
    thickness = hd.sr.CodedConcept("band-thickness", "99HIPDX", "Subchondral band thickness")
    fraction_code = hd.sr.CodedConcept("edema-fraction", "99HIPDX", "Edema fraction of femoral head and neck")
    groups: list = []
    for side, laterality in (("right", codes.SCT.Right), ("left", codes.SCT.Left)):
        out = getattr(analysis.sides, side)
        site = [hd.sr.FindingSite(codes.SCT.HeadOfFemur, laterality=laterality)]

        def tracking(what: str) -> hd.sr.TrackingIdentifier:
            return hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"hipdx {side} {what}")

        if out.femoral_head is not None:
            head = out.femoral_head
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking("femoral head"),
                referenced_region=hd.sr.ImageRegion3D(hd.sr.GraphicTypeValues3D.POINT,
                                                      np.array([head.center_mm], dtype=float), frame_of_reference),
                finding_type=codes.SCT.FemoralHead,
                algorithm_id=algorithm,
                finding_sites=site,
                measurements=[hd.sr.Measurement(codes.SCT.Radius, *_mm(head.radius_mm), algorithm_id=algorithm)],
            ))
        if out.edema.volume_ml is not None:
            measurements = [hd.sr.Measurement(codes.SCT.Volume, float(out.edema.volume_ml), ml, algorithm_id=algorithm)]
            if out.edema.fraction is not None:
                measurements.append(hd.sr.Measurement(fraction_code, 100.0 * out.edema.fraction, percent,
                                                      algorithm_id=algorithm))
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking("bone marrow edema"),
                finding_type=codes.SCT.Edema,
                algorithm_id=algorithm,
                finding_sites=site,
                measurements=measurements,
            ))
        band = out.subchondral_band
        if band.thickness_mm is not None:
            measurements = [hd.sr.Measurement(thickness, *_mm(band.thickness_mm), algorithm_id=algorithm)]
            if band.length_mm is not None:
                measurements.append(hd.sr.Measurement(codes.SCT.Length, *_mm(band.length_mm), algorithm_id=algorithm))
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking("subchondral band"),
                finding_type=band_code,
                algorithm_id=algorithm,
                finding_sites=site,
                measurements=measurements,
            ))
    try:
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(),
            procedure_reported=hd.sr.CodedConcept("113091000", "SCT", "Magnetic resonance imaging"),
            imaging_measurements=groups,
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=images,
            content=report,
            series_instance_uid=hd.UID(),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            series_description="hipdx hip MRI measurements",
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ImagingError(f"the DICOM SR cannot be built: {exc}") from None
    return _save(sr, path)
