"""A body over the limit is answered 413 Payload Too Large, and is not read past the limit.

``Content-Length`` is checked before a byte is read; a chunked body is counted while it is read.
Over real HTTP (uvicorn on loopback) the client sends a Content-Length of more than the limit and
no body, or chunks just past the limit and no final chunk: a server that read the body whole would
wait for the rest, and the test's socket times out. Before, the CDS services answered 400 after
reading the body whole, and the REST API 413 after reading it whole.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient

import hipdx
from hipdx.service import ServiceConfig, create_app
from hipdx.service.api.context import MAX_JSON_BYTES
from hipdx.service.app import MAX_BODY_BYTES
from hipdx.service.hooks import SERVICE_ID

from api_support import Api, api  # noqa: F401  (the fixture)
from conftest import TODAY

CDS = f"/cds-services/{SERVICE_ID}"


def _oversized(limit: int) -> bytes:
    return b'{"hook": "patient-view", "x": "' + b"a" * limit + b'"}'


def test_a_cds_body_over_the_limit_is_413_too_long(kb: hipdx.KnowledgeBase) -> None:
    client = TestClient(create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY), kb),
                        raise_server_exceptions=False)
    answer = client.post(CDS, content=_oversized(MAX_BODY_BYTES), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text[:300]
    issues = answer.json()["issue"]
    assert {i["code"] for i in issues} == {"too-long"} and "larger than 20 MB" in issues[0]["diagnostics"]
    chunks = iter([_oversized(MAX_BODY_BYTES)[i:i + 2**20] for i in range(0, MAX_BODY_BYTES + 40, 2**20)])
    chunked = client.post(CDS, content=chunks, headers={"Content-Type": "application/json"})  # no Content-Length
    assert chunked.status_code == 413 and "stopped reading" in chunked.json()["issue"][0]["diagnostics"]
    assert client.post(CDS, content=b"{}", headers={"Content-Type": "application/json"}).status_code == 400  # small: read


def test_a_rest_body_over_the_limit_is_413_naming_the_header(api: Api) -> None:
    answer = api.client.post("/api/v1/assess", content=_oversized(MAX_JSON_BYTES),
                             headers=api.sign_in() | {"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in answer.json()["errors"]] == ["header.Content-Length"]


@pytest.fixture
def served(api: Api) -> Iterator[tuple[Api, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api.client.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield api, port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _answer(port: int, head: bytes, body: Iterator[bytes]) -> bytes:
    """What the server answers to ``head`` and ``body``, sent without their end; b"" when it waits for more."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        for part in body:
            conn.sendall(part)
        try:
            return conn.recv(200)
        except TimeoutError:
            return b""


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        size = min(2**20, total - sent)
        yield b"%x\r\n" % size + b"a" * size + b"\r\n"
        sent += size


@pytest.mark.parametrize(("path", "limit"), [(CDS, MAX_BODY_BYTES), ("/api/v1/assess", MAX_JSON_BYTES)])
def test_over_real_http_the_server_stops_at_the_limit(served: tuple[Api, int], path: str, limit: int) -> None:
    api, port = served
    auth = api.sign_in()["Authorization"].encode()
    head = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: " + auth
    declared = _answer(port, head + b"\r\nContent-Length: %d\r\n\r\n" % (limit * 50), iter([b"{"]))  # 1 GB said, 1 byte sent
    assert declared.startswith(b"HTTP/1.1 413"), declared
    chunked = _answer(port, head + b"\r\nTransfer-Encoding: chunked\r\n\r\n", _chunks(limit + 1))  # no final chunk
    assert chunked.startswith(b"HTTP/1.1 413"), chunked
