"""FHIR resources as read from JSON: collected from a Bundle or a list, referenced, and checked.

Only the elements hipdx reads are checked, each where it is read: an element of the wrong
JSON type, a date that is not a FHIR date, or a reference that is not a string raises
:class:`Malformed`, which names the resource and the element (``Observation/bp.valueQuantity.value``).
The mapping collects these and reports them together as one
:class:`~hipdx.errors.IntegrationError`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from hipdx.errors import IntegrationError, Problem

#: FHIR date and dateTime (https://hl7.org/fhir/R4/datatypes.html#dateTime)
_DATE = re.compile(
    r"^(?P<y>[0-9]{4})(-(?P<m>0[1-9]|1[0-2])(-(?P<d>0[1-9]|[12][0-9]|3[01])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$"
)
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]+")
_RESOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: resource types the mapping reads or carries: each matches _RESOURCE_TYPE, so the pattern is skipped for them
_READ_TYPES = frozenset(
    {"Bundle", "Patient", "Observation", "Condition", "ImagingStudy", "DiagnosticReport", "MedicationStatement",
     "MedicationRequest", "Medication", "AllergyIntolerance", "Procedure"}
)
#: resource types a Bundle of any kind may hold; the mapping reads some and lists the rest
MAX_RESOURCES = 20000


class Malformed(Exception):
    """An element hipdx reads is not what FHIR R4 says it is."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.problem = Problem(where, reason)


@dataclass(slots=True)
class Resource:
    """One resource and where it was found."""

    type: str
    id: str | None
    data: dict[str, Any]
    full_url: str | None
    label: str  # "Observation/123", or the fullUrl, or "Observation at entry[4]"
    contained: dict[str, dict[str, Any]] = field(default_factory=dict)

    def at(self, element: str) -> str:
        return f"{self.label}.{element}" if element else self.label

    # -- typed access to elements; each raises Malformed naming the element -----------------

    def get(
        self, element: str, kind: type | tuple[type, ...], node: dict[str, Any] | None = None, path: str | None = None
    ) -> Any:
        """The element's value, or None when absent; Malformed when of the wrong JSON type."""
        value = (self.data if node is None else node).get(element)
        if value is None or type(value) is kind:  # absent, or exactly the JSON type asked for: the common cases
            return value
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise Malformed(self.at(path or element), f"must be {_kind_name(kind)}, not {_json_type(value)}")
        return value

    def objects(
        self, element: str, node: dict[str, Any] | None = None, path: str | None = None
    ) -> list[dict[str, Any]]:
        """An array of objects (a single object is refused: FHIR JSON arrays are arrays)."""
        items = self.get(element, list, node, path)
        if items is None:
            return []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise Malformed(self.at(f"{path or element}[{i}]"), f"must be an object, not {_json_type(item)}")
        return items

    def codings(
        self, element: str, node: dict[str, Any] | None = None, path: str | None = None
    ) -> list[tuple[str, str]]:
        """(system, code) of every coding of a CodeableConcept element that has both."""
        concept = (self.data if node is None else node).get(element)
        if type(concept) is not dict:  # absent, or checked (and named) by get
            if concept is None:
                return []
            concept = self.get(element, dict, node, path)
        out = _plain_codings(concept.get("coding"))
        if out is not None:
            return out
        out = []  # something is not of its JSON type: read it element by element to name it
        for i, coding in enumerate(self.objects("coding", concept, f"{path or element}.coding")):
            system = self.get("system", str, coding, f"{path or element}.coding[{i}].system")
            code = self.get("code", str, coding, f"{path or element}.coding[{i}].code")
            if system and code:
                out.append((system, code))
        return out

    def date(self, element: str, node: dict[str, Any] | None = None, path: str | None = None) -> Date | None:
        """A FHIR date or dateTime element as a :class:`Date`, or None when absent."""
        text = (self.data if node is None else node).get(element)
        if type(text) is not str:  # absent, or checked (and named) by get
            if text is None:
                return None
            text = self.get(element, str, node, path)
        parsed = _parse_date_memo(text) if len(text) <= _MEMO_DATE_CHARS else _parse_date(text)
        if isinstance(parsed, str):
            raise Malformed(self.at(path or element), parsed)
        return parsed

    def reference(self, element: str, node: dict[str, Any] | None = None, path: str | None = None) -> str | None:
        ref = (self.data if node is None else node).get(element)
        if type(ref) is not dict:  # absent, or checked (and named) by get
            if ref is None:
                return None
            ref = self.get(element, dict, node, path)
        target = ref.get("reference")
        if target is None or type(target) is str:  # the common cases, without naming the element
            return target
        return self.get("reference", str, ref, f"{path or element}.reference")

    def references(self, element: str) -> list[tuple[str, str]]:
        """(element path, reference) of an array of References."""
        out = []
        for i, ref in enumerate(self.objects(element)):
            target = self.get("reference", str, ref, f"{element}[{i}].reference")
            if target:
                out.append((f"{element}[{i}]", target))
        return out


