"""The femoral head sphere fitted at full resolution, and the roof check.

On every slice the sphere cuts, rays from the centre find the steepest fall of T1 signal into
the dark cortex (:func:`edge_points`), and a robust least-squares sphere is fitted to these
marrow-edge points, a few rounds until it settles (:func:`fit_sphere`). :func:`roof_share`
measures how much of the dome has a dark roof above it (joint space, acetabulum).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hipdx.case.model import Side
from hipdx.imaging.femur import HOUGH_RADII_MM
from hipdx.imaging.intensity import intensity_bounds
from hipdx.imaging.parameters import param
from hipdx.imaging.volume import Volume


#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "head_fit").
FIT_RAYS = param("head_fit.fit_rays")


FIT_WINDOW_MM = param("head_fit.fit_window_mm")


FIT_STEP_MM = param("head_fit.fit_step_mm")


FIT_SMOOTH_MM = param("head_fit.fit_smooth_mm")


FIT_MIN_FALL_PER_MM = param("head_fit.fit_min_fall_per_mm")


FIT_DARK = param("head_fit.fit_dark")


FIT_BEFORE_DARK_MM = param("head_fit.fit_before_dark_mm")


FIT_MIN_POINTS = param("head_fit.fit_min_points")


FIT_MAX_SHIFT_MM = param("head_fit.fit_max_shift_mm")


FIT_ROUNDS = param("head_fit.fit_rounds")


FIT_SLICE_REACH = param("head_fit.fit_slice_reach")
FIT_MIN_INLIER_MM = param("head_fit.fit_min_inlier_mm")
FIT_INLIER_MADS = param("head_fit.fit_inlier_mads")
FIT_SETTLED_MM = param("head_fit.fit_settled_mm")


ROOF_ANGLES_DEG = param("head_fit.roof_angles_deg")


ROOF_PLANES = param("head_fit.roof_planes")


ROOF_REACH = param("head_fit.roof_reach")


ROOF_STEP_MM = param("head_fit.roof_step_mm")


def roof_share(
    t1: Volume, side: Side, center_mm: np.ndarray, radius_mm: float, intensity_range: tuple[float, float] | None = None
) -> float:
    """Share of the rays medially above a head's centre that meet dark T1 signal (cortex, joint, acetabulum).

    See ``ROOF_ANGLES_DEG``: 1.0 on every real femoral head here (41, with the head and neck
    darkened to 0.4-0.7 or not), 0.04-0.67 on the greater trochanter circles the whole-image search
    took for darkened heads (11). Rays leaving the image are left out (a head at the edge of a thin
    coronal slab); nan when every ray does.
    """
    lo, hi = intensity_range if intensity_range is not None else intensity_bounds(t1.array)
    medial = 1.0 if side is Side.right else -1.0  # +x (LPS) is patient left
    angles = np.deg2rad(np.asarray(ROOF_ANGLES_DEG))
    directions = np.stack([medial * np.cos(angles), np.zeros_like(angles), np.sin(angles)], axis=1)
    normal = t1.affine[:3, 2] / np.linalg.norm(t1.affine[:3, 2])
    reach = np.arange(ROOF_REACH[0] * radius_mm, ROOF_REACH[1] * radius_mm, ROOF_STEP_MM)
    planes = np.asarray(ROOF_PLANES) * radius_mm
    # (plane, ray, sample, 3) patient points.
    points = (
        np.asarray(center_mm, float)[None, None, None, :]
        + planes[:, None, None, None] * normal
        + reach[None, None, :, None] * directions[None, :, None, :]
    )
    index = t1.to_index(points.reshape(-1, 3))
    values = ndimage.map_coordinates(t1.array, index.T, order=1, mode="constant", cval=np.nan)
    darkest = ((values.reshape(points.shape[:3]) - lo) / (hi - lo)).min(axis=2)  # nan: the ray leaves the image
    inside = np.isfinite(darkest)
    if not inside.any():
        return float("nan")
    return float(np.mean(darkest[inside] < FIT_DARK))


def edge_points(
    t1: Volume, lo: float, hi: float, center: np.ndarray, radius_mm: float, min_fall: float = FIT_MIN_FALL_PER_MM
) -> np.ndarray:
    """Marrow edge points (LPS mm) of a femoral head: the steepest fall of T1 signal along in-plane rays.

    On every slice whose cut through the sphere (centre ``center``, radius ``radius_mm``) has a
    radius of at least 0.6 x the sphere's, ``FIT_RAYS`` rays leave the in-plane centre; each is
    sampled every ``FIT_STEP_MM`` within ``FIT_WINDOW_MM`` of the expected circle, and its edge is
    where the signal falls fastest outwards (fatty marrow to cortex), if it falls by at least
    ``min_fall`` (``FIT_MIN_FALL_PER_MM``; rays into the neck, where marrow continues, give no point).
    """
    dz, dy, dx = t1.spacing_mm
    kc, jc, ic = t1.to_index(center)
    ks = np.arange(t1.array.shape[0])
    d = (ks - kc) * dz
    use = np.abs(d) < FIT_SLICE_REACH * radius_mm
    ks, rho = ks[use], np.sqrt(radius_mm**2 - d[use] ** 2)
    if ks.size == 0:
        return np.empty((0, 3))
    theta = np.linspace(0.0, 2 * np.pi, FIT_RAYS, endpoint=False)
    t = np.arange(FIT_WINDOW_MM[0], FIT_WINDOW_MM[1] + 1e-9, FIT_STEP_MM)
    reach = rho[:, None, None] + t[None, None, :]  # distance from the in-plane centre, mm
    j = jc + reach * np.sin(theta)[None, :, None] / dy  # (slice, ray, sample)
    i = ic + reach * np.cos(theta)[None, :, None] / dx
    k = np.broadcast_to(ks[:, None, None].astype(float), j.shape)
    values = ndimage.map_coordinates(t1.array, np.stack([k.ravel(), j.ravel(), i.ravel()]), order=1, mode="nearest")
    profile = ((values - lo) / (hi - lo)).reshape(j.shape)
    profile = ndimage.gaussian_filter1d(profile, FIT_SMOOTH_MM / FIT_STEP_MM, axis=2)
    slope = np.diff(profile, axis=2) / FIT_STEP_MM  # per mm, between samples
    # The edge is the steepest fall into the dark cortex: within FIT_BEFORE_DARK_MM before the first
    # dark sample outwards (a fall from marrow to T1 edema inside the head does not reach the dark).
    dark = profile[..., 1:] < FIT_DARK
    first_dark = np.where(dark.any(axis=2), np.argmax(dark, axis=2), -1)
    n_before = int(round(FIT_BEFORE_DARK_MM / FIT_STEP_MM))
    index = np.arange(slope.shape[2])
    allowed = (index <= first_dark[..., None]) & (index >= first_dark[..., None] - n_before)
    m = np.argmin(np.where(allowed, slope, np.inf), axis=2)
    fall = -np.take_along_axis(slope, m[..., None], axis=2)[..., 0]
    inner = (m > 0) & (m < slope.shape[2] - 1)
    # Sub-sample position of the steepest fall: vertex of the parabola through it and its neighbours.
    mm = np.clip(m, 1, slope.shape[2] - 2)
    s0, s1, s2 = (np.take_along_axis(slope, (mm + o)[..., None], axis=2)[..., 0] for o in (-1, 0, 1))
    curvature = s0 - 2 * s1 + s2
    shift = np.where(np.abs(curvature) > 1e-9, 0.5 * (s0 - s2) / np.where(curvature == 0, 1, curvature), 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    edge = t[0] + (m + 0.5 + shift) * FIT_STEP_MM  # offset from the expected circle, mm
    ok = inner & (first_dark >= 0) & (fall >= min_fall)
    r_edge = rho[:, None] + edge
    kk = np.broadcast_to(ks[:, None], edge.shape)[ok].astype(float)
    jj = (jc + r_edge * np.sin(theta)[None, :] / dy)[ok]
    ii = (ic + r_edge * np.cos(theta)[None, :] / dx)[ok]
    return t1.to_patient(np.stack([kk, jj, ii], axis=1))


def _sphere_through(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points (algebraic fit: |p|^2 = 2 c.p + R^2 - |c|^2)."""
    a = np.c_[2 * points, np.ones(len(points))]
    b = (points**2).sum(axis=1)
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    centre = solution[:3]
    return centre, float(np.sqrt(max(solution[3] + centre @ centre, 0.0)))


