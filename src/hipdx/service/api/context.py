"""What every route of the REST API shares: the database, the knowledge base, the settings, who
is calling (bearer token or session cookie with CSRF), the access log and the request body reader."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from hipdx.errors import InputError, Problem
from hipdx.jsonio import loads
from hipdx.knowledge import KnowledgeBase
from hipdx.service.api.jobwatch import JobWatch
from hipdx.service.api.problems import ApiProblem
from hipdx.service.body import read_limited
from hipdx.store import records, users
from hipdx.store.users import Principal, Role

log = logging.getLogger("hipdx.service.api")
SESSION_COOKIE = "hipdx_session"
CSRF_HEADER = "x-csrf-token"
MAX_JSON_BYTES = 20 * 1024 * 1024
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: the access row's action (FHIR AuditEvent.action) of a request's method
ACTIONS = {"GET": "R", "HEAD": "R", "POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}


@dataclass
class ApiContext:
    engine: Engine
    kb: KnowledgeBase
    secret: bytes
    upload_dir: Path
    token_lifetime: dt.timedelta = dt.timedelta(hours=8)
    session_cookie_secure: bool = True
    max_upload_bytes: int = 1024 * 1024 * 1024
    max_upload_files: int = 5000
    #: the service's externally visible base URL (behind a proxy): the base of the links it gives; None: the request's
    public_url: str | None = None
    today: Callable[[], dt.date] = dt.date.today
    jobs: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="hipdx-mri"))
    #: the heartbeats of the jobs this process holds (:mod:`hipdx.service.api.jobwatch`)
    watch: JobWatch = field(default_factory=JobWatch)

    def csrf_token(self, session_hash: str) -> str:
        """The CSRF token of a session: an HMAC of its stored hash (nothing more to keep)."""
        return hmac.new(self.secret, session_hash.encode(), hashlib.sha256).hexdigest()


def context(request: Request) -> ApiContext:
    return request.app.state.api


def _authenticate(request: Request) -> Principal:
    ctx = context(request)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        found = users.principal(ctx.engine, token.strip(), "bearer") if scheme.lower() == "bearer" and token else None
        if found is None:
            raise ApiProblem(401, "sign in: the bearer token is missing, unknown or expired",
                             headers={"WWW-Authenticate": "Bearer"})
        return found
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = users.principal(ctx.engine, cookie, "session")
        if found is not None:
            if request.method in UNSAFE and not hmac.compare_digest(
                request.headers.get(CSRF_HEADER, ""), ctx.csrf_token(found.token_hash)
            ):
                raise ApiProblem(403, "the X-CSRF-Token header is missing or wrong for this session")
            return found
    raise ApiProblem(401, "sign in: POST /api/v1/auth/token, then send Authorization: Bearer <token>",
                     headers={"WWW-Authenticate": "Bearer"})


async def clinician(request: Request) -> Principal:
    """Any signed-in user (clinicians and admins see patient data)."""
    principal = await run_in_threadpool(_authenticate, request)
    request.state.principal = principal
    return principal


def admin(what: str) -> Callable[[Request], Awaitable[Principal]]:
    """The dependency of a route for admins only over ``what``, the object its access row names
    (``{name}`` from the path: ``User/{username}``): an admin passes; anyone else is refused 403,
    and the refusal is recorded first (who, when, ``what``, from where, status 403: an AuditEvent of
    outcome 4), so that trying is in the trail. A refusal the database will not record is answered
    503, as every access without its record (:func:`audit`)."""

    async def admin_only(request: Request) -> Principal:
        principal = await clinician(request)
        if principal.role is not Role.admin:
            given = request.path_params  # not validated yet: the route's own checks come after this dependency
            event = access_event(request, ACTIONS.get(request.method, "E"), what, 403)
            if all(users.plain_username(str(value)) for value in given.values()):
                event["what"] = what.format_map(given)[:100]
            else:  # a name the route itself refuses (400): the trail keeps the route, not the caller's text
                event["path"] = (request.scope.get("root_path", "") + getattr(request.scope.get("route"), "path", ""))[:200]
            await run_in_threadpool(records.record_access, context(request).engine, event)
            raise ApiProblem(403, "this needs the admin role")
        return principal

    return admin_only


def access_event(request: Request, action: str, what: str, status: int = 200) -> dict[str, Any]:
    """One access to patient data, to record: who, what (action C/R/U/D/E, the object), from where,
    the answer's status (the store adds the time). A write passes it to the store function, which
    records it in the write's own transaction (:func:`hipdx.store.records.record_in`)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return {"username": principal.username if principal else None,
            "role": principal.role.value if principal else None,
            "action": action, "what": what[:100], "method": request.method, "path": request.url.path[:200],
            "status_code": status, "source_address": client_address(request)}


def audit(request: Request, action: str, what: str, status: int = 200) -> None:
    """Record one access to patient data now, in a transaction of its own (a read, or a refused change)."""
    records.record_access(context(request).engine, access_event(request, action, what, status))


def client_address(request: Request) -> str | None:
    """Where the request came from: the peer's address, which a trusted proxy's ``X-Forwarded-For``
    has replaced (``ServiceConfig.trusted_proxies``); a client's own header is not believed."""
    return ((request.client.host if request.client else None) or "")[:100] or None


async def json_body(request: Request, what: str = "the request body") -> Any:
    """The body as JSON, read strictly (a key given twice, NaN, excessive nesting are refused)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in ("application/json", "application/fhir+json") and not content_type.endswith("+json"):
        raise ApiProblem(415, f"send JSON (Content-Type: application/json), not {content_type[:60]}",
                         [Problem("header.content-type", "not JSON")])
    raw = await read_limited(request, MAX_JSON_BYTES, what)  # 413 at the limit, the rest never read
    if not raw:
        raise ApiProblem(400, f"{what} is empty", [Problem("body", "a JSON object is required")])
    try:
        return loads(raw, what)
    except InputError as exc:  # not JSON at all: the body is the field
        if exc.problems:
            raise
        raise InputError(exc.message, [Problem("body", exc.message)]) from None


def object_field(body: Any, name: str, required: bool = True) -> Any:
    if not isinstance(body, dict):
        raise ApiProblem(400, "the request body must be a JSON object", [Problem("body", "not an object")])
    if name not in body:
        if required:
            raise ApiProblem(400, f"the request body needs {name!r}", [Problem(name, "required")])
        return None
    return body[name]
