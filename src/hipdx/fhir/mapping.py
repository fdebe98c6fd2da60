"""FHIR R4 -> :class:`~hipdx.case.Case`, with the source of every fact and what was left out.

:func:`map_fhir` reads one patient's resources (a Bundle, a resource, or an array of them)
and returns a :class:`FhirMapping`: the case, the resource and element behind each fact
(``sources``) and every resource or element not used, each with its reason (``unmapped``).

Nothing is guessed:

- a number is read only with a unit the code tables accept for it (UCUM code, or a unit
  text the case model accepts); a value without a unit, with a comparator (``<5``) or with
  a ``dataAbsentReason`` is not read;
- a code is read only when the tables list it (with its source); free text is never read;
- a fact is present only from a confirmed record; ``refuted`` makes it absent; unconfirmed,
  provisional, entered-in-error or preliminary records are left out;
- when several records give one fact, the latest (on or before the assessment date) wins
  and the others are listed as superseded.

Policy: lenient with what can be left out (recorded in ``unmapped``, including a value the
case model refuses as implausible or contradictory), strict with what is malformed: an
element hipdx reads that does not follow FHIR R4 raises
:class:`~hipdx.errors.IntegrationError` naming every such resource and element.

The readers of each resource family live in ``read_conditions``, ``read_observations``,
``read_medications`` and ``read_imaging``; they share a :class:`~hipdx.fhir.context.Context`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from hipdx.case.model import Case
from hipdx.case.parse import problems_from_validation
from hipdx.case.timeline import timeline_problems
from hipdx.errors import IntegrationError, Problem
from hipdx.fhir.codes import CodeTables, load_code_tables
from hipdx.fhir.context import Assumption, Context, FactSource, Origin, Unmapped, latest
from hipdx.fhir.jsonread import read_json
from hipdx.fhir.read_conditions import read_allergy, read_condition, read_procedure
from hipdx.fhir.read_encounter import read_encounter, read_setting
from hipdx.fhir.read_imaging import build_study, read_imaging_study, read_report
from hipdx.fhir.read_medications import read_medication
from hipdx.fhir.read_observations import read_observation
from hipdx.fhir.resources import Malformed, Resource, Resources, collect, reference_base, relative_reference

#: resource types the mapping reads, by reader; the order matters: imaging studies and
#: reports first, as they tell which Observations are findings of which study
READERS: dict[str, Callable[[Context, Resource], None]] = {
    "ImagingStudy": read_imaging_study,
    "DiagnosticReport": read_report,
    "Condition": read_condition,
    "Observation": read_observation,
    "MedicationStatement": read_medication,
    "MedicationRequest": read_medication,
    "AllergyIntolerance": read_allergy,
    "Procedure": read_procedure,
    "Encounter": read_encounter,  # kept, then read_setting chooses the one the clinician is in
}
#: read only through others (the Patient itself, a referenced Medication, a Bundle's entries)
_CARRIERS = frozenset({"Patient", "Medication", "Bundle"})
#: the field of a problem with the choice of the patient (``patient_id``: none given of several, or none such);
#: each entry point names it in its own words (the REST API ``query.patient``, the command line ``--patient``)
PATIENT_CHOICE = "patient_id"
#: how many facts the case model may refuse before the mapping gives up (each is left out with its reason)
_MAX_REFUSED = 50


class FhirMapping(BaseModel):
    """The case built from FHIR, the source of each fact, and what was left out."""

    model_config = ConfigDict(frozen=True)

    case: Case
    patient: str
    assessed_on: dt.date
    sources: list[FactSource]
    unmapped: list[Unmapped]
    hip_pain: list[str]
    code_tables_digest: str
    #: facts left at their default because the record did not give them, with why (the setting)
    assumed: list[Assumption] = []


def _choose_patient(resources: Resources, patient_id: str | None) -> tuple[Resource | None, set[str]]:
    """The Patient (or, without one, the single subject all resources share) and the keys that reference it."""
    patients = resources.of_type("Patient")
    if patient_id is not None:
        chosen = [p for p in patients if p.id == patient_id]
        if not chosen and patients:
            ids = ", ".join(p.label for p in patients[:10])
            raise IntegrationError(f"no Patient with id {patient_id!r} in the FHIR input",
                                   [Problem(PATIENT_CHOICE, f"{patient_id!r} is none of the input's patients ({ids})")])
        if not chosen:  # no Patient resource: read what is about Patient/<id>
            return None, {f"Patient/{patient_id}"}
        patient: Resource | None = chosen[0]
    elif len(patients) == 1:
        patient = patients[0]
    elif len(patients) > 1:
        ids = ", ".join(p.label for p in patients[:10])
        raise IntegrationError(f"the FHIR input holds {len(patients)} patients ({ids}); choose one by its id",
                               [Problem(PATIENT_CHOICE, f"required: the input holds {len(patients)} patients ({ids})")])
    else:
        patient = None
    if patient is not None:
        return patient, {patient.label} | ({patient.full_url} if patient.full_url else set())
    subjects = set()
    for res in resources:
        if res.type in READERS:
            try:
                ref = res.reference(_subject_element(res))
            except Malformed:
                continue  # reported when the resource is read
            if ref:  # Patient/1 and https://a/Patient/1 are two subjects until a base says otherwise
                subjects.add(relative_reference(ref) if reference_base(ref) == "" else ref)
    if len(subjects) == 1:
        return None, subjects
    if not subjects:
        raise IntegrationError("the FHIR input holds no Patient and no resource about a patient")
    raise IntegrationError(
        f"the FHIR input holds no Patient and resources about {len(subjects)} patients; send one patient's record"
    )


def _in_read_order(resources: Resources) -> list[Resource]:
    """The resources by the order of :data:`READERS`, then the others; each type in the order given."""
    by_type: dict[str, list[Resource]] = {rtype: [] for rtype in READERS}
    others = []
    for res in resources:
        group = by_type.get(res.type)
        if group is None:
            others.append(res)
        else:
            group.append(res)
    return [res for group in by_type.values() for res in group] + others


def _subject_element(res: Resource) -> str:
    return "patient" if res.type == "AllergyIntolerance" else "subject"


def _local_bases(patient: Resource | None, keys: set[str], fhir_server: str | None) -> frozenset[str]:
    """The server bases whose absolute references are this record's: the call's FHIR server, the patient's own."""
    bases = {fhir_server.rstrip("/")} if fhir_server else set()
    for own in [patient.full_url if patient else None, *keys]:
        base = reference_base(own or "")
        if base:
            bases.add(base)
    return frozenset(bases)


