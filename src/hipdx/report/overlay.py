"""PNG overlays of a hip MRI analysis: representative coronal slices with contours, for reports.

:func:`write_overlays` draws one image per representative coronal slice of the T1 grid: the
slice through each femoral head centre, and the slice with the most edema when it is another
one. On each: the fluid-sensitive image resampled onto the T1 slice (the T1 image when the
study has no fluid-sensitive series), the femoral head circle (the sphere cut by the slice),
the head-neck-intertrochanteric region where edema is searched, the contours of the bone
marrow edema, acetabular edema and joint effusion reported present
(:func:`~hipdx.imaging.export.finding_masks`, the masks the SEG holds), and the subchondral
band drawn as the measured depth under the dome, each in its colour
(:data:`~hipdx.imaging.export.DISPLAY_COLOURS`, also the SEG's recommended display colours),
with a legend, the patient's right and left (from the DICOM LPS geometry, radiological
convention: patient right on the viewer's left) and the caption "hipdx supports a
clinician's decision".

The masks are handed in (:class:`~hipdx.imaging.results.StudyMasks`, by default those the
analysis kept): the renderer draws them and never analyses, searches or rebuilds anything. Drawn with matplotlib's Agg canvas (no display, no pyplot state), fixed size
(``800 x 800`` pixels), no dates or versions in the file: the same input gives the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Polygon

from hipdx.case.model import Presence, Side
from hipdx.errors import ImagingError, InputError
from hipdx.imaging.band import DOME_HALF_ANGLE_DEG
from hipdx.imaging.results import DISPLAY_COLOURS, Finding, MriAnalysis, StudyMasks, finding_masks
from hipdx.imaging.volume import Volume

#: Figure size in inches and resolution: 800 x 800 pixels.
FIGURE_SIZE_IN = (8.0, 8.0)
DPI = 100
CAPTION = "hipdx supports a clinician's decision"

_HEAD = DISPLAY_COLOURS[Finding.femoral_head]
_REGION = "#ffd000"
_EDEMA = DISPLAY_COLOURS[Finding.edema]
_ACETABULAR_EDEMA = DISPLAY_COLOURS[Finding.acetabular_edema]
_EFFUSION = DISPLAY_COLOURS[Finding.effusion]
_BAND = DISPLAY_COLOURS[Finding.subchondral_band]


def slice_image(masks: StudyMasks, k: int) -> tuple[np.ndarray, str]:
    t1 = masks.t1
    image = masks.fluid_on_t1_slice(k)
    if image is None or masks.fluid is None:
        return t1.array[k].astype(np.float32), f"T1 ({t1.description or 'series'})"
    return image, f"fluid-sensitive ({masks.fluid.description or 'series'}) on the T1 grid"


def _representative_slices(masks: StudyMasks) -> dict[int, list[str]]:
    """Slice index -> why it was chosen, in drawing order (right head, left head, maximum edema)."""
    chosen: dict[int, list[str]] = {}
    n = masks.t1.array.shape[0]
    for side in (Side.right, Side.left):
        head = masks.heads.get(side)
        if head is not None:
            k = int(np.clip(np.round(masks.t1.to_index(head.center_mm)[0]), 0, n - 1))
            chosen.setdefault(k, []).append(f"{side.value} femoral head centre")
    per_slice = masks.edema.sum(axis=(1, 2))
    if per_slice.any():
        k = int(np.argmax(per_slice))  # first of equal maxima: deterministic
        chosen.setdefault(k, []).append("maximum edema")
    return chosen


def display_flips(volume: Volume) -> tuple[bool, bool]:
    """Flip columns so patient right is on the viewer's left, rows so superior is up."""
    col_dir, row_dir = volume.affine[:3, 0], volume.affine[:3, 1]
    return bool(col_dir[0] < 0), bool(row_dir[2] > 0)


