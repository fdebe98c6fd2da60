"""How the staging reads a case: the most recent study reporting each finding, three-valued criteria, and
the inputs that decide each result.

Each rule reads the most recent study that reports the finding it needs; a finding that no study
reports is *missing*, never normal.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any

from hipdx.case import Modality
from hipdx.case.model import Presence
from hipdx.case.timeline import Timeline
from hipdx.reasoning.frozen import Frozen


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

# --- reading the case -------------------------------------------------------------------

XR_CT = frozenset({Modality.radiograph, Modality.ct})
MRI = frozenset({Modality.mri})
STRUCTURAL = frozenset({Modality.radiograph, Modality.ct, Modality.mri})
SCAN = frozenset({Modality.bone_scan})


def known(value: Any) -> bool:
    # ``_value_`` is what an enum's ``value`` returns, read without the property
    return value is not None and getattr(value, "_value_", None) != "unknown"


class Reader:
    """The most recent study reporting each finding (the knowledge base's rule)."""

    def __init__(self, timeline: Timeline) -> None:
        self.case = timeline.case
        self.timeline = timeline
        self.used: dict[str, None] = {}

    def latest(self, finding: str, modalities: frozenset[Modality]) -> tuple[Any, StageInput] | None:
        best: tuple[float, int] | None = None
        for i, study in enumerate(self.case.imaging):
            if study.modality in modalities and known(getattr(study.findings, finding)):
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
            if study.modality in modalities and known(value):
                out.append((self.timeline.study(i), i, value))
        out.sort(key=lambda x: (x[0] if x[0] is not None else -1.0, x[1]))
        return out


class Criterion:
    """A three-valued finding: present, absent or unknown, with the inputs behind it."""

    def __init__(self, state: Presence, inputs: Iterable[StageInput] = (), missing: Iterable[str] = ()) -> None:
        self.state = state
        self.inputs = list(inputs)
        self.missing = list(missing)


def presence(reader: Reader, finding: str, modalities: frozenset[Modality], label: str | None = None) -> Criterion:
    found = reader.latest(finding, modalities)
    if found is None:
        return Criterion(Presence.unknown, missing=[label or finding])
    value, inp = found
    return Criterion(value, [inp])


def any_of(*criteria: Criterion) -> Criterion:
    """Present if any is present; absent if all are absent; else unknown."""
    present = [c for c in criteria if c.state is Presence.present]
    if present:
        return Criterion(Presence.present, [i for c in present for i in c.inputs])
    inputs = [i for c in criteria for i in c.inputs]
    if all(c.state is Presence.absent for c in criteria):
        return Criterion(Presence.absent, inputs)
    return Criterion(Presence.unknown, inputs, [m for c in criteria for m in c.missing])

def dedupe(items: Iterable[Any]) -> list[Any]:
    """The items without repeats, each where it first occurs (items are hashable: texts, frozen inputs)."""
    return list(dict.fromkeys(items))
