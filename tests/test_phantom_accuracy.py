"""The issue's phantom accuracy targets, over a grid of noise, bias, edema size and band thickness.

Targets (issue 4, "Accuracy"): edema volume within 10 % of the phantom's rasterised volume,
head centres within 2 mm, band thickness within 1 mm where a band exists and none where it does
not, no edema on edema-free phantoms and on the healthy side (below ``NO_EDEMA_ML`` and extent
"none"). The grid covers SNR {8, 25} x bias {0, 0.3} x edema {0, 8, 40 mL} x band {0, 3, 6 mm}
with eight phantoms (every level of every factor at least twice, both lesion sides), each
written once per module at the default acquisition (40 x 384 x 384, 4 mm slices + 1.2 mm gap).

A target the method does not meet at a grid point is an ``xfail(strict=True)`` with the
measured figure in the reason, so fixing it turns the test red until the mark is removed.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import Phantoms, healthy_side
from hipdx.imaging.analyze import REGION_INVOLVED_SHARE, MriAnalysis
from hipdx.imaging.phantom import PhantomTruth

pytestmark = pytest.mark.slow  # writes and analyses a grid of MRI phantoms: in `make test`, not in `make test-fast`

#: Less than this (mL) counts as "no edema" on an edema-free hip.
NO_EDEMA_ML = 1.0
EDEMA_REL_TOLERANCE = 0.10
CENTRE_TOLERANCE_MM = 2.0
BAND_TOLERANCE_MM = 1.0

GRID = {
    "snr8-nobias-0ml-0mm": dict(seed=2, snr=8, bias=0.0, edema_ml=0, band_mm=0),
    "snr8-bias-8ml-3mm": dict(seed=3, snr=8, bias=0.3, edema_ml=8, band_mm=3),
    "snr8-nobias-40ml-6mm": dict(seed=4, snr=8, bias=0.0, edema_ml=40, band_mm=6),
    "snr25-bias-0ml-6mm": dict(seed=5, snr=25, bias=0.3, edema_ml=0, band_mm=6),
    "snr25-nobias-8ml-0mm": dict(seed=6, snr=25, bias=0.0, edema_ml=8, band_mm=0),
    "snr25-bias-40ml-3mm-right": dict(seed=7, snr=25, bias=0.3, edema_ml=40, band_mm=3, side="right"),
    "snr8-bias-40ml-0mm-right": dict(seed=8, snr=8, bias=0.3, edema_ml=40, band_mm=0, side="right"),
    "snr25-bias-8ml-6mm-right": dict(seed=9, snr=25, bias=0.3, edema_ml=8, band_mm=6, side="right"),
}

#: Band thickness at grid points where the 1 mm target is not met (measured, mm).
BAND_MISSES: dict[str, str] = {}


def _cases(misses: dict[str, str]) -> list:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=misses[name])) if name in misses else name
        for name in GRID
    ]


@pytest.fixture(scope="module")
def analysed(phantoms: Phantoms) -> dict[str, tuple[PhantomTruth, MriAnalysis]]:
    return phantoms.analyse(GRID)


@pytest.mark.parametrize("name", list(GRID))
def test_head_centres_within_2_mm(analysed, name):
    truth, analysis = analysed[name]
    for side in ("left", "right"):
        head = getattr(analysis.sides, side).femoral_head
        assert head is not None, side
        error = float(np.linalg.norm(np.array(head.center_mm) - np.array(truth.heads[side].center_mm)))
        assert error <= CENTRE_TOLERANCE_MM, (side, error)


def _expected_extents(truth: PhantomTruth) -> set[str]:
    """The extent class of the phantom's true edema by the analysis's rule (a region is involved
    when it holds ``REGION_INVOLVED_SHARE`` of the edema); a share within 5 points of that cut-off
    accepts either class, since the regions are drawn from the heads found, not the truth."""
    total = sum(truth.edema_extent_ml.values())
    neck = truth.edema_extent_ml["neck"] / total
    inter = truth.edema_extent_ml["intertrochanteric"] / total
    assert inter < REGION_INVOLVED_SHARE - 0.05, "the phantom's edema stays in the head and neck"
    if abs(neck - REGION_INVOLVED_SHARE) <= 0.05:
        return {"femoral_head", "head_and_neck"}
    return {"head_and_neck"} if neck > REGION_INVOLVED_SHARE else {"femoral_head"}


@pytest.mark.parametrize("name", list(GRID))
def test_edema_volume_within_10_percent_or_none(analysed, name):
    truth, analysis = analysed[name]
    lesion = getattr(analysis.sides, truth.side).edema
    if truth.edema_volume_ml > 0:
        assert lesion.volume_ml == pytest.approx(truth.edema_volume_ml, rel=EDEMA_REL_TOLERANCE)
        assert lesion.extent.value in _expected_extents(truth), (lesion.extent, truth.edema_extent_ml)
    else:
        assert lesion.volume_ml < NO_EDEMA_ML and lesion.extent.value == "none", lesion


@pytest.mark.parametrize("name", list(GRID))
def test_no_edema_on_the_healthy_side(analysed, name):
    truth, analysis = analysed[name]
    healthy = getattr(analysis.sides, healthy_side(truth)).edema
    assert healthy.volume_ml < NO_EDEMA_ML and healthy.extent.value == "none", healthy


@pytest.mark.parametrize("name", _cases(BAND_MISSES))
def test_band_thickness_within_1_mm_or_absent(analysed, name):
    truth, analysis = analysed[name]
    band = getattr(analysis.sides, truth.side).subchondral_band
    if truth.band_thickness_mm > 0:
        assert band.present.value == "present", band
        assert abs(band.thickness_mm - truth.band_thickness_mm) <= BAND_TOLERANCE_MM, band
    elif band.present.value == "unknown":
        # A head's marrow much darker on T1 than the other's (the 40 mL edema under the coil's
        # field: 0.47 x) leaves the absence undecided (real anatomy missed bands there): no band
        # is reported, and the reason is given.
        assert band.undecided_because and "bands were missed" in band.undecided_because, band
    else:
        assert band.present.value == "absent", band
    assert getattr(analysis.sides, healthy_side(truth)).subchondral_band.present.value == "absent"
