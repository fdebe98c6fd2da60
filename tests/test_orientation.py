"""The measurements depend on the patient, not on how the scanner laid out the voxels.

Scanners store coronal series with rows, columns and slices in either direction, and tilt the
coronal plane along the femoral necks or with the pelvis: the same anatomy must give the same
heads, edema and band in patient coordinates.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hipdx.imaging.analyze import analyze_study, resample_onto
from hipdx.imaging.volume import Volume

pytestmark = pytest.mark.slow  # writes and analyses MRI phantoms: in `make test`, not in `make test-fast`


@pytest.fixture(scope="module")
def phantom(phantoms):
    _, truth = phantoms.write("default-20ml-4mm")
    study, analysis = phantoms.analysed("default-20ml-4mm")
    return truth, list(study.volumes), analysis


def flipped(volume: Volume, axis: int) -> Volume:
    """The same image with array axis ``axis`` (0 slices, 1 rows, 2 columns) stored the other way."""
    column = 2 - axis  # affine column of that array axis
    affine = volume.affine.copy()
    affine[:3, 3] += affine[:3, column] * (volume.array.shape[axis] - 1)
    affine[:3, column] *= -1
    return replace(volume, array=np.ascontiguousarray(np.flip(volume.array, axis)), affine=affine)


def rotated(volume: Volume, axis: int, degrees: float) -> Volume:
    """``volume`` resampled onto its own grid turned by ``degrees`` about patient axis ``axis`` (0 x, 1 y,
    2 z) through its centre."""
    t = np.radians(degrees)
    turn = np.eye(3)
    i, j = [a for a in range(3) if a != axis]
    turn[i, i], turn[i, j], turn[j, i], turn[j, j] = np.cos(t), -np.sin(t), np.sin(t), np.cos(t)
    centre_index = np.array([(n - 1) / 2 for n in volume.array.shape[::-1]])  # (i, j, k)
    centre = volume.affine[:3, :3] @ centre_index + volume.affine[:3, 3]
    affine = volume.affine.copy()
    affine[:3, :3] = turn @ affine[:3, :3]
    affine[:3, 3] = centre - affine[:3, :3] @ centre_index
    target = Volume(np.zeros(volume.array.shape, np.float32), affine)
    return replace(volume, array=resample_onto(volume, target), affine=affine)


@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (1, 2), (0, 1, 2)], ids=["slices", "rows", "columns", "rows+columns", "all"])
def test_storage_order_changes_nothing(phantom, axes):
    _, volumes, reference = phantom
    for axis in axes:
        volumes = [flipped(v, axis) for v in volumes]
    assert analyze_study(volumes).sides == reference.sides


@pytest.mark.parametrize("axis", [0, 1, 2], ids=["about left-right", "about front-back (in-plane)", "about head-feet"])
@pytest.mark.parametrize("degrees", [10, 25])
def test_an_oblique_coronal_study_measures_the_same_anatomy(phantom, axis, degrees):
    truth, volumes, _ = phantom
    analysis = analyze_study([rotated(v, axis, degrees) for v in volumes])
    for side in ("left", "right"):
        head = getattr(analysis.sides, side).femoral_head
        assert np.linalg.norm(np.subtract(head.center_mm, truth.heads[side].center_mm)) < 1.0, side
    lesion = getattr(analysis.sides, truth.side)
    assert lesion.edema.volume_ml == pytest.approx(truth.edema_volume_ml, rel=0.1)
    assert lesion.subchondral_band.thickness_mm == pytest.approx(truth.band_thickness_mm, abs=1.0)
    healthy = getattr(analysis.sides, "right" if truth.side == "left" else "left")
    assert healthy.edema.volume_ml < 0.5 and healthy.subchondral_band.present.value == "absent"
