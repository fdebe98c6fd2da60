"""SMART App Launch 2.0: hipdx launched from a record system (EHR launch) or on its own
(standalone launch), reading the patient from the FHIR server into the case-entry form.

==========================================  ===========================================
page                                        what it does
==========================================  ===========================================
``GET /smart/launch?iss=..&launch=..``      EHR launch: discovery, then on to the authorize endpoint
``GET /smart/start``                        standalone launch: choose one of the configured servers
``GET /smart/start?iss=..``                 standalone launch of that server
``GET /smart/callback?code=..&state=..``    the authorization server's answer: token, FHIR reads
``GET /smart/case?read=..``                 the patient read, in the entry form (each fact's source)
==========================================  ===========================================

The flow follows SMART App Launch 2.0 (https://hl7.org/fhir/smart-app-launch/) as a public
client with PKCE:

- Only servers on the allow-list (:class:`SmartConfig`, from the service's settings) are
  launched; an ``iss`` not on it is refused before any request is made to it.
- ``{iss}/.well-known/smart-configuration`` gives the endpoints; a server that does not list
  ``S256`` in ``code_challenge_methods_supported`` is refused (SMART 2.0 requires S256; hipdx
  never sends ``plain``).
- The authorize request carries ``response_type=code``, ``client_id``, ``redirect_uri``,
  ``launch`` (EHR launch), ``scope``, ``state``, ``aud`` (= ``iss``), ``code_challenge`` and
  ``code_challenge_method=S256``. ``state`` (32 random bytes) and the ``code_verifier`` stay on
  the server, in its database (:mod:`hipdx.web.smart_flows`: any worker finishes the launch;
  in memory for the pages without a database), for ten minutes, tied to the browser by a cookie
  (``hipdx_smart``: HttpOnly, SameSite=Lax so it comes back with the authorization server's
  redirect, path ``/smart``) and to the hipdx user who started the launch.
- The callback checks ``state`` (once: a state is forgotten when used), exchanges the code
  with the ``code_verifier``, requires ``token_type`` Bearer, an ``access_token`` and a
  ``patient``, reads the Patient and the chart resources the FHIR mapping uses, and forgets
  the token. The token is never logged, shown, stored or put in a cookie.
- The launch context ``encounter`` (scope ``launch/encounter``, asked for in both launches):
  when the token response names one (a FHIR id, else a failure page naming it), that
  Encounter is read (``patient/Encounter.r``) and its class gives the setting, as the CDS
  hooks' ``context.encounterId`` does (:mod:`hipdx.fhir.read_encounter`); without one, or one
  the server does not give, the page shows the setting assumed and why.
- The session cookie of the pages is SameSite=Strict, so it does not come with a redirect
  from another site: the callback answers a short page that continues (same site) to
  ``/smart/case``, where the signed-in user who started the launch sees the case.

- A confidential client (a ``client_secret`` in the server's configuration) authenticates the
  token request with HTTP Basic (``client_secret_basic``, RFC 6749 2.3.1); a public client
  sends its ``client_id`` in the form.
- When the server offers OpenID Connect (``openid`` in ``scopes_supported`` or
  ``sso-openid-connect`` in ``capabilities``), ``openid fhirUser`` are asked for too and the
  ``id_token``'s ``fhirUser`` is shown beside the patient read (:mod:`hipdx.web.smart_identity`:
  verified against the server's ``jwks_uri`` when it publishes one, else labelled unverified,
  for information only). hipdx's own sign-in stays who the user is for hipdx.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import httpx2 as httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from hipdx.errors import HipdxError
from hipdx.web.smart_flows import FLOW_SECONDS, Flow, MemoryFlows, StoredFlows, TooMany, flows_for
from hipdx.web.smart_identity import launch_user

log = logging.getLogger("hipdx.web.smart")

FLOW_COOKIE = "hipdx_smart"
MAX_RESPONSE_BYTES = 20 * 2**20
MAX_PAGES = 20  # search result pages followed per resource type
#: The chart resources the FHIR mapping reads (hipdx.fhir.mapping), searched by patient.
CHART_TYPES = ("Condition", "Observation", "MedicationStatement", "MedicationRequest", "DiagnosticReport",
               "ImagingStudy", "Procedure", "AllergyIntolerance")
#: SMART 2.0 scopes: read and search of the patient's chart (``.rs``), and the read of the
#: Encounter the launch names (its class gives the setting, :mod:`hipdx.fhir.read_encounter`).
SCOPES_V2 = " ".join(["patient/Patient.r", *(f"patient/{t}.rs" for t in CHART_TYPES), "patient/Encounter.r"])
#: The SMART 1.0 form, for servers that only know it.
SCOPES_V1 = " ".join(["patient/Patient.read", *(f"patient/{t}.read" for t in CHART_TYPES), "patient/Encounter.read"])
#: the launch context hipdx asks for besides the patient: the encounter the clinician is in
ENCOUNTER_SCOPE = "launch/encounter"
#: a FHIR resource id (R4 datatype ``id``)
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True)
class SmartServer:
    """One FHIR server hipdx may be launched from, as registered with its record system."""

    iss: str
    client_id: str
    name: str = ""
    #: "v2" (``patient/Condition.rs``) or "v1" (``patient/Condition.read``)
    scopes: str = "v2"
    #: a confidential client's secret (``client_secret_basic``); None: a public client. A
    #: ``pydantic.SecretStr`` from the settings is accepted as it is.
    client_secret: Any = field(default=None, repr=False)

    def secret(self) -> str | None:
        value = self.client_secret
        value = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        return value or None

    @property
    def label(self) -> str:
        return self.name or self.iss


@dataclass(frozen=True)
class SmartConfig:
    """The allow-list of FHIR servers, and the address the record system sends the browser back to.

    public_url
        The service's external base URL (``https://hipdx.example.org``): the redirect URL is
        ``{public_url}/smart/callback``. Default: the address of the request as received.
    """

    servers: tuple[SmartServer, ...] = ()
    public_url: str | None = None
    timeout_s: float = 10.0

    def server(self, iss: str) -> SmartServer | None:
        wanted = iss.rstrip("/")
        return next((s for s in self.servers if s.iss.rstrip("/") == wanted), None)


class SmartFailure(Exception):
    """A launch that cannot go on: the title and message are shown to the clinician."""

    def __init__(self, title: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.title, self.message, self.status = title, message, status


@contextlib.contextmanager
def _defects() -> Iterator[None]:
    """A defect of hipdx during a launch: logged (never with the token: it is in no message) and
    answered as a page, never a 5xx."""
    try:
        yield
    except SmartFailure:
        raise
    except Exception:
        log.exception("SMART launch failed")
        raise SmartFailure("Launch failed", "hipdx could not finish the launch (an error of hipdx, recorded in its log). "
                           "Start the launch again.", 424) from None


def _offers_openid(discovered: dict[str, Any]) -> bool:
    """The server offers OpenID Connect (an id_token with fhirUser) in its SMART configuration."""
    scopes, capabilities = discovered.get("scopes_supported"), discovered.get("capabilities")
    return (isinstance(scopes, list) and "openid" in scopes and "fhirUser" in scopes) or (
        isinstance(capabilities, list) and "sso-openid-connect" in capabilities)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``code_verifier`` (43 characters of 32 random bytes) and its S256 ``code_challenge``.

    >>> v, c = pkce_pair()
    >>> len(v), c == _b64(hashlib.sha256(v.encode()).digest())
    (43, True)
    """
    verifier = _b64(secrets.token_bytes(32))
    return verifier, _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def _https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme == "https" or (parts.scheme == "http" and host in {"127.0.0.1", "localhost", "::1"})