def _about_patient(ctx: Context, res: Resource, keys: set[str]) -> bool:
    """True when the resource's subject resolves to the patient assessed (skipped, with the reason, when not).

    A subject resolves to the patient when it is one of ``keys`` (``Patient/<id>``, the
    Patient's fullUrl such as its urn:uuid), or is ``Patient/<id>`` (any version) relative or
    under one of the record's own server bases. ``https://other.example/fhir/Patient/<id>``
    names another server's patient who only shares the id: never read as this one.
    """
    element = "patient" if res.type == "AllergyIntolerance" else "subject"  # _subject_element, inlined
    ref = res.reference(element)
    if ref is None:
        ctx.skip(res, element, "no subject: cannot tell whose record it is")
        return False
    if ref in keys:
        return True
    relative, base = relative_reference(ref), reference_base(ref)
    if relative in keys and (base == "" or base in ctx.res.bases):
        return True
    if relative in keys and base:
        ctx.skip(res, element, f"about {ref}: a patient of another FHIR server ({base}), not the patient assessed "
                 "(only the same id)")
        return False
    ctx.skip(res, element, f"about another subject ({ref}), not the patient assessed")
    return False


def _read_patient(ctx: Context, res: Resource, raw: dict[str, Any], sources: list[Origin]) -> None:
    gender = res.get("gender", str)
    if gender in ("male", "female"):
        raw["sex"] = gender
        sources.append(Origin("sex", res.label, "gender", gender))
    elif gender is not None:
        ctx.skip(res, "gender", f"administrative gender {gender!r} does not give the sex the model uses")
    if res.get("deceasedBoolean", bool) or res.get("deceasedDateTime", str):
        ctx.skip(res, "deceased[x]", "the patient is recorded as deceased; the assessment is of the record")
    birth = res.date("birthDate")
    if birth is None:
        return
    if birth.day is None:
        ctx.skip(res, "birthDate", f"{birth.text!r} gives no day: the age cannot be computed exactly")
        return
    today = ctx.today
    if birth.day > today:
        ctx.skip(res, "birthDate", f"{birth.text} is after the assessment date")
        return
    years = today.year - birth.day.year - ((today.month, today.day) < (birth.day.month, birth.day.day))
    raw["age_years"] = years
    sources.append(Origin("age_years", res.label, "birthDate", f"{years} years on {today.isoformat()} (born {birth.text})"))


