"""From a :class:`~hipdx.case.Case` to observations of the knowledge base's variables.

Each variable of the base names its ``source`` in the case: a field, the most recent
imaging study that reports a finding, or one of the computed encoders below (for
findings that are one variable with several states although the case records them in
several fields, such as T1 low + STIR high + extent = one edema pattern). A finding
that is not known gives no observation at all: missing is not absent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, get_args

from pydantic import BaseModel

from hipdx.case import Case, ImagingFindings, ImagingStudy, Modality
from hipdx.case.model import EdemaExtent, LabResult, PregnancyStatus, Presence, QualitativeLab, Sex
from hipdx.case.parse import days_since_onset, study_days_since_onset
from hipdx.case.units import QUANTITIES
from hipdx.knowledge.base import KnowledgeBase
from hipdx.knowledge.schema import Source, Variable

#: Bands of the subchondral low-signal zone thickness; within this distance of the
#: published 4 mm cut-off (Vande Berg et al. 2011) a measurement is "indeterminate"
#: and counts as "band present, thickness not decided".
BAND_CUTOFF_MM = 4.0
BAND_INDETERMINATE_MM = 0.5


@dataclass(frozen=True)
class Observation:
    """One variable observed in one state (or aggregate of states)."""

    variable: str
    state: str
    #: days from onset to the observation (imaging: the study), None when not known
    days: float | None
    #: the case fields it was read from, with their values, for provenance
    inputs: tuple[str, ...]


Reading = tuple[str, float | None, tuple[str, ...]] | None
Encoder = Callable[[Case, "_Context"], Reading]


@dataclass
class _Context:
    today: dt.date
    days_now: float | None
    _latest: dict[tuple[frozenset[Modality], str], tuple[ImagingStudy, int] | None]
    _study_days: dict[int, float | None] = field(default_factory=dict)

    def study_days(self, case: Case, i: int) -> float | None:
        """Days from onset to study ``i`` (checked once per study and assessment)."""
        if i not in self._study_days:
            self._study_days[i] = study_days_since_onset(case, case.imaging[i], self.today)
        return self._study_days[i]

    def latest(self, case: Case, modalities: frozenset[Modality], finding: str) -> tuple[ImagingStudy, int] | None:
        """The most recent study of one of ``modalities`` that reports ``finding``."""
        key = (modalities, finding)
        if key not in self._latest:
            best: tuple[float, int] | None = None
            for i, study in enumerate(case.imaging):
                if study.modality not in modalities:
                    continue
                value = getattr(study.findings, finding)
                if value is None or getattr(value, "value", None) == "unknown":
                    continue
                days = self.study_days(case, i)
                order = (days if days is not None else -1.0, i)
                if best is None or order >= best:
                    best = order
            self._latest[key] = None if best is None else (case.imaging[best[1]], best[1])
        return self._latest[key]


def state_of(value: Any, source: Source) -> str | None:
    """The state name for a case value, or None when the value means 'not known'."""
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value
        if value == "unknown":
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and source.bins:
        for state, upper in source.bins:
            if upper is None or value < upper:
                return state
    value = str(value).lower() if isinstance(value, bool) else value
    if source.map is not None and value in source.map:
        return source.map[value]
    return str(value)


def qualitative_reading(case: Case, name: str, source: Source, days: float | None) -> Reading:
    """A laboratory result given only in words (``labs.qualitative``) as the state or aggregate
    its variable maps it to (``source.qualitative``: "raised" CRP covers the raised and high bins)."""
    result = case.labs.qualitative.get(name)  # type: ignore[call-overload]
    if result is None or not source.qualitative or result.value not in source.qualitative:
        return None
    return source.qualitative[result.value], days, (f"labs.qualitative.{name}",)


def _field_reader(path: str, source: Source) -> Encoder:
    parts = path.split(".")
    if parts[0] == "labs" and (parts[1] in QUANTITIES or parts[1] == "bmd_t_score"):  # a measured lab, in its canonical unit
        name = parts[1]

        def read_lab(case: Case, ctx: _Context) -> Reading:
            value = case.labs.canonical(name)
            if value is None:  # a result reported only in words covers the bins it names
                return qualitative_reading(case, name, source, ctx.days_now)
            state = state_of(value, source)
            return None if state is None else (state, ctx.days_now, (path,))

        return read_lab

    def read_field(case: Case, ctx: _Context) -> Reading:
        value: Any = case
        for part in parts:
            value = getattr(value, part)
        state = state_of(value, source)
        return None if state is None else (state, ctx.days_now, (path,))

    return read_field


def _imaging_reader(source: Source) -> Encoder:
    modalities = frozenset(Modality(m) for m in source.imaging or [])
    finding = source.finding or ""

    def read_imaging(case: Case, ctx: _Context) -> Reading:
        found = ctx.latest(case, modalities, finding)
        if found is None:
            return None
        study, i = found
        state = state_of(getattr(study.findings, finding), source)
        if state is None:
            return None
        return state, ctx.study_days(case, i), (f"imaging.{i}.findings.{finding}",)

    return read_imaging


# --- computed encoders -------------------------------------------------------------


def _sex_pregnancy(case: Case, ctx: _Context) -> Reading:
    """Sex and pregnancy as one variable: pregnancy only exists in women."""
    status = case.pregnancy.status
    if status in (PregnancyStatus.pregnant, PregnancyStatus.postpartum):
        return "pregnant_or_postpartum", None, ("pregnancy.status",)
    if case.sex is Sex.male:
        return "male", None, ("sex",)
    if case.sex is Sex.female:
        if status is PregnancyStatus.not_pregnant:
            return "female_not_pregnant", None, ("sex", "pregnancy.status")
        return "female", None, ("sex",)
    return None


_MRI = frozenset({Modality.mri})


def _edema_of(f: ImagingFindings) -> tuple[str, str] | None:
    """The edema state one MRI reports, and the field it rests on; None if it says nothing."""
    if f.edema_extent not in (EdemaExtent.unknown, EdemaExtent.none):
        return f.edema_extent.value, "edema_extent"
    if f.edema_extent is EdemaExtent.none or f.edema is Presence.absent or f.stir_high is Presence.absent:
        return "none", "edema"
    if f.edema is Presence.present or f.stir_high is Presence.present:
        return "any_edema", "edema"
    return None  # low T1 alone is not edema (fibrosis, tumour, fat loss)


def _mri_edema(case: Case, ctx: _Context) -> Reading:
    """Edema pattern of the most recent MRI that reports one: T1 low + STIR high + extent are one finding."""
    best: tuple[tuple[float, int], str, str, float | None] | None = None
    for i, study in enumerate(case.imaging):
        if study.modality is not Modality.mri:
            continue
        reading = _edema_of(study.findings)
        if reading is None:
            continue
        days = ctx.study_days(case, i)
        order = (days if days is not None else -1.0, i)
        if best is None or order >= best[0]:
            best = (order, reading[0], f"imaging.{i}.findings.{reading[1]}", days)
    if best is None:
        return None
    return best[1], best[3], (best[2],)


def _subchondral_band(case: Case, ctx: _Context) -> Reading:
    """Subchondral low-signal band: absent, thinner or at least 4 mm thick."""
    found = ctx.latest(case, _MRI, "subchondral_band")
    if found is None:
        return None
    study, i = found
    f = study.findings
    days = ctx.study_days(case, i)
    where = f"imaging.{i}.findings.subchondral_band"
    if f.subchondral_band is Presence.absent:
        return "absent", days, (where,)
    t = f.subchondral_band_thickness_mm
    if t is None or abs(t - BAND_CUTOFF_MM) < BAND_INDETERMINATE_MM:
        return "present", days, (where,) if t is None else (where, f"{where}_thickness_mm")
    return ("thick" if t >= BAND_CUTOFF_MM else "thin"), days, (where, f"{where}_thickness_mm")


def _contrast_pattern(case: Case, ctx: _Context) -> Reading:
    found = ctx.latest(case, _MRI, "contrast_pattern")
    if found is None:
        return None
    study, i = found
    return (
        study.findings.contrast_pattern.value,
        ctx.study_days(case, i),
        (f"imaging.{i}.findings.contrast_pattern",),
    )


COMPUTED: dict[str, tuple[Encoder, frozenset[str]]] = {
    # name: (encoder, the states and aggregates it can return)
    "sex_pregnancy": (_sex_pregnancy, frozenset({"male", "female", "female_not_pregnant", "pregnant_or_postpartum"})),
    "mri_edema": (
        _mri_edema,
        frozenset({"none", "any_edema"} | {e.value for e in EdemaExtent if e.value not in ("unknown", "none")}),
    ),
    "subchondral_band": (_subchondral_band, frozenset({"absent", "thin", "thick", "present"})),
    "contrast_pattern": (_contrast_pattern, frozenset({"homogeneous_enhancement", "subchondral_non_enhancement", "synovial_or_rim_enhancement"})),
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
        bad = {v for v in src.qualitative.values()} - observable
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
        if src.computed not in COMPUTED:
            problems.append(f"no computed encoder {src.computed!r}; known: {sorted(COMPUTED)}")
        else:
            bad = COMPUTED[src.computed][1] - observable
            if bad:
                problems.append(f"encoder {src.computed!r} can return {sorted(bad)}, not states or aggregates here")
    return problems


class CaseEncoder:
    """Reads every variable of a knowledge base from a case. One per knowledge base."""

    def __init__(self, variables: list[Variable]) -> None:
        self._readers: list[tuple[str, Encoder]] = []
        for v in variables:
            src = v.source
            if src.computed is not None:
                reader = COMPUTED[src.computed][0]
            elif src.imaging is not None:
                reader = _imaging_reader(src)
            else:
                reader = _field_reader(src.field or "", src)
            self._readers.append((v.id, reader))

    def encode(self, case: Case, today: dt.date) -> list[Observation]:
        """The observations a case gives, in knowledge-base order."""
        ctx = _Context(today, days_since_onset(case, today), {})
        out = []
        for variable_id, reader in self._readers:
            reading = reader(case, ctx)
            if reading is not None:
                out.append(Observation(variable_id, reading[0], reading[1], reading[2]))
        return out


_ENCODERS: dict[str, CaseEncoder] = {}


def encoder_for(kb: KnowledgeBase) -> CaseEncoder:
    """The case encoder of a knowledge base (built once per base, keyed by its digest)."""
    enc = _ENCODERS.get(kb.digest)
    if enc is None:
        enc = _ENCODERS[kb.digest] = CaseEncoder([v.spec for v in kb.variables.values()])
    return enc
