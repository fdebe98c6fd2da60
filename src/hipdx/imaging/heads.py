"""Both femoral heads on a coronal T1 series: centre, radius and a head-and-neck region.

The method is the classical pipeline measured on real coronal T1 pelvis series
(``research/imaging.md`` 2.2-2.3; Memis et al. 2019 for Hough localisation of femoral heads):

1. percentile normalisation and in-plane downsampling to about 1.8 mm pixels;
2. Canny edges and ``skimage.transform.hough_circle`` on every coronal slice over radii of
   16-28 mm, the best radius kept per pixel;
3. accumulation of the per-slice votes across slices (a femoral head votes for the same
   in-plane centre on every slice it crosses), the best peak on each side of the body
   midline (patient left = +x in LPS);
4. a 3-D refinement: the in-plane circles around each peak are fitted with a sphere
   ``r(z)^2 = R^2 - (z - z0)^2`` along the slice normal;
5. regions from shape, not from marrow signal (edema and necrosis lower T1 marrow signal
   exactly where the region is needed): the head is the sphere, the neck a cylinder along
   the neck axis, the intertrochanteric region its continuation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.feature import canny
from skimage.transform import downscale_local_mean, hough_circle

from hipdx.case.model import Side
from hipdx.errors import ImagingError
from hipdx.imaging.volume import Volume

#: Sphere radii searched (mm); the edge found is the marrow/cortex boundary (research/imaging.md 2.2).
HOUGH_RADII_MM = (16.0, 28.0)
#: Circle radii voted on each slice (mm): off-centre slices cut the sphere in smaller circles.
SLICE_RADII_MM = (10.0, 29.0)
#: Penalty on the sphere score per mm of height/depth difference between left and right heads.
ASYMMETRY_PENALTY_PER_MM = 0.002
#: Below this mean circle vote no head is reported on a side.
MIN_SCORE = 0.15
#: In-plane pixel size the Hough search runs at (mm).
HOUGH_PIXEL_MM = 1.8
#: Canny smoothing at the Hough pixel size (pixels).
CANNY_SIGMA_PX = 1.8
#: A femoral head centre lies at least this far from the body midline (mm).
MIN_MIDLINE_DISTANCE_MM = 45.0
#: Neck: cylinder along the neck axis, radius as a fraction of the head radius, from the head
#: to NECK_END_FRACTION head radii from the centre (the neck base).
NECK_RADIUS_FRACTION = 0.58
NECK_END_FRACTION = 2.0
#: Intertrochanteric region: the same tube continued beyond the neck base (never wider than the
#: neck, so it does not reach the muscle around the neck base).
INTERTROCHANTERIC_END_FRACTION = 2.8
INTERTROCHANTERIC_RADIUS_FRACTION = 0.58
#: Head region: the sphere to just beyond the radius found (the marrow/cortex edge, which the
#: Hough edge places ~0.5-1 mm inside the marrow); cartilage and joint fluid stay outside.
HEAD_REGION_FRACTION = 1.03
#: Neck axis: percentile of the T1 signal along a ray that scores it, and the plateau of rays
#: averaged (share of the best score's lead over the median score).
NECK_RAY_PERCENTILE = 20.0
NECK_PLATEAU = 0.25
#: Largest left-right difference of the neck axes (degrees) kept as measured.
NECK_AXIS_MAX_ASYMMETRY_DEG = 6.0
#: Neck axis angle below the horizontal in the coronal plane (degrees): searched range and default.
NECK_ANGLE_RANGE_DEG = (25.0, 65.0)
NECK_ANGLE_DEFAULT_DEG = 45.0
#: Neck tilt backwards from the head towards the shaft (femoral anteversion), searched range (degrees).
ANTEVERSION_RANGE_DEG = (-10.0, 30.0)


@dataclass(frozen=True, eq=False)
class FemoralHead:
    """One femoral head found on a T1 volume.

    Attributes
    ----------
    side
        Patient side (left = +x in DICOM LPS).
    center_mm
        Sphere centre in patient LPS millimetres, shape (3,).
    radius_mm
        Sphere radius (marrow/cortex boundary) in millimetres.
    score
        Mean fraction of the circle perimeter on edges over the best slices (0-1).
    neck_axis
        Unit vector (LPS) from the head centre along the femoral neck.
    head_mask, neck_mask, intertrochanteric_mask
        Boolean masks on the grid of the T1 volume it was found on.
    region_box
        Voxel box (slices) outside which the three masks are empty; ``None`` when not known.
    """

    side: Side
    center_mm: np.ndarray
    radius_mm: float
    score: float
    neck_axis: np.ndarray
    head_mask: np.ndarray = field(repr=False)
    neck_mask: np.ndarray = field(repr=False)
    intertrochanteric_mask: np.ndarray = field(repr=False)
    region_box: tuple[slice, ...] | None = field(default=None, repr=False)

    @property
    def head_and_neck_mask(self) -> np.ndarray:
        """Head and neck region (the denominator of the edema fraction)."""
        return self._union(self.head_mask, self.neck_mask)

    @property
    def proximal_femur_mask(self) -> np.ndarray:
        """Head, neck and intertrochanteric region: where femoral edema is searched."""
        return self._union(self.head_mask, self.neck_mask, self.intertrochanteric_mask)

    def _union(self, *masks: np.ndarray) -> np.ndarray:
        if self.region_box is None:
            return np.logical_or.reduce(masks)
        out = np.zeros(masks[0].shape, bool)
        out[self.region_box] = np.logical_or.reduce([m[self.region_box] for m in masks])
        return out


def normalise(array: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Scale intensities so the ``low`` and ``high`` percentiles of the non-zero voxels map to 0 and 1."""
    values = array[array > 0]
    if values.size == 0:
        raise ImagingError("the image is empty (all voxels are zero)")
    lo, hi = np.percentile(values, [low, high])
    del values
    if hi <= lo:
        raise ImagingError("the image has no contrast")
    out = np.subtract(array, np.float32(lo), dtype=np.float32)
    np.divide(out, np.float32(hi - lo), out=out)
    return np.clip(out, 0.0, 1.5, out=out)