def fit_sphere(t1: Volume, lo: float, hi: float, center: np.ndarray, radius_mm: float) -> tuple[np.ndarray, float]:
    """Refine a head found by the coarse search: a sphere fitted to its marrow edge at full resolution.

    Rounds of :func:`edge_points` around the current sphere, each followed by a robust
    least-squares fit (points more than max(1.5 mm, 3 MAD) off the sphere dropped, refitted),
    until the sphere moves less than 0.1 mm (at most ``FIT_ROUNDS``).
    The coarse sphere is kept when there are too few points or the fit moves implausibly far.
    """
    best_centre, best_radius = np.asarray(center, float), float(radius_mm)
    for _ in range(FIT_ROUNDS):
        points = edge_points(t1, lo, hi, best_centre, best_radius)
        if len(points) < FIT_MIN_POINTS:
            break
        centre, radius = _sphere_through(points)
        for _ in range(3):
            residual = np.abs(np.linalg.norm(points - centre, axis=1) - radius)
            limit = max(FIT_MIN_INLIER_MM, FIT_INLIER_MADS * 1.4826 * float(np.median(residual)))  # 1.4826 MAD = SD
            keep = residual <= limit
            if keep.sum() < FIT_MIN_POINTS:
                break
            centre, radius = _sphere_through(points[keep])
        moved = float(np.linalg.norm(centre - np.asarray(center, float)))
        if moved > FIT_MAX_SHIFT_MM or not HOUGH_RADII_MM[0] - 3 <= radius <= HOUGH_RADII_MM[1] + 3:
            break
        step = float(np.linalg.norm(centre - best_centre)) + abs(radius - best_radius)
        best_centre, best_radius = centre, radius
        if step < FIT_SETTLED_MM:
            break
    return best_centre, best_radius
