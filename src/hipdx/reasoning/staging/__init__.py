"""Staging of the femoral head and of the episode, from the imaging findings of a case.

Pure: no I/O, no clock. Each rule reads the most recent study that reports the finding it
needs; a finding that no study reports is *missing*, never normal (:mod:`.reading`). Every
result names the inputs that decided it and, when it cannot be decided, the inputs that are
missing. One module per thing staged:

- Osteonecrosis (:mod:`.osteonecrosis`): ARCO 2019 (Yoon et al. 2020), Ficat-Arlet (modified; Ficat 1985) and
  Steinberg 1995 with A/B/C extent where the inputs allow.
- Transient osteoporosis (:mod:`.toh`): phase of the episode (early / established / resolving), a
  pragmatic estimate (the literature has no numbered TOH stages), and bilateral or
  migratory patterns (regional migratory osteoporosis).
- Subchondral low-signal band (:mod:`.band`): 4 mm or thicker suggests an irreversible lesion (Vande Berg
  et al. 2011); within 0.5 mm of 4 mm it is indeterminate.
- Femoral neck stress fracture (:mod:`.fracture`): displaced, tension-side, compression-side under or at
  least 50% of the neck width (Shin and Gillingham-type grading), and the urgency of each.

Each part describes what the images show, whatever the differential; an assessment then keeps
only the parts its differential supports (:func:`scope_staging`, ``Staging.scope``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from pydantic import Field

from hipdx._version import __version__
from hipdx.case import Case
from hipdx.case.timeline import Timeline
from hipdx.knowledge.treatment import TreatmentKnowledge
from hipdx.reasoning.frozen import Frozen, OutputProvenance
from hipdx.reasoning.staging.band import BandVerdict, SubchondralBand, band_verdict, stage_band
from hipdx.reasoning.staging.fracture import (
    NeckFracture,
    fracture_flag_urgency,
    neck_fracture_grade,
    stage_neck_fracture,
)
from hipdx.reasoning.staging.osteonecrosis import (
    OsteonecrosisFindings,
    StageResult,
    stage_arco_2019,
    stage_ficat_arlet,
    stage_steinberg,
)
from hipdx.reasoning.staging.reading import Reader, StageInput, StageStatus, dedupe
from hipdx.reasoning.staging.toh import EpisodePattern, TohPhase, stage_pattern, stage_toh_phase


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
    reader = Reader(Timeline.of(case, today, timeline))
    f = OsteonecrosisFindings(reader)
    osteonecrosis = [stage_arco_2019(f, tk), stage_ficat_arlet(f, tk), stage_steinberg(f, tk)]
    phase = stage_toh_phase(reader, tk)
    pattern = stage_pattern(reader, tk)
    band = stage_band(reader, tk)
    fracture = stage_neck_fracture(reader, tk)
    used = set(reader.used)
    for part in [*osteonecrosis, phase, pattern, band, fracture]:
        used.update(i.field for i in part.decided_by)
    missing = dedupe(m for part in [*osteonecrosis, phase, pattern, band, fracture] for m in part.missing)
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


__all__ = [
    "STAGED_FOR",
    "BandVerdict",
    "EpisodePattern",
    "NeckFracture",
    "StageInput",
    "StageResult",
    "StageStatus",
    "Staging",
    "StagingProvenance",
    "StagingScope",
    "SubchondralBand",
    "TohPhase",
    "band_verdict",
    "fracture_flag_urgency",
    "neck_fracture_grade",
    "scope_staging",
    "stage_arco_2019",
    "stage_band",
    "stage_case",
    "stage_ficat_arlet",
    "stage_neck_fracture",
    "stage_pattern",
    "stage_steinberg",
    "stage_toh_phase",
]
