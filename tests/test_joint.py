"""Acetabular edema and joint effusion measured on phantoms (``hipdx.imaging.joint``).

Tolerance: volume within 25 % of the phantom's rasterised volume. The issue gives no figure for
these two measurements; 25 % is what this method is held to here, not a clinical target
(measured: acetabular edema -7 to -8 %, effusion -9 to -16 %, see docs/imaging-analysis.md).
Absent: below the presence thresholds on phantoms without them and on the healthy side, and
nothing at all (0 mL) on edema-free phantoms of several seeds and both sizes the tests use, also
with the head radius found 1 mm off. The real pelvis series are T1 only (no fluid-sensitive
series), so nothing here runs on real data.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import Phantoms, healthy_side
from hipdx.imaging.analyze import (
    ACETABULAR_EDEMA_MIN_ML,
    EFFUSION_MIN_ML,
    MriAnalysis,
    analyze_study,
    resample_onto,
)
from hipdx.imaging.io import read_study
from hipdx.imaging.joint import acetabular_region, joint_box, measure_acetabular_edema
from hipdx.imaging.phantom import FAT, MASKS_FILE, MUSCLE, PhantomSpec, PhantomTruth, load_truth, write_phantom
from hipdx.imaging.to_case import to_imaging_findings

pytestmark = pytest.mark.slow  # writes and analyses MRI phantoms: in `make test`, not in `make test-fast`

REL_TOLERANCE = 0.25

PHANTOMS = {
    "joint-left-snr12": dict(seed=11, side="left", edema_ml=8, acetabular_edema_ml=5, effusion_ml=10, snr=12, bias=0.2),
    "joint-right-snr8": dict(seed=12, side="right", edema_ml=0, acetabular_edema_ml=5, effusion_ml=10, snr=8, bias=0.3),
    "femoral-only": dict(seed=13, side="left", edema_ml=30, band_mm=4, snr=20, bias=0.2),
}


@pytest.fixture(scope="module")
def analysed(phantoms: Phantoms) -> dict[str, tuple[PhantomTruth, MriAnalysis]]:
    return phantoms.analyse(PHANTOMS)


def _within_25_percent_or_absent(analysed, name: str, finding: str, true_ml: str, min_ml: float) -> None:
    """The lesion side's ``finding`` within REL_TOLERANCE of the truth (or absent), the other side absent."""
    truth, analysis = analysed[name]
    lesion = getattr(getattr(analysis.sides, truth.side), finding)
    if getattr(truth, true_ml) > 0:
        assert lesion.volume_ml == pytest.approx(getattr(truth, true_ml), rel=REL_TOLERANCE)
        assert lesion.present.value == "present"
    else:
        assert lesion.volume_ml < min_ml and lesion.present.value == "absent", lesion
    healthy = getattr(getattr(analysis.sides, healthy_side(truth)), finding)
    assert healthy.volume_ml < min_ml and healthy.present.value == "absent", healthy


@pytest.mark.parametrize("name", list(PHANTOMS))
def test_acetabular_edema_within_25_percent_or_absent(analysed, name):
    _within_25_percent_or_absent(analysed, name, "acetabular_edema", "acetabular_edema_ml", ACETABULAR_EDEMA_MIN_ML)


@pytest.mark.parametrize("name", list(PHANTOMS))
def test_effusion_within_25_percent_or_absent(analysed, name):
    _within_25_percent_or_absent(analysed, name, "effusion", "effusion_ml", EFFUSION_MIN_ML)


def test_findings_reach_the_case_model(analysed):
    truth, analysis = analysed["joint-left-snr12"]
    lesion = to_imaging_findings(analysis, truth.side)
    assert lesion["acetabular_edema"] == "present" and lesion["effusion"] == "present"
    healthy = to_imaging_findings(analysis, healthy_side(truth))
    assert healthy["acetabular_edema"] == "absent" and healthy["effusion"] == "absent"


def test_masks_are_kept_with_the_analysis(analysed):
    truth, analysis = analysed["joint-left-snr12"]
    masks = analysis.masks
    assert masks is not None
    voxel_ml = masks.t1.voxel_volume_ml
    side = getattr(analysis.sides, truth.side)
    lesion_side = next(s for s in masks.effusion_by_side if s.value == truth.side)
    assert masks.effusion_by_side[lesion_side].sum() * voxel_ml == pytest.approx(side.effusion.volume_ml, abs=0.01)
    assert masks.acetabular_edema_by_side[lesion_side].sum() * voxel_ml == pytest.approx(
        side.acetabular_edema.volume_ml, abs=0.01)
    # Acetabular edema is not counted as femoral edema.
    assert not (masks.acetabular_edema_by_side[lesion_side] & masks.edema_by_side[lesion_side]).any()


def test_truth_records_the_joint_findings_only_when_requested(analysed, phantoms):
    for name, (truth, _) in analysed.items():
        folder = phantoms.folder(PHANTOMS[name])
        again = load_truth(folder)
        assert again.acetabular_edema_ml == truth.acetabular_edema_ml
        assert again.effusion_ml == truth.effusion_ml
        assert ("acetabular_edema_ml" in truth.parameters) == (truth.acetabular_edema_ml > 0)
    truth, _ = analysed["joint-left-snr12"]
    assert truth.acetabular_edema_ml == pytest.approx(5.0, abs=0.05)
    assert truth.effusion_ml == pytest.approx(10.0, abs=0.05)


#: The small grid of tests/test_export.py and tests/test_overlay.py, and the phantom's default grid.
GRIDS = {"small": dict(rows=256, cols=256, pixel_mm=1.35, slices=32), "default": {}}
#: Edema-free phantoms: no femoral or acetabular edema, no band, no effusion.
EDEMA_FREE = [(grid, seed) for grid in GRIDS for seed in range(6)]
#: The head radius found may be this far off (mm) without the acetabular shell leaving the bone.
RADIUS_ERROR_MM = 1.0


@pytest.mark.parametrize(("grid", "seed"), EDEMA_FREE, ids=[f"{g}-{s}" for g, s in EDEMA_FREE])
def test_no_joint_finding_on_edema_free_phantoms(tmp_path, grid, seed):
    write_phantom(tmp_path, PhantomSpec(seed=seed, edema_ml=0.0, band_mm=0.0, **GRIDS[grid]))
    volumes = read_study(tmp_path).volumes
    analysis = analyze_study(volumes)
    for side in ("left", "right"):
        out = getattr(analysis.sides, side)
        assert out.acetabular_edema.volume_ml == 0.0 and out.acetabular_edema.present.value == "absent", (side, out)
        assert out.effusion.volume_ml == 0.0 and out.effusion.present.value == "absent", (side, out)
    masks = analysis.masks
    labels = np.load(tmp_path / MASKS_FILE)["labels"]
    for side, head in masks.heads.items():
        # The cause of the false positives once seen here: a shell reaching past the acetabular
        # wall into the muscle around it (brighter than pelvic marrow on STIR).
        box = joint_box(masks.t1, head)
        shell = acetabular_region(masks.t1, head, box)
        assert not np.isin(labels[box][shell], (MUSCLE, FAT)).any(), side
        values = np.zeros(masks.t1.array.shape, np.float32)
        values[box] = resample_onto(masks.fluid, masks.t1, box)
        for error_mm in (-RADIUS_ERROR_MM, RADIUS_ERROR_MM):
            off = dataclasses.replace(head, radius_mm=head.radius_mm + error_mm)
            volume_ml, mask = measure_acetabular_edema(values, masks.t1, off)
            assert volume_ml == 0.0 and not mask.any(), (side, error_mm, volume_ml)
