"""The FHIR code tables: which standard codes mean which fact of a case, each with its source.

The tables are data (``hipdx/fhir/data/*.yaml``), read once, checked against the schema
below and against each other: every code names a code system of ``systems.yaml`` and a
source of ``sources.yaml``; every case field a table writes exists in the case model. A
table that fails a check stops the load with :class:`~hipdx.errors.KnowledgeBaseError`
listing every problem.

Lookups match a code exactly, or, for entries marked ``match: prefix``, every code that
starts with it (ICD-10-CM categories, ATC classes). No SNOMED CT hierarchy is available
offline, so a SNOMED child of a listed concept is not matched.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Generic, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field

from hipdx.case.model import Case
from hipdx.case.values import Setting
from hipdx.errors import KnowledgeBaseError, Problem
from hipdx.knowledge.files import DataReader

Confidence = Literal["good", "moderate", "unverified"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Code(_Strict):
    """One code of a table: its system (short name), code, display, source and confidence."""

    system: str
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)
    source: str
    confidence: Confidence
    match: Literal["exact", "prefix"] = "exact"

    def matches(self, system_uri: str, code: str, uris: dict[str, str]) -> bool:
        if uris[self.system] != system_uri:
            return False
        return code.startswith(self.code) if self.match == "prefix" else code == self.code


class Source(_Strict):
    id: str
    title: str
    url: str


class SourcesFile(_Strict):
    sources: list[Source]


class SystemsFile(_Strict):
    systems: dict[str, str]


class Fact(_Strict):
    """Coded problems that set one present/absent fact."""

    id: str
    field: str
    value: Literal["present", "absent"] = "present"
    history: bool = Field(description="a resolved or inactive record still counts (a history-of fact)")
    within_days: int | None = Field(default=None, gt=0)
    resources: list[Literal["Condition", "AllergyIntolerance"]] = ["Condition"]
    codes: list[Code]


class ComplaintCode(Code):
    side: Literal["left", "right", "unknown"]


class PregnancyCode(Code):
    status: Literal["pregnant", "not_pregnant"]


class FactsFile(_Strict):
    facts: list[Fact]
    complaints: list[ComplaintCode]
    pregnancy_conditions: list[PregnancyCode]


class QuantityEntry(_Strict):
    field: str
    quantity: str
    unitless: bool = False
    codes: list[Code]


class AnswerCode(Code):
    value: str


class AnswerEntry(_Strict):
    field: str
    #: the key of ``windows`` bounding how old an answer may be (days before the assessment); None: any age
    window: str | None = None
    codes: list[Code]
    values: list[AnswerCode]


class ObservationsFile(_Strict):
    quantities: list[QuantityEntry]
    answers: list[AnswerEntry]
    presence_values: list[AnswerCode]
    windows: dict[str, int]


class PlainUnit(_Strict):
    unit: str
    accept: dict[str, float]


class UnitsFile(_Strict):
    units: dict[str, dict[str, str]]
    plain_units: dict[str, PlainUnit]


class MedicationCode(Code):
    # "class" is a Python keyword: the YAML key is read through the alias
    drug_class: Literal["systemic_corticosteroid", "immunosuppressant", "anticoagulant", "not_systemic"] = Field(
        alias="class"
    )
    prednisolone_factor: float | None = Field(default=None, gt=0)
    systemic: Literal["always", "by_route"] = "always"
    #: also a calcineurin inhibitor: a current (active) record sets comorbidities.calcineurin_inhibitor_use
    calcineurin_inhibitor: bool = False


class MedicationsFile(_Strict):
    exposure_window_days: int = Field(gt=0)
    medications: list[MedicationCode]
    systemic_routes: list[Code]


class ModalityCode(Code):
    modality: Literal["mri", "ct", "radiograph", "bone_scan"]
    contrast: bool | None = None


class ImagingFile(_Strict):
    modalities: list[ModalityCode]


class OrderCode(Code):
    """A code of a draft order (CDS Hooks order-select / order-sign): the imaging test or the drug option it orders."""

    test: str | None = Field(default=None, description="the knowledge base's test id (tests.yaml) an imaging order is")
    option: str | None = Field(default=None, description="the treatment option id (treatments.yaml) a drug order is")
    hip: bool = Field(default=False, description="the code itself names the hip or pelvis")


class OrdersFile(_Strict):
    imaging_orders: list[OrderCode]
    drug_orders: list[OrderCode]
    hip_body_sites: list[Code]
    #: the code a suggestion uses to order the knowledge base's next test (test id -> code)
    suggestion_codes: dict[str, Code]


class EncounterClassCode(Code):
    """A class of ``Encounter.class``: the setting it gives, or None for a class outside the knowledge base's settings."""

    setting: Setting | None
    note: str = Field(min_length=1, description="why the class gives this setting, or none")


class EncounterStatuses(_Strict):
    current: list[str] = Field(min_length=1, description="the patient is being seen in the encounter now")
    not_current: list[str]


class EncountersFile(_Strict):
    classes: list[EncounterClassCode]
    statuses: EncounterStatuses


