"""The users' administration (admins only; a clinician gets 403): list the users, add one with a
role, change a role, disable or enable a user, set a new password.

A disabled user cannot sign in, and every token and session they hold ends at once; so does
every one of a user whose password is set anew. The last enabled admin cannot be disabled or
demoted (409). Every change, done or refused, is a row of the access audit (``User/<name>``,
action C or U, who did it, from where, the status), exported with the rest as AuditEvents; a
change is written in one transaction with its row, so a row the database refuses leaves the
change undone (503, Retry-After).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hipdx.errors import HipdxError, Problem
from hipdx.service.api.context import access_event, admin, audit, context, json_body
from hipdx.service.api.problems import ApiProblem
from hipdx.store import users
from hipdx.store.records import AuditRefused
from hipdx.store.users import Principal, Role

router = APIRouter()
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"
Username = Annotated[str, Path(pattern=USERNAME, max_length=100)]
ROLE = {"type": "string", "enum": ["clinician", "admin"]}
PASSWORD = {"type": "string", "minLength": users.MIN_PASSWORD_LENGTH, "maxLength": 1000}


def _body(required: list[str], properties: dict[str, Any], min_properties: int = 0) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "additionalProperties": False, "properties": properties}
    if min_properties:
        schema["minProperties"] = min_properties
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


NEW_USER = _body(["username", "password", "role"],
                 {"username": {"type": "string", "pattern": USERNAME}, "password": PASSWORD, "role": ROLE})
CHANGE = _body([], {"role": ROLE, "active": {"type": "boolean"}}, min_properties=1)
NEW_PASSWORD = _body(["password"], {"password": PASSWORD})


async def _object(request: Request, what: str, allowed: dict[str, Callable[[Any], bool]], required: set[str],
                  reasons: dict[str, str]) -> dict[str, Any]:
    """The body as an object of the ``allowed`` keys, each value passing its check; 400 naming each problem."""
    body = await json_body(request, what)
    if not isinstance(body, dict):
        raise ApiProblem(400, f"{what} must be a JSON object", [Problem("body", "not an object")])
    problems = [Problem(k, "not a known field") for k in body if k not in allowed]
    problems += [Problem(k, "required") for k in sorted(required) if k not in body]
    problems += [Problem(k, reasons[k]) for k, check in allowed.items() if k in body and not check(body[k])]
    if not body and not required:
        problems.append(Problem("body", f"give at least one of {', '.join(allowed)}"))
    if problems:
        raise ApiProblem(400, f"{what} is not valid", problems)
    return body


def _is_role(value: Any) -> bool:
    return value in ("clinician", "admin")


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 1000


REASONS = {"role": "clinician or admin", "active": "true or false", "username": "a string",
           "password": "a string"}


async def _audited(request: Request, action: str, username: str, change: Callable[[dict[str, Any]], Any],
                   done: int) -> Any:
    """Run ``change`` in a thread with its access record (status ``done``), which the store writes in
    the change's own transaction; a refused change is recorded on its own with the refusal's status
    (nothing of it was written). When the record itself is refused, nothing is written (503)."""
    what = f"User/{username}"
    try:
        result = await run_in_threadpool(change, access_event(request, action, what, done))
    except AuditRefused:
        raise
    except (HipdxError, ApiProblem) as exc:
        status = exc.http_status if isinstance(exc, HipdxError) else exc.status
        await run_in_threadpool(audit, request, action, what, status)
        raise
    if result is False:
        raise ApiProblem(404, f"no user {username!r}", [Problem("path.username", "not found")])
    return result


@router.get("/users", tags=["admin"])
async def list_users(request: Request, user: Principal = Depends(admin("User"))) -> dict[str, Any]:
    """Every user: name, role, enabled or not, created when, how many live tokens (admins only)."""
    return {"users": await run_in_threadpool(users.describe_users, context(request).engine)}


@router.post("/users", status_code=201, openapi_extra=NEW_USER, tags=["admin"])
async def add_user(request: Request, user: Principal = Depends(admin("User"))) -> Response:
    """Create a user with a role (admins only)."""
    body = await _object(request, "the user", {"username": _is_text, "password": _is_text, "role": _is_role},
                         {"username", "password", "role"}, REASONS)
    name = body["username"]
    await _audited(request, "C", name[:100], lambda event: users.add_user(
        context(request).engine, name, body["password"], Role(body["role"]), audit=event), 201)
    return JSONResponse({"username": name, "role": body["role"], "active": True}, status_code=201,
                        headers={"Location": f"/api/v1/users/{name}"})


@router.patch("/users/{username}", openapi_extra=CHANGE, tags=["admin"])
async def change_user(request: Request, username: Username, user: Principal = Depends(admin("User/{username}"))) -> dict[str, Any]:
    """Change a user's role and/or disable (``"active": false``) or enable them (admins only)."""
    body = await _object(request, "the change", {"role": _is_role, "active": lambda v: isinstance(v, bool)},
                         set(), REASONS)
    role = Role(body["role"]) if "role" in body else None
    await _audited(request, "U", username, lambda event: users.change_user(
        context(request).engine, username, role=role, active=body.get("active"), audit=event), 200)
    described = await run_in_threadpool(users.describe_users, context(request).engine)
    return next(u for u in described if u["username"] == username)


@router.put("/users/{username}/password", status_code=204, openapi_extra=NEW_PASSWORD, tags=["admin"])
async def set_password(request: Request, username: Username, user: Principal = Depends(admin("User/{username}"))) -> Response:
    """Set a user's password (admins only); the user's tokens and sessions end."""
    body = await _object(request, "the password", {"password": _is_text}, {"password"}, REASONS)
    await _audited(request, "U", username, lambda event: users.change_user(
        context(request).engine, username, password=body["password"], audit=event), 204)
    return Response(status_code=204)
