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
>>> truth = write_phantom("phantom/", PhantomSpec(seed=3, side="right", edema_ml=40, band_mm=3))  # doctest: +SKIP
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
from pydicom.uid import generate_uid

from hipdx.errors import InputError, Problem
from hipdx.imaging.phantom_acquisition import UID_PREFIX, Grid, coil_bias_field, marrow_texture, rician, write_series
from hipdx.imaging.phantom_anatomy import (
    AIR,
    BAND,
    EDEMA,
    FAT,
    FLUID,
    MARROW,
    MUSCLE,
    PELVIC_MARROW,
    TISSUES,
    Anatomy,
)
from hipdx.imaging.phantom_truth import MASKS_FILE, HeadTruth, PhantomTruth, load_truth

__all__ = ["HeadTruth", "PhantomSpec", "PhantomTruth", "load_truth", "write_phantom"]


#: Relative signal per tissue (T1 TSE, STIR), ordered as the labels; fat ~1 on T1. Calibrated to
#: the contrasts measured on real data (research/imaging.md 1.6 and 4): STIR fatty marrow dark,
#: edema = marrow x edema_contrast, T1 edema half the marrow signal.
_T1_LEVEL = np.array([0.0, 1.0, 0.38, 0.04, 0.92, 0.78, 0.45, 0.15, 0.46, 0.12])
_STIR_LEVEL = np.array([0.0, 0.08, 0.30, 0.03, 0.16, 0.22, 0.45, 1.0, 0.32, 0.10])
_FULL_SCALE = 1000.0  # stored value of signal 1.0

_CHUNK = 40_000



# --------------------------------------------------------------------------------------
# Anatomy
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# Acquisition
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# DICOM output
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# The phantom
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhantomSpec:
    """What phantom to write: lesions, image quality and acquisition geometry (checked when made).

    Attributes
    ----------
    seed
        Anatomy, texture, bias and noise all follow from it: same spec, same files.
    side
        Hip with the lesions ("left" = patient's left, +x in LPS).
    edema_ml
        Bone marrow edema volume (mL, 0-150) in the femoral head and neck of ``side``; 0 for none.
    band_mm, band_length_mm
        Subchondral low-signal band: thickness (mm, 0 for none, else 0.5-10) and arc length
        (mm, 2-60) on the coronal plane through the head centre, under the weight-bearing dome.
    snr
        Normal fatty marrow signal / noise sigma, on each series (Rician noise).
    bias
        Half range of the multiplicative bias field (0.2 = +-20 %), left-right asymmetric.
    edema_contrast
        STIR edema / normal marrow signal (measured 1.2-2.5 on real STIR).
    slice_thickness_mm, slice_gap_mm, rows, cols, slices, pixel_mm
        Acquisition geometry; slice spacing = thickness + gap.
    acetabular_edema_ml
        Bone marrow edema (mL, 0-40) in the acetabular roof of ``side`` (cup marrow around a
        point 10 degrees medial of vertical); STIR = pelvic marrow x ``edema_contrast``, T1 half
        the pelvic marrow. 0 (default) for none; a phantom without it is byte-identical to before.
    effusion_ml
        Joint fluid (mL, 0-40) of ``side``: a collar in the capsule around the femoral neck, grown
        outwards from the neck surface between the head and 36 mm along the neck (very high
        STIR, low T1: the fluid tissue). 0 (default) for none.

    Raises
    ------
    InputError
        A value is out of range (each problem names its field).

    Example
    -------
    >>> PhantomSpec(seed=1, edema_ml=25, band_mm=4).side
    'left'
    """

    seed: int = 0
    side: str = "left"
    edema_ml: float = 30.0
    band_mm: float = 0.0
    band_length_mm: float = 20.0
    snr: float = 20.0
    bias: float = 0.2
    edema_contrast: float = 2.0
    slice_thickness_mm: float = 4.0
    slice_gap_mm: float = 1.2
    rows: int = 384
    cols: int = 384
    slices: int = 40
    pixel_mm: float = 0.9
    acetabular_edema_ml: float = 0.0
    effusion_ml: float = 0.0

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InputError("invalid phantom parameters", problems)

    def problems(self) -> list[Problem]:
        """Each value out of its range, named."""
        problems = []
        if self.side not in ("left", "right"):
            problems.append(Problem("side", f"{self.side!r} is not left or right"))
        if not 0 <= self.edema_ml <= 150:
            problems.append(Problem("edema_ml", f"{self.edema_ml} is outside 0-150 mL"))
        if not (self.band_mm == 0 or 0.5 <= self.band_mm <= 10):
            problems.append(Problem("band_mm", f"{self.band_mm} is neither 0 (no band) nor 0.5-10 mm"))
        if self.band_mm and not 2 <= self.band_length_mm <= 60:
            problems.append(Problem("band_length_mm", f"{self.band_length_mm} is outside 2-60 mm"))
        if not self.snr > 0:
            problems.append(Problem("snr", f"{self.snr} is not positive"))
        if not 0 <= self.bias < 0.8:
            problems.append(Problem("bias", f"{self.bias} is outside 0-0.8"))
        if not (self.slice_thickness_mm > 0 and self.slice_gap_mm >= 0):
            problems.append(Problem("slice_thickness_mm", "thickness must be positive and the gap not negative"))
        if problems:
            return problems  # the joint findings are checked once the rest is valid, as before
        return [Problem(name, f"{value} is outside 0-40 mL")
                for name, value in (("acetabular_edema_ml", self.acetabular_edema_ml), ("effusion_ml", self.effusion_ml))
                if not 0 <= value <= 40]

    @property
    def parameters(self) -> dict[str, Any]:
        """The spec as written to ``truth.json`` and hashed into the noise seed.

        The joint findings join only when requested: phantoms without them keep their bytes.
        """
        out = dict(seed=self.seed, side=self.side, edema_ml=self.edema_ml, band_mm=self.band_mm,
                   band_length_mm=self.band_length_mm, snr=self.snr, bias=self.bias, edema_contrast=self.edema_contrast,
                   slice_thickness_mm=self.slice_thickness_mm, slice_gap_mm=self.slice_gap_mm, rows=self.rows,
                   cols=self.cols, slices=self.slices, pixel_mm=self.pixel_mm)
        if self.acetabular_edema_ml:
            out["acetabular_edema_ml"] = self.acetabular_edema_ml
        if self.effusion_ml:
            out["effusion_ml"] = self.effusion_ml
        return out

    @property
    def has_joint_findings(self) -> bool:
        return self.acetabular_edema_ml > 0 or self.effusion_ml > 0

    @property
    def joint_requests(self) -> dict[str, tuple[float, tuple[int, ...]]]:
        """Joint finding -> (requested mL, tissues it grows in)."""
        return {"acetabular": (self.acetabular_edema_ml, (PELVIC_MARROW,)), "effusion": (self.effusion_ml, (MUSCLE, FAT))}


