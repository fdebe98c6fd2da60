"""Assess, plan and course a case sent in the request (case JSON or a FHIR R4 Bundle), and the
stored cases: create, list and search, read, update, delete, add a visit, re-assess, course.

Every route that reads or writes patient data records it in the access log (who, when, what,
from where); none logs patient data.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

import hipdx
from hipdx.case import Case, parse_case
from hipdx.errors import HipdxError, InputError, Problem
from hipdx.reasoning import Assessment, assess
from hipdx.reasoning.course import compare_course
from hipdx.service.api.context import ApiContext, access_event, audit, clinician, context, json_body, object_field
from hipdx.service.api.problems import ApiProblem
from hipdx.store import records
from hipdx.store.users import Principal

router = APIRouter()
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the stored case's number")]
Today = Annotated[dt.date | None, Query(description="assessment date (YYYY-MM-DD); default: the server's date")]
_LABEL = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def _schema_ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}}}


CASE_OR_FHIR = _body({"anyOf": [_schema_ref("Case"), {"type": "object", "required": ["resourceType"],
                                                        "properties": {"resourceType": {"type": "string"}}}]},
                     "a case (hipdx schema) or one patient's FHIR R4 resources (a Bundle, a resource or an array)")
STORED_CASE = _body({"type": "object", "required": ["label", "case"], "additionalProperties": False,
                     "properties": {"label": {"type": "string", "minLength": 1, "maxLength": 200,
                                              "description": "how the clinic finds the case again (search)"},
                                    "case": _schema_ref("Case")}}, "a label and the case")
VISIT = _body(_schema_ref("Visit"), "one follow-up visit (the case model's visits[] item)")
ERRORS = {status: {"description": title, "content": {"application/problem+json": {"schema": _schema_ref("Problem")}}}
          for status, title in ((401, "not signed in"), (404, "no such case"), (400, "the input is not valid"))}
CHANGE_ERRORS = ERRORS | {
    status: {"description": title, "content": {"application/problem+json": {"schema": _schema_ref("Problem")}}}
    for status, title in ((412, "If-Match does not match the case's current ETag: it changed since it was read"),
                          (428, "If-Match missing: send the ETag of the case as read"))}


def _day(ctx: ApiContext, today: dt.date | None) -> dt.date:
    return today or ctx.today()


def _prefixed(exc: HipdxError, prefix: str) -> InputError:
    """The error with each field placed in the request: under ``prefix`` (``body``, ``case``), the
    choice of the FHIR patient at ``query.patient`` (the ``?patient=`` that gives it)."""
    from hipdx.fhir.mapping import PATIENT_CHOICE

    def place(field: str) -> str:
        if field == PATIENT_CHOICE:
            return "query.patient"
        return f"{prefix}.{field}" if field else prefix

    return InputError(exc.message, [Problem(place(p.field), p.reason) for p in exc.problems]
                      or [Problem(prefix, exc.message)])


def _case_from(raw: Any, day: dt.date, patient: str | None, prefix: str = "body") -> tuple[Case, dict[str, Any] | None]:
    """A case from case JSON, or from FHIR when the body names a resourceType (or is an array)."""
    is_fhir = isinstance(raw, list) or (isinstance(raw, dict) and "resourceType" in raw)
    try:
        if is_fhir:
            from hipdx.fhir import map_fhir

            mapping = map_fhir(raw, day, patient_id=patient)
            return mapping.case, {"sources": len(mapping.sources), "unmapped": len(mapping.unmapped)}
        if patient is not None:
            raise ApiProblem(400, "patient= is for FHIR input only", [Problem("query.patient", "not FHIR input")])
        return parse_case(raw, day), None
    except HipdxError as exc:
        raise _prefixed(exc, prefix) from None


def _assess(ctx: ApiContext, case: Case, day: dt.date) -> Assessment:
    return assess(case, ctx.kb, day)


def _course(ctx: ApiContext, case: Case, day: dt.date) -> dict[str, Any]:
    assessment = _assess(ctx, case, day)
    report = compare_course(case, assessment.differential[0].id, ctx.kb.course, day)
    return {"differential": [i.model_dump(mode="json") for i in assessment.differential[:3]],
            "red_flags": [f.model_dump(mode="json") for f in assessment.red_flags],
            "course": report.model_dump(mode="json")}


@router.post("/assess", openapi_extra=CASE_OR_FHIR, responses=ERRORS, tags=["assess"])
async def assess_case(request: Request, today: Today = None,
                      patient: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9\-.]{1,64}$")] = None,
                      user: Principal = Depends(clinician)) -> dict[str, Any]:
    """The assessment of a case: differential, red flags, explanation, next tests, staging, plan, provenance."""
    ctx, day = context(request), _day(context(request), today)
    raw = await json_body(request, "the case")
    case, fhir = _case_from(raw, day, patient)
    assessment = await run_in_threadpool(_assess, ctx, case, day)
    await run_in_threadpool(audit, request, "E", "assessment")
    out = assessment.model_dump(mode="json")
    if fhir is not None:
        out["fhir_mapping"] = fhir
    return out


@router.post("/plan", openapi_extra=CASE_OR_FHIR, responses=ERRORS, tags=["assess"])
async def plan(request: Request, today: Today = None, user: Principal = Depends(clinician)) -> dict[str, Any]:
    """The cited management plan for the leading diagnosis and the must-not-miss conditions."""
    ctx, day = context(request), _day(context(request), today)
    case, _ = _case_from(await json_body(request, "the case"), day, None)
    assessment = await run_in_threadpool(_assess, ctx, case, day)
    await run_in_threadpool(audit, request, "E", "plan")
    return {"headline": assessment.headline.model_dump(mode="json"),
            "plan": assessment.plan.model_dump(mode="json") if assessment.plan else None}


@router.post("/course", openapi_extra=CASE_OR_FHIR, responses=ERRORS, tags=["assess"])
async def course(request: Request, today: Today = None, user: Principal = Depends(clinician)) -> dict[str, Any]:
    """The follow-up visits compared with the expected course of the leading diagnosis."""
    ctx, day = context(request), _day(context(request), today)
    case, _ = _case_from(await json_body(request, "the case"), day, None)
    out = await run_in_threadpool(_course, ctx, case, day)
    await run_in_threadpool(audit, request, "E", "course")
    return out


def etag(case_id: int, version: int) -> str:
    """The case's entity tag: strong, one per stored version (``"case-12-v3"``); see :func:`_if_match`."""
    return f'"case-{case_id}-v{version}"'


