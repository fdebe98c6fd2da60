"""A hip MRI study analysed: both femoral heads, edema of each proximal femur, subchondral bands.

The T1 series gives the geometry (femoral heads and their regions); the fluid-sensitive series
is resampled onto the T1 grid through patient coordinates (same session, no registration) and
edema is segmented inside each head, neck and intertrochanteric region against normal marrow.
Normal marrow is estimated in each proximal femur on its own (the darkest clear peak of its
histogram, so an edema filling most of the head still leaves normal marrow as the reference):
the coil's left-right bias makes the two sides differ by up to a third, so one side's marrow
is no reference for the other; but a side whose estimate is well above the other's while its
T1 marrow is darker is taken to be filled with edema and measured against the other side's
marrow (:func:`_check_references`), or, when both are, against its own acetabular marrow
(:func:`_check_against_pelvis`). Lesions are detected at Q3 + k IQR and delineated at half
contrast (see :func:`hipdx.imaging.edema.segment_edema`); components under
``EDEMA_MIN_COMPONENT_ML`` are dropped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import numpy as np

from hipdx._version import __version__
from hipdx.case.model import EdemaExtent, Presence, Side
from hipdx.errors import ImagingError
from hipdx.imaging import edema as edema_module
from hipdx.imaging import joint as joint_module
from hipdx.imaging import validate
from hipdx.imaging.anatomy import head_problems, pair_problems
from hipdx.imaging.band import measure_subchondral_band, undecided_because
from hipdx.imaging.choose import choose_series
from hipdx.imaging.edema import ReferenceMarrow, estimate_reference, segment_edema
from hipdx.imaging.heads import FemoralHead, find_femoral_heads, reconcile_neck_axes
from hipdx.imaging.joint import acetabular_reference, joint_box, measure_acetabular_edema, measure_effusion
from hipdx.imaging import partner as partner_module
from hipdx.imaging.parameters import param, provenance_parameters
from hipdx.imaging.partner import find_partner, find_partner_on_fluid
from hipdx.imaging.series import Study
from hipdx.imaging.results import (
    BandOut,
    EdemaOut,
    FemoralHeadOut,
    JointFindingOut,
    MriAnalysis,
    MriProvenance,
    SideOut,
    Sides,
    StudyMasks,
)
from hipdx.imaging.volume import SeriesKind, Volume, resample_onto

#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "analysis").
EDEMA_MIN_COMPONENT_ML = param("analysis.edema_min_component_ml")
EDEMA_MIN_ML = param("analysis.edema_min_ml")
REGION_INVOLVED_SHARE = param("analysis.region_involved_share")
#: Acetabular edema below this volume (mL) is reported absent (the femoral edema's limit).
ACETABULAR_EDEMA_MIN_ML = EDEMA_MIN_ML
EFFUSION_MIN_ML = param("analysis.effusion_min_ml")
REFERENCE_ASYMMETRY = param("analysis.reference_asymmetry")


def _region_in(head: FemoralHead, box: tuple[slice, ...]) -> np.ndarray:
    """The head, neck and intertrochanteric region of ``head`` inside ``box``."""
    return head.head_mask[box] | head.neck_mask[box] | head.intertrochanteric_mask[box]


def _femur_box(head: FemoralHead, margin: int = 2) -> tuple[slice, ...] | None:
    """Bounding box of the head's proximal femur region plus ``margin`` voxels; ``None`` when empty.

    Only the box the regions were drawn in (``head.region_box``) is searched, not the whole volume.
    """
    shape = head.head_mask.shape
    outer = head.region_box or tuple(slice(0, n) for n in shape)
    region = _region_in(head, outer)
    # Per axis, the first and last plane holding the region (projections, not every voxel's index).
    hits = [np.flatnonzero(region.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if hits[0].size == 0:
        return None
    return tuple(
        slice(max(int(i[0]) + o.start - margin, 0), min(int(i[-1]) + o.start + margin + 1, n))
        for i, o, n in zip(hits, outer, shape)
    )


def _extent(head_ml: float, neck_ml: float, inter_ml: float, volume_ml: float) -> EdemaExtent:
    """Extent from where the edema volume is: a region counts when it holds at least
    ``REGION_INVOLVED_SHARE`` of the edema (small spill-over across a region border is tolerated)."""
    if volume_ml < EDEMA_MIN_ML:
        return EdemaExtent.none
    head, neck, inter = (v >= REGION_INVOLVED_SHARE * volume_ml for v in (head_ml, neck_ml, inter_ml))
    if inter:
        return EdemaExtent.intertrochanteric
    if neck:
        return EdemaExtent.head_and_neck if head else EdemaExtent.femoral_neck
    return EdemaExtent.femoral_head if head else EdemaExtent.focal


def _check_references(references: dict[Side, ReferenceMarrow], t1_marrow: dict[Side, float],
                      what: str = "normal-marrow estimate") -> tuple[list[str], Side | None]:
    """Compare the two sides' normal-marrow estimates; replace one that is edema (in place).

    Returns the warnings and the side whose estimate was replaced (None when none was).

    Each side's normal marrow is estimated on its own proximal femur (the coil's left-right field
    makes one side's marrow no reference for the other). When edema fills nearly all of it, as in
    transient osteoporosis, the estimate is the edema itself and no edema is found. The two cases
    differ on T1: the coil's field raises or lowers both series of one session on one side
    together, while edema raises the fluid-sensitive signal and lowers T1. So a side whose
    fluid-sensitive estimate is more than ``REFERENCE_ASYMMETRY`` above the other's while its T1
    marrow signal (median of its proximal femur) is lower is measured against the other side's
    normal marrow, with a warning; a difference in the same direction on both series is the coil.
    """
    high, low = sorted(references, key=lambda side: references[side].median, reverse=True)
    a, b = references[low].median, references[high].median
    if not (a > 0 and (b - a) / a > REFERENCE_ASYMMETRY):
        return [], None
    if t1_marrow[high] < t1_marrow[low]:
        references[high] = references[low]
        return [
            f"{high.value}: its own {what} looks like edema (fluid-sensitive signal {b / a:.2f} x "
            f"the {low.value} side's while its T1 marrow signal is {t1_marrow[high] / t1_marrow[low]:.2f} x): "
            f"diffuse edema of the whole region is likely; measured against the {low.value} side's "
            "normal marrow, without correcting the coil's left-right difference"
        ], high
    return [
        f"{what}: normal marrow signal differs by {100 * (b - a) / a:.0f}% between the sides, on T1 too "
        "(asymmetric coil field); each side is measured against its own marrow"
    ], None


def _check_against_pelvis(side: Side, references: dict[Side, ReferenceMarrow], pelvic: ReferenceMarrow,
                          femur_t1: float, pelvic_t1: float) -> list[str]:
    """A side's femoral normal-marrow estimate against its own acetabular marrow (in place).

    For when the other side cannot help (both proximal femora edematous, or one hip found): the
    adult femoral head is fatty marrow in everyone ("Hematopoietic and fatty bone marrow
    distribution in the normal and ischemic hip: new observations with 1.5-T MR imaging",
    Radiology; 50 healthy people), while pelvic marrow keeps variable red marrow (Andrews,
    RadioGraphics 2000;20:S27-S42), so the acetabulum is normally brighter on STIR and darker on
    T1 than the femur's normal marrow (an expectation, not a calibrated ratio). A femoral
    estimate more than ``REFERENCE_ASYMMETRY`` above the acetabular marrow's while the femur is
    darker on T1 is the reverse of that: the estimate is edema, and the acetabular marrow
    becomes the reference, with a warning (being brighter than normal femoral marrow, it makes
    the edema volume a lower bound).
    """
    femoral = references[side]
    if not (pelvic.median > 0 and femoral.median > (1 + REFERENCE_ASYMMETRY) * pelvic.median and femur_t1 < pelvic_t1):
        return []
    references[side] = pelvic
    return [
        f"{side.value}: its proximal femur's normal-marrow estimate looks like edema (fluid-sensitive signal "
        f"{femoral.median / pelvic.median:.2f} x its acetabular marrow's while its T1 is darker, the reverse of "
        "normal marrow): measured against its acetabular marrow, which is brighter on STIR than normal femoral "
        "marrow, so the edema volume is a lower bound"
    ]


def _study_date(t1: Volume, warnings: list[str]) -> dt.date | None:
    """The T1 series' StudyDate (DICOM DA, YYYYMMDD) as a date; None with a warning when malformed."""
    if not t1.study_date:
        return None
    try:
        return dt.datetime.strptime(t1.study_date.strip(), "%Y%m%d").date()
    except ValueError:
        warnings.append(f"StudyDate {t1.study_date!r} of the T1 series is not a date (YYYYMMDD): the MRI is undated")
        return None


