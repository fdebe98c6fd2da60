"""Signing in and out (bearer tokens for programs, cookie sessions with a CSRF token for the web
pages; every attempt recorded, refusals throttled: :mod:`hipdx.store.signin`) and the audit trail
as FHIR AuditEvents (admins only). The users' administration is :mod:`hipdx.service.api.user_admin`."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL

from hipdx.errors import Problem, TooManyAttempts
from hipdx.service.api.auditevent import bundle_entry, trail_auditevent
from hipdx.service.api.context import SESSION_COOKIE, admin, audit, client_address, clinician, context, json_body, object_field
from hipdx.service.api.problems import ApiProblem
from hipdx.store import users
from hipdx.store.records import trail_read
from hipdx.store.trail import BATCH, TrailEvent, TrailKey, trail, utc
from hipdx.store.users import Principal

router = APIRouter()
CREDENTIALS = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["username", "password"], "additionalProperties": False,
    "properties": {"username": {"type": "string", "maxLength": 100}, "password": {"type": "string", "maxLength": 1000}}}}}}}


async def _credentials(request: Request) -> tuple[str, str]:
    body = await json_body(request, "the credentials")
    username, password = object_field(body, "username"), object_field(body, "password")
    if not isinstance(username, str) or not isinstance(password, str) or len(password) > 1000 \
            or not username.isprintable() or not 0 < len(username) <= 100:
        raise ApiProblem(400, "give username and password as strings",
                         [Problem("username", "a string"), Problem("password", "a string")])
    return username, password


def _refused() -> ApiProblem:
    return ApiProblem(401, "unknown user or wrong password", headers={"WWW-Authenticate": "Bearer"})


async def _sign_in(request: Request, kind: str) -> str:
    """A new token of ``kind`` for the posted credentials (the attempt recorded, the throttle applied)."""
    ctx = context(request)
    username, password = await _credentials(request)
    try:
        issued = await run_in_threadpool(users.sign_in, ctx.engine, username, password, kind, ctx.token_lifetime,
                                         client_address(request))
    except TooManyAttempts as exc:
        raise ApiProblem(429, exc.message, headers={"Retry-After": str(exc.retry_after_s)}) from None
    if issued is None:
        raise _refused()
    return issued


@router.post("/auth/token", openapi_extra=CREDENTIALS, tags=["auth"])
async def token(request: Request) -> dict[str, Any]:
    """A bearer token for ``Authorization: Bearer <token>``; it expires after the configured lifetime."""
    ctx = context(request)
    issued = await _sign_in(request, "bearer")
    expires = dt.datetime.now(dt.timezone.utc) + ctx.token_lifetime
    return {"access_token": issued, "token_type": "Bearer", "expires_at": expires.isoformat()}


@router.post("/auth/session", openapi_extra=CREDENTIALS, tags=["auth"])
async def session(request: Request) -> Response:
    """A browser session: an HttpOnly, SameSite=Strict cookie, and the CSRF token every unsafe
    request of that session must send in ``X-CSRF-Token``."""
    ctx = context(request)
    issued = await _sign_in(request, "session")
    response = JSONResponse({"csrf_token": ctx.csrf_token(users.hash_token(issued))})
    response.set_cookie(SESSION_COOKIE, issued, max_age=int(ctx.token_lifetime.total_seconds()), httponly=True,
                        secure=ctx.session_cookie_secure, samesite="strict", path="/")
    return response


@router.delete("/auth/token", status_code=204, tags=["auth"])
async def sign_out(request: Request, user: Principal = Depends(clinician)) -> Response:
    """End this bearer token or session."""
    await run_in_threadpool(users.sign_out, context(request).engine, user.token_hash)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", tags=["auth"])
async def me(user: Principal = Depends(clinician)) -> dict[str, Any]:
    """Who is signed in, with which role."""
    return {"username": user.username, "role": user.role.value, "via": user.via}


@router.get("/audit/events", tags=["admin"])
async def audit_events(
    request: Request,
    since: Annotated[dt.datetime | None, Query(description="Only events recorded at or after this instant.")] = None,
    until: Annotated[dt.datetime | None, Query(description="Only events recorded before this instant.")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=10000, description="Events per page.")] = 1000,
    cursor: Annotated[str | None, Query(max_length=100, description="Where the page starts: from a next link.")] = None,
    user: Principal = Depends(admin("AuditEvent")),
) -> Response:
    """The audit trail (REST accesses, CDS calls, sign-in attempts) as FHIR searchset Bundles of
    AuditEvents, oldest first, ``_count`` a page (admins only). A page with more events after it
    has a ``next`` link; the last page has none. Each page read is itself recorded in the access
    audit (who, when, from where, which period), so it appears in the trail read afterwards."""
    ctx = context(request)
    if "limit" in request.query_params:  # before paging, limit cut the trail; said so rather than ignored
        raise ApiProblem(400, "limit is now _count, the size of a page: follow the next link for the rest",
                         [Problem("query.limit", "use _count")])
    since, until = _instant(since, "since"), _instant(until, "until")
    if since is not None and until is not None and until <= since:
        raise ApiProblem(400, "until must be later than since", [Problem("query.until", "later than since")])
    after = None if cursor is None else TrailKey.parse(cursor, "query.cursor")
    events, more = await run_in_threadpool(audit_page, ctx.engine, since, until, after, count)
    await run_in_threadpool(audit, request, "R", trail_read(since, until, len(events), more))  # who read the trail, which period
    links = [{"relation": "self", "url": _public(request, request.url)}]
    if more:
        links.append({"relation": "next", "url": _public(request, request.url.include_query_params(cursor=events[-1].key.token()))})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset",
                              "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(), "link": links}
    if events:
        bundle["entry"] = [bundle_entry(trail_auditevent(e)) | {"search": {"mode": "match"}} for e in events]
    return JSONResponse(bundle, media_type="application/fhir+json")


def _public(request: Request, url: URL) -> str:
    """``url`` as a client calls it: on the configured public URL (behind a proxy), else as received."""
    base = context(request).public_url
    if not base:
        return str(url)
    return base.rstrip("/") + url.path + (f"?{url.query}" if url.query else "")


def _instant(value: dt.datetime | None, name: str) -> dt.datetime | None:
    """A query's instant in UTC (without an offset: UTC)."""
    try:
        return None if value is None else utc(value)
    except OverflowError:
        raise ApiProblem(400, f"{name} is out of range", [Problem(f"query.{name}", "a date-time from year 1 to 9999")]) from None


def audit_page(engine: Any, since: dt.datetime | None, until: dt.datetime | None, after: TrailKey | None,
               count: int) -> tuple[list[TrailEvent], bool]:
    """The first ``count`` events of the period after ``after``, and whether more follow (one more is read)."""
    events = list(itertools.islice(trail(engine, since, until, after, batch=min(count + 1, BATCH)), count + 1))
    return events[:count], len(events) > count
