"""Building the service with its REST API on a real database (SQLite, and PostgreSQL in a schema
of its own), with a clinician and an admin, for the API tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

import hipdx
from hipdx.service import ServiceConfig, create_app
from hipdx.service.api.context import ApiContext
from hipdx.store import AuditStore, connect, migrate
from hipdx.store.users import Role, add_user, sign_in

from conftest import TODAY
from test_store import _postgres_schema

PASSWORD = "correct horse battery staple"


@dataclass
class Api:
    client: TestClient
    engine: Engine
    context: ApiContext
    #: (user, kind) -> a live token issued into the database before the test (the SQLite template's)
    issued: dict[tuple[str, str], str] = field(default_factory=dict)

    def sign_in(self, username: str = "clinician", *, fresh: bool = False) -> dict[str, str]:
        """A bearer token's header: one issued before the test when there is one (argon2 is the
        cost of a sign-in), else (or ``fresh``) signed in through POST /api/v1/auth/token."""
        if not fresh and (username, "bearer") in self.issued:
            return {"Authorization": f"Bearer {self.issued[(username, 'bearer')]}"}
        answer = self.client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'hipdx.db'}"
    else:
        yield from _postgres_schema()


#: an embedded database migrated (and with its users) once per session, copied for each test: the
#: migrations and two argon2 hashes are the cost of a test otherwise (PostgreSQL migrates each time)
_SQLITE_TEMPLATES: dict[bool, bytes] = {}
#: a browser session and a bearer token of each user, signed in once into the template with users
_SQLITE_TOKENS: dict[tuple[str, str], str] = {}
TOKEN_LIFETIME = dt.timedelta(hours=1)


def _migrated(engine: Engine, users: bool) -> None:
    migrate(engine)
    if users:
        add_user(engine, "clinician", PASSWORD, Role.clinician)
        add_user(engine, "admin", PASSWORD, Role.admin)


def _sqlite_copy(url: str, users: bool) -> bool:
    """Write a migrated SQLite database at ``url`` from the session's template; False if not SQLite or present."""
    path = Path(url.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or path.exists():
        return False
    if users not in _SQLITE_TEMPLATES:
        template = path.with_name(f"template-{users}.db")
        engine = connect(f"sqlite:///{template}")
        _migrated(engine, users)
        if users:
            for username in ("clinician", "admin"):
                for kind in ("session", "bearer"):
                    _SQLITE_TOKENS[(username, kind)] = sign_in(engine, username, PASSWORD, kind, TOKEN_LIFETIME)
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        _SQLITE_TEMPLATES[users] = template.read_bytes()
        template.unlink()
    path.write_bytes(_SQLITE_TEMPLATES[users])
    return True


def build_api(url: str, kb: hipdx.KnowledgeBase, tmp_path: Path, users: bool = True, **config: Any) -> Api:
    copied = _sqlite_copy(url, users)
    engine = connect(url)
    if not copied:
        _migrated(engine, users)
    context = ApiContext(engine=engine, kb=kb, secret=b"s" * 32, upload_dir=tmp_path / "uploads",
                         today=lambda: TODAY, token_lifetime=TOKEN_LIFETIME)
    # the test client stands for a trusted reverse proxy, so tests can give a client's address in X-Forwarded-For
    config = {"issuers": None, "insecure_no_auth": True, "trusted_proxies": ("testclient",), **config}
    app = create_app(ServiceConfig(today=lambda: TODAY, store=AuditStore(engine, hipdx.__version__, kb.digest),
                                   api=context, **config), kb)
    issued = dict(_SQLITE_TOKENS) if copied and users else {}
    return Api(TestClient(app, raise_server_exceptions=False), engine, context, issued)


#: the embedded database in the fast suite; PostgreSQL too in `make test` (docs/testing.md)
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


def served(kind: str, folder: Path, kb: hipdx.KnowledgeBase, *, plain_http: bool = False) -> Iterator[Api]:
    """The service on a database of ``kind`` (``sqlite`` or ``postgresql``) in ``folder``, shut down after;
    ``plain_http``: its session cookie without the Secure flag (the test client speaks plain HTTP)."""
    for url in database(kind, folder):
        built = build_api(url, kb, folder)
        built.context.session_cookie_secure = not plain_http
        try:
            yield built
        finally:
            built.context.jobs.shutdown(wait=True)
            built.engine.dispose()


@pytest.fixture(params=DATABASES)
def api(request: pytest.FixtureRequest, tmp_path: Path, kb: hipdx.KnowledgeBase) -> Iterator[Api]:
    yield from served(request.param, tmp_path, kb)


@pytest.fixture(scope="module", params=DATABASES)
def shared_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               kb: hipdx.KnowledgeBase) -> Iterator[tuple[Api, dict[str, str]]]:
    """One service per module and database, signed in once: for tests that only read or refuse."""
    for built in served(request.param, tmp_path_factory.mktemp(f"api-{request.param}"), kb):
        yield built, built.sign_in()
