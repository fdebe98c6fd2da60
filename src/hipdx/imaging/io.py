"""Read an MRI study (a folder of DICOM files, or NIfTI files) into :class:`Volume` objects.

DICOM files are grouped by SeriesInstanceUID (then by orientation when one series mixes
several), sorted by position along the slice normal, checked for gaps, duplicates and
inconsistent geometry, rescaled to stored values x RescaleSlope + RescaleIntercept and
classified as T1-weighted or fluid-sensitive from their headers. NIfTI files are read
with nibabel and their RAS affine converted to DICOM patient LPS.

Nothing that can be skipped stops the reading: an unreadable file, a file that is not
DICOM, an undecodable transfer syntax or an inconsistent slice is reported (file and
reason) in :attr:`Study.problems` or :attr:`Study.warnings` and the rest is read.
:class:`~hipdx.errors.ImagingError` is raised only when nothing readable is left.

Example
-------
>>> study = read_study("exam/")                       # doctest: +SKIP
>>> [(v.kind.value, v.array.shape) for v in study.volumes]  # doctest: +SKIP
[('t1', (47, 384, 384)), ('fluid', (47, 384, 384))]
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.datadict import tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

from hipdx.errors import ImagingError, InputError, Problem
from hipdx.imaging import multiframe, validate
from hipdx.imaging.volume import SeriesKind, Volume

__all__ = ["Series", "Study", "classify", "classify_description", "describe_acquisition", "read_nifti", "read_study",
           "volumes_of"]

#: Two slices closer than this along the normal are duplicates (mm).
DUPLICATE_TOLERANCE_MM = 0.05
#: Relative deviation of one slice step from the median step that counts as irregular.
GAP_TOLERANCE = 0.10
#: Direction cosines that differ by more than this are different orientations.
ORIENTATION_TOLERANCE = 1e-3
#: STIR inversion times: fat nulls at about T1_fat x ln 2, ~150-170 ms at 1.5 T, ~200-230 ms at 3 T.
STIR_INVERSION_TIME_MS = (80.0, 300.0)
#: T1-weighted spin echo: short TR and short TE.
T1_MAX_REPETITION_TIME_MS = 800.0
T1_MAX_ECHO_TIME_MS = 30.0

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class Series:
    """One series as read: its volume, the files of its slices and why it got its kind.

    ``files`` and ``sop_instance_uids`` follow the slice order of ``volume.array``; a slice
    filled in for a missing one has ``""`` in both.
    """

    volume: Volume
    files: tuple[str, ...]
    sop_instance_uids: tuple[str, ...]
    kind_reason: str


@dataclass(frozen=True)
class Study:
    """Everything read from one folder: the series, plus what was skipped and why.

    ``warnings`` are about the study (skipped files); each volume carries its own series
    warnings (gaps, duplicates); ``problems`` name each file that could not be used.
    """

    series: tuple[Series, ...]
    warnings: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    source: str = ""

    @property
    def volumes(self) -> tuple[Volume, ...]:
        return tuple(s.volume for s in self.series)

    @property
    def all_warnings(self) -> tuple[str, ...]:
        """Study warnings, series warnings (prefixed with the series) and problems, as text."""
        out = list(self.warnings)
        for s in self.series:
            out += [f"{s.volume.description}: {w}" for w in s.volume.warnings]
        out += [str(p) for p in self.problems]
        return tuple(out)


def volumes_of(study: Study, kind: SeriesKind | str) -> list[Volume]:
    """The volumes of one kind ("t1", "fluid", "unknown"), in reading order."""
    wanted = SeriesKind(kind)
    return [v for v in study.volumes if v.kind is wanted]


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------

_FAT_SAT_WORDS = {"fs", "fatsat", "fsat", "spair", "spir", "chess", "fatsup", "water", "dixonw"}
_IR_WORDS = {"stir", "tirm", "tir"}


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def classify_description(text: str) -> tuple[SeriesKind, str]:
    """Kind of a series from its description or file name alone.

    STIR/TIRM -> fluid; T2 or PD with fat saturation (fs, fatsat, spair, spir) -> fluid;
    T1 -> t1 (a fat-saturated T1 is still T1); anything else -> unknown.

    >>> classify_description("t2_tirm_cor")[0].value
    'fluid'
    """
    tokens = _tokens(text)
    quoted = f"description {text!r}"
    if any(t in _IR_WORDS or t.startswith("stir") for t in tokens):
        return SeriesKind.fluid, f"{quoted} names STIR/TIRM"
    t2_or_pd = any(re.fullmatch(r"(t2(w|wi)?|pd(w|wi)?)(fs|spair)?", t) for t in tokens)
    fat_sat = any(t in _FAT_SAT_WORDS or re.fullmatch(r"(t2|pd)\w*fs", t) for t in tokens)
    if t2_or_pd and fat_sat:
        return SeriesKind.fluid, f"{quoted} names a fat-saturated T2/PD"
    if any(re.fullmatch(r"t1(w|wi|tse|se|fse|fl2d|vibe)?", t) for t in tokens):
        return SeriesKind.t1, f"{quoted} names T1"
    if t2_or_pd:
        return SeriesKind.unknown, f"{quoted} names T2/PD without fat saturation"
    return SeriesKind.unknown, f"{quoted} names no known weighting"


def _number(headers: Any, keyword: str) -> float | None:
    value = headers.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _words(headers: Any, keyword: str) -> set[str]:
    value = headers.get(keyword)
    if value is None:
        return set()
    if isinstance(value, str):
        return {w.strip().upper() for w in value.split("\\") if w.strip()}
    return {str(w).strip().upper() for w in value if str(w).strip()}


def _fat_sat_option(headers: Any) -> bool:
    """ScanOptions says fat saturation (FS, SFS, FAT...)."""
    return any(o in {"FS", "SFS"} or "FAT" in o for o in _words(headers, "ScanOptions"))


def classify(headers: Mapping[str, Any] | pydicom.Dataset) -> tuple[SeriesKind, str]:
    """T1-weighted or fluid-sensitive, from the acquisition headers of one slice.

    Parameters
    ----------
    headers
        A pydicom ``Dataset`` or a mapping of DICOM keywords to values
        (ScanningSequence, SequenceVariant, ScanOptions, InversionTime, RepetitionTime,
        EchoTime in ms, SeriesDescription, ProtocolName, ContrastBolusAgent).

    Returns
    -------
    (SeriesKind, reason)
        The headers decide when they are conclusive: inversion recovery with TI 80-300 ms
        is STIR (fluid); TR < 800 ms and TE < 30 ms is T1; a T2 (TE >= 30 ms) or PD
        (TR >= 1500 ms) with fat saturation (ScanOptions FS, or fs/spair in the
        description) is fluid-sensitive. Otherwise the description decides
        (:func:`classify_description`).

    Example
    -------
    >>> classify({"ScanningSequence": "SE\\\\IR", "InversionTime": 160, "RepetitionTime": 4000,
    ...           "EchoTime": 40})[0].value
    'fluid'
    """
    description = str(headers.get("SeriesDescription") or headers.get("ProtocolName") or "")
    by_text, text_reason = classify_description(description) if description else (SeriesKind.unknown, "")
    sequence = _words(headers, "ScanningSequence") | _words(headers, "SequenceVariant")
    ti, tr, te = (_number(headers, k) for k in ("InversionTime", "RepetitionTime", "EchoTime"))
    fat_sat_header = _fat_sat_option(headers)
    fat_sat_text = any(t in _FAT_SAT_WORDS for t in _tokens(description)) or by_text is SeriesKind.fluid

    by_header, header_reason = SeriesKind.unknown, ""
    if "IR" in sequence or (ti is not None and ti > 0):
        if ti is not None and STIR_INVERSION_TIME_MS[0] <= ti <= STIR_INVERSION_TIME_MS[1]:
            by_header, header_reason = SeriesKind.fluid, f"inversion recovery with TI {ti:g} ms (STIR)"
        elif ti is not None and ti >= 400 and te is not None and te < T1_MAX_ECHO_TIME_MS:
            by_header, header_reason = SeriesKind.t1, f"inversion-prepared T1 (TI {ti:g} ms, TE {te:g} ms)"
    if by_header is SeriesKind.unknown and tr is not None and te is not None:
        if tr < T1_MAX_REPETITION_TIME_MS and te < T1_MAX_ECHO_TIME_MS:
            by_header, header_reason = SeriesKind.t1, f"TR {tr:g} ms and TE {te:g} ms (T1-weighted)"
        elif te >= T1_MAX_ECHO_TIME_MS or tr >= 1500:
            weighting = "T2" if te >= T1_MAX_ECHO_TIME_MS else "PD"
            if fat_sat_header or fat_sat_text:
                where = "ScanOptions" if fat_sat_header else "description"
                by_header = SeriesKind.fluid
                header_reason = f"TR {tr:g} ms, TE {te:g} ms ({weighting}) with fat saturation ({where})"
            else:
                header_reason = f"TR {tr:g} ms, TE {te:g} ms ({weighting}) without fat saturation"

    if by_header is not SeriesKind.unknown:
        kind, reason = by_header, header_reason
        if text_reason and by_text not in (SeriesKind.unknown, by_header):
            reason += f"; {text_reason}, the headers win"
        elif text_reason and by_text is by_header:
            reason += f"; {text_reason}"
    elif by_text is not SeriesKind.unknown:
        kind, reason = by_text, text_reason + (f"; {header_reason}" if header_reason else "")
    else:
        kind = SeriesKind.unknown
        reason = "; ".join(r for r in (header_reason, text_reason) if r) or "no sequence headers or description"
    agent = headers.get("ContrastBolusAgent")
    if agent:
        reason += f"; after contrast ({agent})"
    return kind, reason


#: Description words that say the series was acquired after a contrast agent.
_CONTRAST_WORDS = {"post", "postcontrast", "gd", "gad", "gado", "contrast", "km"}


def describe_acquisition(headers: Mapping[str, Any] | pydicom.Dataset) -> tuple[str | None, str | None]:
    """Fat suppression and contrast agent of a series, from the headers of one slice.

    Returns
    -------
    (fat_suppression, contrast_agent)
        ``fat_suppression`` is "STIR" (inversion recovery with a TI of 80-300 ms, or STIR/TIRM
        in the description), "fat-saturated" (ScanOptions FS/SFS or a fat-saturation word such
        as fs, spair or water in the description) or None. ``contrast_agent`` is
        ContrastBolusAgent, "contrast" when only the description says so (post, gd, contrast),
        or None.

    >>> describe_acquisition({"SeriesDescription": "COR T1 FS POST GD"})
    ('fat-saturated', 'contrast')
    """
    description = str(headers.get("SeriesDescription") or headers.get("ProtocolName") or "")
    tokens = _tokens(description)
    ti = _number(headers, "InversionTime")
    suppression = None
    if ti is not None and ti > 0:  # the inversion time decides over the description
        stir = STIR_INVERSION_TIME_MS[0] <= ti <= STIR_INVERSION_TIME_MS[1]
    else:
        stir = any(t in _IR_WORDS or t.startswith("stir") for t in tokens)
    if stir:
        suppression = "STIR"
    elif (
        _fat_sat_option(headers)
        or any(t in _FAT_SAT_WORDS or re.fullmatch(r"(t1|t2|pd)\w*fs", t) for t in tokens)
    ):
        suppression = "fat-saturated"
    agent = str(headers.get("ContrastBolusAgent") or "").strip() or None
    if agent is None and any(t in _CONTRAST_WORDS for t in tokens):
        agent = "contrast"
    return suppression, agent


# --------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


@contextlib.contextmanager
def _nibabel_log(messages: list[str]) -> Iterator[None]:
    """Collect what nibabel logs (header fixes such as "pixdim[1,2,3] should be positive") into
    ``messages`` instead of printing it on stderr."""
    from nibabel.imageglobals import logger

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(_short(record.getMessage()))

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
    notes: list[str] = list(dict.fromkeys([_short(str(w.message)) for w in caught] + fixed))
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
    if data.ndim == 4:
        if shape[3] > 1:
            notes.append(f"4-D file with {shape[3]} volumes: the first is used")
        data = data[..., 0]
    elif data.ndim == 2:
        data = data[..., np.newaxis]
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


# --------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------


@dataclass
class _Slice:
    path: Path
    name: str  # path relative to the study root, for messages
    ds: pydicom.Dataset
    orientation: np.ndarray
    position: np.ndarray
    rows: int = 0
    columns: int = 0
    spacing: tuple[float, float] = (0.0, 0.0)  # PixelSpacing (row, column) in mm, rounded to 0.1 um
    series_uid: str = ""
    sop_instance_uid: str = ""
    instance_number: int = 0
    pixels: np.ndarray | None = None  # stored values as decoded (integers), before rescaling
    deferred_pixel_data: RawDataElement | None = None  # the PixelData element as dcmread left it, not yet read
    along_normal: float = 0.0
    # A frame of a multi-frame file: ``name`` says "FILE frame N", ``file`` is the file's path.
    file: str = ""
    frame: int | None = None  # index from 0
    headers: dict[str, Any] | None = None  # classic acquisition headers (multiframe.classic_headers)
    rescale: tuple[float, float] | None = None  # (slope, intercept), checked (validate.rescale_problems)
    source: _FrameSource | None = None  # the file's decoded frames, shared by its slices


class _FrameSource:
    """The pixel data of a multi-frame file, decoded once for all its frames."""

    def __init__(self, ds: pydicom.Dataset) -> None:
        self.ds = ds
        self.frames: np.ndarray | None = None
        self.failed = False


@dataclass
class _Reading:
    root: Path
    warnings: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root)) or path.name
        except ValueError:
            return str(path)


_GEOMETRY = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows", "Columns")
_TAG = {
    k: BaseTag(tag_for_keyword(k))  # a BaseTag is looked up as it is (an int goes through pydicom's Tag())
    for k in (*_GEOMETRY, "NumberOfFrames", "SeriesInstanceUID", "SOPInstanceUID", "InstanceNumber", "RescaleSlope",
              "RescaleIntercept", "SamplesPerPixel", "BitsAllocated", "BitsStored", "PixelRepresentation",
              "PhotometricInterpretation", "PixelData", "MediaStorageSOPClassUID")
}
#: Value representations read straight from the element's bytes (ASCII numbers and UIDs, binary integers).
_TEXT_VRS = frozenset({"DS", "IS", "UI", "CS"})
_BINARY_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}  # struct format of one value
#: Elements at least this long (the pixel data) are read only when their slice is put in the volume,
#: one slice at a time: holding the pixel data of every file at once (fresh memory for each file)
#: cost ~10 ms more on the 90-file benchmark study than reading it from the file when needed.
_DEFER_BYTES = 64 * 1024
#: Uncompressed transfer syntaxes: PixelData holds the stored values as they are (deflate is undone by dcmread).
_NATIVE_SYNTAXES = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian})


def _values(ds: pydicom.Dataset, keyword: str) -> tuple[Any, ...]:
    """All values of one header element as a tuple (empty when absent or empty).

    pydicom converts an element on first access, with validation: about 20 us each, more than
    parsing the whole file costs per element. Numbers and UIDs of an element not yet converted
    are read here from its bytes (ASCII text split at backslashes, or binary integers);
    anything else goes through pydicom's conversion.
    """
    elem = ds.get_item(_TAG[keyword])
    if elem is None:
        return ()
    if isinstance(elem, RawDataElement) and elem.value is not None:
        if elem.VR in _TEXT_VRS:
            text = elem.value.decode("ascii", "replace").strip(" \x00")
            return tuple(v.strip(" \x00") for v in text.split("\\")) if text else ()
        if elem.VR in _BINARY_VRS:
            code = _BINARY_VRS[elem.VR]
            count = len(elem.value) // struct.calcsize(code)
            return struct.unpack_from(f"{'<' if elem.is_little_endian else '>'}{count}{code}", elem.value)
    value = ds[_TAG[keyword]].value
    if value is None or value == "":
        return ()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return tuple(value)
    return (value,)


def _first(ds: pydicom.Dataset, keyword: str) -> Any:
    values = _values(ds, keyword)
    return values[0] if values else None


def _text(ds: pydicom.Dataset, keyword: str) -> str | None:
    """A header value as text, None when absent, empty or unreadable."""
    try:
        value = ds.get(keyword)
    except Exception:  # a damaged element: many types
        return None
    text = str(value).strip() if value is not None else ""
    return text or None


def _read_header(path: Path, reading: _Reading) -> _Slice | list[_Slice] | None:
    """The slice of one file (a list for a multi-frame file), or ``None`` with the reason noted."""
    name = reading.rel(path)
    if path.name.upper() == "DICOMDIR":
        reading.warnings.append(f"{name}: DICOMDIR index skipped (the image files are read directly)")
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES)
        except InvalidDicomError:
            reading.warnings.append(f"{name}: not a DICOM file, skipped")
            return None
        except Exception as exc:  # pydicom raises many types on truncated/corrupt files
            reading.problems.append(Problem(name, f"unreadable DICOM file ({type(exc).__name__}: {exc})"))
            return None
    for message in dict.fromkeys(_short(str(w.message)) for w in caught):
        reading.warnings.append(f"{name}: {message}")
    meta = getattr(ds, "file_meta", None)
    if meta is not None and _first(meta, "MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
        reading.warnings.append(f"{name}: DICOMDIR index skipped (the image files are read directly)")
        return None
    if _TAG["PixelData"] not in ds:
        # The file meta's SOP class when the dataset's own is damaged (its value is then junk).
        kinds = [ds.get("SOPClassUID"), meta.get("MediaStorageSOPClassUID") if meta is not None else None]
        names = [getattr(k, "name", str(k)) for k in kinds if k]
        kind = next((n for n in names if "Image Storage" in n), names[0] if names else "unknown SOP class")
        if "Image Storage" in kind:
            reading.problems.append(Problem(name, f"{kind} without readable pixel data (truncated or damaged file?); file skipped"))
        else:
            reading.warnings.append(f"{name}: no image ({_short(kind, 80)}), skipped")
        return None
    try:
        frame_count = _first(ds, "NumberOfFrames") or 1
        geometry = {k: _values(ds, k) for k in _GEOMETRY}
        rescale = {k: _values(ds, k) for k in ("RescaleSlope", "RescaleIntercept")}
    except Exception as exc:  # a malformed element: pydicom's conversion raises many types
        reading.problems.append(Problem(name, f"invalid header ({type(exc).__name__}: {exc}); file skipped"))
        return None
    refused = validate.frame_count_problems(frame_count)
    if refused:
        reading.problems.append(Problem(name, "; ".join(refused) + "; file skipped"))
        return None
    if int(frame_count) > 1:
        return _frame_slices(ds, path, name, reading)
    missing = [k for k, v in geometry.items() if not v]
    if missing:
        reading.problems.append(Problem(name, f"missing geometry ({', '.join(missing)}); file skipped"))
        return None
    refused = validate.slice_problems(
        orientation=geometry["ImageOrientationPatient"], position=geometry["ImagePositionPatient"],
        pixel_spacing=geometry["PixelSpacing"], rows=geometry["Rows"][0], columns=geometry["Columns"][0],
        slope=rescale["RescaleSlope"], intercept=rescale["RescaleIntercept"],
    )
    if refused:
        reading.problems.append(Problem(name, "; ".join(refused) + "; file skipped"))
        return None
    try:
        orientation = np.asarray([float(v) for v in geometry["ImageOrientationPatient"]], dtype=float)
        position = np.asarray([float(v) for v in geometry["ImagePositionPatient"]], dtype=float)
        spacing = tuple(round(float(v), 4) for v in geometry["PixelSpacing"])
        rows, columns = int(geometry["Rows"][0]), int(geometry["Columns"][0])
        slope = float(rescale["RescaleSlope"][0]) if rescale["RescaleSlope"] else 1.0
        intercept = float(rescale["RescaleIntercept"][0]) if rescale["RescaleIntercept"] else 0.0
        instance = _first(ds, "InstanceNumber")
        instance_number = int(instance) if instance not in (None, "") else 0
    except (TypeError, ValueError) as exc:
        reading.problems.append(Problem(name, f"invalid geometry ({exc}); file skipped"))
        return None
    return _Slice(
        path=path,
        name=name,
        ds=ds,
        orientation=orientation,
        position=position,
        rows=rows,
        columns=columns,
        spacing=(spacing[0], spacing[1]),
        series_uid=str(_first(ds, "SeriesInstanceUID") or ""),
        sop_instance_uid=str(_first(ds, "SOPInstanceUID") or ""),
        instance_number=instance_number,
        rescale=(slope, intercept),
    )


def _frame_slices(ds: pydicom.Dataset, path: Path, name: str, reading: _Reading) -> list[_Slice] | None:
    """Each frame of a multi-frame (enhanced) image as a slice; ``None`` with a problem noted when
    its functional groups do not give every frame's geometry."""
    try:
        frames = multiframe.frames_of(ds)
        rows, columns = _first(ds, "Rows"), _first(ds, "Columns")
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        reading.problems.append(Problem(name, f"multi-frame image without usable frame geometry ({exc}); file skipped"))
        return None
    refused = validate.matrix_problems(rows, columns)
    if refused:
        reading.problems.append(Problem(name, "; ".join(refused) + "; file skipped"))
        return None
    rows, columns = int(rows), int(columns)
    kept = []
    for f in frames:
        refused = validate.slice_problems(orientation=f.orientation, position=f.position, pixel_spacing=f.spacing,
                                          rows=rows, columns=columns, slope=(f.slope,), intercept=(f.intercept,))
        if refused:
            reading.problems.append(Problem(f"{name} frame {f.index + 1}", "; ".join(refused) + "; frame skipped"))
        else:
            kept.append(f)
    frames = kept
    if not frames:
        return None
    headers = multiframe.classic_headers(ds)
    source = _FrameSource(ds)
    series_uid, sop_uid = str(_first(ds, "SeriesInstanceUID") or ""), str(_first(ds, "SOPInstanceUID") or "")
    return [
        _Slice(path=path, name=f"{name} frame {f.index + 1}", ds=ds, orientation=f.orientation, position=f.position,
               rows=rows, columns=columns, spacing=f.spacing, series_uid=series_uid, sop_instance_uid=sop_uid,
               instance_number=f.index + 1, file=name, frame=f.index, headers=headers,
               rescale=(f.slope, f.intercept), source=source)
        for f in frames
    ]


