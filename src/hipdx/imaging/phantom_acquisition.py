"""The phantom's acquisition: the coronal grid and its supersampling, bias field, texture, Rician noise, DICOM files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


#: Root of the phantom's UIDs (pydicom's root for generated UIDs); entropy makes them deterministic.
UID_PREFIX = pydicom.uid.PYDICOM_ROOT_UID


# Supersampling per voxel: in-plane n x n, through-slice m.
_IN_PLANE = 2


_THROUGH = 5


@dataclass(frozen=True)
class Grid:
    slices: int
    rows: int
    cols: int
    pixel_mm: float
    spacing_mm: float
    thickness_mm: float

    @property
    def affine(self) -> np.ndarray:
        """Coronal: columns to the patient's left (+x), rows to the feet (-z), slices posterior (+y)."""
        a = np.zeros((4, 4))
        a[0, 0] = self.pixel_mm
        a[2, 1] = -self.pixel_mm
        a[1, 2] = self.spacing_mm
        a[:3, 3] = [-(self.cols - 1) / 2 * self.pixel_mm, -(self.slices - 1) / 2 * self.spacing_mm,
                    (self.rows - 1) / 2 * self.pixel_mm]
        a[3, 3] = 1
        return a

    def points(self, kji: np.ndarray) -> np.ndarray:
        ijk = kji[:, ::-1]
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def box(self, low: np.ndarray, high: np.ndarray) -> tuple[slice, slice, slice]:
        """Index ranges (k, j, i) of the voxels whose centres lie in an LPS box."""
        inv = np.linalg.inv(self.affine)
        corners = np.array([[x, y, z, 1] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
        ijk = corners @ inv.T
        lo = np.floor(ijk.min(axis=0)[:3]).astype(int)
        hi = np.ceil(ijk.max(axis=0)[:3]).astype(int) + 1
        shape = (self.cols, self.rows, self.slices)
        i, j, k = (slice(max(0, lo[a]), min(shape[a], hi[a])) for a in range(3))
        return k, j, i

    def sub_offsets(self) -> np.ndarray:
        """(n, 3) offsets in (k, j, i) index units of the samples inside one voxel."""
        plane = (np.arange(_IN_PLANE) + 0.5) / _IN_PLANE - 0.5
        through = ((np.arange(_THROUGH) + 0.5) / _THROUGH - 0.5) * self.thickness_mm / self.spacing_mm
        k, j, i = np.meshgrid(through, plane, plane, indexing="ij")
        return np.column_stack([k.ravel(), j.ravel(), i.ravel()])


def coil_bias_field(grid: Grid, rng: np.random.Generator, bias: float) -> np.ndarray:
    """Smooth multiplicative field in [1 - bias, 1 + bias], stronger on one side (coil sensitivity)."""
    k = np.linspace(-1, 1, grid.slices)[:, None, None]
    j = np.linspace(-1, 1, grid.rows)[None, :, None]
    i = np.linspace(-1, 1, grid.cols)[None, None, :]
    c = rng.uniform(-1, 1, size=6)
    field_ = (0.8 + 0.2 * abs(c[0])) * i + 0.4 * c[1] * j + 0.3 * c[2] * k + 0.3 * c[3] * i * j + 0.3 * c[4] * j**2 + 0.2 * c[5] * i**2
    field_ = field_ - field_.mean()
    return (1.0 + bias * field_ / np.abs(field_).max()).astype(np.float32)


def marrow_texture(grid: Grid, rng: np.random.Generator, amount: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    noise = rng.standard_normal((grid.slices, grid.rows, grid.cols), dtype=np.float32)
    smooth = gaussian_filter(noise, sigma=(0, 1.2, 1.2))
    return 1.0 + amount * smooth / smooth.std()


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    real = signal + rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    imag = rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    return np.sqrt(real * real + imag * imag)


def write_series(folder: Path, stored: np.ndarray, grid: Grid, *, kind: str, uids: dict[str, str],
                  entropy: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    affine = grid.affine
    is_stir = kind == "fluid"
    for k in range(grid.slices):
        sop_uid = generate_uid(prefix=UID_PREFIX, entropy_srcs=entropy + [kind, str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["DERIVED", "PRIMARY", "M"]
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.Modality = "MR"
        ds.Manufacturer = "hipdx phantom"
        ds.PatientName = "PHANTOM^HIP"
        ds.PatientID = f"PHANTOM-{uids['seed']}"
        ds.StudyInstanceUID = uids["study"]
        ds.SeriesInstanceUID = uids[kind]
        ds.FrameOfReferenceUID = uids["frame"]
        ds.StudyDescription = "HIP PHANTOM"
        ds.SeriesNumber = 3 if is_stir else 2
        ds.InstanceNumber = k + 1
        ds.BodyPartExamined = "HIP"
        ds.MagneticFieldStrength = 1.5
        ds.MRAcquisitionType = "2D"
        if is_stir:
            ds.SeriesDescription = ds.ProtocolName = "t2_tirm_cor"
            ds.ScanningSequence = ["SE", "IR"]
            ds.SequenceVariant = ["SK", "SP", "MP"]
            ds.InversionTime = 160
            ds.RepetitionTime = 4500
            ds.EchoTime = 41
        else:
            ds.SeriesDescription = ds.ProtocolName = "t1_tse_cor"
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = ["SK", "SP"]
            ds.RepetitionTime = 550
            ds.EchoTime = 9.1
        ds.ScanOptions = ""
        ds.SliceThickness = grid.thickness_mm
        ds.SpacingBetweenSlices = grid.spacing_mm
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [round(float(v), 4) for v in affine[:3, :3] @ [0, 0, k] + affine[:3, 3]]
        ds.SliceLocation = round(float(affine[1, 3] + k * grid.spacing_mm), 4)
        ds.PixelSpacing = [grid.pixel_mm, grid.pixel_mm]
        ds.Rows, ds.Columns = grid.rows, grid.cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = stored[k].tobytes()
        ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
