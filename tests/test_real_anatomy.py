"""Real anatomy with a known lesion: the real coronal T1 pelvis series with edema put in.

There is no real hip STIR with labelled edema (``../shared/data/README.md``). These tests take
the three real T1 series (real anatomy, texture, noise and coil field) and give one femoral head
and neck the signal of transient osteoporosis: T1 marrow lowered (x 0.9 to 0.5, out to the
cortex) and a
fluid-sensitive series made from the T1 (each voxel's T1 level mapped through the phantom's
tissue levels: fat and fatty marrow dark, muscle intermediate) with that head and neck raised by
the edema contrast (1.6, the median measured on real STIR, and 2.0; ``research/imaging.md`` 1.6).
The region is the head and neck found on the untouched T1, so the truth is known voxel by voxel
(its marrow: voxels at least half the region's median T1; the cortex inside stays dark).
A subchondral band is put in the same way, as a dark cap under the dome.

Measured before the head search used fainter edges (EDGE_THRESHOLD 0.15 -> 0.05) and before a
side's normal-marrow estimate was checked against the other side: a T1 lowered by 10 % lost the
head in 3 of 6 hips, and with edema filling the head and neck at contrast 1.6 two of six were
measured as 0 mL (the estimate was the edema itself).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from hipdx.imaging.analyze import analyze_study
from hipdx.imaging.heads import find_femoral_heads
from hipdx.imaging.io import read_study
from hipdx.imaging.volume import SeriesKind, Volume

from conftest import SHARED, shared_data

pytestmark = [pytest.mark.real_data, pytest.mark.slow]

DATA = SHARED / "data" / "mri" / "pelvis-t1"
SERIES = ("series-01", "series-02", "series-03")
# T1 level (1 = fat) -> fluid-sensitive level, from the phantom's tissues (air, cortex, muscle,
# cartilage-like, fatty marrow, fat); marrow and fat dark as on STIR.
T1_LEVELS = [0.0, 0.04, 0.38, 0.6, 0.92, 1.0]
STIR_LEVELS = [0.0, 0.03, 0.30, 0.25, 0.16, 0.08]

#: A head with darkened marrow is found within this distance (mm) of its centre on the untouched T1:
#: its marrow edge falls less steeply into the cortex (measured up to 3.0 mm, at T1 x 0.5).
CENTRE_MM = 3.5


@pytest.fixture(scope="module")
def real():
    """Per series: the T1 volume, its clean heads by side, and a fluid-sensitive volume made from it."""
    shared_data(DATA)
    out = {}
    for series in SERIES:
        (t1,) = read_study(DATA / series).volumes
        heads = {h.side.value: h for h in find_femoral_heads(t1)}
        fat = np.percentile(t1.array[t1.array > 0], 99.5)
        stir = (np.interp(np.clip(t1.array / fat, 0, 1.2), T1_LEVELS, STIR_LEVELS) * 1000).astype(np.float32)
        out[series] = (t1, heads, stir)
    return out


def _region(head):
    return head.head_mask | head.neck_mask


def _to_the_cortex(t1: Volume, region: np.ndarray) -> np.ndarray:
    """``region`` with the marrow between it and the cortex: 2 voxels (1.8 mm) wider, marrow-bright
    voxels only (T1 >= half the region's median). The head region ends at 0.98 x the marrow-edge
    radius; darkened alone, it left a bright rim of marrow under the cortex that edema does not
    leave, and that rim gave the head searches the bright-to-dark edge the edema had taken away
    (the second search found darkened heads at 0.5 that it does not find without the rim)."""
    reach = ndimage.binary_dilation(region, iterations=2)
    return reach & (t1.array >= 0.5 * np.median(t1.array[region]))


def _darker(t1: Volume, region: np.ndarray, factor: float) -> np.ndarray:
    """The T1 array with the marrow of a femoral ``region`` (to the cortex) x ``factor``."""
    darker = t1.array.copy()
    darker[_to_the_cortex(t1, region)] *= factor
    return darker


def _with_edema(t1: Volume, stir: np.ndarray, region: np.ndarray, contrast: float, t1_factor: float = 0.8,
                femoral: bool = True):
    """The analysis of ``t1`` and ``stir`` with edema in ``region``: T1 x ``t1_factor`` (to the cortex
    when ``femoral``), fluid x ``contrast``."""
    darker, fluid = t1.array.copy(), stir.copy()
    darker[_to_the_cortex(t1, region) if femoral else region] *= t1_factor
    fluid[region] *= contrast
    return analyze_study([replace(t1, array=darker), Volume(fluid, t1.affine, SeriesKind.fluid, "made from T1")])


def _patient_points(t1: Volume) -> np.ndarray:
    """Patient LPS mm of every voxel, shape (slices, rows, columns, 3)."""
    k, j, i = np.indices(t1.array.shape)
    return t1.to_patient(np.stack([k, j, i], -1).reshape(-1, 3).astype(float)).reshape(t1.array.shape + (3,))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("t1_factor", [0.9, 0.8])
def test_both_heads_are_found_when_one_head_and_neck_darkens_on_t1(real, series, t1_factor):
    t1, clean, _ = real[series]
    for side in ("left", "right"):
        darker = _darker(t1, _region(clean[side]), t1_factor)
        found = {h.side.value: h for h in find_femoral_heads(replace(t1, array=darker))}
        for s in ("left", "right"):
            assert s in found, (side, s)
            assert np.linalg.norm(found[s].center_mm - clean[s].center_mm) < CENTRE_MM, (side, s)


#: Where the edema is put, and the extent hipdx must report for it.
EXTENTS = {
    "femoral_head": lambda h: h.head_mask,
    "head_and_neck": lambda h: h.head_mask | h.neck_mask,
    "intertrochanteric": lambda h: h.head_mask | h.neck_mask | h.intertrochanteric_mask,
}


def test_edema_of_one_head_neck_and_trochanteric_region_is_measured(real):
    """36 cases: 3 series x 2 sides x 3 extents x contrast 1.6 and 2.0 (T1 x 0.8 there).

    Measured: extent right in all 36, no edema on the other side; volume vs the marrow of the
    region -2 to -16 % (median -8 %): head only -2 to -14 %, head and neck -3 to -15 %, to the
    intertrochanteric region -4 to -16 %, lower at contrast 1.6 (fainter voxels of textured
    marrow fall under the threshold). Every whole-proximal-femur case needed the other side's
    normal marrow (its own estimate was the edema), with its warning.
    """
    errors = []
    for series, (t1, heads, stir) in real.items():
        for side, head in heads.items():
            other = "right" if side == "left" else "left"
            for extent, where in EXTENTS.items():
                region = where(head)
                marrow = region & (t1.array >= 0.5 * np.median(t1.array[region]))
                truth_ml = marrow.sum() * t1.voxel_volume_ml
                for contrast in (1.6, 2.0):
                    analysis = _with_edema(t1, stir, region, contrast)
                    lesion = getattr(analysis.sides, side).edema
                    case = (series, side, extent, contrast, lesion.volume_ml, round(truth_ml, 1))
                    assert lesion.extent.value == extent, case
                    assert getattr(analysis.sides, other).edema.volume_ml < 0.5, case
                    assert lesion.volume_ml == pytest.approx(truth_ml, rel=0.20), case
                    for warning in analysis.warnings:
                        if "looks like edema" in warning:
                            assert warning.startswith(f"{side}: "), case
                    errors.append(lesion.volume_ml / truth_ml - 1)
    assert len(errors) == 36
    assert abs(float(np.median(errors))) <= 0.10, errors


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("thickness_mm", [2.0, 4.0, 6.0])
def test_a_subchondral_band_put_under_the_dome_is_measured(real, series, thickness_mm):
    """A dark band (T1 0.15 x the head's marrow) from the marrow edge inwards, +-30 degrees around
    the top of each real head. Thickness measured: within 1 mm in 17 of 18, 1.2 mm once (a
    real head is no sphere); length 16-21 mm for arcs of 17-20 mm (5-21 mm before the edge
    rule stopped at the plate)."""
    from hipdx.imaging.band import measure_subchondral_band

    t1, heads, _ = real[series]
    points = _patient_points(t1)
    for side, head in heads.items():
        offset = points - head.center_mm
        distance = np.linalg.norm(offset, axis=-1)
        up = offset[..., 2] / np.maximum(distance, 1e-6)  # +z is cranial
        band = (distance <= head.radius_mm) & (distance > head.radius_mm - thickness_mm) & (up > np.cos(np.radians(30)))
        darker = t1.array.copy()
        darker[band] = 0.15 * np.median(t1.array[head.head_mask])
        measured = measure_subchondral_band(replace(t1, array=darker), head)
        assert measured.present, side
        assert measured.thickness_mm == pytest.approx(thickness_mm, abs=1.5), side
        assert measured.length_mm >= 4.0, side


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("t1_factor", [0.7, 0.6, 0.5])
def test_a_much_darker_head_is_found_beside_the_other_or_reported_missing_never_replaced(real, series, t1_factor):
    """Edematous marrow on T1 is about muscle level (0.45-0.7 of fatty marrow, ``partner.py``).
    Below 0.7 the whole-image search loses the darkened head or takes the greater trochanter
    (40-43 mm away, radius and pair plausible); the joint check refuses the trochanter and the
    second search beside the other head finds the head.

    Measured: at 0.7 the darkened head in 6 of 6 hips within 2.2 mm (whole-image search); at 0.6
    5 of 6 within 1.8 mm (2 by the second search), 1 reported missing; at 0.5 4 of 6 within 3.0 mm
    (3 by the second search), 2 missing; the other head never moves. Before: at 0.6 3 found, 2
    missing and the trochanter measured as the head once; at 0.5 1 found, the trochanter once,
    and the untouched head lost once.
    """
    t1, clean, _ = real[series]
    for side in ("left", "right"):
        darker = _darker(t1, _region(clean[side]), t1_factor)
        analysis = analyze_study([replace(t1, array=darker)])
        for s in ("left", "right"):
            head = getattr(analysis.sides, s).femoral_head
            if head is None:
                assert t1_factor <= 0.6 and s == side, (side, s)
                continue
            assert np.linalg.norm(np.subtract(head.center_mm, clean[s].center_mm)) < CENTRE_MM, (side, s)
            if head.found_by == "partner search":
                assert s == side
                assert any(w.startswith(f"{s}: femoral head found by a second search") for w in analysis.warnings)


@pytest.mark.parametrize("t1_factor", [0.7, 0.6])
def test_both_heads_darker_are_found_or_reported_missing_never_replaced(real, t1_factor):
    """Bilateral transient osteoporosis (in pregnancy, for one): both heads and necks darkened.

    Measured: at 0.7 all six heads within 2.2 mm; at 0.6 four (one by the second search), series-03
    neither (reported). At 0.5 (not asserted) a circle 34 mm below and 22 mm behind series-01's
    right head (the ischium or the lesser trochanter) passed every check once: marrow darkened to
    0.5 on this post-contrast T1 is as dark as a joint (docs/imaging-analysis.md, known limits).
    """
    for series, (t1, clean, _) in real.items():
        darker = t1.array.copy()
        for head in clean.values():
            darker[_to_the_cortex(t1, _region(head))] *= t1_factor
        analysis = analyze_study([replace(t1, array=darker)])
        for s in ("left", "right"):
            head = getattr(analysis.sides, s).femoral_head
            if head is None:
                assert t1_factor <= 0.6, (series, s)
                continue
            assert np.linalg.norm(np.subtract(head.center_mm, clean[s].center_mm)) < CENTRE_MM, (series, s)


def test_edema_with_the_t1_marrow_at_muscle_level_is_measured(real):
    """Transient osteoporosis as T1 usually shows it: the head and neck (or to the
    intertrochanteric region) at 0.6 of its T1 signal, fluid-sensitive contrast 1.6; 12 cases.

    Measured: the head found in 12 of 12 within 2.0 mm, extent right in all 12, no edema on the
    other side, volume -4 to -16 %. Series-03's right head, which both T1 searches lose, is found on the
    fluid-sensitive series (2 cases). Before that search, 10 of 12 were found (volume -4 to -16 %)
    and series-03 right was reported missing.
    """
    missing = []
    for series, (t1, heads, stir) in real.items():
        for side, head in heads.items():
            other = "right" if side == "left" else "left"
            for extent in ("head_and_neck", "intertrochanteric"):
                region = EXTENTS[extent](head)
                truth_ml = (region & (t1.array >= 0.5 * np.median(t1.array[region]))).sum() * t1.voxel_volume_ml
                analysis = _with_edema(t1, stir, region, 1.6, t1_factor=0.6)
                found = getattr(analysis.sides, side)
                case = (series, side, extent, found.edema.volume_ml, round(truth_ml, 1))
                if found.femoral_head is None:
                    missing.append(case)
                    assert any(w.startswith(f"{side}: no femoral head beside") for w in analysis.warnings), case
                    continue
                assert np.linalg.norm(np.subtract(found.femoral_head.center_mm, head.center_mm)) < CENTRE_MM, case
                assert found.edema.extent.value == extent, case
                assert found.edema.volume_ml == pytest.approx(truth_ml, rel=0.25), case
                assert getattr(analysis.sides, other).edema.volume_ml < 0.5, case
    assert not missing, missing


@pytest.mark.parametrize("to_the_cortex", [False, True])
def test_a_head_both_t1_searches_lose_is_located_on_the_fluid_sensitive_series(real, to_the_cortex):
    """Series-03's right head at T1 x 0.6 is lost by both T1 searches (39 marrow-edge points, 40
    needed). On the fluid-sensitive series (edema x 1.6 in the head and neck region, or out to the
    cortex) it is bright: located there and fitted on T1 from that start, it is found within 1.5 mm,
    with a warning saying so; the other head stays. Located there alone, without the T1 fit, it
    lay 11.9 mm off with the edema out to the cortex."""
    t1, clean, stir = real["series-03"]
    head = clean["right"]
    fluid = stir.copy()
    fluid[_to_the_cortex(t1, _region(head)) if to_the_cortex else _region(head)] *= 1.6
    darker = _darker(t1, _region(head), 0.6)
    assert analyze_study([replace(t1, array=darker)]).sides.right.femoral_head is None  # T1 alone
    analysis = analyze_study([replace(t1, array=darker), Volume(fluid, t1.affine, SeriesKind.fluid, "made from T1")])
    found = analysis.sides.right
    assert found.femoral_head is not None and found.femoral_head.found_by == "partner search"
    assert np.linalg.norm(np.subtract(found.femoral_head.center_mm, head.center_mm)) < CENTRE_MM
    assert found.edema.extent.value == "head_and_neck"
    assert any(w.startswith("right: femoral head found by a second search") and "fluid-sensitive series" in w
               for w in analysis.warnings), analysis.warnings
    assert np.linalg.norm(np.subtract(analysis.sides.left.femoral_head.center_mm, clean["left"].center_mm)) < 0.5


@pytest.mark.parametrize("t1_factor", [0.6, 0.5])
def test_with_a_fluid_sensitive_series_a_darkened_head_is_found_or_reported_never_misplaced(real, t1_factor):
    """With the fluid-sensitive series showing the edema (x 1.6 out to the cortex), every darkened
    head is found within 3.5 mm or reported missing. Measured: at 0.6 all six (one located on the
    fluid-sensitive series); at 0.5 four, series-03's two reported missing (3-4 marrow-edge points
    on T1 from the start the fluid-sensitive series gives)."""
    found = 0
    for series, (t1, clean, stir) in real.items():
        for side, head in clean.items():
            fluid = stir.copy()
            fluid[_to_the_cortex(t1, _region(head))] *= 1.6
            analysis = analyze_study([replace(t1, array=_darker(t1, _region(head), t1_factor)),
                                      Volume(fluid, t1.affine, SeriesKind.fluid, "made from T1")])
            out = getattr(analysis.sides, side).femoral_head
            if out is None:
                assert any(w.startswith(f"{side}: no femoral head beside") for w in analysis.warnings)
                continue
            assert np.linalg.norm(np.subtract(out.center_mm, head.center_mm)) < CENTRE_MM, (series, side)
            found += 1
    assert found >= (6 if t1_factor == 0.6 else 4), found


def test_the_fluid_sensitive_search_takes_only_an_edematous_head(real):
    """The search on the fluid-sensitive series finds where the head is whether or not it is
    edematous; it accepts it only with an edema contrast (brighter there, darker on T1). Untouched
    heads, and untouched heads under a coil field brightening or darkening their side of both
    series by 1.3, are refused with the reason (measured contrast 0.95-1.09); edematous ones
    (fluid x 1.6, T1 x 0.7) are taken (2.08-2.47)."""
    from hipdx.case.model import Side
    from hipdx.imaging.partner import find_partner_on_fluid

    for series, (t1, clean, stir) in real.items():
        for side, head in clean.items():
            anchor = clean["left" if side == "right" else "right"]
            column = t1.to_index(head.center_mm)[2]
            half = (np.arange(t1.array.shape[2]) < t1.array.shape[2] // 2) == (column < t1.array.shape[2] // 2)
            for coil in (1.0, 1.3, 1 / 1.3):
                field = np.where(half, coil, 1.0).astype(np.float32)
                search = find_partner_on_fluid(replace(t1, array=t1.array * field),
                                               Volume(stir * field, t1.affine, SeriesKind.fluid, "made"), anchor)
                assert search.head is None and "no edema there" in search.reason, (series, side, coil, search.reason)
            fluid = stir.copy()
            fluid[_region(head)] *= 1.6
            search = find_partner_on_fluid(replace(t1, array=_darker(t1, _region(head), 0.7)),
                                           Volume(fluid, t1.affine, SeriesKind.fluid, "made"), anchor)
            assert search.head is not None and search.head.side is Side(side), (series, side, search.reason)
            assert np.linalg.norm(search.head.center_mm - head.center_mm) < CENTRE_MM


def _with_prosthesis(t1: Volume, stir: np.ndarray, head) -> tuple[np.ndarray, np.ndarray]:
    """A hip prosthesis simulated in place of one proximal femur: a signal void (0.02 of the head's
    marrow) with a bright rim 2 voxels wide, on both series. Real metal artifacts are larger and
    distorted; this is the signal a search meets."""
    darker, fluid = t1.array.copy(), stir.copy()
    region = ndimage.binary_dilation(head.head_mask | head.neck_mask | head.intertrochanteric_mask, iterations=2)
    rim = ndimage.binary_dilation(region, iterations=2) & ~region
    marrow, marrow_fluid = np.median(t1.array[head.head_mask]), np.median(stir[head.head_mask])
    darker[region], darker[rim] = 0.02 * marrow, 1.5 * marrow
    fluid[region], fluid[rim] = 0.02 * marrow_fluid, 3.0 * marrow_fluid
    return darker, fluid


def test_with_a_prosthesis_in_one_hip_the_native_hip_is_measured(real):
    """6 cases: a simulated prosthesis in one hip, transient osteoporosis (T1 x 0.8, contrast 1.6)
    in the head and neck of the other.

    Measured: the native head within 2.6 mm and its edema -7 to -15 % in all 6, the implant side
    reported as a signal void (a prosthesis?) and not measured. Before the second search, 3 of 6
    measured nothing (the circle found beside the implant failed the pair check).
    """
    for series, (t1, heads, stir) in real.items():
        for side, head in heads.items():
            native = heads["right" if side == "left" else "left"]
            darker, fluid = _with_prosthesis(t1, stir, head)
            region = _region(native)
            darker[_to_the_cortex(t1, region)] *= 0.8
            fluid[region] *= 1.6
            truth_ml = (region & (t1.array >= 0.5 * np.median(t1.array[region]))).sum() * t1.voxel_volume_ml
            analysis = analyze_study([replace(t1, array=darker), Volume(fluid, t1.affine, SeriesKind.fluid, "made from T1")])
            measured, implant = getattr(analysis.sides, native.side.value), getattr(analysis.sides, side)
            case = (series, side, measured.edema.volume_ml, round(truth_ml, 1))
            assert implant.femoral_head is None and implant.edema.volume_ml is None, case
            assert any(w.startswith(f"{side}: signal void where the femoral head should be") for w in analysis.warnings), case
            assert measured.femoral_head is not None, case
            assert np.linalg.norm(np.subtract(measured.femoral_head.center_mm, native.center_mm)) < CENTRE_MM, case
            assert measured.edema.volume_ml == pytest.approx(truth_ml, rel=0.25), case


def test_acetabular_roof_edema_filling_the_roof_is_measured(real):
    """Edema put in the acetabular roof (the labelled ilium within 20 mm of the head surface,
    above its centre: nearly all of the shell hipdx searches) of each real hip, contrast 1.6 and
    2.0, T1 x 0.8. Measured vs the roof marrow inside the shell: -2 to -13 % in 12 cases, none on
    the other side, no femoral edema. The shell's own reference was the edema before (0 mL in 5
    of 6 hips even at contrast 2.0); now checked against the other side like the femur's."""
    from hipdx.imaging.joint import _shell_box, acetabular_region

    for series, (t1, heads, stir) in real.items():
        labels = np.load(DATA / f"{series}-labels.npz")["labels"]
        points = _patient_points(t1)
        for side, head in heads.items():
            offset = points - head.center_mm
            roof = (labels == 2) & (np.linalg.norm(offset, axis=-1) < head.radius_mm + 20) & (offset[..., 2] > 0)
            box = _shell_box(t1, head)
            shell = np.zeros(t1.array.shape, bool)
            shell[box] = acetabular_region(t1, head, box)
            inside = roof & shell
            truth_ml = (inside & (t1.array >= 0.5 * np.median(t1.array[roof]))).sum() * t1.voxel_volume_ml
            for contrast in (1.6, 2.0):
                analysis = _with_edema(t1, stir, roof, contrast, femoral=False)
                this = getattr(analysis.sides, side)
                other = getattr(analysis.sides, "right" if side == "left" else "left")
                case = (series, side, contrast, this.acetabular_edema.volume_ml, round(truth_ml, 1))
                assert this.acetabular_edema.present.value == "present", case
                assert this.acetabular_edema.volume_ml == pytest.approx(truth_ml, rel=0.20), case
                assert other.acetabular_edema.volume_ml < 0.5 and this.edema.volume_ml < 0.5, case