def band_outline(masks: StudyMasks, side: Side, k: int, thickness_mm: float, length_mm: float | None) -> np.ndarray | None:
    """The measured band as a ring sector under the dome, centred on the superior direction, in (col, row) pixels.

    The band's angular position is not part of the analysis output; it is drawn centred on
    the top of the head, with the measured depth and arc length (the whole dome without a length).
    None when slice ``k`` does not cut the head. The overlays and the viewer's slices
    (:mod:`hipdx.report.slices`) both draw this one outline.
    """
    t1, head = masks.t1, masks.heads[side]
    normal = t1.affine[:3, 2] / np.linalg.norm(t1.affine[:3, 2])
    centre_k = masks.t1.to_index(head.center_mm)[0]
    offset = (k - centre_k) * t1.spacing_mm[0]
    if abs(offset) >= head.radius_mm:
        return None
    r = float(np.sqrt(head.radius_mm**2 - offset**2))
    inner = max(r - thickness_mm, 0.0)
    half = np.deg2rad(DOME_HALF_ANGLE_DEG)
    if length_mm:
        half = min(half, 0.5 * length_mm / r)
    angles = np.linspace(-half, half, 41)
    row_dir = t1.affine[:3, 1] / np.linalg.norm(t1.affine[:3, 1])
    col_dir = t1.affine[:3, 0] / np.linalg.norm(t1.affine[:3, 0])
    superior = -row_dir if row_dir[2] < 0 else row_dir
    centre = head.center_mm + offset * normal
    dirs = np.cos(angles)[:, None] * superior + np.sin(angles)[:, None] * col_dir
    outline = np.concatenate([centre + r * dirs, centre + inner * dirs[::-1]])
    kji = t1.to_index(outline)
    return kji[:, [2, 1]]  # (column, row)


def _figure(masks: StudyMasks, analysis: MriAnalysis, k: int, reasons: list[str], statement: bool = True) -> Figure:
    """The overlay of slice ``k``: its axes keep image (column, row) pixel coordinates."""
    t1 = masks.t1
    reported = {(side, finding): mask for side, finding, mask in finding_masks(analysis, masks)}
    image, image_name = slice_image(masks, k)
    flip_cols, flip_rows = display_flips(t1)
    rows, cols = image.shape
    _, dy, dx = t1.spacing_mm

    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0.02, 0.08, 0.96, 0.82))
    lo, hi = (float(v) for v in np.percentile(image, (1.0, 99.5)))
    ax.imshow(image, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6), aspect=dy / dx, interpolation="nearest")
    # Image coordinates stay in (column, row) pixels; the axes are flipped for display.
    ax.set_xlim((cols - 0.5, -0.5) if flip_cols else (-0.5, cols - 0.5))
    ax.set_ylim((-0.5, rows - 0.5) if flip_rows else (rows - 0.5, -0.5))
    ax.set_axis_off()

    for side in (Side.right, Side.left):
        _draw_side(ax, masks, analysis, side, k, reported)

    # Patient sides at the image edges: after the flips, the viewer's left is the patient's right.
    for x, label in ((0.03, "R"), (0.97, "L")):
        ax.text(x, 0.5, label, transform=ax.transAxes, color="white", fontsize=20, fontweight="bold",
                ha="center", va="center")

    handles = [
        Line2D([], [], color=_HEAD, linewidth=1.5, label="femoral head (sphere cut by this slice)"),
        Line2D([], [], color=_REGION, linewidth=1.0, linestyle="dashed", label="head, neck, intertrochanteric region"),
        Line2D([], [], color=_EDEMA, linewidth=1.5, label="bone marrow edema"),
        Line2D([], [], color=_ACETABULAR_EDEMA, linewidth=1.5, label="acetabular edema"),
        Line2D([], [], color=_EFFUSION, linewidth=1.5, label="joint effusion"),
        Line2D([], [], color=_BAND, linewidth=6, alpha=0.45, label="subchondral band (measured depth, at the dome)"),
    ]
    ax.legend(handles=handles, loc="lower center", fontsize=8, framealpha=0.8, ncols=2)

    summary = [_side_summary(analysis, side) for side in (Side.right, Side.left)]
    figure.text(0.5, 0.975, f"Coronal slice {k + 1} of {t1.array.shape[0]}: {', '.join(reasons)}",
                ha="center", va="top", fontsize=11)
    figure.text(0.5, 0.948, f"{image_name}\n" + "; ".join(summary), ha="center", va="top", fontsize=8, linespacing=1.3)
    if statement:  # an image on its own says it; inside a report, the report says it once
        figure.text(0.5, 0.03, CAPTION, ha="center", va="bottom", fontsize=11, style="italic")
    return figure


