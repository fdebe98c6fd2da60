"""What a variable's ``source`` may name: a case field, an imaging finding, or a computed encoder.

The knowledge base checks every variable's source against the case model when it loads
(:func:`check_source`), so a misspelt field or a state no reading can produce is a load
error, not a finding silently never observed. The reasoning core reads the sources
(:mod:`hipdx.reasoning.encode`); the states each computed encoder can return are stated
here, with the data layer, and a test keeps the two lists of encoders equal.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, get_args

from pydantic import BaseModel

from hipdx.case.model import Case, EdemaExtent, ImagingFindings, LabResult, Modality, QualitativeLab
from hipdx.knowledge.schema import Variable

#: name -> the states and aggregates each computed encoder (:data:`hipdx.reasoning.encode.COMPUTED`) can return
COMPUTED_STATES: dict[str, frozenset[str]] = {
    "sex_pregnancy": frozenset({"male", "female", "female_not_pregnant", "pregnant_or_postpartum"}),
    "mri_edema": frozenset({"none", "any_edema"} | {e.value for e in EdemaExtent if e.value not in ("unknown", "none")}),
    "subchondral_band": frozenset({"absent", "thin", "thick", "present"}),
    "contrast_pattern": frozenset({"homogeneous_enhancement", "subchondral_non_enhancement", "synovial_or_rim_enhancement"}),
}


def _resolve_field(path: str) -> Any:
    """The annotation a dotted case path leads to, or raise KeyError."""
    model: Any = Case
    annotation: Any = None
    for part in path.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            raise KeyError(path)
        annotation = model.model_fields[part].annotation
        model = annotation
        args = getattr(annotation, "__args__", None)
        if args:  # X | None
            model = next((a for a in args if a is not type(None)), annotation)
    return model


def check_source(v: Variable) -> list[str]:
    """Problems with a variable's source: unknown field, finding, encoder or state."""
    src = v.source
    observable = set(v.states) | set(v.aggregates)
    problems: list[str] = []
    if src.map:
        bad = {v for v in src.map.values() if v is not None} - observable
        if bad:
            problems.append(f"map targets {sorted(bad)} are not states of the variable")
    if src.bins:
        bad = {s for s, _ in src.bins} - observable
        if bad:
            problems.append(f"bins name {sorted(bad)}, which are not states of the variable")
    if src.qualitative:
        bad = set(src.qualitative.values()) - observable
        if bad:
            problems.append(f"qualitative targets {sorted(bad)} are not states or aggregates of the variable")
        results = {r.value for r in LabResult}
        if set(src.qualitative) - results:
            problems.append(f"qualitative results {sorted(set(src.qualitative) - results)}: a result in words is one of {sorted(results)}")
        lab = (src.field or "").split(".", 1)[-1]
        if lab not in get_args(QualitativeLab):
            problems.append(f"{src.field} cannot be given in words (labs.qualitative takes {list(get_args(QualitativeLab))})")
    if src.field is not None:
        try:
            target = _resolve_field(src.field)
        except KeyError:
            return problems + [f"the case has no field {src.field!r}"]
        if isinstance(target, type) and issubclass(target, Enum):
            values = {e.value for e in target} - {"unknown"}
            unmapped = {x for x in values if x not in observable and not (src.map and x in src.map)}
            if unmapped:
                problems.append(f"{src.field} can be {sorted(unmapped)}, which no state or map covers")
    elif src.imaging is not None:
        try:
            for m in src.imaging:
                Modality(m)
        except ValueError as exc:
            problems.append(str(exc))
        if src.finding not in ImagingFindings.model_fields:
            problems.append(f"imaging findings have no {src.finding!r}")
    elif src.computed is not None:
        if src.computed not in COMPUTED_STATES:
            problems.append(f"no computed encoder {src.computed!r}; known: {sorted(COMPUTED_STATES)}")
        else:
            bad = COMPUTED_STATES[src.computed] - observable
            if bad:
                problems.append(f"encoder {src.computed!r} can return {sorted(bad)}, not states or aggregates here")
    return problems
