"""Edema segmentation: synthetic marrow and the real SIJ STIR with four reader masks.

Issue 4's criterion on the real data: edema volume within the readers' range and Dice against
each reader within the readers' own pairwise range. Measured with the given normal-marrow
region (``segment_edema(stir, disease_region, normal_marrow)``), before (fixed k = 2, 3-D
components >= 0.01 mL) and after (Hepburn's adaptive k, VHI residue rule, in-plane 3 x 3
majority filter, then the same 3-D components):

====  ===============  ==========================  ================================  =============
case  readers (mL)     volume before -> after      Dice vs R11/R12/R21/R22           readers'
                                                   before -> after                   pairwise Dice
====  ===============  ==========================  ================================  =============
1013  119.9-135.5      151.7 -> 120.4 (k 2.95)     0.77-0.78 -> .807/.791/.808/.807  0.813-0.866
1007  2.8-3.9          2.7 -> 3.87 (k 1.50)        0.36-0.39 -> .370/.323/.367/.347  0.600-0.679
====  ===============  ==========================  ================================  =============

Volume: met in both cases (1013 0.5 mL above the lowest reader, 1007 0.04 mL under the highest,
so both sit near an edge). Overlap: not met; the large lesion is 0.005-0.02 under the readers'
lowest pairwise Dice, the small one far under it (bright speckle and vessels elsewhere in the
sacrum and ilia pass the threshold; ``research/imaging.md`` 1.6 found no threshold that does
better). The unmet targets are strict xfails with the figures; the achieved ones are pinned
with a little slack. The method was chosen on principle and by the published rule, but the
variants compared (see ``docs/imaging-analysis.md``) were compared on these two cases: the
figures are not an independent test.
"""

from __future__ import annotations

import itertools
import json
import numpy as np
import pytest

from hipdx.errors import ImagingError
from hipdx.imaging.edema import ReferenceMarrow, segment_edema, vhi_iqr_factor
from hipdx.imaging.volume import SeriesKind, Volume

from conftest import SHARED, shared_data

DATA = SHARED / "data" / "mri" / "sij-stir"
READERS = ("R11", "R12", "R21", "R22")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def synthetic_stir(edema_radius_mm: float = 0.0, seed: int = 0, snr: float = 8.0):
    """A block of marrow (signal 1, CV 1/snr) with an optional spherical edema (signal 1.8)."""
    rng = np.random.default_rng(seed)
    shape = (20, 80, 80)
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    bone = ((jj - 40) ** 2 + (ii - 40) ** 2 <= 30**2) & (kk >= 2) & (kk < 18)
    img = np.where(bone, 1.0, 0.3)
    truth = ((jj - 40) ** 2 + (ii - 40) ** 2 + ((kk - 10) * 3.0) ** 2 <= edema_radius_mm**2) & bone
    img = np.where(truth, 1.8, img)
    img = img + rng.normal(0, 1.0 / snr, shape)
    return Volume(np.abs(img).astype(np.float32), affine, SeriesKind.fluid, "synthetic STIR"), bone, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_edema_in_edema_free_marrow(seed):
    stir, bone, _ = synthetic_stir(0.0, seed=seed)
    result = segment_edema(stir, bone)
    assert result.volume_ml < 0.05, result.volume_ml
    assert result.reference.source == "estimated inside the bone mask"


def test_synthetic_edema_volume_within_10_percent():
    stir, bone, truth = synthetic_stir(15.0, seed=3, snr=10.0)
    result = segment_edema(stir, bone)
    truth_ml = truth.sum() * stir.voxel_volume_ml
    assert abs(result.volume_ml - truth_ml) / truth_ml < 0.10, (result.volume_ml, truth_ml)
    assert dice(result.mask, truth) > 0.9
    assert 1.5 < result.signal_ratio < 2.1


