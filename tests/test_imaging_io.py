"""Reading MRI studies: real pelvis T1 and SIJ STIR data, and synthetic DICOM folders."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, RLELossless, generate_uid

from dicom_files import write_mr_slice
from hipdx.errors import ImagingError, InputError
from hipdx.imaging.io import classify, classify_description, read_nifti, read_study, volumes_of
from hipdx.imaging.volume import SeriesKind

from conftest import SHARED, shared_data

PELVIS = SHARED / "data" / "mri" / "pelvis-t1"
SIJ = SHARED / "data" / "mri" / "sij-stir"


# --------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["series-01", "series-02", "series-03"])
def pelvis(request):
    folder = shared_data(PELVIS / request.param)
    labels = np.load(PELVIS / f"{request.param}-labels.npz")
    return folder, read_study(folder), labels


@pytest.mark.real_data
def test_real_pelvis_series_reads_whole(pelvis):
    _, study, labels = pelvis
    assert len(study.series) == 1 and not study.problems and not study.warnings
    volume = study.volumes[0]
    assert 39 <= volume.array.shape[0] <= 47
    assert volume.array.shape[1:] == (384, 384)
    assert volume.array.dtype == np.float32
    assert volume.array.shape == labels["labels"].shape
    assert not volume.warnings


@pytest.mark.real_data
def test_real_pelvis_slice_order_matches_labels(pelvis):
    _, study, labels = pelvis
    assert list(study.series[0].sop_instance_uids) == [str(u) for u in labels["sop_instance_uids"]]


@pytest.mark.real_data
def test_real_pelvis_geometry(pelvis):
    folder, study, _ = pelvis
    volume = study.volumes[0]
    slices, rows, cols = volume.spacing_mm
    assert rows == pytest.approx(0.9115, abs=0.001) and cols == pytest.approx(0.9115, abs=0.001)
    assert slices == pytest.approx(5.2, abs=0.01)
    # Each slice's ImagePositionPatient is where the affine puts voxel (0, 0, k).
    files = study.series[0].files
    for k in range(0, len(files), 7):
        ds = pydicom.dcmread(folder / files[k], stop_before_pixels=True)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        assert volume.to_patient(np.array([k, 0, 0])) == pytest.approx(ipp, abs=0.05)


@pytest.mark.real_data
def test_real_pelvis_classified_t1_after_contrast(pelvis):
    _, study, _ = pelvis
    series = study.series[0]
    assert series.volume.kind is SeriesKind.t1
    assert "TR" in series.kind_reason and "after contrast" in series.kind_reason
    assert volumes_of(study, "t1") == [series.volume] and volumes_of(study, SeriesKind.fluid) == []


@pytest.mark.real_data
def test_real_pelvis_pixels_equal_pydicom(pelvis):
    folder, study, _ = pelvis
    series = study.series[0]
    k = len(series.files) // 2
    expected = pydicom.dcmread(folder / series.files[k]).pixel_array
    np.testing.assert_array_equal(series.volume.array[k], expected.astype(np.float32))


@pytest.mark.real_data
def test_real_sij_stir_nifti():
    shared_data(SIJ / "1013")
    study = read_study(SIJ / "1013")
    by_name = {v.description: v for v in study.volumes}
    stir, t1 = by_name["1013_STIR"], by_name["1013_T1W"]
    assert stir.kind is SeriesKind.fluid and t1.kind is SeriesKind.t1
    assert by_name["1013_inflammation_R11"].kind is SeriesKind.unknown
    assert stir.array.shape == (25, 336, 336)
    assert stir.spacing_mm == pytest.approx((3.3, 0.5952, 0.5952), abs=1e-3)
    # NIfTI RAS converted to LPS: the same voxel, x and y negated.
    import nibabel as nib

    image = nib.load(SIJ / "1013" / "1013_STIR.nii.gz")
    ras = image.affine @ np.array([10, 20, 5, 1.0])
    assert stir.to_patient(np.array([5, 20, 10])) == pytest.approx([-ras[0], -ras[1], ras[2]], abs=1e-4)
    assert stir.array[5, 20, 10] == pytest.approx(float(image.get_fdata()[10, 20, 5]))


@pytest.mark.real_data
def test_real_nifti_single_file_and_override():
    shared_data(SIJ / "1007" / "1007_STIR.nii.gz")
    study = read_study(SIJ / "1007" / "1007_STIR.nii.gz", kinds={"1007_STIR": "t1"})
    assert len(study.volumes) == 1 and study.volumes[0].kind is SeriesKind.t1
    assert "set by the user" in study.series[0].kind_reason


# --------------------------------------------------------------------------------------
# Synthetic DICOM
# --------------------------------------------------------------------------------------

CORONAL = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]  # rows run to the patient's left, columns to the feet


def _write_series(
    folder: Path,
    *,
    n: int = 6,
    description: str = "t1_tse_cor",
    spacing: float = 5.0,
    orientation=CORONAL,
    tr: float = 500.0,
    te: float = 10.0,
    extra: dict | None = None,
    shape=(16, 12),
    slope: float | None = None,
    prefix: str = "IM",
    names=None,
) -> tuple[str, list[Path], np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid(entropy_srcs=[str(folder), description])
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, col)
    rng = np.random.default_rng(len(description))
    stack = rng.integers(0, 1000, size=(n, *shape), dtype=np.uint16)
    paths = []
    for k in range(n):
        headers = dict(SeriesDescription=description, ScanningSequence="SE", RepetitionTime=tr, EchoTime=te,
                       SliceThickness=4.0)
        if slope is not None:
            headers.update(RescaleSlope=slope, RescaleIntercept=-10)
        headers.update(extra or {})
        name = names[k] if names else f"{prefix}{k:03d}"
        paths.append(write_mr_slice(
            folder / name, stack[k], series_uid=uid, k=k, orientation=orientation,
            position=np.array([-20.0, 30.0, 40.0]) + normal * spacing * k, spacing=[0.8, 0.7], **headers,
        ))
    return uid, paths, stack


def test_synthetic_shuffled_nested_mixed(tmp_path):
    names = [f"x{v}" for v in random.Random(3).sample(range(100), 6)]  # file order != slice order
    t1_uid, _, t1_stack = _write_series(tmp_path / "a" / "b", names=names, slope=2.0)
    stir_uid, _, _ = _write_series(
        tmp_path / "a" / "b",
        description="t2_tirm_cor",
        prefix="S",
        tr=4000,
        te=40,
        extra={"ScanningSequence": ["SE", "IR"], "InversionTime": 160},
    )
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    study = read_study(tmp_path)
    assert {s.volume.series_uid for s in study.series} == {t1_uid, stir_uid}
    t1 = volumes_of(study, "t1")[0]
    stir = volumes_of(study, "fluid")[0]
    assert t1.series_uid == t1_uid and stir.series_uid == stir_uid
    np.testing.assert_array_equal(t1.array, t1_stack.astype(np.float32) * 2 - 10)  # rescale applied, order right
    assert t1.spacing_mm == pytest.approx((5.0, 0.8, 0.7))
    assert t1.to_patient(np.array([2, 3, 4])) == pytest.approx([-20 + 4 * 0.7, 30 + 2 * 5.0, 40 - 3 * 0.8])
    assert any("notes.txt" in w and "not a DICOM" in w for w in study.warnings)
    assert "STIR" in study.series[[s.volume.series_uid for s in study.series].index(stir_uid)].kind_reason


def test_synthetic_missing_slice_gives_gap_warning(tmp_path):
    _, paths, stack = _write_series(tmp_path, n=7)
    paths[3].unlink()
    study = read_study(tmp_path)
    volume = study.volumes[0]
    assert any("gap" in w and paths[2].name in w and paths[4].name in w for w in volume.warnings)
    assert volume.array.shape[0] == 7  # the missing slice is filled, geometry stays regular
    np.testing.assert_allclose(volume.array[3], (stack[2].astype(np.float32) + stack[4]) / 2)
    assert study.series[0].files[3] == ""


def test_synthetic_corrupt_and_undecodable_files_are_named(tmp_path):
    _, paths, _ = _write_series(tmp_path, n=5)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 3])
    study = read_study(tmp_path)
    assert any(p.field == paths[1].name for p in study.problems)
    assert study.volumes[0].array.shape[0] == 5  # slice 1 missing -> filled, with a gap warning
    assert any("gap" in w for w in study.volumes[0].warnings)


def test_corrupt_header_values_are_named_and_the_rest_is_read(tmp_path):
    """Byte damage a fuzzer found escaping as NotImplementedError/ValueError: an unknown VR in a
    header element, a transfer syntax UID that is no transfer syntax, a malformed UID value."""
    _, paths, stack = _write_series(tmp_path, n=6)
    raw = paths[1].read_bytes()
    tag = bytes([0x08, 0x00, 0x16, 0x00]) + b"UI"  # (0008,0016) SOP Class UID, explicit VR
    assert raw.count(tag) == 1
    paths[1].write_bytes(raw.replace(tag, tag[:4] + b"Uy"))  # unknown VR
    raw = paths[3].read_bytes()
    paths[3].write_bytes(raw.replace(ExplicitVRLittleEndian.encode(), b"1.2.840.10008.5.1.4", 1))  # not a syntax
    raw = paths[4].read_bytes()
    uid = pydicom.dcmread(paths[4]).SOPInstanceUID.encode()
    paths[4].write_bytes(raw.replace(uid, uid[:-3] + b"x!#", 1))  # a malformed but readable UID
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing reaches the user as a Python warning either
        study = read_study(tmp_path)
    named = {p.field for p in study.problems}
    assert paths[1].name in named and paths[3].name in named, study.problems
    assert all("Traceback" not in p.reason for p in study.problems)
    used = [f for f in study.series[0].files if f]
    assert used == [paths[k].name for k in (0, 2, 4, 5)]  # the malformed-UID file is still read
    np.testing.assert_array_equal(study.volumes[0].array[0], stack[0].astype(np.float32))
    assert any(w.startswith(f"{paths[1].name}: ") for w in study.all_warnings)  # its warnings carry its name


def test_synthetic_compressed(tmp_path):
    _, paths, stack = _write_series(tmp_path / "rle", n=3)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless)
        ds.save_as(p, enforce_file_format=True)
    np.testing.assert_array_equal(read_study(tmp_path / "rle").volumes[0].array, stack.astype(np.float32))

    _, paths, _ = _write_series(tmp_path / "jls", n=2)
    ds = pydicom.dcmread(paths[0])
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8 not really jpeg-ls \xff\xd9"])
    ds.save_as(paths[0], enforce_file_format=True)
    study = read_study(tmp_path / "jls")
    problem = next(p for p in study.problems if p.field == paths[0].name)
    assert "JPEG-LS" in problem.reason and "decode" in problem.reason
    assert study.volumes[0].array.shape[0] == 1


def test_series_with_an_undecodable_slice_is_planned_again_with_the_pixel_data_read_again(tmp_path):
    # 256 x 256 x 2 bytes: the pixel data is deferred by dcmread and read slice by slice.
    _, paths, stack = _write_series(tmp_path, n=5, shape=(256, 256))
    ds = pydicom.dcmread(paths[2])
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8 not really jpeg-ls \xff\xd9"])
    ds.save_as(paths[2], enforce_file_format=True)
    study = read_study(tmp_path)
    assert [p.field for p in study.problems] == [paths[2].name]
    volume = study.volumes[0]
    assert volume.array.shape == (5, 256, 256) and study.series[0].files[2] == ""
    for k in (0, 1, 3, 4):  # slices 0 and 1 were read before slice 2 failed, and read again
        np.testing.assert_array_equal(volume.array[k], stack[k].astype(np.float32))
    np.testing.assert_allclose(volume.array[2], (stack[1].astype(np.float32) + stack[3]) / 2)


@pytest.mark.parametrize(
    "syntax, stored, signed",
    [
        ("ExplicitVRLittleEndian", 12, 0),
        ("ExplicitVRLittleEndian", 12, 1),
        ("ImplicitVRLittleEndian", 12, 1),
        ("ExplicitVRBigEndian", 12, 0),
        ("ExplicitVRBigEndian", 16, 1),
        ("ExplicitVRLittleEndian", 16, 1),
    ],
)
def test_uncompressed_pixels_equal_pydicom_with_unused_bits_and_signs(tmp_path, syntax, stored, signed):
    """The fast path for uncompressed data masks (or sign-extends) the bits above BitsStored as pydicom does."""
    import pydicom.uid

    _, paths, _ = _write_series(tmp_path, n=3, slope=2.0)
    rng = np.random.default_rng(stored + signed)
    for p in paths:
        ds = pydicom.dcmread(p)
        raw = rng.integers(0, 65536, size=(ds.Rows, ds.Columns), dtype=np.uint16)  # garbage in the unused bits
        big = syntax == "ExplicitVRBigEndian"
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = stored, stored - 1, signed
        ds.PixelData = raw.astype(">u2" if big else "<u2").tobytes()
        ds.file_meta.TransferSyntaxUID = getattr(pydicom.uid, syntax)
        pydicom.dcmwrite(p, ds, implicit_vr=syntax.startswith("Implicit"), little_endian=not big, force_encoding=True)
    study = read_study(tmp_path)
    assert not study.problems
    for k, f in enumerate(study.series[0].files):
        expected = pydicom.dcmread(tmp_path / f).pixel_array.astype(np.float32) * 2.0 - 10
        np.testing.assert_array_equal(study.volumes[0].array[k], expected)


def test_jpeg2000_and_jpeg_lossless_series_are_read_with_the_pip_installed_plugins(tmp_path):
    """pylibjpeg-openjpeg encodes and decodes JPEG 2000; pylibjpeg-libjpeg decodes JPEG lossless/-LS."""
    from pydicom.uid import JPEG2000Lossless

    _, paths, stack = _write_series(tmp_path / "j2k", n=3, shape=(64, 64))
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(JPEG2000Lossless)
        ds.save_as(p, enforce_file_format=True)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == JPEG2000Lossless
    np.testing.assert_array_equal(read_study(tmp_path / "j2k").volumes[0].array, stack.astype(np.float32))


def test_synthetic_inconsistent_geometry(tmp_path):
    _, paths, _ = _write_series(tmp_path, n=5)
    ds = pydicom.dcmread(paths[4])
    ds.Rows, ds.Columns = 12, 16
    ds.save_as(paths[4], enforce_file_format=True)
    ds = pydicom.dcmread(paths[0])
    del ds.ImageOrientationPatient
    ds.save_as(paths[0], enforce_file_format=True)
    study = read_study(tmp_path)
    fields = {p.field: p.reason for p in study.problems}
    assert "size" in fields[paths[4].name] and "ImageOrientationPatient" in fields[paths[0].name]
    assert study.volumes[0].array.shape == (3, 16, 12)


def test_synthetic_mixed_orientation_and_duplicates(tmp_path):
    uid, paths, _ = _write_series(tmp_path, n=4)
    # A second orientation in the same series (a localiser-like plane) and a duplicate position.
    ds = pydicom.dcmread(paths[3])
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.save_as(paths[3], enforce_file_format=True)
    ds = pydicom.dcmread(paths[2])
    ds.ImagePositionPatient = pydicom.dcmread(paths[1]).ImagePositionPatient
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "dup", enforce_file_format=True)
    study = read_study(tmp_path)
    assert len(study.volumes) == 2 and all(v.series_uid == uid for v in study.volumes)
    main = max(study.volumes, key=lambda v: v.array.shape[0])
    assert main.array.shape[0] == 3
    assert any("dup" in w and "duplicates" in w for w in main.warnings)
    assert any("orientations" in w for w in main.warnings)


def test_nothing_readable_raises(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ImagingError) as info:
        read_study(tmp_path)
    assert "no readable image" in str(info.value)
    with pytest.raises(ImagingError):
        read_study(tmp_path / "absent")


def test_kind_override(tmp_path):
    uid, _, _ = _write_series(tmp_path, description="cor pd", tr=3000, te=30)
    assert read_study(tmp_path).volumes[0].kind is SeriesKind.unknown
    assert read_study(tmp_path, kinds={"COR PD": "fluid"}).volumes[0].kind is SeriesKind.fluid
    assert read_study(tmp_path, kinds={uid: "t1"}).volumes[0].kind is SeriesKind.t1
    study = read_study(tmp_path, kinds={"nothing": "t1"})
    assert any("matches no series" in w for w in study.warnings)
    with pytest.raises(InputError):
        read_study(tmp_path, kinds={uid: "t2"})


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"ScanningSequence": "SE", "RepetitionTime": 579, "EchoTime": 6.2, "SeriesDescription": "t1_tse_cor"}, "t1"),
        ({"ScanningSequence": ["SE", "IR"], "InversionTime": 150, "RepetitionTime": 4000, "EchoTime": 40}, "fluid"),
        ({"RepetitionTime": 3000, "EchoTime": 35, "ScanOptions": ["FS", "PFP"]}, "fluid"),
        ({"RepetitionTime": 3000, "EchoTime": 35, "SeriesDescription": "pd_spair_cor"}, "fluid"),
        ({"RepetitionTime": 3000, "EchoTime": 90, "SeriesDescription": "t2_tse_cor"}, "unknown"),
        ({"ScanningSequence": "GR\\IR", "InversionTime": 900, "RepetitionTime": 2000, "EchoTime": 3}, "t1"),
        ({"SeriesDescription": "COR STIR"}, "fluid"),
        ({"SeriesDescription": "T2 FS COR"}, "fluid"),
        ({"SeriesDescription": "t1 fs post"}, "t1"),
        ({}, "unknown"),
    ],
)
def test_classify(headers, kind):
    found, reason = classify(headers)
    assert found.value == kind and reason


def test_classify_description_file_names():
    assert classify_description("1013_STIR")[0] is SeriesKind.fluid
    assert classify_description("1013_T1W")[0] is SeriesKind.t1
    assert classify_description("1013_normal_marrow")[0] is SeriesKind.unknown


def test_nifti_with_non_finite_or_complex_values(tmp_path):
    import nibabel as nib

    data = np.ones((20, 20, 5), np.float32)
    data[0, :5, 0] = np.nan
    data[1, 0, 1] = np.inf
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 4.0, 1.0])), str(tmp_path / "some_nan.nii.gz"))
    volume = read_nifti(tmp_path / "some_nan.nii.gz")
    assert np.isfinite(volume.array).all() and volume.array.min() == 0.0
    assert any("6 voxels" in w and "NaN or infinite" in w for w in volume.warnings), volume.warnings
    nib.save(nib.Nifti1Image(np.full((20, 20, 5), np.nan, np.float32), np.eye(4)), str(tmp_path / "all_nan.nii.gz"))
    with pytest.raises(ImagingError) as caught:
        read_nifti(tmp_path / "all_nan.nii.gz")
    assert "no voxel has a finite value" in str(caught.value.problems)
    nib.save(nib.Nifti1Image(np.ones((20, 20, 5), np.complex64), np.eye(4)), str(tmp_path / "cplx.nii.gz"))
    with pytest.raises(ImagingError) as caught:
        read_nifti(tmp_path / "cplx.nii.gz")
    assert "complex-valued image" in str(caught.value.problems)
