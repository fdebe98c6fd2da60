"""The web service: CDS Hooks 2.0 discovery and the patient-view service (FastAPI).

==============================================  ==========================================
call                                            answer
==============================================  ==========================================
``GET /cds-services``                           200 discovery
``POST /cds-services/hipdx-patient-view``       200 ``{"cards": [...]}`` (at most one card)
``POST /cds-services/hipdx-order-select``       200 ``{"cards": [...]}`` (one per recognised order)
``POST /cds-services/hipdx-order-sign``         200 ``{"cards": [...]}`` (one per recognised order)
``POST /cds-services/{id}/feedback``            200 (each item checked; stored without PHI)
``GET /knowledge-base``                         200 the knowledge base's version, digest and references
bad or missing JWT (when auth is on)            401, no body
not JSON, not a valid patient-view request      400, OperationOutcome naming each problem
unknown service                                 404
prefetch missing and not fetchable              412, OperationOutcome naming the keys
malformed FHIR in the prefetch                  422, OperationOutcome naming resource and element
anything unexpected                             500, OperationOutcome without detail (logged)
==============================================  ==========================================

Errors are OperationOutcome bodies, as CDS Hooks 3.0 recommends; the service never logs a JWT
or an access token, only the issuer, ``jti`` and ``hookInstance``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from hipdx.errors import DatabaseError, HipdxError, InputError, Problem
from hipdx.fhir.jsonread import read_json
from hipdx.knowledge import KnowledgeBase, load_knowledge_base
from hipdx.service.api import create_api, openapi
from hipdx.service.api.context import ApiContext
from hipdx.service.api.problems import log_unexpected, route_of
from hipdx.service.auth import IssuerList, Unauthorized
from hipdx.service.cards import CardLinks
from hipdx.service.feedback import parse_feedback
from hipdx.service.body import read_limited
from hipdx.service.hooks import DISCOVERY, SERVICE_ID, PreconditionFailed, answer_patient_view, fetches, parse_request
from hipdx.service.orders import DISCOVERY as ORDER_DISCOVERY
from hipdx.service.orders import HOOKS as ORDER_HOOKS
from hipdx.service.orders import order_service
from hipdx.store import AuditStore, CallRecord
from hipdx.store.failures import RETRY_AFTER, UNAVAILABLE, UNAVAILABLE_DETAIL
from hipdx.store.replay import PENDING_JTI
from hipdx.web import CaseLibrary, web_router
from hipdx.web.smart import SmartConfig

log = logging.getLogger("hipdx.service")
MAX_BODY_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class ServiceConfig:
    """How the service runs.

    issuers
        The trusted CDS clients; None turns authentication off (only with ``insecure_no_auth``).
    public_url
        The service's externally visible base URL (what clients call, e.g. behind a proxy):
        the JWT ``aud`` must equal it plus the path. Default: the URL of the request as received.
    fhir_servers
        FHIR servers the service may fetch missing prefetch from; empty: never fetch (412).
    cors_origins
        Browser origins allowed to call (e.g. a CDS Hooks sandbox).
    today
        Fixed assessment date (tests); default: the server's date at each call.
    knowledge_base_url, case_url
        The cards' links (absolute URLs; :class:`~hipdx.service.cards.CardLinks`).
    store
        Where each call and feedback item is recorded (no token, no payload); None: the log only.
        Recording is fail-open: if the database fails, the call is still answered and the
        failure logged.
    cases
        The cases the web pages list (:mod:`hipdx.web`); None: none.
    trusted_proxies
        The peers whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed (addresses or
        networks; ``*`` every peer). The client address the access audit and the sign-in throttle
        see is the peer's own otherwise: a client cannot choose it by sending the header.
    """

    issuers: IssuerList | None
    insecure_no_auth: bool = False
    public_url: str | None = None
    fhir_servers: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    today: Callable[[], dt.date] = field(default=dt.date.today)
    store: AuditStore | None = None
    #: the absolute URL cards give as their source's link (default: this service's /knowledge-base)
    knowledge_base_url: str | None = None
    #: the absolute URL that opens a patient's case in hipdx, ``{patient}`` replaced by the id; None: no link
    case_url: str | None = None
    #: the REST API under /api/v1 (hipdx.service.api); None: the CDS services only
    api: ApiContext | None = None
    cases: CaseLibrary | None = None
    #: the FHIR servers the web pages may be SMART-launched from (hipdx.web.smart)
    smart: SmartConfig | None = None
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")

    def __post_init__(self) -> None:
        if self.issuers is None and not self.insecure_no_auth:
            raise ValueError("give the trusted issuers, or turn authentication off explicitly (insecure_no_auth)")


def outcome(status: int, message: str, problems: Sequence[Problem] = ()) -> JSONResponse:
    """An OperationOutcome response: one issue for the message and one per problem."""
    code = {400: "invalid", 404: "not-found", 412: "incomplete", 413: "too-long", 422: "structure"}.get(status, "exception")
    issues = [{"severity": "error", "code": code, "diagnostics": message}]
    issues += [
        {"severity": "error", "code": code, "diagnostics": p.reason, "expression": [p.field]}
        for p in problems
        if p.field
    ]
    issues += [{"severity": "error", "code": code, "diagnostics": p.reason} for p in problems if not p.field]
    return JSONResponse({"resourceType": "OperationOutcome", "issue": issues}, status_code=status)


def create_app(config: ServiceConfig, kb: KnowledgeBase | None = None) -> FastAPI:
    """The FastAPI application of the CDS service."""
    knowledge = kb or load_knowledge_base()
    app = FastAPI(title="hipdx CDS Hooks service", docs_url=None, redoc_url=None, openapi_url=None)
    # the one place a forwarded client address is believed (uvicorn runs with proxy_headers off)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(config.trusted_proxies))
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],  # PUT, PATCH, DELETE: the REST API
            allow_headers=["Authorization", "Content-Type", "X-CSRF-Token"],
        )

    if config.api is not None:
        api = create_api(config.api)
        app.mount("/api/v1", api)
        description = functools.cache(lambda: openapi(api))  # built on the first request: half the app's start
        app.add_api_route("/openapi.json", lambda: JSONResponse(description()), include_in_schema=False)

    if config.store is not None:
        app.add_middleware(AuditCalls, store=config.store)  # the outermost of ours: sees every answer, even a 500
    # the CDS routes before the pages': a call is routed without trying the pages' ~35 routes
    # first (0.065 ms of CPU per call, measured); no path of the pages starts /cds-services or is /knowledge-base
    _add_cds_routes(app, config, knowledge)
    app.include_router(web_router(knowledge, config.today, config.cases, config.api, config.smart))  # the clinician's pages (hipdx.web)

    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Each error answered once: 401 with a Bearer challenge, 412 for missing prefetch, a hipdx error with its class's status, else a logged 500."""

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> Response:
        log.warning("401 %s %s: %s", request.method, route_of(request), exc)
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(PreconditionFailed)
    async def _precondition(request: Request, exc: PreconditionFailed) -> Response:
        return outcome(412, exc.reason, [Problem(f"prefetch.{key}", "missing") for key in exc.missing])

    @app.exception_handler(HipdxError)
    async def _hipdx(request: Request, exc: HipdxError) -> Response:
        return outcome(exc.http_status, exc.message, exc.problems)  # the class's one status (hipdx.errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log_unexpected(log, request, exc)
        if isinstance(exc, UNAVAILABLE):
            return _unavailable()
        return outcome(500, "internal error (logged); please report")