def _check_coronal(volume: Volume) -> None:
    normal = volume.affine[:3, 2] / np.linalg.norm(volume.affine[:3, 2])
    row = volume.affine[:3, 1] / np.linalg.norm(volume.affine[:3, 1])
    if abs(normal[1]) < 0.7 or abs(row[2]) < 0.7:
        raise ImagingError(
            f"series {volume.description or volume.source!r} is not coronal "
            f"(slice normal {np.round(normal, 2).tolist()}); femoral heads are searched on coronal T1"
        )
    if volume.array.ndim != 3 or min(volume.array.shape[1:]) < 32:
        raise ImagingError(f"series {volume.description or volume.source!r} is too small to search for femoral heads")


def _midline_column(img: np.ndarray) -> float:
    """Column of the body midline: the centroid of the body outline summed over slices."""
    profile = (img > 0.15).sum(axis=(0, 1)).astype(float)
    if profile.sum() == 0:
        return (img.shape[2] - 1) / 2.0
    return float(np.sum(profile * np.arange(profile.size)) / profile.sum())


def _circle_votes(img: np.ndarray, radii_px: np.ndarray) -> np.ndarray:
    """Normalised Hough circle votes (slices, radii, rows, cols) of the Canny edges inside the body."""
    votes = np.zeros((img.shape[0], radii_px.size) + img.shape[1:], np.float32)
    erode = max(2, int(round(8.0 / HOUGH_PIXEL_MM)))
    for k in range(img.shape[0]):
        body = ndimage.binary_fill_holes(img[k] > 0.1)
        body = ndimage.binary_erosion(body, iterations=erode)
        if not body.any():
            continue
        edges = canny(img[k], sigma=CANNY_SIGMA_PX) & body
        votes[k] = hough_circle(edges, radii_px, normalize=True)
    return votes


def _sphere_score(votes: np.ndarray, radii_px: np.ndarray, z0: float, radius_px: float, dz_px: float) -> np.ndarray:
    """Mean circle vote over the slices a sphere crosses, at every in-plane centre.

    A slice at distance d from the centre cuts the sphere in a circle of radius sqrt(R^2 - d^2);
    its vote is interpolated between the searched radii.
    """
    ks = np.arange(votes.shape[0], dtype=float)
    d = np.abs(ks - z0) * dz_px
    r = np.sqrt(np.clip(radius_px**2 - d**2, 0, None))
    use = (d < 0.9 * radius_px) & (r >= radii_px[0]) & (r <= radii_px[-1])
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