def _frame_pixels(s: _Slice, reading: _Reading) -> np.ndarray | None:
    """The stored values of one frame; the file's pixel data is decoded at its first frame."""
    source = s.source
    assert source is not None and s.frame is not None
    if source.frames is None and not source.failed:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frames = source.ds.pixel_array
        except Exception as exc:  # decoders and truncated data raise many types
            reading.problems.append(Problem(s.file, f"cannot decode multi-frame pixel data ({type(exc).__name__}: {exc})"))
            source.failed = True
            return None
        if frames.ndim != 3 or frames.shape[1:] != (s.rows, s.columns):
            reading.problems.append(Problem(s.file, f"multi-frame pixel data of shape {frames.shape} is not "
                                                    f"frames x {s.rows} x {s.columns} grey-level images"))
            source.failed = True
            return None
        source.frames = frames
    if source.failed or source.frames is None or s.frame >= len(source.frames):
        return None
    return source.frames[s.frame]


def _native_pixels(s: _Slice, syntax: Any) -> np.ndarray | None:
    """The stored values of an uncompressed grey-level image, read straight from PixelData.

    Equal to pydicom's ``pixel_array`` (``np.frombuffer`` with the dtype of BitsAllocated,
    PixelRepresentation and the byte order; the bits above BitsStored masked off, or
    sign-extended when signed), without its per-file option handling. ``None`` for anything
    else (compressed, colour, 1-bit or 8-bit big endian, short data): ``pixel_array`` decides.
    """
    if syntax not in _NATIVE_SYNTAXES:
        return None
    ds = s.ds
    try:
        samples = int(_first(ds, "SamplesPerPixel") or 1)
        allocated, stored = int(_first(ds, "BitsAllocated")), int(_first(ds, "BitsStored"))
        signed = int(_first(ds, "PixelRepresentation") or 0) == 1
        photometric = str(_first(ds, "PhotometricInterpretation") or "")
    except (TypeError, ValueError):
        return None
    little = syntax != ExplicitVRBigEndian
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2") or allocated not in (8, 16, 32):
        return None
    if not 0 < stored <= allocated or (allocated == 8 and not little):
        return None
    elem = ds.get_item(_TAG["PixelData"])
    data = elem.value if elem is not None else None
    count = s.rows * s.columns
    dtype = np.dtype(f"{'i' if signed else 'u'}{allocated // 8}").newbyteorder("<" if little else ">")
    if not isinstance(data, (bytes, bytearray)) or len(data) < count * dtype.itemsize:
        return None
    pixels = np.frombuffer(data, dtype, count=count).reshape(s.rows, s.columns)
    unused = allocated - stored
    if unused and _within_stored_bits(pixels, stored, signed):
        # Masking or sign extension would change nothing: the view of PixelData is kept (a copy
        # of every slice, kept until the volume is filled, costs fresh memory and its page faults).
        return pixels
    if unused:
        native = pixels.astype(dtype.newbyteorder("="))
        if signed:
            np.left_shift(native, unused, out=native)
            np.right_shift(native, unused, out=native)
        else:
            np.bitwise_and(native, native.dtype.type((1 << stored) - 1), out=native)
        pixels = native
    return pixels


