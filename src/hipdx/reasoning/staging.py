"""Staging of the femoral head and of the episode, from the imaging findings of a case.

Pure: no I/O, no clock. Each rule reads the most recent study that reports the finding it
needs; a finding that no study reports is *missing*, never normal. Every result names the
inputs that decided it and, when it cannot be decided, the inputs that are missing.

- Osteonecrosis: ARCO 2019 (Yoon et al. 2020), Ficat-Arlet (modified; Ficat 1985) and
  Steinberg 1995 with A/B/C extent where the inputs allow.
- Transient osteoporosis: phase of the episode (early / established / resolving), a
  pragmatic estimate (the literature has no numbered TOH stages), and bilateral or
  migratory patterns (regional migratory osteoporosis).
- Subchondral low-signal band: 4 mm or thicker suggests an irreversible lesion (Vande Berg
  et al. 2011); within 0.5 mm of 4 mm it is indeterminate.
- Femoral neck stress fracture: displaced, tension-side, compression-side under or at
  least 50% of the neck width (Shin and Gillingham-type grading), and the urgency of each.

Staging does not depend on the differential: it describes what the images show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from enum import Enum
from typing import Any

from pydantic import Field

from hipdx.reasoning.frozen import Frozen, OutputProvenance
from hipdx._version import __version__
from hipdx.case import Case, ImagingStudy, Modality
from hipdx.case.timeline import Timeline
from hipdx.case.model import ContrastPattern, EdemaExtent, FractureSide, JointSpace, Presence, Side, Uptake
from hipdx.knowledge.treatment import TreatmentKnowledge


class StageStatus(str, Enum):
    """How far a staging system could be applied to the case."""

    staged = "staged"
    #: the stage is at least the one given; a higher stage is not excluded (inputs missing)
    at_least = "at_least"
    undecidable = "undecidable"
    #: no finding the system stages (no necrotic lesion, crescent or collapse)
    not_applicable = "not_applicable"


class StageInput(Frozen):
    """One case input that decided a result: the dotted field, its value, and when it was seen."""

    field: str
    value: str
    days_since_onset: float | None = None

    def __str__(self) -> str:
        return f"{self.field} = {self.value}"


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


class TohPhase(Frozen):
    """Phase of a transient-osteoporosis episode: a pragmatic estimate, not a published stage."""

    phase: str = Field(description="early, established, resolving, undecidable, or not_staged (the differential does not support TOH)")
    beyond_expected_course: bool = False
    days_since_onset: float | None = None
    decided_by: list[StageInput] = []
    missing: list[str] = []
    estimate: bool = True
    note: str
    refs: list[str] = []


class EpisodePattern(Frozen):
    """Bilateral, recurrent or migratory involvement."""

    bilateral: Presence
    migratory: Presence = Field(description="another joint involved before or during this episode")
    regional_migratory_osteoporosis_pattern: bool
    decided_by: list[StageInput] = []
    missing: list[str] = []
    notes: list[str] = []
    refs: list[str] = []


class BandVerdict(str, Enum):
    not_reported = "not_reported"
    absent = "absent"
    reversible_pattern = "reversible_pattern"
    indeterminate = "indeterminate"
    irreversible_suggestive = "irreversible_suggestive"
    thickness_not_measured = "thickness_not_measured"


class SubchondralBand(Frozen):
    """The subchondral low-signal zone on MRI and what its thickness suggests."""

    verdict: BandVerdict
    thickness_mm: float | None = None
    length_mm: float | None = None
    other_irreversible_signs: list[str] = []
    decided_by: list[StageInput] = []
    missing: list[str] = []
    summary: str
    caveats: list[str] = []
    refs: list[str] = []


class NeckFracture(Frozen):
    """Grade of a femoral neck stress fracture and the urgency it implies."""

    grade: str = Field(
        description="not_reported, none, displaced, tension, compression_wide, compression_narrow, "
        "compression_width_unknown or side_unknown"
    )
    label: str
    urgency: str | None = Field(default=None, description="emergency, urgent or soon; None without a fracture line")
    action: str | None = None
    width_percent: float | None = None
    decided_by: list[StageInput] = []
    missing: list[str] = []
    refs: list[str] = []


class StagingProvenance(OutputProvenance):
    staging_data_version: str
    knowledge_digest: str
    inputs_used: list[str]
    inputs_missing: list[str]
    caveat: str


class StagingScope(Frozen):
    """Which conditions the staging was done for, and which parts were left out and why."""

    conditions: list[str] = Field(description="the conditions the differential supports; the parts of the staging apply to them")
    not_staged: list[str] = Field(default=[], description="parts not staged because the differential does not support their condition")


#: each part of the staging and the conditions it describes
STAGED_FOR: dict[str, tuple[str, ...]] = {
    "osteonecrosis": ("onfh",),
    "toh_phase": ("toh", "rmo"),
    "subchondral_band": ("toh", "rmo", "onfh", "sif"),
}


class Staging(Frozen):
    """Everything hipdx stages in one case."""

    case_id: str | None
    osteonecrosis: list[StageResult] = Field(description="ARCO 2019, Ficat-Arlet, Steinberg")
    toh_phase: TohPhase
    pattern: EpisodePattern
    subchondral_band: SubchondralBand
    femoral_neck_fracture: NeckFracture
    scope: StagingScope | None = Field(
        default=None, description="None: every part staged from the findings alone (no differential given)"
    )
    provenance: StagingProvenance

    def system(self, name: str) -> StageResult:
        for result in self.osteonecrosis:
            if result.system == name:
                return result
        raise KeyError(name)


# --- reading the case -------------------------------------------------------------------

_XR_CT = frozenset({Modality.radiograph, Modality.ct})
_MRI = frozenset({Modality.mri})
_STRUCTURAL = frozenset({Modality.radiograph, Modality.ct, Modality.mri})
_SCAN = frozenset({Modality.bone_scan})


def _known(value: Any) -> bool:
    return value is not None and getattr(value, "value", None) != "unknown"


class _Reader:
    """The most recent study reporting each finding (the knowledge base's rule)."""

    def __init__(self, timeline: Timeline) -> None:
        self.case = timeline.case
        self.timeline = timeline
        self.used: dict[str, None] = {}

    def latest(self, finding: str, modalities: frozenset[Modality]) -> tuple[Any, StageInput] | None:
        best: tuple[float, int] | None = None
        for i, study in enumerate(self.case.imaging):
            if study.modality in modalities and _known(getattr(study.findings, finding)):
                days = self.timeline.study(i)
                order = (days if days is not None else -1.0, i)
                if best is None or order >= best:
                    best = order
        if best is None:
            return None
        i = best[1]
        study = self.case.imaging[i]
        value = getattr(study.findings, finding)
        field = f"imaging.{i}.findings.{finding}"
        self.used[field] = None
        shown = value.value if isinstance(value, Enum) else f"{value:g}" if isinstance(value, float) else str(value)
        return value, StageInput(field=field, value=shown, days_since_onset=self.timeline.study(i))

    def all_of(self, finding: str, modalities: frozenset[Modality]) -> list[tuple[float | None, int, Any]]:
        """Every study reporting ``finding``, oldest first: (days, index, value)."""
        out = []
        for i, study in enumerate(self.case.imaging):
            value = getattr(study.findings, finding)
            if study.modality in modalities and _known(value):
                out.append((self.timeline.study(i), i, value))
        out.sort(key=lambda x: (x[0] if x[0] is not None else -1.0, x[1]))
        return out


class _Criterion:
    """A three-valued finding: present, absent or unknown, with the inputs behind it."""

    def __init__(self, state: Presence, inputs: Iterable[StageInput] = (), missing: Iterable[str] = ()) -> None:
        self.state = state
        self.inputs = list(inputs)
        self.missing = list(missing)


def _presence(reader: _Reader, finding: str, modalities: frozenset[Modality], label: str | None = None) -> _Criterion:
    found = reader.latest(finding, modalities)
    if found is None:
        return _Criterion(Presence.unknown, missing=[label or finding])
    value, inp = found
    return _Criterion(value, [inp])


def _any(*criteria: _Criterion) -> _Criterion:
    """Present if any is present; absent if all are absent; else unknown."""
    present = [c for c in criteria if c.state is Presence.present]
    if present:
        return _Criterion(Presence.present, [i for c in present for i in c.inputs])
    inputs = [i for c in criteria for i in c.inputs]
    if all(c.state is Presence.absent for c in criteria):
        return _Criterion(Presence.absent, inputs)
    return _Criterion(Presence.unknown, inputs, [m for c in criteria for m in c.missing])


def _necrotic_lesion(reader: _Reader) -> _Criterion:
    """MRI or bone scan positive for a necrotic lesion (ARCO/Ficat/Steinberg stage I).

    MRI: double-line sign, a necrotic segment (``necrotic_extent_percent`` > 0) or
    subchondral non-enhancement after contrast. Absent when an MRI reports the double-line
    sign absent or a necrotic extent of 0 and nothing positive. A bone scan counts only when
    positive (photopenic area): a negative scan does not exclude osteonecrosis.
    """
    inputs: list[StageInput] = []
    negative: list[StageInput] = []
    double_line = reader.latest("double_line_sign", _MRI)
    if double_line is not None:
        (inputs if double_line[0] is Presence.present else negative).append(double_line[1])
    extent = reader.latest("necrotic_extent_percent", _STRUCTURAL)
    if extent is not None:
        (inputs if extent[0] > 0 else negative).append(extent[1])
    contrast = reader.latest("contrast_pattern", _MRI)
    if contrast is not None and contrast[0] is ContrastPattern.subchondral_non_enhancement:
        inputs.append(contrast[1])
    scan = reader.latest("uptake", _SCAN)
    if scan is not None and scan[0] is Uptake.photopenic:
        inputs.append(scan[1])
    if inputs:
        return _Criterion(Presence.present, inputs)
    if negative:
        return _Criterion(Presence.absent, negative)
    return _Criterion(Presence.unknown, missing=["double_line_sign (MRI)", "necrotic_extent_percent"])


def _radiographic_change(reader: _Reader) -> _Criterion:
    """Sclerosis or cystic change (lucency) of the head on radiograph or CT (stage II)."""
    return _any(
        _presence(reader, "subchondral_sclerosis", _XR_CT, "subchondral_sclerosis (radiograph or CT)"),
        _presence(reader, "subchondral_lucency", _XR_CT, "subchondral_lucency (radiograph or CT)"),
    )


def _collapse(reader: _Reader) -> tuple[_Criterion, float | None, list[str]]:
    """Flattening of the head: radiograph or CT first; MRI only when neither reports it."""
    notes: list[str] = []
    found = reader.latest("collapse", _XR_CT)
    if found is None:
        found = reader.latest("collapse", _MRI)
        if found is not None and found[0] is Presence.present:
            notes.append(
                "Collapse is reported on MRI only; the staging systems define it on radiograph or CT "
                "(CT is the most sensitive for the pericollapse stage): confirm on CT."
            )
    if found is None:
        return _Criterion(Presence.unknown, missing=["collapse (radiograph or CT)"]), None, notes
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
    return _Criterion(value, inputs), depth, notes


def _fracture_of_head(reader: _Reader) -> tuple[_Criterion, _Criterion, float | None, list[str]]:
    """(crescent or subchondral fracture on radiograph/CT, collapse, depth mm, notes)."""
    crescent = _presence(reader, "crescent_sign", _XR_CT, "crescent_sign (radiograph or CT)")
    line = reader.latest("subchondral_fracture_line", _XR_CT)
    if line is not None and line[0] is Presence.present:  # counts when present; its absence adds nothing
        crescent = _Criterion(Presence.present, [line[1]])
    collapse, depth, notes = _collapse(reader)
    return crescent, collapse, depth, notes


def _joint_narrowing(reader: _Reader) -> _Criterion:
    found = reader.latest("joint_space", _STRUCTURAL)
    if found is None:
        return _Criterion(Presence.unknown, missing=["joint_space"])
    value, inp = found
    narrowed = value in (JointSpace.narrowed, JointSpace.destroyed)
    return _Criterion(Presence.present if narrowed else Presence.absent, [inp])


def _dedupe(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


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
        decided_by=_dedupe(decided_by),
        missing=_dedupe(missing),
        notes=list(notes),
        refs=spec.refs,
    )


class _Findings:
    """The findings every osteonecrosis system reads, read once."""

    def __init__(self, reader: _Reader) -> None:
        self.lesion = _necrotic_lesion(reader)
        self.change = _radiographic_change(reader)
        self.crescent, self.collapse, self.depth, self.collapse_notes = _fracture_of_head(reader)
        self.narrowing = _joint_narrowing(reader)
        self.head_fracture = _any(self.crescent, self.collapse)
        extent = reader.latest("necrotic_extent_percent", _STRUCTURAL)
        self.extent = None if extent is None else float(extent[0])
        self.extent_input = None if extent is None else extent[1]
        self.joint = reader.latest("joint_space", _STRUCTURAL)


def _ladder(
    f: _Findings, stages: list[tuple[str, _Criterion]]
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


def _osteonecrosis_gate(f: _Findings) -> _Criterion:
    """Joint-space narrowing stages only a head with a lesion, sclerosis/cysts or fracture."""
    return _any(f.lesion, f.change, f.head_fracture)


def _stage_iv(f: _Findings) -> _Criterion:
    """Joint-space narrowing in a head with a necrotic lesion, sclerosis/cysts or fracture."""
    gate = _osteonecrosis_gate(f)
    if gate.state is Presence.absent or f.narrowing.state is Presence.absent:
        return _Criterion(Presence.absent, f.narrowing.inputs)
    if f.narrowing.state is Presence.present and gate.state is Presence.present:
        return _Criterion(Presence.present, f.narrowing.inputs)
    return _Criterion(Presence.unknown, f.narrowing.inputs, f.narrowing.missing or gate.missing)


def _narrowing_note(f: _Findings) -> list[str]:
    if f.narrowing.state is Presence.present and _osteonecrosis_gate(f).state is not Presence.present:
        return ["Joint-space narrowing without a necrotic lesion, sclerosis, cysts or collapse is not staged as osteonecrosis (consider osteoarthritis)."]
    return []


def _stage_i_note(f: _Findings) -> list[str]:
    return [] if f.lesion.state is not Presence.unknown else [
        "Marrow edema alone is not a positive MRI for osteonecrosis; stage I needs a necrotic lesion "
        "(double-line sign, necrotic segment) on MRI or a photopenic area on bone scan."
    ]


def stage_arco_2019(f: _Findings, tk: TreatmentKnowledge) -> StageResult:
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


def stage_ficat_arlet(f: _Findings, tk: TreatmentKnowledge) -> StageResult:
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


def stage_steinberg(f: _Findings, tk: TreatmentKnowledge) -> StageResult:
    """Steinberg 1995: I-VI with A/B/C extent (stages I-II by head share, IV by depression)."""
    destroyed = f.joint is not None and f.joint[0] is JointSpace.destroyed
    v = _stage_iv(f)
    vi = _Criterion(Presence.present, v.inputs) if v.state is Presence.present and destroyed else (
        _Criterion(Presence.unknown, missing=v.missing) if v.state is Presence.unknown else _Criterion(Presence.absent, v.inputs)
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


# --- transient osteoporosis: phase and pattern -------------------------------------------

_EXTENT_RANK = {
    EdemaExtent.none: 0,
    EdemaExtent.focal: 1,
    EdemaExtent.femoral_head: 2,
    EdemaExtent.femoral_neck: 2,
    EdemaExtent.head_and_neck: 3,
    EdemaExtent.intertrochanteric: 4,
}


def _edema_rank(study: ImagingStudy) -> int | None:
    f = study.findings
    if f.edema_extent in _EXTENT_RANK:
        return _EXTENT_RANK[f.edema_extent]
    if f.edema is Presence.absent or f.stir_high is Presence.absent:
        return 0
    return None


def _resolution(reader: _Reader) -> tuple[list[StageInput], list[str]]:
    """Evidence that the episode is resolving: inputs and why."""
    case = reader.case
    mris = []
    for i, study in enumerate(case.imaging):
        rank = _edema_rank(study) if study.modality is Modality.mri else None
        if rank is not None:
            mris.append((reader.timeline.study(i), i, rank))
    mris.sort(key=lambda x: (x[0] if x[0] is not None else -1.0, x[1]))
    evidence: list[StageInput] = []
    reasons: list[str] = []
    if len(mris) >= 2 and mris[-1][2] < max(r for _, _, r in mris[:-1]):
        for days, i, _ in (mris[0], mris[-1]):
            field = f"imaging.{i}.findings.edema_extent"
            reader.used[field] = None
            value = case.imaging[i].findings.edema_extent.value
            evidence.append(StageInput(field=field, value=value, days_since_onset=days))
        reasons.append("edema is smaller or gone on the latest MRI than on an earlier one")
    visits = [(reader.timeline.visit(j), j, v) for j, v in enumerate(case.visits) if v.pain_0_10 is not None]
    visits = [x for x in visits if x[0] is not None] or visits
    visits.sort(key=lambda x: (x[0] if x[0] is not None else -1.0, x[1]))
    if len(visits) >= 2:
        peak = max(v.pain_0_10 for _, _, v in visits if v.pain_0_10 is not None)
        last_days, j, last = visits[-1]
        if peak > 0 and last.pain_0_10 is not None and last.pain_0_10 <= peak / 2:
            evidence.append(StageInput(field=f"visits.{j}.pain_0_10", value=f"{last.pain_0_10:g}", days_since_onset=last_days))
            reasons.append(f"pain at the last visit ({last.pain_0_10:g}/10) is at most half of its peak ({peak:g}/10)")
    return evidence, reasons


def stage_toh_phase(reader: _Reader, tk: TreatmentKnowledge) -> TohPhase:
    """Phase of the episode (pragmatic estimate; see staging.yaml ``toh_phase``)."""
    spec = tk.staging.toh_phase
    days = reader.timeline.onset
    early = tk.threshold("toh_early_max_days").value
    slow = tk.threshold("toh_established_max_days").value
    limit = tk.threshold("toh_expected_resolution_max_days").value
    note = "Pragmatic estimate, not a published stage. " + " ".join(
        (spec.note or "").split()
    )
    decided: list[StageInput] = []
    if days is not None:
        field = "onset.days_since_onset" if reader.case.onset.days_since_onset is not None else "onset.date"
        decided.append(StageInput(field=field, value=f"{days:g} days", days_since_onset=days))
    evidence, reasons = _resolution(reader)
    beyond = days is not None and days > limit
    if evidence:
        return TohPhase(
            phase="resolving",
            beyond_expected_course=False,
            days_since_onset=days,
            decided_by=decided + evidence,
            note=note + " Resolving because " + "; ".join(reasons) + ".",
            refs=spec.refs,
        )
    if days is None:
        return TohPhase(
            phase="undecidable",
            days_since_onset=None,
            missing=["onset.date or onset.days_since_onset"],
            note=note,
            refs=spec.refs,
        )
    osteopenia = reader.latest("osteopenia", _XR_CT)
    if osteopenia is not None:
        decided.append(osteopenia[1])
    missing: list[str] = []
    if days <= early:
        if osteopenia is not None and osteopenia[0] is Presence.present:
            phase = "established"
            note += " Radiographic osteopenia is already visible, so the episode is taken as established."
        else:
            phase = "early"
            if osteopenia is None:
                missing.append("osteopenia (radiograph)")
    else:
        phase = "established"
        if days > slow:
            note += (
                f" More than {slow:g} days from onset without evidence of resolution: slower than most episodes;"
                " a follow-up MRI shows whether the edema is regressing."
            )
        if not reader.case.visits and not any(s.modality is Modality.mri for s in reader.case.imaging):
            missing.append("a follow-up visit or MRI (to see whether the episode is resolving)")
    if beyond:
        note += f" More than {limit:g} days from onset: outside the expected course of transient osteoporosis; review the diagnosis."
    return TohPhase(
        phase=phase,
        beyond_expected_course=beyond,
        days_since_onset=days,
        decided_by=decided,
        missing=missing,
        note=note,
        refs=spec.refs,
    )


def stage_pattern(reader: _Reader, tk: TreatmentKnowledge) -> EpisodePattern:
    """Bilateral, recurrent or migratory involvement (regional migratory osteoporosis)."""
    case = reader.case
    decided: list[StageInput] = []
    missing: list[str] = []
    notes: list[str] = []
    if case.side is Side.both:
        bilateral = Presence.present
    elif case.side is Side.unknown:
        bilateral = Presence.unknown
        missing.append("side")
    else:
        bilateral = Presence.absent
    if case.side is not Side.unknown:
        decided.append(StageInput(field="side", value=case.side.value))
    prior = case.risk_factors.prior_episodes_other_joints
    new_joint = [(j, v) for j, v in enumerate(case.visits) if v.new_joint_pain is Presence.present]
    if prior is not Presence.unknown:
        decided.append(StageInput(field="risk_factors.prior_episodes_other_joints", value=prior.value))
    for j, v in new_joint:
        where = f" ({v.new_joint_site})" if v.new_joint_site else ""
        decided.append(StageInput(field=f"visits.{j}.new_joint_pain", value="present" + where, days_since_onset=reader.timeline.visit(j)))
    if prior is Presence.present or new_joint:
        migratory = Presence.present
    elif prior is Presence.absent:
        migratory = Presence.absent
    else:
        migratory = Presence.unknown
        missing.append("risk_factors.prior_episodes_other_joints")
    rmo = migratory is Presence.present
    if rmo:
        notes.append(
            "Recurrent or migratory involvement: the pattern of regional migratory osteoporosis. Densitometry is "
            "advised (systemic osteoporosis was found in reported cases); expect further episodes."
        )
    if bilateral is Presence.present:
        notes.append(
            "Both hips involved: image both hips; bilateral involvement occurs in transient osteoporosis and "
            "regional migratory osteoporosis but is also frequent in osteonecrosis."
        )
    return EpisodePattern(
        bilateral=bilateral,
        migratory=migratory,
        regional_migratory_osteoporosis_pattern=rmo,
        decided_by=decided,
        missing=missing,
        notes=notes,
        refs=tk.staging.migratory_pattern.refs,
    )


# --- subchondral band ---------------------------------------------------------------------


def band_verdict(thickness_mm: float, tk: TreatmentKnowledge) -> BandVerdict:
    """Verdict on a measured subchondral low-signal zone (Vande Berg et al. 2011).

    >>> from hipdx.knowledge import load_treatment_knowledge
    >>> tk = load_treatment_knowledge()
    >>> [band_verdict(t, tk).value for t in (3.4, 3.6, 4.4, 4.6)]
    ['reversible_pattern', 'indeterminate', 'indeterminate', 'irreversible_suggestive']
    """
    cut = tk.threshold("band_cutoff_mm").value
    margin = tk.threshold("band_indeterminate_margin_mm").value
    if abs(thickness_mm - cut) < margin:
        return BandVerdict.indeterminate
    return BandVerdict.irreversible_suggestive if thickness_mm >= cut else BandVerdict.reversible_pattern


def stage_band(reader: _Reader, tk: TreatmentKnowledge) -> SubchondralBand:
    """The most recent MRI reporting a subchondral band, and what its thickness suggests."""
    cut = tk.threshold("band_cutoff_mm")
    caveats = list(tk.staging.subchondral_band_caveats)
    refs = _dedupe(cut.refs + ["malghem2023"])
    other: list[str] = []
    collapse = reader.latest("collapse", _STRUCTURAL)
    if collapse is not None and collapse[0] is Presence.present:
        other.append(f"loss of sphericity (collapse, {collapse[1].field})")
    found = reader.latest("subchondral_band", _MRI)
    if found is None:
        return SubchondralBand(
            verdict=BandVerdict.not_reported,
            other_irreversible_signs=other,
            missing=["subchondral_band (MRI)"],
            summary="No MRI reports on a subchondral low-signal band.",
            caveats=caveats,
            refs=refs,
        )
    value, inp = found
    idx = int(inp.field.split(".")[1])
    findings = reader.case.imaging[idx].findings
    decided = [inp]
    if value is Presence.absent:
        summary = "No subchondral low-signal band on the latest MRI"
        summary += (
            "; with edema only, complete resolution is likely (Vande Berg 2011)."
            if not other
            else f", but another irreversible sign is present: {', '.join(other)}."
        )
        return SubchondralBand(
            verdict=BandVerdict.absent, other_irreversible_signs=other, decided_by=decided, summary=summary, caveats=caveats, refs=refs
        )
    thickness, length = findings.subchondral_band_thickness_mm, findings.subchondral_band_length_mm
    missing: list[str] = []
    if thickness is None:
        verdict = BandVerdict.thickness_not_measured
        missing.append(f"imaging.{idx}.findings.subchondral_band_thickness_mm")
        summary = f"A subchondral band is present but its thickness is not measured; {cut.value:g} mm or thicker suggests an irreversible lesion."
    else:
        field = f"imaging.{idx}.findings.subchondral_band_thickness_mm"
        reader.used[field] = None
        decided.append(StageInput(field=field, value=f"{thickness:g}", days_since_onset=inp.days_since_onset))
        verdict = band_verdict(thickness, tk)
        margin = tk.threshold("band_indeterminate_margin_mm").value
        summary = {
            BandVerdict.irreversible_suggestive: f"Band {thickness:g} mm thick (>= {cut.value:g} mm): suggests an irreversible lesion (osteonecrosis or a subchondral fracture that will not heal without sequelae).",
            BandVerdict.indeterminate: f"Band {thickness:g} mm thick, within {margin:g} mm of the {cut.value:g} mm cut-off: indeterminate; repeat MRI to follow it.",
            BandVerdict.reversible_pattern: f"Band {thickness:g} mm thick (< {cut.value:g} mm): compatible with a reversible lesion.",
        }[verdict]
    if length is not None:
        field = f"imaging.{idx}.findings.subchondral_band_length_mm"
        reader.used[field] = None
        decided.append(StageInput(field=field, value=f"{length:g}", days_since_onset=inp.days_since_onset))
        summary += f" Length {length:g} mm is reported but not used: the 12.5 mm length cut-off is unverified."
    if other and verdict is not BandVerdict.irreversible_suggestive:
        summary += f" Another irreversible sign is present: {', '.join(other)}."
    return SubchondralBand(
        verdict=verdict,
        thickness_mm=thickness,
        length_mm=length,
        other_irreversible_signs=other,
        decided_by=decided,
        missing=missing,
        summary=summary,
        caveats=caveats,
        refs=refs,
    )


# --- femoral neck stress fracture ------------------------------------------------------------


def neck_fracture_grade(
    displaced: Presence, side: FractureSide, width_percent: float | None, tk: TreatmentKnowledge
) -> str:
    """Grade of a femoral neck fracture line that is present.

    >>> from hipdx.knowledge import load_treatment_knowledge
    >>> tk = load_treatment_knowledge()
    >>> neck_fracture_grade(Presence.absent, FractureSide.compression, 49.9, tk)
    'compression_narrow'
    >>> neck_fracture_grade(Presence.absent, FractureSide.compression, 50.0, tk)
    'compression_wide'
    """
    if displaced is Presence.present:
        return "displaced"
    if side is FractureSide.tension:
        return "tension"
    if side is FractureSide.unknown:
        return "side_unknown"
    if width_percent is None:
        return "compression_width_unknown"
    cut = tk.threshold("neck_compression_width_cutoff_percent").value
    return "compression_wide" if width_percent >= cut else "compression_narrow"


def stage_neck_fracture(reader: _Reader, tk: TreatmentKnowledge) -> NeckFracture:
    """Grade of a femoral neck stress fracture on the most recent studies, and its urgency."""
    refs = _dedupe(tk.staging.fracture_grades["tension"].refs + tk.threshold("neck_compression_width_cutoff_percent").refs)
    line = reader.latest("femoral_neck_fracture_line", _STRUCTURAL)
    displaced = reader.latest("fracture_displaced", _STRUCTURAL)
    if line is None and (displaced is None or displaced[0] is not Presence.present):
        return NeckFracture(
            grade="not_reported",
            label="No study reports on a femoral neck fracture line",
            missing=["femoral_neck_fracture_line (MRI preferred)"],
            refs=refs,
        )
    if line is not None and line[0] is Presence.absent and (displaced is None or displaced[0] is not Presence.present):
        return NeckFracture(grade="none", label="No femoral neck fracture line", decided_by=[line[1]], refs=refs)
    decided = [line[1]] if line is not None else []
    missing: list[str] = []
    displaced_state = Presence.unknown
    if displaced is not None:
        displaced_state = displaced[0]
        decided.append(displaced[1])
    side_found = reader.latest("femoral_neck_fracture_side", _STRUCTURAL)
    side = FractureSide.unknown if side_found is None else side_found[0]
    if side_found is not None:
        decided.append(side_found[1])
    width_found = reader.latest("femoral_neck_fracture_width_percent", _STRUCTURAL)
    width = None if width_found is None else float(width_found[0])
    grade = neck_fracture_grade(displaced_state, side, width, tk)
    if grade != "displaced" and displaced_state is Presence.unknown:
        missing.append("fracture_displaced (radiograph)")
    if grade == "side_unknown":
        missing.append("femoral_neck_fracture_side")
    if grade.startswith("compression"):
        if width_found is not None:
            decided.append(width_found[1])
        else:
            missing.append("femoral_neck_fracture_width_percent")
    spec = tk.staging.fracture_grades[grade]
    return NeckFracture(
        grade=grade,
        label=spec.label,
        urgency=spec.urgency,
        action=" ".join(spec.action.split()),
        width_percent=width,
        decided_by=decided,
        missing=missing,
        refs=_dedupe(spec.refs + refs),
    )


def fracture_flag_urgency(fracture: NeckFracture) -> str | None:
    """The urgency a graded femoral neck fracture is flagged at: its grade's (``staging.yaml``).

    None when no fracture is graded (none reported, or a line reported absent). The one home
    of the graded-fracture flag: the red flags (:func:`hipdx.reasoning.red_flags.staging_flags`)
    and the plan's fracture pathway both take it from here.
    """
    if fracture.grade in ("not_reported", "none"):
        return None
    return fracture.urgency


# --- the whole staging ------------------------------------------------------------------------


def stage_case(
    case: Case,
    knowledge: TreatmentKnowledge,
    today: dt.date | None = None,
    *,
    supported: Collection[str] | None = None,
    timeline: Timeline | None = None,
) -> Staging:
    """Stage everything that applies to one case.

    Parameters
    ----------
    case
        A validated case.
    knowledge
        The staging data (``load_knowledge_base().treatment``).
    today
        Date of the assessment, used only when the case has dates but no ``assessed_on``;
        without it such day counts are treated as not known.
    supported
        The conditions the differential supports (the leading one, those at or above the
        must-not-miss threshold and the flagged ones). A part of the staging that describes
        none of them (:data:`STAGED_FOR`: osteonecrosis stages, the TOH phase, the band's
        prognosis) is not staged, and ``scope`` says so; None stages every part from the
        findings alone. The femoral neck fracture grade and the episode pattern are facts of
        the findings and always given.
    timeline
        The case's times for this assessment (:class:`~hipdx.case.timeline.Timeline` of
        ``case`` and ``today``), when the caller has one; else derived here.

    Returns
    -------
    Staging
        ARCO 2019, Ficat-Arlet and Steinberg stages, the TOH phase and pattern, the
        subchondral band verdict and the femoral neck fracture grade, each with the inputs
        that decided it and the inputs that are missing.

    Examples
    --------
    >>> c = Case.model_validate({"imaging": [{"modality": "radiograph", "findings": {"collapse": "present",
    ...     "collapse_depth_mm": 3, "joint_space": "preserved"}}]})
    >>> from hipdx.knowledge import load_knowledge_base
    >>> stage_case(c, load_knowledge_base().treatment).system("arco_2019").stage
    'IIIB'
    """
    tk = knowledge
    reader = _Reader(Timeline.of(case, today, timeline))
    f = _Findings(reader)
    osteonecrosis = [stage_arco_2019(f, tk), stage_ficat_arlet(f, tk), stage_steinberg(f, tk)]
    phase = stage_toh_phase(reader, tk)
    pattern = stage_pattern(reader, tk)
    band = stage_band(reader, tk)
    fracture = stage_neck_fracture(reader, tk)
    used = set(reader.used)
    for part in [*osteonecrosis, phase, pattern, band, fracture]:
        used.update(i.field for i in part.decided_by)
    missing = _dedupe(m for part in [*osteonecrosis, phase, pattern, band, fracture] for m in part.missing)
    staging = Staging(
        case_id=case.id,
        osteonecrosis=osteonecrosis,
        toh_phase=phase,
        pattern=pattern,
        subchondral_band=band,
        femoral_neck_fracture=fracture,
        provenance=StagingProvenance(
            hipdx_version=__version__,
            staging_data_version=tk.staging.version,
            knowledge_digest=tk.digest,
            inputs_used=sorted(used),
            inputs_missing=missing,
            caveat=" ".join(tk.staging.caveat.split()),
        ),
    )
    return staging if supported is None else scope_staging(staging, supported)


def scope_staging(staging: Staging, supported: Collection[str]) -> Staging:
    """The staging with the parts the differential does not support left out, and ``scope`` set.

    A part describes the conditions of :data:`STAGED_FOR`; when none of them is supported
    (the leading condition, those at or above the must-not-miss threshold and the flagged
    ones), its result is replaced by a note saying why it was not staged.
    """
    staged_for = set(supported)
    left_out = [part for part, conditions in STAGED_FOR.items() if not staged_for & set(conditions)]
    why = f"not staged: the differential does not support {{}} (supported: {', '.join(sorted(staged_for)) or 'none'})"
    update: dict[str, Any] = {}
    if "osteonecrosis" in left_out:
        update["osteonecrosis"] = [
            StageResult(system=r.system, name=r.name, status=StageStatus.not_applicable, notes=[why.format("osteonecrosis")], refs=r.refs)
            for r in staging.osteonecrosis
        ]
    if "toh_phase" in left_out:
        update["toh_phase"] = TohPhase(phase="not_staged", note=why.format("transient osteoporosis"), refs=staging.toh_phase.refs)
    if "subchondral_band" in left_out:
        update["subchondral_band"] = staging.subchondral_band.model_copy(
            update={"summary": why.format("a femoral head condition (TOH, RMO, osteonecrosis, SIF)"), "caveats": []}
        )
    update["scope"] = StagingScope(conditions=sorted(staged_for), not_staged=[why.format(p.replace("_", " ")) for p in left_out])
    return staging.model_copy(update=update)
