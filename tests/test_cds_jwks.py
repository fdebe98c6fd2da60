"""CDS clients whose keys are given by ``jwks_url``: a real HTTP server on loopback serves the JWK
Set; the set is fetched, cached as its Cache-Control says (within bounds), fetched again when a
token names a new ``kid`` (key rotation) but never sooner than the minimum interval (a flood of
made-up kids does not hammer the issuer), filtered to ES384/RS384 signing keys; an unreachable,
slow or broken URL gives 401 without detail and a log line without the token. The issuers file
is checked, each problem naming the entry and the field."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

import hipdx
from hipdx.errors import InputError
from hipdx.service import IssuerList, ServiceConfig, create_app
from hipdx.service import jwks as jwks_module
from hipdx.service.auth import Unauthorized
from hipdx.service.hooks import SERVICE_ID

from conftest import LoopbackHTTPServer, TODAY
from test_service import ISS, URL, request_for


def _key(kind: str = "ec") -> Any:
    return ec.generate_private_key(ec.SECP384R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)


def _jwk(private: Any, kid: str, **more: Any) -> dict[str, Any]:
    algorithm = jwt.algorithms.ECAlgorithm if isinstance(private, ec.EllipticCurvePrivateKey) else jwt.algorithms.RSAAlgorithm
    return {**json.loads(algorithm.to_jwk(private.public_key())), "kid": kid, **more}


def _token(private: Any, kid: str, aud: str = URL) -> str:
    now = int(time.time())
    alg = "ES384" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS384"
    return jwt.encode({"iss": ISS, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}, private,
                      algorithm=alg, headers={"kid": kid, "typ": "JWT"})


class JwksServer:
    """A CDS client's key endpoint on loopback: serves ``document`` with ``cache_control``; counts requests."""

    def __init__(self) -> None:
        self.document: Any = {"keys": []}
        self.cache_control: str | None = "max-age=300"
        self.status, self.delay_s, self.requests = 200, 0.0, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests += 1
                time.sleep(server.delay_s)
                body = json.dumps(server.document).encode() if not isinstance(server.document, bytes) else server.document
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                if server.cache_control:
                    self.send_header("Cache-Control", server.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        # polled every 10 ms for the shutdown (the default half second is most of a test's time)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[JwksServer]:
    running = JwksServer()
    running.thread.start()
    try:
        yield running
    finally:
        running.close()


def _issuers(tmp_path: Path, url: str) -> IssuerList:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([{"iss": ISS, "jwks_url": url}]))  # the shape: a plain list
    return IssuerList.from_file(path)


def _auth(token: str) -> str:
    return f"Bearer {token}"


def test_keys_are_fetched_cached_and_rotated(server: JwksServer, tmp_path: Path) -> None:
    old, new = _key(), _key("rsa")
    server.document = {"keys": [_jwk(old, "k-2026-11")]}
    issuers = _issuers(tmp_path, server.url)
    remote = issuers.issuers[ISS].remote
    start = time.time()
    assert issuers.verify(_auth(_token(old, "k-2026-11")), URL, now=start)["iss"] == ISS
    assert issuers.verify(_auth(_token(old, "k-2026-11")), URL, now=start + 200)["iss"] == ISS
    assert server.requests == 1 and remote.fetches == 1  # cached: max-age=300

    server.document = {"keys": [_jwk(new, "k-2026-12")]}  # the client rotates its key
    with pytest.raises(Unauthorized, match="no key of this issuer has this kid"):
        # within the minimum interval after the last fetch: not fetched again yet
        issuers.verify(_auth(_token(new, "k-2026-12")), URL, now=start + 10)
    assert server.requests == 1
    claims = issuers.verify(_auth(_token(new, "k-2026-12")), URL, now=start + jwks_module.MIN_REFETCH + 1)
    assert claims["iss"] == ISS and server.requests == 2  # the unknown kid made it fetch the new set
    with pytest.raises(Unauthorized):  # the retired key is gone with the old set
        issuers.verify(_auth(_token(old, "k-2026-11")), URL, now=start + jwks_module.MIN_REFETCH + 2)


