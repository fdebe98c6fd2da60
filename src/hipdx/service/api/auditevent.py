"""The audit trail as FHIR R4 AuditEvent resources (IHE Basic Audit Log Patterns in spirit).

Three sources, one shape: an access of the REST API (``access_event``: a user, an action on a
case, an assessment, an MRI job or a user), a call of the CDS services (``cds_call``: the CDS
client's issuer, the patient reference) and a sign-in attempt (``sign_in_attempt``: type DICOM
110114 "User Authentication", subtype 110122 "Login", DICOM PS3.16 CID 400 and 401; outcome 4
when refused, with the reason; never the password). ``type`` is the DICOM audit event "rest" interaction,
``action`` C/R/U/D/E, ``outcome`` 0 (success), 4 (the request was refused) or 8 (the server
failed), ``agent`` who (a user name or the issuer) and from where, ``source`` hipdx,
``entity`` what was touched.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hipdx.store.models import CdsCall
from hipdx.store.tables import AccessEvent, SignInAttempt
from hipdx.store.trail import TrailEvent

REST = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
        "display": "Restful Operation"}
LOGIN_TYPE = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114",
              "display": "User Authentication"}
LOGIN = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110122", "display": "Login"}
_SUBTYPE = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "operation"}


def _outcome(status: int) -> str:
    return "0" if status < 400 else "4" if status < 500 else "8"


def _instant(value: dt.datetime) -> str:
    value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


def _source(site: str) -> dict[str, Any]:
    return {"site": site, "observer": {"display": "hipdx"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                      "display": "Application Server"}]}


def access_auditevent(event: AccessEvent, site: str = "hipdx") -> dict[str, Any]:
    agent: dict[str, Any] = {"requestor": True, "who": {"display": event.username or "(not signed in)"}}
    if event.role:
        agent["role"] = [{"text": event.role}]
    if event.source_address:
        agent["network"] = {"address": event.source_address, "type": "2"}
    return {
        "resourceType": "AuditEvent",
        "id": f"access-{event.id}",
        "type": REST,
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": _SUBTYPE[event.action]}],
        "action": event.action,
        "recorded": _instant(event.recorded_at),
        "outcome": _outcome(event.status_code),
        "outcomeDesc": f"{event.method} {event.path} -> {event.status_code}",
        "agent": [agent],
        "source": _source(site),
        "entity": [{"what": {"display": event.what}, "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}}],
    }


def cds_auditevent(call: CdsCall, site: str = "hipdx") -> dict[str, Any]:
    """A CDS call: the user in whose session the hook fired (``context.userId``) is the requestor,
    the CDS client (the token's issuer) the system that sent it."""
    agents: list[dict[str, Any]] = []
    if call.user_ref:
        agents.append({"requestor": True, "who": {"reference": call.user_ref}})
    agents.append({"requestor": not call.user_ref, "who": {"display": call.issuer or "(no JWT)"}})
    entity: list[dict[str, Any]] = []
    if call.patient:
        entity.append({"what": {"reference": call.patient}, "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"}})
    if call.hook_instance:
        entity.append({"what": {"identifier": {"value": call.hook_instance}}, "description": "hookInstance"})
    return {
        "resourceType": "AuditEvent",
        "id": f"cds-{call.id}",
        "type": REST,
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "operation"}],
        "action": "E",
        "recorded": _instant(call.recorded_at),
        "outcome": _outcome(call.status_code),
        "outcomeDesc": f"{call.method} {call.path} -> {call.status_code}",
        "agent": agents,
        "source": _source(site),
        **({"entity": entity} if entity else {}),
    }


def signin_auditevent(attempt: SignInAttempt, site: str = "hipdx") -> dict[str, Any]:
    agent: dict[str, Any] = {"requestor": True, "who": {"display": attempt.username}, "name": attempt.username}
    if attempt.source_address:
        agent["network"] = {"address": attempt.source_address, "type": "2"}
    refused = attempt.outcome != "signed-in"
    return {
        "resourceType": "AuditEvent",
        "id": f"signin-{attempt.id}",
        "type": LOGIN_TYPE,
        "subtype": [LOGIN],
        "action": "E",
        "recorded": _instant(attempt.attempted_at),
        "outcome": "4" if refused else "0",
        "outcomeDesc": f"sign-in {'refused: ' if refused else ''}{attempt.outcome} ({attempt.channel})",
        "agent": [agent],
        "source": _source(site),
    }


_RESOURCE = {"access": access_auditevent, "cds": cds_auditevent, "signin": signin_auditevent}


def trail_auditevent(event: TrailEvent, site: str = "hipdx") -> dict[str, Any]:
    """The AuditEvent of one event of the trail (:func:`hipdx.store.trail.trail`), whatever its kind."""
    return _RESOURCE[event.kind](event.row, site)


def bundle_entry(resource: dict[str, Any]) -> dict[str, Any]:
    """A Bundle entry of an AuditEvent, with its stable ``urn:hipdx:auditevent:<id>`` full URL."""
    return {"fullUrl": f"urn:hipdx:auditevent:{resource['id']}", "resource": resource}