def test_bilateral_edema_of_both_proximal_femora_is_measured_against_the_acetabular_marrow(real):
    """Both proximal femora edematous (T1 x 0.8, fluid x 1.8): neither side has normal femoral
    marrow. Before, both measured 0 mL, silently. Now each femur whose estimate is > 25 % above
    its own acetabular marrow while darker on T1 is measured against that marrow, with a
    warning: volumes -5 to -15 % (a lower bound by design)."""
    for series, (t1, heads, stir) in real.items():
        both = np.zeros(t1.array.shape, bool)
        truth = {}
        for side, head in heads.items():
            region = EXTENTS["intertrochanteric"](head)
            truth[side] = (region & (t1.array >= 0.5 * np.median(t1.array[region]))).sum() * t1.voxel_volume_ml
            both |= region
        analysis = _with_edema(t1, stir, both, 1.8)
        for side in ("left", "right"):
            measured = getattr(analysis.sides, side).edema
            assert measured.extent.value == "intertrochanteric", (series, side)
            assert measured.volume_ml == pytest.approx(truth[side], rel=0.20), (series, side, truth[side])
            assert any(w.startswith(f"{side}: its proximal femur's normal-marrow estimate looks like edema") and
                       "acetabular marrow" in w for w in analysis.warnings), analysis.warnings
        # Untouched: nothing found, no such warning.
        clean = analyze_study([t1, Volume(stir, t1.affine, SeriesKind.fluid, "made from T1")])
        assert clean.sides.left.edema.volume_ml == clean.sides.right.edema.volume_ml == 0
        assert not any("looks like edema" in w for w in clean.warnings)