def _fits(what: str, ml: float, scores: np.ndarray, voxel_ml: float) -> int:
    """Voxels needed for ``ml``; an error when they are not well inside the region scored."""
    needed = int(np.ceil(ml / voxel_ml))
    if needed >= len(scores) * 0.8:
        region = "the femoral marrow of this phantom" if what == "edema_ml" else f"this phantom's {what[:-3]} region"
        raise InputError("invalid phantom parameters", [Problem(what, f"{ml} mL does not fit in {region}")])
    return needed


@dataclass
class _Raster:
    """The phantom on its grid while it is built: tissue labels and growth scores at voxel centres,
    then the supersampled voxels near a surface or a lesion boundary."""

    spec: PhantomSpec
    anatomy: Anatomy
    grid: Grid
    labels: np.ndarray
    near: np.ndarray
    score: np.ndarray
    joint_score: dict[str, np.ndarray]
    reach: float = 0.0
    score_limit: float = -np.inf
    joint_limits: dict[str, float] = field(default_factory=dict)
    fine_index: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.spec.slices, self.spec.rows, self.spec.cols)

    @property
    def voxel_ml(self) -> float:
        return self.spec.pixel_mm * self.spec.pixel_mm * self.grid.spacing_mm / 1000.0


def _tissue_at_centres(spec: PhantomSpec, anatomy: Anatomy, grid: Grid) -> _Raster:
    """Step 1: tissue at voxel centres: the body (2-D ellipses) everywhere, the full anatomy in boxes."""
    shape = (spec.slices, spec.rows, spec.cols)
    raster = _Raster(spec, anatomy, grid, labels=np.zeros(shape, dtype=np.uint8),
                     near=np.full(shape, np.inf, dtype=np.float32), score=np.full(shape, np.inf, dtype=np.float32),
                     joint_score={"acetabular": np.full(shape, np.inf, dtype=np.float32),
                                  "effusion": np.full(shape, np.inf, dtype=np.float32)})
    centres_k = np.arange(spec.slices)[:, None]
    centres_i = np.arange(spec.cols)[None, :]
    xy = np.stack(np.broadcast_arrays(centres_i * spec.pixel_mm + grid.affine[0, 3],
                                      centres_k * grid.spacing_mm + grid.affine[1, 3]), axis=-1)
    k_body = np.sqrt((((xy - anatomy.body_centre) / anatomy.body_radii) ** 2).sum(-1))
    k_inner = np.sqrt((((xy - anatomy.body_centre) / (anatomy.body_radii - anatomy.fat_thickness)) ** 2).sum(-1))
    body = np.where(k_inner < 1, MUSCLE, np.where(k_body < 1, FAT, AIR)).astype(np.uint8)
    raster.labels[:] = body[:, None, :]
    boxes = []
    for hip in anatomy.hips.values():
        low = np.array([hip.centre[0] - 75, hip.centre[1] - 45, -1e4])
        high = np.array([hip.centre[0] + 75, hip.centre[1] + 45, hip.centre[2] + hip.radius + 90])
        boxes.append(grid.box(low, high))
    boxes.append(grid.box(anatomy.bladder_centre - anatomy.bladder_radii - 3, anatomy.bladder_centre + anatomy.bladder_radii + 3))
    for box in boxes:
        kk, jj, ii = np.meshgrid(*(np.arange(s.start, s.stop) for s in box), indexing="ij")
        kji = np.column_stack([kk.ravel(), jj.ravel(), ii.ravel()])
        lab, nr, sc, _ = anatomy.classify(grid.points(kji), with_score=spec.edema_ml > 0)
        sub_shape = kk.shape
        raster.labels[box] = lab.reshape(sub_shape)
        raster.near[box] = np.minimum(raster.near[box], nr.reshape(sub_shape))
        if sc is not None:
            raster.score[box] = np.minimum(raster.score[box], sc.reshape(sub_shape))
        if spec.has_joint_findings:
            for name, js in zip(("acetabular", "effusion"), anatomy.joint_scores(grid.points(kji))):
                raster.joint_score[name][box] = np.minimum(raster.joint_score[name][box], js.reshape(sub_shape))
    return raster


