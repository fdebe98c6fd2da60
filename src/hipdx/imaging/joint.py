"""Acetabular bone marrow edema and hip joint effusion, around a femoral head found on T1.

Both are searched in regions drawn from the femoral head found on the T1 series (centre,
radius = the marrow/cortex edge, neck axis), on the fluid-sensitive series resampled onto
the T1 grid:

* **Acetabular edema**: a shell of the acetabular roof, ``ACETABULUM_DEPTH_MM`` from the head
  (outside the head sphere, its cartilage and the acetabular subchondral cortex), in a cone of
  ``ACETABULUM_HALF_ANGLE_DEG`` around a direction ``ACETABULUM_TILT_DEG`` medial of vertical
  (the weight-bearing roof and the medial wall above the head; the lateral rim beyond 25
  degrees, where the muscle lies, is left out). The shell stays inside the acetabular wall:
  beyond its outer cortex lies muscle, brighter than pelvic marrow on STIR (about 1.4 x), which
  a shell reaching past the wall counts as edema. Edema there is thresholded exactly as femoral
  edema (:func:`hipdx.imaging.edema.segment_edema`, Q3 + 2 IQR, half-contrast delineation),
  against the shell's own normal marrow (pelvic marrow is not femoral marrow): the quartiles of
  its fatty, T1-bright voxels (edema, cortex and soft tissue are darker on T1).
* **Effusion**: fluid = STIR above ``EFFUSION_STIR_RATIO`` x the side's normal femoral marrow
  (far above marrow edema, which is 1.2-2.5 x marrow on real STIR, ``research/imaging.md`` 1.6)
  *and* T1 below ``EFFUSION_T1_RATIO`` x the head's fatty marrow, in a capsule band around the
  head and neck outside their bone regions; components under ``EFFUSION_MIN_COMPONENT_ML``
  are dropped.

The ratios and region sizes are set on the synthetic phantom (``hipdx.imaging.phantom``),
where the figures in ``docs/imaging-analysis.md`` were measured; no real labelled STIR of the
hip is available to check them (the real pelvis series are T1 only).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hipdx.imaging.edema import MIN_MASK_VOXELS, ReferenceMarrow, estimate_reference, segment_edema
from hipdx.imaging.heads import FemoralHead
from hipdx.imaging.parameters import param
from hipdx.imaging.volume import SeriesKind, Volume

__all__ = [
    "ACETABULUM_DEPTH_MM",
    "EFFUSION_STIR_RATIO",
    "EFFUSION_T1_RATIO",
    "joint_box",
    "measure_acetabular_edema",
    "measure_effusion",
]

#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "joint").
ACETABULUM_DEPTH_MM = param("joint.acetabulum_depth_mm")
ACETABULUM_TILT_DEG = param("joint.acetabulum_tilt_deg")
ACETABULUM_HALF_ANGLE_DEG = param("joint.acetabulum_half_angle_deg")
ACETABULAR_MIN_COMPONENT_ML = param("joint.acetabular_min_component_ml")
ACETABULAR_REFERENCE_T1_RATIO = param("joint.acetabular_reference_t1_ratio")
EFFUSION_STIR_RATIO = param("joint.effusion_stir_ratio")
EFFUSION_T1_RATIO = param("joint.effusion_t1_ratio")
CAPSULE_HEAD_OUTSIDE = param("joint.capsule_head_outside")
CAPSULE_REACH_MM = param("joint.capsule_reach_mm")
CAPSULE_NECK_RADIUS = param("joint.capsule_neck_radius")
CAPSULE_NECK_END = param("joint.capsule_neck_end")
EFFUSION_MIN_COMPONENT_ML = param("joint.effusion_min_component_ml")


def _index_box(t1: Volume, lo_mm: np.ndarray, hi_mm: np.ndarray) -> tuple[slice, ...]:
    """Voxel box of the T1 grid holding every voxel centre of the patient box ``lo_mm``-``hi_mm``."""
    corners = np.array([[a[0], b[1], c[2]] for a in (lo_mm, hi_mm) for b in (lo_mm, hi_mm) for c in (lo_mm, hi_mm)])
    idx = t1.to_index(corners)
    lo = np.maximum(np.floor(idx.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, t1.array.shape)
    return tuple(slice(int(a), int(max(a, b))) for a, b in zip(lo, hi))


def _within(box: tuple[slice, ...], outer: tuple[slice, ...] | None) -> tuple[slice, ...]:
    """``box`` of the T1 grid as a slice of an array covering the box ``outer`` (the whole grid when ``None``)."""
    if outer is None:
        return box
    if any(b.start < o.start or b.stop > o.stop for b, o in zip(box, outer)):
        raise ValueError(f"the fluid-sensitive values cover {outer}, which does not hold the box {box} searched")
    return tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer))


def joint_box(t1: Volume, head: FemoralHead) -> tuple[slice, ...]:
    """Voxel box of the T1 grid holding the acetabular shell and the capsule band of ``head``."""
    reach = head.radius_mm + max(ACETABULUM_DEPTH_MM[1], CAPSULE_REACH_MM) + 2.0
    end = np.asarray(head.center_mm) + CAPSULE_NECK_END * head.radius_mm * np.asarray(head.neck_axis)
    lo_mm = np.minimum(np.asarray(head.center_mm) - reach, end - reach)
    hi_mm = np.maximum(np.asarray(head.center_mm) + reach, end + reach)
    return _index_box(t1, lo_mm, hi_mm)


def _acetabular_axis(head: FemoralHead) -> np.ndarray:
    """Unit axis (LPS) of the acetabular cone: ``ACETABULUM_TILT_DEG`` medial of vertical."""
    lateral = 1.0 if head.side.value == "left" else -1.0  # +x is the patient's left
    tilt = np.deg2rad(ACETABULUM_TILT_DEG)
    return np.array([-lateral * np.sin(tilt), 0.0, np.cos(tilt)])


def _shell_box(t1: Volume, head: FemoralHead) -> tuple[slice, ...]:
    """Voxel box holding the acetabular shell of ``head``: the cone, cut at the shell's outer radius.

    Per patient axis e, the farthest point of a cone of half angle h around ``axis``, within a
    ball of radius ``outer``, lies ``outer`` along e when e is inside the cone, otherwise
    ``outer * cos(angle(e, axis) - h)`` (the nearest cone line), and the apex (0) bounds it too.
    """
    axis = _acetabular_axis(head)
    outer = head.radius_mm + ACETABULUM_DEPTH_MM[1]
    half = np.deg2rad(ACETABULUM_HALF_ANGLE_DEG)
    reach = []
    for e in np.vstack([np.eye(3), -np.eye(3)]):
        angle = float(np.arccos(np.clip(e @ axis, -1.0, 1.0)))
        reach.append(outer if angle <= half else max(outer * np.cos(angle - half), 0.0))
    centre = np.asarray(head.center_mm, float)
    margin = 1.0  # mm: rounding of the bounds never drops a voxel of the shell
    box = _index_box(t1, centre - np.array(reach[3:]) - margin, centre + np.array(reach[:3]) + margin)
    outer_box = joint_box(t1, head)  # the shell box never leaves the joint box
    return tuple(slice(max(a.start, b.start), max(min(a.stop, b.stop), max(a.start, b.start)))
                 for a, b in zip(box, outer_box))


def _offsets(t1: Volume, head: FemoralHead, box: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient offsets (x, y, z, mm) from the head centre of the voxels of ``box``.

    A voxel's position is the sum of its slice, row and column offsets, so each coordinate is
    three per-axis terms broadcast over the box (no per-voxel matrix product).
    """
    origin = t1.to_patient(np.array([b.start for b in box], float)) - np.asarray(head.center_mm)
    steps = [t1.affine[:3, 2], t1.affine[:3, 1], t1.affine[:3, 0]]  # per slice, row, column
    dims = [np.arange(b.stop - b.start, dtype=float) for b in box]
    out = []
    for a in range(3):
        out.append(
            origin[a]
            + (dims[0] * steps[0][a])[:, None, None]
            + (dims[1] * steps[1][a])[None, :, None]
            + (dims[2] * steps[2][a])[None, None, :]
        )
    return out[0], out[1], out[2]


