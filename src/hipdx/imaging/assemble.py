"""Slices of one series assembled into one volume: one size, sorted along the normal, duplicates and gaps handled, rescaled."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from hipdx.errors import Problem
from hipdx.imaging import validate
from hipdx.imaging.parameters import param
from hipdx.imaging.volume import Volume
from hipdx.imaging.classify import classify, describe_acquisition, header_number
from hipdx.imaging.dicom_slices import (
    DicomSlice,
    Reading,
    decode_pixels,
    header_text,
    read_header,
    release_pixel_data,
    rescale_into,
)
from hipdx.imaging.series import Series
from hipdx.imaging.validate import one_line


#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "reading").
DUPLICATE_TOLERANCE_MM = param("reading.duplicate_tolerance_mm")


GAP_TOLERANCE = param("reading.gap_tolerance")


ORIENTATION_TOLERANCE = param("reading.orientation_tolerance")


def _cluster(slices: list[DicomSlice]) -> list[list[DicomSlice]]:
    """Split one series into groups of one orientation."""
    groups: list[list[DicomSlice]] = []
    for s in slices:
        for g in groups:
            if np.max(np.abs(g[0].orientation - s.orientation)) <= ORIENTATION_TOLERANCE:
                g.append(s)
                break
        else:
            groups.append([s])
    return groups


def _size(s: DicomSlice) -> tuple[int, int, float, float]:
    return s.rows, s.columns, s.spacing[0], s.spacing[1]


def build_series(slices: list[DicomSlice], uid: str, part: str, reading: Reading) -> Series | None:
    """One series' slices (one orientation) as a :class:`Series`, or None when nothing is left.

    Slices of another size, beyond a gap too wide to fill or with undecodable pixels leave the
    series (each named in ``reading.problems``) and the rest is planned again.
    """
    notes: list[str] = []
    slices = _one_size(slices, reading)
    rows, cols, row_mm, col_mm = _size(slices[0])
    in_file_order = slices
    slices = list(slices)

    row_cos, col_cos = slices[0].orientation[:3], slices[0].orientation[3:]
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)
    for s in slices:
        s.along_normal = float(s.position @ normal)
    slices.sort(key=lambda s: (s.along_normal, s.instance_number))
    slices = _without_duplicates(slices, notes)

    positions = np.array([s.along_normal for s in slices])
    steps = np.diff(positions)
    spacing = _slice_spacing(slices, steps, notes)

    # Slices beyond a gap too wide to fill leave the series (the largest run of slices stays).
    keep = _largest_run(slices, steps, spacing, reading)
    if keep is not None:
        kept_ids = {id(s) for s in keep}
        return build_series([s for s in in_file_order if id(s) in kept_ids], uid, part, reading)

    rows_of, files, uids = _row_plan(slices, steps, spacing, notes)
    refused = validate.volume_problems((len(rows_of), rows, cols))
    if refused:
        names = sorted(s.name for s in slices)
        reading.problems.append(Problem(f"{names[0]} .. {names[-1]} ({len(names)} files of series {uid})",
                                        "; ".join(refused) + "; series skipped"))
        return None
    array, failed = _filled_volume(slices, rows_of, (rows, cols), reading)
    if failed:
        # Undecodable slices (noted in the problems) leave the series: plan it again without them.
        rest = [s for s in in_file_order if id(s) not in failed]
        return build_series(rest, uid, part, reading) if rest else None

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
    return _series(slices, array, affine, uid, part, notes, files, uids)


def _one_size(slices: list[DicomSlice], reading: Reading) -> list[DicomSlice]:
    """One size per series: the commonest is kept, the others named."""
    sizes: dict[tuple[int, int, float, float], list[DicomSlice]] = {}
    for s in slices:
        sizes.setdefault(_size(s), []).append(s)
    if len(sizes) <= 1:
        return slices
    keep = max(sizes, key=lambda k: len(sizes[k]))
    for k, group in sizes.items():
        if k != keep:
            for s in group:
                reading.problems.append(
                    Problem(s.name, f"image size/spacing {k} differs from the series' {keep}; slice excluded")
                )
    return sizes[keep]


def _without_duplicates(slices: list[DicomSlice], notes: list[str]) -> list[DicomSlice]:
    """Sorted slices less those at the position of the one before (the first kept, noted)."""
    kept = [slices[0]]
    for s in slices[1:]:
        if s.along_normal - kept[-1].along_normal < DUPLICATE_TOLERANCE_MM:
            notes.append(
                f"{s.name} duplicates the position of {kept[-1].name} ({s.along_normal:.2f} mm); "
                f"{kept[-1].name} kept"
            )
        else:
            kept.append(s)
    return kept


def _slice_spacing(slices: list[DicomSlice], steps: np.ndarray, notes: list[str]) -> float:
    """The regular slice step (mm); for a single slice, from its headers (or 1 mm, noted)."""
    if len(steps):
        # The regular step: the smallest steps when they are at least half of them (so missing
        # slices do not inflate it), else the median.
        regular = steps[steps <= steps.min() * (1 + GAP_TOLERANCE)]
        return float(np.median(regular if 2 * len(regular) >= len(steps) else steps))
    low, high = validate.SLICE_SPACING_MM
    given = (header_number(slices[0].ds, k) for k in ("SpacingBetweenSlices", "SliceThickness"))
    spacing = next((v for v in given if v is not None and low <= v <= high), None)  # NaN fails too
    if spacing is None:
        notes.append("single slice: no valid SpacingBetweenSlices or SliceThickness, slice spacing taken as 1 mm")
        return 1.0
    notes.append(f"single slice: slice spacing {spacing:g} mm taken from the headers")
    return spacing


def _largest_run(slices: list[DicomSlice], steps: np.ndarray, spacing: float, reading: Reading) -> list[DicomSlice] | None:
    """The largest run of slices when gaps too wide to fill split the series (the others named); None when none do."""
    if not len(steps):
        return None
    runs: list[list[DicomSlice]] = [[slices[0]]]
    for step, after in zip(steps, slices[1:], strict=True):
        if step / spacing > validate.MAX_GAP_SLICES + 1 + GAP_TOLERANCE:
            runs.append([])
        runs[-1].append(after)
    if len(runs) <= 1:
        return None
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
    return keep


def _row_plan(slices: list[DicomSlice], steps: np.ndarray, spacing: float, notes: list[str]
              ) -> tuple[list[int | tuple[int, int, float]], list[str], list[str]]:
    """Each row of the volume: a slice (index into ``slices``) or a gap filled between two slices
    (before, after, weight); with the file and SOP Instance UID of each row ("" when filled)."""
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
    return rows_of, files, uids


def _filled_volume(slices: list[DicomSlice], rows_of: list[int | tuple[int, int, float]], size: tuple[int, int],
                   reading: Reading) -> tuple[np.ndarray, set[int]]:
    """One float32 volume, filled slice by slice; the ids of the slices that could not be decoded.

    No per-slice float copies, no stacking: each slice's pixel data is read (it was deferred),
    decoded, rescaled and released in turn, so the pixel data of the whole series is never held
    at once. Filled rows are interpolated once every slice is in.
    """
    array = np.empty((len(rows_of), *size), np.float32)
    where = {}
    failed: set[int] = set()
    for k, row in enumerate(rows_of):
        if isinstance(row, int):
            s = slices[row]
            try:
                s.pixels = decode_pixels(s, reading)
                if s.pixels is not None:
                    rescale_into(s, array[k])
            except Exception as exc:  # a corrupt pixel module element (e.g. an unknown VR): many types
                reading.problems.append(Problem(s.name, f"invalid pixel description ({type(exc).__name__}: {exc})"))
                s.pixels = None
            if s.pixels is None:
                failed.add(id(s))
                continue
            where[row] = k
            s.pixels = None  # the stored values are no longer needed
            release_pixel_data(s)
    if failed:
        return array, failed
    for k, row in enumerate(rows_of):
        if not isinstance(row, int):
            a, b, weight = row
            w = np.float32(weight)
            array[k] = (1 - w) * array[where[a]] + w * array[where[b]]
    return array, failed


def _series(slices: list[DicomSlice], array: np.ndarray, affine: np.ndarray, uid: str, part: str, notes: list[str],
            files: list[str], uids: list[str]) -> Series:
    """The volume with its description, kind (from the headers) and identity."""
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
        study_uid=header_text(first, "StudyInstanceUID"),
        frame_of_reference_uid=header_text(first, "FrameOfReferenceUID"),
        study_date=header_text(first, "StudyDate"),
    )
    return Series(volume=volume, files=tuple(files), sop_instance_uids=tuple(uids), kind_reason=reason)


def read_dicom_series(paths: list[Path], reading: Reading) -> list[Series]:
    by_uid: dict[str, list[DicomSlice]] = {}
    for path in paths:
        # Warnings about malformed values met while the header is used are the file's warnings.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                s = read_header(path, reading)
            except Exception as exc:  # a corrupt element met after parsing (e.g. an unknown VR): many types
                reading.problems.append(
                    Problem(reading.rel(path), f"invalid DICOM header ({type(exc).__name__}: {one_line(str(exc))}); file skipped")
                )
                s = None
        for message in dict.fromkeys(one_line(str(w.message)) for w in caught):
            reading.warnings.append(f"{reading.rel(path)}: {message}")
        for one in [s] if isinstance(s, DicomSlice) else s or []:
            uid = one.series_uid or f"no-series-uid:{one.path.parent}"
            by_uid.setdefault(uid, []).append(one)
    out: list[Series] = []
    for uid, slices in by_uid.items():
        groups = _cluster(slices)
        for n, group in enumerate(groups, start=1):
            part = f"(orientation {n} of {len(groups)})" if len(groups) > 1 else ""
            try:
                series = build_series(group, uid, part, reading)
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
