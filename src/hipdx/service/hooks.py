"""The ``patient-view`` CDS service: from a CDS Hooks request to at most one card.

The request's prefetch (or, for keys the client did not prefetch, the client's FHIR server
when the operator allows it) is read through the FHIR mapping into a case, assessed by the
core, and rendered as one card. No card when the chart states neither hip pain nor marrow
edema of the hip on MRI. A prefetch key is *missing* when it is omitted, holds an
OperationOutcome (the client could not fetch it) or a Bundle with a ``next`` link (one page of
the search: CDS Hooks 2.0 prefetch has no next links); ``null`` means "no data" and is fine.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx2 as httpx

from hipdx.errors import InputError, IntegrationError, Problem
from hipdx.fhir.jsonread import read_json
from hipdx.fhir.mapping import FhirMapping, map_fhir
from hipdx.knowledge import KnowledgeBase
from hipdx.reasoning import assess
from hipdx.service.cards import CardLinks, card

SERVICE_ID = "hipdx-patient-view"
#: what the service asks the client to prefetch (CDS Hooks 2.0 prefetch templates)
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&_count=500",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "allergies": "AllergyIntolerance?patient={{context.patientId}}",
    "imagingReports": "DiagnosticReport?patient={{context.patientId}}",
    "imagingStudies": "ImagingStudy?patient={{context.patientId}}",
    # the encounter the chart is opened in: its class gives the setting (emergency department or
    # clinic, docs/fhir.md). Optional: without context.encounterId the template cannot be filled
    # and the client omits the key (CDS Hooks 2.0, "Prefetch template"); a missing encounter never
    # fails the call (412): the card says which setting was assumed
    "encounter": "Encounter/{{context.encounterId}}",
}
#: prefetch keys whose absence does not stop the service (the mapping records what was assumed)
OPTIONAL_PREFETCH = frozenset({"encounter"})
DISCOVERY = {
    "hook": "patient-view",
    "id": SERVICE_ID,
    "title": "hipdx: atraumatic hip pain with bone marrow edema",
    "description": (
        "For a patient with hip pain or hip bone marrow edema in the chart: the ranked differential "
        "(transient osteoporosis, osteonecrosis, fractures, infection, ...), red flags and the next useful test."
    ),
    "prefetch": PREFETCH,
    "usageRequirements": (
        "Reads coded data only (LOINC, SNOMED CT, ICD-10-CM, ATC, RxNorm, UCUM, v3 ActCode); send context.encounterId "
        "so the setting (emergency department or clinic) is read from the encounter; see docs/fhir.md."
    ),
}
MAX_PAGES = 5
#: the largest page read from a FHIR server (as a CDS request's body, hipdx.service.app)
MAX_ANSWER_BYTES = 20 * 1024 * 1024
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class PreconditionFailed(Exception):
    """Data the service needs was neither prefetched nor fetchable (HTTP 412)."""

    def __init__(self, missing: Sequence[str], reason: str) -> None:
        super().__init__(reason)
        self.missing = list(missing)
        self.reason = reason


@dataclass(frozen=True)
class Request:
    hook_instance: str
    patient_id: str
    prefetch: dict[str, Any]
    fhir_server: str | None
    access_token: str | None
    encounter_id: str | None = None


def parse_request(body: Any, hook: str = "patient-view", extra: Sequence[Problem] = ()) -> Request:
    """The fields of a CDS Hooks request this service uses, checked (``extra``: the hook's own problems).

    Raises
    ------
    InputError
        A required field is missing or of the wrong type, or the hook is not ``hook``.
    """
    problems = list(extra)
    if not isinstance(body, dict):
        raise InputError("a CDS Hooks request is a JSON object")
    if body.get("hook") != hook:
        problems.append(Problem("hook", f"{body.get('hook')!r}: this service answers {hook}"))
    if not isinstance(body.get("hookInstance"), str) or not body["hookInstance"]:
        problems.append(Problem("hookInstance", "required (a UUID string)"))
    context = body.get("context")
    patient = context.get("patientId") if isinstance(context, dict) else None
    if not isinstance(patient, str) or not _ID.fullmatch(patient):
        problems.append(Problem("context.patientId", "required: a FHIR resource id"))
    encounter = context.get("encounterId") if isinstance(context, dict) else None
    if encounter is not None and (not isinstance(encounter, str) or not _ID.fullmatch(encounter)):
        problems.append(Problem("context.encounterId", "must be a FHIR resource id (or left out)"))
    prefetch = body.get("prefetch", {})
    if not isinstance(prefetch, dict):
        problems.append(Problem("prefetch", "must be an object"))
    server = body.get("fhirServer")
    if server is not None and (not isinstance(server, str) or urlsplit(server).scheme not in ("http", "https")):
        problems.append(Problem("fhirServer", "must be an http(s) URL"))
    auth = body.get("fhirAuthorization")
    token = None
    if auth is not None:
        if not isinstance(auth, dict) or not isinstance(auth.get("access_token"), str):
            problems.append(Problem("fhirAuthorization", "must be an object with an access_token"))
        else:
            if server is None:
                problems.append(Problem("fhirServer", "required when fhirAuthorization is given"))
            token = auth["access_token"]
    if problems:
        raise InputError("the CDS Hooks request is not valid", problems)
    return Request(body["hookInstance"], patient, prefetch, server, token, encounter)  # type: ignore[arg-type]


def prefetched(request: Request) -> tuple[list[Any], list[str]]:
    """The prefetch's resources and Bundles, and the keys missing from it (to be fetched): a key
    omitted (but ``encounter`` without an ``encounterId``), an OperationOutcome, or the first
    page of a search. Reads nothing over the network.

    Raises
    ------
    InputError
        A prefetch value is neither a resource, a Bundle, nor null.
    """
    found: list[Any] = []
    missing = []
    for key in PREFETCH:
        if key not in request.prefetch:
            if key != "encounter" or request.encounter_id is not None:  # no encounterId: nothing to prefetch
                missing.append(key)
            continue
        value = request.prefetch[key]
        if value is None:
            continue  # the client says: no data
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise InputError(f"prefetch.{key} must be a FHIR resource, a Bundle or null")
        if value["resourceType"] == "OperationOutcome" or _has_next_page(value):
            missing.append(key)  # the client tried and failed, or sent the first page only
            continue
        found.append(value)
    return found, missing


def fetches(request: Request, allowed_servers: Sequence[str]) -> bool:
    """True when :func:`gather` would read over the network: a key is missing from the prefetch
    and the request's FHIR server is one this service may call."""
    return bool(prefetched(request)[1]) and _may_call(request.fhir_server, allowed_servers)


def _may_call(server: str | None, allowed_servers: Sequence[str]) -> bool:
    return server is not None and any(server.rstrip("/") == s.rstrip("/") for s in allowed_servers)


def gather(request: Request, allowed_servers: Sequence[str], timeout_s: float = 5.0) -> list[Any]:
    """Every resource or Bundle of the prefetch; what is missing fetched from the FHIR server.

    Raises
    ------
    PreconditionFailed
        Keys missing from the prefetch and no allowed FHIR server to fetch them from, or
        the server did not answer them.
    InputError
        A prefetch value is neither a resource, a Bundle, nor null.
    """
    found, missing = prefetched(request)
    if not missing:
        return found
    server = request.fhir_server
    needed = [key for key in missing if key not in OPTIONAL_PREFETCH]
    if not _may_call(server, allowed_servers):
        if not needed:
            return found  # the optional encounter only: the mapping says the setting was assumed
        why = "and no fhirServer to fetch them from" if server is None else "fhirServer is not one this service may call"
        raise PreconditionFailed(missing, f"prefetch missing: {', '.join(missing)}; {why}")
    tokens = {"{{context.patientId}}": request.patient_id, "{{context.encounterId}}": request.encounter_id or ""}
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for key in missing:
            query = PREFETCH[key]
            for token, value in tokens.items():
                query = query.replace(token, quote(value, safe=""))
            try:
                found += _fetch(client, server, query, request.access_token, key)
            except PreconditionFailed:
                if key in needed:
                    raise
    return found


def _get(client: httpx.Client, url: str, headers: dict[str, str], key: str) -> Any:
    """One page from the FHIR server, read by the strict reader (as the prefetch is), at most MAX_ANSWER_BYTES.

    Raises
    ------
    PreconditionFailed
        No answer, not 200, too large, or not JSON.
    IntegrationError
        JSON the strict reader refuses (a key given twice, too deep), naming the key.
    """
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 404 and key == "patient":
                raise PreconditionFailed([key], "the FHIR server has no such Patient")
            if response.status_code != 200:
                raise PreconditionFailed([key], f"{key}: the FHIR server answered {response.status_code}")
            raw = bytearray()
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) > MAX_ANSWER_BYTES:
                    raise PreconditionFailed(
                        [key], f"{key}: the FHIR server's answer is larger than {MAX_ANSWER_BYTES // 2**20} MB"
                    )
    except httpx.HTTPError as exc:
        raise PreconditionFailed([key], f"{key}: the FHIR server did not answer ({type(exc).__name__})") from None
    try:
        return read_json(bytes(raw), f"the FHIR server's answer for {key}")
    except IntegrationError as err:
        if "not valid JSON" in err.message or "not UTF-8" in err.message:  # an error page, not FHIR: not retrieved
            raise PreconditionFailed([key], f"{key}: the FHIR server's answer is not JSON") from None
        raise