def _sphere_scores_all_slices(votes: np.ndarray, radii_px: np.ndarray, radius_px: float, dz_px: float) -> np.ndarray:
    """:func:`_sphere_score` for every integer centre slice at once, shape (slices, rows, cols).

    For an integer centre slice the slice offsets, circle radii and interpolation weights are the
    same for every centre, so each offset is one shifted, weighted sum over all slices.
    """
    n = votes.shape[0]
    total = np.zeros((n,) + votes.shape[2:], np.float32)
    buffer = np.empty_like(total)
    count = np.zeros(n, np.int64)
    for m in range(-(n - 1), n):
        d = abs(m) * dz_px
        r = float(np.sqrt(max(radius_px**2 - d**2, 0.0)))
        if not (d < 0.9 * radius_px and radii_px[0] <= r <= radii_px[-1]):
            continue
        pos = r - radii_px[0]
        lo = int(np.floor(pos))
        frac = pos - lo
        hi = min(lo + 1, radii_px.size - 1)
        z0 = slice(max(0, -m), min(n, n - m))  # centre slices whose slice z0 + m exists
        k = slice(z0.start + m, z0.stop + m)
        part = buffer[z0]
        np.multiply(votes[k, lo], np.float32(1 - frac), out=part)
        total[z0] += part
        np.multiply(votes[k, hi], np.float32(frac), out=part)
        total[z0] += part
        count[z0] += 1
    used = count > 0
    total[used] /= count[used, None, None].astype(np.float32)
    return total


def _neck_axis(t1: Volume, img: np.ndarray, center: np.ndarray, radius_mm: float, lateral: int) -> tuple[np.ndarray, float]:
    """Unit vector (LPS) along the femoral neck: the middle of the rays that stay inside bone.

    Rays leave the head centre laterally and inferiorly at 25-65 degrees below the horizontal,
    tilted by the femoral anteversion (-10 to 30 degrees); each is scored by a low percentile
    (``NECK_RAY_PERCENTILE``) of the normalised T1 signal 1.1-2.0 head radii from the centre, in a
    thin tube around it. A ray that crosses the dark cortex scores low whether the marrow it
    passes is bright (normal) or darker (edema lowers T1 marrow signal), so the rays inside the
    neck form a plateau; the axis is the mean of the plateau (rays within
    ``NECK_PLATEAU`` of the best), not the single brightest ray, which drifts towards the
    calcar when the neck is edematous. When no ray stands out the anatomical default of 45
    degrees in the coronal plane is used. Returns the axis and its score: the T1 signal of the
    neck marrow (lowered by edema) relative to the bright fat and marrow around the hip, which
    cancels the coil's left-right bias.
    """
    lateral_v = np.array([float(lateral), 0.0, 0.0])
    inferior = np.array([0.0, 0.0, -1.0])
    posterior = np.array([0.0, 1.0, 0.0])
    dist = np.linspace(1.1 * radius_mm, 2.0 * radius_mm, 10)
    offsets = np.array([[0, 0, 0], [0, 3.0, 0], [0, -3.0, 0]], float)
    axes, scores = [], []
    for elev in np.deg2rad(np.arange(NECK_ANGLE_RANGE_DEG[0], NECK_ANGLE_RANGE_DEG[1] + 0.1, 2.5)):
        for tilt in np.deg2rad(np.arange(ANTEVERSION_RANGE_DEG[0], ANTEVERSION_RANGE_DEG[1] + 0.1, 5.0)):
            axis = np.cos(elev) * np.cos(tilt) * lateral_v + np.sin(elev) * inferior + np.cos(elev) * np.sin(tilt) * posterior
            pts = center + dist[:, None, None] * axis + offsets[None]
            idx = t1.to_index(pts.reshape(-1, 3)).T
            values = ndimage.map_coordinates(img, idx, order=1, mode="constant", cval=0.0)
            axes.append(axis)
            scores.append(float(np.percentile(values, NECK_RAY_PERCENTILE)))
    scores_a = np.array(scores)
    best = float(scores_a.max())
    if best - float(np.median(scores_a)) < 0.05:
        elev = np.deg2rad(NECK_ANGLE_DEFAULT_DEG)
        axis = np.cos(elev) * lateral_v + np.sin(elev) * inferior
        return axis / np.linalg.norm(axis), 0.0
    lead = best - float(np.median(scores_a))
    plateau = scores_a >= best - NECK_PLATEAU * lead
    axis = np.array(axes)[plateau].mean(axis=0)
    c = np.round(t1.to_index(center)).astype(int)
    reach = np.ceil(3.0 * radius_mm / np.array(t1.spacing_mm)).astype(int)
    around = img[tuple(slice(max(a - r, 0), a + r + 1) for a, r in zip(c, reach))]
    local = float(np.percentile(around[around > 0], 90)) if (around > 0).any() else 1.0
    return axis / np.linalg.norm(axis), best / max(local, 1e-6)


