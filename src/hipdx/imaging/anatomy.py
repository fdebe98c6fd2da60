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

#: Distance between the two femoral head centres (mm). Reported: 16.0 +/- 0.8 cm on transverse
#: CT of 200 adults ("Variability in the range of inter-anterior superior iliac spine distance
#: and its correlation with femoral head centre. A prospective computed tomography study of 200
#: adults", Skeletal Radiol, doi:10.1007/s00256-009-0791-x). Accepted range: estimate, the mean
#: +/- 5 SD (120-200 mm) widened to 125-210 mm for a tilted or rotated pelvis and the very large;
#: the three real pelvis series here measure 171-180 mm.
INTER_HEAD_DISTANCE_MM = (125.0, 210.0)

#: Cranio-caudal offset of the two head centres (mm). Estimate: both heads sit in their acetabula,
#: so the offset is the pelvis's coronal tilt over ~16 cm; 30 mm is a tilt of ~11 degrees, beyond
#: which a patient positioned for hip MRI is implausible. No published limit was found.
MAX_LEVEL_OFFSET_MM = 30.0

#: Antero-posterior offset of the two head centres (mm). Estimate: the pelvis's rotation about the
#: vertical axis over ~16 cm; 25 mm is ~9 degrees, beyond which a patient positioned for hip MRI
#: is implausible (the three real pairs here: 0-2.6 mm). A circle found near a hip prosthesis
#: (simulated: a signal void with a bright rim) lay 30 mm behind the other head.
MAX_AP_OFFSET_MM = 25.0

#: Ratio of the two head radii. Estimate: the two femoral heads of one adult are near-symmetric
#: (mean diameters of right and left hips differ by about 1 mm on radiographs of 200 adults,
#: Kour et al., NeuroQuantology 2023;21(2)); the three real pelvis pairs here measure ratios of
#: 1.02-1.03, and the circles that replaced a head whose T1 marrow was darkened to 0.5-0.7
#: (the greater trochanter, 27-42 mm away) 1.13-1.22. Beyond 1.10 one circle is not a femoral
#: head, or the head is deformed (collapse, coxa magna), which a radiologist should read.
MAX_RADIUS_RATIO = 1.10


#: Smallest radius of an adult femoral head's marrow edge (mm). Estimate: femoral head radius on CT
#: of 50 adolescents aged 14-16 was 21.9 +/- 1.1 mm in girls and 24.5 +/- 1.7 mm in boys (Jamali
#: et al., "What is normal femoral head/neck anatomy? An analysis of radial CT reconstructions in
#: adolescents"); the girls' mean - 3 SD is 18.5 mm, and hipdx measures the marrow edge 1.6-1.9 mm
#: inside the bone surface (phantoms), so a circle under 16 mm is no adult femoral head.
MIN_HEAD_RADIUS_MM = 16.0


#: Share of the rays medially above a circle's centre that must meet dark T1 signal (the head's
#: cortex, the joint space, the acetabular plate; :func:`hipdx.imaging.heads.roof_share`). Estimate
#: from what was measured here: every real femoral head 1.0 (41 heads on the three real series, with
#: the head and neck darkened to 0.4-0.7 of their T1 signal or not); the greater trochanter circles
#: that replaced darkened heads 0.04-0.67 (11), 5 of them with a marrow radius >= 16 mm and radii
#: within 1.10 of the other head's, so no other check refused them.
MIN_ROOF_SHARE = 0.85


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