def _unknown_side(head: FemoralHead | None) -> SideOut:
    return SideOut(
        femoral_head=_head_out(head) if head else None,
        edema=EdemaOut(volume_ml=None, fraction=None, extent=EdemaExtent.unknown, signal_ratio=None),
        subchondral_band=BandOut(present=Presence.unknown, thickness_mm=None, length_mm=None, indeterminate=False),
    )


def _head_out(head: FemoralHead) -> FemoralHeadOut:
    return FemoralHeadOut(
        center_mm=[round(float(c), 2) for c in head.center_mm],
        radius_mm=round(head.radius_mm, 2),
        score=round(head.score, 3),
        found_by=head.found_by,
    )


def _head_marrow_t1(t1: Volume, head: FemoralHead) -> float:
    """Median T1 signal of the head region (inside its box when known: the mask is empty outside)."""
    box = head.region_box or tuple(slice(None) for _ in t1.array.shape)
    inside = t1.array[box][head.head_mask[box]]
    return float(np.median(inside)) if inside.size else float("nan")


def _checked_heads(t1: Volume, warnings: list[str], fluid: Volume | None = None) -> dict[Side, FemoralHead]:
    """The femoral heads of ``t1`` that pass the anatomical checks, a missed one searched for again.

    The whole-image search's circles are checked (:mod:`hipdx.imaging.anatomy`); when one head
    passes and the other is missing, or the pair fails, the other is searched for beside each
    head in turn, the better-scored first (:func:`hipdx.imaging.partner.find_partner`: a head
    darkened on T1 by edema is often missed by the whole-image search), and, when that finds
    nothing on T1, on a coronal ``fluid`` series where edema makes it bright
    (:func:`hipdx.imaging.partner.find_partner_on_fluid`). A signal void where the other head
    should be (a hip prosthesis) leaves the head found measured alone. Every choice is a warning.
    """
    heads: dict[Side, FemoralHead] = {}
    for head in find_femoral_heads(t1, reconcile=False):
        problems = head_problems(head.radius_mm, head.roof_share)
        if problems:
            warnings.append(f"{head.side.value}: no femoral head ({'; '.join(problems)})")
        else:
            heads[head.side] = head
    pair_failed: list[str] = []
    if len(heads) == 2:
        left, right = heads[Side.left], heads[Side.right]
        pair_failed = pair_problems(left.center_mm, right.center_mm, left.radius_mm, right.radius_mm)
    if len(heads) == 1 or pair_failed:
        for anchor in sorted(heads.values(), key=lambda h: h.score, reverse=True):
            other = Side.left if anchor.side is Side.right else Side.right
            search = find_partner(t1, anchor)
            on_fluid = False
            if search.head is None and not search.void and fluid is not None and fluid.plane == "coronal":
                on_fluid_search = find_partner_on_fluid(t1, fluid, anchor)
                if on_fluid_search.head is not None:
                    search, on_fluid = on_fluid_search, True
                else:
                    search = replace(search, reason=f"{search.reason}; on the fluid-sensitive series: {on_fluid_search.reason}")
            if search.head is not None:
                if pair_failed:
                    warnings.append(
                        f"{other.value}: the circle first found ({heads[other].radius_mm:.1f} mm) does not pair with the "
                        f"{anchor.side.value} femoral head (" + "; ".join(pair_failed) + ")"
                    )
                where = (", located on the fluid-sensitive series where its edema is bright and fitted on T1"
                         if on_fluid else "")
                warnings.append(
                    f"{other.value}: femoral head found by a second search beside the {anchor.side.value} head{where} "
                    f"(its T1 marrow is {search.t1_ratio:.2f} of the {anchor.side.value} head's, as edema or necrosis "
                    f"make it); its radius is taken from the {anchor.side.value} head; check the overlay"
                )
                heads = {anchor.side: anchor, other: search.head}
                pair_failed = []
                break
            if search.void:
                warnings.append(
                    f"{other.value}: signal void where the femoral head should be (T1 {search.t1_ratio:.2f} of the "
                    f"{anchor.side.value} head's marrow): a hip prosthesis or other metal? The {other.value} hip is not measured"
                )
                heads = {anchor.side: anchor}
                pair_failed = []
                break
            if len(heads) == 1:
                warnings.append(f"{other.value}: no femoral head beside the {anchor.side.value} one ({search.reason})")
    if pair_failed:
        heads = {}
        warnings.append(
            "no pair of femoral heads on the T1 series (" + "; ".join(pair_failed) + "): nothing is measured; "
            "is this a hip or pelvis study?"
        )
    for side in (Side.left, Side.right):
        if side not in heads:
            warnings.append(f"{side.value} femoral head not found on the T1 series")
    return reconcile_neck_axes(t1, heads)