_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*')


def _if_match(request: Request, case_id: int) -> frozenset[int] | None:
    """The versions ``If-Match`` allows a change of: None for ``*`` (the case as it is, if it exists).

    Required on PUT and DELETE (RFC 6585 428): a stored case is replaced whole, so a write
    without the version it was made from cannot be told from one that silently undoes
    another clinician's change. ``If-Match`` compares strongly (RFC 9110 13.1.1): a weak tag
    ``W/"..."`` never matches, and a tag of another case or version answers 412.
    """
    given = request.headers.get("if-match")
    where = Problem("header.If-Match", 'required: the ETag of the case as you read it, e.g. "case-12-v3" '
                                       "(GET /api/v1/cases/{id} gives it), or * to replace it whatever it holds")
    if given is None:
        raise ApiProblem(428, f"changing case {case_id} needs If-Match: the version you read", [where])
    if given.strip() == "*":
        return None
    tags = given.split(",")
    parsed = [_TAG.fullmatch(tag) for tag in tags]
    if not given.strip() or not all(parsed):
        raise ApiProblem(400, "If-Match is not a list of entity tags", [Problem("header.If-Match", f"{given[:80]!r}: "
                         'give the ETag as sent, quotes included, e.g. "case-12-v3"')])
    return frozenset(int(m[2].rsplit("-v", 1)[1]) for m in parsed if m and not m[1]  # none: matches no version
                     and re.fullmatch(rf"case-{case_id}-v\d{{1,10}}", m[2]))


def _stale(err: records.StaleVersion) -> ApiProblem:
    return ApiProblem(412, f"case {err.case_id} has changed since you read it: it is at version {err.current} "
                      f"(ETag {etag(err.case_id, err.current)}); nothing was written. Read it again and repeat the change.",
                      [Problem("header.If-Match", f"does not match case {err.case_id}'s current ETag "
                               f"{etag(err.case_id, err.current)}")], headers={"ETag": etag(err.case_id, err.current)})