def _unavailable() -> Response:
    """503 with Retry-After: the database is away, locked or not at its schema (hipdx.store.failures)."""
    answer = outcome(DatabaseError.http_status, UNAVAILABLE_DETAIL)
    answer.headers.update(RETRY_AFTER)
    return answer


def _audience(config: ServiceConfig, request: Request) -> str:
    """The audience a token must name: the public URL of this request."""
    if config.public_url:
        return config.public_url.rstrip("/") + request.url.path
    return str(request.url.replace(query=""))


def _check(config: ServiceConfig, request: Request) -> dict[str, Any] | None:
    """The claims of the request's bearer token (raises ``Unauthorized``), or ``None`` without authentication."""
    if config.issuers is None:
        return None
    claims = config.issuers.verify(request.headers.get("authorization"), _audience(config, request))
    request.state.audit = {"issuer": claims.get("iss"), "tenant": claims.get("tenant"), "jti": claims.get("jti")}
    return claims


def _links(config: ServiceConfig, request: Request) -> CardLinks:
    base = (config.public_url or str(request.base_url)).rstrip("/")
    return CardLinks(knowledge_base=config.knowledge_base_url or f"{base}/knowledge-base", case=config.case_url)


async def _answer(
    service_id: str, body: Any, config: ServiceConfig, knowledge: KnowledgeBase, links: CardLinks
) -> dict[str, Any]:
    """A hook's answer. A chart fetched from the client's FHIR server is read off the event loop,
    where it holds no other call of the worker; a complete prefetch is CPU work only and answered on
    the loop: in the thread pool 16 calls at once contend for the GIL (server CPU per patient-view
    call 6.8 -> 9.9 ms under load, benchmarks/README.md). The order hooks run in the pool (they may
    fetch too, and are not on the load target's path)."""
    if service_id == SERVICE_ID:
        parsed = parse_request(body)
        answer = functools.partial(answer_patient_view, parsed, knowledge, config.today(), config.fhir_servers, links)
        return await run_in_threadpool(answer) if fetches(parsed, config.fhir_servers) else answer()
    return await run_in_threadpool(order_service, service_id, body, knowledge, config.today(), config.fhir_servers, links)


