"""Edema segmentation: synthetic marrow and the real SIJ STIR with four reader masks.

Measured on the real data with the given normal-marrow region (k = 2):

====  ==========================  ===================  ===========================
case  readers' volumes (mL)       method volume (mL)   Dice vs readers / readers'
                                                       pairwise Dice
====  ==========================  ===================  ===========================
1013  119.9-135.5                 151.7 (+12 %)        0.77-0.78 / 0.81-0.87
1007  2.8-3.9                     2.7 (-4 %)           0.36-0.39 / 0.60-0.68
====  ==========================  ===================  ===========================

The volume lies close to the readers' range in both cases; the overlap of the large lesion is
just under the readers' own agreement and that of the small lesion clearly below it (as
``research/imaging.md`` 1.6 found for a naive threshold: vessels and fluid inside a loose bone
mask). The tests pin these figures, with a little slack, rather than pretend to more.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from hipdx.errors import ImagingError
from hipdx.imaging.edema import segment_edema
from hipdx.imaging.volume import SeriesKind, Volume

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mri" / "sij-stir"
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


def test_mask_of_another_shape_is_refused():
    stir, bone, _ = synthetic_stir()
    with pytest.raises(ImagingError, match="shape"):
        segment_edema(stir, bone[:, :-1])
    with pytest.raises(ImagingError, match="reference region"):
        segment_edema(stir, bone, reference=bone[1:])


@pytest.fixture(scope="module")
def sij():
    if not DATA.is_dir():
        pytest.skip(f"real SIJ STIR data not found at {DATA}")
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


@pytest.mark.parametrize(
    ("case", "volume_slack", "dice_floor_vs_readers"),
    [
        # Large lesion: volume within 20 % of the readers' range, Dice within 0.06 of their own minimum.
        ("1013", 0.20, 0.06),
        # Small lesion: volume within 20 %, Dice documented below the readers' agreement (0.36-0.39 vs 0.60).
        ("1007", 0.20, 0.30),
    ],
)
def test_real_stir_against_reader_spread(sij, case, volume_slack, dice_floor_vs_readers):
    stir, readers, result = sij[case]
    volumes = [m.sum() * stir.voxel_volume_ml for m in readers.values()]
    pairwise = [dice(a, b) for a, b in itertools.combinations(readers.values(), 2)]
    assert min(volumes) * (1 - volume_slack) <= result.volume_ml <= max(volumes) * (1 + volume_slack), (
        result.volume_ml,
        volumes,
    )
    for name, reader in readers.items():
        assert dice(result.mask, reader) >= min(pairwise) - dice_floor_vs_readers, (name, dice(result.mask, reader))
    assert result.reference.source == "given region"
    assert result.signal_ratio > 1.5


def test_cli_edema_json(tmp_path, sij):
    from typer.testing import CliRunner

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
    from typer.testing import CliRunner

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
