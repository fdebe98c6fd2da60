"""Signing in and out (bearer tokens for programs, cookie sessions with a CSRF token for the web
pages; every attempt recorded, refusals throttled: :mod:`hipdx.store.signin`) and the audit trail
as FHIR AuditEvents (admins only). The users' administration is :mod:`hipdx.service.api.user_admin`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hipdx.errors import Problem, TooManyAttempts
from hipdx.service.api.auditevent import audit_bundle
from hipdx.service.api.context import SESSION_COOKIE, admin, client_address, clinician, context, json_body, object_field
from hipdx.service.api.problems import ApiProblem
from hipdx.store import users
from hipdx.store.audit import AuditStore
from hipdx.store.records import access_events
from hipdx.store.signin import attempts
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
async def audit_events(request: Request, since: Annotated[dt.datetime | None, Query()] = None,
                       limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
                       user: Principal = Depends(admin)) -> Response:
    """The audit trail (REST accesses and CDS calls) as a FHIR Bundle of AuditEvents (admins only)."""
    ctx = context(request)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    bundle = await run_in_threadpool(export_audit, ctx.engine, since, limit)
    return JSONResponse(bundle, media_type="application/fhir+json")


def export_audit(engine: Any, since: dt.datetime | None, limit: int) -> dict[str, Any]:
    calls = AuditStore(engine, "", "").calls(limit)
    if since is not None:
        calls = [c for c in calls if (c.recorded_at if c.recorded_at.tzinfo
                                      else c.recorded_at.replace(tzinfo=dt.timezone.utc)) >= since]
    return audit_bundle(access_events(engine, since, limit), calls, attempts(engine, since, limit, refused_only=False))
