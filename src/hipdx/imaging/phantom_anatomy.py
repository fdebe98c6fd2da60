"""The phantom's anatomy: analytic shapes in DICOM patient coordinates (LPS mm) and the tissue at any point.

Per side a femoral head (sphere), neck (capsule), greater trochanter (ellipsoid) and shaft
(cylinder), each with cortex and fatty marrow; an acetabular cup with cartilage and an iliac
body; muscle, subcutaneous fat and a bladder; the lesions' growth scores (edema from the head into
the neck, acetabular edema, effusion) and the subchondral band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# Tissue labels of the truth map.
AIR, FAT, MUSCLE, CORTEX, MARROW, PELVIC_MARROW, CARTILAGE, FLUID, EDEMA, BAND = range(10)


TISSUES = ("air", "fat", "muscle", "cortex", "marrow", "pelvic_marrow", "cartilage", "fluid", "edema", "band")


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


class Anatomy:
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