def _draw_side(ax: Axes, masks: StudyMasks, analysis: MriAnalysis, side: Side, k: int, reported: dict) -> None:
    """One side on slice ``k``: the head's circle, its region, the reported findings' outlines and the band."""
    t1 = masks.t1
    dz, _, dx = t1.spacing_mm
    head = masks.heads.get(side)
    if head is None:
        return
    offset = (k - t1.to_index(head.center_mm)[0]) * dz
    if abs(offset) < head.radius_mm:
        r_mm = float(np.sqrt(head.radius_mm**2 - offset**2))
        centre = t1.to_index(head.center_mm)
        ax.add_patch(Circle((centre[2], centre[1]), r_mm / dx, fill=False, edgecolor=_HEAD, linewidth=1.5))
    region = head.proximal_femur_mask[k]
    if region.any():
        ax.contour(region.astype(np.float32), levels=[0.5], colors=_REGION, linewidths=1.0, linestyles="dashed")
    for finding in (Finding.edema, Finding.acetabular_edema, Finding.effusion):
        mask = reported.get((side, finding))
        if mask is not None and mask[k].any():
            ax.contour(mask[k].astype(np.float32), levels=[0.5], colors=DISPLAY_COLOURS[finding], linewidths=1.5)
    band = getattr(analysis.sides, side.value).subchondral_band
    if band.thickness_mm:
        polygon = band_outline(masks, side, k, band.thickness_mm, band.length_mm)
        if polygon is not None:
            ax.add_patch(Polygon(polygon, closed=True, facecolor=_BAND, alpha=0.45, edgecolor=_BAND, linewidth=1.0))


def _side_summary(analysis: MriAnalysis, side: Side) -> str:
    """One side's line above the image: edema, band and joint findings, or that the head was not found."""
    out = getattr(analysis.sides, side.value)
    if out.femoral_head is None:
        return f"{side.value}: femoral head not found, nothing measured"
    text = f"{side.value}: edema {out.edema.volume_ml if out.edema.volume_ml is not None else 'not measured'}"
    if out.femoral_head.found_by == "partner search":
        text = f"{side.value}: head found beside the other (check its circle), edema " + text.split(": edema ", 1)[1]
    if out.edema.volume_ml is not None:
        text += " mL"
    band = out.subchondral_band
    if band.thickness_mm:
        text += f", band {band.thickness_mm} mm"
        if band.indeterminate:
            text += " (thickness not decided: read it on the image)"
    elif band.present is Presence.unknown and band.undecided_because:
        text += ", no band found (absence not decided: read it on the image)"
    for name, joint in (("acetabulum", out.acetabular_edema), ("effusion", out.effusion)):
        if joint.present is Presence.present:
            text += f", {name} {joint.volume_ml} mL"
    return text


def _draw(masks: StudyMasks, analysis: MriAnalysis, k: int, reasons: list[str], path: Path, statement: bool) -> None:
    figure = _figure(masks, analysis, k, reasons, statement)
    try:
        figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _tag(reasons: list[str]) -> str:
    sides = [r.split()[0] for r in reasons if r.endswith("femoral head centre")]
    tags = ["heads"] if len(sides) == 2 else [f"{s}_head" for s in sides]
    if "maximum edema" in reasons:
        tags.append("max_edema")
    return "_".join(tags)


def _prepare(outdir: Path) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"cannot write overlays to {outdir}: it is a file, not a folder")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the overlay folder {outdir}: {exc.strerror or exc}") from None


def write_overlays(
    analysis: MriAnalysis,
    outdir: str | os.PathLike[str],
    *,
    masks: StudyMasks | None = None,
    statement: bool = True,
) -> list[Path]:
    """Write PNG overlays of the representative coronal slices of an analysed study.

    Parameters
    ----------
    analysis
        ``analyze_study(volumes)``: band thickness and length, and the numbers in the titles.
    outdir
        Folder for the images; created if needed.
    masks
        The study's masks (:class:`~hipdx.imaging.results.StudyMasks`); by default those
        ``analysis`` kept. Nothing is analysed again here.
    statement
        Caption each image with the decision-support statement (an image exported on its own);
        False for images placed in a report, which states it once.

    Returns
    -------
    list of Path
        One 800 x 800 PNG per representative slice, named by its 1-based slice number and
        why it was chosen: ``overlay_23_heads.png`` (both head centres on slice 23),
        ``overlay_21_right_head.png``, ``overlay_26_max_edema.png``; in slice-choice order.
        Empty when no head was found and there is no edema.

    Raises
    ------
    InputError
        ``outdir`` is a file or cannot be created or written.
    ImagingError
        No masks are given and the analysis carries none (read back from JSON).

    Example
    -------
    >>> write_overlays(analysis, "overlays/")   # doctest: +SKIP
    [PosixPath('overlays/overlay_23_heads.png'), PosixPath('overlays/overlay_26_max_edema.png')]
    """
    masks = masks if masks is not None else analysis.masks
    if masks is None:
        raise ImagingError("the analysis carries no masks (read back from JSON?): hand write_overlays its masks")
    outdir = Path(outdir)
    _prepare(outdir)
    written = []
    for k, reasons in _representative_slices(masks).items():
        path = outdir / f"overlay_{k + 1:02d}_{_tag(reasons)}.png"
        _draw(masks, analysis, k, reasons, path, statement)
        written.append(path)
    return written