def analyze_study(volumes: list[Volume]) -> MriAnalysis:
    """Analyse a hip MRI study: femoral heads on T1, edema on the fluid-sensitive series, bands.

    Parameters
    ----------
    volumes
        The volumes of one study (e.g. ``read_study(path).volumes``); one coronal T1 is required,
        a fluid-sensitive series is used when present. Among several of a kind, the one used is
        chosen by :func:`hipdx.imaging.choose.choose_series` (coronal, no fat suppression, before
        contrast, both hips...); the provenance says why and which were not used.

    Returns
    -------
    MriAnalysis

    Raises
    ------
    ImagingError
        No T1-weighted series, or the T1 series cannot be searched for femoral heads.
    """
    choice = choose_series(volumes)
    t1, fluid = choice.t1, choice.fluid
    if t1 is None:
        raise ImagingError("no T1-weighted series in the study: the femoral heads are found on coronal T1")
    warnings = list(choice.warnings)
    damaged = _damaged_series(t1, fluid)
    warnings += damaged
    if fluid is None:
        warnings.append("no fluid-sensitive series (STIR, fat-saturated T2/PD): edema not measured")
    heads = _checked_heads(t1, warnings, fluid)
    fluid_on_t1, references = _fluid_on_t1(t1, fluid, heads, warnings)
    joint_values, shell_references, shell_t1 = _joint_references(t1, fluid, heads, fluid_on_t1)
    warnings += _settle_references(t1, fluid_on_t1, references, shell_references, shell_t1)

    sides: dict[Side, SideOut] = {}
    volumes_ml: dict[Side, float] = {}
    masks = StudyMasks(t1, fluid, heads)
    # Each head's T1 marrow against the other's: a band's thickness under darker marrow is not decided.
    head_t1 = {side: _head_marrow_t1(t1, head) for side, head in heads.items()}
    for side in (Side.left, Side.right):
        head = heads.get(side)
        if head is None:
            sides[side] = _unknown_side(None)
            continue
        other_t1 = head_t1.get(Side.left if side is Side.right else Side.right)
        band_out = _band_out(side, t1, head, head_t1[side], other_t1, warnings)
        if side not in fluid_on_t1 or side not in references:
            out = _unknown_side(head)
            sides[side] = out.model_copy(update={"subchondral_band": band_out})
            continue
        sides[side], volumes_ml[side] = _measure_side(
            side, t1, fluid, head, band_out, fluid_on_t1[side], references[side], joint_values[side],
            shell_references.get(side), masks)
    series_used = {"t1": t1.description or t1.source}
    if fluid is not None:
        series_used["fluid"] = fluid.description or fluid.source
    study_date = _study_date(t1, warnings)  # before the warnings are gathered: a malformed date adds one
    reported_warnings = warnings + list(t1.warnings) + (list(fluid.warnings) if fluid else [])
    analysis = MriAnalysis(
        sides=Sides(left=sides[Side.left], right=sides[Side.right]),
        side_to_side_edema_ml=round(volumes_ml[Side.left] - volumes_ml[Side.right], 2) if len(volumes_ml) == 2 else None,
        warnings=reported_warnings,
        damaged_pixels=damaged,
        provenance=MriProvenance(
            hipdx_version=__version__,
            series_used=series_used,
            study_date=study_date,
            series_choice=choice.reasons,
            parameters=_method_parameters(),
        ),
    )
    analysis._masks = masks
    return analysis