def _has_next_page(value: dict[str, Any]) -> bool:
    """A Bundle with a ``next`` link: one page of a search (CDS Hooks 2.0 prefetch allows no next links)."""
    links = value.get("link") if value["resourceType"] == "Bundle" else None
    return isinstance(links, list) and any(isinstance(link, dict) and link.get("relation") == "next" for link in links)


def _fetch(client: httpx.Client, server: str, query: str, token: str | None, key: str) -> list[Any]:
    base = server.rstrip("/") + "/"
    url: str | None = urljoin(base, query)
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    out = []
    for _ in range(MAX_PAGES):
        if url is None:
            break
        if not url.startswith(base):
            raise PreconditionFailed([key], f"{key}: the FHIR server pointed to another host")
        data = _get(client, url, headers, key)
        out.append(data)
        links = data.get("link") if isinstance(data, dict) else None
        url = (
            next(
                (
                    link.get("url")
                    for link in links
                    if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str)
                ),
                None,
            )
            if isinstance(links, list)
            else None
        )
    if url is not None:  # more pages than read: a card from part of the chart would be a guess
        raise PreconditionFailed(
            [key], f"{key}: the FHIR server's answer has more than {MAX_PAGES} pages; hipdx reads all of a search or none"
        )
    return out


def about_the_hip(mapping: FhirMapping) -> bool:
    """True when the chart states hip pain, or marrow edema on an MRI of the hip."""
    if mapping.hip_pain:
        return True
    return any(s.modality.value == "mri" and s.findings.edema.value == "present" for s in mapping.case.imaging)


