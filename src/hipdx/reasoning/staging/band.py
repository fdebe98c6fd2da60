"""The subchondral low-signal band on MRI: a thickness at or above the cut-off suggests an irreversible
lesion (Vande Berg et al. 2011); within the margin of it the verdict is indeterminate (``staging.yaml``).
"""

from __future__ import annotations

from enum import Enum

from hipdx.case.model import Presence
from hipdx.knowledge.treatment import TreatmentKnowledge
from hipdx.reasoning.frozen import Frozen
from hipdx.reasoning.staging.reading import MRI, Reader, STRUCTURAL, StageInput, dedupe


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


def stage_band(reader: Reader, tk: TreatmentKnowledge) -> SubchondralBand:
    """The most recent MRI reporting a subchondral band, and what its thickness suggests."""
    cut = tk.threshold("band_cutoff_mm")
    caveats = list(tk.staging.subchondral_band_caveats)
    refs = dedupe(cut.refs + ["malghem2023"])
    other: list[str] = []
    collapse = reader.latest("collapse", STRUCTURAL)
    if collapse is not None and collapse[0] is Presence.present:
        other.append(f"loss of sphericity (collapse, {collapse[1].field})")
    found = reader.latest("subchondral_band", MRI)
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
