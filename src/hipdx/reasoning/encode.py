"""From a :class:`~hipdx.case.Case` to observations of the knowledge base's variables.

Each variable of the base names its ``source`` in the case: a field, the most recent
imaging study that reports a finding, or one of the computed encoders below (for
findings that are one variable with several states although the case records them in
several fields, such as T1 low + STIR high + extent = one edema pattern). A finding
that is not known gives no observation at all: missing is not absent.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass, field
from enum import Enum
from collections.abc import Sequence
from typing import Any, Callable

from hipdx.case import Case, ImagingFindings, ImagingStudy, Modality
from hipdx.case.model import EdemaExtent, PregnancyStatus, Presence, Sex
from hipdx.case.timeline import Timeline
from hipdx.case.units import QUANTITIES
from hipdx.knowledge.base import KnowledgeBase
from hipdx.knowledge.schema import Source, Variable



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


@dataclass(frozen=True)
class BandCutoff:
    """The subchondral band's thickness cut-off and its indeterminate margin, in mm
    (``staging.yaml``: ``band_cutoff_mm``, ``band_indeterminate_margin_mm``; Vande Berg et al. 2011).

    Within the margin of the cut-off a measurement counts as "band present, thickness not decided".
    """

    cutoff_mm: float
    indeterminate_mm: float

    @classmethod
    def of(cls, kb: KnowledgeBase) -> BandCutoff:
        threshold = kb.treatment.threshold
        return cls(threshold("band_cutoff_mm").value, threshold("band_indeterminate_margin_mm").value)


@dataclass
class _Context:
    timeline: Timeline
    days_now: float | None
    band: BandCutoff
    _latest: dict[tuple[frozenset[Modality], str], tuple[ImagingStudy, int] | None] = field(default_factory=dict)

    def study_days(self, case: Case, i: int) -> float | None:
        """Days from onset to study ``i`` (derived once per study and assessment)."""
        return self.timeline.study(i)

    def latest(self, case: Case, modalities: frozenset[Modality], finding: str) -> tuple[ImagingStudy, int] | None:
        """The most recent study of one of ``modalities`` that reports ``finding``."""
        key = (modalities, finding)
        if key not in self._latest:
            best: tuple[float, int] | None = None
            for i, study in enumerate(case.imaging):
                if study.modality not in modalities:
                    continue
                value = getattr(study.findings, finding)
                if value is None or getattr(value, "_value_", None) == "unknown":  # an enum's value, without the property
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


_UNSEEN: Any = object()


def is_lab(path: str) -> bool:
    """Whether a field source is a measured lab, read in its canonical unit (``Labs.canonical``)."""
    parts = path.split(".")
    return len(parts) == 2 and parts[0] == "labs" and (parts[1] in QUANTITIES or parts[1] == "bmd_t_score")


def qualitative_reading(case: Case, name: str, source: Source, days: float | None) -> Reading:
    """A laboratory result given only in words (``labs.qualitative``) as the state or aggregate
    its variable maps it to (``source.qualitative``: "raised" CRP covers the raised and high bins)."""
    result = case.labs.qualitative.get(name)  # type: ignore[call-overload]
    if result is None or not source.qualitative or result.value not in source.qualitative:
        return None
    return source.qualitative[result.value], days, (f"labs.qualitative.{name}",)


def _field_reader(path: str, source: Source) -> Encoder:
    parts = path.split(".")
    if is_lab(path):  # a measured lab, in its canonical unit
        name = parts[1]

        def read_lab(case: Case, ctx: _Context) -> Reading:
            value = case.labs.canonical(name)
            if value is None and source.qualitative:  # a result reported only in words covers the bins it names
                return qualitative_reading(case, name, source, ctx.days_now)
            state = state_of(value, source)
            return None if state is None else (state, ctx.days_now, (path,))

        return read_lab

    get = operator.attrgetter(path)
    states: dict[Any, str | None] = {}  # an enum, flag or None -> its state (few; numbers are binned each time)

    def read_field(case: Case, ctx: _Context) -> Reading:
        value = get(case)
        if value is None or isinstance(value, (Enum, bool)):
            state = states.get(value, _UNSEEN)
            if state is _UNSEEN:
                state = states[value] = state_of(value, source)
        else:
            state = state_of(value, source)
        return None if state is None else (state, ctx.days_now, (path,))  # type: ignore[return-value]

    return read_field


def _imaging_reader(source: Source) -> Encoder:
    modalities = frozenset(Modality(m) for m in source.imaging or [])
    finding = source.finding or ""
    states: dict[Any, str | None] = {}  # an enum or flag -> its state (numbers are binned each time)

    def read_imaging(case: Case, ctx: _Context) -> Reading:
        found = ctx.latest(case, modalities, finding)
        if found is None:
            return None
        study, i = found
        value = getattr(study.findings, finding)
        if isinstance(value, (Enum, bool)):
            state = states.get(value, _UNSEEN)
            if state is _UNSEEN:
                state = states[value] = state_of(value, source)
        else:
            state = state_of(value, source)
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
    """Subchondral low-signal band: absent, thinner than the cut-off or at least as thick."""
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
    if t is None or abs(t - ctx.band.cutoff_mm) < ctx.band.indeterminate_mm:
        return "present", days, (where,) if t is None else (where, f"{where}_thickness_mm")
    return ("thick" if t >= ctx.band.cutoff_mm else "thin"), days, (where, f"{where}_thickness_mm")


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


#: name -> the encoder of each computed source (``knowledge/sources.py`` lists the states each can return)
COMPUTED: dict[str, Encoder] = {
    "sex_pregnancy": _sex_pregnancy,
    "mri_edema": _mri_edema,
    "subchondral_band": _subchondral_band,
    "contrast_pattern": _contrast_pattern,
}
#: The computed encoders that read only imaging studies (nothing for a case without one).
IMAGING_ONLY = frozenset({"mri_edema", "subchondral_band", "contrast_pattern"})


class SourceKind(str, Enum):
    """Where in a case a variable is read."""

    field = "field"
    lab = "lab"
    imaging = "imaging"
    computed = "computed"


@dataclass(frozen=True)
class SourceReader:
    """How one variable is read from a case: the one description every encoder follows.

    :class:`CaseEncoder` calls ``read`` case by case; the batch encoder
    (:class:`hipdx.reasoning.batch.BatchEncoder`) reads the same sources column-wise,
    and computed ones through ``read`` itself.
    """

    variable: str
    source: Source
    kind: SourceKind
    read: Encoder

    @classmethod
    def of(cls, v: Variable) -> SourceReader:
        src = v.source
        if src.computed is not None:
            return cls(v.id, src, SourceKind.computed, COMPUTED[src.computed])
        if src.imaging is not None:
            return cls(v.id, src, SourceKind.imaging, _imaging_reader(src))
        path = src.field or ""
        return cls(v.id, src, SourceKind.lab if is_lab(path) else SourceKind.field, _field_reader(path, src))


class CaseEncoder:
    """Reads every variable of a knowledge base from a case. One per knowledge base (:func:`encoder_for`).

    Parameters
    ----------
    variables
        The variables to read, in knowledge-base order (or readers already built for them).
    band
        The subchondral band's cut-off, from the same base.
    """

    def __init__(self, variables: Sequence[Variable | SourceReader], band: BandCutoff) -> None:
        self.band = band
        self.readers = [v if isinstance(v, SourceReader) else SourceReader.of(v) for v in variables]
        self._readers = [(r.variable, r.read) for r in self.readers]

    def encode(self, case: Case, today: dt.date, timeline: Timeline | None = None) -> list[Observation]:
        """The observations a case gives, in knowledge-base order.

        ``timeline`` holds the case's times for this assessment (:class:`~hipdx.case.timeline.Timeline`);
        without it they are derived here.
        """
        timeline = Timeline.of(case, today, timeline)
        ctx = _Context(timeline, timeline.onset, self.band)
        out = []
        for variable_id, reader in self._readers:
            reading = reader(case, ctx)
            if reading is not None:
                out.append(Observation(variable_id, reading[0], reading[1], reading[2]))
        return out


def _build_encoder(kb: KnowledgeBase) -> CaseEncoder:
    return CaseEncoder([v.spec for v in kb.variables.values()], BandCutoff.of(kb))


def encoder_for(kb: KnowledgeBase) -> CaseEncoder:
    """The case encoder of a knowledge base (built once and kept with the base)."""
    return kb.attached(_build_encoder)
