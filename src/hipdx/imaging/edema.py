"""Bone marrow edema on a fluid-sensitive series: a threshold relative to normal marrow.

The semi-automatic method of the knee and sacroiliac literature (``research/imaging.md`` 1.2):
edema is the set of voxels inside a bone mask whose STIR signal exceeds that of normal marrow
by a margin, ``threshold = Q3 + k * IQR`` of a reference region of normal marrow (Hepburn et
al., volume of hyperintense inflammation; Nielsen et al., BMC Musculoskelet Disord 2014;15:447).
Connected components smaller than a minimum volume are dropped (noise, vessels).

When no reference region is given, normal marrow is estimated inside the bone mask from the
lower side of the intensity histogram: the mode of the marrow signal and the spread of the
values below it, mirrored. This stays right as long as normal marrow is the most common
signal in the mask, which holds even when edema fills a large part of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from hipdx.errors import ImagingError
from hipdx.imaging.volume import Volume

#: k in Q3 + k * IQR of the reference marrow (k = 2: best mean Dice on the SIJ data, imaging.md 1.6).
THRESHOLD_IQR_FACTOR = 2.0
#: Connected components smaller than this are dropped (mL); about 5 in-plane voxels of 0.6 mm x 3.3 mm.
MIN_COMPONENT_ML = 0.01
#: Bone masks smaller than this many voxels are refused: no reference can be estimated.
MIN_MASK_VOXELS = 50


@dataclass(frozen=True, eq=False)
class ReferenceMarrow:
    """Signal statistics of normal marrow and where they came from."""

    median: float
    q1: float
    q3: float
    voxels: int
    source: str  # "given region" or "estimated inside the bone mask"

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


@dataclass(frozen=True, eq=False)
class EdemaResult:
    """Edema segmented inside a bone mask.

    Attributes
    ----------
    mask
        Boolean edema mask on the grid of the fluid-sensitive volume.
    volume_ml
        Edema volume in millilitres.
    signal_ratio
        Mean edema signal divided by the median reference marrow signal (None when no edema).
    threshold
        Signal threshold used (image units).
    reference
        The reference marrow statistics.
    bone_volume_ml
        Volume of the searched bone mask, for fractions.
    """

    mask: np.ndarray = field(repr=False)
    volume_ml: float
    signal_ratio: float | None
    threshold: float
    reference: ReferenceMarrow
    bone_volume_ml: float
    iqr_factor: float = THRESHOLD_IQR_FACTOR

    @property
    def fraction(self) -> float:
        """Edema volume as a share of the searched bone volume (0-1)."""
        return self.volume_ml / self.bone_volume_ml if self.bone_volume_ml > 0 else 0.0


def _check_mask(stir: Volume, mask: np.ndarray, what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != stir.array.shape:
        raise ImagingError(
            f"{what} has shape {tuple(mask.shape)} but the image has shape {tuple(stir.array.shape)}; "
            "the mask must be drawn on the same grid as the image"
        )
    return mask > 0


def estimate_reference(values: np.ndarray) -> ReferenceMarrow:
    """Normal-marrow statistics from the signal inside a bone mask, robust to a large edema share.

    The mode of the signal is taken as the typical normal marrow, and its spread from the half
    width at half maximum of the histogram peak on its lower side (edema only adds values above
    the mode), assuming a normal distribution to give Q1 and Q3.
    """
    values = np.asarray(values, dtype=float)
    if values.size < MIN_MASK_VOXELS:
        raise ImagingError(f"the bone mask holds {values.size} voxels; at least {MIN_MASK_VOXELS} are needed")
    lo, hi = np.percentile(values, [1, 99])
    if hi <= lo:
        return ReferenceMarrow(float(lo), float(lo), float(lo), int(values.size), "estimated inside the bone mask")
    counts, edges = np.histogram(values, bins=128, range=(lo, hi))
    counts = ndimage.gaussian_filter1d(counts.astype(float), 2.0)
    centres = 0.5 * (edges[:-1] + edges[1:])
    peak = int(counts.argmax())
    mode = float(centres[peak])
    # Half width at half maximum on the lower side (edema only adds values above the mode;
    # dark cortex and ligaments add a long lower tail the half-maximum point ignores).
    lower = np.nonzero(counts[: peak + 1] < 0.5 * counts[peak])[0]
    hwhm = mode - float(centres[lower[-1]]) if lower.size else mode - float(np.percentile(values, 25))
    sigma = max(hwhm, edges[1] - edges[0]) / 1.1774
    half_iqr = 0.6745 * sigma
    return ReferenceMarrow(mode, mode - half_iqr, mode + half_iqr, int(values.size), "estimated inside the bone mask")


def reference_from_region(values: np.ndarray) -> ReferenceMarrow:
    """Normal-marrow statistics from a region drawn on normal marrow."""
    values = np.asarray(values, dtype=float)
    if values.size < 10:
        raise ImagingError(f"the reference region holds {values.size} voxels; at least 10 are needed")
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return ReferenceMarrow(float(median), float(q1), float(q3), int(values.size), "given region")


def segment_edema(
    stir: Volume,
    bone_mask: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    reference_marrow: ReferenceMarrow | None = None,
    iqr_factor: float = THRESHOLD_IQR_FACTOR,
    min_component_ml: float = MIN_COMPONENT_ML,
) -> EdemaResult:
    """Segment bone marrow edema inside a bone mask on a fluid-sensitive (STIR) volume.

    Parameters
    ----------
    stir
        Fluid-sensitive volume (STIR, fat-saturated T2 or PD).
    bone_mask
        Boolean (or 0/1) mask of the bone to search, same shape as ``stir.array``.
    reference
        Optional mask of normal marrow on the same grid. Without it, normal marrow is
        estimated inside ``bone_mask`` (see :func:`estimate_reference`).
    reference_marrow
        Reference statistics measured elsewhere (e.g. the other hip); used instead of ``reference``.
    iqr_factor
        k in ``threshold = Q3 + k * IQR`` of the reference marrow signal.
    min_component_ml
        Connected edema components smaller than this (mL) are removed.

    Returns
    -------
    EdemaResult

    Raises
    ------
    ImagingError
        If a mask has another shape than the image, or the bone mask or reference is too small.

    Examples
    --------
    >>> result = segment_edema(stir, bone_mask)   # doctest: +SKIP
    >>> round(result.volume_ml, 1)                # doctest: +SKIP
    12.4
    """
    bone = _check_mask(stir, bone_mask, "the bone mask")
    if bone.sum() < MIN_MASK_VOXELS:
        raise ImagingError(f"the bone mask holds {int(bone.sum())} voxels; at least {MIN_MASK_VOXELS} are needed")
    image = stir.array
    if reference_marrow is not None:
        ref = reference_marrow
    elif reference is not None:
        ref_mask = _check_mask(stir, reference, "the reference region")
        ref = reference_from_region(image[ref_mask])
    else:
        ref = estimate_reference(image[bone])
    threshold = ref.q3 + iqr_factor * max(ref.iqr, 1e-6 * max(abs(ref.median), 1.0))
    mask = bone & (image > threshold)
    labels, n = ndimage.label(mask)
    if n:
        sizes = np.bincount(labels.ravel())[1:] * stir.voxel_volume_ml
        keep = np.concatenate([[False], sizes >= min_component_ml])
        mask = keep[labels]
    volume_ml = float(mask.sum() * stir.voxel_volume_ml)
    ratio = float(image[mask].mean() / ref.median) if mask.any() and ref.median > 0 else None
    return EdemaResult(
        mask=mask,
        volume_ml=volume_ml,
        signal_ratio=ratio,
        threshold=float(threshold),
        reference=ref,
        bone_volume_ml=float(bone.sum() * stir.voxel_volume_ml),
        iqr_factor=iqr_factor,
    )
