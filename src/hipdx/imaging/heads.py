"""Both femoral heads on a coronal T1 series: centre, radius and a head-and-neck region.

The method is the classical pipeline measured on real coronal T1 pelvis series
(``research/imaging.md`` 2.2-2.3; Memis et al. 2019 for Hough localisation of femoral heads):

1. intensity range from the 1st/99th percentiles of a subsample, in-plane block mean to about
   3.6 mm pixels (coarse search only);
2. directed circle votes on every coronal slice at once: gradient maxima inside the body vote for
   the centres 10-29 mm away towards the brighter side (fatty marrow inside the cortex);
3. sphere scores from the per-slice votes (a femoral head votes for the same in-plane centre on
   every slice it crosses, with the circle radius sqrt(R^2 - d^2)), the best pair of candidates
   on the two sides of the body midline (patient left = +x in LPS);
4. the sphere refined at full resolution: on every slice it cuts, rays from the centre find the
   steepest fall of T1 signal into the dark cortex, and a robust least-squares sphere is fitted to
   these marrow-edge points (a few rounds until it settles; centres within 0.3 mm on the phantoms);
5. regions from shape, not from marrow signal (edema and necrosis lower T1 marrow signal
   exactly where the region is needed): the head is the sphere, the neck a cylinder along
   the neck axis, the intertrochanteric region its continuation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from hipdx.case.model import Side
from hipdx.errors import ImagingError
from hipdx.imaging.volume import Volume

#: Sphere radii searched (mm); the edge found is the marrow/cortex boundary (research/imaging.md 2.2),
#: in steps of SPHERE_RADIUS_STEP_MM (the full-resolution fit sets the radius found).
HOUGH_RADII_MM = (16.0, 28.0)
SPHERE_RADIUS_STEP_MM = 3.0
#: Circle radii voted on each slice (mm): off-centre slices cut the sphere in smaller circles.
SLICE_RADII_MM = (10.0, 29.0)
#: Penalty on the sphere score per mm of height/depth difference between left and right heads.
ASYMMETRY_PENALTY_PER_MM = 0.002
#: Below this mean circle vote no head is reported on a side.
MIN_SCORE = 0.08
#: In-plane pixel size the coarse Hough search runs at (mm).
HOUGH_PIXEL_MM = 3.6
#: Edge detection at the Hough pixel size: Gaussian smoothing (pixels) and the least Sobel
#: gradient magnitude of an edge (normalised intensity change over two pixels).
EDGE_SIGMA_PX = 0.8
EDGE_THRESHOLD = 0.05
#: An edge with air (normalised signal below 0.1) this many pixels outwards is the body outline.
OUTLINE_PX = 2.5
#: Full-resolution fit of the marrow edge: rays per slice, search window around the coarse
#: circle (mm), sample step and profile smoothing (mm), least signal fall of an edge (normalised
#: intensity per mm), least number of edge points, largest shift from the coarse centre (mm).
FIT_RAYS = 48
FIT_WINDOW_MM = (-5.0, 8.0)
FIT_STEP_MM = 0.4
FIT_SMOOTH_MM = 0.6
FIT_MIN_FALL_PER_MM = 0.08
#: Cortex on T1: below this normalised signal; the edge lies at most FIT_BEFORE_DARK_MM before it.
FIT_DARK = 0.25
FIT_BEFORE_DARK_MM = 3.0
FIT_MIN_POINTS = 40
FIT_MAX_SHIFT_MM = 12.0
FIT_ROUNDS = 6
#: Slices within this share of the radius from the centre carry edge rays (their cut is >= 0.6 R).
FIT_SLICE_REACH = 0.8
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
HEAD_REGION_FRACTION = 0.98
#: Neck axis: percentile of the T1 signal along a ray that scores it, and the plateau of rays
#: averaged (share of the best score's lead over the median score).
NECK_RAY_PERCENTILE = 20.0
NECK_PLATEAU = 0.25
#: The joint medially above a femoral head: rays leave the centre towards the midline and upwards
#: (ROOF_ANGLES_DEG above the horizontal, in the coronal plane) on the central plane and ROOF_PLANES
#: x R in front of and behind it; between ROOF_REACH x R from the centre, a femoral head's ray crosses
#: its cortex, the joint space or the acetabular plate, dark on T1 (below FIT_DARK). The greater
#: trochanter, which the whole-image search takes when edema darkens the head, has the femoral neck
#: there, whose marrow runs on (:func:`roof_share`; the limit is in :mod:`hipdx.imaging.anatomy`).
#: Reach: from inside the marrow edge (0.8 R) to beyond the joint space and acetabular plate
#: (1.6 R, ~13 mm past the marrow edge), short of the pelvis's inner wall. 10-80 degrees: from the
#: medial wall to the roof over the dome; the fovea lies below the horizontal, the lateral rim and
#: labrum beyond the vertical.
ROOF_ANGLES_DEG = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0)
ROOF_PLANES = (-0.3, 0.0, 0.3)
ROOF_REACH = (0.8, 1.6)
ROOF_STEP_MM = 0.4
#: Largest left-right difference of the neck axes (degrees) kept as measured. The two femora of
#: healthy adults differ in anteversion by 4.3 +/- 3.8 degrees (0.2-17.3; CT models of 61 subjects,
#: PMID 26867707); 10 is about the mean + 1.5 SD. Was 6: the real pair of series-01 differs by 6.0,
#: and a neck darkened by edema, whose own axis drifted 1-3 degrees (measured on the three real
#: series), then took the mirrored 6-degree-off axis and lost a fifth of its edema.
NECK_AXIS_MAX_ASYMMETRY_DEG = 10.0
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
    found_by
        ``"image search"`` (this module) or ``"partner search"`` (:mod:`hipdx.imaging.partner`:
        found beside the other head, whose radius it takes).
    neck_brightness
        Normalised T1 signal along its own neck axis (:func:`_neck_axis`; nan when not measured).
    roof_share
        Share of the rays medially above the centre that meet dark T1 signal (:func:`roof_share`;
        nan when not measured).
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
    found_by: str = "image search"
    neck_brightness: float = float("nan")
    roof_share: float = float("nan")

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


def _intensity_range(array: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles of the non-zero voxels, from every 4th row and column."""
    sample = array[:, ::4, ::4]
    values = sample[sample > 0]
    if values.size == 0:
        values = array[array > 0]
    if values.size == 0:
        raise ImagingError("the image is empty (all voxels are zero)")
    # ``values`` is a copy made here: partitioned in place (same percentiles, no second copy).
    lo, hi = (float(v) for v in np.percentile(values, [low, high], overwrite_input=True))
    if hi <= lo:
        raise ImagingError("the image has no contrast")
    return lo, hi


