"""A test-only SMART App Launch 2.0 authorization server and FHIR server: the record system's
side of the network seam, run for real on a loopback port by the SMART tests.

It follows the specification strictly where hipdx's side is tested: discovery at
``/fhir/.well-known/smart-configuration`` (S256 only), the authorize request (``response_type``,
``client_id``, the registered ``redirect_uri``, ``aud`` = the FHIR base, ``scope``, ``state``
passed through, ``code_challenge_method=S256``, ``launch`` issued by its EHR page), codes used
once and bound to the client, the redirect URL and the PKCE challenge, and the FHIR reads only
with a valid bearer token, only inside the patient's compartment. The patients are the
project's hip-pain bundles (``tests/data/fhir``), served with ``Type/id`` references as a FHIR
server does. ``Peer.behaviour`` switches on the hostile answers the tests need.

OpenID Connect: when ``openid`` is in the granted scope the token response carries an
``id_token`` (RS256, its key published at ``/auth/jwks``, named by ``jwks_uri`` in the
discovery) whose ``fhirUser`` is :data:`FHIR_USER`. A confidential client: with
``Peer.client_secret`` set, the token request must authenticate with HTTP Basic
(``client_secret_basic``) and nothing else; without it, a public client sends its
``client_id`` in the form and a Basic header is refused.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

BUNDLES = Path(__file__).parent / "data" / "fhir"
CLIENT_ID = "hipdx-test"
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
FHIR_USER_ID = "Practitioner/dr-lee"
#: the peer's signing key and a key it does not publish (for a forged id_token)
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "peer-key-1"


def _relative(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: (ids.get(v, v) if k == "reference" and isinstance(v, str) else _relative(v, ids)) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, ids) for v in value]
    return value


def load_patients(folder: Path = BUNDLES) -> dict[str, list[dict[str, Any]]]:
    """Patient id -> the patient's resources (the Patient first), references made ``Type/id``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.bundle.json")):
        bundle = json.loads(path.read_text())
        ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"] if "fullUrl" in e}
        resources = [_relative(e["resource"], ids) for e in bundle["entry"]]
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        out[patient["id"]] = resources
    return out


@dataclass
class Peer:
    """The record system's state, which the tests read and steer."""

    base: str = ""  # e.g. http://localhost:PORT (set once the server runs)
    redirect_uri: str = ""  # hipdx's registered redirect URL
    patients: dict[str, list[dict[str, Any]]] = field(default_factory=load_patients)
    launches: dict[str, str] = field(default_factory=dict)  # launch -> patient
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> patient
    used_codes: set[str] = field(default_factory=set)
    standalone_patient: str = ""  # the patient the "picker" chooses in a standalone launch
    #: the encounter the clinician is in: the token response names it (launch context ``encounter``)
    #: when ``launch/encounter`` was asked for; its resource is read from ``encounters``
    context_encounter: str = ""
    encounters: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> Encounter (subject Patient/id)
    #: hostile switches: "deny", "no-patient", "garbage-fhir", "no-s256", "html-config", "token-500", "foreign-next",
    #: "refuse-procedures", "bad-encounter" (an encounter that is no id), "no-jwks" (no jwks_uri in the discovery), "forged-id-token" (signed with an unpublished key)
    behaviour: set[str] = field(default_factory=set)
    #: a confidential client's secret: the token request must come with HTTP Basic (client_secret_basic)
    client_secret: str | None = None
    #: how each token request authenticated the client: "client_id" (public) or "client_secret_basic"
    token_auth: list[str] = field(default_factory=list)
    #: show an approval page (a form on this site) before redirecting back, as a record system does
    consent: bool = False
    approvals: dict[str, str] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    fhir_requests: list[str] = field(default_factory=list)

    @property
    def fhir(self) -> str:
        return f"{self.base}/fhir"


def _error(redirect: str, state: str, error: str, description: str) -> RedirectResponse:
    return RedirectResponse(f"{redirect}?{urlencode({'error': error, 'error_description': description, 'state': state})}", 302)


