"""Fuzz targets of the imaging readers (issue 12): damaged DICOM and NIfTI headers give either a
volume fit for analysis or an ImagingError, never another exception and never a warning.

Bounded and deterministic (``derandomize``): 25 examples each by default. A longer run:
``HIPDX_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_imaging.py`` (``make fuzz-imaging``);
its figures are in docs/reliability.md ("Imaging readers").
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pydicom.config
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydicom.uid import generate_uid

from dicom_files import write_mr_slice
from hipdx.errors import ImagingError
from hipdx.imaging import validate
from hipdx.imaging.io import read_nifti, read_study
from hipdx.imaging.volume import Volume

EXAMPLES = int(os.environ.get("HIPDX_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _fit_for_analysis(volume: Volume) -> None:
    """What every analysis step assumes of a volume it is given."""
    assert volume.array.dtype == np.float32 and volume.array.ndim == 3 and volume.array.size > 0
    assert np.isfinite(volume.array).all()
    assert not validate.volume_problems(volume.array.shape)
    assert np.isfinite(volume.affine).all()
    assert all(s > 0 for s in volume.spacing_mm)
    assert abs(np.linalg.det(volume.affine[:3, :3])) > 0


def _outcome(read: Any) -> None:
    """``read()`` gives volumes fit for analysis or an ImagingError; any warning is an error here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            result = read()
        except ImagingError as exc:
            assert str(exc)
            event("ImagingError")
            return
    event("read")
    volumes = result.volumes if hasattr(result, "volumes") else [result]
    for volume in volumes:
        _fit_for_analysis(volume)
    texts = list(getattr(result, "all_warnings", ())) + [w for v in volumes for w in v.warnings]
    assert not [t for t in texts if "encountered" in t], texts  # a numpy RuntimeWarning recorded as a note


# --------------------------------------------------------------------------------------
# DICOM headers
# --------------------------------------------------------------------------------------

_N = 4


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "series"
    folder.mkdir()
    uid = generate_uid(entropy_srcs=["fuzz"])
    rng = np.random.default_rng(0)
    for k in range(_N):
        write_mr_slice(folder / f"IM{k}.dcm", rng.integers(0, 1000, (16, 12), dtype=np.uint16), series_uid=uid, k=k,
                       orientation=(1.0, 0, 0, 0, 0, -1.0), position=(-20.0, 30.0 + 5.0 * k, 40.0),
                       spacing=(0.8, 0.7), SeriesDescription="t1_tse_cor", RepetitionTime=500.0, EchoTime=10.0,
                       SliceThickness=4.0, RescaleSlope=1.0, RescaleIntercept=0.0)
    return folder


_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-1e6, 1e6).map(lambda v: f"{v:.6g}"),
    st.sampled_from(["0", "-0", "1e-9", "1e38", "-1e308", "nan", "inf", "-inf", "", " ", "1e", "abc", "1,5"]),
)
#: Decimal-string tags and how many values they hold.
_DS_TAGS = {"PixelSpacing": 2, "ImageOrientationPatient": 6, "ImagePositionPatient": 3, "RescaleSlope": 1,
            "RescaleIntercept": 1, "SliceThickness": 1, "SpacingBetweenSlices": 1}


@st.composite
def _mutation(draw: st.DrawFn) -> tuple[str, Any, list[int]]:
    keyword = draw(st.sampled_from([*_DS_TAGS, "Rows", "Columns", "NumberOfFrames"]))
    if keyword in ("Rows", "Columns"):
        value: Any = draw(st.integers(0, 65535))
    elif keyword == "NumberOfFrames":
        value = draw(st.sampled_from(["0", "-1", "2", "1000000", "x", ""]))
    elif draw(st.booleans()):  # a plausible value, scaled or perturbed
        base = {"PixelSpacing": [0.8, 0.7], "ImageOrientationPatient": [1, 0, 0, 0, 0, -1],
                "ImagePositionPatient": [-20, 30, 40]}.get(keyword, [1.0])
        factor = draw(st.sampled_from([-1.0, 0.0, 1e-9, 1e-3, 0.999, 1.001, 1e3, 1e9, 1e38]))
        value = [f"{v * factor:.6g}" for v in base]
    else:
        count = draw(st.sampled_from([_DS_TAGS[keyword], _DS_TAGS[keyword], 0, 1, 7]))
        value = draw(st.lists(_numbers, min_size=count, max_size=count))
    slices = draw(st.sampled_from([list(range(_N)), [0], [_N - 1], [1, 2]]))
    return keyword, value, slices


