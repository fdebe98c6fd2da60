"""The whole-image search for both femoral heads on a coronal T1 series (Hough sphere votes).

See :mod:`hipdx.imaging.heads` for the pipeline; this module holds steps 1-3 (intensity
range, block mean, directed circle votes, sphere scores, the best pair) and runs the whole of it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hipdx.case.model import Side
from hipdx.errors import ImagingError
from hipdx.imaging.femur import (
    HOUGH_RADII_MM,
    FemoralHead,
    femur_regions,
    neck_axis,
    reconcile_candidate_neck_axes,
)
from hipdx.imaging.head_fit import fit_sphere, roof_share
from hipdx.imaging.intensity import block_mean, intensity_bounds, scaled_intensity
from hipdx.imaging.parameters import param
from hipdx.imaging.volume import Volume


#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "head_search").
SPHERE_RADIUS_STEP_MM = param("head_search.sphere_radius_step_mm")


SLICE_RADII_MM = param("head_search.slice_radii_mm")


ASYMMETRY_PENALTY_PER_MM = param("head_search.asymmetry_penalty_per_mm")


MIN_SCORE = param("head_search.min_score")


HOUGH_PIXEL_MM = param("head_search.hough_pixel_mm")


EDGE_SIGMA_PX = param("head_search.edge_sigma_px")


EDGE_THRESHOLD = param("head_search.edge_threshold")


OUTLINE_PX = param("head_search.outline_px")


MIN_MIDLINE_DISTANCE_MM = param("head_search.min_midline_distance_mm")
SLICE_CUT_FRACTION = param("head_search.slice_cut_fraction")
DISTINCT_CANDIDATES_MM = param("head_search.distinct_candidates_mm")
REFINE_PEAK_SHARE = param("head_search.refine_peak_share")
#: the refinement around a coarse candidate: in-plane window (Hough pixels), centre slice and radius ranges and steps
REFINE_WINDOW_PX = param("head_search.refine_window_px")
REFINE_SLICE_SPAN = param("head_search.refine_slice_span")
REFINE_SLICE_STEP = param("head_search.refine_slice_step")
REFINE_RADIUS_SPAN_MM = param("head_search.refine_radius_span_mm")
REFINE_RADIUS_STEP_MM = param("head_search.refine_radius_step_mm")
#: np.arange's stop is exclusive: this much past the last value keeps it in the range
_INCLUDE_STOP = 0.01
CORONAL_MIN_COSINE = param("head_search.coronal_min_cosine")
BODY_LEVEL = param("head_search.body_level")
AIR_LEVEL = param("head_search.air_level")


def _check_coronal(volume: Volume) -> None:
    normal = volume.affine[:3, 2] / np.linalg.norm(volume.affine[:3, 2])
    row = volume.affine[:3, 1] / np.linalg.norm(volume.affine[:3, 1])
    if abs(normal[1]) < CORONAL_MIN_COSINE or abs(row[2]) < CORONAL_MIN_COSINE:
        raise ImagingError(
            f"series {volume.description or volume.source!r} is not coronal "
            f"(slice normal {np.round(normal, 2).tolist()}); femoral heads are searched on coronal T1"
        )
    if volume.array.ndim != 3 or min(volume.array.shape[1:]) < 32:
        raise ImagingError(f"series {volume.description or volume.source!r} is too small to search for femoral heads")


def _midline_column(img: np.ndarray) -> float:
    """Column of the body midline: the centroid of the body outline summed over slices."""
    profile = (img > BODY_LEVEL).sum(axis=(0, 1)).astype(float)
    if profile.sum() == 0:
        return (img.shape[2] - 1) / 2.0
    return float(np.sum(profile * np.arange(profile.size)) / profile.sum())


def circle_votes(img: np.ndarray, radii_px: np.ndarray) -> np.ndarray:
    """Directed Hough circle votes (radii, slices, rows, cols) of the marrow edges inside the body.

    Edges are the in-plane gradient maxima (Gaussian smoothing, central differences, non-maximum
    suppression along the gradient, magnitude above ``EDGE_THRESHOLD``) that do not border air
    (the body outline). Fatty marrow is brighter
    than the cortex around it, so each edge pixel votes only for the centres ``r`` pixels away
    towards the brighter side (the gradient direction), shared between the four nearest pixels;
    a vote weighs 1 / (2 pi r), so a full circle of edges scores about 1 at its centre, as the
    normalised votes of ``skimage.transform.hough_circle`` do.
    """
    n, rows, cols = img.shape
    smooth = ndimage.gaussian_filter(img, (0, EDGE_SIGMA_PX, EDGE_SIGMA_PX))
    # Central differences (intensity change over 2 pixels) on the smoothed image.
    gy = np.empty_like(smooth)
    gx = np.empty_like(smooth)
    gy[:, [0, -1]] = 0
    gx[:, :, [0, -1]] = 0
    np.subtract(smooth[:, 2:], smooth[:, :-2], out=gy[:, 1:-1])
    np.subtract(smooth[:, :, 2:], smooth[:, :, :-2], out=gx[:, :, 1:-1])
    # Candidates: strong gradients away from the image border. The squared magnitude, with a
    # margin far above its rounding error, picks a superset; the magnitude (np.hypot) is then
    # computed at those pixels and at their neighbours only.
    squared = np.multiply(gy, gy)
    squared += gx * gx
    strong = squared > np.float32((0.999 * EDGE_THRESHOLD) ** 2)
    del squared
    border = int(np.ceil(OUTLINE_PX)) + 1
    strong[:, :border] = strong[:, -border:] = False
    strong[:, :, :border] = strong[:, :, -border:] = False
    flat = np.flatnonzero(strong)
    gy_flat, gx_flat = gy.reshape(-1), gx.reshape(-1)
    y, x = gy_flat[flat], gx_flat[flat]
    g = np.hypot(y, x)
    strong_at = g > EDGE_THRESHOLD
    flat, g, y, x = flat[strong_at], g[strong_at], y[strong_at], x[strong_at]
    plane = rows * cols
    k, within = np.divmod(flat, plane)
    j, i = np.divmod(within, cols)
    # The body outline (and air inside the body) casts no votes: air OUTLINE_PX outwards of the edge.
    outside = img[k, np.rint(j - OUTLINE_PX * y / g).astype(np.int64), np.rint(i - OUTLINE_PX * x / g).astype(np.int64)]
    keep = outside > AIR_LEVEL
    flat, k, j, i, g, y, x = flat[keep], k[keep], j[keep], i[keep], g[keep], y[keep], x[keep]
    # Non-maximum suppression along the gradient, rounded to one of the 4 neighbour axes.
    ay, ax = np.abs(y), np.abs(x)
    dy = np.where(ay > 0.414 * ax, 1, 0)
    dx = np.where(ax > 0.414 * ay, np.where(x * y < 0, -1, 1), 0)
    dx = np.where(dy == 0, 1, dx)
    step = dy * cols + dx
    ahead = np.hypot(gy_flat[flat + step], gx_flat[flat + step])
    behind = np.hypot(gy_flat[flat - step], gx_flat[flat - step])
    peak = (g >= ahead) & (g > behind)
    k, j, i, g, y, x = k[peak], j[peak], i[peak], g[peak], y[peak], x[peak]
    uy, ux = y / g, x / g
    # One radius at a time, its four neighbours one after another: each centre receives its votes
    # in the order of a loop over radii, then neighbours, then edge pixels. Votes are laid out
    # radius first (radius, slice, row, col).
    votes = np.empty((radii_px.size, n, rows, cols), np.float32)
    base = k * plane
    # Summed in float64 (np.add.at adds in the order given, as np.bincount does) in one buffer
    # reused for every radius: a fresh grid per radius costs more in page faults than the sums.
    total = np.zeros(n * plane)
    for r_index, r in enumerate(radii_px):
        cy, cx = j + r * uy, i + r * ux
        y0, x0 = np.floor(cy).astype(np.int64), np.floor(cx).astype(np.int64)
        fy, fx = cy - y0, cx - x0
        if r_index:
            total.fill(0.0)
        for oy, ox, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            yy, xx = y0 + oy, x0 + ox
            inside = (yy >= 0) & (yy < rows) & (xx >= 0) & (xx < cols)
            np.add.at(total, (base + yy * cols + xx)[inside], w[inside] / (2 * np.pi * r))
        votes[r_index] = total.reshape(n, rows, cols)
    return votes


def _sphere_score(votes: np.ndarray, radii_px: np.ndarray, z0: float, radius_px: float, dz_px: float) -> np.ndarray:
    """Mean circle vote over the slices a sphere crosses, at every in-plane centre.

    A slice at distance d from the centre cuts the sphere in a circle of radius sqrt(R^2 - d^2);
    its vote is interpolated between the searched radii.
    """
    ks = np.arange(votes.shape[0], dtype=float)
    d = np.abs(ks - z0) * dz_px
    r = np.sqrt(np.clip(radius_px**2 - d**2, 0, None))
    use = (d < SLICE_CUT_FRACTION * radius_px) & (r >= radii_px[0]) & (r <= radii_px[-1])
    if not use.any():
        return np.zeros(votes.shape[2:], np.float32)
    total = np.zeros(votes.shape[2:], np.float32)
    for k, rk in zip(ks[use].astype(int), r[use]):
        pos = float(rk - radii_px[0])
        lo = int(np.floor(pos))
        frac = pos - lo
        hi = min(lo + 1, radii_px.size - 1)
        total += np.float32(1 - frac) * votes[k, lo] + np.float32(frac) * votes[k, hi]
    return total / np.float32(use.sum())


def sphere_scores_all_slices(votes: np.ndarray, radii_px: np.ndarray, radius_px: float, dz_px: float) -> np.ndarray:
    """:func:`_sphere_score` for every integer centre slice at once, shape (slices, rows, cols).

    ``votes`` is laid out radius first, (radii, slices, rows, cols), so the slices of one radius
    are one contiguous block. For an integer centre slice the slice offsets, circle radii and
    interpolation weights are the same for every centre, so each offset is one shifted, weighted
    sum over all slices.
    """
    n = votes.shape[1]
    total = np.zeros((n,) + votes.shape[2:], np.float32)
    buffer = np.empty_like(total)
    count = np.zeros(n, np.int64)
    for m in range(-(n - 1), n):
        d = abs(m) * dz_px
        if not d < SLICE_CUT_FRACTION * radius_px:
            continue
        r = float(np.sqrt(max(radius_px**2 - d**2, 0.0)))
        if not radii_px[0] <= r <= radii_px[-1]:
            continue
        pos = r - radii_px[0]
        lo = int(np.floor(pos))
        frac = pos - lo
        hi = min(lo + 1, radii_px.size - 1)
        z0 = slice(max(0, -m), min(n, n - m))  # centre slices whose slice z0 + m exists
        k = slice(z0.start + m, z0.stop + m)
        part = buffer[z0]
        np.multiply(votes[lo, k], np.float32(1 - frac), out=part)
        total[z0] += part
        np.multiply(votes[hi, k], np.float32(frac), out=part)
        total[z0] += part
        count[z0] += 1
    used = count > 0
    total[used] /= count[used, None, None].astype(np.float32)
    return total


def _distinct(cands: list[tuple[float, float, float, int, int]], pix: float, dz: float, n: int = 5) -> list:
    """The best ``n`` candidates whose centres are at least 20 mm apart."""
    out: list[tuple[float, float, float, int, int]] = []
    for c in sorted(cands, reverse=True):
        if all(np.hypot(np.hypot((c[3] - o[3]) * pix, (c[4] - o[4]) * pix), (c[1] - o[1]) * dz) > DISTINCT_CANDIDATES_MM for o in out):
            out.append(c)
        if len(out) == n:
            break
    return out


def _choose_pair(best: dict[Side, list], pix: float, dz: float) -> dict[Side, tuple | None]:
    """Pick one candidate per side: high scores, and the two heads at similar height and depth."""
    right, left = best[Side.right], best[Side.left]
    if not right or not left:
        return {Side.right: right[0] if right else None, Side.left: left[0] if left else None}
    def value(pair: tuple) -> float:
        r, lf = pair
        asymmetry_mm = abs(r[3] - lf[3]) * pix + abs(r[1] - lf[1]) * dz
        return r[0] + lf[0] - ASYMMETRY_PENALTY_PER_MM * asymmetry_mm

    r, lf = max(((r, lf) for r in right for lf in left), key=value)
    return {Side.right: r, Side.left: lf}


def _refine(votes: np.ndarray, radii_px: np.ndarray, cand: tuple, pix: float, dz_px: float):
    """Finer search of centre slice (half slices) and radius (1 mm) near a candidate;
    sub-pixel in-plane centre from the vote-weighted centroid around the peak. ``votes`` are laid
    out as :func:`circle_votes` returns them (radius, slice, row, col).

    Every (centre slice, radius) pair is scored at once: the sums of :func:`_sphere_score` run
    over the slices in the same order, so the scores are the same as one pair at a time, and
    the first pair with the highest score wins.
    """
    _, z0c, rc, jc, ic = cand
    w = REFINE_WINDOW_PX
    j0, j1 = max(jc - w, 0), min(jc + w + 1, votes.shape[2])
    i0, i1 = max(ic - w, 0), min(ic + w + 1, votes.shape[3])
    patch = votes[:, :, j0:j1, i0:i1].transpose(1, 0, 2, 3)  # (slice, radius, row, col)
    span_z, span_r = REFINE_SLICE_SPAN, REFINE_RADIUS_SPAN_MM
    pairs = [
        (z0, radius_mm)
        for z0 in np.arange(z0c - span_z, z0c + span_z + _INCLUDE_STOP, REFINE_SLICE_STEP)
        for radius_mm in np.arange(rc - span_r, rc + span_r + _INCLUDE_STOP, REFINE_RADIUS_STEP_MM)
        if HOUGH_RADII_MM[0] - span_r <= radius_mm <= HOUGH_RADII_MM[1] + span_r
    ]
    if not pairs:
        return (-1.0, z0c, rc, float(jc), float(ic))
    z0s = np.array([z for z, _ in pairs])[:, None]
    radius_px = np.array([r for _, r in pairs])[:, None] / pix
    d = np.abs(np.arange(patch.shape[0], dtype=float)[None, :] - z0s) * dz_px  # (pair, slice)
    r = np.sqrt(np.clip(radius_px**2 - d**2, 0, None))
    use = (d < SLICE_CUT_FRACTION * radius_px) & (r >= radii_px[0]) & (r <= radii_px[-1])
    pos = r - radii_px[0]
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    lo = np.clip(lo, 0, radii_px.size - 1)
    hi = np.minimum(lo + 1, radii_px.size - 1)
    rows = np.arange(len(pairs))
    total = np.zeros((len(pairs),) + patch.shape[2:], np.float32)
    for k in np.flatnonzero(use.any(axis=0)):
        on = use[:, k]
        w_lo = (1 - frac[on, k]).astype(np.float32)[:, None, None]
        w_hi = frac[on, k].astype(np.float32)[:, None, None]
        total[rows[on]] += w_lo * patch[k, lo[on, k]] + w_hi * patch[k, hi[on, k]]
    count = use.sum(axis=1)
    total[count > 0] /= count[count > 0, None, None].astype(np.float32)
    peaks = total.reshape(len(pairs), -1).max(axis=1)
    best = int(np.argmax(peaks))
    sub = total[best]
    j, i = np.unravel_index(int(np.argmax(sub)), sub.shape)
    weight = np.clip(sub - REFINE_PEAK_SHARE * sub[j, i], 0, None)
    gy, gx = np.mgrid[0 : sub.shape[0], 0 : sub.shape[1]]
    mass = float(weight.sum())
    if mass <= 0:  # no votes at all around the candidate (a nearly empty image): the peak itself
        return (float(sub[j, i]), float(pairs[best][0]), float(pairs[best][1]), float(j + j0), float(i + i0))
    jf = float((weight * gy).sum() / mass) + j0
    if_ = float((weight * gx).sum() / mass) + i0
    return (float(sub[j, i]), float(pairs[best][0]), float(pairs[best][1]), jf, if_)


def find_femoral_heads(t1: Volume, reconcile: bool = True) -> list[FemoralHead]:
    """Find the left and right femoral heads on a coronal T1 volume.

    Parameters
    ----------
    t1
        Coronal T1-weighted volume (slices roughly perpendicular to the patient's AP axis).
    reconcile
        Mirror the clearer neck axis onto the other side when the two disagree
        (:func:`reconcile_neck_axes`). Off, each head keeps its own axis: for a caller that checks
        the circles first (one may not be a femoral head, whose axis must not be mirrored).

    Returns
    -------
    list of FemoralHead
        At most one per side, right first; a side without a credible circle is left out.

    Raises
    ------
    ImagingError
        If the volume is not coronal, is empty or has no contrast.

    Examples
    --------
    >>> heads = find_femoral_heads(t1)                  # doctest: +SKIP
    >>> [(h.side.value, h.radius_mm) for h in heads]    # doctest: +SKIP
    [('right', 23.1), ('left', 22.8)]
    """
    _check_coronal(t1)
    dz, dy, dx = t1.spacing_mm
    lo, hi = intensity_bounds(t1.array)
    factor = max(1, int(round(HOUGH_PIXEL_MM / min(dy, dx))))
    img = scaled_intensity(block_mean(t1.array, factor) if factor > 1 else t1.array, lo, hi)
    pix = min(dy, dx) * factor
    radii_px = np.arange(max(2, int(np.floor(SLICE_RADII_MM[0] / pix))), int(np.ceil(SLICE_RADII_MM[1] / pix)) + 1)
    votes = circle_votes(img, radii_px)
    dz_px = dz / pix

    mid = _midline_column(img)
    cols = np.arange(img.shape[2])
    col_to_left = 1.0 if t1.affine[0, 0] >= 0 else -1.0  # +x (LPS) is patient left
    offset = (cols - mid) * col_to_left
    min_px = MIN_MIDLINE_DISTANCE_MM / pix
    sides = {Side.right: offset <= -min_px, Side.left: offset >= min_px}
    # The columns of each side (a contiguous run: the offset is monotonic in the column).
    side_columns = {side: slice(int(np.flatnonzero(a)[0]), int(np.flatnonzero(a)[-1]) + 1) for side, a in sides.items() if a.any()}

    candidates = _coarse_candidates(votes, radii_px, side_columns, pix, dz_px)
    best = {side: _distinct(cands, pix, dz) for side, cands in candidates.items()}
    pair = _choose_pair(best, pix, dz)

    found: dict[Side, tuple] = {}
    for side in (Side.right, Side.left):
        if pair.get(side) is None:
            continue
        score, z0, radius_mm, j, i = _refine(votes, radii_px, pair[side], pix, dz_px)
        if score < MIN_SCORE:
            continue
        centre_idx = np.array([z0, j * factor + (factor - 1) / 2.0, i * factor + (factor - 1) / 2.0])
        center, radius_mm = fit_sphere(t1, lo, hi, t1.to_patient(centre_idx), float(radius_mm))
        lateral = -1 if side is Side.right else 1
        axis, brightness = neck_axis(t1, lo, hi, center, radius_mm, lateral)
        found[side] = (center, float(radius_mm), float(score), axis, brightness)
    if reconcile:
        reconcile_candidate_neck_axes(found)
    heads: list[FemoralHead] = []
    for side, (center, radius_mm, score, axis, brightness) in found.items():
        head, neck, inter, box = femur_regions(t1, center, radius_mm, axis)
        roof = roof_share(t1, side, center, radius_mm, (lo, hi))
        heads.append(FemoralHead(side, center, radius_mm, score, axis, head, neck, inter, box,
                                 neck_brightness=float(brightness), roof_share=roof))
    return heads


def _coarse_candidates(votes: np.ndarray, radii_px: np.ndarray, side_columns: dict[Side, slice], pix: float,
                       dz_px: float) -> dict[Side, list[tuple[float, float, float, int, int]]]:
    """Coarse search over sphere radius and centre slice: per side, for every radius and slice, the
    best-scored centre (score, slice, radius mm, row, column)."""
    candidates: dict[Side, list[tuple[float, float, float, int, int]]] = {Side.right: [], Side.left: []}
    # Each side's votes, radius first (see sphere_scores_all_slices).
    side_votes = {side: np.ascontiguousarray(votes[..., columns]) for side, columns in side_columns.items()}
    for radius_mm in np.arange(HOUGH_RADII_MM[0], HOUGH_RADII_MM[1] + 0.01, SPHERE_RADIUS_STEP_MM):
        for side, columns in side_columns.items():
            scores = sphere_scores_all_slices(side_votes[side], radii_px, radius_mm / pix, dz_px)
            flat = scores.reshape(scores.shape[0], -1)
            best_at = np.argmax(flat, axis=1)
            best_score = flat[np.arange(flat.shape[0]), best_at]
            rows_at, cols_at = np.unravel_index(best_at, scores.shape[1:])
            for z0 in range(flat.shape[0]):
                candidates[side].append(
                    (float(best_score[z0]), float(z0), float(radius_mm), int(rows_at[z0]), int(cols_at[z0]) + columns.start)
                )
    return candidates
