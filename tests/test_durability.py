"""kill -9 of ``hipdx serve`` during a write load, on the embedded SQLite and on PostgreSQL:
every write the server acknowledged (201) is there after a restart, and the database opens
cleanly (SQLite's integrity check says ok; the restarted server is ready)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from hipdx.store import connect, migrate
from hipdx.store.users import Role, add_user

from conftest import EXAMPLES, ROOT
from test_store import _postgres_schema

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery staple"
CASE = json.loads((EXAMPLES / "toh_man_classic.json").read_text())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "import sys; from hipdx.cli import main; sys.argv[0] = 'hipdx'; main()",
               "serve", "--insecure-no-auth", "--port", str(port)]
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"hipdx serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise AssertionError(f"hipdx serve was not ready in 120 s: {log.read_text()[-2000:]}")


@pytest.fixture(params=["sqlite", "postgresql"])
def server_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPDX_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT / "src"), env.get("PYTHONPATH", "")] if p)
    env["HIPDX_DATA_DIR"] = str(tmp_path / "data")
    if request.param == "sqlite":  # the embedded default: no URL, created and migrated on start
        yield env, f"sqlite:///{tmp_path / 'data' / 'hipdx.db'}"
        return
    for url in _postgres_schema():
        env["HIPDX_DATABASE_URL"] = url
        yield env, url


def test_no_acknowledged_write_is_lost_after_kill_9(server_env: tuple[dict[str, str], str], tmp_path: Path) -> None:
    env, url = server_env
    log = tmp_path / "serve.log"
    if "HIPDX_DATABASE_URL" in env:
        engine = connect(url)
        migrate(engine)
        engine.dispose()
    port = _free_port()
    server = _start(port, env, log)
    engine = connect(url)
    add_user(engine, "writer", PASSWORD, Role.clinician)
    engine.dispose()
    base = f"http://127.0.0.1:{port}/api/v1"
    signed = httpx.post(f"{base}/auth/token", json={"username": "writer", "password": PASSWORD}, timeout=30)
    headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}

    acknowledged: dict[int, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def write(worker: int) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not stop.is_set():
                label = f"w{worker}-{n}"
                try:
                    answer = client.post(f"{base}/cases", json={"label": label, "case": CASE}, headers=headers)
                except httpx.HTTPError:
                    return  # the server is gone
                if answer.status_code == 201:
                    with lock:
                        acknowledged[answer.json()["id"]] = label
                n += 1

    writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in writers:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(server.pid, signal.SIGKILL)  # mid-load: the writers are still sending
    server.wait(10)
    stop.set()
    for thread in writers:
        thread.join(15)
    assert len(acknowledged) >= 60, log.read_text()[-2000:]

    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    server = _start(port, env, log)  # the database opens cleanly: the server gets ready on it
    try:
        with httpx.Client(timeout=30) as client:
            for number, label in acknowledged.items():
                answer = client.get(f"{base}/cases/{number}", headers=headers)  # the token survived too
                assert answer.status_code == 200 and answer.json()["label"] == label
            total = client.get(f"{base}/cases", params={"limit": 1}, headers=headers).json()["total"]
        assert total >= len(acknowledged)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
