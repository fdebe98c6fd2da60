"""Subchondral band on synthetic femoral heads of known band thickness."""

from __future__ import annotations

import numpy as np
import pytest

from scipy import ndimage

from hipdx.case.model import Side
from hipdx.imaging.band import MIN_BAND_LENGTH_MM, _smoothed_box, measure_subchondral_band
from hipdx.imaging.heads import FemoralHead, find_femoral_heads
from hipdx.imaging.volume import SeriesKind, Volume

from conftest import SHARED, shared_data

CENTRE = np.array([0.0, 0.0, 0.0])
RADIUS_MM = 23.0


def synthetic_head(band_mm: float, seed: int = 0, half_angle_deg: float = 35.0):
    """Coronal T1-like head: marrow 1.0, 1 mm cortex 0.1, surroundings 0.5, band 0.2, noise SD 0.06.

    The band is a spherical shell segment between R - t and R within ``half_angle_deg`` of the
    superior direction; its ground-truth arc length is 2 * half_angle * (R - t / 2).
    """
    rng = np.random.default_rng(seed)
    pixel, slice_mm = 0.6, 3.0
    shape = (19, 100, 100)
    affine = np.eye(4)
    affine[:3, 0] = [pixel, 0, 0]
    affine[:3, 1] = [0, 0, -pixel]
    affine[:3, 2] = [0, slice_mm, 0]
    affine[:3, 3] = [-49.5 * pixel, -9 * slice_mm, 30.0]
    vol = Volume(np.zeros(shape, np.float32), affine, SeriesKind.t1)
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    pts = vol.to_patient(np.stack([kk, jj, ii], -1)) - CENTRE
    d = np.linalg.norm(pts, axis=-1)
    polar = np.degrees(np.arccos(np.clip(pts[..., 2] / np.maximum(d, 1e-6), -1, 1)))
    img = np.full(shape, 0.5, np.float32)
    img[d <= RADIUS_MM + 1.0] = 0.1
    img[d <= RADIUS_MM] = 1.0
    if band_mm > 0:
        img[(d <= RADIUS_MM) & (d > RADIUS_MM - band_mm) & (polar <= half_angle_deg)] = 0.2
    img += rng.normal(0, 0.06, shape).astype(np.float32)
    vol = Volume(img, affine, SeriesKind.t1)
    empty = np.zeros(shape, bool)
    head = FemoralHead(Side.left, CENTRE, RADIUS_MM, 1.0, np.array([1.0, 0, -1.0]) / np.sqrt(2), empty, empty, empty)
    return vol, head


@pytest.mark.parametrize("band_mm", [
    pytest.param(1.0, marks=pytest.mark.xfail(strict=True, reason=(
        "1 mm band: thickness 1.0 mm but length 5.1 of 27.5 mm: the free-centre boundary circle shifts ~1 mm "
        "towards the centre and absorbs a thin dome-wide band. Fitting the circle and the band arc together "
        "(model selection) measured 26.0 mm, but also reported 1.3-2.9 mm bands on all six real normal hips "
        "(their domes lie 1-2 mm inside the circle through the flanks), so it is not used"))),
    3.0, 5.0, 7.0,
])
def test_band_thickness_within_1_mm(band_mm):
    vol, head = synthetic_head(band_mm)
    band = measure_subchondral_band(vol, head)
    assert band.present
    assert abs(band.thickness_mm - band_mm) <= 1.0, band
    truth_length = 2 * np.deg2rad(35.0) * (RADIUS_MM - band_mm / 2)
    assert abs(band.length_mm - truth_length) <= 0.25 * truth_length, (band.length_mm, truth_length)
    assert band.indeterminate == (abs(band.thickness_mm - 4.0) < 0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_band_on_band_free_head(seed):
    vol, head = synthetic_head(0.0, seed=seed)
    band = measure_subchondral_band(vol, head)
    assert not band.present
    assert band.thickness_mm is None and band.length_mm is None


def test_band_near_cutoff_is_indeterminate():
    vol, head = synthetic_head(4.0)
    band = measure_subchondral_band(vol, head)
    assert band.present and band.indeterminate


def test_smoothing_a_box_samples_like_smoothing_the_whole_volume():
    vol, _ = synthetic_head(3.0)
    whole = ndimage.uniform_filter(vol.array, size=(1, 3, 3))
    rng = np.random.default_rng(0)
    inside = rng.uniform(-1, 1, (2000, 3)) * np.array([6, 30, 30]) + np.array([9, 50, 50])
    # Samples on and beyond the volume's faces: the box is clipped there like the volume.
    faces = np.vstack([inside, [[0, 0, 0], [18.5, 99.2, 0.3], [-0.5, 50, 101]]])
    for index in (inside, faces):
        box, origin = _smoothed_box(vol, index)
        expected = ndimage.map_coordinates(whole, index.T, order=1)
        np.testing.assert_allclose(ndimage.map_coordinates(box, (index - origin).T, order=1), expected, rtol=0, atol=1e-6)
    assert _smoothed_box(vol, inside)[0].size < whole.size / 2


REAL_T1 = SHARED / "data" / "mri" / "pelvis-t1"


@pytest.mark.real_data
@pytest.mark.parametrize("series", [
    "series-01", "series-02", "series-03",
])
def test_no_band_on_real_normal_hips(series):
    shared_data(REAL_T1 / series)
    from hipdx.imaging.io import read_study

    (volume,) = read_study(REAL_T1 / series).volumes
    for head in find_femoral_heads(volume):
        assert not measure_subchondral_band(volume, head).present, (series, head.side)


@pytest.mark.parametrize("half_angle_deg, reported", [(4.0, False), (12.0, True)])
def test_a_short_dark_focus_is_not_a_band(half_angle_deg, reported):
    """A 4 mm deep dark spot 3 mm wide is a focus, not a band; 10 mm wide it is a band."""
    vol, head = synthetic_head(4.0, half_angle_deg=half_angle_deg)
    band = measure_subchondral_band(vol, head)
    assert band.present is reported, band
    if reported:
        assert band.length_mm >= MIN_BAND_LENGTH_MM