def test_a_band_under_edema_is_found(real):
    """Osteonecrosis's signature: a 5 mm band under the dome with the head and neck darker on T1
    (x 0.8 to the cortex, edema). Measured 4.7-5.5 mm in all six hips (darker on T1 it is
    under-measured: docs/imaging-analysis.md, known limits). Before, two were missed and one measured
    6.9 mm: edema lowers the marrow reference, the cartilage beyond the plate was then no longer
    "low", and the edge and the dark run were taken beyond the joint (the acetabular plate). The
    edge rule now stops at the first long dark run within 10 mm of the surface."""
    from hipdx.imaging.band import measure_subchondral_band

    for series, (t1, heads, _) in real.items():
        points = _patient_points(t1)
        for side, head in heads.items():
            offset = points - head.center_mm
            distance = np.linalg.norm(offset, axis=-1)
            up = offset[..., 2] / np.maximum(distance, 1e-6)
            band = (distance <= head.radius_mm) & (distance > head.radius_mm - 5.0) & (up > np.cos(np.radians(30)))
            darker = _darker(t1, _region(head), 0.8)
            darker[band] = 0.15 * np.median(t1.array[head.head_mask])
            volume = replace(t1, array=darker)
            found = {h.side.value: h for h in find_femoral_heads(volume)}[side]
            measured = measure_subchondral_band(volume, found)
            assert measured.present and measured.thickness_mm == pytest.approx(5.0, abs=1.5), (series, side, measured)


