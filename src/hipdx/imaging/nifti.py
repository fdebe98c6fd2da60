"""NIfTI files read as volumes, their RAS affine converted to DICOM patient LPS."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hipdx.errors import ImagingError, Problem
from hipdx.imaging import validate
from hipdx.imaging.volume import SeriesKind, Volume
from hipdx.imaging.classify import classify_description, describe_acquisition
from hipdx.imaging.validate import one_line


_NIFTI_SUFFIXES = (".nii", ".nii.gz")


_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


@contextlib.contextmanager
def _nibabel_log(messages: list[str]) -> Iterator[None]:
    """Collect what nibabel logs (header fixes such as "pixdim[1,2,3] should be positive") into
    ``messages`` instead of printing it on stderr."""
    from nibabel.imageglobals import logger

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(one_line(record.getMessage()))

    handler, handlers, propagate = Collect(), list(logger.handlers), logger.propagate
    logger.handlers, logger.propagate = [handler], False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = handlers, propagate


def read_nifti(path: str | os.PathLike[str], kind: SeriesKind | str | None = None) -> Volume:
    """One NIfTI file as a :class:`Volume` (array (k, j, i), affine to LPS mm).

    The kind comes from the file name (:func:`classify_description`) unless given.
    A 4-D file keeps its first volume (the only one read), with a warning. The header's claims
    (dimensions, voxel sizes, affine, scaling) are checked before any voxel is read
    (:func:`hipdx.imaging.validate.nifti_header_problems`). NaN or infinite voxels are read as 0,
    with a warning, and their share is the volume's ``damaged_share``.

    Raises
    ------
    ImagingError
        The file is not a regular file or too large, its header is refused, or nibabel cannot
        read it (the problem names the file and the header field).
    """
    import nibabel as nib

    path = Path(path)
    refused = validate.file_problem(path)
    if refused is not None:
        raise ImagingError(f"cannot read NIfTI file {path.name}", [Problem(str(path), refused)])
    caught: list[warnings.WarningMessage] = []
    fixed: list[str] = []
    try:
        # nibabel's warnings, and the header fixes it logs on stderr, are the file's notes.
        with warnings.catch_warnings(record=True) as caught, _nibabel_log(fixed):
            warnings.simplefilter("always")
            image = nib.load(str(path))
        if np.issubdtype(image.get_data_dtype(), np.complexfloating):
            raise ImagingError(
                f"cannot read NIfTI file {path.name}",
                [Problem(str(path), "complex-valued image: give the magnitude image")],
            )
        problems = validate.nifti_header_problems(image.header, image.affine)
        if problems:
            raise ImagingError(f"cannot read NIfTI file {path.name}: its header is refused",
                               [Problem(str(path), p) for p in problems])
        shape = image.shape
        first = image.slicer[..., :1] if len(shape) == 4 else image
        with np.errstate(all="ignore"):  # overflow in the file's own scaling: found as non-finite below
            data = np.asarray(first.get_fdata(dtype=np.float32))
    except ImagingError:
        raise
    except Exception as exc:  # nibabel raises many types for broken files
        raise ImagingError(f"cannot read NIfTI file {path.name}", [Problem(str(path), str(exc))]) from None
    notes: list[str] = list(dict.fromkeys([one_line(str(w.message)) for w in caught] + fixed))
    damaged = _zero_non_finite(data, path, notes)
    if data.ndim == 4:
        if shape[3] > 1:
            notes.append(f"4-D file with {shape[3]} volumes: the first is used")
        data = data[..., 0]
    elif data.ndim == 2:
        data = data[..., np.newaxis]
    elif data.ndim != 3:  # refused with the header already (validate.nifti_header_problems)
        raise ImagingError(f"cannot read NIfTI file {path.name}", [Problem(str(path), f"{data.ndim}-D image")])
    name = path.name[: -len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem
    if kind is None:
        found, reason = classify_description(name)
    else:
        found, reason = SeriesKind(kind), "given by the user"
    suppression, agent = describe_acquisition({"SeriesDescription": name})
    return Volume(
        array=np.ascontiguousarray(data.transpose(2, 1, 0)),
        affine=_RAS_TO_LPS @ np.asarray(image.affine, dtype=float),
        kind=found,
        description=name,
        source=str(path),
        warnings=tuple(notes) + (f"kind: {reason}",),
        fat_suppression=suppression,
        contrast_agent=agent,
        damaged_share=damaged,
    )


def _zero_non_finite(data: np.ndarray, path: Path, notes: list[str]) -> float:
    """NaN or infinite voxels set to 0 in place, noted; their share of the voxels (the damaged share).

    Raises
    ------
    ImagingError
        No voxel has a finite value.
    """
    damaged = 0.0
    finite = np.isfinite(data)
    if not finite.all():
        if not finite.any():
            raise ImagingError(f"cannot read NIfTI file {path.name}", [Problem(str(path), "no voxel has a finite value")])
        bad = int(data.size - np.count_nonzero(finite))
        damaged = bad / data.size
        notes.append(f"{bad} voxels ({100 * damaged:.1f}%) were NaN or infinite: read as 0 (no signal)")
        np.logical_not(finite, out=finite)
        data[finite] = 0
    del finite
    return damaged
