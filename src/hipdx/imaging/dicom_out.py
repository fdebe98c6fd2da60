"""What the DICOM SEG and SR share: the algorithm's identity, codes, and the source instances they reference."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from hipdx._version import __version__
from hipdx.case.model import Side
from hipdx.errors import ImagingError, InputError
from hipdx.imaging import multiframe
from hipdx.imaging.results import Finding
from hipdx.imaging.volume import Volume
from hipdx.imaging.parameters import BAND_CUTOFF_MM

if TYPE_CHECKING:  # pragma: no cover
    from hipdx.imaging.series import Series, Study

#: Algorithm identification written into the SEG and the SR.
ALGORITHM_NAME = "hipdx"


#: Manufacturer and series numbers of what hipdx writes.
MANUFACTURER = "hipdx developers"


SEG_SERIES_NUMBER = 901


SR_SERIES_NUMBER = 902


#: The device observer of the SR: one UID per hipdx version (the same on every machine).
DEVICE_OBSERVER_UID = generate_uid(entropy_srcs=[ALGORITHM_NAME, __version__])


#: The private coding scheme of concepts that no bundled dictionary codes (PS3.3 8.2: a
#: private scheme designator starts with "99").
LOCAL_SCHEME = "99HIPDX"


LOCAL_SCHEME_NAME = "hipdx local concepts"


#: code value (at most 16 characters) -> meaning.
LOCAL_CODES: dict[str, str] = {
    "subchondral-band": "Subchondral low-signal band",
    "band-thickness": "Subchondral band thickness",
    "band-cutoff": f"Subchondral band thickness against the {BAND_CUTOFF_MM:g} mm cut-off",
    "below-cutoff": "Below the cut-off",
    "at-cutoff": "At or above the cut-off",
    "edema-fraction": "Edema fraction of femoral head and neck",
    "edema-signal": "Edema signal relative to normal marrow",
    "extent-none": "No edema",
    "extent-focal": "Focal edema",
    "extent-head": "Edema of the femoral head",
    "extent-neck": "Edema of the femoral neck",
    "extent-head-neck": "Edema of the femoral head and neck",
    "extent-trochant": "Edema extending to the intertrochanteric region",
    "radius-other": "Taken from the contralateral femoral head",
}


LATERALITY = {Side.right: codes.SCT.Right, Side.left: codes.SCT.Left}


def local_code(value: str) -> Code:
    """The ``99HIPDX`` code ``value`` (one of :data:`LOCAL_CODES`)."""
    return Code(value, LOCAL_SCHEME, LOCAL_CODES[value])


def segment_tracking_id(side: Side, finding: Finding) -> str:
    """Tracking identifier of a finding, the same in the SEG segment and the SR group."""
    return f"{ALGORITHM_NAME} {side.value} {finding.value}"


def series_of(study: Study, volume: Volume) -> Series:
    """The series of ``study`` whose volume is ``volume`` (as returned by :func:`study_masks`)."""
    for series in study.series:
        if series.volume is volume or (volume.series_uid and series.volume.series_uid == volume.series_uid):
            return series
    raise ImagingError(f"the volume {volume.description or volume.source!r} is not a series of the study {study.source}")


def source_datasets(study: Study, series: Series) -> list[pydicom.Dataset | None]:
    """The pydicom datasets of the files of ``series``, in the slice order of its volume.

    A slice filled in for a missing one (``""`` in ``Series.files``) gives ``None``.

    Raises
    ------
    ImagingError
        The series was read from NIfTI (there are no DICOM files to reference), or a file
        cannot be read again. The slices of a multi-frame file share its dataset.
    """
    root = Path(study.source)
    base = root if root.is_dir() else root.parent
    out: list[pydicom.Dataset | None] = []
    read: dict[str, pydicom.Dataset] = {}  # a multi-frame file holds several slices: read once
    for name in series.files:
        if not name:
            out.append(None)
            continue
        if name in read:
            out.append(read[name])
            continue
        path = base / name
        if path.name.lower().endswith((".nii", ".nii.gz")):
            raise ImagingError(f"{name}: a NIfTI image has no DICOM instances to reference; SEG and SR need DICOM")
        try:
            read[name] = pydicom.dcmread(path)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise ImagingError(f"{name}: cannot be read again for the DICOM export: {exc}") from None
        out.append(read[name])
    return out


def frame_numbers(source: list[pydicom.Dataset | None], volume: Volume) -> list[int | None]:
    """Per slice of ``volume``: its frame number (from 1) in its multi-frame source dataset, None
    for a single-frame source or a filled-in slice. A frame is matched by its position (0.05 mm).

    Raises
    ------
    ImagingError
        A slice matches no frame of its multi-frame source.
    """
    out: list[int | None] = []
    positions: dict[int, np.ndarray] = {}
    for k, ds in enumerate(source):
        if ds is None or int(ds.get("NumberOfFrames") or 1) <= 1:
            out.append(None)
            continue
        if id(ds) not in positions:
            positions[id(ds)] = np.array([f.position for f in multiframe.frames_of(ds)])
        distance = np.linalg.norm(positions[id(ds)] - volume.to_patient(np.array([k, 0, 0])), axis=1)
        frame = int(np.argmin(distance))
        if distance[frame] > 0.05:
            raise ImagingError(f"slice {k + 1} of {volume.description!r} matches no frame of its multi-frame file")
        out.append(frame + 1)
    return out


#: Type 2 attributes (present, possibly empty) that highdicom copies from the source images.
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
                 "AccessionNumber", "ReferringPhysicianName")


def with_type2_attributes(ds: pydicom.Dataset) -> pydicom.Dataset:
    """A shallow copy of ``ds`` with the type 2 patient and study attributes it lacks, empty."""
    missing = [k for k in _TYPE2_COPIED if k not in ds]
    if not missing:
        return ds
    out = ds.copy()
    for keyword in missing:
        setattr(out, keyword, "")
    return out


def existing_instances(datasets: list[pydicom.Dataset | None]) -> list[pydicom.Dataset]:
    """Each distinct dataset once (a multi-frame file stands for several slices), in order."""
    distinct = {id(ds): ds for ds in datasets if ds is not None}
    found = [with_type2_attributes(ds) for ds in distinct.values()]
    if not found:
        raise ImagingError("no source DICOM instances to reference")
    return found


def no_fluid_series() -> ImagingError:
    return ImagingError(
        "the study has no fluid-sensitive series (STIR or fat-saturated T2/PD) covering the hips: "
        "bone marrow edema, acetabular edema and effusion were not measured, so there is nothing to export"
    )


def declare_local_scheme(dataset: pydicom.Dataset) -> None:
    item = pydicom.Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = LOCAL_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = MANUFACTURER
    item.CodingSchemeVersion = __version__
    dataset.CodingSchemeIdentificationSequence = [item]


def write_dicom(dataset: pydicom.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write a SEG or SR built here as a DICOM file (with its file meta information).

    Raises
    ------
    InputError
        ``path`` is a folder or cannot be written (the message names it and why).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder; give a file name such as {path / 'out.dcm'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset.save_as(path, enforce_file_format=True)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