@pytest.mark.xfail(strict=True, reason=(
    "5 mm band under edema at T1 x 0.7: measured thick in 4 of 6 hips; series-02 left 2.2 mm and series-03 "
    "right 3.4 mm (thin): the head's sphere, fitted with the band's inner edge as the marrow edge under the "
    "dome, is 0.7-3.9 mm too low or 1 mm too small, and the band profiles stop short of the boundary "
    "(on the true sphere 4.2-6.1 mm). docs/imaging-analysis.md lists the fixes tried."))
def test_a_thick_band_under_darker_edema_is_read_thick(real):
    """Osteonecrosis with its edema as T1 usually shows it (x 0.7): a 5 mm band must stay above the
    4 mm cut-off, or the differential leans towards transient osteoporosis."""
    failures = []
    for series, (t1, heads, _) in real.items():
        points = _patient_points(t1)
        for side, head in heads.items():
            offset = points - head.center_mm
            distance = np.linalg.norm(offset, axis=-1)
            band = (distance <= head.radius_mm) & (distance > head.radius_mm - 5.0) & (
                offset[..., 2] / np.maximum(distance, 1e-6) > np.cos(np.radians(30)))
            darker = _darker(t1, _region(head), 0.7)
            darker[band] = 0.15 * np.median(t1.array[head.head_mask])
            measured = getattr(analyze_study([replace(t1, array=darker)]).sides, side).subchondral_band
            if not (measured.present.value == "present" and measured.thickness_mm >= 4.0):
                failures.append((series, side, measured.thickness_mm))
    assert not failures, failures