def _choose_fine_voxels(raster: _Raster) -> np.ndarray:
    """Step 2: the voxels to supersample: near a surface, or possibly holding a lesion boundary.

    Returns the femoral edema candidates (sets ``reach``, ``score_limit``, ``joint_limits``, ``fine_index``).
    """
    spec, labels = raster.spec, raster.labels
    raster.reach = reach = 0.5 * np.sqrt(2 * spec.pixel_mm**2 + spec.slice_thickness_mm**2) + 0.1
    candidates = np.zeros(raster.shape, dtype=bool)
    if spec.edema_ml > 0:
        marrow_scores = np.sort(raster.score[(labels == MARROW) & np.isfinite(raster.score)])
        needed = _fits("edema_ml", spec.edema_ml, marrow_scores, raster.voxel_ml)
        # The score changes by at most ~2.5 mm per mm (stretch + waves): margin for a voxel's reach.
        raster.score_limit = marrow_scores[needed] + 3.0 * reach + 4.0
        candidates = raster.score < raster.score_limit
    femoral_candidates = candidates
    # Joint findings: every voxel that may hold their boundary is supersampled (score slope 1 mm/mm).
    for name, (ml, tissues) in spec.joint_requests.items():
        if ml <= 0:
            continue
        js = raster.joint_score[name]
        scores = np.sort(js[np.isin(labels, tissues) & np.isfinite(js)])
        needed = _fits(f"{name}_ml", ml, scores, raster.voxel_ml)
        raster.joint_limits[name] = float(scores[needed]) + 2.0 * reach + 3.0
        candidates = candidates | (js < raster.joint_limits[name])
    raster.fine_index = np.argwhere((raster.near < reach) | candidates)
    return femoral_candidates


