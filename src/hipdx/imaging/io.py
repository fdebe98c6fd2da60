"""Read an MRI study (a folder of DICOM files, or NIfTI files) into :class:`Volume` objects (the public face).

The work is done by :mod:`~hipdx.imaging.study` (the folder), :mod:`~hipdx.imaging.dicom_slices`
(DICOM headers and pixels), :mod:`~hipdx.imaging.assemble` (slices into a volume),
:mod:`~hipdx.imaging.nifti`, :mod:`~hipdx.imaging.classify` (the kind of a series) and
:mod:`~hipdx.imaging.series` (what is read).

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

from hipdx.imaging.classify import classify, classify_description, describe_acquisition
from hipdx.imaging.nifti import read_nifti
from hipdx.imaging.series import Series, Study, volumes_of
from hipdx.imaging.study import read_study

__all__ = ["Series", "Study", "classify", "classify_description", "describe_acquisition", "read_nifti", "read_study",
           "volumes_of"]