def _within_stored_bits(pixels: np.ndarray, stored: int, signed: bool) -> bool:
    """Whether every value already fits in ``stored`` bits (unsigned, or two's complement when signed)."""
    if pixels.size == 0:
        return True
    if signed:
        low, high = -(1 << (stored - 1)), (1 << (stored - 1)) - 1
        return bool(pixels.min() >= low and pixels.max() <= high)
    return bool(pixels.max() <= (1 << stored) - 1)


def _release_pixel_data(s: _Slice) -> None:
    """Defer a slice's pixel data again once it is in the volume: its memory is freed, and it is
    read from the file again if the series has to be planned again (see :func:`_build`)."""
    if s.deferred_pixel_data is not None:
        s.ds[_TAG["PixelData"]] = s.deferred_pixel_data


def _decode(s: _Slice, reading: _Reading) -> np.ndarray | None:
    """The slice's stored values (not rescaled); ``None`` with a problem noted when they cannot be read."""
    if s.source is not None:
        return _frame_pixels(s, reading)
    ds = s.ds
    try:
        elem = ds.get_item(_TAG["PixelData"], keep_deferred=True)
        if isinstance(elem, RawDataElement) and elem.value is None:
            s.deferred_pixel_data = elem
        ds.get_item(_TAG["PixelData"])  # read now if its reading was deferred (see _read_header)
    except Exception as exc:  # a file changed or truncated since its header was read: many types
        reading.problems.append(Problem(s.name, f"cannot read pixel data ({type(exc).__name__}: {exc})"))
        return None
    syntax = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) else None
    native = _native_pixels(s, syntax)
    if native is not None:
        return native
    if syntax is not None and syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
            available = decoder.is_available
        except NotImplementedError:
            decoder, available = None, False
        if not available:
            hint = ""
            if decoder is not None and decoder.missing_dependencies:
                hint = "; install one of: " + "; ".join(decoder.missing_dependencies)
            reading.problems.append(
                Problem(s.name, f"cannot decode pixel data: transfer syntax {syntax.name} ({syntax}) has no decoder{hint}")
            )
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = ds.pixel_array
    except Exception as exc:  # decoders and truncated data raise many types
        label = f"{syntax.name} " if syntax is not None else ""
        reading.problems.append(Problem(s.name, f"cannot decode {label}pixel data ({type(exc).__name__}: {exc})"))
        return None
    if pixels.ndim != 2:
        reading.problems.append(Problem(s.name, f"pixel data of shape {pixels.shape} is not one grey-level image"))
        return None
    if pixels.shape != (s.rows, s.columns):
        reading.problems.append(
            Problem(s.name, f"pixel data of shape {pixels.shape} does not match Rows x Columns {s.rows} x {s.columns}")
        )
        return None
    return pixels


