"""What the image readers accept: the header checks and size caps, in one place.

Small validators that return the reasons a value is refused (an empty list when it is
accepted); :mod:`hipdx.imaging.io` applies them to every slice, frame and NIfTI file before
anything is computed or allocated from the header. A refused value is never repaired or
guessed: the slice or file is left out, its problem naming the file, the DICOM tag (or NIfTI
header field), the value and why (a negative PixelSpacing, for one, would mirror the image and
move both femoral heads by hundreds of millimetres).

The caps bound what a header may make the reader allocate. Each is about twice the largest
hip MRI a scanner writes, so no real study meets it:

=====================  ==============  ===============================================================
cap                    value           why
=====================  ==============  ===============================================================
``MAX_MATRIX``         2,048           rows or columns of a slice; clinical MR matrices reach 1,024
``MAX_SLICES``         1,024           slices of one volume, filled gaps included; a 3-D isotropic
                                       hip acquisition has up to ~500
``MAX_VOXELS``         2**27 (134 M)   voxels of one volume (512 MiB as float32): 512 x 512 x 512
``MAX_GAP_SLICES``     8               missing slices filled by interpolation in one gap: more than
                                       8 x ~5 mm spans a femoral head (45-50 mm); slices beyond such a
                                       gap are left out, the rest kept
``MAX_FILE_BYTES``     2 GiB           bytes of one file read (a whole multi-frame series of the
                                       largest volume above, 16-bit, is 256 MiB; compressed NIfTI is
                                       bounded by ``MAX_VOXELS``, not by its size on disk)
=====================  ==============  ===============================================================

Example
-------
>>> pixel_spacing_problems(["-0.9", "0.9"])
['PixelSpacing (0028,0030) = -0.9\\\\0.9: each value must be between 0.01 and 20 mm']
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.tag import Tag

from hipdx.imaging.parameters import param

MAX_MATRIX = 2048
MAX_SLICES = 1024
MAX_VOXELS = 2**27
MAX_GAP_SLICES = 8
MAX_FILE_BYTES = 2 * 1024**3
#: Pixel spacing and slice spacing (mm): below any MR resolution (10 um) / above any MR voxel.
SPACING_MM = (0.01, 20.0)
#: Slice spacing from SpacingBetweenSlices or SliceThickness (mm).
SLICE_SPACING_MM = (0.01, 100.0)
#: Largest |coordinate| of ImagePositionPatient (mm): 10 m, any table position included.
MAX_POSITION_MM = 10_000.0
#: Largest deviation of a direction cosine vector's length from 1, and of the two vectors' dot
#: product from 0 (cosines written with 4 significant digits are within 1e-4).
COSINE_TOLERANCE = 1e-3
#: RescaleSlope: positive (an MR magnitude image), between these; |RescaleIntercept| at most the
#: last. Stored values up to 2**32 x 1e6 stay far inside float32.
RESCALE_SLOPE = (1e-6, 1e6)
MAX_RESCALE_INTERCEPT = 1e6
#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "reading").
MAX_DAMAGED_SHARE = param("reading.max_damaged_share")


def tag_name(keyword: str) -> str:
    """``"PixelSpacing (0028,0030)"``: a DICOM keyword with its tag, for messages."""
    number = tag_for_keyword(keyword)
    return f"{keyword} {Tag(number)}" if number is not None else keyword


def _shown(values: Sequence[Any]) -> str:
    text = "\\".join(str(v).strip() for v in values)
    return text if len(text) <= 60 else text[:57] + "..."


def _numbers(keyword: str, values: Sequence[Any], count: int) -> tuple[list[float] | None, list[str]]:
    """The values as ``count`` finite floats, or the reason they are not."""
    where = f"{tag_name(keyword)} = {_shown(values)}"
    if len(values) != count:
        return None, [f"{where}: {len(values)} values, {count} expected"]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None, [f"{where}: not a number"]
    if not all(math.isfinite(v) for v in numbers):
        return None, [f"{where}: not finite"]
    return numbers, []


def pixel_spacing_problems(values: Sequence[Any], keyword: str = "PixelSpacing") -> list[str]:
    """PixelSpacing (row, column spacing in mm): two finite values within :data:`SPACING_MM`."""
    numbers, problems = _numbers(keyword, values, 2)
    if numbers is not None and not all(SPACING_MM[0] <= v <= SPACING_MM[1] for v in numbers):
        problems = [f"{tag_name(keyword)} = {_shown(values)}: each value must be between "
                    f"{SPACING_MM[0]:g} and {SPACING_MM[1]:g} mm"]
    return problems


def orientation_problems(values: Sequence[Any]) -> list[str]:
    """ImageOrientationPatient: two unit vectors at right angles (within :data:`COSINE_TOLERANCE`)."""
    numbers, problems = _numbers("ImageOrientationPatient", values, 6)
    if numbers is None:
        return problems
    row, column = numbers[:3], numbers[3:]
    lengths = [math.sqrt(sum(c * c for c in v)) for v in (row, column)]
    dot = sum(a * b for a, b in zip(row, column, strict=True))
    where = f"{tag_name('ImageOrientationPatient')} = {_shown(values)}"
    if any(abs(n - 1) > COSINE_TOLERANCE for n in lengths):
        return [f"{where}: the row and column cosines must each have length 1 (they have {lengths[0]:.4g} "
                f"and {lengths[1]:.4g})"]
    if abs(dot) > COSINE_TOLERANCE:
        return [f"{where}: the row and column cosines must be at right angles (their dot product is {dot:.4g})"]
    return []


def position_problems(values: Sequence[Any], keyword: str = "ImagePositionPatient") -> list[str]:
    """ImagePositionPatient: three finite coordinates within :data:`MAX_POSITION_MM`."""
    numbers, problems = _numbers(keyword, values, 3)
    if numbers is not None and any(abs(v) > MAX_POSITION_MM for v in numbers):
        problems = [f"{tag_name(keyword)} = {_shown(values)}: a coordinate beyond {MAX_POSITION_MM:g} mm"]
    return problems


def matrix_problems(rows: Any, columns: Any) -> list[str]:
    """Rows and Columns: whole numbers from 1 to :data:`MAX_MATRIX`."""
    problems = []
    for keyword, value in (("Rows", rows), ("Columns", columns)):
        try:
            number = int(value)
        except (TypeError, ValueError):
            problems.append(f"{tag_name(keyword)} = {value!r}: not a whole number")
            continue
        if not 1 <= number <= MAX_MATRIX:
            problems.append(f"{tag_name(keyword)} = {number}: must be between 1 and {MAX_MATRIX}")
    return problems


def frame_count_problems(value: Any) -> list[str]:
    """NumberOfFrames: a whole number from 1 to :data:`MAX_SLICES`."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return [f"{tag_name('NumberOfFrames')} = {value!r}: not a whole number"]
    if not 1 <= number <= MAX_SLICES:
        return [f"{tag_name('NumberOfFrames')} = {number}: must be between 1 and {MAX_SLICES}"]
    return []


