"""DICOM files read as slices: the few header elements needed, read straight from their bytes, and the pixels decoded one slice at a time."""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, field
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

from hipdx.errors import Problem
from hipdx.imaging import multiframe, validate
from hipdx.imaging.validate import one_line


@dataclass
class DicomSlice:
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
    source: FrameSource | None = None  # the file's decoded frames, shared by its slices


class FrameSource:
    """The pixel data of a multi-frame file, decoded once for all its frames."""

    def __init__(self, ds: pydicom.Dataset) -> None:
        self.ds = ds
        self.frames: np.ndarray | None = None
        self.failed = False


@dataclass
class Reading:
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


def header_text(ds: pydicom.Dataset, keyword: str) -> str | None:
    """A header value as text, None when absent, empty or unreadable."""
    try:
        value = ds.get(keyword)
    except Exception:  # a damaged element: many types
        return None
    text = str(value).strip() if value is not None else ""
    return text or None


def read_header(path: Path, reading: Reading) -> DicomSlice | list[DicomSlice] | None:
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
    for message in dict.fromkeys(one_line(str(w.message)) for w in caught):
        reading.warnings.append(f"{name}: {message}")
    meta = getattr(ds, "file_meta", None)
    if meta is not None and _first(meta, "MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
        reading.warnings.append(f"{name}: DICOMDIR index skipped (the image files are read directly)")
        return None
    if _TAG["PixelData"] not in ds:
        _note_no_pixel_data(ds, meta, name, reading)
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
    return DicomSlice(
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


def _note_no_pixel_data(ds: pydicom.Dataset, meta: Any, name: str, reading: Reading) -> None:
    """A file without pixel data: a problem when it is an image (damaged), else a skipped non-image."""
    # The file meta's SOP class when the dataset's own is damaged (its value is then junk).
    kinds = [ds.get("SOPClassUID"), meta.get("MediaStorageSOPClassUID") if meta is not None else None]
    names = [getattr(k, "name", str(k)) for k in kinds if k]
    kind = next((n for n in names if "Image Storage" in n), names[0] if names else "unknown SOP class")
    if "Image Storage" in kind:
        reading.problems.append(Problem(name, f"{kind} without readable pixel data (truncated or damaged file?); file skipped"))
    else:
        reading.warnings.append(f"{name}: no image ({one_line(kind, 80)}), skipped")


def _frame_slices(ds: pydicom.Dataset, path: Path, name: str, reading: Reading) -> list[DicomSlice] | None:
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
    source = FrameSource(ds)
    series_uid, sop_uid = str(_first(ds, "SeriesInstanceUID") or ""), str(_first(ds, "SOPInstanceUID") or "")
    return [
        DicomSlice(path=path, name=f"{name} frame {f.index + 1}", ds=ds, orientation=f.orientation, position=f.position,
               rows=rows, columns=columns, spacing=f.spacing, series_uid=series_uid, sop_instance_uid=sop_uid,
               instance_number=f.index + 1, file=name, frame=f.index, headers=headers,
               rescale=(f.slope, f.intercept), source=source)
        for f in frames
    ]


def _frame_pixels(s: DicomSlice, reading: Reading) -> np.ndarray | None:
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


def _native_pixels(s: DicomSlice, syntax: Any) -> np.ndarray | None:
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


def release_pixel_data(s: DicomSlice) -> None:
    """Defer a slice's pixel data again once it is in the volume: its memory is freed, and it is
    read from the file again if the series has to be planned again (see :func:`build_series`)."""
    if s.deferred_pixel_data is not None:
        s.ds[_TAG["PixelData"]] = s.deferred_pixel_data


def decode_pixels(s: DicomSlice, reading: Reading) -> np.ndarray | None:
    """The slice's stored values (not rescaled); ``None`` with a problem noted when they cannot be read."""
    if s.source is not None:
        return _frame_pixels(s, reading)
    ds = s.ds
    try:
        elem = ds.get_item(_TAG["PixelData"], keep_deferred=True)
        if isinstance(elem, RawDataElement) and elem.value is None:
            s.deferred_pixel_data = elem
        ds.get_item(_TAG["PixelData"])  # read now if its reading was deferred (see read_header)
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


def rescale_into(s: DicomSlice, out: np.ndarray) -> None:
    """Write the slice's stored values x RescaleSlope + RescaleIntercept into ``out`` (float32)."""
    out[...] = s.pixels
    slope, intercept = s.rescale if s.rescale is not None else (1.0, 0.0)
    if slope != 1.0:
        out *= np.float32(slope)
    if intercept:
        out += np.float32(intercept)