def _vhi_loop(q3: float, iqr: float, maximum: float) -> float:
    """``Segment.compute_thresholds`` of the VHI code (c-hepburn/Bone_MRI), as published."""
    multiple = 1.5
    diff = maximum - (q3 + multiple * iqr)
    while diff >= iqr / 2.0:
        multiple += 0.05
        diff = maximum - (q3 + multiple * iqr)
    while diff <= 0.0:
        multiple -= 0.05
        diff = np.round(maximum - (q3 + multiple * iqr), 3)
    return multiple


@pytest.mark.parametrize(
    ("q3", "iqr", "maximum"),
    [(110.0, 20.0, 170.0), (110.0, 20.0, 141.0), (110.0, 20.0, 125.0), (277.4, 55.5, 468.8), (448.8, 94.5, 599.9)],
)
def test_vhi_factor_follows_hepburns_rule(q3, iqr, maximum):
    reference = ReferenceMarrow(q3 - iqr / 2, q3 - iqr, q3, 1000, "given region", maximum)
    k = vhi_iqr_factor(reference)
    assert k == pytest.approx(_vhi_loop(q3, iqr, maximum), abs=1e-9)
    assert 0 < maximum - (q3 + k * iqr) < iqr / 2


def test_vhi_factor_needs_a_maximum():
    assert vhi_iqr_factor(ReferenceMarrow(100.0, 90.0, 110.0, 1000, "estimated inside the bone mask")) is None
    assert vhi_iqr_factor(ReferenceMarrow(100.0, 100.0, 100.0, 1000, "given region", 100.0)) is None


def test_given_region_uses_the_vhi_factor():
    stir, bone, truth = synthetic_stir(15.0, seed=3, snr=10.0)
    _, jj, ii = np.indices(bone.shape)
    region = bone & ((jj - 40) ** 2 + (ii - 62) ** 2 <= 6**2)  # normal marrow beside the lesion
    result = segment_edema(stir, bone, region)
    assert result.reference.maximum == pytest.approx(float(stir.array[region].max()))
    assert result.iqr_factor == vhi_iqr_factor(result.reference)
    truth_ml = truth.sum() * stir.voxel_volume_ml
    assert abs(result.volume_ml - truth_ml) / truth_ml < 0.05, (result.volume_ml, truth_ml)
    assert segment_edema(stir, bone, region, iqr_factor=2.0).iqr_factor == 2.0


def test_thin_bright_vessel_and_specks_are_not_edema():
    stir, bone, _ = synthetic_stir(0.0, seed=4, snr=20.0)
    img = stir.array.copy()
    img[6:14, 20:60, 30] = 2.5  # a one-pixel-wide bright vessel through eight slices (3.2 x 24 voxels)
    img[8, 50, 50] = img[8, 51, 51] = img[8, 50, 51] = 2.5  # a three-pixel speck
    result = segment_edema(Volume(img, stir.affine, SeriesKind.fluid, "synthetic STIR"), bone)
    assert result.volume_ml == 0.0, result.volume_ml


def test_mask_of_another_shape_is_refused():
    stir, bone, _ = synthetic_stir()
    with pytest.raises(ImagingError, match="shape"):
        segment_edema(stir, bone[:, :-1])
    with pytest.raises(ImagingError, match="reference region"):
        segment_edema(stir, bone, reference=bone[1:])


@pytest.fixture(scope="module")
def sij():
    shared_data(DATA)
    from hipdx.imaging.io import read_nifti

    cases = {}
    for case in ("1013", "1007"):
        folder = DATA / case
        stir = read_nifti(folder / f"{case}_STIR.nii.gz")

        def mask(name: str) -> np.ndarray:
            # Image and mask direction cosines differ by ~1e-6: the grid is the image's.
            m = read_nifti(folder / f"{case}_{name}.nii.gz").array
            assert m.shape == stir.array.shape
            return m > 0.5

        readers = {r: mask(f"inflammation_{r}") for r in READERS}
        result = segment_edema(stir, mask("disease_region"), mask("normal_marrow"))
        cases[case] = (stir, readers, result)
    return cases


#: Measured with the given normal-marrow region: volume (mL), VHI k, Dice vs R11, R12, R21, R22.
MEASURED = {
    "1013": dict(volume_ml=120.40, iqr_factor=2.95, dice=(0.807, 0.791, 0.808, 0.807)),
    "1007": dict(volume_ml=3.868, iqr_factor=1.50, dice=(0.370, 0.323, 0.367, 0.347)),
}