def _add_cds_routes(app: FastAPI, config: ServiceConfig, knowledge: KnowledgeBase) -> None:
    """Discovery, the knowledge base's description, the CDS services and their feedback."""

    @app.get("/cds-services")
    def discovery(request: Request) -> dict[str, Any]:
        _check(config, request)
        return {"services": [DISCOVERY, *ORDER_DISCOVERY]}

    @app.get("/knowledge-base")
    def knowledge_base() -> dict[str, Any]:
        """What the cards rest on: the knowledge base's name, version, digest and references (public, no patient data)."""
        return {
            "name": "hipdx knowledge base",
            "version": knowledge.version,
            "digest": knowledge.digest,
            "references": {k: r.model_dump(exclude_none=True) for k, r in sorted(knowledge.references.items())},
        }

    async def service(request: Request) -> Response:
        service_id = request.path_params["service_id"]
        claims = await run_in_threadpool(_check, config, request)  # may fetch a JWK Set: off the event loop
        if service_id != SERVICE_ID and service_id not in ORDER_HOOKS:
            return outcome(404, f"no CDS service {service_id!r} here; GET /cds-services lists them")
        body = await _json_body(request)
        audit = getattr(request.state, "audit", {})
        if isinstance(body, dict):
            context = body.get("context") if isinstance(body.get("context"), dict) else {}
            patient, user = context.get("patientId"), context.get("userId")
            audit |= {
                "hook_instance": str(body.get("hookInstance"))[:100] if body.get("hookInstance") else None,
                "patient": f"Patient/{patient}"[:100] if isinstance(patient, str) else None,
                "user_ref": user[:100] if isinstance(user, str) and user else None,
            }
        request.state.audit = audit
        response = await _answer(service_id, body, config, knowledge, _links(config, request))
        cards = response["cards"]
        if config.smart is not None and config.smart.servers:  # the card's link: a SMART launch of the pages (hipdx.web.smart)
            base = (config.public_url or str(request.base_url)).rstrip("/")
            for item in cards:
                item["links"] = [*item.get("links", []),
                                 {"label": "Open the case in hipdx", "url": f"{base}/smart/launch", "type": "smart"}]
        request.state.audit = audit | {
            "cards": len(cards),
            "indicator": cards[0]["indicator"] if cards else None,
            "card_uuid": cards[0]["uuid"] if cards else None,
        }
        log.info(
            "%s hookInstance=%s iss=%s jti=%s cards=%s",
            service_id,
            body.get("hookInstance") if isinstance(body, dict) else None,
            (claims or {}).get("iss"),
            (claims or {}).get("jti"),
            [c["indicator"] for c in response["cards"]],
        )
        return JSONResponse(response)

    # a plain Starlette route: FastAPI's solves the endpoint's parameters and wraps it on every
    # call, 0.04 ms of CPU per call (bench_protocol.py, every step off: 0.172-0.179 -> 0.131-0.138 ms)
    app.add_route("/cds-services/{service_id}", service, methods=["POST"], include_in_schema=False)

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> Response:
        await run_in_threadpool(_check, config, request)
        if service_id != SERVICE_ID and service_id not in ORDER_HOOKS:
            return outcome(404, f"no CDS service {service_id!r} here")
        items = parse_feedback(await _json_body(request), service_id)
        issuer = getattr(request.state, "audit", {}).get("issuer")
        for item in items:
            log.info("feedback service=%s card=%s outcome=%s reason=%s", service_id, item.card_uuid, item.outcome, item.override_reason_code)
            if config.store is not None:
                try:
                    await run_in_threadpool(config.store.record_card_feedback, item, issuer)
                except Exception:  # fail-open, as for calls
                    log.exception("could not record feedback in the audit store")
        return JSONResponse({})