def _resolve(ctx: Context, raw: dict[str, Any], sources: list[Origin]) -> None:
    """Choose the latest offer of each fact, assemble the imaging studies, and list what was superseded."""
    for fieldname, options in ctx.candidates.items():
        chosen = latest(options)
        for other in options:
            if other is not chosen and other.value != chosen.value:
                ctx.skip(
                    other.source.resource,
                    other.source.element,
                    f"{fieldname} = {_brief(other.value)} superseded by {chosen.source.resource} ({_brief(chosen.value)}, the latest)",
                )
        _put(raw, fieldname, chosen.value)
        sources.append(chosen.source)
    studies = []
    onset = raw.get("onset", {}).get("date")
    for study in ctx.studies.values():
        built = build_study(ctx, study, onset, raw.get("side"))
        if built is not None:
            studies.append(built)
    studies.sort(key=lambda s: s[0].get("date") or "")
    for index, (raw_study, study) in enumerate(studies[:50]):
        raw.setdefault("imaging", []).append(raw_study)
        found = [latest(options).source for options in study.findings.values()]
        label, place = f"imaging[{study.label}]", f"imaging.{index}"
        sources += [Origin(s.field.replace(label, place), s.resource, s.element, s.value) for s in study.sources + found]


def _validate(ctx: Context, raw: dict[str, Any], sources: list[Origin]) -> Case:
    """The case; a fact the case model refuses (implausible, contradictory) is left out with the model's reason."""
    for _ in range(_MAX_REFUSED):
        try:
            case = Case.model_validate(raw)
        except ValidationError as exc:
            problems = problems_from_validation(exc)
        else:
            problems = timeline_problems(case, ctx.today)  # an impossible time: the case's one timeline check
            if not problems:
                return case
        dropped = False
        for problem in problems:
            path = _droppable(raw, problem.field)
            if path is None:
                continue
            origin = [s for s in sources if s.field == path or s.field.startswith(path + ".")]
            for src in origin or [Origin(path, "(case)", path, "")]:
                ctx.skip(src.resource, src.element, f"{path}: {problem.reason} (left out)")
                if src in sources:
                    sources.remove(src)
            _drop(raw, path)
            dropped = True
        if not dropped:
            raise IntegrationError("the facts read from FHIR do not make a valid case", problems)
    raise IntegrationError("the facts read from FHIR do not make a valid case: too many facts refused")


def _droppable(raw: dict[str, Any], field: str) -> str | None:
    """The longest prefix of the dotted ``field`` that is in ``raw`` (an imaging study as imaging.N)."""
    parts = field.split(".")
    node: Any = raw
    found = []
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            break
        found.append(part)
        if found[0] == "imaging" and len(found) == 2:
            break  # a refused study is left out whole
    if not found or found == ["imaging"] or found[0] in ("assessed_on", "id"):
        return None
    return ".".join(found)


