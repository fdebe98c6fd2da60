"""What the analysis of one hip MRI study gives: the measurements per side, their provenance, the masks.

:class:`MriAnalysis` is the serialisable result (pydantic); :class:`StudyMasks` the masks behind
its numbers, kept with it (not serialised) so the overlays, the DICOM SEG and the SR reuse the
analysis instead of repeating it. :func:`finding_masks` is the one list of what is drawn and
segmented (:mod:`hipdx.imaging.to_case` puts one side in the case model's terms).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from hipdx.case.model import EdemaExtent, Presence, Side
from hipdx.errors import ImagingError
from hipdx.imaging.heads import FemoralHead
from hipdx.imaging.volume import Volume, resample_onto
from hipdx.reasoning.frozen import OutputProvenance


class FemoralHeadOut(BaseModel):
    center_mm: list[float] = Field(description="Sphere centre [x, y, z] in DICOM patient coordinates (LPS), mm")
    radius_mm: float
    score: float = Field(description="Mean share of the circle perimeter on edges (0-1)")
    found_by: Literal["image search", "partner search"] = Field(
        "image search",
        description="'image search' (whole T1 series) or 'partner search' (found beside the other head, when the "
        "first search missed it; radius taken from the other head, score the share of marrow-edge rays on its sphere)",
    )


class EdemaOut(BaseModel):
    volume_ml: float | None = Field(description="Edema volume in the head, neck and intertrochanteric region")
    fraction: float | None = Field(description="Share of the head-and-neck region that is edematous (0-1)")
    extent: EdemaExtent
    signal_ratio: float | None = Field(description="Mean edema signal / median reference marrow signal")
    head_fraction: float | None = None
    neck_fraction: float | None = None
    intertrochanteric_fraction: float | None = None


class BandOut(BaseModel):
    present: Presence
    thickness_mm: float | None
    length_mm: float | None
    indeterminate: bool = Field(description="The thickness is measured but not decided against the 4 mm cut-off")
    undecided_because: str | None = Field(
        None, description="Why the thickness (present, indeterminate) or the absence (present unknown) is not decided: "
        "near the cut-off, or under T1-dark marrow where the measurement is not reliable")


class JointFindingOut(BaseModel):
    """Acetabular edema or joint effusion of one side."""

    volume_ml: float | None = Field(default=None, description="Volume in mL (None when not measured)")
    present: Presence = Presence.unknown


class SideOut(BaseModel):
    femoral_head: FemoralHeadOut | None
    edema: EdemaOut
    subchondral_band: BandOut
    acetabular_edema: JointFindingOut = Field(default_factory=JointFindingOut)
    effusion: JointFindingOut = Field(default_factory=JointFindingOut)


class Sides(BaseModel):
    left: SideOut
    right: SideOut


class MriProvenance(OutputProvenance):
    """What an MRI analysis records of its making: hipdx's version (the base), the series used and why, every parameter."""

    series_used: dict[str, str]
    study_date: dt.date | None = Field(default=None, description="StudyDate of the T1 series used (DICOM), if known")
    series_choice: dict[str, str] = Field(
        default_factory=dict,
        description="Per kind (t1, fluid): why this series, and each series of that kind not used with why",
    )
    parameters: dict[str, Any]


@dataclass(frozen=True, eq=False)
class StudyMasks:
    """Femoral heads and edema masks of an analysed study, on the grid of its T1 series.

    Kept by :func:`analyze_study` with its :class:`MriAnalysis` (not serialised), so the
    overlays, the DICOM SEG and the SR reuse the analysis instead of repeating it.

    Attributes
    ----------
    t1, fluid
        The series used (see :func:`hipdx.imaging.choose.choose_series`).
    heads
        Femoral head per side found on ``t1`` (centre, radius, head/neck/intertrochanteric masks).
    edema_by_side
        Boolean edema mask per side, full T1 grid; a side not measured is absent.
    acetabular_edema_by_side, effusion_by_side
        Boolean masks of acetabular edema and joint fluid per side, full T1 grid.
    """

    t1: Volume
    fluid: Volume | None
    heads: dict[Side, FemoralHead]
    edema_by_side: dict[Side, np.ndarray] = field(default_factory=dict)
    acetabular_edema_by_side: dict[Side, np.ndarray] = field(default_factory=dict)
    effusion_by_side: dict[Side, np.ndarray] = field(default_factory=dict)

    @property
    def edema(self) -> np.ndarray:
        """Edema of both sides as one boolean mask on the T1 grid."""
        out = np.zeros(self.t1.array.shape, bool)
        for mask in self.edema_by_side.values():
            out |= mask
        return out

    def fluid_on_t1_slice(self, k: int) -> np.ndarray | None:
        """The fluid-sensitive image resampled onto T1 slice ``k`` (for display); None without one."""
        if self.fluid is None:
            return None
        box = (slice(k, k + 1), slice(0, self.t1.array.shape[1]), slice(0, self.t1.array.shape[2]))
        return resample_onto(self.fluid, self.t1, box)[0]


