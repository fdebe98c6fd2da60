"""The synthetic hip phantom: valid DICOM, consistent geometry, exact and deterministic truth."""

from __future__ import annotations

import json
import time

import numpy as np
import pydicom
import pytest

from hipdx.errors import InputError
from hipdx.imaging.io import read_study, volumes_of
from hipdx.imaging.phantom import PhantomSpec, load_truth, write_phantom
from hipdx.imaging.volume import SeriesKind

pytestmark = pytest.mark.slow  # writes MRI phantoms: in `make test`, not in `make test-fast`

#: A coarse grid covering the same field of view, for the quick tests.
SMALL = dict(rows=192, cols=192, slices=20, pixel_mm=1.8, slice_thickness_mm=8.0, slice_gap_mm=2.4)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    start = time.perf_counter()
    truth = write_phantom(out, PhantomSpec(seed=5, side="right", edema_ml=25.0, band_mm=3.0, band_length_mm=18.0))
    seconds = time.perf_counter() - start
    return out, truth, read_study(out), seconds


def test_two_series_classified(phantom):
    out, truth, study, _ = phantom
    assert not study.problems
    assert sorted(study.warnings) == ["truth.json: not a DICOM file, skipped", "truth_masks.npz: not a DICOM file, skipped"]
    (t1,), (stir,) = volumes_of(study, "t1"), volumes_of(study, "fluid")
    assert t1.series_uid == truth.series["t1"]["series_uid"] != stir.series_uid == truth.series["fluid"]["series_uid"]
    assert t1.description == "t1_tse_cor" and stir.description == "t2_tirm_cor"
    ds = pydicom.dcmread(next((out / "STIR").iterdir()), stop_before_pixels=True)
    assert "IR" in ds.ScanningSequence and float(ds.InversionTime) == 160
    assert pydicom.uid.UID(ds.SOPInstanceUID).is_valid and pydicom.uid.UID(ds.SeriesInstanceUID).is_valid


def test_geometry_matches(phantom):
    out, _, study, _ = phantom
    t1, stir = study.volumes
    assert t1.array.shape == stir.array.shape == (40, 384, 384)
    np.testing.assert_allclose(t1.affine, stir.affine)
    assert t1.spacing_mm == pytest.approx((5.2, 0.9, 0.9))
    assert not t1.warnings and not stir.warnings
    masks = np.load(out / "truth_masks.npz")
    np.testing.assert_allclose(masks["affine"], t1.affine, atol=1e-4)
    assert masks["edema_mask"].shape == masks["labels"].shape == t1.array.shape


def test_truth_fields_and_consistency(phantom):
    out, truth, study, _ = phantom
    data = json.loads((out / "truth.json").read_text())
    assert data["format"] == "hipdx-phantom-truth/1"
    assert set(data["heads"]) == {"left", "right"}
    assert load_truth(out) == truth
    left, right = truth.heads["left"], truth.heads["right"]
    assert left.center_mm[0] > 60 and right.center_mm[0] < -60  # LPS: +x is the patient's left
    assert 22 <= left.radius_mm <= 26 and 22 <= right.radius_mm <= 26
    assert truth.edema_volume_ml == pytest.approx(25.0, rel=0.05)
    assert truth.edema_mask_volume_ml == pytest.approx(25.0, rel=0.10)
    assert sum(truth.edema_extent_ml.values()) == pytest.approx(truth.edema_volume_ml, rel=0.01)
    assert data["band"] == {"side": "right", "present": True, "thickness_mm": 3.0, "length_mm": 18.0,
                            "volume_ml": truth.band_volume_ml}
    masks = np.load(out / "truth_masks.npz")
    voxel_ml = study.volumes[0].voxel_volume_ml
    assert masks["edema_fraction"].sum() * voxel_ml == pytest.approx(truth.edema_volume_ml, rel=1e-3)
    # The edema lies in the right femoral head and neck; the band under the right dome.
    t1 = study.volumes[0]
    edema_points = t1.to_patient(np.argwhere(masks["edema_mask"]))
    assert (edema_points[:, 0] < 0).all()
    distance = np.linalg.norm(edema_points - np.array(right.center_mm), axis=1)
    assert np.median(distance) < right.radius_mm
    band_points = t1.to_patient(np.argwhere(masks["band_mask"]))
    assert len(band_points) and (band_points[:, 2] > right.center_mm[2]).all()


def test_signal_contrast(phantom):
    out, truth, study, _ = phantom
    masks = np.load(out / "truth_masks.npz")
    labels = masks["labels"]
    t1, stir = volumes_of(study, SeriesKind.t1)[0], volumes_of(study, SeriesKind.fluid)[0]
    edema = masks["edema_fraction"] > 0.99
    marrow = labels == 4
    normal = marrow & (t1.to_patient(np.argwhere(np.ones(labels.shape, bool)))[:, 0] > 0).reshape(labels.shape)
    assert np.mean(stir.array[edema]) > 1.5 * np.mean(stir.array[normal])
    assert np.mean(t1.array[edema]) < 0.7 * np.mean(t1.array[normal])


def test_no_edema_and_no_band(tmp_path):
    truth = write_phantom(tmp_path, PhantomSpec(seed=2, edema_ml=0, band_mm=0, **SMALL))
    masks = np.load(tmp_path / "truth_masks.npz")
    assert truth.edema_volume_ml == 0 and truth.edema_mask_volume_ml == 0 and not masks["edema_mask"].any()
    assert truth.band_volume_ml == 0 and not masks["band_mask"].any()
    data = json.loads((tmp_path / "truth.json").read_text())
    assert data["edema"]["side"] is None and data["band"]["present"] is False


def test_small_edema_volume_is_exact(tmp_path):
    truth = write_phantom(tmp_path, PhantomSpec(seed=4, side="left", edema_ml=8.0, **SMALL))
    assert truth.edema_volume_ml == pytest.approx(8.0, rel=0.05)


def test_deterministic_for_a_seed(tmp_path):
    a, b, c = (write_phantom(tmp_path / name, PhantomSpec(seed=s, edema_ml=10, band_mm=2, **SMALL))
               for name, s in (("a", 7), ("b", 7), ("c", 8)))
    assert a == b and a != c
    for folder in ("T1", "STIR"):
        names = sorted(p.name for p in (tmp_path / "a" / folder).iterdir())
        for name in names[::5]:
            assert (tmp_path / "a" / folder / name).read_bytes() == (tmp_path / "b" / folder / name).read_bytes()
        assert (tmp_path / "a" / folder / names[10]).read_bytes() != (tmp_path / "c" / folder / names[10]).read_bytes()


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"side": "both"}, "side"), ({"edema_ml": -1}, "edema_ml"), ({"band_mm": 20}, "band_mm"), ({"snr": 0}, "snr")],
)
def test_invalid_parameters(tmp_path, arguments, field):
    with pytest.raises(InputError) as info:
        write_phantom(tmp_path, PhantomSpec(**arguments))
    assert info.value.problems[0].field == field
