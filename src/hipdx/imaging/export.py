"""Results that leave hipdx as images: the masks behind an analysis, a DICOM SEG and a TID 1500 SR (the public face).

The SEG is built in :mod:`~hipdx.imaging.seg`, the SR in :mod:`~hipdx.imaging.sr`, what both share in
:mod:`~hipdx.imaging.dicom_out`; :func:`build_dicom_outputs` is the one path from an analysis to both.

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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hipdx.errors import ImagingError
from hipdx.imaging.analyze import analyze_study
from hipdx.imaging.dicom_out import (
    ALGORITHM_NAME,
    LOCAL_CODES,
    LOCAL_SCHEME,
    SEG_SERIES_NUMBER,
    SR_SERIES_NUMBER,
    frame_numbers,
    local_code,
    segment_tracking_id,
    series_of,
    source_datasets,
    write_dicom,
)
from hipdx.imaging.seg import build_segmentation
from hipdx.imaging.sr import build_measurement_report
from hipdx.imaging.results import DISPLAY_COLOURS, Finding, MriAnalysis, StudyMasks, finding_masks, masks_of
from hipdx.imaging.volume import Volume

if TYPE_CHECKING:  # pragma: no cover
    import highdicom as hd

    from hipdx.imaging.series import Study

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
