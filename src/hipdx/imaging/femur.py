"""The femur model: a femoral head (sphere) with its head, neck and intertrochanteric regions, and the neck axis.

Regions are drawn from shape, not from marrow signal (edema and necrosis lower T1 marrow signal
exactly where the region is needed): the head is the sphere, the neck a cylinder along the neck
axis, the intertrochanteric region its continuation. The two neck axes are reconciled when they
differ more than two healthy femora do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from hipdx.case.model import Side
from hipdx.imaging.intensity import intensity_bounds, scaled_intensity
from hipdx.imaging.parameters import param
from hipdx.imaging.volume import Volume


#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "femur").
NECK_RADIUS_FRACTION = param("femur.neck_radius_fraction")


NECK_END_FRACTION = param("femur.neck_end_fraction")


INTERTROCHANTERIC_END_FRACTION = param("femur.intertrochanteric_end_fraction")


INTERTROCHANTERIC_RADIUS_FRACTION = param("femur.intertrochanteric_radius_fraction")


HEAD_REGION_FRACTION = param("femur.head_region_fraction")


NECK_RAY_PERCENTILE = param("femur.neck_ray_percentile")


NECK_PLATEAU = param("femur.neck_plateau")


NECK_AXIS_MAX_ASYMMETRY_DEG = param("femur.neck_axis_max_asymmetry_deg")


NECK_ANGLE_RANGE_DEG = param("femur.neck_angle_range_deg")


NECK_ANGLE_DEFAULT_DEG = param("femur.neck_angle_default_deg")


ANTEVERSION_RANGE_DEG = param("femur.anteversion_range_deg")
NECK_RAY_SPAN_RADII = param("femur.neck_ray_span_radii")
NECK_RAY_OFFSET_MM = param("femur.neck_ray_offset_mm")
NECK_ANGLE_STEP_DEG = param("femur.neck_angle_step_deg")
ANTEVERSION_STEP_DEG = param("femur.anteversion_step_deg")
NECK_MIN_LEAD = param("femur.neck_min_lead")
NECK_SURROUND_RADII = param("femur.neck_surround_radii")


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
        Normalised T1 signal along its own neck axis (:func:`neck_axis`; nan when not measured).
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


def neck_axis(
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
    dist = np.linspace(NECK_RAY_SPAN_RADII[0] * radius_mm, NECK_RAY_SPAN_RADII[1] * radius_mm, 10)
    offsets = np.array([[0, 0, 0], [0, NECK_RAY_OFFSET_MM, 0], [0, -NECK_RAY_OFFSET_MM, 0]], float)
    elev, tilt = np.meshgrid(
        np.deg2rad(np.arange(NECK_ANGLE_RANGE_DEG[0], NECK_ANGLE_RANGE_DEG[1] + 0.1, NECK_ANGLE_STEP_DEG)),
        np.deg2rad(np.arange(ANTEVERSION_RANGE_DEG[0], ANTEVERSION_RANGE_DEG[1] + 0.1, ANTEVERSION_STEP_DEG)),
        indexing="ij",
    )
    elev, tilt = elev.ravel()[:, None], tilt.ravel()[:, None]
    axes = np.cos(elev) * np.cos(tilt) * lateral_v + np.sin(elev) * inferior + np.cos(elev) * np.sin(tilt) * posterior
    # Points (ray, distance, offset, xyz) of every ray, sampled in one call.
    pts = center + dist[None, :, None, None] * axes[:, None, None, :] + offsets[None, None]
    idx = t1.to_index(pts.reshape(-1, 3)).T
    values = ndimage.map_coordinates(t1.array, idx, order=1, mode="constant", cval=0.0)
    values = scaled_intensity(values, lo, hi).reshape(len(axes), -1)
    scores_a = np.percentile(values, NECK_RAY_PERCENTILE, axis=1)
    best = float(scores_a.max())
    if best - float(np.median(scores_a)) < NECK_MIN_LEAD:
        elev = np.deg2rad(NECK_ANGLE_DEFAULT_DEG)
        axis = np.cos(elev) * lateral_v + np.sin(elev) * inferior
        return axis / np.linalg.norm(axis), 0.0
    lead = best - float(np.median(scores_a))
    plateau = scores_a >= best - NECK_PLATEAU * lead
    axis = axes[plateau].mean(axis=0)
    c = np.round(t1.to_index(center)).astype(int)
    reach = np.ceil(NECK_SURROUND_RADII * radius_mm / np.array(t1.spacing_mm)).astype(int)
    around = t1.array[tuple(slice(max(a - r, 0), a + r + 1) for a, r in zip(c, reach))][:, ::2, ::2]
    around = around[around > lo]
    local = float(scaled_intensity(np.percentile(around, 90, keepdims=True, overwrite_input=True), lo, hi)[0]) if around.size else 1.0
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


def femur_regions(volume: Volume, center: np.ndarray, radius: float, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[slice, ...]]:
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


def reconcile_neck_axes(t1: Volume, heads: dict[Side, FemoralHead]) -> dict[Side, FemoralHead]:
    """Both heads with their neck axes reconciled (:func:`reconcile_candidate_neck_axes`); the regions of a
    head whose axis is replaced are drawn again. Fewer than two heads are returned as they are."""
    if len(heads) != 2:
        return dict(heads)
    found = {}
    lo_hi = None
    for side, head in heads.items():
        brightness = head.neck_brightness
        if brightness != brightness:  # not measured with the head: measured here
            lo_hi = lo_hi or intensity_bounds(t1.array)
            lateral = -1 if side is Side.right else 1
            brightness = neck_axis(t1, *lo_hi, head.center_mm, head.radius_mm, lateral)[1]
        found[side] = (head.center_mm, head.radius_mm, head.score, head.neck_axis, brightness)
    reconcile_candidate_neck_axes(found)
    out = {}
    for side, head in heads.items():
        axis = found[side][3]
        if axis is head.neck_axis:
            out[side] = head
            continue
        masks = femur_regions(t1, head.center_mm, head.radius_mm, axis)
        out[side] = FemoralHead(side, head.center_mm, head.radius_mm, head.score, axis, *masks, found_by=head.found_by,
                                neck_brightness=head.neck_brightness, roof_share=head.roof_share)
    return out


def reconcile_candidate_neck_axes(found: dict[Side, tuple]) -> None:
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


HOUGH_RADII_MM = param("femur.hough_radii_mm")