def _plain_codings(codings: Any) -> list[tuple[str, str]] | None:
    """(system, code) of each Coding that has both; None when an element is not of its JSON type.

    The fast path of :meth:`Resource.codings`: a well-formed array read in one pass, leaving
    the element-by-element checks (and their messages) to the slow path.
    """
    out: list[tuple[str, str]] = []
    if codings is None:
        return out
    if type(codings) is not list:
        return None
    for coding in codings:
        if type(coding) is not dict:
            return None
        system, code = coding.get("system"), coding.get("code")
        if type(system) is str and type(code) is str:
            if system and code:
                out.append((system, code))
        elif (system is not None and type(system) is not str) or (code is not None and type(code) is not str):
            return None
    return out


@dataclass(frozen=True)
class Date:
    """A FHIR date: the calendar day when the text gives one, else None (year or month only)."""

    day: dt.date | None
    text: str


def _parse_date(text: str) -> Date | str:
    """The :class:`Date` a FHIR date or dateTime text gives, or why it gives none."""
    match = _DATE.match(text)
    if match is None:
        return f"{text!r} is not a FHIR date or dateTime"
    if match["d"] is None:
        return Date(None, text)
    try:
        return Date(dt.date(int(match["y"]), int(match["m"]), int(match["d"])), text)
    except ValueError:
        return f"{text!r} is not a calendar date"


#: a chart repeats its dates (one imaging date for all of a study's findings), so a date text is
#: parsed once (a ``Date`` is frozen: shared safely); only texts as long as a dateTime with
#: nanoseconds and an offset are kept, so what a client sends cannot fill the memory
_MEMO_DATE_CHARS = 40
_parse_date_memo = lru_cache(maxsize=4096)(_parse_date)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true or false",
    }
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in _as_tuple(kind)))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


class Resources:
    """Every resource of the input, indexed for resolving references."""

    def __init__(self, items: list[Resource]) -> None:
        self.items = items
        #: the server bases (``https://host/fhir``) whose absolute references are this record's;
        #: an absolute reference under any other base is another server's resource, never read
        #: as the same-named one here (mapping sets it: the call's fhirServer, the Patient's fullUrl)
        self.bases: frozenset[str] = frozenset()
        self._by_key: dict[str, Resource] = {}
        for res in items:
            if res.full_url:
                self._by_key.setdefault(res.full_url, res)
            if res.id:
                self._by_key.setdefault(res.label, res)  # "Type/id" when the resource has an id

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.items)

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.items if r.type in types]

    def resolve(self, reference: str, origin: Resource | None = None) -> Resource | dict[str, Any] | None:
        """The resource a reference points to: contained (``#id``), by fullUrl, or by Type/id."""
        if reference.startswith("#"):
            if origin is None:
                return None
            return origin.contained.get(reference[1:])
        hit = self._by_key.get(reference)
        if hit is not None:
            return hit
        key = relative_reference(reference)
        if key is None or reference_base(reference) not in self.bases | {""}:
            return None  # another server's resource of the same Type/id is not this one
        return self._by_key.get(key)