def _tagged(record: records.CaseRecord, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(_view(record), status_code=status, headers={"ETag": etag(record.id, record.version), **(headers or {})})


def _view(record: records.CaseRecord) -> dict[str, Any]:
    return {"id": record.id, "label": record.label, "version": record.version, "case": record.full_case(),
            "visits_added": len(record.visits), "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(), "created_by": record.created_by}


async def _stored_body(request: Request, day: dt.date) -> tuple[str, dict[str, Any]]:
    body = await json_body(request, "the stored case")
    label, document = object_field(body, "label"), object_field(body, "case")
    extra = sorted(set(body) - {"label", "case"})
    problems = [Problem(k, "unknown field (give label and case)") for k in extra]
    if not isinstance(label, str) or not _LABEL.match(label):
        problems.append(Problem("label", "1-200 printable characters"))
    if problems:
        raise ApiProblem(400, "the stored case is not valid", problems)
    if not isinstance(document, dict):
        raise ApiProblem(400, "the stored case is not valid", [Problem("case", "a JSON object (hipdx schema)")])
    _case_from(document, day, None, prefix="case")
    return label, document


def _visit_problems(exc: HipdxError, index: int) -> InputError:
    """A visit refused with the stored case: its own fields in the body (``body.pain_0_10``), a
    field of the stored case it contradicts at ``path.case_id`` (that case is not in the request)."""
    own = f"visits.{index}"
    placed = []
    for p in exc.problems:
        if p.field == own or p.field.startswith(own + "."):
            placed.append(Problem("body" + p.field[len(own):], p.reason))
        else:
            placed.append(Problem("path.case_id", f"the stored case's {p.field or 'record'}: {p.reason}"))
    return InputError(exc.message, placed or [Problem("body", exc.message)])


def _found(record: records.CaseRecord | None, case_id: int) -> records.CaseRecord:
    if record is None:
        raise ApiProblem(404, f"no case {case_id}", [Problem("path.case_id", "not found")])
    return record


@router.post("/cases", status_code=201, openapi_extra=STORED_CASE, responses=ERRORS, tags=["cases"])
async def create_case(request: Request, user: Principal = Depends(clinician)) -> Response:
    """Store a case (validated); its number is in the answer and the Location header."""
    ctx = context(request)
    label, document = await _stored_body(request, ctx.today())
    record = await run_in_threadpool(records.create_case, ctx.engine, label, document, user.username,
                                     access_event(request, "C", "Case", 201))
    return _tagged(record, 201, {"Location": f"/api/v1/cases/{record.id}"})


@router.get("/cases", responses=ERRORS, tags=["cases"])
async def list_cases(request: Request,
                     q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                                                    description="part of the label")] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                     user: Principal = Depends(clinician)) -> dict[str, Any]:
    """Stored cases, newest first; ``q`` searches the labels."""
    ctx = context(request)
    total, found = await run_in_threadpool(records.list_cases, ctx.engine, q, limit, offset)
    await run_in_threadpool(audit, request, "R", "Case?search")
    return {"total": total, "limit": limit, "offset": offset,
            "cases": [{"id": r.id, "label": r.label, "version": r.version, "updated_at": r.updated_at.isoformat()}
                      for r in found]}


@router.get("/cases/{case_id}", responses=ERRORS, tags=["cases"])
async def get_case(request: Request, case_id: CaseId, user: Principal = Depends(clinician)) -> Response:
    """One stored case with its visits; its ``ETag`` is the version to send as ``If-Match`` to change it."""
    ctx = context(request)
    record = _found(await run_in_threadpool(records.get_case, ctx.engine, case_id), case_id)
    await run_in_threadpool(audit, request, "R", f"Case/{case_id}")
    return _tagged(record)


@router.put("/cases/{case_id}", openapi_extra=STORED_CASE, responses=CHANGE_ERRORS, tags=["cases"])
async def update_case(request: Request, case_id: CaseId, user: Principal = Depends(clinician)) -> Response:
    """Replace a stored case's label and document (the visits added to it stay); ``If-Match`` required."""
    ctx = context(request)
    version = _if_match(request, case_id)
    label, document = await _stored_body(request, ctx.today())
    try:
        record = await run_in_threadpool(records.update_case, ctx.engine, case_id, label, document,
                                         access_event(request, "U", f"Case/{case_id}"), None, version)
    except records.StaleVersion as err:
        raise _stale(err) from None
    return _tagged(_found(record, case_id))


