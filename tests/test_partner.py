"""The second search for a femoral head beside the other one (``hipdx.imaging.partner``).

Synthetic pelvis of ``test_heads`` (muscle at 0.4, two marrow spheres inside a dark cortex) with a
dark joint space and acetabular plate over the upper half of each head. The
left head's marrow is lowered to 0.45, just above muscle (edematous marrow on T1, about muscle
level), or to a signal void (a metal implant); the real-anatomy cases are in
``test_real_anatomy.py``.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest

from hipdx.case.model import Side
from hipdx.imaging.analyze import analyze_study
from hipdx.imaging.heads import find_femoral_heads
from hipdx.imaging.partner import find_partner
from hipdx.imaging.volume import Volume

from test_heads import synthetic_pelvis  # tests/ is on the path (conftest); no `tests` package, see docs/testing.md

RIGHT, LEFT = (-70.0, 30.0, -20.0), (80.0, 34.0, -22.0)
RADIUS = 22.0


@functools.cache
def _pelvis(left_marrow: float | None) -> Volume:
    """Both heads in their joints; the left head's marrow set to ``left_marrow`` (None: no left head
    and no left joint, only muscle). Built once per value, its array read-only."""
    vol = synthetic_pelvis([RIGHT] if left_marrow is None else [RIGHT, LEFT], radius_mm=RADIUS)
    k, j, i = np.indices(vol.array.shape)
    points = vol.to_patient(np.stack([k, j, i], -1).astype(float))
    array = vol.array.copy()
    for centre in (RIGHT,) if left_marrow is None else (RIGHT, LEFT):
        offset = points - np.asarray(centre)
        distance = np.linalg.norm(offset, axis=-1)
        # The joint space and the acetabular plate over the upper half of the head: dark on T1.
        joint = (distance > RADIUS + 1.5) & (distance <= RADIUS + 4.0) & (offset[..., 2] > -5.0)
        array[joint] = 0.08
    if left_marrow is not None:
        inside = np.linalg.norm(points - np.asarray(LEFT), axis=-1) <= RADIUS - 1.0
        array[inside] = np.clip(array[inside] - 1.0 + left_marrow, 0, None)
    array.flags.writeable = False
    return replace(vol, array=array)


@pytest.fixture(scope="module")
def right_head():
    heads = {h.side: h for h in find_femoral_heads(_pelvis(1.0))}
    return heads[Side.right]


@pytest.mark.slow  # head searches on a synthetic pelvis (seconds)
def test_a_head_darkened_to_muscle_level_is_found_beside_the_other(right_head):
    vol = _pelvis(0.45)
    search = find_partner(vol, right_head)
    assert search.head is not None, search.reason
    assert search.head.side is Side.left and search.head.found_by == "partner search"
    # Measured: 0.3 mm off; its radius is the right head's by construction.
    assert np.linalg.norm(search.head.center_mm - np.asarray(LEFT)) < 1.5
    assert search.head.radius_mm == right_head.radius_mm
    assert 0.35 < search.t1_ratio < 0.6 and not search.void
    assert search.head.head_mask.any() and search.head.neck_mask.any()


def test_heads_the_whole_image_search_finds_are_kept():
    """The second search runs only for a head the first one missed (here it finds both); the
    whole analysis with the second search is tested on the real anatomy (test_real_anatomy.py)."""
    analysis = analyze_study([_pelvis(0.45)])
    assert analysis.sides.left.femoral_head.found_by == "image search"
    assert analysis.sides.right.femoral_head.found_by == "image search"
    assert not any("second search" in w for w in analysis.warnings)


@pytest.mark.slow  # head searches on a synthetic pelvis (seconds)
def test_a_signal_void_where_the_head_should_be_is_a_prosthesis_warning_not_a_head(right_head):
    vol = _pelvis(0.0)
    search = find_partner(vol, right_head)
    assert search.head is None and search.void
    assert search.t1_ratio < 0.2
    analysis = analyze_study([vol])
    assert analysis.sides.left.femoral_head is None
    assert analysis.sides.right.femoral_head is not None
    assert any("signal void where the femoral head should be" in w and "prosthesis" in w for w in analysis.warnings)


def test_no_head_is_invented_where_there_is_only_muscle(right_head):
    search = find_partner(_pelvis(None), right_head)
    assert search.head is None and not search.void
    assert "marrow-edge points" in search.reason


def test_a_hip_outside_the_field_of_view_is_said_so(right_head):
    vol = _pelvis(1.0)
    # Keep the columns up to the midline (patient right only).
    columns = int(np.floor(vol.to_index(np.array([0.0, 30.0, -20.0]))[2]))
    one_hip = Volume(vol.array[:, :, :columns].copy(), vol.affine, vol.kind, "one hip")
    search = find_partner(one_hip, right_head)
    assert search.head is None and "outside the T1 series' field of view" in search.reason
