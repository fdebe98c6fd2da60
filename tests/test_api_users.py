"""Users' administration and sign-in protection on SQLite and PostgreSQL: admins list, add, change
the role of, disable, enable and set the password of users (clinicians get 403, bad input a
problem naming the field); a disabled user's tokens stop working; refused sign-ins are recorded
(never the password), throttled per account and per address across app instances, and exported
as FHIR AuditEvents with outcome 4."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hipdx.cli import app as cli_app
from hipdx.store import signin
from hipdx.store.tables import SignInAttempt

from api_support import PASSWORD, Api, api, build_api, shared_api  # noqa: F401  (fixtures)
from conftest import CliRunner
from test_api import _problem

NEW_PASSWORD = "a quite different passphrase"
_ADMIN: dict[int, dict[str, str]] | None = None  # the admin's token per shared service (one sign-in each)


def _token(api: Api, username: str, password: str = PASSWORD, address: str | None = None) -> Any:
    headers = {"X-Forwarded-For": address} if address else {}
    return api.client.post("/api/v1/auth/token", json={"username": username, "password": password}, headers=headers)


def _events(api: Api, admin: dict[str, str]) -> list[dict[str, Any]]:
    answer = api.client.get("/api/v1/audit/events", headers=admin)
    assert answer.status_code == 200
    events = [entry["resource"] for entry in answer.json()["entry"]]
    for event in events:
        AuditEvent.model_validate(event)
    return events


def test_admins_manage_users_and_clinicians_cannot(api: Api) -> None:
    admin, clinician = api.sign_in("admin"), api.sign_in("clinician")
    for method, path, body in (("GET", "/api/v1/users", None), ("PATCH", "/api/v1/users/admin", {"active": False}),
                               ("PUT", "/api/v1/users/admin/password", {"password": NEW_PASSWORD}),
                               ("POST", "/api/v1/users", {"username": "x1", "password": PASSWORD, "role": "admin"})):
        _problem(api.client.request(method, path, json=body, headers=clinician), 403)

    created = api.client.post("/api/v1/users", json={"username": "dr.nurse", "password": PASSWORD, "role": "clinician"},
                              headers=admin)
    assert created.status_code == 201 and created.headers["location"] == "/api/v1/users/dr.nurse"
    nurse = api.sign_in("dr.nurse")
    listed = {u["username"]: u for u in api.client.get("/api/v1/users", headers=admin).json()["users"]}
    assert listed["dr.nurse"] == {**listed["dr.nurse"], "role": "clinician", "active": True, "live_tokens": 1}
    assert "password_hash" not in json.dumps(listed)

    promoted = api.client.patch("/api/v1/users/dr.nurse", json={"role": "admin"}, headers=admin)
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert api.client.get("/api/v1/me", headers=nurse).json()["role"] == "admin"  # the role is read per call

    disabled = api.client.patch("/api/v1/users/dr.nurse", json={"active": False}, headers=admin)
    assert disabled.status_code == 200 and disabled.json()["active"] is False and disabled.json()["live_tokens"] == 0
    _problem(api.client.get("/api/v1/me", headers=nurse), 401)  # the token stopped working at once
    _problem(_token(api, "dr.nurse"), 401)  # and a disabled user cannot sign in
    assert api.client.patch("/api/v1/users/dr.nurse", json={"active": True}, headers=admin).json()["active"] is True
    nurse = api.sign_in("dr.nurse")

    assert api.client.put("/api/v1/users/dr.nurse/password", json={"password": NEW_PASSWORD},
                          headers=admin).status_code == 204
    _problem(api.client.get("/api/v1/me", headers=nurse), 401)  # a new password ends the old sessions
    _problem(_token(api, "dr.nurse"), 401)
    assert _token(api, "dr.nurse", NEW_PASSWORD).status_code == 200

    # the changes are in the audit trail: who did what to whom, from where, with which outcome
    events = _events(api, admin)
    changes = [(e["action"], e["outcomeDesc"]) for e in events
               if e["id"].startswith("access") and e["entity"][0]["what"]["display"] == "User/dr.nurse"]
    assert ("C", "POST /api/v1/users -> 201") in changes
    assert changes.count(("U", "PATCH /api/v1/users/dr.nurse -> 200")) == 3
    assert ("U", "PUT /api/v1/users/dr.nurse/password -> 204") in changes
    assert all(e["agent"][0]["who"]["display"] == "admin" for e in events
               if e["id"].startswith("access") and e["entity"][0]["what"]["display"].startswith("User/") and e["outcome"] == "0")
    # and the clinician's four refused tries, first of all, each with its object and outcome 4 (refused)
    refused = [(e["agent"][0]["who"]["display"], e["action"], e["entity"][0]["what"]["display"], e["outcome"], e["outcomeDesc"])
               for e in events if e["id"].startswith("access") and e["outcomeDesc"].endswith("-> 403")]
    assert refused == [("clinician", "R", "User", "4", "GET /api/v1/users -> 403"),
                       ("clinician", "U", "User/admin", "4", "PATCH /api/v1/users/admin -> 403"),
                       ("clinician", "U", "User/admin", "4", "PUT /api/v1/users/admin/password -> 403"),
                       ("clinician", "C", "User", "4", "POST /api/v1/users -> 403")]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), [
    ("PATCH", "/api/v1/users/clinician", {"role": "nurse"}, 400, "body.role"),
    ("PATCH", "/api/v1/users/clinician", {"active": "no"}, 400, "body.active"),
    ("PATCH", "/api/v1/users/clinician", {}, 400, "body"),
    ("PATCH", "/api/v1/users/clinician", {"role": "admin", "colour": "red"}, 400, "body.colour"),
    ("PATCH", "/api/v1/users/clinician", [1], 400, "body"),
    ("PATCH", "/api/v1/users/nobody", {"active": False}, 404, "path.username"),
    ("PATCH", "/api/v1/users/bad%20name", {"active": False}, 400, "path.username"),
    ("PUT", "/api/v1/users/clinician/password", {"password": "short"}, 400, "body.password"),
    ("PUT", "/api/v1/users/clinician/password", {"password": 12345678901234}, 400, "body.password"),
    ("PUT", "/api/v1/users/clinician/password", {}, 400, "body.password"),
    ("PUT", "/api/v1/users/nobody/password", {"password": NEW_PASSWORD}, 404, "path.username"),
    ("POST", "/api/v1/users", {"username": "bad name", "password": PASSWORD, "role": "clinician"}, 400, "body.username"),
    # a name ending in a line break ("$" of the name's pattern matches before one): the routes could not name it
    ("POST", "/api/v1/users", {"username": "dr.new\n", "password": PASSWORD, "role": "clinician"}, 400, "body.username"),
    ("POST", "/api/v1/users", {"username": "ok", "password": PASSWORD, "role": "root"}, 400, "body.role"),
    ("POST", "/api/v1/users", {"username": "ok", "password": PASSWORD}, 400, "body.role"),
    # the last enabled admin cannot be disabled or demoted: nobody could administer any more
    ("PATCH", "/api/v1/users/admin", {"active": False}, 409, "body.active"),
    ("PATCH", "/api/v1/users/admin", {"role": "clinician"}, 409, "body.role"),
])
def test_bad_user_changes_are_problems_naming_the_field(shared_api: tuple[Api, dict[str, str]], method: str, path: str,
                                                        body: Any, status: int, field: str | None) -> None:
    api, _ = shared_api  # each change is refused: nothing changes between the cases
    global _ADMIN
    _ADMIN = _ADMIN or {}
    admin = _ADMIN.setdefault(id(api), api.sign_in("admin"))
    _problem(api.client.request(method, path, json=body, headers=admin), status, field)


def test_refused_sign_ins_are_recorded_and_exported_without_the_password(api: Api) -> None:
    _problem(_token(api, "clinician", "wrong " + PASSWORD, "10.9.8.7"), 401)
    _problem(_token(api, "nobody", PASSWORD, "10.9.8.7"), 401)
    api.context.session_cookie_secure = False
    assert api.client.post("/api/v1/auth/session", json={"username": "clinician", "password": "x" * 20}).status_code == 401
    admin = api.sign_in("admin")
    logins = [e for e in _events(api, admin) if e["id"].startswith("signin")]
    assert all(e["type"]["code"] == "110114" and e["subtype"][0]["code"] == "110122" for e in logins)
    refused = {(e["agent"][0]["who"]["display"], e["outcomeDesc"], e["agent"][0].get("network", {}).get("address"))
               for e in logins if e["outcome"] == "4"}
    assert refused == {("clinician", "sign-in refused: wrong-password (api-token)", "10.9.8.7"),
                       ("nobody", "sign-in refused: unknown-user (api-token)", "10.9.8.7"),
                       ("clinician", "sign-in refused: wrong-password (api-session)", "testclient")}
    assert any(e["outcome"] == "0" and e["agent"][0]["who"]["display"] == "admin" for e in logins)
    assert PASSWORD not in json.dumps(logins) and "x" * 20 not in json.dumps(logins)


def test_the_throttle_per_account_is_shared_by_two_app_instances(api: Api, tmp_path: Path, kb: Any) -> None:
    url = api.engine.url.render_as_string(hide_password=False)
    other = build_api(url, kb, tmp_path / "second", users=False)  # another worker on the same database
    try:
        for i in range(signin.MAX_FAILURES_PER_ACCOUNT):
            one = (api, other)[i % 2]
            _problem(_token(one, "clinician", "wrong password!", f"10.0.0.{i}"), 401)
        throttled = _token(other, "clinician", PASSWORD, "10.0.0.99")  # the right password, a new address
        _problem(throttled, 429)
        wait = int(throttled.headers["retry-after"])
        assert 0 < wait <= signin.WINDOW.total_seconds() + 1
        _problem(_token(api, "clinician", PASSWORD), 429)
        assert _token(api, "admin", PASSWORD).status_code == 200  # another account is not locked
        # the window passes (the refusals made older in the database): the account signs in again
        with Session(api.engine) as session, session.begin():
            session.execute(update(SignInAttempt).values(
                attempted_at=SignInAttempt.attempted_at - signin.WINDOW - dt.timedelta(seconds=1)))
        assert _token(api, "clinician", PASSWORD).status_code == 200
        with Session(api.engine) as session:
            outcomes = list(session.scalars(select(SignInAttempt.outcome).where(SignInAttempt.username == "clinician")))
        assert outcomes.count("wrong-password") == 5 and outcomes.count("throttled") == 2
    finally:
        other.context.jobs.shutdown(wait=True)
        other.engine.dispose()


def test_the_throttle_per_address_and_a_success_resets_the_account(api: Api) -> None:
    for _ in range(signin.MAX_FAILURES_PER_ACCOUNT - 1):
        _problem(_token(api, "clinician", "wrong password!"), 401)
    assert _token(api, "clinician", PASSWORD).status_code == 200  # a success: the account's count starts again
    for _ in range(signin.MAX_FAILURES_PER_ACCOUNT - 1):
        _problem(_token(api, "clinician", "wrong password!"), 401)
    assert _token(api, "clinician", PASSWORD).status_code == 200
    # many names tried from one address: all but the last refusal recorded directly (each costs an argon2 hash)
    now = dt.datetime.now(dt.timezone.utc)
    with Session(api.engine) as session, session.begin():
        for i in range(signin.MAX_FAILURES_PER_ADDRESS - 1):
            signin.record(session, f"guess{i}", "192.0.2.1", "api-token", "unknown-user", now)
    _problem(_token(api, "guess-last", "wrong password!", "192.0.2.1"), 401)
    _problem(_token(api, "admin", PASSWORD, "192.0.2.1"), 429)
    assert _token(api, "admin", PASSWORD, "192.0.2.2").status_code == 200


def test_web_sign_in_is_recorded_and_throttled(api: Api) -> None:
    for _ in range(signin.MAX_FAILURES_PER_ACCOUNT):
        page = api.client.post("/sign-in", data={"username": "clinician", "password": "wrong password!", "next": "/"},
                               follow_redirects=False)
        assert page.status_code == 401
    page = api.client.post("/sign-in", data={"username": "clinician", "password": PASSWORD, "next": "/"},
                           follow_redirects=False)
    assert page.status_code == 429 and int(page.headers["retry-after"]) > 0
    assert "Too many refused sign-ins" in page.text and PASSWORD not in page.text
    with Session(api.engine) as session:
        rows = list(session.scalars(select(SignInAttempt).where(SignInAttempt.channel == "web")))
    assert [r.outcome for r in rows] == ["wrong-password"] * 5 + ["throttled"]


def test_passwords_are_hashed_at_the_production_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests hash with a cheap argon2id (conftest); the service's own hasher is argon2id at RFC 9106's
    64 MiB, t=3, p=4, and a sign-in with a cheaper hash stores the password again at that cost."""
    from hipdx.store import connect, migrate, users
    from hipdx.store.tables import User

    from conftest import PRODUCTION_PASSWORD_HASHER

    production = "$argon2id$v=19$m=65536,t=3,p=4$"
    engine = connect(f"sqlite:///{tmp_path / 'users.db'}")
    migrate(engine)
    users.add_user(engine, "dr.cheap", PASSWORD, users.Role.clinician)  # the tests' hasher

    def stored(username: str) -> str:
        with Session(engine) as session:
            return session.scalars(select(User.password_hash).where(User.username == username)).one()

    assert not stored("dr.cheap").startswith(production)
    monkeypatch.setattr(users, "_HASHER", PRODUCTION_PASSWORD_HASHER)
    users.add_user(engine, "dr.lee", PASSWORD, users.Role.clinician)
    assert stored("dr.lee").startswith(production)
    assert users.sign_in(engine, "dr.cheap", PASSWORD, "bearer", dt.timedelta(hours=1)) is not None
    assert stored("dr.cheap").startswith(production)
    engine.dispose()