class MriAnalysis(BaseModel):
    """What hipdx measured on one hip MRI study."""

    sides: Sides
    side_to_side_edema_ml: float | None = Field(description="Left minus right edema volume (mL)")
    warnings: list[str]
    provenance: MriProvenance
    damaged_pixels: list[str] = Field(
        default_factory=list,
        description="Each series used with more NaN or infinite voxels than the reader accepts (0.1%): the "
        "measurements rest on damaged pixels and are not added to a case",
    )
    _masks: StudyMasks | None = PrivateAttr(default=None)

    @property
    def masks(self) -> StudyMasks | None:
        """The masks behind the numbers (``None`` for an analysis read back from JSON)."""
        return self._masks


class Finding(str, Enum):
    """What a measurement group of the SR is about, one per side; all but the band are SEG segments too."""

    femoral_head = "femoral head"
    edema = "bone marrow edema"
    acetabular_edema = "acetabular edema"
    effusion = "joint effusion"
    subchondral_band = "subchondral band"


#: Colours of each finding, shared by the PNG overlays and the SEG's recommended display colour.
DISPLAY_COLOURS: dict[Finding, str] = {
    Finding.femoral_head: "#00d0ff",
    Finding.edema: "#ff2020",
    Finding.acetabular_edema: "#ff40ff",
    Finding.effusion: "#2050ff",
    Finding.subchondral_band: "#40ff40",
}


#: The order of the sides in the SEG, the SR and the overlays: right first, as a coronal image is read.
SIDE_ORDER = (Side.right, Side.left)


def masks_of(analysis: MriAnalysis, masks: StudyMasks | None) -> StudyMasks:
    """``masks`` when given, else those ``analysis`` kept; an error for an analysis read back from JSON."""
    if masks is not None:
        return masks
    if analysis.masks is None:
        raise ImagingError("the analysis carries no masks (read back from JSON?): pass study_masks(volumes, analysis)")
    return analysis.masks


def finding_masks(analysis: MriAnalysis, masks: StudyMasks | None = None) -> list[tuple[Side, Finding, np.ndarray]]:
    """The masks of what the analysis reports, in segment order: per side (right, left) the femoral
    head, then bone marrow edema, acetabular edema and joint effusion when reported present.

    A finding below its reporting limit (``hipdx.imaging.analyze.EDEMA_MIN_ML`` ...) may still
    have a few voxels; it is reported absent, so it is neither drawn nor segmented. The SEG,
    the overlays and the SR's references all follow this one list.

    Parameters
    ----------
    analysis
        ``analyze_study(volumes)``: which findings are present.
    masks
        ``study_masks(volumes, analysis)``; by default those ``analysis`` kept.

    Raises
    ------
    ImagingError
        The analysis has no masks (read back from JSON) and none are given.
    """
    masks = masks_of(analysis, masks)
    out = []
    for side in SIDE_ORDER:
        reported = getattr(analysis.sides, side.value)
        head = masks.heads.get(side)
        found = [
            (Finding.femoral_head, head.head_mask if head is not None else None),
            (Finding.edema, masks.edema_by_side.get(side)
             if reported.edema.extent not in (EdemaExtent.none, EdemaExtent.unknown) else None),
            (Finding.acetabular_edema, masks.acetabular_edema_by_side.get(side)
             if reported.acetabular_edema.present is Presence.present else None),
            (Finding.effusion, masks.effusion_by_side.get(side) if reported.effusion.present is Presence.present else None),
        ]
        out += [(side, finding, mask) for finding, mask in found if mask is not None and mask.any()]
    return out
