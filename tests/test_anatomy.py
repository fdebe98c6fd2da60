"""The anatomical check of a femoral head pair: real hips pass, other round things do not."""

from __future__ import annotations

import pytest

from hipdx.imaging.anatomy import INTER_HEAD_DISTANCE_MM, MAX_AP_OFFSET_MM, MAX_LEVEL_OFFSET_MM, pair_problems

from conftest import SHARED, shared_data

#: Head pairs found on the three real pelvis T1 series (left centre, right centre, radii), mm.
REAL_PELVIS_PAIRS = [
    ([117.4, -9.8, -10.7], [-53.9, -12.6, -16.5], 18.5, 18.0),
    ([64.5, 5.7, -51.8], [-110.6, 5.3, -49.8], 19.0, 19.0),
    ([77.5, -4.3, 6.2], [-102.5, -6.8, 0.6], 19.5, 18.5),
]


@pytest.mark.parametrize("pair", REAL_PELVIS_PAIRS)
def test_real_hips_are_plausible(pair) -> None:
    assert pair_problems(*pair) == []


def test_circles_on_a_sacroiliac_study_are_not_femoral_heads() -> None:
    # the pair the Hough search returns on the real SIJ study 1007: 122 mm apart
    problems = pair_problems([73.5, 48.2, -144.4], [-48.3, 46.6, -147.6], 16.5, 16.5)
    assert len(problems) == 1 and "122 mm apart" in problems[0]


def test_each_rule_names_its_measurement() -> None:
    low, high = INTER_HEAD_DISTANCE_MM
    assert "apart" in pair_problems([high / 2 + 10, 0, 0], [-high / 2 - 10, 0, 0], 20, 20)[0]
    assert "not to the patient's left" in pair_problems([-80, 0, 0], [80, 0, 0], 20, 20)[0]
    tilted = pair_problems([80, 0, MAX_LEVEL_OFFSET_MM + 5], [-80, 0, 0], 20, 20)
    assert len(tilted) == 1 and "cranio-caudally" in tilted[0]
    uneven = pair_problems([80, 0, 0], [-80, 0, 0], 17, 27)
    assert len(uneven) == 1 and "radii differ" in uneven[0]
    rotated = pair_problems([80, MAX_AP_OFFSET_MM + 5, 0], [-80, 0, 0], 20, 20)
    assert len(rotated) == 1 and "front to back" in rotated[0]
    assert pair_problems([80, MAX_AP_OFFSET_MM - 1, MAX_LEVEL_OFFSET_MM - 1], [-80, 0, 0], 20, 21.5) == []


SIJ = SHARED / "data" / "mri" / "sij-stir" / "1007"


@pytest.mark.real_data
def test_a_sacroiliac_study_yields_no_hip_measurements() -> None:
    """Real SIJ T1 + STIR: round structures exist, but no femoral head pair, so nothing is measured."""
    shared_data(SIJ)
    from hipdx.imaging.analyze import analyze_study
    from hipdx.imaging.io import read_study

    analysis = analyze_study(read_study(SIJ).volumes)
    for side in (analysis.sides.left, analysis.sides.right):
        assert side.femoral_head is None
        assert side.edema.volume_ml is None
        assert side.subchondral_band.present.value == "unknown"
    assert any("femoral head" in w for w in analysis.warnings)


def test_a_circle_without_a_joint_medially_above_it_is_no_femoral_head() -> None:
    from hipdx.imaging.anatomy import MIN_ROOF_SHARE, head_problems

    assert head_problems(20.0, 1.0) == [] and head_problems(20.0) == []
    assert head_problems(20.0, float("nan")) == []  # no ray inside the image: not checked
    (problem,) = head_problems(20.0, MIN_ROOF_SHARE - 0.2)
    assert "greater trochanter" in problem and "65 %" in problem
    assert len(head_problems(14.0, 0.1)) == 2


PELVIS = SHARED / "data" / "mri" / "pelvis-t1"


@pytest.mark.real_data
@pytest.mark.parametrize("series", ["series-01", "series-02", "series-03"])
def test_every_real_head_has_its_joint_medially_above(series) -> None:
    """Measured 1.0 on all six (and on the 41 darkened heads of test_real_anatomy.py)."""
    shared_data(PELVIS)
    from hipdx.imaging.anatomy import MIN_ROOF_SHARE
    from hipdx.imaging.heads import find_femoral_heads, roof_share
    from hipdx.imaging.io import read_study

    (t1,) = read_study(PELVIS / series).volumes
    for head in find_femoral_heads(t1):
        assert roof_share(t1, head.side, head.center_mm, head.radius_mm) >= MIN_ROOF_SHARE
        # The same circle moved 40 mm laterally and 15 mm down, where the greater trochanter lies.
        lateral = -1.0 if head.side.value == "right" else 1.0
        trochanter = head.center_mm + [40.0 * lateral, 0.0, -15.0]
        assert roof_share(t1, head.side, trochanter, head.radius_mm) < MIN_ROOF_SHARE
