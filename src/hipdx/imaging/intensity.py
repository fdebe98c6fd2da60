"""Intensity scaling shared by the femoral head search, the sphere fit, the neck axis and the partner search."""

from __future__ import annotations

import numpy as np

from hipdx.errors import ImagingError


def normalise(array: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Scale intensities so the ``low`` and ``high`` percentiles of the non-zero voxels map to 0 and 1."""
    values = array[array > 0]
    if values.size == 0:
        raise ImagingError("the image is empty (all voxels are zero)")
    lo, hi = np.percentile(values, [low, high])
    del values
    if hi <= lo:
        raise ImagingError("the image has no contrast")
    out = np.subtract(array, np.float32(lo), dtype=np.float32)
    np.divide(out, np.float32(hi - lo), out=out)
    return np.clip(out, 0.0, 1.5, out=out)


def intensity_bounds(array: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles of the non-zero voxels, from every 4th row and column."""
    sample = array[:, ::4, ::4]
    values = sample[sample > 0]
    if values.size == 0:
        values = array[array > 0]
    if values.size == 0:
        raise ImagingError("the image is empty (all voxels are zero)")
    # ``values`` is a copy made here: partitioned in place (same percentiles, no second copy).
    lo, hi = (float(v) for v in np.percentile(values, [low, high], overwrite_input=True))
    if hi <= lo:
        raise ImagingError("the image has no contrast")
    return lo, hi


def scaled_intensity(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Intensities mapped as :func:`normalise` does, with a known range (float32, 0-1.5)."""
    out = np.subtract(values, np.float32(lo), dtype=np.float32)
    np.divide(out, np.float32(hi - lo), out=out)
    return np.clip(out, 0.0, 1.5, out=out)


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """In-plane block mean of a (slices, rows, cols) stack over ``factor`` x ``factor`` pixels (edges cropped).

    Columns are summed first, then rows, each as ``factor`` strided views of a reshaped array
    (float32, summed in the same order as a loop over the block), a few slices at a time so the
    strided passes read from the cache.
    """
    if factor == 1:
        return array.astype(np.float32)
    n, rows, cols = array.shape
    rows, cols = rows - rows % factor, cols - cols % factor
    chunk = 4
    out = np.empty((n, rows // factor, cols // factor), np.float32)
    across = np.empty((min(chunk, n), rows, cols // factor), np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        within = array[start:stop, :rows, :cols].reshape(stop - start, rows, cols // factor, factor)
        part = across[: stop - start]
        np.add(within[..., 0], within[..., 1], out=part, dtype=np.float32)
        for b in range(2, factor):
            part += within[..., b]
        blocks = part.reshape(stop - start, rows // factor, factor, cols // factor)
        total = out[start:stop]
        np.add(blocks[:, :, 0], blocks[:, :, 1], out=total)
        for a in range(2, factor):
            total += blocks[:, :, a]
    out /= np.float32(factor * factor)
    return out
