"""A synthetic hip MRI study with exact ground truth: coronal T1 and STIR DICOM series.

The anatomy is a set of analytic shapes in DICOM patient coordinates (LPS mm): per side a
femoral head (sphere), neck (capsule), greater trochanter (ellipsoid) and shaft
(cylinder), each with cortex and fatty marrow; an acetabular cup (spherical shell segment)
with cartilage and an iliac body; muscle, subcutaneous fat and a bladder. Optional lesions
on one side: bone marrow edema of a requested volume grown from the femoral head into the
neck (low T1, high STIR), and a subchondral low-signal band of given thickness and arc
length under the weight-bearing dome (low on both).

Acquisition: 4 mm coronal slices with a 1.2 mm gap (boxcar slice profile), 0.9 mm pixels;
partial volume by supersampling every voxel near a tissue surface (2 x 2 in plane, 5
through the slice); a smooth, left-right asymmetric multiplicative bias field; a mild
marrow texture; Rician noise. Ground truth (``truth.json`` and ``truth_masks.npz``) is
computed on the same supersampled grid, so the edema volume is the volume a perfect
segmentation of the images would give.

Example
-------
>>> truth = write_phantom("phantom/", seed=3, side="right", edema_ml=40, band_mm=3)  # doctest: +SKIP
>>> truth.edema_volume_ml                                                            # doctest: +SKIP
40.0
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from hipdx.errors import InputError, Problem

__all__ = ["HeadTruth", "PhantomTruth", "load_truth", "write_phantom"]

TRUTH_FORMAT = "hipdx-phantom-truth/1"
MASKS_FILE = "truth_masks.npz"
#: Root of the phantom's UIDs (pydicom's root for generated UIDs); entropy makes them deterministic.
UID_PREFIX = pydicom.uid.PYDICOM_ROOT_UID

# Tissue labels of the truth map.
AIR, FAT, MUSCLE, CORTEX, MARROW, PELVIC_MARROW, CARTILAGE, FLUID, EDEMA, BAND = range(10)
TISSUES = ("air", "fat", "muscle", "cortex", "marrow", "pelvic_marrow", "cartilage", "fluid", "edema", "band")

#: Relative signal per tissue (T1 TSE, STIR), ordered as the labels; fat ~1 on T1. Calibrated to
#: the contrasts measured on real data (research/imaging.md 1.6 and 4): STIR fatty marrow dark,
#: edema = marrow x edema_contrast, T1 edema half the marrow signal.
_T1_LEVEL = np.array([0.0, 1.0, 0.38, 0.04, 0.92, 0.78, 0.45, 0.15, 0.46, 0.12])
_STIR_LEVEL = np.array([0.0, 0.08, 0.30, 0.03, 0.16, 0.22, 0.45, 1.0, 0.32, 0.10])
_FULL_SCALE = 1000.0  # stored value of signal 1.0

# Supersampling per voxel: in-plane n x n, through-slice m.
_IN_PLANE, _THROUGH = 2, 5
_CHUNK = 40_000


@dataclass(frozen=True)
class HeadTruth:
    center_mm: tuple[float, float, float]
    radius_mm: float


@dataclass(frozen=True)
class PhantomTruth:
    """Ground truth of one phantom, as written to ``truth.json``.

    Volumes are in mL, lengths in mm, points in DICOM patient LPS mm. ``edema_volume_ml``
    is the rasterised volume (sum of per-voxel edema fractions x voxel volume);
    ``edema_mask_volume_ml`` counts voxels at least half edema. ``band_length_mm`` is the
    arc length on the coronal plane through the head centre, at mid-thickness.
    """

    seed: int
    side: str
    heads: dict[str, HeadTruth]
    edema_requested_ml: float
    edema_volume_ml: float
    edema_mask_volume_ml: float
    edema_extent_ml: dict[str, float]
    band_thickness_mm: float
    band_length_mm: float
    band_volume_ml: float
    series: dict[str, dict[str, str]]
    masks_file: str
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Optional joint findings on ``side`` (0 when not requested; absent from ``truth.json`` then).
    acetabular_edema_ml: float = 0.0
    effusion_ml: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": TRUTH_FORMAT,
            "seed": self.seed,
            "side": self.side,
            "heads": {s: {"center_mm": list(h.center_mm), "radius_mm": h.radius_mm} for s, h in self.heads.items()},
            "edema": {
                "side": self.side if self.edema_volume_ml > 0 else None,
                "requested_ml": self.edema_requested_ml,
                "volume_ml": self.edema_volume_ml,
                "mask_volume_ml": self.edema_mask_volume_ml,
                "extent_ml": self.edema_extent_ml,
            },
            "band": {
                "side": self.side if self.band_thickness_mm > 0 else None,
                "present": self.band_thickness_mm > 0,
                "thickness_mm": self.band_thickness_mm,
                "length_mm": self.band_length_mm,
                "volume_ml": self.band_volume_ml,
            },
            **self._joint_dict(),
            "series": self.series,
            "masks": self.masks_file,
            "parameters": self.parameters,
        }

    def _joint_dict(self) -> dict[str, Any]:
        """Acetabular edema and effusion, only when the phantom has them (older truth files stay as they were)."""
        out: dict[str, Any] = {}
        if self.acetabular_edema_ml > 0:
            out["acetabular_edema"] = {"side": self.side, "volume_ml": self.acetabular_edema_ml}
        if self.effusion_ml > 0:
            out["effusion"] = {"side": self.side, "volume_ml": self.effusion_ml}
        return out


def load_truth(path: str | os.PathLike[str]) -> PhantomTruth:
    """Read ``truth.json`` (or the folder holding it) back into :class:`PhantomTruth`."""
    path = Path(path)
    if path.is_dir():
        path = path / "truth.json"
    data = json.loads(path.read_text())
    return PhantomTruth(
        seed=data["seed"],
        side=data["side"],
        heads={s: HeadTruth(tuple(h["center_mm"]), h["radius_mm"]) for s, h in data["heads"].items()},
        edema_requested_ml=data["edema"]["requested_ml"],
        edema_volume_ml=data["edema"]["volume_ml"],
        edema_mask_volume_ml=data["edema"]["mask_volume_ml"],
        edema_extent_ml=data["edema"]["extent_ml"],
        band_thickness_mm=data["band"]["thickness_mm"],
        band_length_mm=data["band"]["length_mm"],
        band_volume_ml=data["band"]["volume_ml"],
        series=data["series"],
        masks_file=data["masks"],
        parameters=data["parameters"],
        acetabular_edema_ml=data.get("acetabular_edema", {}).get("volume_ml", 0.0),
        effusion_ml=data.get("effusion", {}).get("volume_ml", 0.0),
    )


# --------------------------------------------------------------------------------------
# Anatomy
# --------------------------------------------------------------------------------------


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _segment_distance(x, y, z, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    dx, dy, dz = x - a[0], y - a[1], z - a[2]
    t = np.clip((dx * ab[0] + dy * ab[1] + dz * ab[2]) / (ab @ ab), 0.0, 1.0)
    return np.sqrt((dx - t * ab[0]) ** 2 + (dy - t * ab[1]) ** 2 + (dz - t * ab[2]) ** 2)


def _lowest(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.array(arrays[0], dtype=float, copy=True)
    for a in arrays[1:]:
        np.minimum(out, a, out=out)
    return out


def _ellipsoid_k(x, y, z, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return np.sqrt(((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2)


@dataclass
class _Hip:
    side: str
    lateral: float  # +1 for the left hip (towards +x in LPS), -1 for the right
    centre: np.ndarray
    radius: float
    neck_end: np.ndarray
    neck_radius: float
    trochanter: np.ndarray
    trochanter_radii: np.ndarray
    shaft_end: np.ndarray
    shaft_radius: float
    cup_axis: np.ndarray
    ilium: np.ndarray
    ilium_radii: np.ndarray
    dome_axis: np.ndarray
    head_cortex: float = 1.5
    neck_cortex: float = 2.0
    shaft_cortex: float = 4.5
    joint_gap: float = 2.5
    cup_thickness: float = 11.0
    pelvic_cortex: float = 1.5


@dataclass
class _Lesions:
    side: str
    edema_origin: np.ndarray | None = None
    edema_axis: np.ndarray | None = None
    waves: np.ndarray | None = None  # (m, 4): wave vector (3) and phase
    band_thickness: float = 0.0
    band_half_angle: float = 0.0


class _Anatomy:
    """Analytic tissue map: labels of points, and how near each point is to a surface."""

    body_centre = np.array([0.0, 10.0])
    body_radii = np.array([165.0, 120.0])
    fat_thickness = 18.0
    bladder_centre = np.array([0.0, -35.0, 25.0])
    bladder_radii = np.array([38.0, 28.0, 30.0])

    def __init__(self, rng: np.random.Generator, side: str, band_mm: float, band_length_mm: float) -> None:
        self.hips: dict[str, _Hip] = {}
        base_radius = rng.uniform(22.5, 25.5)
        centre_z = rng.uniform(5.0, 20.0)
        for name, lateral in (("left", 1.0), ("right", -1.0)):
            radius = base_radius + rng.uniform(-0.5, 0.5)
            centre = np.array([lateral * rng.uniform(84.0, 92.0), rng.uniform(-2.5, 2.5), centre_z + rng.uniform(-1.5, 1.5)])
            neck_angle = np.deg2rad(rng.uniform(36.0, 44.0))  # below horizontal: neck-shaft angle ~130 degrees
            neck_axis = _unit([lateral * np.cos(neck_angle), 0.12, -np.sin(neck_angle)])  # slight anteversion
            neck_end = centre + neck_axis * 48.0
            shaft_axis = _unit([-lateral * 0.12, 0.0, -1.0])
            self.hips[name] = _Hip(
                side=name,
                lateral=lateral,
                centre=centre,
                radius=radius,
                neck_end=neck_end,
                neck_radius=radius * 0.62,
                trochanter=neck_end + np.array([lateral * 10.0, 4.0, 8.0]),
                trochanter_radii=np.array([18.0, 20.0, 26.0]),
                shaft_end=neck_end + shaft_axis * 400.0,
                shaft_radius=14.0,
                cup_axis=_unit([-lateral * 0.7, 0.0, 0.75]),
                ilium=centre + np.array([lateral * 4.0, 2.0, radius + 42.0]),
                ilium_radii=np.array([15.0, 32.0, 38.0]),
                dome_axis=_unit([lateral * np.sin(np.deg2rad(15.0)), 0.0, np.cos(np.deg2rad(15.0))]),
            )
        hip = self.hips[side]
        self.lesions = _Lesions(side=side)
        neck_axis = _unit(hip.neck_end - hip.centre)
        self.lesions.edema_origin = hip.centre + neck_axis * 6.0
        self.lesions.edema_axis = neck_axis
        directions = rng.normal(size=(3, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(25.0, 45.0, size=3)
        self.lesions.waves = np.column_stack([directions * (2 * np.pi / wavelengths)[:, None], rng.uniform(0, 2 * np.pi, 3)])
        if band_mm > 0:
            mid_radius = hip.radius - hip.head_cortex - band_mm / 2
            self.lesions.band_thickness = band_mm
            self.lesions.band_half_angle = band_length_mm / (2 * mid_radius)

    def joint_scores(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Growth scores (mm) of acetabular edema and of effusion on the lesion side; inf where neither can be.

        Acetabular edema grows from a point in the middle of the cup marrow under the roof
        (10 degrees medial of vertical), inside the cup shell only. Effusion grows outwards from
        the neck surface (the capsule's collar) between the head and 36 mm along the neck.
        Which tissue may become either is decided by the caller from the labels.
        """
        hip = self.hips[self.lesions.side]
        v = p - hip.centre
        r = np.linalg.norm(v, axis=1)
        cos_cup = (v @ hip.cup_axis) / np.maximum(r, 1e-9)
        inner, outer = hip.radius + hip.joint_gap, hip.radius + hip.joint_gap + hip.cup_thickness
        roof_axis = _unit([-hip.lateral * np.sin(np.deg2rad(10.0)), 0.0, np.cos(np.deg2rad(10.0))])
        roof = hip.centre + roof_axis * (inner + hip.cup_thickness / 2)
        in_cup = (cos_cup > -0.1) & (r >= inner) & (r < outer)
        acetabular = np.where(in_cup, np.linalg.norm(p - roof, axis=1), np.inf)
        neck_axis = _unit(hip.neck_end - hip.centre)
        along = v @ neck_axis
        d_neck = _segment_distance(p[:, 0], p[:, 1], p[:, 2], hip.centre, hip.neck_end)
        collar = (along > 0) & (along < 36.0) & (r >= hip.radius) & (d_neck >= hip.neck_radius)
        effusion = np.where(collar, d_neck - hip.neck_radius, np.inf)
        return acetabular, effusion

    def edema_score(self, p: np.ndarray) -> np.ndarray:
        """Grows from the head into the neck: distance stretched along the neck, gently irregular."""
        les = self.lesions
        v = p - les.edema_origin
        along = v @ les.edema_axis
        across = np.linalg.norm(v - along[:, None] * les.edema_axis, axis=1)
        score = np.sqrt(across**2 + (np.where(along > 0, along * 0.65, along)) ** 2)
        score += 2.0 * np.sin(p @ les.waves[:, :3].T + les.waves[:, 3]).sum(axis=1)
        return score

    def classify(self, p: np.ndarray, with_score: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """Labels, distance to the nearest bone/joint surface (a lower bound, mm), edema score and region.

        Region: 0 elsewhere, 1 femoral head, 2 neck, 3 rest of the proximal femur, on the lesion side.
        """
        n = len(p)
        x, y, z = (np.ascontiguousarray(p[:, a]) for a in range(3))
        bx, by = self.body_centre
        k_body = np.sqrt(((x - bx) / self.body_radii[0]) ** 2 + ((y - by) / self.body_radii[1]) ** 2)
        inner = self.body_radii - self.fat_thickness
        k_inner = np.sqrt(((x - bx) / inner[0]) ** 2 + ((y - by) / inner[1]) ** 2)
        labels = np.where(k_inner < 1, MUSCLE, np.where(k_body < 1, FAT, AIR)).astype(np.uint8)
        k = _ellipsoid_k(x, y, z, self.bladder_centre, self.bladder_radii)
        labels[k < 1] = FLUID
        near = np.abs(k - 1) * self.bladder_radii.min()
        score = np.full(n, np.inf) if with_score else None
        region = np.zeros(n, dtype=np.uint8)
        for hip in self.hips.values():
            own = np.flatnonzero(np.abs(x - hip.centre[0]) < 100.0)
            if len(own) == 0:
                continue
            lab, nr, sc, reg = self._hip(hip, x[own], y[own], z[own], with_score, labels[own])
            labels[own] = lab
            near[own] = np.minimum(near[own], nr)
            if sc is not None and score is not None:
                score[own] = sc
            region[own] = reg
        return labels, near, score, region

    def _hip(self, hip: _Hip, x, y, z, with_score: bool, labels: np.ndarray):
        n = len(x)
        vx, vy, vz = x - hip.centre[0], y - hip.centre[1], z - hip.centre[2]
        r = np.sqrt(vx * vx + vy * vy + vz * vz)
        safe_r = np.maximum(r, 1e-9)
        cos_cup = (vx * hip.cup_axis[0] + vy * hip.cup_axis[1] + vz * hip.cup_axis[2]) / safe_r
        in_cup = cos_cup > -0.1
        # Pelvis: cup shell and iliac body.
        inner, outer = hip.radius + hip.joint_gap, hip.radius + hip.joint_gap + hip.cup_thickness
        cup = in_cup & (r >= inner) & (r < outer)
        cup_marrow = in_cup & (r >= inner + hip.pelvic_cortex) & (r < outer - hip.pelvic_cortex)
        k_il = _ellipsoid_k(x, y, z, hip.ilium, hip.ilium_radii)
        k_il_marrow = _ellipsoid_k(x, y, z, hip.ilium, hip.ilium_radii - hip.pelvic_cortex)
        labels[cup | (k_il < 1)] = CORTEX
        labels[cup_marrow | (k_il_marrow < 1)] = PELVIC_MARROW
        labels[in_cup & (r >= hip.radius) & (r < inner)] = CARTILAGE
        near = np.full(n, np.inf)
        close = r < outer + 3
        if close.any():
            rc = r[close]
            shell = _lowest([np.abs(rc - hip.radius), np.abs(rc - inner), np.abs(rc - outer),
                                       np.abs(rc - inner - hip.pelvic_cortex), np.abs(rc - outer + hip.pelvic_cortex)])
            cup_angle = np.arccos(np.clip(cos_cup[close], -1, 1)) - np.arccos(-0.1)
            near[close] = np.minimum(shell, rc * np.abs(np.sin(np.clip(cup_angle, -1.5, 1.5))))
        near = _lowest([near, np.abs(k_il - 1) * hip.ilium_radii.min(),
                                  np.abs(k_il_marrow - 1) * (hip.ilium_radii.min() - hip.pelvic_cortex)])
        # Femur: union of head, neck, trochanter, shaft; marrow is the union of the shrunken parts.
        d_neck = _segment_distance(x, y, z, hip.centre, hip.neck_end)
        d_shaft = _segment_distance(x, y, z, hip.neck_end, hip.shaft_end)
        k_tr = _ellipsoid_k(x, y, z, hip.trochanter, hip.trochanter_radii)
        k_tr_marrow = _ellipsoid_k(x, y, z, hip.trochanter, hip.trochanter_radii - hip.neck_cortex)
        bone = (r < hip.radius) | (d_neck < hip.neck_radius) | (k_tr < 1) | (d_shaft < hip.shaft_radius)
        marrow = ((r < hip.radius - hip.head_cortex) | (d_neck < hip.neck_radius - hip.neck_cortex)
                  | (k_tr_marrow < 1) | (d_shaft < hip.shaft_radius - hip.shaft_cortex))
        labels[bone] = CORTEX
        labels[marrow] = MARROW
        near = _lowest([
            near, np.abs(r - hip.radius + hip.head_cortex),
            np.abs(d_neck - hip.neck_radius), np.abs(d_neck - hip.neck_radius + hip.neck_cortex),
            np.abs(k_tr - 1) * hip.trochanter_radii.min(),
            np.abs(k_tr_marrow - 1) * (hip.trochanter_radii.min() - hip.neck_cortex),
            np.abs(d_shaft - hip.shaft_radius), np.abs(d_shaft - hip.shaft_radius + hip.shaft_cortex),
        ])
        region = np.zeros(n, dtype=np.uint8)
        if hip.side != self.lesions.side:
            return labels, near, None, region
        les = self.lesions
        if les.band_thickness > 0:
            top = hip.radius - hip.head_cortex
            cos_dome = (vx * hip.dome_axis[0] + vy * hip.dome_axis[1] + vz * hip.dome_axis[2]) / safe_r
            angle = np.arccos(np.clip(cos_dome, -1, 1))
            band = (r < top) & (r >= top - les.band_thickness) & (angle <= les.band_half_angle)
            labels[band] = BAND
            off = np.clip(angle - les.band_half_angle, -1.5, 1.5)
            near_band = np.where(r < top + 3, np.minimum(np.abs(r - top + les.band_thickness), r * np.abs(np.sin(off))),
                                 np.inf)
            near = np.minimum(near, near_band)
        region[bone] = 3
        region[bone & (d_neck < hip.neck_radius)] = 2
        region[r < hip.radius] = 1
        score = None
        if with_score:
            score = np.full(n, np.inf)
            idx = np.flatnonzero(bone)
            score[idx] = self.edema_score(np.column_stack([x[idx], y[idx], z[idx]]))
        return labels, near, score, region


# --------------------------------------------------------------------------------------
# Acquisition
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    slices: int
    rows: int
    cols: int
    pixel_mm: float
    spacing_mm: float
    thickness_mm: float

    @property
    def affine(self) -> np.ndarray:
        """Coronal: columns to the patient's left (+x), rows to the feet (-z), slices posterior (+y)."""
        a = np.zeros((4, 4))
        a[0, 0] = self.pixel_mm
        a[2, 1] = -self.pixel_mm
        a[1, 2] = self.spacing_mm
        a[:3, 3] = [-(self.cols - 1) / 2 * self.pixel_mm, -(self.slices - 1) / 2 * self.spacing_mm,
                    (self.rows - 1) / 2 * self.pixel_mm]
        a[3, 3] = 1
        return a

    def points(self, kji: np.ndarray) -> np.ndarray:
        ijk = kji[:, ::-1]
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def box(self, low: np.ndarray, high: np.ndarray) -> tuple[slice, slice, slice]:
        """Index ranges (k, j, i) of the voxels whose centres lie in an LPS box."""
        inv = np.linalg.inv(self.affine)
        corners = np.array([[x, y, z, 1] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
        ijk = corners @ inv.T
        lo = np.floor(ijk.min(axis=0)[:3]).astype(int)
        hi = np.ceil(ijk.max(axis=0)[:3]).astype(int) + 1
        shape = (self.cols, self.rows, self.slices)
        i, j, k = (slice(max(0, lo[a]), min(shape[a], hi[a])) for a in range(3))
        return k, j, i

    def sub_offsets(self) -> np.ndarray:
        """(n, 3) offsets in (k, j, i) index units of the samples inside one voxel."""
        plane = (np.arange(_IN_PLANE) + 0.5) / _IN_PLANE - 0.5
        through = ((np.arange(_THROUGH) + 0.5) / _THROUGH - 0.5) * self.thickness_mm / self.spacing_mm
        k, j, i = np.meshgrid(through, plane, plane, indexing="ij")
        return np.column_stack([k.ravel(), j.ravel(), i.ravel()])


def _bias_field(grid: _Grid, rng: np.random.Generator, bias: float) -> np.ndarray:
    """Smooth multiplicative field in [1 - bias, 1 + bias], stronger on one side (coil sensitivity)."""
    k = np.linspace(-1, 1, grid.slices)[:, None, None]
    j = np.linspace(-1, 1, grid.rows)[None, :, None]
    i = np.linspace(-1, 1, grid.cols)[None, None, :]
    c = rng.uniform(-1, 1, size=6)
    field_ = (0.8 + 0.2 * abs(c[0])) * i + 0.4 * c[1] * j + 0.3 * c[2] * k + 0.3 * c[3] * i * j + 0.3 * c[4] * j**2 + 0.2 * c[5] * i**2
    field_ = field_ - field_.mean()
    return (1.0 + bias * field_ / np.abs(field_).max()).astype(np.float32)


def _texture(grid: _Grid, rng: np.random.Generator, amount: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    noise = rng.standard_normal((grid.slices, grid.rows, grid.cols), dtype=np.float32)
    smooth = gaussian_filter(noise, sigma=(0, 1.2, 1.2))
    return 1.0 + amount * smooth / smooth.std()


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    real = signal + rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    imag = rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    return np.sqrt(real * real + imag * imag)


# --------------------------------------------------------------------------------------
# DICOM output
# --------------------------------------------------------------------------------------


def _write_series(folder: Path, stored: np.ndarray, grid: _Grid, *, kind: str, uids: dict[str, str],
                  entropy: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    affine = grid.affine
    is_stir = kind == "fluid"
    for k in range(grid.slices):
        sop_uid = generate_uid(prefix=UID_PREFIX, entropy_srcs=entropy + [kind, str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["DERIVED", "PRIMARY", "M"]
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.Modality = "MR"
        ds.Manufacturer = "hipdx phantom"
        ds.PatientName = "PHANTOM^HIP"
        ds.PatientID = f"PHANTOM-{uids['seed']}"
        ds.StudyInstanceUID = uids["study"]
        ds.SeriesInstanceUID = uids[kind]
        ds.FrameOfReferenceUID = uids["frame"]
        ds.StudyDescription = "HIP PHANTOM"
        ds.SeriesNumber = 3 if is_stir else 2
        ds.InstanceNumber = k + 1
        ds.BodyPartExamined = "HIP"
        ds.MagneticFieldStrength = 1.5
        ds.MRAcquisitionType = "2D"
        if is_stir:
            ds.SeriesDescription = ds.ProtocolName = "t2_tirm_cor"
            ds.ScanningSequence = ["SE", "IR"]
            ds.SequenceVariant = ["SK", "SP", "MP"]
            ds.InversionTime = 160
            ds.RepetitionTime = 4500
            ds.EchoTime = 41
        else:
            ds.SeriesDescription = ds.ProtocolName = "t1_tse_cor"
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = ["SK", "SP"]
            ds.RepetitionTime = 550
            ds.EchoTime = 9.1
        ds.ScanOptions = ""
        ds.SliceThickness = grid.thickness_mm
        ds.SpacingBetweenSlices = grid.spacing_mm
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [round(float(v), 4) for v in affine[:3, :3] @ [0, 0, k] + affine[:3, 3]]
        ds.SliceLocation = round(float(affine[1, 3] + k * grid.spacing_mm), 4)
        ds.PixelSpacing = [grid.pixel_mm, grid.pixel_mm]
        ds.Rows, ds.Columns = grid.rows, grid.cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = stored[k].tobytes()
        ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)


# --------------------------------------------------------------------------------------
# The phantom
# --------------------------------------------------------------------------------------


def _check(side: str, edema_ml: float, band_mm: float, band_length_mm: float, snr: float, bias: float,
           slice_thickness_mm: float, slice_gap_mm: float) -> None:
    problems = []
    if side not in ("left", "right"):
        problems.append(Problem("side", f"{side!r} is not left or right"))
    if not 0 <= edema_ml <= 150:
        problems.append(Problem("edema_ml", f"{edema_ml} is outside 0-150 mL"))
    if not (band_mm == 0 or 0.5 <= band_mm <= 10):
        problems.append(Problem("band_mm", f"{band_mm} is neither 0 (no band) nor 0.5-10 mm"))
    if band_mm and not 2 <= band_length_mm <= 60:
        problems.append(Problem("band_length_mm", f"{band_length_mm} is outside 2-60 mm"))
    if not snr > 0:
        problems.append(Problem("snr", f"{snr} is not positive"))
    if not 0 <= bias < 0.8:
        problems.append(Problem("bias", f"{bias} is outside 0-0.8"))
    if not (slice_thickness_mm > 0 and slice_gap_mm >= 0):
        problems.append(Problem("slice_thickness_mm", "thickness must be positive and the gap not negative"))
    if problems:
        raise InputError("invalid phantom parameters", problems)


def write_phantom(
    outdir: str | os.PathLike[str],
    *,
    seed: int = 0,
    side: str = "left",
    edema_ml: float = 30.0,
    band_mm: float = 0.0,
    band_length_mm: float = 20.0,
    snr: float = 20.0,
    bias: float = 0.2,
    edema_contrast: float = 2.0,
    slice_thickness_mm: float = 4.0,
    slice_gap_mm: float = 1.2,
    rows: int = 384,
    cols: int = 384,
    slices: int = 40,
    pixel_mm: float = 0.9,
    acetabular_edema_ml: float = 0.0,
    effusion_ml: float = 0.0,
) -> PhantomTruth:
    """Write a synthetic coronal hip study (T1 and STIR DICOM) and its ground truth.

    Parameters
    ----------
    outdir
        Created if needed; receives ``T1/``, ``STIR/``, ``truth.json`` and ``truth_masks.npz``.
    seed
        Anatomy, texture, bias and noise all follow from it: same seed, same files.
    side
        Hip with the lesions ("left" = patient's left, +x in LPS).
    edema_ml
        Bone marrow edema volume (mL) in the femoral head and neck of ``side``; 0 for none.
    band_mm, band_length_mm
        Subchondral low-signal band: thickness (mm, 0 for none) and arc length (mm) on the
        coronal plane through the head centre, under the weight-bearing dome.
    snr
        Normal fatty marrow signal / noise sigma, on each series (Rician noise).
    bias
        Half range of the multiplicative bias field (0.2 = +-20 %), left-right asymmetric.
    edema_contrast
        STIR edema / normal marrow signal (measured 1.2-2.5 on real STIR).
    slice_thickness_mm, slice_gap_mm, rows, cols, slices, pixel_mm
        Acquisition geometry; slice spacing = thickness + gap.
    acetabular_edema_ml
        Bone marrow edema (mL) in the acetabular roof of ``side`` (cup marrow around a point
        10 degrees medial of vertical); STIR = pelvic marrow x ``edema_contrast``, T1 half the
        pelvic marrow. 0 (default) for none; a phantom without it is byte-identical to before.
    effusion_ml
        Joint fluid (mL) of ``side``: a collar in the capsule around the femoral neck, grown
        outwards from the neck surface between the head and 36 mm along the neck (very high
        STIR, low T1: the fluid tissue). 0 (default) for none.

    Raises
    ------
    InputError
        A parameter is out of range, or the edema does not fit in the femur.

    Example
    -------
    >>> truth = write_phantom(tmp, seed=1, edema_ml=25, band_mm=4)  # doctest: +SKIP
    """
    _check(side, edema_ml, band_mm, band_length_mm, snr, bias, slice_thickness_mm, slice_gap_mm)
    joint_problems = [Problem(name, f"{value} is outside 0-40 mL")
                      for name, value in (("acetabular_edema_ml", acetabular_edema_ml), ("effusion_ml", effusion_ml))
                      if not 0 <= value <= 40]
    if joint_problems:
        raise InputError("invalid phantom parameters", joint_problems)
    parameters = dict(seed=seed, side=side, edema_ml=edema_ml, band_mm=band_mm, band_length_mm=band_length_mm,
                      snr=snr, bias=bias, edema_contrast=edema_contrast, slice_thickness_mm=slice_thickness_mm,
                      slice_gap_mm=slice_gap_mm, rows=rows, cols=cols, slices=slices, pixel_mm=pixel_mm)
    # The joint findings join the parameters (and so the seed fingerprint) only when requested:
    # phantoms without them keep their bytes.
    if acetabular_edema_ml:
        parameters["acetabular_edema_ml"] = acetabular_edema_ml
    if effusion_ml:
        parameters["effusion_ml"] = effusion_ml
    joint = acetabular_edema_ml > 0 or effusion_ml > 0
    fingerprint = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()
    rng = np.random.default_rng([seed, int(fingerprint[:8], 16)])
    anatomy_rng = np.random.default_rng(seed)  # anatomy depends on the seed only
    anatomy = _Anatomy(anatomy_rng, side, band_mm, band_length_mm)
    grid = _Grid(slices, rows, cols, pixel_mm, slice_thickness_mm + slice_gap_mm, slice_thickness_mm)
    shape = (slices, rows, cols)
    voxel_ml = pixel_mm * pixel_mm * grid.spacing_mm / 1000.0

    # 1. Tissue at voxel centres: the body (2-D ellipses) everywhere, the full anatomy in boxes.
    labels = np.zeros(shape, dtype=np.uint8)
    near = np.full(shape, np.inf, dtype=np.float32)
    score = np.full(shape, np.inf, dtype=np.float32)
    joint_score = {"acetabular": np.full(shape, np.inf, dtype=np.float32), "effusion": np.full(shape, np.inf, dtype=np.float32)}
    centres_k = np.arange(slices)[:, None]
    centres_i = np.arange(cols)[None, :]
    xy = np.stack(np.broadcast_arrays(centres_i * pixel_mm + grid.affine[0, 3],
                                      centres_k * grid.spacing_mm + grid.affine[1, 3]), axis=-1)
    k_body = np.sqrt((((xy - anatomy.body_centre) / anatomy.body_radii) ** 2).sum(-1))
    k_inner = np.sqrt((((xy - anatomy.body_centre) / (anatomy.body_radii - anatomy.fat_thickness)) ** 2).sum(-1))
    body = np.where(k_inner < 1, MUSCLE, np.where(k_body < 1, FAT, AIR)).astype(np.uint8)
    labels[:] = body[:, None, :]
    boxes = []
    for hip in anatomy.hips.values():
        low = np.array([hip.centre[0] - 75, hip.centre[1] - 45, -1e4])
        high = np.array([hip.centre[0] + 75, hip.centre[1] + 45, hip.centre[2] + hip.radius + 90])
        boxes.append(grid.box(low, high))
    boxes.append(grid.box(anatomy.bladder_centre - anatomy.bladder_radii - 3, anatomy.bladder_centre + anatomy.bladder_radii + 3))
    for box in boxes:
        kk, jj, ii = np.meshgrid(*(np.arange(s.start, s.stop) for s in box), indexing="ij")
        kji = np.column_stack([kk.ravel(), jj.ravel(), ii.ravel()])
        lab, nr, sc, _ = anatomy.classify(grid.points(kji), with_score=edema_ml > 0)
        sub_shape = kk.shape
        labels[box] = lab.reshape(sub_shape)
        near[box] = np.minimum(near[box], nr.reshape(sub_shape))
        if sc is not None:
            score[box] = np.minimum(score[box], sc.reshape(sub_shape))
        if joint:
            for name, js in zip(("acetabular", "effusion"), anatomy.joint_scores(grid.points(kji))):
                joint_score[name][box] = np.minimum(joint_score[name][box], js.reshape(sub_shape))

    # 2. Which voxels to supersample: near a surface, or possibly holding the edema boundary.
    offsets = grid.sub_offsets()
    n_sub = len(offsets)
    reach = 0.5 * np.sqrt(2 * pixel_mm**2 + slice_thickness_mm**2) + 0.1
    candidates = np.zeros(shape, dtype=bool)
    score_limit = -np.inf
    if edema_ml > 0:
        marrow_scores = np.sort(score[(labels == MARROW) & np.isfinite(score)])
        needed = int(np.ceil(edema_ml / voxel_ml))
        if needed >= len(marrow_scores) * 0.8:
            raise InputError("invalid phantom parameters",
                             [Problem("edema_ml", f"{edema_ml} mL does not fit in the femoral marrow of this phantom")])
        # The score changes by at most ~2.5 mm per mm (stretch + waves): margin for a voxel's reach.
        score_limit = marrow_scores[needed] + 3.0 * reach + 4.0
        candidates = score < score_limit
    femoral_candidates = candidates
    # Joint findings: every voxel that may hold their boundary is supersampled (score slope 1 mm/mm).
    joint_requests = {"acetabular": (acetabular_edema_ml, (PELVIC_MARROW,)), "effusion": (effusion_ml, (MUSCLE, FAT))}
    joint_limits: dict[str, float] = {}
    for name, (ml, tissues) in joint_requests.items():
        if ml <= 0:
            continue
        scores = np.sort(joint_score[name][np.isin(labels, tissues) & np.isfinite(joint_score[name])])
        needed = int(np.ceil(ml / voxel_ml))
        if needed >= len(scores) * 0.8:
            raise InputError("invalid phantom parameters",
                             [Problem(f"{name}_ml", f"{ml} mL does not fit in this phantom's {name} region")])
        joint_limits[name] = float(scores[needed]) + 2.0 * reach + 3.0
        candidates = candidates | (joint_score[name] < joint_limits[name])
    fine = (near < reach) | candidates
    fine_index = np.argwhere(fine)

    # 3. Supersample: labels of every sample; edema threshold chosen so the rasterised volume is exact.
    sample_labels = np.empty((len(fine_index), n_sub), dtype=np.uint8)
    sample_region = np.empty((len(fine_index), n_sub), dtype=np.uint8)
    sample_score = np.full((len(fine_index), n_sub), np.inf, dtype=np.float32)
    sample_joint = {name: np.full((len(fine_index), n_sub), np.inf, dtype=np.float32) for name in joint_limits}
    for start in range(0, len(fine_index), _CHUNK):
        block = fine_index[start:start + _CHUNK]
        kji = (block[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        if joint_limits:
            for name, js in zip(("acetabular", "effusion"), anatomy.joint_scores(grid.points(kji))):
                if name in sample_joint:
                    sample_joint[name][start:start + len(block)] = js.reshape(-1, n_sub)
        scored = edema_ml > 0 and bool(femoral_candidates[tuple(block.T)].any())
        lab, _, sc, reg = anatomy.classify(grid.points(kji), with_score=scored)
        sample_labels[start:start + len(block)] = lab.reshape(-1, n_sub)
        sample_region[start:start + len(block)] = reg.reshape(-1, n_sub)
        if sc is not None:
            sample_score[start:start + len(block)] = sc.reshape(-1, n_sub)
    edema_extent = {"head": 0.0, "neck": 0.0, "intertrochanteric": 0.0}
    if edema_ml > 0:
        eligible = (sample_labels == MARROW) & np.isfinite(sample_score)
        values = sample_score[eligible]
        count = int(round(edema_ml / voxel_ml * n_sub))
        threshold = np.partition(values, count - 1)[count - 1]
        if threshold > score_limit - reach * 2.6:
            raise InputError("invalid phantom parameters",
                             [Problem("edema_ml", f"{edema_ml} mL could not be placed within the candidate region")])
        edema_samples = eligible & (sample_score <= threshold)
        sample_labels[edema_samples] = EDEMA
        sample_ml = voxel_ml / n_sub
        for code, name in ((1, "head"), (2, "neck"), (3, "intertrochanteric")):
            edema_extent[name] = round(float(np.count_nonzero(edema_samples & (sample_region == code)) * sample_ml), 3)
    # Joint findings: the same exact-volume growth, on pelvic marrow (acetabular edema) and on
    # the soft tissue of the capsule (effusion).
    joint_samples: dict[str, np.ndarray] = {}
    for name, (ml, tissues) in joint_requests.items():
        if name not in joint_limits:
            continue
        eligible = np.isin(sample_labels, tissues) & np.isfinite(sample_joint[name])
        values = sample_joint[name][eligible]
        count = int(round(ml / voxel_ml * n_sub))
        threshold = np.partition(values, count - 1)[count - 1]
        if threshold > joint_limits[name] - reach * 1.5:
            raise InputError("invalid phantom parameters",
                             [Problem(f"{name}_ml", f"{ml} mL could not be placed within the candidate region")])
        joint_samples[name] = eligible & (sample_joint[name] <= threshold)
    if "acetabular" in joint_samples:
        sample_labels[joint_samples["acetabular"]] = EDEMA
    if "effusion" in joint_samples:
        sample_labels[joint_samples["effusion"]] = FLUID
    acetabular_samples = joint_samples.get("acetabular")

    # 4. Signal: partial volume = mean of the samples' signals; truth fractions from the same samples.
    fraction_edema = np.zeros(shape, dtype=np.float32)
    fraction_band = np.zeros(shape, dtype=np.float32)
    where = tuple(fine_index.T)
    femoral_edema_samples = sample_labels == EDEMA
    if acetabular_samples is not None:
        femoral_edema_samples &= ~acetabular_samples
    fraction_edema[where] = femoral_edema_samples.mean(axis=1)
    fraction_joint = {}
    for name, samples in joint_samples.items():
        fraction_joint[name] = np.zeros(shape, dtype=np.float32)
        fraction_joint[name][where] = samples.mean(axis=1)
    fraction_band[where] = (sample_labels == BAND).mean(axis=1)
    t1_level = _T1_LEVEL.copy()
    stir_level = _STIR_LEVEL.copy()
    stir_level[EDEMA] = stir_level[MARROW] * edema_contrast
    t1_signal = t1_level[labels].astype(np.float32)
    stir_signal = stir_level[labels].astype(np.float32)
    t1_signal[where] = t1_level[sample_labels].mean(axis=1)
    stir_signal[where] = stir_level[sample_labels].mean(axis=1)
    if "acetabular" in fraction_joint:
        # Acetabular edema is edema of pelvic marrow: its own levels, not the femoral edema's.
        extra = fraction_joint["acetabular"][where]
        t1_signal[where] += extra * np.float32(t1_level[PELVIC_MARROW] * 0.5 - t1_level[EDEMA])
        stir_signal[where] += extra * np.float32(stir_level[PELVIC_MARROW] * edema_contrast - stir_level[EDEMA])
    edema_mask = fraction_edema >= 0.5
    labels[edema_mask] = EDEMA
    labels[fraction_band >= 0.5] = BAND
    joint_masks = {name: fraction >= 0.5 for name, fraction in fraction_joint.items()}
    if "acetabular" in joint_masks:
        labels[joint_masks["acetabular"]] = EDEMA
    if "effusion" in joint_masks:
        labels[joint_masks["effusion"]] = FLUID

    texture = _texture(grid, rng, 0.05)
    bias_field = _bias_field(grid, rng, bias) * texture
    stored = {}
    for kind, signal, level in (("t1", t1_signal, t1_level), ("fluid", stir_signal, stir_level)):
        sigma = level[MARROW] / snr
        image = _rician(signal * bias_field, sigma, rng) * np.float32(_FULL_SCALE)
        stored[kind] = np.clip(np.rint(image), 0, 4095).astype(np.uint16)

    # 5. Files.
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    entropy = ["hipdx-phantom", fingerprint]
    uids = {name: generate_uid(prefix=UID_PREFIX, entropy_srcs=entropy + [name]) for name in ("study", "frame", "t1", "fluid")}
    uids["seed"] = str(seed)
    _write_series(out / "T1", stored["t1"], grid, kind="t1", uids=uids, entropy=entropy)
    _write_series(out / "STIR", stored["fluid"], grid, kind="fluid", uids=uids, entropy=entropy)
    extra_masks = {f"{'acetabular_edema' if name == 'acetabular' else name}_{what}": array
                   for name in fraction_joint
                   for what, array in (("fraction", fraction_joint[name]), ("mask", joint_masks[name]))}
    np.savez_compressed(out / MASKS_FILE, edema_fraction=fraction_edema, edema_mask=edema_mask,
                        band_mask=fraction_band >= 0.5, labels=labels, affine=grid.affine,
                        tissues=np.array(TISSUES), **extra_masks)
    band_length = 0.0
    if band_mm > 0:
        band_length = band_length_mm
    truth = PhantomTruth(
        seed=seed,
        side=side,
        heads={name: HeadTruth(tuple(round(float(v), 3) for v in hip.centre), round(float(hip.radius), 3))
               for name, hip in anatomy.hips.items()},
        edema_requested_ml=float(edema_ml),
        edema_volume_ml=round(float(fraction_edema.sum() * voxel_ml), 3),
        edema_mask_volume_ml=round(float(edema_mask.sum() * voxel_ml), 3),
        edema_extent_ml=edema_extent,
        band_thickness_mm=float(band_mm),
        band_length_mm=float(band_length),
        band_volume_ml=round(float(fraction_band.sum() * voxel_ml), 3),
        series={
            "t1": {"series_uid": uids["t1"], "description": "t1_tse_cor", "folder": "T1"},
            "fluid": {"series_uid": uids["fluid"], "description": "t2_tirm_cor", "folder": "STIR"},
        },
        masks_file=MASKS_FILE,
        parameters=parameters,
        acetabular_edema_ml=round(float(fraction_joint["acetabular"].sum() * voxel_ml), 3) if "acetabular" in fraction_joint else 0.0,
        effusion_ml=round(float(fraction_joint["effusion"].sum() * voxel_ml), 3) if "effusion" in fraction_joint else 0.0,
    )
    (out / "truth.json").write_text(json.dumps(truth.as_dict(), indent=2) + "\n")
    return truth
