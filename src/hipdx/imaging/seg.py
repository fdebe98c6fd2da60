"""The findings of an analysed study as a binary DICOM Segmentation on its T1 series (highdicom).

One segment per side (right first) and reported finding (:func:`finding_masks`): femoral head (SCT Anatomical
structure / Femoral head, laterality as a property type modifier), bone marrow edema (SCT
Morphologically abnormal structure / Edema, region Proximal femur, structure Bone marrow),
acetabular edema (Edema, region Acetabulum, structure Bone marrow) and joint effusion
(Effusion, region Hip joint); lesions carry the laterality as an anatomic region modifier.
Each segment has the tracking identifier :func:`segment_tracking_id`, a new tracking UID,
the recommended display colour of the overlays and the algorithm identification (hipdx
and its version, algorithm type AUTOMATIC). Slices without any segment are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from hipdx._version import __version__
from hipdx.case.model import Side
from hipdx.errors import ImagingError
from hipdx.imaging.dicom_out import (
    ALGORITHM_NAME,
    LATERALITY,
    MANUFACTURER,
    SEG_SERIES_NUMBER,
    existing_instances,
    frame_numbers,
    no_fluid_series,
    segment_tracking_id,
    with_type2_attributes,
)
from hipdx.imaging.results import DISPLAY_COLOURS, Finding, MriAnalysis, StudyMasks, finding_masks, masks_of
from hipdx.imaging.volume import Volume

if TYPE_CHECKING:  # pragma: no cover
    import highdicom as hd


#: Finding -> (segmented property category, type, anatomic region, primary anatomic structure).
_SEGMENT_CODES: dict[Finding, tuple[Code, Code, Code | None, Code | None]] = {
    Finding.femoral_head: (codes.SCT.AnatomicalStructure, codes.SCT.FemoralHead, None, None),
    Finding.edema: (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Edema, codes.SCT.ProximalFemur,
                    codes.SCT.BoneMarrow),
    Finding.acetabular_edema: (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Edema, codes.SCT.Acetabulum,
                               codes.SCT.BoneMarrow),
    Finding.effusion: (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Effusion, codes.SCT.HipJoint, None),
}


def _with_laterality(item: pydicom.Dataset, keyword: str, side: Side) -> None:
    """Add the side as a modifier (CID 244 Laterality) to a coded item: ``keyword`` is the modifier sequence."""
    modifier = pydicom.Dataset()
    code = LATERALITY[side]
    modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning = code.value, code.scheme_designator, code.meaning
    setattr(item, keyword, [modifier])


def build_segmentation(
    source: list[pydicom.Dataset | None], analysis: MriAnalysis, *, masks: StudyMasks | None = None
) -> hd.seg.Segmentation:
    """The findings of an analysed study as a binary DICOM Segmentation on its T1 series.

    The segments, their codes and identification are in the module's description.

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
        raise no_fluid_series()
    found = finding_masks(analysis, masks)
    if not any(finding is not Finding.femoral_head for _, finding, _ in found):
        raise ImagingError(
            "no bone marrow edema, acetabular edema or joint effusion was found: a DICOM SEG of the findings "
            "would hold the femoral heads only (write the SR alone: it reports the findings absent)"
        )
    first = existing_instances(source)[0]
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
    images, pixels = _images_and_pixels(source, masks.t1, stack, first)
    descriptions = _segment_descriptions(found)
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


def _images_and_pixels(source: list[pydicom.Dataset | None], t1: Volume, stack: np.ndarray, first: pydicom.Dataset
                       ) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """The source images the SEG references and its pixels in their order (a multi-frame T1: by frame)."""
    keep = [k for k, ds in enumerate(source) if ds is not None]
    frames = frame_numbers(source, t1)
    if any(f is not None for f in frames):
        # One multi-frame T1: the SEG's frames follow its frames (highdicom references each).
        if len({id(source[k]) for k in keep}) != 1:
            raise ImagingError("the T1 series mixes multi-frame and other files: no DICOM SEG can reference it")
        by_frame = np.zeros((int(first.NumberOfFrames),) + stack.shape[1:], np.uint8)
        for k in keep:
            by_frame[frames[k] - 1] = stack[k]
        return [with_type2_attributes(source[keep[0]])], by_frame
    return [with_type2_attributes(source[k]) for k in keep], stack[keep]


def _segment_descriptions(found: list[tuple[Side, Finding, np.ndarray]]) -> list[hd.seg.SegmentDescription]:
    """One segment description per reported finding, coded, coloured and tracked, in segment order."""
    import highdicom as hd

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
    return descriptions
