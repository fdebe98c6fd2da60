"""Subchondral low-signal band under the weight-bearing dome of a femoral head.

Radial profiles leave the head centre every 3 degrees over the dome (up to 60 degrees either
side of the superior direction) on the coronal planes through the head. Along each profile,
marrow is compared with the median signal of the central head; samples below
``LOW_FRACTION`` of it are low. The band thickness on a profile is the depth of the low run
that reaches the marrow/cortex boundary (the sphere radius), measured inward; the cortex
itself lies outside the sphere and is not counted. The band is the largest contiguous run of
profiles with a low run of at least ``MIN_RAY_THICKNESS_MM``; its length is that run's arc
length and its thickness the 75th percentile of its profiles, both the maximum over slices
(thick slices under-sample the dome; ``research/imaging.md`` 4 and 7).

Cut-offs: a band of at least 4 mm predicts an irreversible lesion (Vande Berg et al.,
Radiology 1999); within ``BAND_INDETERMINATE_MM`` of it the band is reported as indeterminate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hipdx.imaging.heads import FemoralHead
from hipdx.imaging.volume import Volume
from hipdx.reasoning.encode import BAND_CUTOFF_MM, BAND_INDETERMINATE_MM

#: Low signal: below this fraction of the median central-head marrow signal (imaging.md 4).
LOW_FRACTION = 0.55
#: Dome: profiles up to this angle from the superior direction (degrees), every ANGLE_STEP_DEG.
DOME_HALF_ANGLE_DEG = 60.0
ANGLE_STEP_DEG = 3.0
#: Sampling step along a profile (mm).
STEP_MM = 0.25
#: A profile counts as banded from this low-run depth (mm); a band needs MIN_BAND_PROFILES of them.
MIN_RAY_THICKNESS_MM = 0.75
MIN_BAND_PROFILES = 3
#: Slices within this fraction of the radius from the centre are measured.
SLICE_REACH_FRACTION = 0.6


@dataclass(frozen=True)
class Band:
    """A subchondral band measurement.

    ``present`` is False when no band was found; thickness and length are then None.
    ``indeterminate`` is True when the thickness is within ``BAND_INDETERMINATE_MM`` of the
    ``BAND_CUTOFF_MM`` cut-off.
    """

    present: bool
    thickness_mm: float | None
    length_mm: float | None
    indeterminate: bool


def _smoothed(volume: Volume) -> np.ndarray:
    return ndimage.uniform_filter(volume.array.astype(np.float32), size=(1, 3, 3))


def measure_subchondral_band(t1_or_stir: Volume, head: FemoralHead) -> Band:
    """Measure the subchondral low-signal band of one femoral head.

    Parameters
    ----------
    t1_or_stir
        T1-weighted or fluid-sensitive volume; coronal slices are assumed.
    head
        The femoral head (centre in patient LPS mm, radius in mm), from any volume of the study.

    Returns
    -------
    Band

    Examples
    --------
    >>> band = measure_subchondral_band(t1, heads[0])    # doctest: +SKIP
    >>> band.present, band.thickness_mm                 # doctest: +SKIP
    (True, 4.2)
    """
    vol = t1_or_stir
    img = _smoothed(vol)
    radius = head.radius_mm
    row_dir = vol.affine[:3, 1] / np.linalg.norm(vol.affine[:3, 1])
    col_dir = vol.affine[:3, 0] / np.linalg.norm(vol.affine[:3, 0])
    normal = vol.affine[:3, 2] / np.linalg.norm(vol.affine[:3, 2])
    superior = -row_dir if row_dir[2] < 0 else row_dir  # rows run inferiorly on coronal images
    dz = vol.spacing_mm[0]
    k_centre = float(vol.to_index(head.center_mm)[0])
    ks = np.arange(np.ceil(k_centre - SLICE_REACH_FRACTION * radius / dz), np.floor(k_centre + SLICE_REACH_FRACTION * radius / dz) + 1)
    ks = ks[(ks >= 0) & (ks <= vol.array.shape[0] - 1)]
    angles = np.deg2rad(np.arange(-DOME_HALF_ANGLE_DEG, DOME_HALF_ANGLE_DEG + 0.1, ANGLE_STEP_DEG))
    best_thickness, best_length = 0.0, 0.0
    for k in ks:
        offset = (k - k_centre) * dz
        if abs(offset) >= radius:
            continue
        r_slice = float(np.sqrt(radius**2 - offset**2))
        centre = head.center_mm + offset * normal
        # Marrow reference: the central part of the head on this slice.
        core = np.linspace(0.0, 0.5 * r_slice, 12)
        dirs = np.cos(angles)[:, None] * superior + np.sin(angles)[:, None] * col_dir
        core_pts = centre + core[None, :, None] * dirs[:, None, :]
        marrow = float(np.median(ndimage.map_coordinates(img, vol.to_index(core_pts.reshape(-1, 3)).T, order=1)))
        if marrow <= 0:
            continue
        radii = np.arange(0.3 * r_slice, r_slice + 0.001, STEP_MM)
        pts = centre + radii[None, :, None] * dirs[:, None, :]
        profiles = ndimage.map_coordinates(img, vol.to_index(pts.reshape(-1, 3)).T, order=1).reshape(len(angles), -1)
        low = profiles < LOW_FRACTION * marrow
        # Depth of the low run that reaches the sphere surface, measured inward.
        not_low_from_surface = np.cumprod(low[:, ::-1], axis=1)
        depth_in_plane = not_low_from_surface.sum(axis=1) * STEP_MM
        # Off-centre slices cut the shell obliquely: convert to depth along the sphere radius.
        depth = radius - np.sqrt(np.clip(r_slice - depth_in_plane, 0, None) ** 2 + offset**2)
        banded = depth >= MIN_RAY_THICKNESS_MM
        labels, n = ndimage.label(banded)
        if n == 0:
            continue
        sizes = np.bincount(labels)[1:]
        run = int(np.argmax(sizes)) + 1
        if sizes[run - 1] < MIN_BAND_PROFILES:
            continue
        in_run = labels == run
        thickness = float(np.percentile(depth[in_run], 75))
        length = float((in_run.sum() - 1) * np.deg2rad(ANGLE_STEP_DEG) * r_slice) if in_run.sum() > 1 else 0.0
        best_thickness = max(best_thickness, thickness)
        best_length = max(best_length, length)
    if best_thickness <= 0:
        return Band(False, None, None, False)
    thickness = round(best_thickness, 1)
    indeterminate = abs(thickness - BAND_CUTOFF_MM) < BAND_INDETERMINATE_MM
    return Band(True, thickness, round(best_length, 1) or None, indeterminate)
