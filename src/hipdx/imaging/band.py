"""Subchondral low-signal band under the weight-bearing dome of a femoral head.

Radial profiles leave the head centre every 3 degrees (up to 90 degrees either side of the
superior direction) on the coronal planes through the head and reach ``EDGE_SEARCH_MM`` beyond
the radius found (the marrow edge, 2-3 mm inside the true surface). Marrow is a high
percentile of the slice's in-head samples (robust to edema, which is low on T1); samples below
``LOW_FRACTION`` of it are low, below ``DARK_FRACTION`` dark. On each profile the edge is the
outermost marrow -> low crossing before the first long dark run (the plate or the band) within
``PLATE_WINDOW_MM`` of the surface: with T1-dark edema the marrow reference drops, cartilage
beyond the plate is no longer low, and the outermost crossing and dark run would lie beyond the
joint (the acetabular plate). The marrow/cortex boundary is a circle fitted to the edges,
iteratively leaving out profiles whose edge lies more than ``TRIM_MM`` deeper (the banded ones),
so the cortex is never counted and no true surface radius is needed. A profile's band depth is
the fitted boundary minus its edge, along the sphere radius, over the dome (``DOME_HALF_ANGLE_DEG``)
only, and only where the run is dark (edema on T1 is low, not dark; where edema lies between
marrow and band the dark run's start is the edge). The band is the largest contiguous run of
profiles at least ``MIN_RAY_THICKNESS_MM`` deep and ``MIN_BAND_LENGTH_MM`` long; its length is that run's arc length and its
thickness the 75th percentile of its profiles, both the maximum over slices.

Cut-offs: a subchondral T2-hypointense band, especially one 4 mm or thicker, suggests an
irreversible lesion (Vande Berg et al., J Radiol 2011;92(6):557-566, bibliography
``vandeberg2011``); within ``BAND_INDETERMINATE_MM`` of it the band is reported as indeterminate.

Where it holds: the thickness is measured right under normal marrow and under edema that lowers
the head's T1 marrow to 0.8 of normal, but not to 0.7. With the head's marrow at 0.7 (to the
cortex) 5 mm bands measured 2.2 and 3.4 mm in 2 of 6 real hips, and at 0.6 a 2 mm band measured
4.5 mm (tests/test_real_anatomy.py; docs/imaging-analysis.md, known limits). The head's sphere,
fitted to the marrow edge, then takes the band's inner edge for that edge under the dome. So the
analysis leaves the thickness undecided when the head's T1 marrow is below ``DECIDED_T1_RATIO``
of the other head's, and no band found is not reported as absent below ``ABSENCE_DECIDED_T1_RATIO``
(:func:`undecided_because`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hipdx.imaging.heads import FemoralHead
from hipdx.imaging.parameters import BAND_CUTOFF_MM, BAND_INDETERMINATE_MM, param
from hipdx.imaging.volume import Volume

#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "band").
LOW_FRACTION = param("band.low_fraction")
DOME_HALF_ANGLE_DEG = param("band.dome_half_angle_deg")
ANGLE_STEP_DEG = param("band.angle_step_deg")
STEP_MM = param("band.step_mm")
MIN_RAY_THICKNESS_MM = param("band.min_ray_thickness_mm")
MIN_BAND_PROFILES = param("band.min_band_profiles")
MIN_BAND_LENGTH_MM = param("band.min_band_length_mm")
SLICE_REACH_FRACTION = param("band.slice_reach_fraction")
FIT_HALF_ANGLE_DEG = param("band.fit_half_angle_deg")
EDGE_SEARCH_MM = param("band.edge_search_mm")
TRIM_MM = param("band.trim_mm")
DARK_FRACTION = param("band.dark_fraction")
RAMP_MM = param("band.ramp_mm")
PLATE_WINDOW_MM = param("band.plate_window_mm")
N_LONG = max(1, int(round(MIN_RAY_THICKNESS_MM / STEP_MM)))
DECIDED_T1_RATIO = param("band.decided_t1_ratio")
ABSENCE_DECIDED_T1_RATIO = param("band.absence_decided_t1_ratio")
MARROW_PERCENTILE = param("band.marrow_percentile")
BOX_MARGIN_VOXELS = param("band.box_margin_voxels")


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


def undecided_because(band: Band, t1_ratio: float | None) -> str | None:
    """Why a band's measured thickness, or its absence, is not decided; None when it is.

    ``t1_ratio`` is the head's T1 marrow over the other head's (None when there is no other
    head). Within ``BAND_INDETERMINATE_MM`` of the cut-off the measurement cannot tell the sides
    of it apart; below ``DECIDED_T1_RATIO`` the measurement itself is not reliable (module
    docstring): the band is present, its thickness in doubt. Below ``ABSENCE_DECIDED_T1_RATIO``
    no band found does not mean no band.

    >>> undecided_because(Band(True, 5.0, 20.0, False), 0.7)
    "the head's T1 marrow is 0.70 x the other head's; under marrow darker than 0.75 x, thick bands were measured thin"
    >>> undecided_because(Band(True, 5.0, 20.0, False), 0.8) is None
    True
    >>> undecided_because(Band(True, 4.2, 20.0, True), None)
    'within 0.5 mm of the 4 mm cut-off'
    >>> undecided_because(Band(False, None, None, False), 0.7) is None, undecided_because(Band(False, None, None, False), 0.6)[-17:]
    (True, 'bands were missed')
    """
    if not band.present:
        if t1_ratio is not None and t1_ratio < ABSENCE_DECIDED_T1_RATIO:
            return (f"the head's T1 marrow is {t1_ratio:.2f} x the other head's; under marrow darker than "
                    f"{ABSENCE_DECIDED_T1_RATIO:g} x, bands were missed")
        return None
    if band.thickness_mm is None:
        return None
    if t1_ratio is not None and t1_ratio < DECIDED_T1_RATIO:
        return (f"the head's T1 marrow is {t1_ratio:.2f} x the other head's; under marrow darker than "
                f"{DECIDED_T1_RATIO:g} x, thick bands were measured thin")
    if band.indeterminate:
        return f"within {BAND_INDETERMINATE_MM:g} mm of the {BAND_CUTOFF_MM:g} mm cut-off"
    return None


def _percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear method) of a small 1-D array, to the same bit.

    The same order statistics and the same interpolation in the array's dtype as NumPy's, without
    its general-case overhead (the profiles of a slice are a few thousand samples).
    """
    n = values.size
    virtual = (n - 1) * (q / 100)
    if n == 0 or not virtual < n - 1 or np.isnan(values).any():
        return float(np.percentile(values, q))
    below = int(np.floor(virtual))
    a, b = np.partition(values, [below, below + 1])[below: below + 2]
    gamma = float(virtual - below)
    diff = b - a
    return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)