def _drop(raw: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    node: Any = raw
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node.pop(int(last))
    else:
        del node[last]


def _put(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _brief(value: Any) -> str:
    if isinstance(value, dict) and "value" in value:
        return f"{value['value']:g} {value['unit']}"
    return str(value)


def map_fhir(
    data: Any,
    assessed_on: dt.date,
    *,
    patient_id: str | None = None,
    encounter_id: str | None = None,
    tables: CodeTables | None = None,
    fhir_server: str | None = None,
) -> FhirMapping:
    """Map one patient's FHIR R4 resources to a case.

    Parameters
    ----------
    data
        Decoded JSON: a Bundle (any type; nested Bundles are walked), one resource, or an
        array of resources. Use :func:`read_fhir` for JSON text.
    assessed_on
        The date of the assessment: the age is counted to it, later records are left out.
    patient_id
        The Patient to map when the input holds several; without a Patient resource, the
        resources about ``Patient/<patient_id>`` are read.
    encounter_id
        The Encounter the clinician is in (a CDS hook's ``context.encounterId``): its class
        gives the setting. Without it, the patient's one current Encounter does
        (:mod:`hipdx.fhir.read_encounter`).
    tables
        The code tables (default: the bundled ones).
    fhir_server
        The base URL of the FHIR server the record came from (a CDS Hooks ``fhirServer``, a
        SMART ``iss``): an absolute reference under it is as good as a relative one. Any
        other absolute reference to ``Patient/<id>`` (but the Patient's own fullUrl) names
        another server's patient: its resource is left out, with the reason, in ``unmapped``.

    Raises
    ------
    IntegrationError
        Not FHIR; several patients and no ``patient_id``; or an element hipdx reads is
        malformed (each named as ``Type/id.element``).

    Examples
    --------
    >>> bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
    ...     {"resource": {"resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1980-05-01"}}]}
    >>> m = map_fhir(bundle, dt.date(2026, 11, 20))
    >>> m.case.age_years, m.case.sex.value, m.sources[0].resource
    (46.0, 'male', 'Patient/p')
    """
    resources = collect(data)
    patient, keys = _choose_patient(resources, patient_id)
    resources.bases = _local_bases(patient, keys, fhir_server)
    ctx = Context(resources, tables or load_code_tables(), assessed_on)
    raw: dict[str, Any] = {"assessed_on": assessed_on.isoformat()}
    sources: list[Origin] = []
    problems = _read_all(ctx, resources, patient, keys, raw, sources)
    if problems:
        raise IntegrationError("the FHIR input is malformed", problems)
    read_setting(ctx, encounter_id)
    _resolve(ctx, raw, sources)
    case = _validate(ctx, raw, sources)
    return FhirMapping(
        case=case,
        patient=patient.label if patient else next(iter(keys)),
        assessed_on=assessed_on,
        sources=[{"field": f, "resource": r, "element": e, "value": v} for f, r, e, v in sources],  # validated here, together
        unmapped=ctx.unmapped,
        hip_pain=ctx.complaints,
        code_tables_digest=ctx.t.digest,
        assumed=ctx.assumed,
    )


def _read_all(
    ctx: Context, resources: Any, patient: Any, keys: Any, raw: dict[str, Any], sources: list[Origin]
) -> list[Problem]:
    """Every resource about the patient through its reader, then the Patient into ``raw``; the
    malformed elements met on the way (all of them, not the first)."""
    problems: list[Problem] = []
    for res in _in_read_order(resources):
        reader = READERS.get(res.type)
        if reader is None:
            if res.type not in _CARRIERS:
                ctx.skip(res, "", f"{res.type} is not read by hipdx")
            continue
        try:
            if _about_patient(ctx, res, keys):
                reader(ctx, res)
        except Malformed as bad:
            problems.append(bad.problem)
    if patient is not None:
        raw["id"] = patient.label[:200]
        try:
            _read_patient(ctx, patient, raw, sources)
        except Malformed as bad:
            problems.append(bad.problem)
    return problems


def read_fhir(
    raw: str | bytes,
    assessed_on: dt.date,
    *,
    patient_id: str | None = None,
    encounter_id: str | None = None,
    what: str = "the FHIR input",
    fhir_server: str | None = None,
) -> FhirMapping:
    """:func:`map_fhir` on JSON text, read strictly (a key given twice is refused)."""
    return map_fhir(read_json(raw, what), assessed_on, patient_id=patient_id, encounter_id=encounter_id,
                    fhir_server=fhir_server)