def patient_view(
    body: Any, kb: KnowledgeBase, today: dt.date, allowed_servers: Sequence[str] = (), links: CardLinks | None = None
) -> dict[str, Any]:
    """The response to a patient-view request: ``{"cards": [...]}`` with at most one card.

    Raises
    ------
    InputError
        The request is not a valid patient-view request.
    PreconditionFailed
        Prefetch missing and not fetchable.
    IntegrationError
        The prefetched FHIR is malformed (each problem named).
    """
    return answer_patient_view(parse_request(body), kb, today, allowed_servers, links)


def answer_patient_view(
    request: Request, kb: KnowledgeBase, today: dt.date, allowed_servers: Sequence[str] = (), links: CardLinks | None = None
) -> dict[str, Any]:
    """:func:`patient_view` of a request already parsed (:func:`parse_request`)."""
    resources = gather(request, allowed_servers)
    mapping = map_fhir(resources, today, patient_id=request.patient_id, encounter_id=request.encounter_id,
                       fhir_server=request.fhir_server)
    if not about_the_hip(mapping):
        return {"cards": []}
    assessment = assess(mapping.case, kb, today, explain=False)  # the card shows no finding-by-finding explanation
    return {"cards": [card(assessment, mapping, request.hook_instance, links or CardLinks())]}
