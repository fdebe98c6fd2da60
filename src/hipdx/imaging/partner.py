"""A second, narrower search for a femoral head the whole-image search missed, beside the other head.

Why: the whole-image search (:mod:`hipdx.imaging.heads`) votes for circles of fatty marrow
brighter than the cortex around it, at about 3.6 mm pixels. Edema lowers the T1 signal of the
marrow (transient osteoporosis, osteonecrosis: "low T1") to about that of muscle, and at those
pixels the thin dark cortex is blurred into the marrow and the cartilage: the edematous head
casts almost no votes and another circle (the greater trochanter) wins. On the three real pelvis
series here, with one head and neck darkened to 0.6 of its T1 signal, the whole-image search
lost the head in 2 of 6 hips and took the trochanter in a third (``tests/test_real_anatomy.py``;
the joint check in :mod:`hipdx.imaging.anatomy` now refuses it). Transient osteoporosis is
exactly that head.

How: when one head is found and the other is not (or the pair fails the anatomical check), the
other head is searched for again

1. only where adult anatomy puts it (:mod:`hipdx.imaging.anatomy`): 125-210 mm from the head found,
   on the other side, within 30 mm cranio-caudally and 25 mm front to back;
2. at full resolution (about ``PARTNER_PIXEL_MM``), where the cortex still separates marrow
   darkened to muscle level from the cartilage, with the same directed circle votes;
3. with sphere radii within ``MAX_RADIUS_RATIO`` of the head found, and the centre fitted to
   the marrow edge with the radius fixed at the head found's: the two femoral heads of one
   adult differ by about 1 mm in diameter (Kour et al., NeuroQuantology 2023; the real pairs here
   1.02-1.03), while a free radius let edges beyond a darkened head pull the sphere outwards
   (up to 1.8 mm larger and 3 mm off on the real series);
4. with the least fall of the marrow edge into the cortex scaled by how much darker the core is
   than the head found's (edematous marrow falls less steeply into it).

What is found is a head only if it and the pair pass every anatomical check (the joint above
it included), at least
``FIT_MIN_POINTS`` marrow-edge points lie within 1.5 mm of its sphere (as the main fit needs), and
its core has marrow signal: a core below ``PARTNER_VOID_RATIO`` of the other head's T1 marrow is a
signal void (metal: a hip prosthesis), reported as such and never measured.

Measured on the real series (one head and neck darkened on T1 to the cortex, whole analysis):
at x 0.6 the darkened head found in 5 of 6 hips within 1.8 mm (2 of them by this search), at x 0.5
4 of 6 within 3.0 mm (3 by this search), the rest reported missing; never another structure.
A simulated prosthesis gives a signal void (core 0.02 of the other head's marrow) in 6 of 6.

When even this search finds nothing on T1 and the study has a coronal fluid-sensitive series,
:func:`find_partner_on_fluid` runs the same coarse step on that series, where edema makes the
head bright, and fits the centre on T1 from there. What it finds is a head only if it shows
edema (``FLUID_EDEMA_CONTRAST``), has ``FIT_MIN_POINTS`` marrow-edge points on T1 and passes the
anatomical checks. The coarse step alone is not trusted: on a fluid-sensitive series whose edema
reaches the cortex it put series-03's right head 11.9 mm behind the truth (two 5.2 mm slices);
the T1 fit from there came back to 1.2 mm with 55 edge points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipdx.case.model import Side
from hipdx.imaging.anatomy import (
    INTER_HEAD_DISTANCE_MM,
    MAX_AP_OFFSET_MM,
    MAX_LEVEL_OFFSET_MM,
    MAX_RADIUS_RATIO,
    head_problems,
    pair_problems,
)
from hipdx.imaging.femur import FemoralHead, femur_regions, neck_axis
from hipdx.imaging.head_fit import (
    FIT_MAX_SHIFT_MM,
    FIT_MIN_FALL_PER_MM,
    FIT_MIN_POINTS,
    FIT_RAYS,
    FIT_ROUNDS,
    FIT_SLICE_REACH,
    edge_points,
    roof_share,
)
from hipdx.imaging.head_search import SLICE_RADII_MM, circle_votes, sphere_scores_all_slices
from hipdx.imaging.intensity import block_mean, intensity_bounds, scaled_intensity
from hipdx.imaging.parameters import param
from hipdx.imaging.volume import Volume

#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "partner").
PARTNER_PIXEL_MM = param("partner.partner_pixel_mm")
PARTNER_RADIUS_STEP_MM = param("partner.partner_radius_step_mm")
PARTNER_VOID_RATIO = param("partner.partner_void_ratio")
MIN_FALL_SCALE = param("partner.min_fall_scale")
CORE_FRACTION = param("partner.core_fraction")
INLIER_MM = param("partner.inlier_mm")
FLUID_EDEMA_CONTRAST = param("partner.fluid_edema_contrast")


@dataclass(frozen=True)
class PartnerSearch:
    """What the second search found beside ``anchor`` (the head already found).

    Attributes
    ----------
    head
        The other femoral head, or None.
    t1_ratio
        Median T1 signal of the core of the best sphere found / that of the anchor's core (None when
        nothing was searched).
    void
        The best sphere's core has no marrow signal (a metal implant's signal void).
    reason
        Why no head was accepted (empty when one was).
    """

    head: FemoralHead | None
    t1_ratio: float | None
    void: bool
    reason: str


def _core_median(t1: Volume, centre: np.ndarray, radius_mm: float) -> float:
    """Median T1 signal inside the sphere of ``radius_mm`` around ``centre`` (nan when outside the image)."""
    spacing = np.asarray(t1.spacing_mm)
    c = t1.to_index(centre)
    lo = np.maximum(np.floor(c - radius_mm / spacing).astype(int), 0)
    hi = np.minimum(np.ceil(c + radius_mm / spacing).astype(int) + 1, t1.array.shape)
    if np.any(hi <= lo):
        return float("nan")
    k, j, i = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    inside = ((k - c[0]) * spacing[0]) ** 2 + ((j - c[1]) * spacing[1]) ** 2 + ((i - c[2]) * spacing[2]) ** 2 <= radius_mm**2
    values = t1.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][inside]
    return float(np.median(values)) if values.size else float("nan")


def _fit_centre(
    t1: Volume, lo: float, hi: float, start: np.ndarray, radius_mm: float, min_fall: float
) -> tuple[np.ndarray, int]:
    """The sphere centre fitted to the marrow edge with the radius fixed; the number of edge points supporting it.

    Rounds of :func:`hipdx.imaging.head_fit.edge_points` around the current sphere, each followed by
    a robust geometric fit of the centre (each point pulled back by the radius along its direction;
    points more than max(1.5 mm, 3 MAD) off dropped), until it moves less than 0.1 mm.
    """
    centre = np.asarray(start, float)
    support = 0
    for _ in range(FIT_ROUNDS):
        points = edge_points(t1, lo, hi, centre, radius_mm, min_fall)
        if len(points) < FIT_MIN_POINTS:
            break
        fitted = centre.copy()
        for _ in range(20):
            offset = points - fitted
            distance = np.maximum(np.linalg.norm(offset, axis=1), 1e-9)
            residual = np.abs(distance - radius_mm)
            keep = residual <= max(INLIER_MM, 3.0 * 1.4826 * float(np.median(residual)))
            if keep.sum() < FIT_MIN_POINTS:
                break
            moved_to = np.mean(points[keep] - radius_mm * offset[keep] / distance[keep, None], axis=0)
            done = np.linalg.norm(moved_to - fitted) < 0.01
            fitted = moved_to
            if done:
                break
        if np.linalg.norm(fitted - start) > FIT_MAX_SHIFT_MM:
            break
        step = float(np.linalg.norm(fitted - centre))
        centre = fitted
        if step < 0.1:
            break
    points = edge_points(t1, lo, hi, centre, radius_mm, min_fall)
    if len(points):
        support = int((np.abs(np.linalg.norm(points - centre, axis=1) - radius_mm) <= INLIER_MM).sum())
    return centre, support


def _coarse_centre(t1: Volume, lo: float, hi: float, anchor: FemoralHead, side: Side) -> tuple[np.ndarray, float] | None:
    """The best sphere centre (LPS mm) and its vote score where anatomy puts the other head; None outside the image."""
    dz, dy, dx = t1.spacing_mm
    sign = 1.0 if side is Side.left else -1.0  # +x (LPS) is patient left
    centre = np.asarray(anchor.center_mm, float)
    corners = np.array(
        [
            centre + np.array([sign * far, ap, level])
            for far in INTER_HEAD_DISTANCE_MM
            for ap in (-MAX_AP_OFFSET_MM, MAX_AP_OFFSET_MM)
            for level in (-MAX_LEVEL_OFFSET_MM, MAX_LEVEL_OFFSET_MM)
        ]
    )
    index = t1.to_index(corners)
    largest = anchor.radius_mm * MAX_RADIUS_RATIO
    margin = np.array([largest / dz + 1, largest / dy + 4, largest / dx + 4])
    start = np.maximum(np.floor(index.min(axis=0) - margin).astype(int), 0)
    stop = np.minimum(np.ceil(index.max(axis=0) + margin).astype(int) + 1, t1.array.shape)
    if np.any(stop - start < 8):
        return None
    box = tuple(slice(a, b) for a, b in zip(start, stop))
    factor = max(1, int(round(PARTNER_PIXEL_MM / min(dy, dx))))
    img = scaled_intensity(block_mean(t1.array[box], factor), lo, hi)
    pix = min(dy, dx) * factor
    radii_px = np.arange(max(2, int(np.floor(SLICE_RADII_MM[0] / pix))), int(np.ceil(min(SLICE_RADII_MM[1], largest + 1) / pix)) + 1)
    votes = circle_votes(img, radii_px)
    # Patient position of every centre on the search grid, and whether the pair would be plausible.
    k, j, i = np.indices(img.shape)
    grid = np.stack([k + start[0], j * factor + (factor - 1) / 2.0 + start[1], i * factor + (factor - 1) / 2.0 + start[2]], -1)
    offset = t1.to_patient(grid.reshape(-1, 3).astype(float)) - centre
    distance = np.linalg.norm(offset, axis=1)
    allowed = (
        (sign * offset[:, 0] > 0)
        & (np.abs(offset[:, 1]) <= MAX_AP_OFFSET_MM)
        & (np.abs(offset[:, 2]) <= MAX_LEVEL_OFFSET_MM)
        & (distance >= INTER_HEAD_DISTANCE_MM[0])
        & (distance <= INTER_HEAD_DISTANCE_MM[1])
    )
    if not allowed.any():
        return None
    best_score, best_at = -1.0, -1
    for radius_mm in np.arange(anchor.radius_mm / MAX_RADIUS_RATIO, largest + 1e-6, PARTNER_RADIUS_STEP_MM):
        scores = sphere_scores_all_slices(votes, radii_px, radius_mm / pix, dz / pix).reshape(-1)
        at = int(np.argmax(np.where(allowed, scores, -1.0)))
        if scores[at] > best_score:
            best_score, best_at = float(scores[at]), at
    return offset[best_at] + centre, best_score


def find_partner(t1: Volume, anchor: FemoralHead) -> PartnerSearch:
    """Search for the femoral head on the other side of ``anchor`` where adult anatomy puts it.

    Parameters
    ----------
    t1
        The coronal T1 volume ``anchor`` was found on.
    anchor
        The femoral head already found (and checked).

    Returns
    -------
    PartnerSearch
        The other head (with ``found_by="partner search"`` and the anchor's radius), or why none was
        accepted.
    """
    side = Side.left if anchor.side is Side.right else Side.right
    lo, hi = intensity_bounds(t1.array)
    coarse = _coarse_centre(t1, lo, hi, anchor, side)
    if coarse is None:
        return PartnerSearch(None, None, False, f"the {side.value} hip is outside the T1 series' field of view")
    centre, support = _fit_beside(t1, (lo, hi), anchor, coarse[0])
    ratio = _core_ratio(t1, centre, anchor)
    ratio = ratio if np.isfinite(ratio) else None
    if ratio is not None and ratio < PARTNER_VOID_RATIO:
        return PartnerSearch(None, ratio, True, f"signal void where the {side.value} femoral head should be")
    problems = [] if ratio is not None else ["no T1 signal to compare at the sphere found"]
    return _accepted(t1, (lo, hi), anchor, side, centre, support, ratio, problems)


def _core_ratio(volume: Volume, centre: np.ndarray, anchor: FemoralHead) -> float:
    """Median signal of the core (``CORE_FRACTION`` of the anchor's radius) at ``centre`` over the
    anchor's core on ``volume``; nan when either cannot be measured."""
    ours, theirs = (_core_median(volume, c, CORE_FRACTION * anchor.radius_mm) for c in (centre, anchor.center_mm))
    return ours / theirs if theirs > 0 else float("nan")


def _fit_beside(t1: Volume, lo_hi: tuple[float, float], anchor: FemoralHead, start: np.ndarray) -> tuple[np.ndarray, int]:
    """:func:`_fit_centre` on ``t1`` from ``start`` with the anchor's radius. The marrow edge of a
    darker head falls less steeply into the cortex: the least fall is scaled by its core's T1 signal
    against the anchor's (down to ``MIN_FALL_SCALE``)."""
    darker = _core_ratio(t1, start, anchor)
    scale = float(np.clip(darker, MIN_FALL_SCALE, 1.0)) if np.isfinite(darker) else 1.0
    return _fit_centre(t1, *lo_hi, start, float(anchor.radius_mm), FIT_MIN_FALL_PER_MM * scale)


def _accepted(t1: Volume, lo_hi: tuple[float, float], anchor: FemoralHead, side: Side, centre: np.ndarray,
              support: int, ratio: float | None, problems: list[str]) -> PartnerSearch:
    """The sphere at ``centre`` (the anchor's radius) as a head, if it passes every check: the
    anatomical ones (the joint check on ``t1`` included), ``FIT_MIN_POINTS`` marrow-edge points on
    ``t1``, and none of the search's own ``problems``."""
    radius = float(anchor.radius_mm)
    left, right = (centre, anchor.center_mm) if side is Side.left else (anchor.center_mm, centre)
    roof = roof_share(t1, side, centre, radius, lo_hi)
    problems = problems + head_problems(radius, roof) + pair_problems(left, right, radius, radius)
    if support < FIT_MIN_POINTS:
        problems.append(f"only {support} marrow-edge points on the sphere found (at least {FIT_MIN_POINTS} needed)")
    if problems:
        return PartnerSearch(None, ratio, False, "; ".join(problems))
    return PartnerSearch(_head_at(t1, lo_hi, side, centre, radius, support, roof), ratio, False, "")


def _head_at(t1: Volume, lo_hi: tuple[float, float], side: Side, centre: np.ndarray, radius: float, support: int,
             roof: float) -> FemoralHead:
    """The head accepted at ``centre``: its own neck axis (the caller reconciles the pair,
    :func:`hipdx.imaging.heads.reconcile_neck_axes`), regions, and score (share of edge rays supporting it)."""
    lateral = -1 if side is Side.right else 1
    axis, brightness = neck_axis(t1, *lo_hi, centre, radius, lateral)
    head, neck, inter, box = femur_regions(t1, centre, radius, axis)
    rays = _rays_on_sphere(t1, centre, radius)
    return FemoralHead(side, centre, radius, support / rays if rays else 0.0, axis, head, neck, inter, box,
                       found_by="partner search", neck_brightness=float(brightness), roof_share=roof)


def _rays_on_sphere(t1: Volume, centre: np.ndarray, radius_mm: float) -> int:
    """How many edge rays :func:`hipdx.imaging.head_fit.edge_points` casts on a sphere (the score's denominator)."""
    kc = float(t1.to_index(centre)[0])
    d = (np.arange(t1.array.shape[0]) - kc) * t1.spacing_mm[0]
    return int((np.abs(d) < FIT_SLICE_REACH * radius_mm).sum()) * FIT_RAYS


def find_partner_on_fluid(t1: Volume, fluid: Volume, anchor: FemoralHead) -> PartnerSearch:
    """Search for an edematous femoral head beside ``anchor``, located on the fluid-sensitive series.

    The coarse step of :func:`find_partner` on ``fluid`` (coronal, the study's fluid-sensitive
    series on its own grid) gives the start; the centre is then fitted on ``t1`` from there, the
    radius fixed at the anchor's, as :func:`find_partner` does. The head must show edema
    (``FLUID_EDEMA_CONTRAST``: brighter on ``fluid``, darker on ``t1`` than the anchor), be
    supported by ``FIT_MIN_POINTS`` marrow-edge points on T1, and pass every anatomical check.

    Returns
    -------
    PartnerSearch
        ``t1_ratio`` is the core's T1 signal over the anchor's, as for :func:`find_partner`.
    """
    side = Side.left if anchor.side is Side.right else Side.right
    lo, hi = intensity_bounds(fluid.array)
    coarse = _coarse_centre(fluid, lo, hi, anchor, side)
    if coarse is None:
        return PartnerSearch(None, None, False, f"the {side.value} hip is outside the fluid-sensitive series")
    t1_lo_hi = intensity_bounds(t1.array)
    centre, support = _fit_beside(t1, t1_lo_hi, anchor, coarse[0])
    t1_ratio, fluid_ratio = _core_ratio(t1, centre, anchor), _core_ratio(fluid, centre, anchor)
    problems = []
    contrast = fluid_ratio / t1_ratio if t1_ratio > 0 else float("nan")
    if not contrast >= FLUID_EDEMA_CONTRAST:  # nan too
        problems.append(
            f"no edema there (fluid-sensitive signal {fluid_ratio:.2f} x the {anchor.side.value} head's, T1 "
            f"{t1_ratio:.2f} x: contrast {contrast:.2f}, at least {FLUID_EDEMA_CONTRAST:g} needed)"
        )
    return _accepted(t1, t1_lo_hi, anchor, side, centre, support, t1_ratio if np.isfinite(t1_ratio) else None, problems)
