"""Both femoral heads on a coronal T1 series: centre, radius and a head-and-neck region (the public face).

The steps live in :mod:`~hipdx.imaging.head_search` (1-3), :mod:`~hipdx.imaging.head_fit` (4) and
:mod:`~hipdx.imaging.femur` (5, the model and its regions); shared intensity scaling in
:mod:`~hipdx.imaging.intensity`.

The method is the classical pipeline measured on real coronal T1 pelvis series
(``research/imaging.md`` 2.2-2.3; Memis et al. 2019 for Hough localisation of femoral heads):

1. intensity range from the 1st/99th percentiles of a subsample, in-plane block mean to about
   3.6 mm pixels (coarse search only);
2. directed circle votes on every coronal slice at once: gradient maxima inside the body vote for
   the centres 10-29 mm away towards the brighter side (fatty marrow inside the cortex);
3. sphere scores from the per-slice votes (a femoral head votes for the same in-plane centre on
   every slice it crosses, with the circle radius sqrt(R^2 - d^2)), the best pair of candidates
   on the two sides of the body midline (patient left = +x in LPS);
4. the sphere refined at full resolution: on every slice it cuts, rays from the centre find the
   steepest fall of T1 signal into the dark cortex, and a robust least-squares sphere is fitted to
   these marrow-edge points (a few rounds until it settles; centres within 0.3 mm on the phantoms);
5. regions from shape, not from marrow signal (edema and necrosis lower T1 marrow signal
   exactly where the region is needed): the head is the sphere, the neck a cylinder along
   the neck axis, the intertrochanteric region its continuation.
"""

from __future__ import annotations

from hipdx.imaging.femur import FemoralHead, reconcile_neck_axes
from hipdx.imaging.head_fit import roof_share
from hipdx.imaging.femur import HOUGH_RADII_MM
from hipdx.imaging.head_search import HOUGH_PIXEL_MM, find_femoral_heads
from hipdx.imaging.intensity import normalise

__all__ = ["HOUGH_PIXEL_MM", "HOUGH_RADII_MM", "FemoralHead", "find_femoral_heads", "normalise", "reconcile_neck_axes",
           "roof_share"]
