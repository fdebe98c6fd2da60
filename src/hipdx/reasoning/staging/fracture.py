"""Femoral neck stress fracture: displaced, tension-side, compression-side under or at least 50% of the
neck width (Shin and Gillingham-type grading), the urgency of each, and the flag a graded fracture raises.
"""

from __future__ import annotations

from pydantic import Field

from hipdx.case.model import FractureSide, Presence
from hipdx.knowledge.treatment import TreatmentKnowledge
from hipdx.reasoning.frozen import Frozen
from hipdx.reasoning.staging.reading import Reader, STRUCTURAL, StageInput, dedupe


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


def stage_neck_fracture(reader: Reader, tk: TreatmentKnowledge) -> NeckFracture:
    """Grade of a femoral neck stress fracture on the most recent studies, and its urgency."""
    refs = dedupe(tk.staging.fracture_grades["tension"].refs + tk.threshold("neck_compression_width_cutoff_percent").refs)
    line = reader.latest("femoral_neck_fracture_line", STRUCTURAL)
    displaced = reader.latest("fracture_displaced", STRUCTURAL)
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
    side_found = reader.latest("femoral_neck_fracture_side", STRUCTURAL)
    side = FractureSide.unknown if side_found is None else side_found[0]
    if side_found is not None:
        decided.append(side_found[1])
    width_found = reader.latest("femoral_neck_fracture_width_percent", STRUCTURAL)
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
        refs=dedupe(spec.refs + refs),
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