def _damaged_series(t1: Volume, fluid: Volume | None) -> list[str]:
    """Each series used with more NaN or infinite voxels than the reader accepts, said why."""
    return [
        f"{v.kind.value} series {v.description or v.source}: {100 * v.damaged_share:.1f}% of its voxels were NaN or "
        f"infinite (read as 0), more than {100 * validate.MAX_DAMAGED_SHARE:g}%: the measurements rest on damaged "
        "pixels and are not added to a case"
        for v in (t1, fluid) if v is not None and v.damaged_share > validate.MAX_DAMAGED_SHARE
    ]


def _fluid_on_t1(t1: Volume, fluid: Volume | None, heads: dict[Side, FemoralHead], warnings: list[str]
                 ) -> tuple[dict[Side, tuple[tuple[slice, ...], np.ndarray, np.ndarray]], dict[Side, ReferenceMarrow]]:
    """Fluid-sensitive signal on the T1 grid, only where it is needed, and each side's normal marrow.

    Per side: the femur box, the fluid-sensitive values in it and the head, neck and
    intertrochanteric region in it; the normal-marrow estimate of that region.
    """
    fluid_on_t1: dict[Side, tuple[tuple[slice, ...], np.ndarray, np.ndarray]] = {}
    references: dict[Side, ReferenceMarrow] = {}
    if fluid is None:
        return fluid_on_t1, references
    for side, head in heads.items():
        box = _femur_box(head)
        if box is None:
            continue
        values = resample_onto(fluid, t1, box)
        region = _region_in(head, box)
        inside = region & (values > 0)
        if inside.sum() < edema_module.MIN_MASK_VOXELS:
            warnings.append(f"{side.value}: the fluid-sensitive series does not cover the proximal femur")
            continue
        fluid_on_t1[side] = (box, values, region)
        references[side] = estimate_reference(values[inside])
    return fluid_on_t1, references