def create_peer(peer: Peer) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/fhir/.well-known/smart-configuration")
    def discovery() -> Response:
        if "html-config" in peer.behaviour:
            return HTMLResponse("<html><body>Welcome to our portal</body></html>")
        return JSONResponse({
            "issuer": peer.base,
            **({} if "no-jwks" in peer.behaviour else {"jwks_uri": f"{peer.base}/auth/jwks"}),
            "authorization_endpoint": f"{peer.base}/auth/authorize",
            "token_endpoint": f"{peer.base}/auth/token",
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
            "grant_types_supported": ["authorization_code"],
            "scopes_supported": ["launch", "launch/patient", "openid", "fhirUser", "patient/*.rs"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["plain"] if "no-s256" in peer.behaviour else ["S256"],
            "capabilities": ["launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
                             "sso-openid-connect", "context-ehr-patient",
                             "context-standalone-patient", "permission-patient", "permission-v2"],
        })

    @app.get("/auth/jwks")
    def jwks() -> Response:
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(SIGNING_KEY.public_key()))
        return JSONResponse({"keys": [key | {"kid": KID, "use": "sig", "alg": "RS256"}]})

    @app.get("/ehr", response_class=HTMLResponse)
    def ehr(patient: str, app_url: str) -> HTMLResponse:
        """The record system's chart page, with the link that EHR-launches the app."""
        launch = secrets.token_urlsafe(16)
        peer.launches[launch] = patient
        url = f"{app_url}?{urlencode({'iss': peer.fhir, 'launch': launch})}"
        return HTMLResponse(f'<!doctype html><html lang="en"><title>EHR</title><h1>Chart</h1>'
                            f'<a id="launch" href="{html.escape(url)}">Open hipdx</a></html>')

    @app.get("/auth/authorize")
    def authorize(request: Request) -> Response:
        q = dict(request.query_params)
        peer.authorize_requests.append(q)
        # errors before the redirect URL is trusted are shown here, never redirected (RFC 6749 4.1.2.1)
        if q.get("client_id") != CLIENT_ID:
            return HTMLResponse("unknown client_id", 400)
        if q.get("redirect_uri") != peer.redirect_uri:
            return HTMLResponse("redirect_uri is not the registered one", 400)
        redirect, state = q["redirect_uri"], q.get("state", "")
        if q.get("response_type") != "code":
            return _error(redirect, state, "unsupported_response_type", "response_type must be code")
        if not state:
            return _error(redirect, state, "invalid_request", "state is required")
        if q.get("aud") != peer.fhir:
            return _error(redirect, state, "invalid_request", "aud is not this FHIR server")
        if q.get("code_challenge_method") != "S256" or not re.fullmatch(r"[A-Za-z0-9\-_]{43}", q.get("code_challenge", "")):
            return _error(redirect, state, "invalid_request", "PKCE S256 is required")
        scopes = q.get("scope", "").split()
        if "launch" in scopes:
            patient = peer.launches.pop(q.get("launch", ""), None)
            if patient is None:
                return _error(redirect, state, "invalid_request", "unknown launch")
        elif "launch/patient" in scopes:
            patient = peer.standalone_patient
        else:
            return _error(redirect, state, "invalid_scope", "no launch context asked for")
        if not any(s.startswith("patient/") for s in scopes):
            return _error(redirect, state, "invalid_scope", "no patient scope")
        if "deny" in peer.behaviour:
            return _error(redirect, state, "access_denied", "The user declined")
        code = secrets.token_urlsafe(24)
        peer.codes[code] = {"client_id": CLIENT_ID, "redirect_uri": redirect, "challenge": q["code_challenge"],
                            "patient": patient, "scope": " ".join(scopes)}
        back = f"{redirect}?{urlencode({'code': code, 'state': state})}"
        if peer.consent:  # the user approves on the record system's own page: the redirect back starts on its site
            ticket = secrets.token_urlsafe(16)
            peer.approvals[ticket] = back
            return HTMLResponse(f'<!doctype html><html lang="en"><title>Allow?</title><form method="post" action="/auth/approve">'
                                f'<input type="hidden" name="ticket" value="{ticket}"><button id="allow">Allow hipdx</button></form></html>')
        return RedirectResponse(back, 302)

    @app.post("/auth/approve")
    async def approve(request: Request) -> Response:
        ticket = (await request.form()).get("ticket")
        back = peer.approvals.pop(ticket, None) if isinstance(ticket, str) else None
        return RedirectResponse(back, 302) if back else HTMLResponse("unknown ticket", 400)

    @app.post("/auth/token")
    async def token(request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        peer.token_requests.append({k: v for k, v in form.items() if k != "code_verifier"})
        if "token-500" in peer.behaviour:
            return HTMLResponse("<h1>Internal error</h1>", 500)

        def refuse(error: str) -> JSONResponse:
            return JSONResponse({"error": error}, 400, headers={"Cache-Control": "no-store"})

        if form.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type")
        code = form.get("code", "")
        if code in peer.used_codes:
            return refuse("invalid_grant")
        grant = peer.codes.pop(code, None)
        if grant is None:
            return refuse("invalid_grant")
        peer.used_codes.add(code)  # a code is used once, even when the request fails below
        basic = request.headers.get("authorization", "")
        if peer.client_secret is not None:  # confidential: HTTP Basic, and only that (RFC 6749 2.3.1)
            try:  # each part form-urlencoded, then joined and base64-encoded
                given = [unquote_plus(part) for part in base64.b64decode(basic.removeprefix("Basic ")).decode().split(":", 1)]
            except ValueError:
                given = []
            if not basic.startswith("Basic ") or given != [CLIENT_ID, peer.client_secret] or "client_id" in form:
                return JSONResponse({"error": "invalid_client"}, 401, headers={"WWW-Authenticate": 'Basic realm="token"'})
            client, method = CLIENT_ID, "client_secret_basic"
        else:
            if basic:
                return JSONResponse({"error": "invalid_client"}, 401)
            client, method = form.get("client_id"), "client_id"
        peer.token_auth.append(method)
        if client != grant["client_id"] or form.get("redirect_uri") != grant["redirect_uri"]:
            return refuse("invalid_grant")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not VERIFIER.fullmatch(verifier) or challenge != grant["challenge"]:
            return refuse("invalid_grant")
        access = secrets.token_urlsafe(32)
        peer.tokens[access] = grant["patient"]
        body = {"access_token": access, "token_type": "Bearer", "expires_in": 300, "scope": grant["scope"],
                "patient": grant["patient"]}
        if "no-patient" in peer.behaviour:
            del body["patient"]
        if peer.context_encounter and "launch/encounter" in grant["scope"].split():
            body["encounter"] = peer.context_encounter
        if "bad-encounter" in peer.behaviour:
            body["encounter"] = "Encounter/ed 1"
        if "openid" in grant["scope"].split():
            now = int(time.time())
            claims = {"iss": peer.base, "sub": "dr-lee", "aud": CLIENT_ID, "iat": now, "exp": now + 300,
                      "fhirUser": f"{peer.fhir}/{FHIR_USER_ID}"}
            key = OTHER_KEY if "forged-id-token" in peer.behaviour else SIGNING_KEY
            body["id_token"] = jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def bearer(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        return peer.tokens.get(header[7:]) if header.startswith("Bearer ") else None

    @app.get("/fhir/Patient/{pid}")
    def read_patient(request: Request, pid: str) -> Response:
        peer.fhir_requests.append(str(request.url))
        allowed = bearer(request)
        if allowed is None:
            return JSONResponse({"resourceType": "OperationOutcome"}, 401)
        if "garbage-fhir" in peer.behaviour:
            return Response(b"\x00<html>not fhir", 200, media_type="text/html")
        if pid != allowed or pid not in peer.patients:
            return JSONResponse({"resourceType": "OperationOutcome"}, 403)
        return JSONResponse(peer.patients[pid][0], media_type="application/fhir+json")

    @app.get("/fhir/Encounter/{eid}")
    def read_encounter(request: Request, eid: str) -> Response:
        peer.fhir_requests.append(str(request.url))
        allowed = bearer(request)
        if allowed is None:
            return JSONResponse({"resourceType": "OperationOutcome"}, 401)
        found = peer.encounters.get(eid)
        if found is None:
            return JSONResponse({"resourceType": "OperationOutcome"}, 404)
        if found.get("subject", {}).get("reference") != f"Patient/{allowed}":
            return JSONResponse({"resourceType": "OperationOutcome"}, 403)
        return JSONResponse(found, media_type="application/fhir+json")

    @app.get("/fhir/{kind}")
    def search(request: Request, kind: str, patient: str = "") -> Response:
        peer.fhir_requests.append(str(request.url))
        allowed = bearer(request)
        if allowed is None:
            return JSONResponse({"resourceType": "OperationOutcome"}, 401)
        if patient != allowed:
            return JSONResponse({"resourceType": "OperationOutcome"}, 403)
        found = [r for r in peer.patients.get(patient, [])[1:] if r["resourceType"] == kind]
        if "foreign-next" in peer.behaviour:
            return JSONResponse({"resourceType": "Bundle", "type": "searchset",
                                 "link": [{"relation": "next", "url": f"http://elsewhere.example/fhir/{kind}?page=2"}]})
        if "refuse-procedures" in peer.behaviour and kind == "Procedure":
            return JSONResponse({"resourceType": "OperationOutcome"}, 403)
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "total": len(found),
                             "entry": [{"fullUrl": f"{peer.fhir}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                                       for r in found]}, media_type="application/fhir+json")

    return app
