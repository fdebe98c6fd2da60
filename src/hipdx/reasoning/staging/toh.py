"""Transient osteoporosis: the phase of the episode (early / established / resolving), a pragmatic estimate
(the literature has no numbered TOH stages), and bilateral or migratory patterns (regional migratory
osteoporosis).
"""

from __future__ import annotations

from pydantic import Field

from hipdx.case import ImagingStudy, Modality
from hipdx.case.model import EdemaExtent, Presence, Side
from hipdx.knowledge.treatment import TreatmentKnowledge
from hipdx.reasoning.frozen import Frozen
from hipdx.reasoning.staging.reading import Reader, StageInput, XR_CT


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


def _resolution(reader: Reader) -> tuple[list[StageInput], list[str]]:
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


def stage_toh_phase(reader: Reader, tk: TreatmentKnowledge) -> TohPhase:
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
    osteopenia = reader.latest("osteopenia", XR_CT)
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


def stage_pattern(reader: Reader, tk: TreatmentKnowledge) -> EpisodePattern:
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