def _joint_references(t1: Volume, fluid: Volume | None, heads: dict[Side, FemoralHead], fluid_on_t1: dict
                      ) -> tuple[dict[Side, tuple[tuple[slice, ...], np.ndarray]], dict[Side, ReferenceMarrow],
                                 dict[Side, float]]:
    """The fluid-sensitive signal of each joint box (both joint measurements read no more) and the
    acetabular shells' references with their T1 marrow."""
    joint_values: dict[Side, tuple[tuple[slice, ...], np.ndarray]] = {}
    shell_references: dict[Side, ReferenceMarrow] = {}
    shell_t1: dict[Side, float] = {}
    for side in fluid_on_t1:
        jbox = joint_box(t1, heads[side])
        joint_values[side] = (jbox, resample_onto(fluid, t1, jbox))
        found = acetabular_reference(joint_values[side][1], t1, heads[side], stir_box=jbox)
        if found is not None:
            shell_references[side], shell_t1[side] = found
    return joint_values, shell_references, shell_t1


def _settle_references(t1: Volume, fluid_on_t1: dict, references: dict[Side, ReferenceMarrow],
                       shell_references: dict[Side, ReferenceMarrow], shell_t1: dict[Side, float]) -> list[str]:
    """Normal-marrow estimates that are edema replaced (in place): against the other side, then the pelvis."""
    warnings: list[str] = []
    femur_t1 = {side: float(np.median(t1.array[box][region])) for side, (box, _, region) in fluid_on_t1.items()}
    borrowed = None
    if len(references) == 2:
        found_warnings, borrowed = _check_references(references, femur_t1, "proximal femur's normal-marrow estimate")
        warnings += found_warnings
    if len(shell_references) == 2:
        warnings += _check_references(shell_references, shell_t1, "acetabular normal-marrow estimate")[0]
    for side in sorted(set(references) & set(shell_references) - {borrowed}, key=lambda s: s.value):
        warnings += _check_against_pelvis(side, references, shell_references[side], femur_t1[side], shell_t1[side])
    return warnings