def _scaled(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Intensities mapped as :func:`normalise` does, with a known range (float32, 0-1.5)."""
    out = np.subtract(values, np.float32(lo), dtype=np.float32)
    np.divide(out, np.float32(hi - lo), out=out)
    return np.clip(out, 0.0, 1.5, out=out)


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """In-plane block mean of a (slices, rows, cols) stack over ``factor`` x ``factor`` pixels (edges cropped).

    Columns are summed first, then rows, each as ``factor`` strided views of a reshaped array
    (float32, summed in the same order as a loop over the block), a few slices at a time so the
    strided passes read from the cache.
    """
    if factor == 1:
        return array.astype(np.float32)
    n, rows, cols = array.shape
    rows, cols = rows - rows % factor, cols - cols % factor
    chunk = 4
    out = np.empty((n, rows // factor, cols // factor), np.float32)
    across = np.empty((min(chunk, n), rows, cols // factor), np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        within = array[start:stop, :rows, :cols].reshape(stop - start, rows, cols // factor, factor)
        part = across[: stop - start]
        np.add(within[..., 0], within[..., 1], out=part, dtype=np.float32)
        for b in range(2, factor):
            part += within[..., b]
        blocks = part.reshape(stop - start, rows // factor, factor, cols // factor)
        total = out[start:stop]
        np.add(blocks[:, :, 0], blocks[:, :, 1], out=total)
        for a in range(2, factor):
            total += blocks[:, :, a]
    out /= np.float32(factor * factor)
    return out


def _circle_votes(img: np.ndarray, radii_px: np.ndarray) -> np.ndarray:
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
    keep = outside > 0.1
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
        if not d < 0.9 * radius_px:
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


def _neck_axis(
    t1: Volume, lo: float, hi: float, center: np.ndarray, radius_mm: float, lateral: int
) -> tuple[np.ndarray, float]:
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
    elev, tilt = np.meshgrid(
        np.deg2rad(np.arange(NECK_ANGLE_RANGE_DEG[0], NECK_ANGLE_RANGE_DEG[1] + 0.1, 2.5)),
        np.deg2rad(np.arange(ANTEVERSION_RANGE_DEG[0], ANTEVERSION_RANGE_DEG[1] + 0.1, 5.0)),
        indexing="ij",
    )
    elev, tilt = elev.ravel()[:, None], tilt.ravel()[:, None]
    axes = np.cos(elev) * np.cos(tilt) * lateral_v + np.sin(elev) * inferior + np.cos(elev) * np.sin(tilt) * posterior
    # Points (ray, distance, offset, xyz) of every ray, sampled in one call.
    pts = center + dist[None, :, None, None] * axes[:, None, None, :] + offsets[None, None]
    idx = t1.to_index(pts.reshape(-1, 3)).T
    values = ndimage.map_coordinates(t1.array, idx, order=1, mode="constant", cval=0.0)
    values = _scaled(values, lo, hi).reshape(len(axes), -1)
    scores_a = np.percentile(values, NECK_RAY_PERCENTILE, axis=1)
    best = float(scores_a.max())
    if best - float(np.median(scores_a)) < 0.05:
        elev = np.deg2rad(NECK_ANGLE_DEFAULT_DEG)
        axis = np.cos(elev) * lateral_v + np.sin(elev) * inferior
        return axis / np.linalg.norm(axis), 0.0
    lead = best - float(np.median(scores_a))
    plateau = scores_a >= best - NECK_PLATEAU * lead
    axis = axes[plateau].mean(axis=0)
    c = np.round(t1.to_index(center)).astype(int)
    reach = np.ceil(3.0 * radius_mm / np.array(t1.spacing_mm)).astype(int)
    around = t1.array[tuple(slice(max(a - r, 0), a + r + 1) for a, r in zip(c, reach))][:, ::2, ::2]
    around = around[around > lo]
    local = float(_scaled(np.percentile(around, 90, keepdims=True, overwrite_input=True), lo, hi)[0]) if around.size else 1.0
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
    offsets = [
        ((dims[0] * steps[0][a])[:, None, None], (dims[1] * steps[1][a])[None, :, None], (dims[2] * steps[2][a])[None, None, :])
        for a in range(3)  # x, y, z
    ]
    # A few slices at a time, so the temporaries stay in the cache.
    chunk = 4
    for start in range(0, len(dims[0]), chunk):
        ks = slice(start, start + chunk)
        x, y, z = (origin[a] + k[ks] + j + i for a, (k, j, i) in enumerate(offsets))
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
        part = (slice(box[0].start + ks.start, min(box[0].start + ks.start + chunk, box[0].stop)), box[1], box[2])
        head[part], neck[part], inter[part] = head_box, neck_box, inter_box
    return head, neck, inter, box


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
    lo, hi = _intensity_range(t1.array)
    factor = max(1, int(round(HOUGH_PIXEL_MM / min(dy, dx))))
    img = _scaled(_block_mean(t1.array, factor) if factor > 1 else t1.array, lo, hi)
    pix = min(dy, dx) * factor
    radii_px = np.arange(max(2, int(np.floor(SLICE_RADII_MM[0] / pix))), int(np.ceil(SLICE_RADII_MM[1] / pix)) + 1)
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
    # Each side's votes, radius first (see _sphere_scores_all_slices).
    side_votes = {side: np.ascontiguousarray(votes[..., columns]) for side, columns in side_columns.items()}
    for radius_mm in np.arange(HOUGH_RADII_MM[0], HOUGH_RADII_MM[1] + 0.01, SPHERE_RADIUS_STEP_MM):
        for side, columns in side_columns.items():
            scores = _sphere_scores_all_slices(side_votes[side], radii_px, radius_mm / pix, dz_px)
            flat = scores.reshape(scores.shape[0], -1)
            best_at = np.argmax(flat, axis=1)
            best_score = flat[np.arange(flat.shape[0]), best_at]
            rows_at, cols_at = np.unravel_index(best_at, scores.shape[1:])
            for z0 in range(flat.shape[0]):
                candidates[side].append(
                    (float(best_score[z0]), float(z0), float(radius_mm), int(rows_at[z0]), int(cols_at[z0]) + columns.start)
                )
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
        center, radius_mm = _fit_sphere(t1, lo, hi, t1.to_patient(centre_idx), float(radius_mm))
        lateral = -1 if side is Side.right else 1
        axis, brightness = _neck_axis(t1, lo, hi, center, radius_mm, lateral)
        found[side] = (center, float(radius_mm), float(score), axis, brightness)
    if reconcile:
        _reconcile_neck_axes(found)
    heads: list[FemoralHead] = []
    for side, (center, radius_mm, score, axis, brightness) in found.items():
        head, neck, inter, box = _regions(t1, center, radius_mm, axis)
        roof = roof_share(t1, side, center, radius_mm, (lo, hi))
        heads.append(FemoralHead(side, center, radius_mm, score, axis, head, neck, inter, box,
                                 neck_brightness=float(brightness), roof_share=roof))
    return heads


def roof_share(
    t1: Volume, side: Side, center_mm: np.ndarray, radius_mm: float, intensity_range: tuple[float, float] | None = None
) -> float:
    """Share of the rays medially above a head's centre that meet dark T1 signal (cortex, joint, acetabulum).

    See ``ROOF_ANGLES_DEG``: 1.0 on every real femoral head here (41, with the head and neck
    darkened to 0.4-0.7 or not), 0.04-0.67 on the greater trochanter circles the whole-image search
    took for darkened heads (11). Rays leaving the image are left out (a head at the edge of a thin
    coronal slab); nan when every ray does.
    """
    lo, hi = intensity_range if intensity_range is not None else _intensity_range(t1.array)
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


def _edge_points(
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


def _fit_sphere(t1: Volume, lo: float, hi: float, center: np.ndarray, radius_mm: float) -> tuple[np.ndarray, float]:
    """Refine a head found by the coarse search: a sphere fitted to its marrow edge at full resolution.

    Rounds of :func:`_edge_points` around the current sphere, each followed by a robust
    least-squares fit (points more than max(1.5 mm, 3 MAD) off the sphere dropped, refitted),
    until the sphere moves less than 0.1 mm (at most ``FIT_ROUNDS``).
    The coarse sphere is kept when there are too few points or the fit moves implausibly far.
    """
    best_centre, best_radius = np.asarray(center, float), float(radius_mm)
    for _ in range(FIT_ROUNDS):
        points = _edge_points(t1, lo, hi, best_centre, best_radius)
        if len(points) < FIT_MIN_POINTS:
            break
        centre, radius = _sphere_through(points)
        for _ in range(3):
            residual = np.abs(np.linalg.norm(points - centre, axis=1) - radius)
            limit = max(1.5, 3.0 * 1.4826 * float(np.median(residual)))
            keep = residual <= limit
            if keep.sum() < FIT_MIN_POINTS:
                break
            centre, radius = _sphere_through(points[keep])
        moved = float(np.linalg.norm(centre - np.asarray(center, float)))
        if moved > FIT_MAX_SHIFT_MM or not HOUGH_RADII_MM[0] - 3 <= radius <= HOUGH_RADII_MM[1] + 3:
            break
        step = float(np.linalg.norm(centre - best_centre)) + abs(radius - best_radius)
        best_centre, best_radius = centre, radius
        if step < 0.1:
            break
    return best_centre, best_radius


def reconcile_neck_axes(t1: Volume, heads: dict[Side, FemoralHead]) -> dict[Side, FemoralHead]:
    """Both heads with their neck axes reconciled (:func:`_reconcile_neck_axes`); the regions of a
    head whose axis is replaced are drawn again. Fewer than two heads are returned as they are."""
    if len(heads) != 2:
        return dict(heads)
    found = {}
    lo_hi = None
    for side, head in heads.items():
        brightness = head.neck_brightness
        if brightness != brightness:  # not measured with the head: measured here
            lo_hi = lo_hi or _intensity_range(t1.array)
            lateral = -1 if side is Side.right else 1
            brightness = _neck_axis(t1, *lo_hi, head.center_mm, head.radius_mm, lateral)[1]
        found[side] = (head.center_mm, head.radius_mm, head.score, head.neck_axis, brightness)
    _reconcile_neck_axes(found)
    out = {}
    for side, head in heads.items():
        axis = found[side][3]
        if axis is head.neck_axis:
            out[side] = head
            continue
        masks = _regions(t1, head.center_mm, head.radius_mm, axis)
        out[side] = FemoralHead(side, head.center_mm, head.radius_mm, head.score, axis, *masks, found_by=head.found_by,
                                neck_brightness=head.neck_brightness, roof_share=head.roof_share)
    return out


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
    """Finer search of centre slice (half slices) and radius (1 mm) near a candidate;
    sub-pixel in-plane centre from the vote-weighted centroid around the peak. ``votes`` are laid
    out as :func:`_circle_votes` returns them (radius, slice, row, col).

    Every (centre slice, radius) pair is scored at once: the sums of :func:`_sphere_score` run
    over the slices in the same order, so the scores are the same as one pair at a time, and
    the first pair with the highest score wins.
    """
    _, z0c, rc, jc, ic = cand
    j0, j1 = max(jc - 3, 0), min(jc + 4, votes.shape[2])
    i0, i1 = max(ic - 3, 0), min(ic + 4, votes.shape[3])
    patch = votes[:, :, j0:j1, i0:i1].transpose(1, 0, 2, 3)  # (slice, radius, row, col)
    pairs = [
        (z0, radius_mm)
        for z0 in np.arange(z0c - 1.0, z0c + 1.01, 0.5)
        for radius_mm in np.arange(rc - 2.0, rc + 2.01, 1.0)
        if HOUGH_RADII_MM[0] - 2 <= radius_mm <= HOUGH_RADII_MM[1] + 2
    ]
    if not pairs:
        return (-1.0, z0c, rc, float(jc), float(ic))
    z0s = np.array([z for z, _ in pairs])[:, None]
    radius_px = np.array([r for _, r in pairs])[:, None] / pix
    d = np.abs(np.arange(patch.shape[0], dtype=float)[None, :] - z0s) * dz_px  # (pair, slice)
    r = np.sqrt(np.clip(radius_px**2 - d**2, 0, None))
    use = (d < 0.9 * radius_px) & (r >= radii_px[0]) & (r <= radii_px[-1])
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
    weight = np.clip(sub - 0.8 * sub[j, i], 0, None)
    gy, gx = np.mgrid[0 : sub.shape[0], 0 : sub.shape[1]]
    mass = float(weight.sum())
    if mass <= 0:  # no votes at all around the candidate (a nearly empty image): the peak itself
        return (float(sub[j, i]), float(pairs[best][0]), float(pairs[best][1]), float(j + j0), float(i + i0))
    jf = float((weight * gy).sum() / mass) + j0
    if_ = float((weight * gx).sum() / mass) + i0
    return (float(sub[j, i]), float(pairs[best][0]), float(pairs[best][1]), jf, if_)
