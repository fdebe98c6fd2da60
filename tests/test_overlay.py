"""PNG overlays of an analysed phantom study: valid PNGs of the stated size, one per slice, deterministic."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from hipdx.errors import InputError
from hipdx.imaging.analyze import analyze_study
from hipdx.imaging.export import study_masks
from hipdx.imaging.io import read_study
from hipdx.imaging.phantom import write_phantom
from hipdx.report.overlay import DPI, FIGURE_SIZE_IN, write_overlays

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A small phantom (256 x 256 x 32) keeps the module under ten seconds.
SMALL = dict(seed=2, edema_ml=25.0, band_mm=5.0, rows=256, cols=256, pixel_mm=1.35, slices=32)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    write_phantom(folder, **SMALL)
    volumes = list(read_study(folder).volumes)
    analysis = analyze_study(volumes)
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
    paths = write_overlays(volumes, analysis, tmp_path / "ov", masks=masks)
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
    first = write_overlays(volumes, analysis, tmp_path / "a", masks=masks)
    second = write_overlays(volumes, analysis, tmp_path / "b", masks=masks)
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
    paths = write_overlays(volumes, analysis, tmp_path / "ov")
    assert [p.name for p in paths] == [p.name for p in write_overlays(volumes, analysis, tmp_path / "b", masks=masks)]
    for side, mask in analysis.masks.edema_by_side.items():
        assert (mask == masks.edema_by_side[side]).all()


def test_a_file_as_outdir_is_a_clear_error(analysed, tmp_path):
    volumes, analysis, masks = analysed
    not_a_folder = tmp_path / "report.png"
    not_a_folder.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        write_overlays(volumes, analysis, not_a_folder, masks=masks)