def _rescaled(s: _Slice, out: np.ndarray) -> None:
    """Write the slice's stored values x RescaleSlope + RescaleIntercept into ``out`` (float32)."""
    out[...] = s.pixels
    slope, intercept = s.rescale if s.rescale is not None else (1.0, 0.0)
    if slope != 1.0:
        out *= np.float32(slope)
    if intercept:
        out += np.float32(intercept)


def _cluster(slices: list[_Slice]) -> list[list[_Slice]]:
    """Split one series into groups of one orientation."""
    groups: list[list[_Slice]] = []
    for s in slices:
        for g in groups:
            if np.max(np.abs(g[0].orientation - s.orientation)) <= ORIENTATION_TOLERANCE:
                g.append(s)
                break
        else:
            groups.append([s])
    return groups


def _size(s: _Slice) -> tuple[int, int, float, float]:
    return s.rows, s.columns, s.spacing[0], s.spacing[1]


def _build(slices: list[_Slice], uid: str, part: str, reading: _Reading) -> Series | None:
    notes: list[str] = []
    # One size per series: keep the commonest, name the others.
    sizes: dict[tuple[int, int, float, float], list[_Slice]] = {}
    for s in slices:
        sizes.setdefault(_size(s), []).append(s)
    if len(sizes) > 1:
        keep = max(sizes, key=lambda k: len(sizes[k]))
        for k, group in sizes.items():
            if k != keep:
                for s in group:
                    reading.problems.append(
                        Problem(s.name, f"image size/spacing {k} differs from the series' {keep}; slice excluded")
                    )
        slices = sizes[keep]
    rows, cols, row_mm, col_mm = _size(slices[0])
    in_file_order = slices
    slices = list(slices)

    row_cos, col_cos = slices[0].orientation[:3], slices[0].orientation[3:]
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)
    for s in slices:
        s.along_normal = float(s.position @ normal)
    slices.sort(key=lambda s: (s.along_normal, s.instance_number))

    kept = [slices[0]]
    for s in slices[1:]:
        if s.along_normal - kept[-1].along_normal < DUPLICATE_TOLERANCE_MM:
            notes.append(
                f"{s.name} duplicates the position of {kept[-1].name} ({s.along_normal:.2f} mm); "
                f"{kept[-1].name} kept"
            )
        else:
            kept.append(s)
    slices = kept

    positions = np.array([s.along_normal for s in slices])
    steps = np.diff(positions)
    if len(steps):
        # The regular step: the smallest steps when they are at least half of them (so missing
        # slices do not inflate it), else the median.
        regular = steps[steps <= steps.min() * (1 + GAP_TOLERANCE)]
        spacing = float(np.median(regular if 2 * len(regular) >= len(steps) else steps))
    else:
        low, high = validate.SLICE_SPACING_MM
        given = (_number(slices[0].ds, k) for k in ("SpacingBetweenSlices", "SliceThickness"))
        spacing = next((v for v in given if v is not None and low <= v <= high), None)  # NaN fails too
        if spacing is None:
            spacing = 1.0
            notes.append("single slice: no valid SpacingBetweenSlices or SliceThickness, slice spacing taken as 1 mm")
        else:
            notes.append(f"single slice: slice spacing {spacing:g} mm taken from the headers")

    # Slices beyond a gap too wide to fill leave the series (the largest run of slices stays).
    if len(steps):
        runs: list[list[_Slice]] = [[slices[0]]]
        for step, after in zip(steps, slices[1:], strict=True):
            if step / spacing > validate.MAX_GAP_SLICES + 1 + GAP_TOLERANCE:
                runs.append([])
            runs[-1].append(after)
        if len(runs) > 1:
            keep = max(runs, key=len)
            span = (keep[0].along_normal, keep[-1].along_normal)
            for run in runs:
                if run is keep:
                    continue
                for s in run:
                    away = min(abs(s.along_normal - span[0]), abs(s.along_normal - span[1]))
                    reading.problems.append(Problem(s.name, (
                        f"{validate.tag_name('ImagePositionPatient')} puts it {away:.1f} mm ({away / spacing:.0f} slice "
                        f"steps of {spacing:.2f} mm) from the other {len(keep)} slices of the series: more than "
                        f"{validate.MAX_GAP_SLICES} missing slices are not filled; slice excluded")))
            kept_ids = {id(s) for s in keep}
            return _build([s for s in in_file_order if id(s) in kept_ids], uid, part, reading)

    # Each row of the volume: a slice (index into ``slices``) or a gap filled between two slices.
    rows_of: list[int | tuple[int, int, float]] = [0]
    files = [slices[0].file or slices[0].name]
    uids = [slices[0].sop_instance_uid]
    for n, (step, before, after) in enumerate(zip(steps, slices[:-1], slices[1:], strict=True)):
        ratio = step / spacing
        missing = int(round(ratio)) - 1
        if abs(ratio - 1) > GAP_TOLERANCE and missing >= 1 and abs(ratio - round(ratio)) <= GAP_TOLERANCE:
            notes.append(
                f"slice gap of {step:.2f} mm (spacing {spacing:.2f} mm) between {before.name} and {after.name}: "
                f"{missing} missing slice(s) filled by interpolation"
            )
            for m in range(1, missing + 1):
                rows_of.append((n, n + 1, m / (missing + 1)))
                files.append("")
                uids.append("")
        elif abs(ratio - 1) > GAP_TOLERANCE:
            notes.append(
                f"irregular slice spacing of {step:.2f} mm (median {spacing:.2f} mm) between {before.name} "
                f"and {after.name}: positions after it are approximate"
            )
        rows_of.append(n + 1)
        files.append(after.file or after.name)
        uids.append(after.sop_instance_uid)

    # One float32 volume, filled slice by slice (no per-slice float copies, no stacking). Each
    # slice's pixel data is read (it was deferred), decoded, rescaled and released in turn, so the
    # pixel data of the whole series is never held at once.
    refused = validate.volume_problems((len(rows_of), rows, cols))
    if refused:
        names = sorted(s.name for s in slices)
        reading.problems.append(Problem(f"{names[0]} .. {names[-1]} ({len(names)} files of series {uid})",
                                        "; ".join(refused) + "; series skipped"))
        return None
    array = np.empty((len(rows_of), rows, cols), np.float32)
    where = {}
    failed: set[int] = set()
    for k, row in enumerate(rows_of):
        if isinstance(row, int):
            s = slices[row]
            try:
                s.pixels = _decode(s, reading)
                if s.pixels is not None:
                    _rescaled(s, array[k])
            except Exception as exc:  # a corrupt pixel module element (e.g. an unknown VR): many types
                reading.problems.append(Problem(s.name, f"invalid pixel description ({type(exc).__name__}: {exc})"))
                s.pixels = None
            if s.pixels is None:
                failed.add(id(s))
                continue
            where[row] = k
            s.pixels = None  # the stored values are no longer needed
            _release_pixel_data(s)
    if failed:
        # Undecodable slices (noted in the problems) leave the series: plan it again without them.
        rest = [s for s in in_file_order if id(s) not in failed]
        return _build(rest, uid, part, reading) if rest else None
    for k, row in enumerate(rows_of):
        if not isinstance(row, int):
            a, b, weight = row
            w = np.float32(weight)
            array[k] = (1 - w) * array[where[a]] + w * array[where[b]]

    if len(slices) > 1:
        mean_step = (slices[-1].position - slices[0].position) / (positions[-1] - positions[0])
        shear = float(np.linalg.norm(mean_step - normal))
        if shear > 0.01:
            notes.append(f"slices are sheared (gantry tilt?): step deviates {shear:.3f} from the normal")

    affine = np.eye(4)
    affine[:3, 0] = row_cos * col_mm
    affine[:3, 1] = col_cos * row_mm
    affine[:3, 2] = normal * spacing
    affine[:3, 3] = slices[0].position
    first = slices[0].ds
    description = str(first.get("SeriesDescription") or first.get("ProtocolName") or f"series {first.get('SeriesNumber', '?')}")
    if part:
        description = f"{description} {part}"
    headers = slices[0].headers if slices[0].headers is not None else first
    kind, reason = classify(headers)
    suppression, agent = describe_acquisition(headers)
    volume = Volume(
        array=array,
        affine=affine,
        kind=kind,
        description=description,
        source=str(slices[0].path.parent),
        series_uid=uid,
        warnings=tuple(notes),
        fat_suppression=suppression,
        contrast_agent=agent,
        study_uid=_text(first, "StudyInstanceUID"),
        frame_of_reference_uid=_text(first, "FrameOfReferenceUID"),
        study_date=_text(first, "StudyDate"),
    )
    return Series(volume=volume, files=tuple(files), sop_instance_uids=tuple(uids), kind_reason=reason)