def _region_box(volume: Volume, center: np.ndarray, radius: float, axis: np.ndarray) -> tuple[slice, ...]:
    """Voxel box holding the head sphere and the neck/intertrochanteric tube (with a one-voxel margin)."""
    half = HEAD_REGION_FRACTION * radius
    tube = max(NECK_RADIUS_FRACTION, INTERTROCHANTERIC_RADIUS_FRACTION) * radius
    end = center + INTERTROCHANTERIC_END_FRACTION * radius * axis
    lo_mm = np.minimum(center - half, np.minimum(center, end) - tube)
    hi_mm = np.maximum(center + half, np.maximum(center, end) + tube)
    corners = np.array([[a[0], b[1], c[2]] for a in (lo_mm, hi_mm) for b in (lo_mm, hi_mm) for c in (lo_mm, hi_mm)])
    idx = volume.to_index(corners)
    lo = np.maximum(np.floor(idx.min(axis=0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 2, volume.array.shape)
    return tuple(slice(int(a), int(max(a, b))) for a, b in zip(lo, hi))


def _regions(volume: Volume, center: np.ndarray, radius: float, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[slice, ...]]:
    """Head sphere, neck cylinder and intertrochanteric cylinder as masks on the volume grid, and their box.

    Distances are computed only inside the box that can hold the regions, from the affine one
    axis at a time (a voxel's position is the sum of its slice, row and column offsets).
    """
    shape = volume.array.shape
    head = np.zeros(shape, bool)
    neck = np.zeros(shape, bool)
    inter = np.zeros(shape, bool)
    box = _region_box(volume, center, radius, axis)
    if any(b.stop <= b.start for b in box):
        return head, neck, inter, box
    origin = volume.to_patient(np.array([b.start for b in box], float)) - center
    # Patient offsets (mm) of the box's slices, rows and columns, broadcast over (k, j, i).
    steps = [volume.affine[:3, 2], volume.affine[:3, 1], volume.affine[:3, 0]]
    dims = [np.arange(b.stop - b.start, dtype=float) for b in box]
    parts = []
    for a in range(3):  # x, y, z
        k = (dims[0] * steps[0][a])[:, None, None]
        j = (dims[1] * steps[1][a])[None, :, None]
        i = (dims[2] * steps[2][a])[None, None, :]
        parts.append(origin[a] + k + j + i)
    x, y, z = parts
    dist2 = x * x + y * y + z * z
    along = x * axis[0] + y * axis[1] + z * axis[2]
    across2 = np.clip(dist2 - along * along, 0.0, None)
    head_box = dist2 <= (HEAD_REGION_FRACTION * radius) ** 2
    neck_box = (along > 0) & (along <= NECK_END_FRACTION * radius) & (across2 <= (NECK_RADIUS_FRACTION * radius) ** 2) & ~head_box
    inter_box = (
        ~head_box
        & (along > NECK_END_FRACTION * radius)
        & (along <= INTERTROCHANTERIC_END_FRACTION * radius)
        & (across2 <= (INTERTROCHANTERIC_RADIUS_FRACTION * radius) ** 2)
    )
    head[box], neck[box], inter[box] = head_box, neck_box, inter_box
    return head, neck, inter, box


def find_femoral_heads(t1: Volume) -> list[FemoralHead]:
    """Find the left and right femoral heads on a coronal T1 volume.

    Parameters
    ----------
    t1
        Coronal T1-weighted volume (slices roughly perpendicular to the patient's AP axis).

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
    factor = max(1, int(round(HOUGH_PIXEL_MM / min(dy, dx))))
    img = full = normalise(t1.array)
    if factor > 1:
        n, rows, cols = img.shape
        if rows % factor == 0 and cols % factor == 0:
            img = img.reshape(n, rows // factor, factor, cols // factor, factor).mean(axis=(2, 4), dtype=np.float32)
        else:
            img = np.stack([downscale_local_mean(s, (factor, factor)) for s in img]).astype(np.float32)
    pix = min(dy, dx) * factor
    radii_px = np.arange(max(3, int(np.floor(SLICE_RADII_MM[0] / pix))), int(np.ceil(SLICE_RADII_MM[1] / pix)) + 1)
    votes = _circle_votes(img, radii_px)
    dz_px = dz / pix

    mid = _midline_column(img)
    cols = np.arange(img.shape[2])
    col_to_left = 1.0 if t1.affine[0, 0] >= 0 else -1.0  # +x (LPS) is patient left
    offset = (cols - mid) * col_to_left
    min_px = MIN_MIDLINE_DISTANCE_MM / pix
    sides = {Side.right: offset <= -min_px, Side.left: offset >= min_px}
    # The columns of each side (a contiguous run: the offset is monotonic in the column).
    side_columns = {side: slice(int(np.flatnonzero(a)[0]), int(np.flatnonzero(a)[-1]) + 1) for side, a in sides.items() if a.any()}

    # Coarse search over sphere radius and centre slice; candidates per side.
    candidates: dict[Side, list[tuple[float, float, float, int, int]]] = {Side.right: [], Side.left: []}
    side_votes = {side: np.ascontiguousarray(votes[..., columns]) for side, columns in side_columns.items()}
    for radius_mm in np.arange(HOUGH_RADII_MM[0], HOUGH_RADII_MM[1] + 0.01, 1.5):
        for side, columns in side_columns.items():
            scores = _sphere_scores_all_slices(side_votes[side], radii_px, radius_mm / pix, dz_px)
            flat = scores.reshape(scores.shape[0], -1)
            best_at = np.argmax(flat, axis=1)
            for z0, at in enumerate(best_at):
                j, i = np.unravel_index(int(at), scores.shape[1:])
                candidates[side].append((float(flat[z0, at]), float(z0), float(radius_mm), int(j), int(i) + columns.start))
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
        center = t1.to_patient(centre_idx)
        lateral = -1 if side is Side.right else 1
        axis, brightness = _neck_axis(t1, full, center, radius_mm, lateral)
        found[side] = (center, float(radius_mm), float(score), axis, brightness)
    _reconcile_neck_axes(found)
    heads: list[FemoralHead] = []
    for side, (center, radius_mm, score, axis, _) in found.items():
        head, neck, inter, box = _regions(t1, center, radius_mm, axis)
        heads.append(FemoralHead(side, center, radius_mm, score, axis, head, neck, inter, box))
    return heads


def _reconcile_neck_axes(found: dict[Side, tuple]) -> None:
    """Mirror the clearer neck axis onto the other side when the two disagree.

    Edema lowers the T1 signal of the neck marrow to that of muscle, so on an edematous hip the
    neck stands out less and its axis can drift by 10-15 degrees; neck-shaft angles of the two
    hips of one person differ by a few degrees only. When the axes, mirrored through the
    midsagittal plane, differ by more than ``NECK_AXIS_MAX_ASYMMETRY_DEG``, the axis of the side
    whose neck marrow is darker on T1 is replaced by the mirror image of the other (in place).
    """
    if len(found) != 2:
        return
    right, left = found[Side.right], found[Side.left]
    mirror = np.array([-1.0, 1.0, 1.0])
    angle = np.degrees(np.arccos(np.clip(float(right[3] @ (left[3] * mirror)), -1.0, 1.0)))
    if angle <= NECK_AXIS_MAX_ASYMMETRY_DEG:
        return
    weak, strong = (Side.right, Side.left) if right[4] < left[4] else (Side.left, Side.right)
    found[weak] = found[weak][:3] + (found[strong][3] * mirror, found[weak][4])


def _distinct(cands: list[tuple[float, float, float, int, int]], pix: float, dz: float, n: int = 5) -> list:
    """The best ``n`` candidates whose centres are at least 20 mm apart."""
    out: list[tuple[float, float, float, int, int]] = []
    for c in sorted(cands, reverse=True):
        if all(np.hypot(np.hypot((c[3] - o[3]) * pix, (c[4] - o[4]) * pix), (c[1] - o[1]) * dz) > 20.0 for o in out):
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
    """Finer search of centre slice (quarter slices) and radius (0.5 mm) near a candidate;
    sub-pixel in-plane centre from the vote-weighted centroid around the peak."""
    _, z0c, rc, jc, ic = cand
    j0, j1 = max(jc - 3, 0), min(jc + 4, votes.shape[2])
    i0, i1 = max(ic - 3, 0), min(ic + 4, votes.shape[3])
    top = (-1.0, z0c, rc, float(jc), float(ic))
    for z0 in np.arange(z0c - 1.0, z0c + 1.01, 0.25):
        for radius_mm in np.arange(rc - 2.0, rc + 2.01, 0.5):
            if not HOUGH_RADII_MM[0] - 2 <= radius_mm <= HOUGH_RADII_MM[1] + 2:
                continue
            sub = _sphere_score(votes[:, :, j0:j1, i0:i1], radii_px, z0, radius_mm / pix, dz_px)
            j, i = np.unravel_index(int(np.argmax(sub)), sub.shape)
            if sub[j, i] > top[0]:
                patch = np.clip(sub - 0.8 * sub[j, i], 0, None)
                gy, gx = np.mgrid[0 : sub.shape[0], 0 : sub.shape[1]]
                jf = float((patch * gy).sum() / patch.sum()) + j0
                if_ = float((patch * gx).sum() / patch.sum()) + i0
                top = (float(sub[j, i]), float(z0), float(radius_mm), jf, if_)
    return top
