"""Bone marrow edema on a fluid-sensitive series: a threshold relative to normal marrow.

The semi-automatic method of the knee and sacroiliac literature (``research/imaging.md`` 1.2):
edema is the set of voxels inside a bone mask whose STIR signal exceeds that of normal marrow
by a margin, ``threshold = Q3 + k * IQR`` of a reference region of normal marrow (Hepburn et
al., volume of hyperintense inflammation, VHI; Nielsen et al., BMC Musculoskelet Disord
2014;15:447). Connected components smaller than a minimum volume are dropped (noise, vessels).

With a drawn normal-marrow region, k follows Hepburn's VHI rule (code of the paper,
``c-hepburn/Bone_MRI`` ``segment.py``): k starts at 1.5 and moves in steps of 0.05 until the
threshold lies within half an IQR below the brightest normal-marrow voxel, so a skewed or
long-tailed reference gets a higher k and a tight one a lower k. The paper's second ("upper")
threshold, the brightest normal-marrow voxel, only grades voxels above it as intense; it
excludes nothing, and is not used here. Its residue rule (in-plane 8-connected regions under
four pixels removed, slice by slice) is applied, then an in-plane 3 x 3 majority filter (a
voxel is edema when most of its in-plane neighbourhood is above the threshold: isolated noise
pixels and one-pixel vessels drop out, one-pixel holes close).

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
from hipdx.imaging.parameters import param
from hipdx.imaging.volume import Volume

#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "edema").
THRESHOLD_IQR_FACTOR = param("edema.threshold_iqr_factor")
VHI_START_FACTOR = param("edema.vhi_start_factor")
VHI_FACTOR_STEP = param("edema.vhi_factor_step")
VHI_MAX_GAP_IQR = param("edema.vhi_max_gap_iqr")
VHI_MIN_REGION_PIXELS = param("edema.vhi_min_region_pixels")
MIN_COMPONENT_ML = param("edema.min_component_ml")
LESION_LEVEL_PERCENTILE = param("edema.lesion_level_percentile")
PEAK_SHARE = param("edema.peak_share")
PEAK_MIN_POSITION = param("edema.peak_min_position")
PEAK_DIP = param("edema.peak_dip")
MIN_MASK_VOXELS = param("edema.min_mask_voxels")


@dataclass(frozen=True, eq=False)
class ReferenceMarrow:
    """Signal statistics of normal marrow and where they came from."""

    median: float
    q1: float
    q3: float
    voxels: int
    source: str  # "given region" or "estimated inside the bone mask"
    #: The brightest normal-marrow voxel: known for a drawn region, None for an estimate.
    maximum: float | None = None

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
    iqr_factor
        k used in ``Q3 + k * IQR`` (Hepburn's VHI rule with a drawn reference region).
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

    The darkest clear mode of the signal (a peak at least ``PEAK_SHARE`` of the highest) is taken
    and at least ``PEAK_MIN_POSITION`` of its signal, separated from it by a dip) as the typical
    normal marrow, and its spread from the half
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
    # Normal marrow is the darkest clear peak on a fluid-sensitive image: when edema fills most
    # of the mask it forms a second, brighter (and possibly higher) peak.
    top = centres[int(counts.argmax())]
    is_peak = ((counts >= np.roll(counts, 1)) & (counts >= np.roll(counts, -1)) & (counts >= PEAK_SHARE * counts.max())
               & (centres >= PEAK_MIN_POSITION * top))
    is_peak[[0, -1]] = False
    peak = int(counts.argmax())
    for candidate in np.flatnonzero(is_peak):
        if candidate < peak and counts[candidate:peak].min() < PEAK_DIP * counts[candidate]:
            peak = int(candidate)  # a distinct darker peak, separated by a clear dip
            break
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
    return ReferenceMarrow(float(median), float(q1), float(q3), int(values.size), "given region", float(values.max()))


def vhi_iqr_factor(reference: ReferenceMarrow) -> float | None:
    """k of Hepburn's VHI rule: the threshold ``Q3 + k * IQR`` just under the brightest normal voxel.

    k starts at ``VHI_START_FACTOR`` and rises in ``VHI_FACTOR_STEP`` steps while
    ``max - threshold >= VHI_MAX_GAP_IQR * IQR``, then falls while ``max - threshold <= 0``, as in
    ``Segment.compute_thresholds`` of the VHI code (Hepburn et al., ``research/imaging.md`` 1.2).
    None when the reference has no maximum (an estimate) or no spread.

    Examples
    --------
    >>> ref = ReferenceMarrow(median=100.0, q1=90.0, q3=110.0, voxels=500, source="given region", maximum=170.0)
    >>> vhi_iqr_factor(ref)   # 110 + 2.55 * 20 = 161: the first k with 170 - threshold < 10
    2.55
    """
    if reference.maximum is None or not reference.iqr > 0:
        return None
    gap = (reference.maximum - reference.q3) / reference.iqr  # in IQR units
    # The smallest step count with gap - k < VHI_MAX_GAP_IQR, then back while the threshold is not below the max.
    steps = max(0, int(np.floor((gap - VHI_MAX_GAP_IQR - VHI_START_FACTOR) / VHI_FACTOR_STEP)) + 1)
    while steps > 0 and gap - (VHI_START_FACTOR + (steps - 1) * VHI_FACTOR_STEP) < VHI_MAX_GAP_IQR:
        steps -= 1  # floating-point edge of the closed form
    while gap - (VHI_START_FACTOR + steps * VHI_FACTOR_STEP) >= VHI_MAX_GAP_IQR:
        steps += 1
    while gap - (VHI_START_FACTOR + steps * VHI_FACTOR_STEP) <= 1e-9 * max(gap, 1.0):
        steps -= 1
    return round(VHI_START_FACTOR + steps * VHI_FACTOR_STEP, 10)


def _components(mask: np.ndarray, min_ml: float, voxel_ml: float) -> np.ndarray:
    """The mask without its connected components smaller than ``min_ml``."""
    labels, n = ndimage.label(mask)
    if not n:
        return mask
    sizes = np.bincount(labels.ravel())[1:] * voxel_ml
    return np.concatenate([[False], sizes >= min_ml])[labels]


#: In-plane 8-connectivity, no connection across slices (axis 0 is the slice axis).
_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = True


def _without_residues(mask: np.ndarray) -> np.ndarray:
    """VHI residue rule: in-plane 8-connected regions under ``VHI_MIN_REGION_PIXELS`` removed."""
    labels, n = ndimage.label(mask, _IN_PLANE)
    if not n:
        return mask
    keep = np.bincount(labels.ravel()) >= VHI_MIN_REGION_PIXELS
    keep[0] = False
    return keep[labels]


def _in_plane_majority(mask: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """Voxels of the bone where most (5 or more) of the 3 x 3 in-plane neighbourhood is in ``mask``."""
    share = ndimage.uniform_filter(mask.astype(np.float32), size=(1, 3, 3), mode="constant")
    return bone & (share > 0.5)


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding every voxel of a non-empty mask."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _delineate(image: np.ndarray, bone: np.ndarray, ref: ReferenceMarrow, threshold: float, min_component_ml: float,
               voxel_ml: float, half_contrast: bool) -> np.ndarray:
    """The edema mask inside ``bone``: thresholded, cleaned, optionally grown to half contrast."""
    above = bone & (image > threshold)
    if not half_contrast:
        above = _in_plane_majority(_without_residues(above), bone)
    mask = _components(above, min_component_ml, voxel_ml)
    if half_contrast and mask.any():
        lesion = float(np.percentile(image[mask], LESION_LEVEL_PERCENTILE))
        half = ref.median + 0.5 * (lesion - ref.median)
        labels, _ = ndimage.label(bone & (image > half))
        seeded = np.unique(labels[mask & (image > max(threshold, half))])
        keep = np.zeros(labels.max() + 1, bool)
        keep[seeded[seeded > 0]] = True
        mask = _components(keep[labels], min_component_ml, voxel_ml)
    return mask


def segment_edema(
    stir: Volume,
    bone_mask: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    reference_marrow: ReferenceMarrow | None = None,
    iqr_factor: float | None = None,
    min_component_ml: float = MIN_COMPONENT_ML,
    half_contrast: bool = False,
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
        k in ``threshold = Q3 + k * IQR`` of the reference marrow signal. Not given: Hepburn's
        VHI rule when the reference knows its brightest voxel (a drawn region, see
        :func:`vhi_iqr_factor`), otherwise ``THRESHOLD_IQR_FACTOR``.
    min_component_ml
        Connected edema components smaller than this (mL) are removed.
    half_contrast
        Delineate the detected lesions at half the contrast between normal marrow and the
        lesion (its ``LESION_LEVEL_PERCENTILE`` signal): a voxel counts when at least half of
        it is edema, so partial-volume voxels at the border are neither all counted (as with
        the detection threshold alone, which then overestimates on high-SNR images) nor all
        dropped. Detection stays ``Q3 + k * IQR``; only components holding a detected voxel
        are kept (hysteresis). Without it the thresholded voxels are cleaned by the VHI residue
        rule and an in-plane 3 x 3 majority filter (see the module docstring).

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
    if not np.isfinite(image[bone]).all():
        raise ImagingError("the image has NaN or infinite values inside the bone mask: no threshold can be set")
    ref = _reference(stir, bone, reference, reference_marrow)
    if iqr_factor is None:
        vhi = vhi_iqr_factor(ref)
        iqr_factor = THRESHOLD_IQR_FACTOR if vhi is None else vhi
    threshold = ref.q3 + iqr_factor * max(ref.iqr, 1e-6 * max(abs(ref.median), 1.0))
    # Work in the bone mask's bounding box: nothing outside it can be edema.
    box = _bounding_box(bone)
    found = _delineate(image[box], bone[box], ref, threshold, min_component_ml, stir.voxel_volume_ml, half_contrast)
    mask = np.zeros(bone.shape, bool)
    mask[box] = found
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


def _reference(stir: Volume, bone: np.ndarray, reference: np.ndarray | None,
               reference_marrow: ReferenceMarrow | None) -> ReferenceMarrow:
    """Normal marrow: as given, else from the drawn reference region, else estimated inside the bone."""
    if reference_marrow is not None:
        return reference_marrow
    if reference is not None:
        ref_mask = _check_mask(stir, reference, "the reference region")
        return reference_from_region(stir.array[ref_mask])
    return estimate_reference(stir.array[bone])
