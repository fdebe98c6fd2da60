"""The MRI measured, in the case's terms: the bridge from an :class:`MriAnalysis` to a :class:`Case`.

:func:`to_imaging_findings` gives one side's findings as ``ImagingFindings`` fields;
:func:`case_with_mri` adds them to a case as one more imaging study, dated by the study or by
the days given, and validated like any other input.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hipdx.case import Case, parse_case
from hipdx.case.model import EdemaExtent, Presence, Side
from hipdx.errors import InputError, Problem
from hipdx.imaging import validate
from hipdx.imaging.parameters import BAND_CUTOFF_MM, BAND_INDETERMINATE_MM
from hipdx.imaging.results import MriAnalysis

__all__ = ["case_with_mri", "to_imaging_findings"]


def to_imaging_findings(analysis: MriAnalysis, side: Side | str) -> dict[str, Any]:
    """The MRI findings of one side in the case model's terms (``ImagingFindings`` fields).

    Only what was measured is given; anything not measured is left out (unknown).
    """
    side = Side(side)
    if side not in (Side.left, Side.right):
        raise ValueError(f"side must be left or right, not {side.value!r}")
    out = getattr(analysis.sides, side.value)
    findings: dict[str, Any] = {}
    if out.edema.extent is not EdemaExtent.unknown:
        present = out.edema.extent is not EdemaExtent.none
        findings["edema"] = Presence.present.value if present else Presence.absent.value
        findings["stir_high"] = findings["edema"]
        findings["edema_extent"] = out.edema.extent.value
    if out.subchondral_band.present is not Presence.unknown:
        findings["subchondral_band"] = out.subchondral_band.present.value
        if out.subchondral_band.present is Presence.present:
            # A thickness not decided for another reason than the cut-off's margin (which the
            # differential and the staging apply themselves) is not given: they then take the band
            # as present, its thickness unknown.
            t = out.subchondral_band.thickness_mm
            trusted = not out.subchondral_band.indeterminate or (
                t is not None and abs(t - BAND_CUTOFF_MM) < BAND_INDETERMINATE_MM)
            if t and trusted:
                findings["subchondral_band_thickness_mm"] = out.subchondral_band.thickness_mm
            if out.subchondral_band.length_mm:
                findings["subchondral_band_length_mm"] = out.subchondral_band.length_mm
    if out.acetabular_edema.present is not Presence.unknown:
        findings["acetabular_edema"] = out.acetabular_edema.present.value
    if out.effusion.present is not Presence.unknown:
        findings["effusion"] = out.effusion.present.value
    return findings


def case_with_mri(case: Case, analysis: MriAnalysis, days_since_onset: float | None = None,
                  today: dt.date | None = None) -> tuple[Case, list[str]]:
    """The case with the measured MRI added as one more imaging study, and what was decided.

    The side is the case's side; for a case whose side is not one hip (both or unknown),
    the side with more edema is used and a note says so. The study is timed by
    ``days_since_onset`` when given, else dated by the DICOM StudyDate of the T1 series (a date
    before the onset or after the assessment is then an input error naming it). The measured
    study is validated like any other input. An analysis resting on damaged pixels
    (``analysis.damaged_pixels``) adds nothing, and a note says why.

    Parameters
    ----------
    today
        The assessment date when the case gives no ``assessed_on`` (for checking the StudyDate).

    Raises
    ------
    InputError
        The case with the study is invalid, or the StudyDate puts the MRI before the onset, more
        than 3,650 days after it or after the assessment (the message names StudyDate and
        suggests ``--mri-days``).
    """
    notes: list[str] = []
    if analysis.damaged_pixels:
        notes += [f"the MRI adds no finding: {d}" for d in analysis.damaged_pixels]
        return case, notes
    side = case.side
    if side not in (Side.left, Side.right):
        left, right = analysis.sides.left.edema.volume_ml or 0.0, analysis.sides.right.edema.volume_ml or 0.0
        side = Side.left if left >= right else Side.right
        notes.append(f"the case gives no single side; the MRI findings of the {side.value} hip (more edema) were used")
    findings = to_imaging_findings(analysis, side)
    if not findings:
        notes.append(f"nothing could be measured on the {side.value} hip; the MRI adds no finding")
        return case, notes
    raw = case.model_dump(mode="json", exclude_defaults=True)
    study: dict[str, Any] = {"modality": "mri", "findings": findings}
    if days_since_onset is not None:
        study["days_since_onset"] = days_since_onset
    elif analysis.provenance.study_date is not None:
        study["date"] = analysis.provenance.study_date.isoformat()
        notes.append(f"the MRI is dated {study['date']} (its DICOM StudyDate); --mri-days would override it")
    raw["imaging"] = [*raw.get("imaging", []), study]
    notes.append(f"MRI findings measured on the {side.value} hip: " + ", ".join(f"{k} = {v}" for k, v in findings.items()))
    band = getattr(analysis.sides, side.value).subchondral_band
    if band.undecided_because and "subchondral_band_thickness_mm" not in findings:
        held = (f"the band's thickness ({band.thickness_mm:g} mm measured) is not given: it counts as present, thickness unknown"
                if band.present is Presence.present else "no band was found, but the band is not given as absent")
        notes.append(f"{held} ({band.undecided_because})")
    try:
        # the case's one timeline check (hipdx.case.timeline) judges the StudyDate like any date
        measured = parse_case(raw, today)
    except InputError as exc:
        index = len(raw["imaging"]) - 1
        dated = [p for p in exc.problems if p.field.startswith(f"imaging.{index}.")]
        if "date" not in study or not dated:
            raise
        raise InputError(
            "the MRI cannot be dated by its DICOM StudyDate; give the days from the onset to the MRI (--mri-days)",
            [Problem(f"{validate.tag_name('StudyDate')} of the T1 series", p.reason) for p in dated],
        ) from None
    return measured, notes