def _banded(t1: Volume, head, factor: float, thickness_mm: float = 5.0) -> Volume:
    """``t1`` with ``head``'s marrow x ``factor`` to the cortex (none at 1) and a dark band
    ``thickness_mm`` deep under the dome (within 30 degrees of the top)."""
    offset = _patient_points(t1) - head.center_mm
    distance = np.linalg.norm(offset, axis=-1)
    band = (distance <= head.radius_mm) & (distance > head.radius_mm - thickness_mm) & (
        offset[..., 2] / np.maximum(distance, 1e-6) > np.cos(np.radians(30)))
    darker = _darker(t1, _region(head), factor) if factor < 1 else t1.array.copy()
    darker[band] = 0.15 * np.median(t1.array[head.head_mask])
    return replace(t1, array=darker)


@pytest.mark.parametrize("t1_factor", [0.7, 0.6])
def test_a_thick_band_under_darker_edema_is_never_reported_thin(real, t1_factor):
    """The safety net for the band that reads thin under T1-dark marrow (the strict xfail above):
    with the head's marrow at 0.7 or 0.6 of normal, a 5 mm band is reported thick, or present
    with its thickness not decided and the reason given; the findings then carry no thickness, so
    the differential and the staging never take it as thin. A band missed under marrow that dark
    is not reported absent. Before, series-02's left band went into the case as 2.2 mm at 0.7 and
    2.3 mm at 0.6 (thin, towards transient osteoporosis), and series-02's right one as absent at 0.6."""
    from hipdx.imaging.to_case import to_imaging_findings
    from hipdx.imaging.parameters import BAND_CUTOFF_MM, BAND_INDETERMINATE_MM

    undecided = 0
    for series, (t1, heads, _) in real.items():
        for side, head in heads.items():
            analysis = analyze_study([_banded(t1, head, t1_factor)])
            out = getattr(analysis.sides, side)
            if out.femoral_head is None:  # lost at 0.6 (known limit): then nothing is measured
                assert out.subchondral_band.present.value == "unknown"
                continue
            band = out.subchondral_band
            findings = to_imaging_findings(analysis, side)
            if band.present.value == "unknown":  # missed (series-02 right at 0.6): not reported absent
                assert "bands were missed" in band.undecided_because, band
                assert "subchondral_band" not in findings
                undecided += 1
                continue
            assert band.present.value == "present", (series, side, band)
            given = findings.get("subchondral_band_thickness_mm")
            assert given is None or given >= BAND_CUTOFF_MM - BAND_INDETERMINATE_MM, (series, side, band)
            if band.indeterminate:
                undecided += 1
                assert "T1 marrow" in band.undecided_because, band
                assert given is None
                assert any(w.startswith(f"{side}: subchondral band") and "not decided" in w
                           for w in analysis.warnings), analysis.warnings
    assert undecided >= 4, undecided  # the rule is what keeps them from "thin", not luck


