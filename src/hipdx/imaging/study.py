"""A study folder read: every file tried, NIfTI and DICOM series, kind overrides; nothing skipped silently."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path


from hipdx.errors import ImagingError, InputError, Problem
from hipdx.imaging import validate
from hipdx.imaging.volume import SeriesKind
from hipdx.imaging.assemble import read_dicom_series
from hipdx.imaging.dicom_slices import Reading
from hipdx.imaging.nifti import is_nifti, read_nifti
from hipdx.imaging.series import Series, Study
from hipdx.imaging.validate import one_line


def _files(root: Path) -> list[Path]:
    if not root.is_dir():
        return [root]
    found = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        found += [Path(folder) / n for n in sorted(names)]
    return found


def _apply_kinds(series: list[Series], kinds: Mapping[str, str], reading: Reading) -> list[Series]:
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
    reading = Reading(root=root if root.is_dir() else root.parent)
    dicom_paths = []
    series: list[Series] = []
    for file in _files(root):
        refused = validate.file_problem(file)
        if refused is not None:
            reading.problems.append(Problem(reading.rel(file), f"{refused}; file skipped"))
            continue
        if is_nifti(file):
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
        series = read_dicom_series(dicom_paths, reading) + series
    for message in dict.fromkeys(one_line(str(w.message)) for w in caught):
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
