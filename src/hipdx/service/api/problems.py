"""RFC 9457 problem details for every error of the REST API (``application/problem+json``).

The body: ``type``, ``title``, ``status``, ``detail`` and ``errors`` (one ``{"field", "reason"}``
per offending field, ``field`` a dotted path into the request that starts with where in the
request the field is, as FastAPI's own validation says it: ``body.case.labs.crp.unit``,
``body.label``, ``query.limit``, ``path.case_id``, ``header.If-Match``; the whole body is
``body``). The status of a hipdx error is the one ``hipdx.errors`` gives its class.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hipdx.errors import DatabaseError, HipdxError, InputError, Problem
from hipdx.store.failures import RETRY_AFTER, UNAVAILABLE, UNAVAILABLE_DETAIL

log = logging.getLogger("hipdx.service.api")
MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 412: "Precondition Failed", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content", 428: "Precondition Required", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}


class ApiProblem(Exception):
    """An error the API answers with a given status (401, 403, 404, 409, 413, 415...)."""

    def __init__(self, status: int, detail: str, problems: Sequence[Problem] = (), headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.problems, self.headers = status, detail, list(problems), headers


#: where in the request a field is: the first part of every ``errors[].field``
LOCATIONS = ("body", "query", "path", "header", "cookie")


def located(field: str) -> str:
    """``field`` with where in the request it is: a field of the JSON body (``sex``, ``case.sex``,
    ``label``, the names a case or store check gives) is ``body.<field>``; nothing is ``body``."""
    if not field:
        return "body"
    first = field.split(".", 1)[0]
    return field if first in LOCATIONS else f"body.{field}"


def problem(status: int, detail: str, problems: Sequence[Problem] = (), headers: dict[str, str] | None = None) -> Response:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    if problems:
        body["errors"] = [{"field": located(p.field), "reason": p.reason} for p in problems]
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _location(loc: Sequence[object]) -> str:
    return ".".join(str(part) for part in loc)


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""

    @app.exception_handler(ApiProblem)
    async def _api(request: Request, exc: ApiProblem) -> Response:
        return problem(exc.status, exc.detail, exc.problems, exc.headers)

    @app.exception_handler(HipdxError)
    async def _hipdx(request: Request, exc: HipdxError) -> Response:
        if isinstance(exc, DatabaseError):  # e.g. an access record refused (hipdx.store.records.AuditRefused)
            log_unexpected(log, request, exc.__cause__ or exc)
            return problem(exc.http_status, exc.message, exc.problems, headers=RETRY_AFTER)
        return problem(exc.http_status, exc.message, exc.problems)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [Problem(_location(e.get("loc", ())), str(e.get("msg", "not valid"))) for e in exc.errors()]
        return problem(InputError.http_status, "the request is not valid", problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "error")
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log_unexpected(log, request, exc)
        if isinstance(exc, UNAVAILABLE):
            return problem(DatabaseError.http_status, UNAVAILABLE_DETAIL, headers=RETRY_AFTER)
        return problem(500, "internal error (logged); please report")


def route_of(request: Request) -> str:
    """The route a request matched, as its template (``/patients/{patient_id}``), never the path
    itself, whose parts may be a patient's identifier (no patient data in the logs)."""
    route = request.scope.get("route")
    if route is None:  # a plain Starlette route (the CDS call's) leaves only its endpoint in the scope
        endpoint = request.scope.get("endpoint")
        app_routes = getattr(getattr(request.scope.get("app"), "router", None), "routes", ())
        route = next((r for r in app_routes if endpoint is not None and getattr(r, "endpoint", None) is endpoint), None)
    template = getattr(route, "path", None)
    return request.scope.get("root_path", "") + template if template else "(no route)"  # a mounted app's prefix first


def log_unexpected(logger: logging.Logger, request: Request, exc: BaseException) -> None:
    """Log an error no handler expected: its class and frames, never its message (a driver's
    message quotes the statement and may quote patient data), and the route, not the path."""
    logger.error("unexpected %s on %s %s\n%s", type(exc).__name__, request.method, route_of(request),
                 "".join(traceback.format_tb(exc.__traceback__)))