def test_a_band_under_normal_marrow_keeps_its_thickness(real):
    """The rule above stays out of the way where the measurement holds: untouched marrow (the
    other head's T1 ratio 0.94-1.06, the coil's field), 5 mm bands are measured and decided."""
    from hipdx.imaging.to_case import to_imaging_findings

    for series, (t1, heads, _) in real.items():
        for side, head in heads.items():
            analysis = analyze_study([_banded(t1, head, 1.0)])
            band = getattr(analysis.sides, side).subchondral_band
            assert band.present.value == "present" and not band.indeterminate, (series, side, band)
            assert band.undecided_because is None
            assert to_imaging_findings(analysis, side)["subchondral_band_thickness_mm"] == pytest.approx(5.0, abs=1.0)


def test_assess_with_real_anatomy_dicom_tells_transient_osteoporosis_from_osteonecrosis(real, tmp_path):
    """End to end on the real anatomy: DICOM written from series-02 with diffuse edema of the
    left head and neck (T1 x 0.8, STIR x 1.8), without and with a 5 mm band under the dome;
    `hipdx assess --mri` for a 44-year-old man with sudden left hip pain for 25 days. The
    measured findings must move the differential: transient osteoporosis first without the band,
    osteonecrosis first with it. With the marrow darker (T1 x 0.7) the band measures 2.2 mm
    (the known limit); it must reach the differential as present, thickness undecided, not as
    thin: before, it went in as thin and osteonecrosis fell to 0.16 (transient osteoporosis
    0.61); now 0.34 (0.44), the uncertainty stated."""
    import json

    from conftest import CliRunner

    from dicom_files import write_dicom
    from hipdx.cli import app

    t1, heads, stir = real["series-02"]
    head = heads["left"]
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"age_years": 44, "sex": "male", "side": "left", "trauma": "none",
                                "onset": {"type": "sudden", "days_since_onset": 25},
                                "pain": {"weight_bearing": "present", "at_rest": "absent"}}))
    assessments = {}
    for name, t1_factor, band_mm in (("toh", 0.8, 0.0), ("on", 0.8, 5.0), ("on_darker", 0.7, 5.0)):
        darker, fluid = _banded(t1, head, t1_factor, band_mm).array, stir.copy()
        fluid[_region(head)] *= 1.8
        scale = 4000.0 / max(darker.max(), fluid.max())
        write_dicom(tmp_path / name / "T1", Volume(darker * scale, t1.affine), "t1_tse_cor", ScanningSequence="SE",
                    RepetitionTime=550, EchoTime=9.1)
        write_dicom(tmp_path / name / "STIR", Volume(fluid * scale, t1.affine), "t2_tirm_cor",
                    ScanningSequence=["SE", "IR"], InversionTime=160, RepetitionTime=4500, EchoTime=41)
        result = CliRunner().invoke(app, ["assess", str(case), "--mri", str(tmp_path / name), "--mri-days", "24",
                                          "--format", "json"])
        assert result.exit_code == 0, result.output
        assessment = json.loads(result.stdout)
        left = assessment["mri_analysis"]["sides"]["left"]
        assert left["edema"]["extent"] == "head_and_neck"
        assert left["subchondral_band"]["present"] == ("present" if band_mm else "absent")
        held_back = "mri: the band's thickness (" in result.stderr
        assert held_back == (name == "on_darker"), result.stderr  # the clinician is told what was held back
        assessments[name] = assessment
    leading = {name: a["differential"][0]["id"] for name, a in assessments.items()}
    assert leading["toh"] == "toh" and leading["on"] == "onfh", leading
    darker = assessments["on_darker"]
    band = darker["mri_analysis"]["sides"]["left"]["subchondral_band"]
    assert band["indeterminate"] and "T1 marrow" in band["undecided_because"], band
    observed = {c["observed"] for item in darker["explanation"]["leading"] for c in item["findings"]
                if c["variable"] == "subchondral_band"}
    assert observed == {"present"}, observed
    probability = {d["id"]: d["probability"] for d in darker["differential"]}
    assert probability["onfh"] > 0.25, probability
