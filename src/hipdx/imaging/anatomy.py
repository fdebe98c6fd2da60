"""Are the circles found on a coronal T1 image anatomically adult femoral heads?

The head search (:mod:`hipdx.imaging.heads`) always returns its best circles, even on an image
without hips (a sacroiliac or knee study, a wrong series): a round structure scores on any
image. Before any edema is measured on them, each circle (its size) and the pair (distance,
level, radii) are checked against adult anatomy; what fails is reported as "femoral head not
found" with the reason, never measured.

Pure: numbers in, reasons out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hipdx.imaging.parameters import param

#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "anatomy").
INTER_HEAD_DISTANCE_MM = param("anatomy.inter_head_distance_mm")

MAX_LEVEL_OFFSET_MM = param("anatomy.max_level_offset_mm")

MAX_AP_OFFSET_MM = param("anatomy.max_ap_offset_mm")

MAX_RADIUS_RATIO = param("anatomy.max_radius_ratio")


MIN_HEAD_RADIUS_MM = param("anatomy.min_head_radius_mm")


MIN_ROOF_SHARE = param("anatomy.min_roof_share")


def head_problems(radius_mm: float, roof_share: float | None = None) -> list[str]:
    """Reasons one circle is not a plausible adult femoral head (empty if plausible).

    ``roof_share``: share of the rays medially above its centre meeting dark T1 signal (not checked
    when None or nan: no ray inside the image).
    """
    problems = []
    if radius_mm < MIN_HEAD_RADIUS_MM:
        problems.append(
            f"the circle found has a marrow radius of {radius_mm:.1f} mm; an adult femoral head's is at least "
            f"{MIN_HEAD_RADIUS_MM:.0f} mm"
        )
    if roof_share is not None and roof_share == roof_share and roof_share < MIN_ROOF_SHARE:  # nan: unknown
        problems.append(
            f"no joint medially above the circle found (only {100 * roof_share:.0f} % of the rays there meet a dark "
            f"cortex, joint space or acetabulum; a femoral head's at least {100 * MIN_ROOF_SHARE:.0f} %): the "
            "greater trochanter?"
        )
    return problems


def pair_problems(
    left_center_mm: Sequence[float],
    right_center_mm: Sequence[float],
    left_radius_mm: float,
    right_radius_mm: float,
) -> list[str]:
    """Reasons the two circles are not a plausible pair of adult femoral heads (empty if plausible).

    Centres are in DICOM patient coordinates (LPS, mm): x is right-to-left, y is anterior-to-posterior,
    z is caudal-to-cranial.
    """
    left, right = np.asarray(left_center_mm, float), np.asarray(right_center_mm, float)
    problems = []
    distance = float(np.linalg.norm(left - right))
    low, high = INTER_HEAD_DISTANCE_MM
    if not low <= distance <= high:
        problems.append(
            f"the two candidate heads are {distance:.0f} mm apart; adult femoral head centres are "
            f"160 +/- 8 mm apart (accepted {low:.0f}-{high:.0f} mm)"
        )
    if left[0] <= right[0]:
        problems.append("the candidate left head is not to the patient's left of the right one")
    offset = abs(float(left[2] - right[2]))
    if offset > MAX_LEVEL_OFFSET_MM:
        problems.append(
            f"the candidate heads are {offset:.0f} mm apart cranio-caudally (at most {MAX_LEVEL_OFFSET_MM:.0f} mm accepted)"
        )
    depth = abs(float(left[1] - right[1]))
    if depth > MAX_AP_OFFSET_MM:
        problems.append(
            f"the candidate heads are {depth:.0f} mm apart front to back (at most {MAX_AP_OFFSET_MM:.0f} mm accepted)"
        )
    ratio = max(left_radius_mm, right_radius_mm) / max(min(left_radius_mm, right_radius_mm), 1e-6)
    if ratio > MAX_RADIUS_RATIO:
        problems.append(
            f"the candidate head radii differ too much ({left_radius_mm:.1f} vs {right_radius_mm:.1f} mm; "
            f"ratio at most {MAX_RADIUS_RATIO:g})"
        )
    return problems