def _read_dicom(paths: list[Path], reading: _Reading) -> list[Series]:
    by_uid: dict[str, list[_Slice]] = {}
    for path in paths:
        # Warnings about malformed values met while the header is used are the file's warnings.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                s = _read_header(path, reading)
            except Exception as exc:  # a corrupt element met after parsing (e.g. an unknown VR): many types
                reading.problems.append(
                    Problem(reading.rel(path), f"invalid DICOM header ({type(exc).__name__}: {_short(str(exc))}); file skipped")
                )
                s = None
        for message in dict.fromkeys(_short(str(w.message)) for w in caught):
            reading.warnings.append(f"{reading.rel(path)}: {message}")
        for one in [s] if isinstance(s, _Slice) else s or []:
            uid = one.series_uid or f"no-series-uid:{one.path.parent}"
            by_uid.setdefault(uid, []).append(one)
    out: list[Series] = []
    for uid, slices in by_uid.items():
        groups = _cluster(slices)
        for n, group in enumerate(groups, start=1):
            part = f"(orientation {n} of {len(groups)})" if len(groups) > 1 else ""
            try:
                series = _build(group, uid, part, reading)
            except Exception as exc:  # an element every slice needs is corrupt in one of them: many types
                names = sorted(s.name for s in group)
                reading.problems.append(Problem(
                    f"{names[0]} .. {names[-1]} ({len(names)} files of series {uid})",
                    f"series skipped: a header element could not be read ({type(exc).__name__}: {exc})",
                ))
                continue
            if series is None:
                continue
            if len(groups) > 1:
                note = f"series {uid} mixes {len(groups)} orientations: read as {len(groups)} volumes"
                series = replace(series, volume=replace(series.volume, warnings=(note,) + series.volume.warnings))
            out.append(series)
    return out


