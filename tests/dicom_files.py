"""DICOM MR slices written for the tests (pydicom, explicit VR little endian)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from hipdx.imaging.volume import Volume


def write_mr_slice(path: Path, pixels: np.ndarray, *, series_uid: str, k: int, orientation: Sequence[float],
                   position: Sequence[float], spacing: Sequence[float], bits_stored: int = 16,
                   **headers: Any) -> Path:
    """One MR image slice: ``pixels`` (uint16) at ``position``, SOP UID derived from the series and ``k``.

    ``headers`` (DICOM keywords) are set last, so they can override anything.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality = series_uid, "MR"
    ds.InstanceNumber = k + 1
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    for key, value in headers.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dicom(folder: Path, vol: Volume, description: str, **headers: Any) -> None:
    """``vol`` as a DICOM MR series (12-bit stored values) with ``headers`` set on every slice."""
    folder.mkdir(parents=True)
    uid = generate_uid(entropy_srcs=[str(folder)])
    column, row = (vol.affine[:3, a] / np.linalg.norm(vol.affine[:3, a]) for a in (0, 1))
    stored = np.clip(np.rint(vol.array), 0, 4095).astype(np.uint16)
    spacing = [float(np.linalg.norm(vol.affine[:3, 1])), float(np.linalg.norm(vol.affine[:3, 0]))]
    for k in range(stored.shape[0]):
        write_mr_slice(folder / f"IM{k + 1:04d}.dcm", stored[k], series_uid=uid, k=k,
                       orientation=np.concatenate([column, row]), position=vol.to_patient(np.array([k, 0, 0])),
                       spacing=spacing, bits_stored=12, SeriesDescription=description,
                       SliceThickness=float(np.linalg.norm(vol.affine[:3, 2])), **headers)