@FUZZ
@given(mutations=st.lists(_mutation(), min_size=1, max_size=3))
def test_damaged_dicom_headers_give_a_valid_volume_or_an_imaging_error(series: Path, mutations: list) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "series"
        shutil.copytree(series, folder)
        for keyword, value, slices in mutations:
            for k in slices:
                path = folder / f"IM{k}.dcm"
                ds = pydicom.dcmread(path)
                try:
                    with pydicom.config.disable_value_validation(), warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # writing the damage is not under test
                        setattr(ds, keyword, value)
                        ds.save_as(path, enforce_file_format=True)
                except (ValueError, TypeError, OverflowError, struct.error):
                    assume(False)  # pydicom cannot write this value at all
        _outcome(lambda: read_study(folder))


# --------------------------------------------------------------------------------------
# NIfTI headers
# --------------------------------------------------------------------------------------

_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.sampled_from([0.0, 1.0, -1.0, 0.8, 4.0, 1e-9, 1e9]))


@FUZZ
@given(
    dim=st.one_of(
        st.lists(st.one_of(st.integers(-2, 40), st.sampled_from([512, 2048, 4096, 32767])), min_size=8, max_size=8),
        st.tuples(st.sampled_from([2, 3, 4]), st.integers(1, 24), st.integers(1, 24), st.integers(1, 8),
                  st.integers(1, 3)).map(lambda d: [*d, 1, 1, 1]),
    ),
    pixdim=st.one_of(st.lists(_floats, min_size=8, max_size=8),
                     st.lists(st.sampled_from([1.0, 0.8, 4.0, -1.0]), min_size=8, max_size=8)),
    datatype=st.sampled_from([2, 4, 8, 16, 32, 64, 256, 512, 768, 0, 1, 2304]),
    scaling=st.tuples(_floats, _floats),
    codes=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    srow=st.lists(_floats, min_size=12, max_size=12),
    quatern=st.lists(_floats, min_size=6, max_size=6),
    data_bytes=st.one_of(st.integers(0, 40_000), st.just(24 * 24 * 8 * 3 * 16)),
    gzipped=st.booleans(),
)
def test_damaged_nifti_headers_give_a_valid_volume_or_an_imaging_error(
        dim: list[int], pixdim: list[float], datatype: int, scaling: tuple[float, float], codes: tuple[int, int],
        srow: list[float], quatern: list[float], data_bytes: int, gzipped: bool) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((8, 8, 4))
    fields = header.structarr
    fields["dim"] = dim
    fields["pixdim"] = pixdim
    fields["datatype"] = datatype
    fields["bitpix"] = 32
    fields["scl_slope"], fields["scl_inter"] = scaling
    fields["qform_code"], fields["sform_code"] = codes
    fields["srow_x"], fields["srow_y"], fields["srow_z"] = srow[:4], srow[4:8], srow[8:]
    (fields["quatern_b"], fields["quatern_c"], fields["quatern_d"],
     fields["qoffset_x"], fields["qoffset_y"], fields["qoffset_z"]) = quatern
    content = header.binaryblock + b"\0" * 4 + np.random.default_rng(data_bytes).bytes(data_bytes)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / ("fuzz_T1.nii.gz" if gzipped else "fuzz_T1.nii")
        if gzipped:
            import gzip

            content = gzip.compress(content, compresslevel=1)
        path.write_bytes(content)
        _outcome(lambda: read_nifti(path))
        _outcome(lambda: read_study(Path(scratch)))