@router.delete("/cases/{case_id}", status_code=204, responses=CHANGE_ERRORS, tags=["cases"])
async def delete_case(request: Request, case_id: CaseId, user: Principal = Depends(clinician)) -> Response:
    """Delete a stored case, its visits and its assessments; ``If-Match`` required."""
    ctx = context(request)
    version = _if_match(request, case_id)
    try:
        deleted = await run_in_threadpool(records.delete_case, ctx.engine, case_id,
                                          access_event(request, "D", f"Case/{case_id}", 204), version)
    except records.StaleVersion as err:
        raise _stale(err) from None
    if not deleted:
        raise ApiProblem(404, f"no case {case_id}", [Problem("path.case_id", "not found")])
    return Response(status_code=204)


@router.post("/cases/{case_id}/visits", status_code=201, openapi_extra=VISIT, responses=ERRORS, tags=["cases"])
async def add_visit(request: Request, case_id: CaseId, user: Principal = Depends(clinician)) -> Response:
    """Add a follow-up visit to a stored case (checked against the case's timeline)."""
    ctx = context(request)
    visit = await json_body(request, "the visit")
    if not isinstance(visit, dict):
        raise ApiProblem(400, "the visit must be a JSON object", [Problem("body", "not an object")])
    given = _if_match(request, case_id) if "if-match" in request.headers else None  # optional: a visit adds, it replaces nothing
    record = _found(await run_in_threadpool(records.get_case, ctx.engine, case_id), case_id)
    if given is not None and record.version not in given:
        raise _stale(records.StaleVersion(case_id, record.version))
    whole = record.full_case()
    whole["visits"] = [*(whole.get("visits") or []), visit]
    try:
        parse_case(whole, ctx.today())
    except HipdxError as exc:
        raise _visit_problems(exc, len(whole["visits"]) - 1) from None
    try:  # checked against the version read above: a visit added meanwhile may change the timeline
        record = _found(await run_in_threadpool(records.add_visit, ctx.engine, case_id, visit, user.username,
                                                access_event(request, "U", f"Case/{case_id}", 201), record.version),
                        case_id)
    except records.StaleVersion as err:
        raise _stale(err) from None
    return _tagged(record, 201)


@router.post("/cases/{case_id}/assessments", status_code=201, responses=ERRORS, tags=["cases"])
async def reassess(request: Request, case_id: CaseId, today: Today = None,
                   user: Principal = Depends(clinician)) -> Response:
    """Assess the stored case (with its visits) now and keep the assessment with its provenance."""
    ctx, day = context(request), _day(context(request), today)
    record = _found(await run_in_threadpool(records.get_case, ctx.engine, case_id), case_id)
    case, _ = _case_from(record.full_case(), day, None, prefix="case")
    assessment = await run_in_threadpool(_assess, ctx, case, day)
    document = assessment.model_dump(mode="json")
    number = await run_in_threadpool(records.store_assessment, ctx.engine, record, day, document,
                                     hipdx.__version__, ctx.kb.digest, user.username,
                                     access_event(request, "C", f"Case/{case_id}/assessments", 201))
    return JSONResponse({"id": number, "case_version": record.version, "assessed_on": day.isoformat(),
                         "provenance": {"hipdx_version": hipdx.__version__, "knowledge_base_digest": ctx.kb.digest},
                         "assessment": document}, status_code=201)


@router.get("/cases/{case_id}/assessments", responses=ERRORS, tags=["cases"])
async def assessments(request: Request, case_id: CaseId, user: Principal = Depends(clinician)) -> dict[str, Any]:
    """The stored assessments of a case, newest first, each with the hipdx version and knowledge-base digest."""
    ctx = context(request)
    _found(await run_in_threadpool(records.get_case, ctx.engine, case_id), case_id)
    found = await run_in_threadpool(records.list_assessments, ctx.engine, case_id)
    await run_in_threadpool(audit, request, "R", f"Case/{case_id}/assessments")
    return {"assessments": found}


@router.get("/cases/{case_id}/course", responses=ERRORS, tags=["cases"])
async def case_course(request: Request, case_id: CaseId, today: Today = None,
                      user: Principal = Depends(clinician)) -> dict[str, Any]:
    """The stored case's visits compared with the expected course."""
    ctx, day = context(request), _day(context(request), today)
    record = _found(await run_in_threadpool(records.get_case, ctx.engine, case_id), case_id)
    case, _ = _case_from(record.full_case(), day, None, prefix="case")
    out = await run_in_threadpool(_course, ctx, case, day)
    await run_in_threadpool(audit, request, "R", f"Case/{case_id}/course")
    return out