@dataclass
class _Samples:
    """Per supersampled voxel (rows) and sample (columns): tissue, femoral region and growth scores."""

    labels: np.ndarray
    region: np.ndarray
    score: np.ndarray
    joint: dict[str, np.ndarray]


def _supersample(raster: _Raster, femoral_candidates: np.ndarray) -> _Samples:
    """Step 3a: the tissue, region and scores of every sample of the fine voxels, in chunks."""
    fine_index = raster.fine_index
    assert fine_index is not None
    offsets = raster.grid.sub_offsets()
    n_sub = len(offsets)
    samples = _Samples(np.empty((len(fine_index), n_sub), dtype=np.uint8), np.empty((len(fine_index), n_sub), dtype=np.uint8),
                       np.full((len(fine_index), n_sub), np.inf, dtype=np.float32),
                       {name: np.full((len(fine_index), n_sub), np.inf, dtype=np.float32) for name in raster.joint_limits})
    for start in range(0, len(fine_index), _CHUNK):
        block = fine_index[start:start + _CHUNK]
        kji = (block[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        if raster.joint_limits:
            for name, js in zip(("acetabular", "effusion"), raster.anatomy.joint_scores(raster.grid.points(kji))):
                if name in samples.joint:
                    samples.joint[name][start:start + len(block)] = js.reshape(-1, n_sub)
        scored = raster.spec.edema_ml > 0 and bool(femoral_candidates[tuple(block.T)].any())
        lab, _, sc, reg = raster.anatomy.classify(raster.grid.points(kji), with_score=scored)
        samples.labels[start:start + len(block)] = lab.reshape(-1, n_sub)
        samples.region[start:start + len(block)] = reg.reshape(-1, n_sub)
        if sc is not None:
            samples.score[start:start + len(block)] = sc.reshape(-1, n_sub)
    return samples


def _exact_threshold(what: str, ml: float, values: np.ndarray, voxel_ml: float, n_sub: int, limit: float) -> float:
    """The score below which the samples hold exactly ``ml``; an error when past ``limit``."""
    count = int(round(ml / voxel_ml * n_sub))
    threshold = np.partition(values, count - 1)[count - 1]
    if threshold > limit:
        raise InputError("invalid phantom parameters",
                         [Problem(what, f"{ml} mL could not be placed within the candidate region")])
    return threshold


def _grow_lesions(raster: _Raster, samples: _Samples) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Step 3b: edema and the joint findings grown to their exact volumes (labels changed in place).

    Returns the femoral edema per region (mL) and the joint finding samples.
    """
    spec, n_sub, voxel_ml, reach = raster.spec, samples.labels.shape[1], raster.voxel_ml, raster.reach
    edema_extent = {"head": 0.0, "neck": 0.0, "intertrochanteric": 0.0}
    if spec.edema_ml > 0:
        eligible = (samples.labels == MARROW) & np.isfinite(samples.score)
        threshold = _exact_threshold("edema_ml", spec.edema_ml, samples.score[eligible], voxel_ml, n_sub,
                                     raster.score_limit - reach * 2.6)
        edema_samples = eligible & (samples.score <= threshold)
        samples.labels[edema_samples] = EDEMA
        sample_ml = voxel_ml / n_sub
        for code, name in ((1, "head"), (2, "neck"), (3, "intertrochanteric")):
            edema_extent[name] = round(float(np.count_nonzero(edema_samples & (samples.region == code)) * sample_ml), 3)
    # Joint findings: the same exact-volume growth, on pelvic marrow (acetabular edema) and on
    # the soft tissue of the capsule (effusion).
    joint_samples: dict[str, np.ndarray] = {}
    for name, (ml, tissues) in spec.joint_requests.items():
        if name not in raster.joint_limits:
            continue
        eligible = np.isin(samples.labels, tissues) & np.isfinite(samples.joint[name])
        threshold = _exact_threshold(f"{name}_ml", ml, samples.joint[name][eligible], voxel_ml, n_sub,
                                     raster.joint_limits[name] - reach * 1.5)
        joint_samples[name] = eligible & (samples.joint[name] <= threshold)
    if "acetabular" in joint_samples:
        samples.labels[joint_samples["acetabular"]] = EDEMA
    if "effusion" in joint_samples:
        samples.labels[joint_samples["effusion"]] = FLUID
    return edema_extent, joint_samples


@dataclass
class _Truth:
    """Per voxel: the signal of each series before bias and noise, and the truth fractions and masks."""

    t1_signal: np.ndarray
    stir_signal: np.ndarray
    t1_level: np.ndarray
    stir_level: np.ndarray
    fraction_edema: np.ndarray
    fraction_band: np.ndarray
    fraction_joint: dict[str, np.ndarray]
    edema_mask: np.ndarray
    joint_masks: dict[str, np.ndarray]


def _signals(raster: _Raster, samples: _Samples, joint_samples: dict[str, np.ndarray]) -> _Truth:
    """Step 4: partial volume = mean of the samples' signals; truth fractions from the same samples."""
    shape, labels, spec = raster.shape, raster.labels, raster.spec
    assert raster.fine_index is not None
    fraction_edema = np.zeros(shape, dtype=np.float32)
    fraction_band = np.zeros(shape, dtype=np.float32)
    where = tuple(raster.fine_index.T)
    sample_labels = samples.labels
    acetabular_samples = joint_samples.get("acetabular")
    femoral_edema_samples = sample_labels == EDEMA
    if acetabular_samples is not None:
        femoral_edema_samples &= ~acetabular_samples
    fraction_edema[where] = femoral_edema_samples.mean(axis=1)
    fraction_joint = {}
    for name, joint in joint_samples.items():
        fraction_joint[name] = np.zeros(shape, dtype=np.float32)
        fraction_joint[name][where] = joint.mean(axis=1)
    fraction_band[where] = (sample_labels == BAND).mean(axis=1)
    t1_level = _T1_LEVEL.copy()
    stir_level = _STIR_LEVEL.copy()
    stir_level[EDEMA] = stir_level[MARROW] * spec.edema_contrast
    t1_signal = t1_level[labels].astype(np.float32)
    stir_signal = stir_level[labels].astype(np.float32)
    t1_signal[where] = t1_level[sample_labels].mean(axis=1)
    stir_signal[where] = stir_level[sample_labels].mean(axis=1)
    if "acetabular" in fraction_joint:
        # Acetabular edema is edema of pelvic marrow: its own levels, not the femoral edema's.
        extra = fraction_joint["acetabular"][where]
        t1_signal[where] += extra * np.float32(t1_level[PELVIC_MARROW] * 0.5 - t1_level[EDEMA])
        stir_signal[where] += extra * np.float32(stir_level[PELVIC_MARROW] * spec.edema_contrast - stir_level[EDEMA])
    edema_mask = fraction_edema >= 0.5
    labels[edema_mask] = EDEMA
    labels[fraction_band >= 0.5] = BAND
    joint_masks = {name: fraction >= 0.5 for name, fraction in fraction_joint.items()}
    if "acetabular" in joint_masks:
        labels[joint_masks["acetabular"]] = EDEMA
    if "effusion" in joint_masks:
        labels[joint_masks["effusion"]] = FLUID
    return _Truth(t1_signal, stir_signal, t1_level, stir_level, fraction_edema, fraction_band, fraction_joint,
                  edema_mask, joint_masks)


def _stored_images(spec: PhantomSpec, grid: Grid, truth: _Truth, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Bias field, marrow texture and Rician noise applied; stored as 12-bit values."""
    texture = marrow_texture(grid, rng, 0.05)
    bias_field = coil_bias_field(grid, rng, spec.bias) * texture
    stored = {}
    for kind, signal, level in (("t1", truth.t1_signal, truth.t1_level), ("fluid", truth.stir_signal, truth.stir_level)):
        sigma = level[MARROW] / spec.snr
        image = rician(signal * bias_field, sigma, rng) * np.float32(_FULL_SCALE)
        stored[kind] = np.clip(np.rint(image), 0, 4095).astype(np.uint16)
    return stored


def _write_files(out: Path, spec: PhantomSpec, raster: _Raster, truth: _Truth, stored: dict[str, np.ndarray],
                 fingerprint: str) -> dict[str, str]:
    """Step 5: the two DICOM series and the truth masks; returns the UIDs."""
    out.mkdir(parents=True, exist_ok=True)
    entropy = ["hipdx-phantom", fingerprint]
    uids = {name: generate_uid(prefix=UID_PREFIX, entropy_srcs=entropy + [name]) for name in ("study", "frame", "t1", "fluid")}
    uids["seed"] = str(spec.seed)
    write_series(out / "T1", stored["t1"], raster.grid, kind="t1", uids=uids, entropy=entropy)
    write_series(out / "STIR", stored["fluid"], raster.grid, kind="fluid", uids=uids, entropy=entropy)
    extra_masks = {f"{'acetabular_edema' if name == 'acetabular' else name}_{what}": array
                   for name in truth.fraction_joint
                   for what, array in (("fraction", truth.fraction_joint[name]), ("mask", truth.joint_masks[name]))}
    np.savez_compressed(out / MASKS_FILE, edema_fraction=truth.fraction_edema, edema_mask=truth.edema_mask,
                        band_mask=truth.fraction_band >= 0.5, labels=raster.labels, affine=raster.grid.affine,
                        tissues=np.array(TISSUES), **extra_masks)
    return uids


def write_phantom(outdir: str | os.PathLike[str], spec: PhantomSpec | None = None) -> PhantomTruth:
    """Write a synthetic coronal hip study (T1 and STIR DICOM) and its ground truth.

    Parameters
    ----------
    outdir
        Created if needed; receives ``T1/``, ``STIR/``, ``truth.json`` and ``truth_masks.npz``.
    spec
        What to write (:class:`PhantomSpec`); by default ``PhantomSpec()``.

    Raises
    ------
    InputError
        The edema or a joint finding does not fit in its region (the spec's ranges are checked
        when it is made).

    Example
    -------
    >>> truth = write_phantom(tmp, PhantomSpec(seed=1, edema_ml=25, band_mm=4))  # doctest: +SKIP
    """
    spec = spec if spec is not None else PhantomSpec()
    if not isinstance(spec, PhantomSpec):
        raise InputError(f"write_phantom takes a PhantomSpec, not {type(spec).__name__}")
    parameters = spec.parameters
    fingerprint = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()
    rng = np.random.default_rng([spec.seed, int(fingerprint[:8], 16)])
    anatomy_rng = np.random.default_rng(spec.seed)  # anatomy depends on the seed only
    anatomy = Anatomy(anatomy_rng, spec.side, spec.band_mm, spec.band_length_mm)
    grid = Grid(spec.slices, spec.rows, spec.cols, spec.pixel_mm, spec.slice_thickness_mm + spec.slice_gap_mm,
                spec.slice_thickness_mm)
    raster = _tissue_at_centres(spec, anatomy, grid)
    femoral_candidates = _choose_fine_voxels(raster)
    samples = _supersample(raster, femoral_candidates)
    edema_extent, joint_samples = _grow_lesions(raster, samples)
    truth = _signals(raster, samples, joint_samples)
    stored = _stored_images(spec, grid, truth, rng)
    out = Path(outdir)
    uids = _write_files(out, spec, raster, truth, stored, fingerprint)
    voxel_ml = raster.voxel_ml
    joint_ml = {name: round(float(fraction.sum() * voxel_ml), 3) for name, fraction in truth.fraction_joint.items()}
    result = PhantomTruth(
        seed=spec.seed,
        side=spec.side,
        heads={name: HeadTruth(tuple(round(float(v), 3) for v in hip.centre), round(float(hip.radius), 3))
               for name, hip in anatomy.hips.items()},
        edema_requested_ml=float(spec.edema_ml),
        edema_volume_ml=round(float(truth.fraction_edema.sum() * voxel_ml), 3),
        edema_mask_volume_ml=round(float(truth.edema_mask.sum() * voxel_ml), 3),
        edema_extent_ml=edema_extent,
        band_thickness_mm=float(spec.band_mm),
        band_length_mm=float(spec.band_length_mm if spec.band_mm > 0 else 0.0),
        band_volume_ml=round(float(truth.fraction_band.sum() * voxel_ml), 3),
        series={
            "t1": {"series_uid": uids["t1"], "description": "t1_tse_cor", "folder": "T1"},
            "fluid": {"series_uid": uids["fluid"], "description": "t2_tirm_cor", "folder": "STIR"},
        },
        masks_file=MASKS_FILE,
        parameters=parameters,
        acetabular_edema_ml=joint_ml.get("acetabular", 0.0),
        effusion_ml=joint_ml.get("effusion", 0.0),
    )
    (out / "truth.json").write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return result