def _endpoint(config: dict[str, Any], key: str, iss: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not _https_or_loopback(value):
        raise SmartFailure("Not a SMART server",
                           f"The SMART configuration of {iss} gives no usable {key} (an https address).", 424)
    return value


def _get_json(client: httpx.Client, url: str, what: str, token: str | None = None) -> Any:
    """GET a JSON document; every failure named (never the token)."""
    from hipdx.fhir.jsonread import read_json

    headers = {"Accept": "application/fhir+json, application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with client.stream("GET", url, headers=headers) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise SmartFailure("Answer too large", f"{what} is larger than {MAX_RESPONSE_BYTES // 2**20} MB.", 424)
    except httpx.TimeoutException:
        raise SmartFailure("Server not answering", f"{what}: the server did not answer in time.", 424) from None
    except httpx.HTTPError as exc:
        raise SmartFailure("Server unreachable", f"{what}: the server cannot be reached ({type(exc).__name__}).", 424) from None
    if response.status_code in (401, 403):
        raise SmartFailure("Access refused", f"{what}: the server refused access (HTTP {response.status_code}).", 424)
    if response.status_code != 200:
        raise SmartFailure("Server error", f"{what}: the server answered HTTP {response.status_code}.", 424)
    try:
        return read_json(body, what)
    except HipdxError:
        raise SmartFailure("Not a FHIR answer", f"{what}: the answer is not JSON.", 424) from None


def _bundle_resources(client: httpx.Client, iss: str, url: str, what: str, token: str) -> list[dict[str, Any]]:
    """The resources of a search, following ``next`` links on the same server."""
    out: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        bundle = _get_json(client, url, what, token)
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or not isinstance(bundle.get("entry", []), list):
            raise SmartFailure("Not a FHIR answer", f"{what}: the answer is not a FHIR Bundle.", 424)
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") != "OperationOutcome":
                out.append(resource)
        given = bundle.get("link")
        links = [link.get("url") for link in (given if isinstance(given, list) else [])
                 if isinstance(link, dict) and link.get("relation") == "next"]
        url = links[0] if links and isinstance(links[0], str) else ""
        if not url:
            return out
        if not url.startswith(iss.rstrip("/") + "/"):
            raise SmartFailure("Not a FHIR answer", f"{what}: the next page is on another server ({urlsplit(url).netloc}).", 424)
    return out


def read_chart(client: httpx.Client, iss: str, patient: str, token: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The Patient and the chart resources the mapping reads; a type the server refuses is
    left out and named in the notes."""
    base = iss.rstrip("/")
    record = _get_json(client, f"{base}/Patient/{patient}", "The patient's record", token)
    if not isinstance(record, dict) or record.get("resourceType") != "Patient" or record.get("id") != patient:
        raise SmartFailure("Not a FHIR answer", "The patient's record: the answer is not the Patient the launch named.", 424)
    resources, notes = [record], []
    for kind in CHART_TYPES:
        try:
            resources += _bundle_resources(client, base, f"{base}/{kind}?{urlencode({'patient': patient, '_count': 200})}",
                                           f"The {kind} search", token)
        except SmartFailure as failure:
            if failure.title != "Access refused":
                raise
            notes.append(f"{kind}: not read (the server refused access)")
    return resources, notes


def read_launch_encounter(client: httpx.Client, iss: str, encounter: str, token: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The Encounter the token response names (``encounter``, SMART launch context), as the CDS
    path reads ``context.encounterId``; one the server refuses or does not have is named in the
    notes (the mapping then assumes the setting, saying why)."""
    what = f"The launch's encounter (Encounter/{encounter})"
    try:
        found = _get_json(client, f"{iss.rstrip('/')}/Encounter/{encounter}", what, token)
    except SmartFailure as failure:
        if failure.title not in ("Access refused", "Server error"):
            raise
        return [], [f"Encounter/{encounter} (the launch's encounter): not read ({failure.message.split(': ', 1)[-1]})"]
    if not isinstance(found, dict) or found.get("resourceType") != "Encounter" or found.get("id") != encounter:
        raise SmartFailure("Not a FHIR answer", f"{what}: the answer is not the Encounter the launch named.", 424)
    return [found], []


@dataclass
class SmartPages:
    """What the SMART launch pages share: the configuration, the pages' helpers (see
    :func:`smart_router`) and the launches under way."""

    config: SmartConfig
    page: Callable[..., HTMLResponse]
    user_of: Callable[[Request], Any | None]
    needs_sign_in: bool
    guarded: Callable[[Callable[..., Any]], Callable[..., Any]]
    signed_in: Callable[[Request], Any | None]
    show_mapping: Callable[[Request, Any, Any, str, list[str]], HTMLResponse]
    today: Callable[[], dt.date]
    flows: MemoryFlows | StoredFlows = field(default_factory=MemoryFlows)

    def keep(self, key: str, flow: Flow) -> None:
        try:
            self.flows.put(key, flow)
        except TooMany:
            raise SmartFailure("Too many launches", "Too many SMART launches are under way; try again in a few minutes.", 429) from None

    def failure_page(self, failure: SmartFailure, user: Any | None = None) -> HTMLResponse:
        return self.page("message.html", failure.status, user=user, title=failure.title, message=failure.message,
                    back="/smart/start", back_label="the SMART launch")

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=self.config.timeout_s, follow_redirects=False)

    def redirect_uri(self, request: Request) -> str:
        base = self.config.public_url.rstrip("/") if self.config.public_url else str(request.base_url).rstrip("/")
        return f"{base}/smart/callback"

    def hop(self, target: str, title: str, message: str) -> HTMLResponse:
        """A page that continues to ``target`` on this site (so the SameSite=Strict session comes along)."""
        response = self.page("smart_continue.html", 200, title=title, message=message, target=target)
        response.headers["Refresh"] = f"0; url={target}"
        response.headers["Referrer-Policy"] = "no-referrer"  # the callback's address holds the code
        return response

    def begin(self, request: Request, iss: str, launch: str | None) -> Response:
        user = self.user_of(request)
        if self.needs_sign_in and user is None:
            if request.query_params.get("hop") != "1":
                # from the record system's page the Strict session cookie did not come along: once more, same site
                query = urlencode({k: v for k, v in request.query_params.items() if k != "hop"} | {"hop": "1"})
                return self.hop(f"{request.url.path}?{query}", "Opening hipdx", "Opening hipdx for the launch…")
            self.signed_in(request)  # raises: the sign-in page, then back here
        with _defects():
            return self.start(request, user, iss, launch)

    def start(self, request: Request, user: Any | None, iss: str, launch: str | None) -> Response:
        server = self.config.server(iss) if iss else None
        if server is None:
            raise SmartFailure("Server not allowed",
                               f"hipdx is not registered with the FHIR server {iss[:200]!r}: it is not on the list of allowed "
                               "servers (ask the administrator to add it to smart_servers).", 403)
        if launch is not None and (not launch or len(launch) > 2000 or not launch.isprintable()):
            raise SmartFailure("Bad launch", "The record system's launch has no usable launch parameter.")
        with self.client() as http:
            discovered = _get_json(http, f"{server.iss.rstrip('/')}/.well-known/smart-configuration",
                                   "The SMART configuration (.well-known/smart-configuration)")
        if not isinstance(discovered, dict):
            raise SmartFailure("Not a SMART server", f"The SMART configuration of {server.iss} is not a JSON object.", 424)
        methods = discovered.get("code_challenge_methods_supported")
        if not isinstance(methods, list) or "S256" not in methods:
            raise SmartFailure("PKCE not supported",
                               f"{server.label} does not offer PKCE with S256 (code_challenge_methods_supported); "
                               "hipdx launches only with it.", 424)
        authorize = _endpoint(discovered, "authorization_endpoint", server.iss)
        token_endpoint = _endpoint(discovered, "token_endpoint", server.iss)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(32)
        browser = request.cookies.get(FLOW_COOKIE) or secrets.token_urlsafe(32)
        uri = self.redirect_uri(request)
        jwks_uri = discovered.get("jwks_uri") if isinstance(discovered.get("jwks_uri"), str) else None
        flow = Flow(iss=server.iss, state=state, verifier=verifier, browser=browser, user=getattr(user, "token_hash", None),
                    redirect_uri=uri, token_endpoint=token_endpoint, launch=launch,
                    jwks_uri=jwks_uri if jwks_uri and _https_or_loopback(jwks_uri) else None,
                    issuer=discovered.get("issuer") if isinstance(discovered.get("issuer"), str) else None,
                    openid=_offers_openid(discovered))
        self.keep(state, flow)
        scope = ["launch" if launch is not None else "launch/patient", ENCOUNTER_SCOPE, SCOPES_V1 if server.scopes == "v1" else SCOPES_V2]
        if flow.openid:
            scope.append("openid fhirUser")
        params = {"response_type": "code", "client_id": server.client_id, "redirect_uri": uri, "scope": " ".join(scope),
                  "state": state, "aud": server.iss, "code_challenge": challenge, "code_challenge_method": "S256"}
        if launch is not None:
            params["launch"] = launch
        # a page that continues there, not a redirect: the pages' Content-Security-Policy (form-action 'self')
        # stops a form's redirect chain (sign-in, the server choice) at another site
        response = self.hop(f"{authorize}{'&' if '?' in authorize else '?'}{urlencode(params)}", f"Signing in to {server.label}",
                       f"Continuing to {server.label} to open the patient's record…")
        response.set_cookie(FLOW_COOKIE, browser, max_age=FLOW_SECONDS, httponly=True, samesite="lax", path="/smart",
                            secure=urlsplit(uri).scheme == "https")
        return response

    def answered(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Every SmartFailure as its page (status 4xx), after the pages' own sign-in handling."""
        import functools

        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Response:
            try:
                return handler(*args, **kwargs)
            except SmartFailure as failure:
                log.info("SMART launch stopped: %s", failure.title)
                return self.failure_page(failure, self.user_of(kwargs["request"]))

        return run

    def finish(self, request: Request, state: str, code: str, error: str, error_description: str) -> Response:
        flow = self.flows.take(state) if state else None
        server = self.config.server(flow.iss) if flow is not None else None
        if flow is None or server is None or not hmac.compare_digest(flow.browser, request.cookies.get(FLOW_COOKIE, "")):
            raise SmartFailure("Launch not recognised",
                               "This answer does not belong to a launch started here in this browser (its state is "
                               "missing, unknown, used already or older than ten minutes). Start the launch again.")
        if error:
            described = f" ({error_description[:300]})" if error_description and error_description.isprintable() else ""
            if error == "access_denied":
                raise SmartFailure("Access not granted", f"{server.label} did not grant hipdx access{described}.", 403)
            raise SmartFailure("Authorization failed", f"{server.label} answered the authorization with the error "
                               f"{error[:100]!r}{described}.")
        if not code:
            raise SmartFailure("Authorization failed", f"{server.label} answered without an authorization code.")
        with self.client() as http:
            token, patient, id_token, encounter = self.exchange(http, server, flow, code)
            resources, notes = read_chart(http, server.iss, patient, token)
            if encounter is not None:
                found, missed = read_launch_encounter(http, server.iss, encounter, token)
                resources, notes = resources + found, notes + missed
            del token
            who = launch_user(id_token, client_id=server.client_id, issuer=flow.issuer, jwks_uri=flow.jwks_uri,
                              fetch=lambda url, what: _get_json(http, url, what)) if id_token is not None else None
        self.mapped(resources, patient, server.iss, encounter)  # a chart that cannot be read is refused here, before anything is kept
        read_id = secrets.token_urlsafe(32)
        flow.resources, flow.patient, flow.encounter = resources, patient, encounter
        flow.notes = ([who.note] if who else []) + notes
        self.keep(read_id, flow)
        return self.hop(f"/smart/case?{urlencode({'read': read_id})}", "Patient read",
                   f"The patient's record was read from {server.label}; opening the case…")

    def mapped(self, resources: list[dict[str, Any]], patient: str, iss: str, encounter: str | None) -> Any:
        """The chart read from ``iss``, as a case (:func:`hipdx.fhir.map_fhir`; the setting from the
        launch's encounter, when it names one); a record it cannot read is a failure page."""
        from hipdx.fhir import map_fhir

        try:
            return map_fhir(resources, self.today(), patient_id=patient, fhir_server=iss, encounter_id=encounter)
        except HipdxError as err:
            raise SmartFailure("Record not readable", "; ".join([err.message, *(str(p) for p in err.problems[:5])]), 424) from None

    def exchange(self, http: httpx.Client, server: SmartServer, flow: Flow, code: str) -> tuple[str, str, Any, str | None]:
        """The access token, the patient, the id_token (None when openid was not asked) and the
        encounter (None when the answer names none) of the code."""
        form = {"grant_type": "authorization_code", "code": code[:4000], "redirect_uri": flow.redirect_uri,
                "code_verifier": flow.verifier}
        headers = {"Accept": "application/json"}
        secret = server.secret()
        if secret is None:
            form["client_id"] = server.client_id
        else:  # client_secret_basic: id and secret form-urlencoded, then Basic (RFC 6749 2.3.1)
            pair = f"{quote_plus(server.client_id, safe='')}:{quote_plus(secret, safe='')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        what = f"The token request to {server.label}"
        try:
            response = http.post(flow.token_endpoint, data=form, headers=headers)
        except httpx.TimeoutException:
            raise SmartFailure("Server not answering", f"{what}: the server did not answer in time.", 424) from None
        except httpx.HTTPError as exc:
            raise SmartFailure("Server unreachable", f"{what}: the server cannot be reached ({type(exc).__name__}).", 424) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else f"HTTP {response.status_code}"
            raise SmartFailure("Authorization failed", f"{what} was refused ({error[:100]}): the code may be used "
                               "already or expired. Start the launch again.", 424)
        if not isinstance(body, dict):
            raise SmartFailure("Wrong token response", f"{what}: the answer is not a JSON object.", 424)
        token, patient = body.get("access_token"), body.get("patient")
        if not isinstance(token, str) or not token or str(body.get("token_type", "")).lower() != "bearer":
            raise SmartFailure("Wrong token response", f"{what}: the answer has no bearer access_token.", 424)
        if not isinstance(patient, str) or not patient or len(patient) > 64 or not all(c.isalnum() or c in "-." for c in patient):
            raise SmartFailure("No patient chosen", f"{what}: the answer names no patient (the launch context "
                               "'patient' is missing), so hipdx does not know whose record to read.", 424)
        encounter = body.get("encounter")
        if encounter is not None and (not isinstance(encounter, str) or not FHIR_ID.fullmatch(encounter)):
            raise SmartFailure("Wrong token response", f"{what}: the launch context 'encounter' ({str(encounter)[:80]!r}) "
                               "is not a FHIR resource id (letters, digits, '-' and '.', at most 64).", 424)
        return token, patient, body.get("id_token", "") if flow.openid else None, encounter


def smart_router(
    config: SmartConfig,
    *,
    page: Callable[..., HTMLResponse],
    user_of: Callable[[Request], Any | None],
    needs_sign_in: bool,
    guarded: Callable[[Callable[..., Any]], Callable[..., Any]],
    signed_in: Callable[[Request], Any | None],
    show_mapping: Callable[[Request, Any, Any, str, list[str]], HTMLResponse],
    today: Callable[[], dt.date],
    engine: Any | None = None,
) -> APIRouter:
    """The SMART launch pages; the helpers come from :func:`hipdx.web.pages.web_router`.

    ``user_of`` gives the signed-in user or None; ``signed_in`` raises for the pages' sign-in
    redirect; ``show_mapping(request, user, mapping, patient, notes)`` answers the entry page.
    """
    pages = SmartPages(config, page, user_of, needs_sign_in, guarded, signed_in, show_mapping, today, flows_for(engine)())
    router = APIRouter(include_in_schema=False)

    @router.get("/smart/launch", response_class=HTMLResponse)
    @pages.guarded
    @pages.answered
    def ehr_launch(request: Request, iss: str = "", launch: str = "") -> Response:
        if not iss or not launch:
            raise SmartFailure("Bad launch", "An EHR launch needs both iss (the FHIR server) and launch; "
                               "to start hipdx on its own, use the SMART launch page.")
        return pages.begin(request, iss[:2000], launch)

    @router.get("/smart/start", response_class=HTMLResponse)
    @pages.guarded
    @pages.answered
    def standalone(request: Request, iss: str = "") -> Response:
        if not iss:
            user = pages.signed_in(request)
            return pages.page("smart_start.html", user=user, title="Open a patient from a FHIR server", servers=pages.config.servers)
        return pages.begin(request, iss[:2000], None)

    @router.get("/smart/callback", response_class=HTMLResponse)
    @pages.guarded
    @pages.answered
    def callback(request: Request, state: str = "", code: str = "", error: str = "", error_description: str = "") -> Response:
        with _defects():
            return pages.finish(request, state, code, error, error_description)

    @router.get("/smart/case", response_class=HTMLResponse)
    @pages.guarded
    def read_case(request: Request, read: str = "") -> Response:
        user = pages.signed_in(request)
        flow = pages.flows.take(read) if read else None
        if flow is None or flow.resources is None or (pages.needs_sign_in and flow.user != getattr(user, "token_hash", None)):
            return pages.failure_page(SmartFailure("Nothing to open", "There is no patient read for you under this address "
                                             "(it is used once and kept ten minutes). Start the launch again."), user)
        try:
            mapping = pages.mapped(flow.resources, flow.patient or "", flow.iss, flow.encounter)
        except SmartFailure as failure:
            return pages.failure_page(failure, user)
        return pages.show_mapping(request, user, mapping, flow.patient or "", flow.notes)

    return router
