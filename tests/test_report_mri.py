"""The hip MRI report: every measured value appears, nothing unmeasured is filled in."""

from __future__ import annotations

import pytest

from hipdx.case.model import Presence
from hipdx.imaging.analyze import MriAnalysis
from hipdx.report.mri import DISCLAIMER, format_mri_analysis

from conftest import Phantoms


@pytest.fixture(scope="module")
def analysis(phantoms: Phantoms) -> MriAnalysis:
    report = {"report": dict(seed=5, side="right", edema_ml=20.0, band_mm=4.0, slices=30, rows=256, cols=256, pixel_mm=1.2)}
    return phantoms.analyse(report)["report"][1]


def _row(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(label))


def test_text_report_shows_both_sides_with_the_measured_values(analysis: MriAnalysis) -> None:
    text = format_mri_analysis(analysis)
    right, left = analysis.sides.right, analysis.sides.left
    assert DISCLAIMER in text
    edema_row = _row(text, "edema volume")
    assert f"{right.edema.volume_ml:.1f} mL" in edema_row
    assert ("none" in edema_row) == (left.edema.volume_ml == 0)
    head_row = _row(text, "femoral head")
    for side in (right, left):
        assert f"r {side.femoral_head.radius_mm:.1f} mm" in head_row
    band_row = _row(text, "subchondral low-signal band")
    assert f"{right.subchondral_band.thickness_mm:.1f} mm thick" in band_row
    assert band_row.rstrip().endswith(left.subchondral_band.present.value)
    # right column comes first, as the radiologist reads a coronal image
    assert band_row.index("mm thick") < band_row.index(left.subchondral_band.present.value, len("subchondral low-signal band"))
    assert "more edema on the right" in text
    for name, value in analysis.provenance.series_used.items():
        assert f"{name}: {value}" in text


def test_markdown_report_is_a_table_with_the_same_values(analysis: MriAnalysis) -> None:
    md = format_mri_analysis(analysis, markdown=True)
    assert "| measure | right | left |" in md
    assert f"| edema volume | {analysis.sides.right.edema.volume_ml:.1f} mL |" in md


def test_unmeasured_values_say_so_and_are_not_invented(analysis: MriAnalysis) -> None:
    missing = analysis.model_copy(deep=True)
    missing.sides.left.femoral_head = None
    missing.sides.left.edema.volume_ml = None
    missing.sides.left.edema.fraction = None
    missing.sides.left.subchondral_band.present = Presence.unknown
    missing.sides.left.effusion.present = Presence.unknown
    missing.side_to_side_edema_ml = None
    missing.warnings = ["left femoral head not found"]
    text = format_mri_analysis(missing)
    assert _row(text, "femoral head").rstrip().endswith("not found")
    for label in ("edema volume", "edema extent", "subchondral low-signal band", "joint effusion"):
        assert _row(text, label).rstrip().endswith("not measured"), label
    assert "not comparable" in text
    assert "warning: left femoral head not found" in text


def test_an_indeterminate_band_is_flagged_with_a_note(analysis: MriAnalysis) -> None:
    edited = analysis.model_copy(deep=True)
    edited.sides.right.subchondral_band.indeterminate = True
    edited.sides.right.subchondral_band.undecided_because = "within 0.5 mm of the 4 mm cut-off"
    text = format_mri_analysis(edited)
    assert "(indeterminate)" in _row(text, "subchondral low-signal band")
    assert "Right band thickness is not decided against the 4 mm cut-off (Vande Berg): within 0.5 mm of the 4 mm cut-off;" in text
    edited.sides.right.subchondral_band.undecided_because = "the head's T1 marrow is 0.70 x the other head's"
    assert "Right band thickness is not decided against the 4 mm cut-off (Vande Berg): the head's T1 marrow is 0.70 x" in (
        format_mri_analysis(edited))
    # No band found under marrow that dark: not "absent", and not "not measured" either.
    edited.sides.right.subchondral_band = edited.sides.right.subchondral_band.model_copy(update={
        "present": Presence.unknown, "thickness_mm": None, "length_mm": None, "indeterminate": False})
    row = _row(format_mri_analysis(edited), "subchondral low-signal band")
    assert "none found, absence not decided" in row  # the right column; the left one stays "absent"


def test_markdown_escapes_series_descriptions_and_warnings(analysis: MriAnalysis) -> None:
    provenance = analysis.provenance.model_copy(update={
        "series_used": {"t1": '<img src=x onerror="alert(1)">'},
        "series_choice": {"t1": "coronal; not used: <script>x</script> (fat-suppressed)"},
    })  # the provenance is a frozen output: a changed copy
    hostile = analysis.model_copy(deep=True, update={"provenance": provenance})
    hostile.warnings = ["t1 series <b>T1</b>: & more"]
    md = format_mri_analysis(hostile, markdown=True)
    assert "<img" not in md and "<script>" not in md and "<b>" not in md
    assert "&lt;img src=x" in md and "&lt;script&gt;" in md and "&lt;b&gt;T1&lt;/b&gt;: &amp; more" in md
    assert "<img" in format_mri_analysis(hostile)  # the terminal text is not Markdown: shown as it is
