"""One image volume in DICOM patient coordinates: the currency of the imaging package.

Every reader (DICOM folder, NIfTI file, the phantom) produces :class:`Volume`; every
analysis step consumes it. Voxel ``array[k, j, i]`` is slice ``k`` (sorted along the
slice normal), row ``j``, column ``i``. ``affine`` maps the homogeneous voxel index
``(i, j, k, 1)`` to DICOM patient coordinates (LPS, millimetres).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from scipy import ndimage


class SeriesKind(str, Enum):
    """What a series shows: T1-weighted or fluid-sensitive (STIR, fat-saturated T2/PD)."""

    t1 = "t1"
    fluid = "fluid"
    unknown = "unknown"


@dataclass(frozen=True)
class Volume:
    """A 3-D image with its geometry and provenance.

    Parameters
    ----------
    array
        (slices, rows, columns) float32 intensities.
    affine
        4 x 4 matrix: voxel index (i = column, j = row, k = slice, 1) -> patient LPS mm.
    kind
        T1-weighted, fluid-sensitive or unknown.
    description
        Series description or file name, for messages and reports.
    source
        Where it came from (folder, file, "phantom"), for provenance.
    fat_suppression
        "STIR" (inversion recovery), "fat-saturated" (spectral, SPAIR, Dixon water) or None
        (none, or the headers do not say), from :func:`hipdx.imaging.io.classify`.
    contrast_agent
        The contrast agent given before the series (ContrastBolusAgent, or "contrast" when only
        the description says so); None before contrast or unknown.
    study_uid, frame_of_reference_uid, study_date
        StudyInstanceUID, FrameOfReferenceUID and StudyDate (YYYYMMDD) of a DICOM series; None
        when unknown (NIfTI). Series of one frame of reference share patient coordinates.
    damaged_share
        Share (0-1) of the voxels that were NaN or infinite as read, and are 0 in ``array``.
    """

    array: np.ndarray
    affine: np.ndarray
    kind: SeriesKind = SeriesKind.unknown
    description: str = ""
    source: str = ""
    series_uid: str | None = None
    warnings: tuple[str, ...] = field(default=())
    fat_suppression: str | None = None
    contrast_agent: str | None = None
    study_uid: str | None = None
    frame_of_reference_uid: str | None = None
    study_date: str | None = None
    damaged_share: float = 0.0

    @property
    def plane(self) -> str:
        """"coronal", "axial" or "sagittal" by the slice normal's main direction, "oblique" when
        it is more than 45 degrees from each (the in-plane directions are not checked)."""
        normal = np.abs(self.affine[:3, 2]) / max(float(np.linalg.norm(self.affine[:3, 2])), 1e-12)
        axis = int(np.argmax(normal))
        if normal[axis] < np.sqrt(0.5):
            return "oblique"
        return ("sagittal", "coronal", "axial")[axis]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along (slice, row, column) in millimetres."""
        columns, rows, slices = (float(np.linalg.norm(self.affine[:3, a])) for a in range(3))
        return slices, rows, columns

    @property
    def voxel_volume_ml(self) -> float:
        dz, dy, dx = self.spacing_mm
        return dz * dy * dx / 1000.0

    def to_patient(self, index_kji: np.ndarray) -> np.ndarray:
        """Patient LPS mm of voxel indices given as (..., 3) in (k, j, i) order."""
        kji = np.asarray(index_kji, dtype=float)
        ijk1 = np.concatenate([kji[..., ::-1], np.ones(kji.shape[:-1] + (1,))], axis=-1)
        return (ijk1 @ self.affine.T)[..., :3]

    def to_index(self, point_lps: np.ndarray) -> np.ndarray:
        """Fractional voxel indices (..., 3) in (k, j, i) order of patient LPS mm points."""
        pts = np.asarray(point_lps, dtype=float)
        ijk = (np.concatenate([pts, np.ones(pts.shape[:-1] + (1,))], axis=-1) @ np.linalg.inv(self.affine).T)[..., :3]
        return ijk[..., ::-1]


def resample_onto(moving: Volume, fixed: Volume, box: tuple[slice, ...] | None = None) -> np.ndarray:
    """Intensities of ``moving`` at the voxel centres of ``fixed`` (or of a box of it), through patient mm.

    Outside the moving volume the value is 0. Linear interpolation; when the voxel centres of
    ``fixed`` fall on those of ``moving`` (same grid, or one shifted by whole voxels: series of
    one session usually share it) the values are copied without interpolation.
    """
    box = box or tuple(slice(0, n) for n in fixed.array.shape)
    shape = tuple(max(b.stop - b.start, 0) for b in box)
    # fixed voxel (i, j, k) -> moving voxel (i, j, k), as one affine map.
    to_moving = np.linalg.inv(moving.affine) @ fixed.affine
    linear, offset = to_moving[:3, :3], to_moving[:3, 3]
    start_ijk = np.array([box[2].start, box[1].start, box[0].start], float)
    origin_ijk = linear @ start_ijk + offset
    if np.allclose(linear, np.eye(3), atol=1e-6) and np.allclose(origin_ijk, np.round(origin_ijk), atol=1e-4):
        out = np.zeros(shape, np.float32)
        i0, j0, k0 = (int(v) for v in np.round(origin_ijk))
        src = [(k0, shape[0], moving.array.shape[0]), (j0, shape[1], moving.array.shape[1]), (i0, shape[2], moving.array.shape[2])]
        lo = [max(0, -a) for a, _, _ in src]
        hi = [min(n, m - a) for a, n, m in src]
        if all(h > low for low, h in zip(lo, hi)):
            out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = moving.array[
                src[0][0] + lo[0]:src[0][0] + hi[0], src[1][0] + lo[1]:src[1][0] + hi[1], src[2][0] + lo[2]:src[2][0] + hi[2]
            ]
        return out
    # Moving (k, j, i) index of every voxel of the box: per-axis terms of the affine, broadcast.
    steps = [np.arange(n, dtype=float) for n in shape]  # k, j, i offsets within the box
    index = []
    for row in (2, 1, 0):  # moving k, j, i
        index.append(
            origin_ijk[row]
            + (steps[0] * linear[row, 2])[:, None, None]
            + (steps[1] * linear[row, 1])[None, :, None]
            + (steps[2] * linear[row, 0])[None, None, :]
        )
    values = ndimage.map_coordinates(moving.array, np.stack(index).reshape(3, -1), order=1, mode="constant", cval=0.0)
    return values.reshape(shape).astype(np.float32)