def rescale_problems(slope: Sequence[Any], intercept: Sequence[Any]) -> list[str]:
    """RescaleSlope and RescaleIntercept, each absent (1 and 0) or one finite value in bounds."""
    problems = []
    if slope:
        numbers, found = _numbers("RescaleSlope", slope[:1], 1)
        problems += found
        if numbers is not None and not RESCALE_SLOPE[0] <= numbers[0] <= RESCALE_SLOPE[1]:
            problems.append(f"{tag_name('RescaleSlope')} = {_shown(slope)}: must be between "
                            f"{RESCALE_SLOPE[0]:g} and {RESCALE_SLOPE[1]:g}")
    if intercept:
        numbers, found = _numbers("RescaleIntercept", intercept[:1], 1)
        problems += found
        if numbers is not None and abs(numbers[0]) > MAX_RESCALE_INTERCEPT:
            problems.append(f"{tag_name('RescaleIntercept')} = {_shown(intercept)}: beyond "
                            f"+-{MAX_RESCALE_INTERCEPT:g}")
    return problems


def slice_problems(*, orientation: Sequence[Any], position: Sequence[Any], pixel_spacing: Sequence[Any],
                   rows: Any, columns: Any, slope: Sequence[Any] = (), intercept: Sequence[Any] = ()) -> list[str]:
    """Every reason to refuse the geometry and rescaling of one slice or frame (values as read)."""
    return (orientation_problems(orientation) + position_problems(position) + pixel_spacing_problems(pixel_spacing)
            + matrix_problems(rows, columns) + rescale_problems(slope, intercept))


