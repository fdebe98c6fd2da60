"""What the FHIR readers share while mapping one patient: the facts offered, what was left out, the studies.

Each reader (``read_conditions``, ``read_observations``, ``read_medications``,
``read_imaging``) looks at one resource and either offers facts (:meth:`Context.offer`) or
records why it left something out (:meth:`Context.skip`). :mod:`hipdx.fhir.mapping` then
chooses among the offers and builds the case.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hipdx.fhir.codes import CodeTables
from hipdx.fhir.resources import Date, Resource, Resources
from hipdx.reasoning.frozen import Frozen


class FactSource(Frozen):
    """Where one fact of the case came from."""

    field: str
    resource: str
    element: str
    value: str


class Unmapped(Frozen):
    """A resource or element not used, and why."""

    resource: str
    element: str
    reason: str


class Assumption(Frozen):
    """A fact the case holds at its default because the record did not give it, and why (shown to the clinician)."""

    field: str
    value: str
    reason: str


class Origin(NamedTuple):
    """Where an offered value came from: a :class:`FactSource` once the value is chosen.

    Offers are many and most are not chosen (superseded, or an imaging finding relabelled
    with its study's place in the case), so the validated model is built only for the chosen.
    """

    field: str
    resource: str
    element: str
    value: str

    def fact_source(self, field: str | None = None) -> FactSource:
        return FactSource(field=self.field if field is None else field, resource=self.resource, element=self.element, value=self.value)


class Candidate(NamedTuple):
    """One value offered for one fact, with its date; the latest offer wins (a tuple: many are made, none changed)."""

    value: Any
    when: dt.date | None
    source: Origin
    rank: int = 0  # breaks ties between equally dated offers: higher wins


@dataclass
class Study:
    """An imaging study being assembled from an ImagingStudy, its reports and their results."""

    key: str
    label: str
    modality: str | None = None
    contrast: bool | None = None
    date: dt.date | None = None
    findings: dict[str, list[Candidate]] = field(default_factory=dict)
    sources: list[Origin] = field(default_factory=list)
    texts: list[tuple[str, str, str]] = field(default_factory=list)  # (resource, element, report text)


class Context:
    """The shared state of one mapping."""

    def __init__(self, resources: Resources, tables: CodeTables, assessed_on: dt.date) -> None:
        self.res = resources
        self.t = tables
        self.today = assessed_on
        self.unmapped: list[dict[str, str]] = []  # Unmapped's fields, validated together with the mapping
        self.candidates: dict[str, list[Candidate]] = {}
        self.studies: dict[str, Study] = {}
        self.result_of: dict[str, str] = {}  # Observation label -> study key, from DiagnosticReport.result
        self.complaints: list[str] = []  # resources that state hip pain
        self.encounters: list[Resource] = []  # the patient's Encounters, checked; read_encounter.read_setting chooses
        self.assumed: list[dict[str, str]] = []  # Assumption's fields, validated with the mapping

    def skip(self, res: Resource | str, element: str, reason: str) -> None:
        """Record that ``res.element`` is not used, and why."""
        label = res.label if isinstance(res, Resource) else res
        self.unmapped.append({"resource": label, "element": element, "reason": reason})

    def offer(
        self, fieldname: str, value: Any, when: dt.date | None, res: Resource, element: str, shown: str, rank: int = 0
    ) -> None:
        """Offer ``value`` for the case field ``fieldname`` (dotted), read from ``res.element``."""
        src = Origin(fieldname, res.label, element, shown)
        self.candidates.setdefault(fieldname, []).append(Candidate(value, when, src, rank))

    def in_future(self, res: Resource, element: str, when: Date | None) -> bool:
        """True (and recorded) when ``when`` is after the assessment date."""
        if when is not None and when.day is not None and when.day > self.today:
            self.skip(res, element, f"dated {when.text}, after the assessment date {self.today.isoformat()}")
            return True
        return False


def latest(options: list[Candidate]) -> Candidate:
    """The latest offer; undated offers count as oldest; ties go to the higher rank, then to 'present'."""
    if len(options) == 1:  # most facts are offered once
        return options[0]
    return max(options, key=lambda c: (c.when or dt.date.min, c.rank, c.value == "present"))


def show_code(system: str, code: str, display: str) -> str:
    return f"{system}|{code} {display}"


def codes_text(codes: list[tuple[str, str]]) -> str:
    return ", ".join(f"{s}|{c}" for s, c in codes[:4])


def value_element(res: Resource) -> str:
    """The name of the resource's value[x] element as given (valueQuantity, valueBoolean, ...)."""
    for key in res.data:
        if "value" in key and key.startswith("value"):  # the operator first: no method call for most keys
            return key
    return "value[x]"