class Finding(_Strict):
    code: str
    kind: Literal["presence", "choice", "number"]
    display: str
    values: list[str] = []
    unit: str | None = None


class FindingsFile(_Strict):
    findings: list[Finding]


class ConditionCodes(_Strict):
    id: str
    codes: list[Code]


class ConditionsFile(_Strict):
    conditions: list[ConditionCodes]


T = TypeVar("T", bound=Code)


class Table(Generic[T]):
    """Codes of one kind, looked up by (system URI, code); exact matches before prefixes."""

    def __init__(self, codes: Iterable[T], uris: dict[str, str]) -> None:
        self._uris = uris
        self._exact: dict[tuple[str, str], T] = {}
        self._prefix: list[T] = []
        for code in codes:
            if code.match == "prefix":
                self._prefix.append(code)
            else:
                self._exact.setdefault((uris[code.system], code.code), code)
        self._prefix.sort(key=lambda c: -len(c.code))  # the most specific class first
        # the prefixes by system URI, then by length (longest first), each prefix text to its first code:
        # a code has one prefix of each length, so looking up its first characters finds what the
        # scan of the sorted list (first match) finds, without a call per listed prefix
        by_length: dict[str, dict[int, dict[str, T]]] = {}
        for code in self._prefix:
            by_length.setdefault(uris[code.system], {}).setdefault(len(code.code), {}).setdefault(code.code, code)
        self._prefixes = {uri: tuple(sorted(lengths.items(), reverse=True)) for uri, lengths in by_length.items()}

    def codes(self) -> list[T]:
        """Every code of the table."""
        return [*self._exact.values(), *self._prefix]

    def find(self, system: str, code: str) -> T | None:
        hit = self._exact.get((system, code))
        if hit is not None:
            return hit
        for length, prefixes in self._prefixes.get(system, ()):
            hit = prefixes.get(code[:length])
            if hit is not None:
                return hit
        return None