def _smoothed_box(volume: Volume, index_kji: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The in-plane 3 x 3 mean of the voxel box holding the samples ``index_kji`` (N, 3), and its origin.

    The box reaches ``BOX_MARGIN_VOXELS`` beyond the outermost sample (linear interpolation and
    the filter each need one voxel), clipped to the volume, so the samples equal those of the
    whole smoothed volume (to float rounding): the filter never sees the crop where it is sampled.
    """
    shape = np.array(volume.array.shape)
    per_axis = np.ascontiguousarray(index_kji.T)  # (3, N): a reduction along each row is fast, down a column is not
    low = np.clip(np.floor(per_axis.min(axis=1)).astype(int) - BOX_MARGIN_VOXELS, 0, shape - 1)
    high = np.clip(np.ceil(per_axis.max(axis=1)).astype(int) + BOX_MARGIN_VOXELS + 1, 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    return ndimage.uniform_filter(volume.array[box].astype(np.float32), size=(1, 3, 3)), low.astype(float)


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
    radius = head.radius_mm
    row_dir = vol.affine[:3, 1] / np.linalg.norm(vol.affine[:3, 1])
    col_dir = vol.affine[:3, 0] / np.linalg.norm(vol.affine[:3, 0])
    normal = vol.affine[:3, 2] / np.linalg.norm(vol.affine[:3, 2])
    superior = -row_dir if row_dir[2] < 0 else row_dir  # rows run inferiorly on coronal images
    dz = vol.spacing_mm[0]
    k_centre = float(vol.to_index(head.center_mm)[0])
    ks = np.arange(np.ceil(k_centre - SLICE_REACH_FRACTION * radius / dz), np.floor(k_centre + SLICE_REACH_FRACTION * radius / dz) + 1)
    ks = ks[(ks >= 0) & (ks <= vol.array.shape[0] - 1)]
    fan = np.deg2rad(np.arange(-FIT_HALF_ANGLE_DEG, FIT_HALF_ANGLE_DEG + 0.1, ANGLE_STEP_DEG))
    dome = np.abs(fan) <= np.deg2rad(DOME_HALF_ANGLE_DEG) + 1e-9
    dirs = np.cos(fan)[:, None] * superior + np.sin(fan)[:, None] * col_dir
    design = np.column_stack([np.ones(len(fan)), np.cos(fan), np.sin(fan)])  # circle: r0 + a cos + b sin
    # The profiles of every slice first, so only the box around them is smoothed.
    slices = []
    for k in ks:
        offset = (k - k_centre) * dz
        if abs(offset) >= radius:
            continue
        r_slice = float(np.sqrt(radius**2 - offset**2))
        radii = np.arange(0.3 * r_slice, r_slice + EDGE_SEARCH_MM + 0.001, STEP_MM)
        pts = head.center_mm + offset * normal + radii[None, :, None] * dirs[:, None, :]
        slices.append((offset, r_slice, radii, pts.reshape(-1, 3)))
    if not slices:
        return Band(False, None, None, False)
    index = vol.to_index(np.concatenate([pts for *_, pts in slices]))
    img, origin = _smoothed_box(vol, index)
    values = ndimage.map_coordinates(img, (index - origin).T, order=1)
    starts = np.cumsum([0] + [len(pts) for *_, pts in slices])
    best_thickness, best_length = 0.0, 0.0
    for (offset, r_slice, radii, _), start in zip(slices, starts):
        profiles = values[start: start + len(fan) * len(radii)].reshape(len(fan), -1)
        found = _band_on_slice(profiles, radii, r_slice, offset, design, dome)
        if found is None:
            continue
        best_thickness = max(best_thickness, found[0])
        best_length = max(best_length, found[1])
    if best_thickness <= 0:
        return Band(False, None, None, False)
    thickness = round(best_thickness, 1)
    indeterminate = abs(thickness - BAND_CUTOFF_MM) < BAND_INDETERMINATE_MM
    return Band(True, thickness, round(best_length, 1) or None, indeterminate)


def _band_on_slice(profiles: np.ndarray, radii: np.ndarray, r_slice: float, offset: float, design: np.ndarray,
                   dome: np.ndarray) -> tuple[float, float] | None:
    """(thickness, length) in mm of the band on one slice's fan of profiles; None when there is none."""
    # Marrow reference: bright marrow of this slice (a high percentile resists edema, low on T1).
    marrow = _percentile(profiles[:, radii < r_slice - 1.0].ravel(), MARROW_PERCENTILE)
    if marrow <= 0:
        return None
    edge, has, dark, first_dark = _marrow_edges(profiles, radii, r_slice, marrow)
    boundary = _fitted_boundary(design, edge, has)
    if boundary is None:
        return None
    # A band is dark: its run must hold a crossing of DARK_FRACTION (edema on T1, about half
    # the marrow signal, is low but not dark). The edge is the LOW_FRACTION crossing unless
    # that lies more than RAMP_MM inside the dark run's start (edema between marrow and band);
    # then the dark run's start is the edge.
    dark_crossing = ~dark[:, :-1] & dark[:, 1:]
    has_dark = dark_crossing.any(axis=1)
    last_dark = dark_crossing.shape[1] - 1 - np.argmax(dark_crossing[:, ::-1], axis=1)
    # The dark run is the plate's (or band's): the first long one within the window, not a
    # dark structure beyond the joint (the acetabular plate) that the outermost crossing may be.
    in_window = first_dark < dark_crossing.shape[1]
    last_dark = np.where(in_window, np.minimum(last_dark, np.maximum(first_dark - 1, 0)), last_dark)
    edge_dark = radii[last_dark] + STEP_MM
    inner = np.where(has & has_dark, np.where(edge_dark - edge <= RAMP_MM, edge, edge_dark), boundary)
    # Depth along the sphere radius (off-centre slices cut the shell obliquely).
    depth = np.sqrt(boundary**2 + offset**2) - np.sqrt(np.clip(inner, 0, None) ** 2 + offset**2)
    depth = np.where(dome, depth, 0.0)
    return _longest_band(depth, boundary)


def _marrow_edges(profiles: np.ndarray, radii: np.ndarray, r_slice: float, marrow: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per profile: the marrow -> low edge (mm from the centre, nan when none), whether there is one,
    the dark samples and the index of the first long dark run within the plate window."""
    rays = np.arange(profiles.shape[0])
    low = profiles < LOW_FRACTION * marrow
    # Inner edge of the dark run under the surface: the outermost marrow -> low crossing.
    crossing = ~low[:, :-1] & low[:, 1:]
    has = crossing.any(axis=1)
    last = crossing.shape[1] - 1 - np.argmax(crossing[:, ::-1], axis=1)
    # ... but not beyond the plate: when edema lowers the marrow (and with it the LOW level),
    # cartilage outside the plate is no longer low and the outermost crossing lies beyond the
    # plate or band. Then the crossing before the first long dark run within PLATE_WINDOW_MM
    # of the surface is the edge (deeper dark lines, the physeal scar, stay ignored).
    dark = profiles < DARK_FRACTION * marrow
    long_dark = ndimage.minimum_filter1d(dark.view(np.int8), N_LONG, axis=1,
                                         origin=-(N_LONG // 2)).astype(bool)  # a run of N_LONG starts here
    window = radii >= r_slice - PLATE_WINDOW_MM
    starts_dark = long_dark[:, :-1] & window[None, :-1]
    first_dark = np.where(starts_dark.any(axis=1), np.argmax(starts_dark, axis=1), crossing.shape[1])
    before = crossing & (np.arange(crossing.shape[1])[None, :] < first_dark[:, None])
    moved = has & (last >= first_dark) & before.any(axis=1)
    last = np.where(moved, crossing.shape[1] - 1 - np.argmax(before[:, ::-1], axis=1), last)
    lo, hi = profiles[rays, last], profiles[rays, last + 1]
    frac = np.clip((lo - LOW_FRACTION * marrow) / np.maximum(lo - hi, 1e-6), 0, 1)
    edge = np.where(has, radii[last] + frac * STEP_MM, np.nan)
    return edge, has, dark, first_dark


def _fitted_boundary(design: np.ndarray, edge: np.ndarray, has: np.ndarray) -> np.ndarray | None:
    """Marrow/cortex boundary of the head on one slice, per profile: a circle fitted to the edges of
    the profiles without a band (iteratively trimming profiles whose edge lies deeper); None with
    fewer than six profiles to fit."""
    use = has.copy()
    for _ in range(4):
        if use.sum() < 6:
            break
        coef, *_ = np.linalg.lstsq(design[use], edge[use], rcond=None)
        resid = edge - design @ coef
        kept, use = use, has & (resid > -TRIM_MM)
        if np.array_equal(use, kept):  # converged: another round would fit the same profiles again
            break
    if use.sum() < 6:
        return None
    return design @ coef


def _longest_band(depth: np.ndarray, boundary: np.ndarray) -> tuple[float, float] | None:
    """(thickness, length) of the longest run of adjacent banded profiles (the first of equally long
    ones), None when it is shorter than MIN_BAND_PROFILES or MIN_BAND_LENGTH_MM."""
    steps = np.diff(np.concatenate([[0], (depth >= MIN_RAY_THICKNESS_MM).view(np.int8), [0]]))
    run_starts, run_stops = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    if not run_starts.size:
        return None
    longest = int(np.argmax(run_stops - run_starts))
    n_run = int(run_stops[longest] - run_starts[longest])
    if n_run < MIN_BAND_PROFILES:
        return None
    in_run = slice(int(run_starts[longest]), int(run_stops[longest]))
    thickness = _percentile(depth[in_run], 75)
    r_mid = float(np.mean(boundary[in_run]))
    length = float((n_run - 1) * np.deg2rad(ANGLE_STEP_DEG) * r_mid) if n_run > 1 else 0.0
    if length < MIN_BAND_LENGTH_MM:
        return None
    return thickness, length
