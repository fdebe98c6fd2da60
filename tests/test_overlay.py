"""PNG overlays of analysed phantom studies: valid PNGs of the stated size, one per slice, deterministic,\neach finding drawn in its colour where its mask is."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from scipy import ndimage

from hipdx.case.model import Presence, Side
from hipdx.errors import InputError
from hipdx.imaging.export import DISPLAY_COLOURS, Finding, finding_masks, study_masks
from hipdx.report.overlay import DPI, FIGURE_SIZE_IN, _figure, _representative_slices, write_overlays

pytestmark = pytest.mark.slow  # writes and analyses MRI phantoms: in `make test`, not in `make test-fast`

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A small phantom (256 x 256 x 32) keeps the module under ten seconds.
SMALL = dict(seed=2, edema_ml=25.0, band_mm=5.0, rows=256, cols=256, pixel_mm=1.35, slices=32)


@pytest.fixture(scope="module")
def analysed(phantoms):
    study, analysis = phantoms.analysed(SMALL)
    volumes = list(study.volumes)
    return volumes, analysis, study_masks(volumes)


def _ihdr(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(b"IHDR" + body) == crc
    width, height = struct.unpack(">II", body[:8])
    return width, height


def test_one_valid_png_of_the_stated_size_per_representative_slice(analysed, tmp_path):
    volumes, analysis, masks = analysed
    paths = write_overlays(analysis, tmp_path / "ov", masks=masks)
    assert paths and all(p.parent == tmp_path / "ov" for p in paths)
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == sorted(p.name for p in paths)
    size = (int(FIGURE_SIZE_IN[0] * DPI), int(FIGURE_SIZE_IN[1] * DPI))
    assert size == (800, 800)
    for p in paths:
        assert _ihdr(p) == size
    # One file per distinct slice: head centres and the slice of maximum edema.
    slices = [int(p.name.split("_")[1]) for p in paths]
    assert len(set(slices)) == len(slices)
    names = "".join(p.name for p in paths)
    assert "head" in names and "max_edema" in names
    k_edema = int(masks.edema.sum(axis=(1, 2)).argmax()) + 1
    assert k_edema in slices


def test_same_input_same_bytes(analysed, tmp_path):
    volumes, analysis, masks = analysed
    first = write_overlays(analysis, tmp_path / "a", masks=masks)
    second = write_overlays(analysis, tmp_path / "b", masks=masks)
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))


def test_masks_are_those_of_the_analysis(analysed):
    volumes, analysis, masks = analysed
    for side, mask in masks.edema_by_side.items():
        measured = getattr(analysis.sides, side.value).edema.volume_ml
        assert mask.sum() * masks.t1.voxel_volume_ml == pytest.approx(measured, abs=0.01)


def test_overlays_reuse_the_masks_the_analysis_kept(analysed, tmp_path, monkeypatch):
    volumes, analysis, masks = analysed
    assert study_masks(volumes, analysis) is analysis.masks

    def no_second_search(*args, **kwargs):
        raise AssertionError("the femoral heads were searched again")

    monkeypatch.setattr("hipdx.imaging.analyze.find_femoral_heads", no_second_search)
    paths = write_overlays(analysis, tmp_path / "ov")
    assert [p.name for p in paths] == [p.name for p in write_overlays(analysis, tmp_path / "b", masks=masks)]
    for side, mask in analysis.masks.edema_by_side.items():
        assert (mask == masks.edema_by_side[side]).all()


def test_a_file_as_outdir_is_a_clear_error(analysed, tmp_path):
    volumes, analysis, masks = analysed
    not_a_folder = tmp_path / "report.png"
    not_a_folder.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        write_overlays(analysis, not_a_folder, masks=masks)


# Acetabular edema and joint effusion: drawn in their own colours where the masks are, and
# nowhere (outside the legend) on a study without them.
JOINT = dict(SMALL, acetabular_edema_ml=5.0, effusion_ml=10.0)
#: A PNG pixel within this distance (per channel, 0-255) of a colour counts as that colour.
COLOUR_TOLERANCE = 40
#: A coloured pixel counts as on its mask within this distance (image pixels) of a mask voxel.
NEAR_MASK_PX = 2.0


#: Femoral edema and a band, no acetabular edema or effusion: the "femoral-only" phantom of
#: tests/test_joint.py, which checks that the analysis reports neither on it.
FEMORAL_ONLY = dict(seed=13, side="left", edema_ml=30, band_mm=4, snr=20, bias=0.2)


def _analyse(phantoms, parameters):
    study, analysis = phantoms.analysed(parameters)
    return list(study.volumes), analysis, analysis.masks


@pytest.fixture(scope="module")
def joint_analysed(phantoms):
    return _analyse(phantoms, JOINT)


@pytest.fixture(scope="module")
def femoral_only_analysed(phantoms):
    return _analyse(phantoms, FEMORAL_ONLY)


def _coloured_pixels(png: Path, colour: str, figure) -> np.ndarray:
    """(x, y) display pixels (origin bottom left) of ``colour`` in ``png``, outside the legend."""
    rgb = np.round(mpimg.imread(png)[..., :3] * 255).astype(int)
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    rows, cols = np.nonzero(np.abs(rgb - target).max(axis=-1) <= COLOUR_TOLERANCE)
    xy = np.column_stack([cols + 0.5, rgb.shape[0] - rows - 0.5])
    legend = figure.axes[0].get_legend().get_window_extent()
    inside = (xy[:, 0] >= legend.x0) & (xy[:, 0] <= legend.x1) & (xy[:, 1] >= legend.y0) & (xy[:, 1] <= legend.y1)
    return xy[~inside]


def _distance_to_mask(xy: np.ndarray, mask_slice: np.ndarray, figure) -> np.ndarray:
    """Distance (image pixels) from display points to the nearest voxel of a 2-D mask."""
    col_row = figure.axes[0].transData.inverted().transform(xy)
    distance = ndimage.distance_transform_edt(~mask_slice)
    c = np.clip(np.round(col_row[:, 0]).astype(int), 0, mask_slice.shape[1] - 1)
    r = np.clip(np.round(col_row[:, 1]).astype(int), 0, mask_slice.shape[0] - 1)
    return distance[r, c]


def _figures(masks, analysis, paths):
    """The figure behind each written PNG (same drawing code), laid out as when saved."""
    out = {}
    for k, reasons in _representative_slices(masks).items():
        figure = _figure(masks, analysis, k, reasons)
        figure.canvas.draw()
        out[k] = figure
    assert sorted(out) == sorted(int(p.name.split("_")[1]) - 1 for p in paths)
    return out


@pytest.mark.parametrize("finding", [Finding.acetabular_edema, Finding.effusion])
def test_joint_findings_are_drawn_in_their_colour_on_their_mask(joint_analysed, tmp_path, finding):
    volumes, analysis, masks = joint_analysed
    reported = {(side, f): mask for side, f, mask in finding_masks(analysis, masks)}
    lesion = reported[(Side.left, finding)]  # the phantom's lesion side
    assert (Side.right, finding) not in reported
    paths = write_overlays(analysis, tmp_path, masks=masks)
    figures = _figures(masks, analysis, paths)
    drawn_on = []
    for path in paths:
        k = int(path.name.split("_")[1]) - 1
        xy = _coloured_pixels(path, DISPLAY_COLOURS[finding], figures[k])
        if not lesion[k].any():
            assert len(xy) == 0, (path.name, len(xy))
            continue
        assert len(xy) > 20, path.name  # a contour, not a stray pixel
        assert np.all(_distance_to_mask(xy, lesion[k], figures[k]) <= NEAR_MASK_PX), path.name
        drawn_on.append(k)
    assert drawn_on, "no representative slice cuts the lesion"


@pytest.mark.parametrize("finding", [Finding.acetabular_edema, Finding.effusion])
def test_no_joint_finding_colour_on_a_study_without_them(femoral_only_analysed, tmp_path, finding):
    volumes, analysis, masks = femoral_only_analysed
    reported = {f for _, f, _ in finding_masks(analysis, masks)}
    assert Finding.edema in reported  # red contours drawn: not to be mistaken for the joint colours
    assert finding not in reported, "analysis false positive on a phantom without it (see tests/test_joint.py)"
    paths = write_overlays(analysis, tmp_path, masks=masks)
    figures = _figures(masks, analysis, paths)
    for path in paths:
        k = int(path.name.split("_")[1]) - 1
        assert len(_coloured_pixels(path, DISPLAY_COLOURS[finding], figures[k])) == 0, path.name


def test_the_legend_names_every_colour(analysed):
    volumes, analysis, masks = analysed
    k, reasons = next(iter(_representative_slices(masks).items()))
    legend = _figure(masks, analysis, k, reasons).axes[0].get_legend()
    labels = {text.get_text(): line.get_color() for text, line in zip(legend.get_texts(), legend.get_lines())}
    assert labels["acetabular edema"] == DISPLAY_COLOURS[Finding.acetabular_edema]
    assert labels["joint effusion"] == DISPLAY_COLOURS[Finding.effusion]
    assert labels["bone marrow edema"] == DISPLAY_COLOURS[Finding.edema]
    assert len(set(labels.values())) == len(labels)  # distinct colours


def test_the_summary_says_when_a_head_was_not_found_or_found_by_the_second_search(analysed):
    volumes, analysis, masks = analysed
    k, reasons = next(iter(_representative_slices(masks).items()))

    def summary(changed) -> str:
        texts = [t.get_text() for t in _figure(masks, changed, k, reasons).texts]
        return next(t for t in texts if "right:" in t and not t.startswith("Coronal slice"))

    right = analysis.sides.right
    partner = right.model_copy(update={"femoral_head": right.femoral_head.model_copy(update={"found_by": "partner search"})})
    sides = analysis.sides.model_copy(update={"right": partner})
    assert "right: head found beside the other (check its circle), edema" in summary(analysis.model_copy(update={"sides": sides}))
    missing = analysis.sides.model_copy(update={"right": right.model_copy(update={"femoral_head": None})})
    assert "right: femoral head not found, nothing measured" in summary(analysis.model_copy(update={"sides": missing}))
    assert "right: edema" in summary(analysis)
    # A band whose thickness, or whose absence, is not decided (T1-dark marrow) says so.
    because = "the head's T1 marrow is 0.70 x the other head's"
    undecided = {"present": Presence.present, "thickness_mm": 2.2, "length_mm": 9.0, "indeterminate": True,
                 "undecided_because": because}
    for band, expected in ((undecided, "band 2.2 mm (thickness not decided: read it on the image)"),
                           ({"present": Presence.unknown, "thickness_mm": None, "length_mm": None, "indeterminate": False,
                             "undecided_because": because}, "no band found (absence not decided")):
        changed = right.model_copy(update={"subchondral_band": right.subchondral_band.model_copy(update=band)})
        assert expected in summary(analysis.model_copy(update={"sides": analysis.sides.model_copy(update={"right": changed})}))


def test_the_viewer_slices_shade_the_measured_subchondral_band_in_its_colour(analysed, tmp_path):
    """The slice viewer draws the band as the overlays do (same outline, same colour), on the
    slices that cut the head of the side where it was measured, and nowhere else; the legend
    names it."""
    from PIL import Image

    from hipdx.report.slices import LEGEND, slice_file, write_slices

    volumes, analysis, masks = analysed
    measured = [s for s in (Side.right, Side.left) if getattr(analysis.sides, s.value).subchondral_band.thickness_mm]
    assert measured, "the phantom's band (5 mm) was not measured"
    hips = write_slices(analysis, tmp_path, masks=masks)
    green = np.array([int(DISPLAY_COLOURS[Finding.subchondral_band][i:i + 2], 16) for i in (1, 3, 5)])
    assert ("band", DISPLAY_COLOURS[Finding.subchondral_band]) in [(name, colour) for name, colour, _ in LEGEND]
    for name, hip in hips.items():
        on = hip.with_finding.get(Finding.subchondral_band.value, [])
        if Side(name) not in measured:
            assert not on
        else:
            assert hip.centre in on and set(on) <= set(hip.slices)
        for k in hip.slices:
            pixels = np.asarray(Image.open(slice_file(tmp_path, name, k)).convert("RGB")).astype(int)
            outlined = int(np.all(pixels == green, axis=2).sum())
            if k in on:
                assert outlined > 20, (name, k)
            else:
                assert outlined == 0, (name, k)
    centre = next(hip for name, hip in hips.items() if Side(name) in measured)
    pixels = np.asarray(Image.open(slice_file(tmp_path, centre.side, centre.centre)).convert("RGB")).astype(int)
    rows = np.nonzero(np.all(pixels == green, axis=2))[0]
    assert rows.mean() < pixels.shape[0] / 2  # under the dome: the upper half of the crop, superior up


def test_an_overlay_in_a_report_leaves_the_statement_to_the_report(analysed, tmp_path):
    from hipdx.report.overlay import CAPTION

    volumes, analysis, masks = analysed
    k, reasons = next(iter(_representative_slices(masks).items()))
    alone = [t.get_text() for t in _figure(masks, analysis, k, reasons).texts]
    placed = [t.get_text() for t in _figure(masks, analysis, k, reasons, statement=False).texts]
    assert CAPTION in alone and CAPTION not in placed and len(placed) == len(alone) - 1
    kept = write_overlays(analysis, tmp_path / "alone", masks=masks)
    left = write_overlays(analysis, tmp_path / "report", masks=masks, statement=False)
    assert [p.name for p in kept] == [p.name for p in left]
    assert all(a.read_bytes() != b.read_bytes() for a, b in zip(kept, left))