def _spread(stir, readers):
    volumes = [m.sum() * stir.voxel_volume_ml for m in readers.values()]
    pairwise = [dice(a, b) for a, b in itertools.combinations(readers.values(), 2)]
    return volumes, pairwise


@pytest.mark.real_data
@pytest.mark.parametrize("case", list(MEASURED))
def test_real_stir_volume_within_the_readers_range(sij, case):
    stir, readers, result = sij[case]
    volumes, _ = _spread(stir, readers)
    assert min(volumes) <= result.volume_ml <= max(volumes), (result.volume_ml, volumes)
    assert result.volume_ml == pytest.approx(MEASURED[case]["volume_ml"], rel=0.01)
    assert result.iqr_factor == pytest.approx(MEASURED[case]["iqr_factor"])
    assert result.reference.source == "given region"
    assert result.signal_ratio > 1.5


@pytest.mark.real_data
@pytest.mark.parametrize("case", list(MEASURED))
def test_real_stir_dice_as_measured(sij, case):
    stir, readers, result = sij[case]
    for (name, reader), expected in zip(readers.items(), MEASURED[case]["dice"], strict=True):
        assert dice(result.mask, reader) == pytest.approx(expected, abs=0.01), name


@pytest.mark.real_data
@pytest.mark.parametrize(
    "case",
    [
        pytest.param("1013", marks=pytest.mark.xfail(strict=True, reason="Dice 0.791-0.808 vs readers' 0.813-0.866")),
        pytest.param("1007", marks=pytest.mark.xfail(strict=True, reason="Dice 0.323-0.370 vs readers' 0.600-0.679")),
    ],
)
def test_real_stir_dice_within_the_readers_pairwise_range(sij, case):
    stir, readers, result = sij[case]
    _, pairwise = _spread(stir, readers)
    assert min(dice(result.mask, reader) for reader in readers.values()) >= min(pairwise)


@pytest.mark.real_data
def test_cli_edema_json(tmp_path, sij):
    from conftest import CliRunner

    from hipdx.cli_mri import mri_app

    folder = DATA / "1013"
    out = tmp_path / "edema.nii.gz"
    run = CliRunner().invoke(
        mri_app,
        [
            "edema",
            str(folder / "1013_STIR.nii.gz"),
            "--bone-mask",
            str(folder / "1013_disease_region.nii.gz"),
            "--reference",
            str(folder / "1013_normal_marrow.nii.gz"),
            "--out",
            str(out),
            "--format",
            "json",
        ],
    )
    assert run.exit_code == 0, run.output
    payload = json.loads(run.output)
    assert payload["volume_ml"] == pytest.approx(sij["1013"][2].volume_ml, rel=1e-6)
    assert out.is_file()


def test_cli_edema_bad_inputs(tmp_path):
    from conftest import CliRunner

    from hipdx.cli_mri import mri_app
    from hipdx.errors import InputError

    runner = CliRunner()
    missing = runner.invoke(mri_app, ["edema", str(tmp_path / "none.nii.gz"), "--bone-mask", str(tmp_path / "m.nii")])
    # the error leaves as a message and its exit code, not a traceback
    assert missing.exit_code == InputError.exit_code or missing.exit_code == ImagingError.exit_code
    assert "not found" in missing.stderr and "Traceback" not in missing.output
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    unreadable = runner.invoke(mri_app, ["edema", str(broken), "--bone-mask", str(broken)])
    assert unreadable.exit_code == ImagingError.exit_code and "error:" in unreadable.stderr


def test_non_finite_values_in_the_bone_are_refused():
    stir, bone, _ = synthetic_stir(10.0)
    img = stir.array.copy()
    img[10, 40, 40] = np.nan
    with pytest.raises(ImagingError, match="NaN or infinite"):
        segment_edema(Volume(img, stir.affine, SeriesKind.fluid, "synthetic STIR"), bone)
