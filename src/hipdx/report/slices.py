"""Slice images of an analysed hip MRI for a viewer: every coronal slice, each hip on its own.

:func:`write_slices` draws, for each hip whose femoral head was found, one small PNG per
coronal slice of the T1 grid: the image the overlays show (the fluid-sensitive series
resampled onto the T1 slice, the T1 image without one; :mod:`hipdx.report.overlay`),
cropped to a square around the femoral head, oriented as the overlays are (patient right on
the viewer's left, superior up), with the outlines of the femoral head (the sphere cut by the
slice), the head-neck-intertrochanteric region, the edema, acetabular edema and
effusion reported present, and the subchondral band measured (shaded at its measured depth
under the dome, as the overlays draw it: :func:`hipdx.report.overlay.band_outline`), in the
colours of the overlays and the SEG
(:data:`hipdx.imaging.export.DISPLAY_COLOURS`). Pixels only (Pillow, no matplotlib): a
slice costs a few milliseconds, so a whole study is drawn when its analysis ends and the
viewer serves files.

Caps: at most :data:`MAX_SLICES` slices per hip (those nearest the head centre) and a crop of
at most :data:`MAX_CROP_PX` pixels a side before the display scaling; a study of 40 slices
takes about 1 MB for both hips.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from hipdx.case.model import Side
from hipdx.errors import InputError
from hipdx.imaging.analyze import MriAnalysis, StudyMasks
from hipdx.imaging.export import DISPLAY_COLOURS, Finding, finding_masks
from hipdx.report.overlay import band_outline, display_flips, slice_image

#: Most slices drawn per hip (those nearest the femoral head centre).
MAX_SLICES = 160
#: Largest crop side, in T1 pixels, before scaling for display.
MAX_CROP_PX = 256
#: The crop's half side, in femoral head radii (the head, the neck and the acetabular roof).
CROP_RADII = 1.8
#: Displayed side of a slice image, in pixels (integer nearest-neighbour scaling towards it).
DISPLAY_PX = 360
#: The region searched for edema (as the overlays draw it).
REGION_COLOUR = "#ffd000"
#: What the viewer's legend lists, in drawing order: (finding, colour, words).
LEGEND = (
    ("head", DISPLAY_COLOURS[Finding.femoral_head], "femoral head (sphere cut by the slice)"),
    ("region", REGION_COLOUR, "head, neck, intertrochanteric region"),
    ("edema", DISPLAY_COLOURS[Finding.edema], "bone marrow edema"),
    ("acetabular_edema", DISPLAY_COLOURS[Finding.acetabular_edema], "acetabular edema"),
    ("effusion", DISPLAY_COLOURS[Finding.effusion], "joint effusion"),
    ("band", DISPLAY_COLOURS[Finding.subchondral_band], "subchondral band (measured depth, at the dome; shaded)"),
)
#: Opacity of the band's shading (the overlays' alpha): the marrow under it stays readable.
BAND_ALPHA = 0.45
MANIFEST = "slices.json"


@dataclass(frozen=True)
class HipSlices:
    """The slices drawn for one hip: 0-based T1 slice indices, the one through the head centre,
    and those showing each finding reported present."""

    side: str
    slices: list[int]
    centre: int
    total: int
    with_finding: dict[str, list[int]]


def _rgb(colour: str) -> np.ndarray:
    colour = colour.lstrip("#")
    return np.array([int(colour[i:i + 2], 16) for i in (0, 2, 4)], np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _window(masks: StudyMasks, side: Side) -> tuple[slice, slice, int]:
    t1, head = masks.t1, masks.heads[side]
    _, dy, dx = t1.spacing_mm
    centre = t1.to_index(head.center_mm)
    half = int(min(MAX_CROP_PX // 2, np.ceil(CROP_RADII * head.radius_mm / min(dy, dx))))
    rows, cols = t1.array.shape[1:]
    r0 = int(np.clip(round(centre[1]) - half, 0, max(rows - 2 * half, 0)))
    c0 = int(np.clip(round(centre[2]) - half, 0, max(cols - 2 * half, 0)))
    return slice(r0, min(r0 + 2 * half, rows)), slice(c0, min(c0 + 2 * half, cols)), int(round(centre[0]))


def band_mask(masks: StudyMasks, band_of: dict[Side, tuple[float, float | None]], side: Side, k: int,
              window: tuple[slice, slice]) -> np.ndarray | None:
    """The pixels of the window inside the band outline of one hip on slice ``k`` (None: no band
    measured, or the slice misses the head). ``band_of``: side -> (thickness, length) in mm."""
    if side not in band_of:
        return None
    polygon = band_outline(masks, side, k, *band_of[side])
    if polygon is None:
        return None
    rs, cs = window
    image = Image.new("1", (cs.stop - cs.start, rs.stop - rs.start), 0)
    points = [(float(c) - cs.start, float(r) - rs.start) for c, r in polygon]
    ImageDraw.Draw(image).polygon(points, fill=1, outline=1)
    mask = np.array(image, dtype=bool)
    return mask if mask.any() else None


def _bands(analysis: MriAnalysis) -> dict[Side, tuple[float, float | None]]:
    """Side -> (thickness, length) of each subchondral band measured, as the overlays draw them."""
    out = {}
    for side in (Side.right, Side.left):
        band = getattr(analysis.sides, side.value).subchondral_band
        if band.thickness_mm:
            out[side] = (band.thickness_mm, band.length_mm)
    return out


def _draw(masks: StudyMasks, reported: dict[tuple[Side, Finding], np.ndarray], band_of: dict[Side, tuple[float, float | None]],
          side: Side, k: int, window: tuple[slice, slice]) -> bytes:
    t1, head = masks.t1, masks.heads[side]
    rs, cs = window
    image = slice_image(masks, k)[0][rs, cs]
    lo, hi = (float(v) for v in np.percentile(image, (1.0, 99.5)))
    grey = np.clip((image - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)

    dz, dy, dx = t1.spacing_mm
    centre = t1.to_index(head.center_mm)
    offset = (k - centre[0]) * dz
    if abs(offset) < head.radius_mm:
        r_mm = float(np.sqrt(head.radius_mm**2 - offset**2))
        jj, ii = np.mgrid[rs, cs]
        distance = np.hypot((jj - centre[1]) * dy, (ii - centre[2]) * dx)
        rgb[np.abs(distance - r_mm) < 0.6 * min(dy, dx)] = _rgb(DISPLAY_COLOURS[Finding.femoral_head])
    region = head.proximal_femur_mask[k][rs, cs]
    if region.any():
        rgb[_outline(region)] = _rgb(REGION_COLOUR)
    for finding in (Finding.effusion, Finding.acetabular_edema, Finding.edema):
        mask = reported.get((side, finding))
        if mask is not None and mask[k][rs, cs].any():
            rgb[_outline(mask[k][rs, cs])] = _rgb(DISPLAY_COLOURS[finding])
    band = band_mask(masks, band_of, side, k, (rs, cs))
    if band is not None:
        colour = _rgb(DISPLAY_COLOURS[Finding.subchondral_band]).astype(np.float32)
        rgb[band] = ((1 - BAND_ALPHA) * rgb[band] + BAND_ALPHA * colour).astype(np.uint8)
        rgb[_outline(band)] = colour.astype(np.uint8)

    flip_cols, flip_rows = display_flips(t1)
    if flip_cols:
        rgb = rgb[:, ::-1]
    if flip_rows:
        rgb = rgb[::-1]
    scale = max(1, min(6, DISPLAY_PX // max(rgb.shape[:2])))
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, format="PNG", compress_level=6)
    return out.getvalue()


def slice_file(folder: Path, side: str, k: int) -> Path:
    """Where :func:`write_slices` put slice ``k`` (0-based) of one hip."""
    return folder / f"{side}_{k:03d}.png"


def write_slices(analysis: MriAnalysis, folder: Path, masks: StudyMasks | None = None) -> dict[str, HipSlices]:
    """Draw every slice of each hip whose head was found into ``folder``, with ``slices.json``.

    Parameters
    ----------
    analysis
        An analysis made here (it keeps its masks); one read back from JSON has none.
    masks
        The masks when the caller has them; by default ``analysis.masks``.

    Returns
    -------
    Side name -> :class:`HipSlices`; empty when no femoral head was found.

    Raises
    ------
    InputError
        The analysis kept no masks (read back from JSON), or ``folder`` cannot be written.
    """
    masks = masks if masks is not None else analysis.masks
    if masks is None:
        raise InputError("this analysis kept no masks (it was read back from JSON); analyse the study again", [])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the slice folder {folder}: {exc.strerror or exc}") from None
    reported = {(side, finding): mask for side, finding, mask in finding_masks(analysis, masks)}
    band_of = _bands(analysis)
    n = masks.t1.array.shape[0]
    out: dict[str, HipSlices] = {}
    for side in (Side.right, Side.left):
        if side not in masks.heads:
            continue
        rs, cs, centre = _window(masks, side)
        centre = int(np.clip(centre, 0, n - 1))
        chosen = sorted(sorted(range(n), key=lambda k: (abs(k - centre), k))[:MAX_SLICES])
        for k in chosen:
            try:
                slice_file(folder, side.value, k).write_bytes(_draw(masks, reported, band_of, side, k, (rs, cs)))
            except OSError as exc:
                raise InputError(f"cannot write the slice images to {folder}: {exc.strerror or exc}") from None
        with_finding = {}
        for finding in (Finding.edema, Finding.acetabular_edema, Finding.effusion):
            mask = reported.get((side, finding))
            if mask is not None:
                with_finding[finding.value] = [k for k in chosen if mask[k].any()]
        if side in band_of:
            with_finding[Finding.subchondral_band.value] = [k for k in chosen if band_mask(masks, band_of, side, k, (rs, cs)) is not None]
        out[side.value] = HipSlices(side.value, chosen, centre, n, with_finding)
    manifest = {name: vars(hip) for name, hip in out.items()}
    (folder / MANIFEST).write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
    return out


def read_manifest(folder: Path) -> dict[str, HipSlices]:
    """The slices :func:`write_slices` drew into ``folder`` (empty when it drew none or is gone)."""
    try:
        raw: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {name: HipSlices(**hip) for name, hip in raw.items()}
