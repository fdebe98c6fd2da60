"""Osteonecrosis of the femoral head: ARCO 2019 (Yoon et al. 2020), Ficat-Arlet (modified; Ficat 1985) and
Steinberg 1995 with A/B/C extent where the inputs allow.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from hipdx.case.model import ContrastPattern, JointSpace, Presence, Uptake
from hipdx.knowledge.treatment import TreatmentKnowledge
from hipdx.reasoning.frozen import Frozen
from hipdx.reasoning.staging.reading import (
    Criterion,
    MRI,
    Reader,
    SCAN,
    STRUCTURAL,
    StageInput,
    StageStatus,
    XR_CT,
    any_of,
    dedupe,
    presence,
)


class StageResult(Frozen):
    """The stage of one published system."""

    system: str
    name: str
    status: StageStatus
    stage: str | None = None
    definition: str | None = None
    decided_by: list[StageInput] = []
    missing: list[str] = Field(default=[], description="case fields that would decide or refine the stage")
    notes: list[str] = []
    refs: list[str] = []

def _necrotic_lesion(reader: Reader) -> Criterion:
    """MRI or bone scan positive for a necrotic lesion (ARCO/Ficat/Steinberg stage I).

    MRI: double-line sign, a necrotic segment (``necrotic_extent_percent`` > 0) or
    subchondral non-enhancement after contrast. Absent when an MRI reports the double-line
    sign absent or a necrotic extent of 0 and nothing positive. A bone scan counts only when
    positive (photopenic area): a negative scan does not exclude osteonecrosis.
    """
    inputs: list[StageInput] = []
    negative: list[StageInput] = []
    double_line = reader.latest("double_line_sign", MRI)
    if double_line is not None:
        (inputs if double_line[0] is Presence.present else negative).append(double_line[1])
    extent = reader.latest("necrotic_extent_percent", STRUCTURAL)
    if extent is not None:
        (inputs if extent[0] > 0 else negative).append(extent[1])
    contrast = reader.latest("contrast_pattern", MRI)
    if contrast is not None and contrast[0] is ContrastPattern.subchondral_non_enhancement:
        inputs.append(contrast[1])
    scan = reader.latest("uptake", SCAN)
    if scan is not None and scan[0] is Uptake.photopenic:
        inputs.append(scan[1])
    if inputs:
        return Criterion(Presence.present, inputs)
    if negative:
        return Criterion(Presence.absent, negative)
    return Criterion(Presence.unknown, missing=["double_line_sign (MRI)", "necrotic_extent_percent"])


def _radiographic_change(reader: Reader) -> Criterion:
    """Sclerosis or cystic change (lucency) of the head on radiograph or CT (stage II)."""
    return any_of(
        presence(reader, "subchondral_sclerosis", XR_CT, "subchondral_sclerosis (radiograph or CT)"),
        presence(reader, "subchondral_lucency", XR_CT, "subchondral_lucency (radiograph or CT)"),
    )


def _collapse(reader: Reader) -> tuple[Criterion, float | None, list[str]]:
    """Flattening of the head: radiograph or CT first; MRI only when neither reports it."""
    notes: list[str] = []
    found = reader.latest("collapse", XR_CT)
    if found is None:
        found = reader.latest("collapse", MRI)
        if found is not None and found[0] is Presence.present:
            notes.append(
                "Collapse is reported on MRI only; the staging systems define it on radiograph or CT "
                "(CT is the most sensitive for the pericollapse stage): confirm on CT."
            )
    if found is None:
        return Criterion(Presence.unknown, missing=["collapse (radiograph or CT)"]), None, notes
    value, inp = found
    depth = None
    inputs = [inp]
    if value is Presence.present:
        idx = int(inp.field.split(".")[1])
        depth = reader.case.imaging[idx].findings.collapse_depth_mm
        if depth is not None:
            field = f"imaging.{idx}.findings.collapse_depth_mm"
            reader.used[field] = None
            inputs.append(StageInput(field=field, value=f"{depth:g}", days_since_onset=inp.days_since_onset))
    return Criterion(value, inputs), depth, notes


def _fracture_of_head(reader: Reader) -> tuple[Criterion, Criterion, float | None, list[str]]:
    """(crescent or subchondral fracture on radiograph/CT, collapse, depth mm, notes)."""
    crescent = presence(reader, "crescent_sign", XR_CT, "crescent_sign (radiograph or CT)")
    line = reader.latest("subchondral_fracture_line", XR_CT)
    if line is not None and line[0] is Presence.present:  # counts when present; its absence adds nothing
        crescent = Criterion(Presence.present, [line[1]])
    collapse, depth, notes = _collapse(reader)
    return crescent, collapse, depth, notes


def _joint_narrowing(reader: Reader) -> Criterion:
    found = reader.latest("joint_space", STRUCTURAL)
    if found is None:
        return Criterion(Presence.unknown, missing=["joint_space"])
    value, inp = found
    narrowed = value in (JointSpace.narrowed, JointSpace.destroyed)
    return Criterion(Presence.present if narrowed else Presence.absent, [inp])

def _result(
    system: str,
    tk: TreatmentKnowledge,
    status: StageStatus,
    stage: str | None,
    decided_by: Iterable[StageInput] = (),
    missing: Iterable[str] = (),
    notes: Iterable[str] = (),
    definition: str | None = None,
) -> StageResult:
    spec = tk.staging.systems[system]
    base = stage.rstrip("ABC") if stage and system == "steinberg" else stage
    return StageResult(
        system=system,
        name=spec.name,
        status=status,
        stage=stage,
        definition=definition or (spec.stages.get(stage) or spec.stages.get(base or "") if stage else None),
        decided_by=dedupe(decided_by),
        missing=dedupe(missing),
        notes=list(notes),
        refs=spec.refs,
    )


class OsteonecrosisFindings:
    """The findings every osteonecrosis system reads, read once."""

    def __init__(self, reader: Reader) -> None:
        self.lesion = _necrotic_lesion(reader)
        self.change = _radiographic_change(reader)
        self.crescent, self.collapse, self.depth, self.collapse_notes = _fracture_of_head(reader)
        self.narrowing = _joint_narrowing(reader)
        self.head_fracture = any_of(self.crescent, self.collapse)
        extent = reader.latest("necrotic_extent_percent", STRUCTURAL)
        self.extent = None if extent is None else float(extent[0])
        self.extent_input = None if extent is None else extent[1]
        self.joint = reader.latest("joint_space", STRUCTURAL)


def _ladder(
    f: OsteonecrosisFindings, stages: list[tuple[str, Criterion]]
) -> tuple[StageStatus, str | None, list[StageInput], list[str]]:
    """The highest stage whose criterion is present; 'at least' when a higher one is unknown.

    ``stages`` runs from the lowest to the highest. Nothing present: not applicable when
    every criterion is absent, undecidable otherwise.
    """
    highest = None
    for i, (_, criterion) in enumerate(stages):
        if criterion.state is Presence.present:
            highest = i
    if highest is None:
        inputs = [inp for _, c in stages for inp in c.inputs]
        missing = [m for _, c in stages for m in c.missing]
        if all(c.state is Presence.absent for _, c in stages):
            return StageStatus.not_applicable, None, inputs, []
        return StageStatus.undecidable, None, inputs, missing
    stage, criterion = stages[highest]
    decided = list(criterion.inputs)
    unknown_above = [c for _, c in stages[highest + 1 :] if c.state is Presence.unknown]
    decided += [inp for _, c in stages[highest + 1 :] if c.state is Presence.absent for inp in c.inputs]
    if unknown_above:
        return StageStatus.at_least, stage, decided, [m for c in unknown_above for m in c.missing]
    return StageStatus.staged, stage, decided, []


def _osteonecrosis_gate(f: OsteonecrosisFindings) -> Criterion:
    """Joint-space narrowing stages only a head with a lesion, sclerosis/cysts or fracture."""
    return any_of(f.lesion, f.change, f.head_fracture)


def _stage_iv(f: OsteonecrosisFindings) -> Criterion:
    """Joint-space narrowing in a head with a necrotic lesion, sclerosis/cysts or fracture."""
    gate = _osteonecrosis_gate(f)
    if gate.state is Presence.absent or f.narrowing.state is Presence.absent:
        return Criterion(Presence.absent, f.narrowing.inputs)
    if f.narrowing.state is Presence.present and gate.state is Presence.present:
        return Criterion(Presence.present, f.narrowing.inputs)
    return Criterion(Presence.unknown, f.narrowing.inputs, f.narrowing.missing or gate.missing)


def _narrowing_note(f: OsteonecrosisFindings) -> list[str]:
    if f.narrowing.state is Presence.present and _osteonecrosis_gate(f).state is not Presence.present:
        return ["Joint-space narrowing without a necrotic lesion, sclerosis, cysts or collapse is not staged as osteonecrosis (consider osteoarthritis)."]
    return []


def _stage_i_note(f: OsteonecrosisFindings) -> list[str]:
    return [] if f.lesion.state is not Presence.unknown else [
        "Marrow edema alone is not a positive MRI for osteonecrosis; stage I needs a necrotic lesion "
        "(double-line sign, necrotic segment) on MRI or a photopenic area on bone scan."
    ]


def stage_arco_2019(f: OsteonecrosisFindings, tk: TreatmentKnowledge) -> StageResult:
    """ARCO 2019: I MRI/scan positive, II sclerosis/cysts, III fracture/collapse (IIIA <= 2 mm), IV OA."""
    status, stage, decided, missing = _ladder(
        f, [("I", f.lesion), ("II", f.change), ("III", f.head_fracture), ("IV", _stage_iv(f))]
    )
    notes = list(f.collapse_notes) + _narrowing_note(f)
    if stage == "I" and f.change.state is Presence.unknown:
        notes.append("Stage I needs a normal radiograph; sclerosis and cystic change are not reported.")
    if stage == "III":
        cut = tk.threshold("arco_iiia_max_depression_mm").value
        if f.collapse.state is Presence.absent:
            stage = "IIIA"  # subchondral fracture or crescent without flattening: no depression
            decided += f.collapse.inputs
        elif f.collapse.state is Presence.present and f.depth is not None:
            stage = "IIIA" if f.depth <= cut else "IIIB"
            decided += f.collapse.inputs
        else:
            missing = list(missing) + ["collapse_depth_mm (radiograph or CT)"]
            notes.append(f"IIIA (depression {cut:g} mm or less) vs IIIB needs the depth of depression.")
    if status is StageStatus.undecidable:
        notes += _stage_i_note(f)
    return _result("arco_2019", tk, status, stage, decided, missing, notes)


def stage_ficat_arlet(f: OsteonecrosisFindings, tk: TreatmentKnowledge) -> StageResult:
    """Ficat-Arlet (modified): I MRI/scan abnormal, II sclerosis/cysts, III crescent/collapse, IV OA."""
    status, stage, decided, missing = _ladder(
        f, [("I", f.lesion), ("II", f.change), ("III", f.head_fracture), ("IV", _stage_iv(f))]
    )
    notes = list(f.collapse_notes) + _narrowing_note(f)
    if status is StageStatus.undecidable:
        notes += _stage_i_note(f)
    return _result("ficat_arlet", tk, status, stage, decided, missing, notes)


def _extent_class(percent: float, tk: TreatmentKnowledge) -> str:
    if percent < tk.threshold("steinberg_extent_a_below_percent").value:
        return "A"
    if percent > tk.threshold("steinberg_extent_c_above_percent").value:
        return "C"
    return "B"


def stage_steinberg(f: OsteonecrosisFindings, tk: TreatmentKnowledge) -> StageResult:
    """Steinberg 1995: I-VI with A/B/C extent (stages I-II by head share, IV by depression)."""
    destroyed = f.joint is not None and f.joint[0] is JointSpace.destroyed
    v = _stage_iv(f)
    vi = Criterion(Presence.present, v.inputs) if v.state is Presence.present and destroyed else (
        Criterion(Presence.unknown, missing=v.missing) if v.state is Presence.unknown else Criterion(Presence.absent, v.inputs)
    )
    status, stage, decided, missing = _ladder(
        f,
        [("I", f.lesion), ("II", f.change), ("III", f.crescent), ("IV", f.collapse), ("V", v), ("VI", vi)],
    )
    notes = list(f.collapse_notes) + _narrowing_note(f)
    if stage in ("I", "II"):
        if f.extent is not None and f.extent > 0 and f.extent_input is not None:
            stage += _extent_class(f.extent, tk)
            decided.append(f.extent_input)
        else:
            missing = list(missing) + ["necrotic_extent_percent"]
            notes.append("The A/B/C extent needs the share of the femoral head involved (necrotic_extent_percent).")
    elif stage == "III":
        notes.append("The A/B/C grade of stage III needs the share of the articular surface under the crescent, which hipdx does not record.")
    elif stage == "IV":
        low = tk.threshold("steinberg_flattening_a_below_mm").value
        high = tk.threshold("steinberg_flattening_c_above_mm").value
        if f.depth is None:
            missing = list(missing) + ["collapse_depth_mm"]
            notes.append("The A/B/C grade of stage IV needs the depth of depression or the collapsed share of the surface.")
        elif f.depth > high:
            stage += "C"
        elif f.depth >= low:
            notes.append(
                f"Depression {f.depth:g} mm gives at least IVB ({low:g}-{high:g} mm); IVC if more than 30% of the "
                "surface has collapsed, which hipdx does not record."
            )
            stage += "B"
        else:
            notes.append(
                f"Depression {f.depth:g} mm is under {low:g} mm: IVA only if under 15% of the surface has collapsed "
                "(not recorded by hipdx), so the grade is left open."
            )
    if status is StageStatus.undecidable:
        notes += _stage_i_note(f)
    return _result("steinberg", tk, status, stage, decided, missing, notes)
