"""Enhanced (multi-frame) MR images: one file holds a whole series, described in functional groups.

Newer scanners and archives store a series as one Enhanced MR Image (or a Legacy Converted
Enhanced MR Image) instead of one file per slice. The geometry of each frame is in the Per-frame
Functional Groups Sequence, or in the Shared Functional Groups Sequence when every frame has the
same (DICOM PS3.3 C.7.6.16): Plane Position (ImagePositionPatient), Plane Orientation
(ImageOrientationPatient), Pixel Measures (PixelSpacing) and Pixel Value Transformation
(RescaleSlope, RescaleIntercept). The acquisition parameters that tell T1 from STIR are in the
MR functional groups (MR Timing and Related Parameters: RepetitionTime; MR Echo:
EffectiveEchoTime; MR Modifier: InversionRecovery, InversionTimes) or, in legacy converted
images, in the Unassigned Converted Attributes sequences; fat suppression is the MR Image
module's SpectrallySelectedSuppression.

Pure functions on a pydicom Dataset; :mod:`hipdx.imaging.io` makes each frame a slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom

#: Keywords :func:`hipdx.imaging.io.classify` and ``describe_acquisition`` read, as in a single-frame image.
CLASSIC_KEYWORDS = ("SeriesDescription", "ProtocolName", "ScanningSequence", "SequenceVariant", "ScanOptions",
                    "InversionTime", "RepetitionTime", "EchoTime", "ContrastBolusAgent")


@dataclass(frozen=True)
class Frame:
    """Geometry and rescaling of one frame (index from 0, in file order)."""

    index: int
    position: np.ndarray
    orientation: np.ndarray
    spacing: tuple[float, float]  # PixelSpacing (row, column) in mm, rounded to 0.1 um
    slope: float
    intercept: float


def _item(ds: pydicom.Dataset, sequence: str) -> pydicom.Dataset | None:
    seq = ds.get(sequence)
    return seq[0] if seq else None


def _group(per_frame: pydicom.Dataset | None, shared: pydicom.Dataset | None, macro: str) -> pydicom.Dataset | None:
    """The item of functional group ``macro`` for one frame: its own, else the shared one."""
    for groups in (per_frame, shared):
        found = _item(groups, macro) if groups is not None else None
        if found is not None:
            return found
    return None


def _value(item: pydicom.Dataset | None, keyword: str, default: float) -> float:
    value = item.get(keyword) if item is not None else None
    return default if value is None or value == "" else float(value)


def frames_of(ds: pydicom.Dataset) -> list[Frame]:
    """Each frame's position, orientation, pixel spacing and rescaling.

    The values are as written: :mod:`hipdx.imaging.validate` checks them (``hipdx.imaging.io``).

    Raises
    ------
    ValueError
        A frame has no position, orientation or pixel spacing, or the number of per-frame
        items is not NumberOfFrames (the message names what is missing).
    """
    count = int(ds.get("NumberOfFrames") or 1)
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != count:
        raise ValueError(f"{len(per_frame)} per-frame functional groups for {count} frames")
    out = []
    for index, groups in enumerate(per_frame):
        where = f"frame {index + 1}"
        position = _group(groups, shared, "PlanePositionSequence")
        orientation = _group(groups, shared, "PlaneOrientationSequence")
        measures = _group(groups, shared, "PixelMeasuresSequence")
        if position is None or "ImagePositionPatient" not in position:
            raise ValueError(f"{where} has no ImagePositionPatient (Plane Position functional group)")
        if orientation is None or "ImageOrientationPatient" not in orientation:
            raise ValueError(f"{where} has no ImageOrientationPatient (Plane Orientation functional group)")
        if measures is None or "PixelSpacing" not in measures:
            raise ValueError(f"{where} has no PixelSpacing (Pixel Measures functional group)")
        pos = np.asarray([float(v) for v in position.ImagePositionPatient], float)
        ori = np.asarray([float(v) for v in orientation.ImageOrientationPatient], float)
        spacing = tuple(round(float(v), 4) for v in measures.PixelSpacing)
        if pos.shape != (3,) or ori.shape != (6,) or len(spacing) != 2:
            raise ValueError(f"{where}: wrong number of position, orientation or spacing values")
        rescale = _group(groups, shared, "PixelValueTransformationSequence")
        # An absent or empty value is the default; any other (0 included) is kept for the reader's checks.
        slope = _value(rescale, "RescaleSlope", 1.0)
        intercept = _value(rescale, "RescaleIntercept", 0.0)
        out.append(Frame(index, pos, ori, (spacing[0], spacing[1]), slope, intercept))
    return out


def _collect(item: pydicom.Dataset, found: dict[str, Any]) -> None:
    """Acquisition values anywhere in a functional-group item (first item of each nested sequence)."""
    for elem in item:
        keyword = elem.keyword
        if elem.VR == "SQ":
            if elem.value:
                _collect(elem.value[0], found)
            continue
        value = elem.value
        if value is None or value == "":
            continue
        if keyword == "EffectiveEchoTime":
            found.setdefault("EchoTime", value)
        elif keyword == "InversionTimes":
            found.setdefault("InversionTime", value[0] if isinstance(value, (list, tuple)) or
                             type(value).__name__ == "MultiValue" else value)
        elif keyword == "InversionRecovery" and str(value).upper() == "YES":
            found.setdefault("ScanningSequence", "IR")
        elif keyword in CLASSIC_KEYWORDS:
            found.setdefault(keyword, value)


def classic_headers(ds: pydicom.Dataset) -> dict[str, Any]:
    """The acquisition headers of a multi-frame image under their single-frame keywords.

    Top-level values first, then those of the shared functional groups, then those of the first
    frame's. SpectrallySelectedSuppression FAT (or WATER excitation) becomes ScanOptions FS; the
    first contrast agent of ContrastBolusAgentSequence becomes ContrastBolusAgent.
    """
    found: dict[str, Any] = {}
    for keyword in CLASSIC_KEYWORDS:
        value = ds.get(keyword)
        if value not in (None, ""):
            found[keyword] = value
    for sequence in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        item = _item(ds, sequence)
        if item is not None:
            _collect(item, found)
    suppression = str(ds.get("SpectrallySelectedSuppression") or "").upper()
    if ("FAT" in suppression or "WATER" in suppression) and "ScanOptions" not in found:
        found["ScanOptions"] = "FS"
    agents = ds.get("ContrastBolusAgentSequence")
    if agents and "ContrastBolusAgent" not in found:
        found["ContrastBolusAgent"] = str(agents[0].get("CodeMeaning") or "contrast agent")
    return found