@pytest.mark.slow  # a migrated database and a dozen command runs
def test_user_administration_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(cli_app, ["db", *args, "--database-url", url], input=stdin, catch_exceptions=False)

    assert runner.invoke(cli_app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    assert run("user-add", "dr.lee", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n").exit_code == 0
    assert run("user-add", "dr.ray", "--password-stdin", stdin=PASSWORD + "\n").exit_code == 0
    assert run("user-role", "dr.ray", "--role", "admin").exit_code == 0
    assert run("user-disable", "dr.ray").exit_code == 0
    listed = run("users")
    assert listed.exit_code == 0 and "dr.ray\tadmin\tdisabled" in listed.output and "dr.lee\tadmin\tenabled" in listed.output
    last = run("user-disable", "dr.lee")
    assert last.exit_code == 2 and "last enabled admin" in last.output
    assert run("user-enable", "dr.ray").exit_code == 0
    assert run("user-password", "dr.ray", "--password-stdin", stdin=NEW_PASSWORD + "\n").exit_code == 0
    short = run("user-password", "dr.ray", "--password-stdin", stdin="short\n")
    assert short.exit_code == 2 and "at least 12" in short.output
    missing = run("user-disable", "nobody")
    assert missing.exit_code == 2 and "no user 'nobody'" in missing.output
    out = tmp_path / "audit.json"
    assert run("audit-export", "--out", str(out)).exit_code == 0
    changes = [e["resource"] for e in json.loads(out.read_text())["entry"]
               if e["resource"]["id"].startswith("access")]
    assert {(c["entity"][0]["what"]["display"], c["outcomeDesc"]) for c in changes} == {
        ("User/dr.ray", "CLI hipdx db user-role -> 200"), ("User/dr.ray", "CLI hipdx db user-disable -> 200"),
        ("User/dr.lee", "CLI hipdx db user-disable -> 409"), ("User/dr.ray", "CLI hipdx db user-enable -> 200"),
        ("User/dr.ray", "CLI hipdx db user-password -> 200"), ("User/dr.ray", "CLI hipdx db user-password -> 400"),
        ("User/nobody", "CLI hipdx db user-disable -> 404")}
    assert all(c["agent"][0]["who"]["display"].startswith("os:") for c in changes)


def test_a_clients_own_forwarded_address_is_not_believed(tmp_path: Path, kb: Any) -> None:
    """Only a trusted proxy's X-Forwarded-For names the client (the default trusts loopback only):
    otherwise a client could choose the address the audit trail records and the throttle counts."""
    untrusted = build_api(f"sqlite:///{tmp_path / 'proxies.db'}", kb, tmp_path, trusted_proxies=("127.0.0.1", "::1"))
    try:
        _problem(_token(untrusted, "nobody", "wrong password!", "192.0.2.50"), 401)
        with Session(untrusted.engine) as session:
            addresses = {row.source_address for row in session.scalars(
                select(SignInAttempt).where(SignInAttempt.username == "nobody"))}
        assert addresses == {"testclient"}  # the peer's own address, not the header's
    finally:
        untrusted.context.jobs.shutdown(wait=True)
        untrusted.engine.dispose()
    trusted = build_api(f"sqlite:///{tmp_path / 'proxied.db'}", kb, tmp_path)  # the test client as the proxy
    try:
        _problem(_token(trusted, "nobody", "wrong password!", "192.0.2.50"), 401)
        with Session(trusted.engine) as session:
            assert {row.source_address for row in session.scalars(
                select(SignInAttempt).where(SignInAttempt.username == "nobody"))} == {"192.0.2.50"}
    finally:
        trusted.context.jobs.shutdown(wait=True)
        trusted.engine.dispose()