_RELATIVE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


def relative_reference(reference: str) -> str | None:
    """``Type/id`` of a relative or absolute RESTful reference; None for others (urn:uuid, #)."""
    match = _RELATIVE.search(reference)
    return f"{match[1]}/{match[2]}" if match else None


def reference_base(reference: str) -> str | None:
    """The server base of a RESTful reference: "" when relative, ``https://host/fhir`` when absolute, None for others."""
    match = _RELATIVE.search(reference)
    if match is None:
        return None
    return reference[: match.start()].rstrip("/") if "://" in reference else ("" if match.start() == 0 else None)


def _place(parent: str | None, index: int | None) -> str:
    """Where an item of the input is, as messages name it (built only when one is needed)."""
    if parent is not None:
        return f"{parent}.entry[{index}].resource"
    return "(input)" if index is None else f"[{index}]"


def collect(data: Any) -> Resources:
    """Every resource of a Bundle (nested Bundles walked), a single resource, or a list of them.

    Raises
    ------
    IntegrationError
        The input is not a FHIR resource, a Bundle or an array of resources; or an entry is
        malformed (every such entry is named).
    """
    problems: list[Problem] = []
    out: list[Resource] = []

    def add(item: Any, parent: str | None, index: int | None, full_url: str | None, depth: int) -> None:
        if len(out) > MAX_RESOURCES:
            raise IntegrationError(f"the input holds more than {MAX_RESOURCES} resources; send one patient's record")
        if not isinstance(item, dict):
            problems.append(Problem(_place(parent, index), f"must be a FHIR resource (a JSON object), not {_json_type(item)}"))
            return
        rtype = item.get("resourceType")
        if not isinstance(rtype, str) or (rtype not in _READ_TYPES and not _RESOURCE_TYPE.fullmatch(rtype)):
            hint = " (it looks like a hipdx case: use `hipdx assess CASE.json`)" if "schema_version" in item else ""
            problems.append(Problem(_place(parent, index), "has no valid resourceType: not a FHIR resource" + hint))
            return
        rid = item.get("id")
        if rid is not None and (not isinstance(rid, str) or not _RESOURCE_ID.fullmatch(rid)):
            problems.append(Problem(f"{_place(parent, index)} ({rtype})", "id must be 1-64 letters, digits, '-' or '.'"))
            return
        label = f"{rtype}/{rid}" if rid else (full_url or f"{rtype} at {_place(parent, index)}")
        contained = {}
        inners = item.get("contained")
        for i, inner in enumerate(inners or ()):
            if isinstance(inner, dict) and isinstance(inner.get("id"), str):
                contained[inner["id"]] = inner
            else:
                problems.append(Problem(f"{label}.contained[{i}]", "must be a resource with an id"))
        out.append(Resource(rtype, rid, item, full_url, label, contained))
        if rtype == "Bundle":
            if depth > 3:
                problems.append(Problem(label, "Bundles nested more than 3 deep are not read"))
                return
            entries = item.get("entry") or []
            if not isinstance(entries, list):
                problems.append(Problem(f"{label}.entry", "must be an array"))
                return
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict):
                    problems.append(Problem(f"{label}.entry[{i}]", "must be an object"))
                    continue
                url = entry.get("fullUrl")
                if url is not None and not isinstance(url, str):
                    problems.append(Problem(f"{label}.entry[{i}].fullUrl", "must be a string"))
                    continue
                if "resource" in entry:  # a transaction-response entry may have none
                    add(entry["resource"], label, i, url, depth + 1)

    if isinstance(data, list):
        for i, item in enumerate(data):
            add(item, None, i, None, 0)
    elif isinstance(data, dict):
        add(data, None, None, None, 0)
    else:
        raise IntegrationError(
            f"FHIR input must be a resource, a Bundle or an array of resources, not {_json_type(data)}"
        )
    if problems:
        raise IntegrationError("the FHIR input is malformed", problems)
    return Resources(out)