class AuditCalls:
    """Records every CDS Hooks call (``/cds-services...``, not its CORS preflight) in the audit store.

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs the app in a task of
    its own with memory streams between them on every request (about 0.5 ms of CPU, the no-op
    endpoint's included). The call's answer is held until its record, with the token's ``jti``,
    is committed (:func:`_record`): a replay refused at that commit is answered 401 instead.
    """

    def __init__(self, app: ASGIApp, store: AuditStore) -> None:
        self.app, self.store = app, store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/cds-services") or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request = Request(scope)
        pending: list[dict[str, Any]] = []  # the token's jti, written with the call's record (hipdx.store.replay)
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        opened = PENDING_JTI.set(pending)
        try:
            await self.app(scope, receive, hold)
        except BaseException:
            PENDING_JTI.reset(opened)
            await _record(self.store, request, start, 500, pending)
            raise
        PENDING_JTI.reset(opened)
        status = next((m["status"] for m in held if m["type"] == "http.response.start"), None)
        if status is None:
            await _record(self.store, request, start, 500, pending)
            raise RuntimeError("no response returned")
        refused = await _record(self.store, request, start, status, pending)
        if refused is not None:
            await refused(scope, receive, send)
            return
        for message in held:
            await send(message)


async def _record(
    store: AuditStore, request: Request, start: float, status: int, pending: list[dict[str, Any]]
) -> Response | None:
    """Record the call with its token's jti in one (group) commit; the answer that replaces the call's, if any.

    Fail-open for the record alone (the clinician still gets the answer; the failure is
    logged), but a token whose jti could not be recorded is not accepted (500), and a replay
    that raced past the token check is refused when its jti is committed (401, recorded).
    """
    fields = {k: v for k, v in getattr(request.state, "audit", {}).items() if v is not None}
    latency = round((time.perf_counter() - start) * 1000, 2)
    record = CallRecord(method=request.method, path=request.url.path, status_code=status, latency_ms=latency, **fields)
    try:
        first_use = await run_in_threadpool(store.record_call, record, None, pending)
    except Exception as exc:
        log.exception("could not record the call in the audit store")
        if not pending:
            return None
        return _unavailable() if isinstance(exc, UNAVAILABLE) else outcome(500, "internal error (logged); please report")
    if first_use:
        return None
    log.warning("401 %s %s: jti seen before (replay, refused at commit)", request.method, route_of(request))
    record.status_code, record.cards, record.indicator, record.card_uuid = 401, None, None, None
    try:
        await run_in_threadpool(store.record_call, record)
    except Exception:
        log.exception("could not record the call in the audit store")
    return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def _json_body(request: Request) -> Any:
    raw = await read_limited(request, MAX_BODY_BYTES)  # 413 at the limit, the rest never read
    try:
        return read_json(raw, "the request body")
    except HipdxError as err:
        raise InputError(err.message, err.problems) from None