def _band_out(side: Side, t1: Volume, head: FemoralHead, head_t1: float, other_t1: float | None,
              warnings: list[str]) -> BandOut:
    """The subchondral band of one head, decided or not against its T1 marrow ratio to the other head's."""
    band = measure_subchondral_band(t1, head)
    t1_ratio = head_t1 / other_t1 if other_t1 and np.isfinite(other_t1) and other_t1 > 0 else None
    because = undecided_because(band, t1_ratio)
    band_out = BandOut(
        present=Presence.present if band.present else Presence.unknown if because else Presence.absent,
        thickness_mm=band.thickness_mm,
        length_mm=band.length_mm,
        indeterminate=band.present and because is not None,
        undecided_because=because,
    )
    if because is not None and not band.present:
        warnings.append(f"{side.value}: no subchondral band found, but its absence is not decided ({because})")
    elif because is not None and because != undecided_because(band, None):  # not just the cut-off's margin
        warnings.append(f"{side.value}: subchondral band {band.thickness_mm:g} mm, thickness not decided ({because})")
    return band_out


def _measure_side(side: Side, t1: Volume, fluid: Volume | None, head: FemoralHead, band_out: BandOut,
                  on_t1: tuple[tuple[slice, ...], np.ndarray, np.ndarray], reference: ReferenceMarrow,
                  joint: tuple[tuple[slice, ...], np.ndarray], shell_reference: ReferenceMarrow | None,
                  masks: StudyMasks) -> tuple[SideOut, float]:
    """Edema, acetabular edema and effusion of one side (their masks added to ``masks``); the edema volume."""
    box, values, region = on_t1
    sub = Volume(values, t1.affine, SeriesKind.fluid, fluid.description if fluid else "")
    result = segment_edema(sub, region, reference_marrow=reference, half_contrast=True,
                           min_component_ml=EDEMA_MIN_COMPONENT_ML)
    m = result.mask
    masks.edema_by_side[side] = np.zeros(t1.array.shape, bool)
    masks.edema_by_side[side][box] = m
    regions = (head.head_mask[box], head.neck_mask[box], head.intertrochanteric_mask[box])
    in_region = [(np.count_nonzero(m & r), np.count_nonzero(r)) for r in regions]  # (edema, region) voxels
    fractions = [float(n_edema / max(n_region, 1)) for n_edema, n_region in in_region]
    region_ml = [float(n_edema * t1.voxel_volume_ml) for n_edema, _ in in_region]
    head_and_neck = regions[0] | regions[1]
    fraction = float((m & head_and_neck).sum() / max(head_and_neck.sum(), 1))
    jbox, joint_signal = joint
    acetabular_ml, masks.acetabular_edema_by_side[side] = measure_acetabular_edema(
        joint_signal, t1, head, shell_reference, stir_box=jbox)
    effusion_ml, masks.effusion_by_side[side] = measure_effusion(joint_signal, t1, head, reference, stir_box=jbox)
    out = SideOut(
        femoral_head=_head_out(head),
        acetabular_edema=JointFindingOut(
            volume_ml=round(acetabular_ml, 2),
            present=Presence.present if acetabular_ml >= ACETABULAR_EDEMA_MIN_ML else Presence.absent,
        ),
        effusion=JointFindingOut(
            volume_ml=round(effusion_ml, 2),
            present=Presence.present if effusion_ml >= EFFUSION_MIN_ML else Presence.absent,
        ),
        edema=EdemaOut(
            volume_ml=round(result.volume_ml, 2),
            fraction=round(fraction, 3),
            extent=_extent(*region_ml, result.volume_ml),
            signal_ratio=round(result.signal_ratio, 2) if result.signal_ratio else None,
            head_fraction=round(fractions[0], 3),
            neck_fraction=round(fractions[1], 3),
            intertrochanteric_fraction=round(fractions[2], 3),
        ),
        subchondral_band=band_out,
    )
    return out, result.volume_ml