def _point_offsets(t1: Volume, head: FemoralHead, box: tuple[slice, ...],
                   kji: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient offsets (x, y, z, mm) from the head centre of some voxels of ``box`` (indices in the box)."""
    origin = t1.to_patient(np.array([b.start for b in box], float)) - np.asarray(head.center_mm)
    steps = [t1.affine[:3, 2], t1.affine[:3, 1], t1.affine[:3, 0]]  # per slice, row, column
    k, j, i = (np.asarray(n, dtype=float) for n in kji)
    x, y, z = (origin[a] + k * steps[0][a] + j * steps[1][a] + i * steps[2][a] for a in range(3))
    return x, y, z


def _in_shell(head: FemoralHead, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Whether offsets (mm) from the head centre lie in its acetabular shell."""
    r = np.sqrt(x * x + y * y + z * z)
    axis = _acetabular_axis(head)
    cos_angle = (x * axis[0] + y * axis[1] + z * axis[2]) / np.maximum(r, 1e-9)
    inner, outer = (head.radius_mm + d for d in ACETABULUM_DEPTH_MM)
    return (r >= inner) & (r <= outer) & (cos_angle >= np.cos(np.deg2rad(ACETABULUM_HALF_ANGLE_DEG)))


def _in_capsule(head: FemoralHead, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Whether offsets (mm) from the head centre lie in its capsule band (bone regions not removed)."""
    axis = np.asarray(head.neck_axis, float)
    r2 = x * x + y * y + z * z
    along = x * axis[0] + y * axis[1] + z * axis[2]
    across = np.sqrt(np.clip(r2 - along * along, 0.0, None))
    radius = head.radius_mm
    around_head = (r2 > (CAPSULE_HEAD_OUTSIDE * radius) ** 2) & (r2 <= (radius + CAPSULE_REACH_MM) ** 2)
    neck_tube = CAPSULE_NECK_RADIUS * radius
    around_neck = (
        (along > 0) & (along <= CAPSULE_NECK_END * radius)
        & (across > neck_tube) & (across <= neck_tube + CAPSULE_REACH_MM)
        & (r2 > (CAPSULE_HEAD_OUTSIDE * radius) ** 2)
    )
    return around_head | around_neck


def acetabular_region(t1: Volume, head: FemoralHead, box: tuple[slice, ...]) -> np.ndarray:
    """The acetabular roof shell of ``head`` inside ``box`` (boolean, box shape)."""
    return _in_shell(head, *_offsets(t1, head, box))


def capsule_region(t1: Volume, head: FemoralHead, box: tuple[slice, ...]) -> np.ndarray:
    """The capsule band around the head and neck of ``head`` inside ``box`` (the bone regions not removed)."""
    return _in_capsule(head, *_offsets(t1, head, box))


def _shell_marrow(values: np.ndarray, t1: Volume, head: FemoralHead, box: tuple[slice, ...],
                  region: np.ndarray) -> ReferenceMarrow:
    """Normal marrow of the acetabular shell on the fluid-sensitive series: its fatty (T1-bright) voxels.

    Normal marrow is fatty, bright on T1; edema, cortex and soft tissue are darker. The
    reference is the quartiles of the fluid-sensitive signal where T1 is at least
    ``ACETABULAR_REFERENCE_T1_RATIO`` x the femoral head's fatty marrow (its 90th percentile),
    the spread of the whole shell's marrow included (coil field, texture). With fewer than
    ``MIN_MASK_VOXELS`` such voxels, the darkest clear histogram peak of the shell is used.
    """
    where = head.region_box or tuple(slice(0, n) for n in t1.array.shape)  # the head lies in its region box
    head_mask = head.head_mask[where]
    if head_mask.any():
        fat = float(np.percentile(t1.array[where][head_mask], 90))
        fatty = region & (t1.array[box] >= ACETABULAR_REFERENCE_T1_RATIO * fat)
        if np.count_nonzero(fatty) >= MIN_MASK_VOXELS:
            q1, median, q3 = np.percentile(values[fatty], [25, 50, 75])
            return ReferenceMarrow(float(median), float(q1), float(q3), int(np.count_nonzero(fatty)),
                                   "fatty (T1-bright) marrow of the acetabular shell")
    return estimate_reference(values[region])


def _shell(stir_on_t1: np.ndarray, t1: Volume, head: FemoralHead, stir_box: tuple[slice, ...] | None):
    """The shell's box, its region inside the fluid-sensitive series, and the fluid-sensitive values of the box."""
    box = _shell_box(t1, head)  # only the shell's box is read: nothing outside it is searched
    region = acetabular_region(t1, head, box)
    values = np.asarray(stir_on_t1[_within(box, stir_box)], dtype=np.float32)
    region &= values > 0  # outside the fluid-sensitive series
    return box, region, values


def acetabular_reference(
    stir_on_t1: np.ndarray, t1: Volume, head: FemoralHead, *, stir_box: tuple[slice, ...] | None = None
) -> tuple[ReferenceMarrow, float] | None:
    """The acetabular shell's normal-marrow reference (as :func:`measure_acetabular_edema` takes it
    by default) and the median T1 signal of the shell, for comparing the two sides; None when
    the shell lies outside the fluid-sensitive series."""
    box, region, values = _shell(stir_on_t1, t1, head, stir_box)
    if region.sum() < 50:
        return None
    return _shell_marrow(values, t1, head, box, region), float(np.median(t1.array[box][region]))


def measure_acetabular_edema(
    stir_on_t1: np.ndarray,
    t1: Volume,
    head: FemoralHead,
    reference: ReferenceMarrow | None = None,
    *,
    stir_box: tuple[slice, ...] | None = None,
) -> tuple[float, np.ndarray]:
    """Bone marrow edema of the acetabular roof above and medial to ``head``.

    Parameters
    ----------
    stir_on_t1
        Fluid-sensitive signal resampled onto the T1 grid (shape of ``t1.array``, or of
        ``stir_box``); only the :func:`joint_box` of ``head`` is read.
    t1
        The T1 volume the head was found on (grid, voxel size, fatty marrow of the reference).
    head
        The femoral head (centre, radius in mm) defining the acetabular shell.
    reference
        Normal pelvic marrow statistics; by default measured in the shell itself: the quartiles
        of its voxels with T1 at least ``ACETABULAR_REFERENCE_T1_RATIO`` x the head's fatty
        marrow (the darkest clear histogram peak of the shell,
        :func:`hipdx.imaging.edema.estimate_reference`, when fewer than 50 are). Femoral marrow
        is no reference here: pelvic marrow is brighter on STIR.
    stir_box
        The box of the T1 grid that ``stir_on_t1`` covers, when it is not the whole grid (e.g.
        ``stir_on_t1 = resample_onto(stir, t1, joint_box(t1, head))``, with ``stir_box`` that box);
        it must hold the :func:`joint_box` of ``head``.

    Returns
    -------
    (volume_ml, mask)
        Edema volume in mL and its boolean mask on the full T1 grid.

    Example
    -------
    >>> volume_ml, mask = measure_acetabular_edema(stir_on_t1, t1, head)  # doctest: +SKIP
    """
    mask = np.zeros(t1.array.shape, bool)
    box, region, values = _shell(stir_on_t1, t1, head, stir_box)
    if region.sum() < 50:
        return 0.0, mask
    if reference is None:
        reference = _shell_marrow(values, t1, head, box, region)
    sub = Volume(values, t1.affine, SeriesKind.fluid)
    result = segment_edema(sub, region, reference_marrow=reference, half_contrast=True,
                           min_component_ml=ACETABULAR_MIN_COMPONENT_ML)
    mask[box] = result.mask
    return result.volume_ml, mask


def measure_effusion(
    stir_on_t1: np.ndarray,
    t1: Volume,
    head: FemoralHead,
    marrow: ReferenceMarrow | None = None,
    *,
    stir_box: tuple[slice, ...] | None = None,
) -> tuple[float, np.ndarray]:
    """Hip joint effusion around ``head``: very high STIR and low T1 in the capsule band.

    Parameters
    ----------
    stir_on_t1
        Fluid-sensitive signal resampled onto the T1 grid (shape of ``t1.array``, or of
        ``stir_box``); only the :func:`joint_box` of ``head`` is read.
    t1
        The T1 volume (its signal gives the low-T1 condition; grid and voxel size).
    head
        The femoral head (centre, radius, neck axis) the capsule band is drawn around.
    marrow
        Normal femoral marrow of this side on the fluid-sensitive series; by default estimated
        in the head and neck regions (darkest clear histogram peak).
    stir_box
        The box of the T1 grid that ``stir_on_t1`` covers, when it is not the whole grid (e.g.
        ``stir_on_t1 = resample_onto(stir, t1, joint_box(t1, head))``, with ``stir_box`` that box);
        it must hold the :func:`joint_box` of ``head``.

    Returns
    -------
    (volume_ml, mask)
        Fluid volume in mL and its boolean mask on the full T1 grid.

    Example
    -------
    >>> volume_ml, mask = measure_effusion(stir_on_t1, t1, head)  # doctest: +SKIP
    """
    mask = np.zeros(t1.array.shape, bool)
    box = joint_box(t1, head)
    stir = np.asarray(stir_on_t1[_within(box, stir_box)], dtype=np.float32)
    t1_values = t1.array[box]
    head_region = head.head_mask[box]
    bone = head_region | head.neck_mask[box]
    inside = bone & (stir > 0)
    if np.count_nonzero(inside) < 50:
        return 0.0, mask
    if marrow is None:
        marrow = estimate_reference(stir[inside])
    fat_t1 = float(np.percentile(t1_values[head_region] if head_region.any() else t1_values, 90))
    # Signal first (few voxels are fluid-bright and T1-dark), then the capsule band at those voxels only.
    candidate = (stir > EFFUSION_STIR_RATIO * marrow.median) & (t1_values < EFFUSION_T1_RATIO * fat_t1) & ~bone
    kji = np.unravel_index(np.flatnonzero(candidate), candidate.shape)  # np.nonzero is slower in 3-D
    keep = _in_capsule(head, *_point_offsets(t1, head, box, kji))
    kji = tuple(n[keep] for n in kji)
    if not kji[0].size:
        return 0.0, mask
    # Connected components inside the bounding box of the fluid voxels (the same components).
    lo = [int(n.min()) for n in kji]
    fluid = np.zeros([int(n.max()) - a + 1 for n, a in zip(kji, lo)], bool)
    fluid[tuple(n - a for n, a in zip(kji, lo))] = True
    labels, _ = ndimage.label(fluid)
    sizes = np.bincount(labels.ravel())[1:] * t1.voxel_volume_ml
    fluid = np.concatenate([[False], sizes >= EFFUSION_MIN_COMPONENT_ML])[labels]
    mask[tuple(slice(b.start + a, b.start + a + n) for b, a, n in zip(box, lo, fluid.shape))] = fluid
    return float(np.count_nonzero(fluid) * t1.voxel_volume_ml), mask