# --------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------


def _files(root: Path) -> list[Path]:
    if not root.is_dir():
        return [root]
    found = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        found += [Path(folder) / n for n in sorted(names)]
    return found


def _apply_kinds(series: list[Series], kinds: Mapping[str, str], reading: _Reading) -> list[Series]:
    wanted: dict[str, SeriesKind] = {}
    problems = []
    for key, value in kinds.items():
        try:
            wanted[key] = SeriesKind(str(value).lower())
        except ValueError:
            problems.append(Problem(f"kinds[{key!r}]", f"{value!r} is not one of t1, fluid, unknown"))
    if problems:
        raise InputError("invalid series kind override", problems)
    used = set()
    out = []
    for s in series:
        v = s.volume
        names = {v.series_uid or "", v.description.lower(), Path(v.source).name.lower()}
        match = next((k for k in wanted if k in names or k.lower() in names), None)
        if match is None:
            out.append(s)
            continue
        used.add(match)
        reason = f"set by the user ({match!r}); headers said {v.kind.value}: {s.kind_reason}"
        out.append(replace(s, volume=replace(v, kind=wanted[match]), kind_reason=reason))
    for key in wanted.keys() - used:
        reading.warnings.append(f"kind override {key!r} matches no series")
    return out


def _short(text: str, limit: int = 200) -> str:
    """A message on one line, at most ``limit`` characters (binary junk in a value can be long)."""
    text = " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_study(path: str | os.PathLike[str], *, kinds: Mapping[str, str] | None = None) -> Study:
    """Read every series under ``path`` (a folder, a DICOM file or a NIfTI file).

    Parameters
    ----------
    path
        Folder (searched recursively; any file names, any order), or one file.
    kinds
        User override of the series kind: {SeriesInstanceUID or series description or
        NIfTI file name: "t1" | "fluid" | "unknown"}.

    Raises
    ------
    ImagingError
        The path does not exist, or no image could be read from it (``problems`` lists
        each file and why).
    InputError
        A kind in ``kinds`` is not t1, fluid or unknown.

    Example
    -------
    >>> study = read_study("exam/", kinds={"cor pd spair": "fluid"})  # doctest: +SKIP
    >>> volumes_of(study, "fluid")[0].array.shape                     # doctest: +SKIP
    (40, 384, 384)
    """
    root = Path(path)
    if not root.exists():
        raise ImagingError(f"no such file or folder: {root}", [Problem(str(root), "does not exist")])
    reading = _Reading(root=root if root.is_dir() else root.parent)
    dicom_paths = []
    series: list[Series] = []
    for file in _files(root):
        refused = validate.file_problem(file)
        if refused is not None:
            reading.problems.append(Problem(reading.rel(file), f"{refused}; file skipped"))
            continue
        if _is_nifti(file):
            try:
                volume = read_nifti(file)
            except ImagingError as exc:
                reading.problems += exc.problems
                continue
            kind_note = volume.warnings[-1]
            volume = replace(volume, warnings=volume.warnings[:-1])
            series.append(Series(volume, (reading.rel(file),), ("",), kind_note.removeprefix("kind: ")))
        else:
            dicom_paths.append(file)
    # pydicom warns about malformed values it can still read (an invalid UID, an over-long
    # string): kept as the study's warnings, once each, instead of printed on stderr.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = _read_dicom(dicom_paths, reading) + series
    for message in dict.fromkeys(_short(str(w.message)) for w in caught):
        reading.warnings.append(f"malformed DICOM value: {message}")
    if kinds:
        series = _apply_kinds(series, kinds, reading)
    if not series:
        problems = reading.problems or [Problem(str(root), "no DICOM or NIfTI image found")]
        raise ImagingError(f"no readable image series in {root}", problems + [Problem("", w) for w in reading.warnings])
    return Study(
        series=tuple(series),
        warnings=tuple(reading.warnings),
        problems=tuple(reading.problems),
        source=str(root),
    )