class _NoRepeatLoader(yaml.SafeLoader):
    """Records a key repeated in one mapping, on any line.

    The knowledge base's loader (:func:`hipdx.knowledge.files.load_yaml`) compares line
    numbers and so misses a repeat inside one flow mapping (``{a: 1, a: 2}``), the style
    these tables use; this check closes that gap until the core's loader does.
    """

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self.repeats: list[tuple[str, int]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                self.repeats.append((str(key), key_node.start_mark.line + 1))
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _repeated_keys(data_dir: Path, names: Sequence[str]) -> list[Problem]:
    problems = []
    for name in names:
        try:
            loader = _NoRepeatLoader((data_dir / name).read_bytes())
        except OSError:
            continue  # DataReader reports the missing file
        try:
            loader.get_single_data()
        except yaml.YAMLError:
            continue  # DataReader reports it
        finally:
            loader.dispose()
        problems += [
            Problem(name, f"key {key!r} is given twice in one mapping (line {line})") for key, line in loader.repeats
        ]
    return problems


_FILES = (
    "sources.yaml",
    "systems.yaml",
    "facts.yaml",
    "observations.yaml",
    "units.yaml",
    "medications.yaml",
    "imaging.yaml",
    "findings.yaml",
    "conditions.yaml",
    "orders.yaml",
    "encounters.yaml",
)


#: the key of ``windows`` that bounds a Condition saying "not pregnant" (refuted pregnancy, "Not pregnant")
PREGNANCY_STATUS_WINDOW = "pregnancy_status"


class CodeTables:
    """Every table, checked and indexed. Get the bundled one with :func:`load_code_tables`."""

    def __init__(self, data_dir: Path) -> None:
        repeats = _repeated_keys(data_dir, _FILES)
        if repeats:
            raise KnowledgeBaseError(
                "a FHIR code table repeats a key: the later entry would silently replace the earlier one", repeats
            )
        reader = DataReader(data_dir)
        sources = reader.read("sources.yaml", SourcesFile)
        systems = reader.read("systems.yaml", SystemsFile)
        facts = reader.read("facts.yaml", FactsFile)
        observations = reader.read("observations.yaml", ObservationsFile)
        units = reader.read("units.yaml", UnitsFile)
        medications = reader.read("medications.yaml", MedicationsFile)
        imaging = reader.read("imaging.yaml", ImagingFile)
        findings = reader.read("findings.yaml", FindingsFile)
        conditions = reader.read("conditions.yaml", ConditionsFile)
        orders = reader.read("orders.yaml", OrdersFile)
        encounters = reader.read("encounters.yaml", EncountersFile)
        if reader.problems:
            raise KnowledgeBaseError("the FHIR code tables do not follow their schema", reader.problems)
        self.digest = reader.digest
        self.sources = {s.id: s for s in sources.sources}
        self.systems: dict[str, str] = dict(systems.systems)
        self.facts: list[Fact] = facts.facts
        self.quantities: list[QuantityEntry] = observations.quantities
        self.answers: list[AnswerEntry] = observations.answers
        self.units: dict[str, dict[str, str]] = units.units
        self.plain_units: dict[str, PlainUnit] = units.plain_units
        self.windows: dict[str, int] = observations.windows
        self.exposure_window_days: int = medications.exposure_window_days
        self.findings = {f.code: f for f in findings.findings}
        self.condition_codes = {c.id: c.codes for c in conditions.conditions}
        uris = self.systems
        self.fact_codes = Table([_Tagged.of(c, fact) for fact in facts.facts for c in fact.codes], uris)
        self.complaints = Table(facts.complaints, uris)
        self.pregnancy_conditions = Table(facts.pregnancy_conditions, uris)
        self.quantity_codes = Table([_Tagged.of(c, q) for q in observations.quantities for c in q.codes], uris)
        self.answer_codes = Table([_Tagged.of(c, a) for a in observations.answers for c in a.codes], uris)
        self.presence_values = Table(observations.presence_values, uris)
        self.medications = Table(medications.medications, uris)
        self.systemic_routes = Table(medications.systemic_routes, uris)
        self.modalities = Table(imaging.modalities, uris)
        self.imaging_orders = Table(orders.imaging_orders, uris)
        self.drug_orders = Table(orders.drug_orders, uris)
        self.hip_body_sites = Table(orders.hip_body_sites, uris)
        self.suggestion_codes: dict[str, Code] = dict(orders.suggestion_codes)
        self.encounter_classes = Table(encounters.classes, uris)
        self.encounter_statuses: EncounterStatuses = encounters.statuses
        every = [
            *(c for f in facts.facts for c in f.codes),
            *facts.complaints,
            *facts.pregnancy_conditions,
            *(c for q in observations.quantities for c in q.codes),
            *(c for a in observations.answers for c in (*a.codes, *a.values)),
            *observations.presence_values,
            *medications.medications,
            *medications.systemic_routes,
            *imaging.modalities,
            *(c for cs in conditions.conditions for c in cs.codes),
            *orders.imaging_orders,
            *orders.drug_orders,
            *orders.hip_body_sites,
            *orders.suggestion_codes.values(),
            *encounters.classes,
        ]
        problems = _check(every, self, facts.facts, observations, findings.findings)
        if problems:
            raise KnowledgeBaseError("the FHIR code tables are inconsistent", problems)

    def uri(self, short: str) -> str:
        """The URI of a code system by its short name (``sct``, ``loinc``, ...)."""
        return self.systems[short]

    def coding(self, code: Code) -> dict[str, str]:
        """A FHIR Coding for a table code."""
        return {"system": self.systems[code.system], "code": code.code, "display": code.display}


class _Tagged(Code):
    """A table code that remembers the entry (fact, quantity, answer) it belongs to."""

    entry: object = None

    @classmethod
    def of(cls, code: Code, entry: object) -> _Tagged:
        return cls(**code.model_dump(by_alias=True), entry=entry)


def _case_fields() -> set[str]:
    """Every dotted path of the case model (nested models walked, lists by their item)."""
    out: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            path = prefix + name
            out.add(path)
            ann = info.annotation
            for candidate in (ann, *getattr(ann, "__args__", ())):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    walk(candidate, path + ".")

    walk(Case, "")
    from hipdx.case.model import ImagingFindings

    walk(ImagingFindings, "imaging.")
    return out


def _check(
    every: Sequence[Code],
    tables: CodeTables,
    facts: Sequence[Fact],
    observations: ObservationsFile,
    findings: Sequence[Finding],
) -> list[Problem]:
    problems = []
    for code in every:
        where = f"{code.system}|{code.code}"
        if code.system not in tables.systems:
            problems.append(Problem(where, f"code system {code.system!r} is not in systems.yaml"))
        if code.source not in tables.sources:
            problems.append(Problem(where, f"source {code.source!r} is not in sources.yaml"))
    fields = _case_fields()
    written = (
        [f.field for f in facts] + [q.field for q in observations.quantities] + [a.field for a in observations.answers]
    )
    written += [f.code for f in findings]
    for field in written:
        if field not in fields:
            problems.append(Problem(field, "is not a field of the case model"))
    for quantity in observations.quantities:
        if quantity.quantity not in tables.units and quantity.quantity not in tables.plain_units:
            problems.append(Problem(quantity.field, f"quantity {quantity.quantity!r} has no units in units.yaml"))
    for answer in observations.answers:
        if answer.window is not None and answer.window not in observations.windows:
            problems.append(Problem(answer.field, f"window {answer.window!r} is not in observations.yaml: windows"))
    if PREGNANCY_STATUS_WINDOW not in observations.windows:
        problems.append(Problem("windows", f"needs {PREGNANCY_STATUS_WINDOW!r} (the Conditions that say 'not pregnant')"))
    return problems


def default_codes_dir() -> Path:
    """The folder of the bundled code tables."""
    return Path(str(resources.files("hipdx.fhir") / "data"))


@functools.lru_cache(maxsize=4)
def load_code_tables(data_dir: Path | None = None) -> CodeTables:
    """Read and check the FHIR code tables (the bundled ones by default); cached.

    Raises
    ------
    KnowledgeBaseError
        A file is missing, not YAML, repeats a key, breaks the schema, names an unknown
        code system or source, or writes a field the case does not have.
    """
    return CodeTables(data_dir or default_codes_dir())