def test_made_up_kids_do_not_hammer_the_issuer(server: JwksServer, tmp_path: Path) -> None:
    good = _key()
    server.document = {"keys": [_jwk(good, "k1")]}
    issuers = _issuers(tmp_path, server.url)
    start = time.time()
    issuers.verify(_auth(_token(good, "k1")), URL, now=start)
    for i in range(50):
        with pytest.raises(Unauthorized):
            issuers.verify(_auth(_token(_key(), f"made-up-{i}")), URL, now=start + i * 0.5)
    assert server.requests == 1  # 25 s of unknown kids: at most one fetch per MIN_REFETCH (30 s)
    with pytest.raises(Unauthorized):
        issuers.verify(_auth(_token(_key(), "made-up-late")), URL, now=start + jwks_module.MIN_REFETCH + 1)
    assert server.requests == 2


def test_cache_control_is_respected_within_bounds(server: JwksServer, tmp_path: Path) -> None:
    assert jwks_module.ttl("public, max-age=600") == 600
    assert jwks_module.ttl("max-age=1") == jwks_module.MIN_TTL
    assert jwks_module.ttl("max-age=99999999") == jwks_module.MAX_TTL
    assert jwks_module.ttl(None) == jwks_module.DEFAULT_TTL == jwks_module.ttl("public")
    assert jwks_module.ttl("no-store") == jwks_module.ttl("no-cache, max-age=600") == jwks_module.MIN_TTL
    good = _key()
    server.document, server.cache_control = {"keys": [_jwk(good, "k1")]}, "max-age=120"
    issuers = _issuers(tmp_path, server.url)
    start = time.time()
    issuers.verify(_auth(_token(good, "k1")), URL, now=start)
    issuers.verify(_auth(_token(good, "k1")), URL, now=start + 110)
    assert server.requests == 1
    issuers.verify(_auth(_token(good, "k1")), URL, now=start + 125)  # expired: fetched again
    assert server.requests == 2


def test_only_es384_and_rs384_signing_keys_are_used(server: JwksServer, tmp_path: Path) -> None:
    good, rsa_enc, p256 = _key(), _key("rsa"), ec.generate_private_key(ec.SECP256R1())
    server.document = {"keys": [
        _jwk(rsa_enc, "enc", use="enc"),  # an encryption key
        {"kty": "oct", "kid": "hs", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"},  # a shared secret (HS*)
        _jwk(p256, "p256"),  # ES256's curve
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(good)), "kid": "private"},  # a private key published
        "not a key",
        _jwk(good, "sig", use="sig", alg="ES384"),
    ]}
    issuers = _issuers(tmp_path, server.url)
    assert issuers.verify(_auth(_token(good, "sig")), URL)["iss"] == ISS
    for kid in ("enc", "hs", "p256", "private"):
        with pytest.raises(Unauthorized, match="no key of this issuer has this kid"):
            issuers.verify(_auth(_token(good, kid)), URL)


@pytest.mark.parametrize("failure", ["unreachable", "http 500", "not json", "too slow", "not a jwk set"])
def test_a_jwks_that_cannot_be_fetched_is_401_without_detail(
        failure: str, server: JwksServer, tmp_path: Path, kb: hipdx.KnowledgeBase, caplog: pytest.LogCaptureFixture) -> None:
    good = _key()
    server.document = {"keys": [_jwk(good, "k1")]}
    url = server.url
    if failure == "unreachable":
        with socket.socket() as probe:  # a loopback port nobody listens on
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/jwks.json"
    elif failure == "http 500":
        server.status = 500
    elif failure == "not json":
        server.document = b"<html>maintenance</html>"
    elif failure == "not a jwk set":
        server.document = {"jwks": []}
    else:
        server.delay_s = 2.0
    issuers = _issuers(tmp_path, url)
    # the server that answers answers at once, but leave it half a second on a loaded machine; the one
    # that does not answer within its 2 s is not waited for longer than needed
    issuers.issuers[ISS].remote.timeout_s = 0.1 if failure == "too slow" else 0.5
    client = TestClient(create_app(ServiceConfig(issuers=issuers, today=lambda: TODAY), kb), raise_server_exceptions=False)
    caplog.set_level(logging.INFO)
    secret = _token(good, "k1")
    answer = client.post(f"/cds-services/{SERVICE_ID}", json=request_for("toh_man_classic"), headers={"Authorization": _auth(secret)})
    assert answer.status_code == 401 and answer.content == b"" and answer.headers["www-authenticate"] == "Bearer"
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("hipdx")]
    assert any("JWK Set of issuer https://ehr.example.org cannot be fetched" in line and url in line for line in lines), lines
    assert not any(secret in line or secret.split(".")[2] in line for line in lines)
    requests = server.requests
    again = client.post(f"/cds-services/{SERVICE_ID}", json=request_for("toh_man_classic"),
                        headers={"Authorization": _auth(_token(good, "k1"))})
    assert again.status_code == 401 and server.requests == requests  # not retried before the minimum interval
    assert issuers.issuers[ISS].remote.fetches == 1