def volume_problems(shape: Sequence[int]) -> list[str]:
    """A (slices, rows, columns) shape within :data:`MAX_SLICES`, :data:`MAX_MATRIX` and :data:`MAX_VOXELS`."""
    slices, rows, columns = (int(n) for n in shape)
    voxels = slices * rows * columns
    problems = []
    if slices > MAX_SLICES:
        problems.append(f"{slices} slices (gaps filled included): more than {MAX_SLICES}")
    if voxels > MAX_VOXELS:
        problems.append(f"{slices} x {rows} x {columns} = {voxels:,} voxels: more than {MAX_VOXELS:,}")
    return problems


def file_problem(path: Path) -> str | None:
    """Why a file is not read: not a regular file (a FIFO, a device, a socket would block or
    never end), or larger than :data:`MAX_FILE_BYTES`; None when it can be read."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, device or socket): not read"
    if info.st_size > MAX_FILE_BYTES:
        return f"{info.st_size:,} bytes: larger than {MAX_FILE_BYTES:,}, not read"
    return None


def nifti_header_problems(header: Any, affine: Any) -> list[str]:
    """A NIfTI header's claims, checked before its data is read: ``dim`` (2 to 4 dimensions, each
    from 1 to :data:`MAX_MATRIX`, the first volume within :data:`MAX_VOXELS`), ``pixdim`` and the
    affine (finite voxel sizes within :data:`SLICE_SPACING_MM`, not singular) and
    ``scl_slope``/``scl_inter`` (finite, within the rescale bounds)."""
    import numpy as np

    problems = []
    try:
        shape = tuple(int(n) for n in header.get_data_shape())
    except Exception as exc:  # a header nibabel can load but not interpret: many types
        return [f"dim: cannot be read ({exc})"]
    if not 2 <= len(shape) <= 4:
        problems.append(f"dim = {shape}: {len(shape)} dimensions (2 to 4 are read)")
    elif not all(1 <= n <= MAX_MATRIX for n in shape[:3]):
        problems.append(f"dim = {shape}: each of the first three must be between 1 and {MAX_MATRIX}")
    else:
        voxels = math.prod(shape[:3])
        if voxels > MAX_VOXELS:
            problems.append(f"dim = {shape}: {voxels:,} voxels in one volume, more than {MAX_VOXELS:,}")
    matrix = np.asarray(affine, dtype=float)
    low, high = SLICE_SPACING_MM
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        problems.append("pixdim / qform / sform: the voxel-to-world affine is not finite")
    else:
        sizes = np.linalg.norm(matrix[:3, :3], axis=0)
        if not all(low <= s <= high for s in sizes):
            shown = " x ".join(f"{s:.4g}" for s in sizes)
            problems.append(f"pixdim / qform / sform: voxel size {shown} mm; each must be between {low:g} and {high:g} mm")
        elif abs(np.linalg.det(matrix[:3, :3] / sizes)) < 0.5:
            problems.append("pixdim / qform / sform: the voxel axes are (nearly) parallel")
    try:
        slope, intercept = header.get_slope_inter()
    except Exception:  # a header without scaling fields (Analyze): none
        slope, intercept = None, None
    if slope is not None and not (math.isfinite(slope) and RESCALE_SLOPE[0] <= abs(slope) <= RESCALE_SLOPE[1]):
        problems.append(f"scl_slope = {slope!r}: must be finite, between {RESCALE_SLOPE[0]:g} and {RESCALE_SLOPE[1]:g} in size")
    if intercept is not None and not (math.isfinite(intercept) and abs(intercept) <= MAX_RESCALE_INTERCEPT):
        problems.append(f"scl_inter = {intercept!r}: must be finite, within +-{MAX_RESCALE_INTERCEPT:g}")
    return problems


def one_line(text: str, limit: int = 200) -> str:
    """A message on one line, at most ``limit`` characters (binary junk in a value can be long)."""
    text = " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."