def _method_parameters() -> dict[str, Any]:
    """The method in words and every tuned parameter with the parameters file's digest (provenance)."""
    return {
        "edema_threshold": f"Q3 + {edema_module.THRESHOLD_IQR_FACTOR} x IQR of reference marrow",
        "edema_reference": (
            "each proximal femur's own normal marrow (darkest clear histogram peak); the other side's when "
            f"this one's is > {REFERENCE_ASYMMETRY:g} above it while its T1 marrow is darker; else its own "
            "acetabular marrow when the femoral estimate is that far above it while darker on T1"
        ),
        "edema_delineation": "half contrast between the side's own normal marrow and the lesion",
        "partner_search": (
            f"a missed head searched for beside the other at ~{partner_module.PARTNER_PIXEL_MM:g} mm pixels within "
            "the pair limits, radius fixed at the other head's; a core below "
            f"{partner_module.PARTNER_VOID_RATIO:g} x the other head's T1 marrow is a signal void; when nothing "
            "is found on T1, the same search on a coronal fluid-sensitive series, a head there only with an edema "
            f"contrast (fluid-sensitive over T1 core ratio) of at least {partner_module.FLUID_EDEMA_CONTRAST:g}"
        ),
        "acetabular_edema_reference": (
            "quartiles of the acetabular shell's fatty marrow (T1 >= "
            f"{joint_module.ACETABULAR_REFERENCE_T1_RATIO:g} x the femoral head's fatty marrow); "
            "the shell's darkest clear histogram peak when too few such voxels"
        ),
        **provenance_parameters(),
    }


def analyze_read_study(study: Study) -> MriAnalysis:
    """:func:`analyze_study` of a study read by :func:`hipdx.imaging.io.read_study`, keeping what
    the reader could not use: each unreadable file ("unreadable: FILE: why") and each skipped
    file come first in the warnings, so nothing is dropped silently.

    Raises
    ------
    ImagingError
        As :func:`analyze_study`; its problems then also name each file the reader refused (a
        series whose every slice was refused is why there is no T1 series, for one).
    """
    try:
        analysis = analyze_study(list(study.volumes))
    except ImagingError as exc:
        raise ImagingError(exc.message, exc.problems + list(study.problems)) from None
    analysis.warnings[:0] = [f"unreadable: {p}" for p in study.problems] + list(study.warnings)
    return analysis


#: Days from the onset of pain at which an MRI of the episode can lie (the case model's range
#: of ``days_since_onset``): a StudyDate outside it (19000101 from an anonymiser, say) is refused.
MRI_DAYS_SINCE_ONSET = (0.0, 3650.0)
