"""De-identification of uploaded DICOM before anything is written to disk.

DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile
(https://dicom.nema.org/medical/dicom/current/output/chtml/part15/chapter_E.html): the actions of
Table E.1-1 (D, Z, X, K, C, U and their combinations) as the ``dicom-anonymizer`` package
(Kitware, ``dicomfields_2026c``: the 2026c edition of the table) implements them, private
attributes removed, UIDs replaced consistently within one upload (a study's series keep sharing
their frame of reference), with one option of the profile:

- **Clean Descriptors Option** (E.3.5): the series description, protocol name and contrast agent
  say which series is T1 and which fluid-sensitive, which the analysis needs to choose the series.
  They are kept only when they look like an acquisition name (letters, digits, spaces and
  ``_+-/().*,:#``, at most 64 characters) and dropped otherwise.

The result says so: ``PatientIdentityRemoved`` YES, ``DeidentificationMethod`` and
``DeidentificationMethodCodeSequence`` (CID 7050: 113100 Basic Application Confidentiality
Profile, 113105 Clean Descriptors Option). Pixel data are not cleaned (no Clean Pixel Data
option): MR rarely carries burned-in text, but a screen capture or a secondary capture may.
"""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pydicom
from dicomanonymizer import simpledicomanonymizer as kitware
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from hipdx.errors import InputError

TABLE = "dicomfields_2026c"
_KEPT_DESCRIPTORS = ("SeriesDescription", "ProtocolName", "ContrastBolusAgent")
_DESCRIPTOR = re.compile(r"^[A-Za-z0-9 _+\-/().*,:#]{0,64}$")
#: dicom-anonymizer keeps its old -> new UID map in a module global: one upload at a time
_LOCK = threading.Lock()


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item


def _deidentify(dataset: Dataset) -> None:
    kept = {k: str(dataset.get(k, "")) for k in _KEPT_DESCRIPTORS if k in dataset}
    kitware.anonymize_dataset(dataset, base_rules_gen=lambda: kitware.initialize_actions(TABLE),
                              delete_private_tags=True)
    for keyword, value in kept.items():
        if _DESCRIPTOR.match(value):
            setattr(dataset, keyword, value)
        elif keyword in dataset:
            delattr(dataset, keyword)
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = "PS3.15 E.1 Basic Profile 2026c; Clean Descriptors"
    dataset.DeidentificationMethodCodeSequence = [
        _code("113100", "Basic Application Confidentiality Profile"),
        _code("113105", "Clean Descriptors Option"),
    ]


def deidentify_files(files: list[tuple[str, bytes]], folder: Path) -> tuple[int, list[str]]:
    """De-identify each uploaded file in memory and write the result into ``folder``.

    Parameters
    ----------
    files
        ``(name as uploaded, content)``; the names are only used in messages, the files written
        are numbered (``000001.dcm``...), so an uploaded name never becomes a path.
    folder
        Where the de-identified files go (created).

    Returns
    -------
    The number of files written, and one line per file left out (not DICOM), by its position.

    Raises
    ------
    InputError
        No file of the upload is DICOM.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written, skipped = 0, []
    with _LOCK:
        kitware.dictionary.clear()
        try:
            for index, (_name, content) in enumerate(files, start=1):
                try:
                    dataset = pydicom.dcmread(io.BytesIO(content), force=False)
                    _deidentify(dataset)
                    dataset.save_as(folder / f"{written + 1:06d}.dcm", enforce_file_format=False)
                except (InvalidDicomError, ValueError, TypeError, KeyError, AttributeError, OverflowError,
                        EOFError, NotImplementedError) as exc:
                    skipped.append(f"file {index} is not DICOM hipdx can read ({type(exc).__name__}); left out")
                    continue
                written += 1
        finally:
            kitware.dictionary.clear()
    if written == 0:
        raise InputError("the upload holds no DICOM file", [])
    return written, skipped
