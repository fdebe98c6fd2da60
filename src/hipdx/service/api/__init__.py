"""The REST API, versioned under ``/api/v1`` (FastAPI; the OpenAPI description at ``/openapi.json``).

==========================================  ================================================
call                                        what
==========================================  ================================================
``GET  /api/v1/health``                     200 while the process runs
``GET  /api/v1/ready``                      200 when the database answers at the current schema, else 503
``POST /api/v1/auth/token``                 a bearer token for a user name and password
``POST /api/v1/auth/session``               a cookie session and its CSRF token (web pages)
``DELETE /api/v1/auth/token``               sign out
``POST /api/v1/assess | plan | course``     a case (JSON or FHIR R4) assessed, its plan, its course
``/api/v1/cases[/{id}[/visits|/assessments|/course]]``  stored cases: create, search, read, update, delete, add a visit, re-assess
``POST /api/v1/mri/jobs``, ``GET .../{id}``  MRI analysis of an uploaded (de-identified) DICOM study, in the background
``GET  /api/v1/audit/events``               the audit trail as FHIR AuditEvents (admins)
``GET|POST /api/v1/users``                  list the users, add one (admins)
``PATCH /api/v1/users/{name}``              change a role, disable or enable (admins)
``PUT  /api/v1/users/{name}/password``      set a new password (admins)
==========================================  ================================================

Errors are RFC 9457 problem details (``hipdx.service.api.problems``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

import hipdx
from hipdx.case import Case
from hipdx.errors import HipdxError
from hipdx.service.api import accounts, clinical, mri, problems, user_admin
from hipdx.service.api.context import ApiContext
from hipdx.store import is_current

PREFIX = "/api/v1"
PROBLEM_SCHEMA = {"type": "object", "required": ["title", "status"], "properties": {
    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
    "detail": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string", "description": "dotted path of the offending field"},
        "reason": {"type": "string"}}}}}}


def create_api(ctx: ApiContext) -> FastAPI:
    """The REST API as an application to mount at ``/api/v1``."""
    api = FastAPI(title="hipdx REST API", version=hipdx.__version__, openapi_url=None, docs_url=None, redoc_url=None)
    api.state.api = ctx
    problems.install(api)
    for module in (clinical, accounts, user_admin, mri):
        api.include_router(module.router)

    @api.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """The process is up."""
        return {"status": "ok", "hipdx_version": hipdx.__version__}

    @api.get("/ready", tags=["service"])
    async def ready(request: Request) -> Any:
        """Ready to serve: the database answers and is at the current schema."""
        def check() -> str | None:
            try:
                with ctx.engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return None if is_current(ctx.engine) else "the database is not at the current schema"
            except (SQLAlchemyError, HipdxError) as exc:
                return f"the database does not answer ({type(exc).__name__})"

        problem = await run_in_threadpool(check)
        if problem:
            return problems.problem(503, problem)
        return JSONResponse({"status": "ready", "database": ctx.engine.dialect.name,
                             "knowledge_base_digest": ctx.kb.digest})

    return api


def openapi(api: FastAPI) -> dict[str, Any]:
    """The API's OpenAPI description with its paths under ``/api/v1`` and the case model's schema."""
    schema = api.openapi()
    schema = {**schema, "paths": {PREFIX + path: item for path, item in schema["paths"].items()}}
    case_schema = Case.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(case_schema.pop("$defs", {}))
    components["Case"] = case_schema
    components["Problem"] = PROBLEM_SCHEMA
    schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    schema["security"] = [{"bearer": []}]
    return schema