def test_a_jwks_url_issuer_signs_real_calls(server: JwksServer, tmp_path: Path, kb: hipdx.KnowledgeBase) -> None:
    good = _key("rsa")
    server.document = {"keys": [_jwk(good, "rs-1", alg="RS384", use="sig")]}
    client = TestClient(create_app(ServiceConfig(issuers=_issuers(tmp_path, server.url), today=lambda: TODAY), kb),
                        raise_server_exceptions=False)
    answer = client.post(f"/cds-services/{SERVICE_ID}", json=request_for("toh_man_classic"),
                         headers={"Authorization": _auth(_token(good, "rs-1"))})
    assert answer.status_code == 200 and answer.json()["cards"]


@pytest.mark.parametrize(("content", "field", "reason"), [
    ([{"iss": ISS, "jwks_url": "http://ehr.example.org/jwks.json"}], "issuers[0].jwks_url", "https"),
    ([{"iss": ISS, "jwks_url": 42}], "issuers[0].jwks_url", "https"),
    ([{"iss": ISS, "jwks_uri": "https://ehr.example.org/jwks.json"}], "issuers[0].jwks_uri", "did you mean 'jwks_url'"),
    ([{"iss": ISS, "jwks_url": "https://a.org/j", "jwks": {"keys": []}}], "issuers[0].jwks_url", "exactly one"),
    ([{"iss": ISS}], "issuers[0].jwks_url", "exactly one"),
    ([{"jwks_url": "https://a.org/j"}], "issuers[0].iss", "needs an 'iss'"),
    ([{"iss": ISS, "jwks_url": "https://a.org/j"}, {"iss": ISS, "jwks_url": "https://b.org/j"}], "issuers[1].iss",
     "listed twice"),
    ([{"iss": ISS, "jwks_url": "https://a.org/j", "tenants": "a"}], "issuers[0].tenants", "list of strings"),
    ([{"iss": ISS, "jwks": {"keys": [{"kty": "EC", "kid": "x"}]}}], "issuers[0].jwks", "jwks.keys[0]"),
    (["https://a.org"], "issuers[0]", "an issuer is an object"),
    ([], "", "at least one issuer"),
])
def test_the_issuers_file_is_checked_naming_entry_and_field(content: Any, field: str, reason: str, tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError) as err:
        IssuerList.from_file(path)
    assert reason in str(err.value)
    if field:
        assert any(p.field == field and reason in p.reason for p in err.value.problems), err.value.problems


@pytest.mark.slow  # a real server and a 3 s wait
def test_a_slow_jwks_does_not_stall_the_server(server: JwksServer, tmp_path: Path, kb: hipdx.KnowledgeBase) -> None:
    """Real HTTP on loopback: while a hook call waits for a slow issuer's JWK Set, the same worker answers others."""
    import httpx2 as httpx
    import uvicorn

    good = _key()
    server.document, server.delay_s = {"keys": [_jwk(good, "k1")]}, 3.0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(ServiceConfig(issuers=_issuers(tmp_path, server.url), today=lambda: TODAY,
                                   public_url=f"http://127.0.0.1:{port}"), kb)
    service = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not service.started and time.monotonic() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    answers: dict[str, Any] = {}

    def hook_call() -> None:
        with httpx.Client(timeout=10) as client:
            answers["hook"] = client.post(f"{base}/cds-services/{SERVICE_ID}", json=request_for("toh_man_classic"),
                                          headers={"Authorization": _auth(_token(good, "k1", aud=f"{base}/cds-services/{SERVICE_ID}"))})

    try:
        caller = threading.Thread(target=hook_call)
        caller.start()
        while server.requests == 0 and caller.is_alive():  # the hook call is now waiting for the JWK Set
            time.sleep(0.01)
        start = time.monotonic()
        with httpx.Client(timeout=10) as client:
            other = client.get(f"{base}/knowledge-base")
        waited = time.monotonic() - start
        caller.join(10)
        assert other.status_code == 200 and waited < 1.5, waited  # not queued behind the 3 s fetch
        assert answers["hook"].status_code == 200
    finally:
        service.should_exit = True
        thread.join(timeout=10)
