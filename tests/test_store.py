"""The audit store: migrations up and down, and the CDS service recording its calls and feedback.

Runs on SQLite always, and on PostgreSQL (127.0.0.1:5432, database test, or HIPDX_TEST_DATABASE_URL)
when it answers, each run in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect

import hipdx
from hipdx.cli import app as cli_app
from hipdx.errors import IntegrationError
from hipdx.service import ServiceConfig, create_app
from hipdx.service.hooks import SERVICE_ID
from hipdx.store import AuditStore, connect, is_current, migrate

from conftest import TODAY, CliRunner, in_ci
from test_service import issuers_file, keys, request_for  # noqa: F401 - fixtures

POSTGRES = os.environ.get("HIPDX_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_schema() -> Iterator[str]:
    import psycopg

    plain = POSTGRES.replace("postgresql+psycopg://", "postgresql://")
    try:
        admin = psycopg.connect(plain, connect_timeout=3, autocommit=True)
    except psycopg.Error as exc:
        if in_ci():  # CI starts PostgreSQL (.ci/run): absent there is a failure
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES} in CI: {type(exc).__name__}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES}: {type(exc).__name__}")
    schema = f"hipdx_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        yield from _postgres_schema()


def test_migrations_up_and_down(database_url: str) -> None:
    engine = connect(database_url)
    assert not is_current(engine)
    migrate(engine)
    assert is_current(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"cds_call", "cds_card_feedback", "sign_in_attempt", "app_user", "smart_launch"} <= tables
    assert "cds_feedback" not in tables  # obsolete since 0003, dropped by 0004
    assert "heartbeat_at" in {c["name"] for c in inspect(engine).get_columns("mri_job")}
    migrate(engine)  # idempotent
    migrate(engine, "0003")  # 0004 down: the old table comes back (empty), the new ones go
    tables = set(inspect(engine).get_table_names())
    assert "cds_feedback" in tables and "sign_in_attempt" not in tables
    assert "heartbeat_at" not in {c["name"] for c in inspect(engine).get_columns("mri_job")}
    assert {i["name"] for i in inspect(engine).get_indexes("cds_feedback")} == {
        "ix_cds_feedback_recorded_at", "ix_cds_feedback_card_uuid"}
    migrate(engine)  # and up again
    assert is_current(engine) and "cds_feedback" not in set(inspect(engine).get_table_names())
    migrate(engine, "base")
    assert not {"cds_call", "cds_feedback", "cds_card_feedback", "sign_in_attempt"} & set(inspect(engine).get_table_names())
    engine.dispose()


def test_the_service_records_calls_and_feedback(database_url: str, kb: hipdx.KnowledgeBase) -> None:
    engine = connect(database_url)
    migrate(engine)
    store = AuditStore(engine, hipdx.__version__, kb.digest)
    client = TestClient(
        create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, store=store), kb)
    )
    body = request_for("septic_febrile_crp_mg_dl")
    card = client.post(f"/cds-services/{SERVICE_ID}", json=body).json()["cards"][0]
    assert (
        client.post(
            f"/cds-services/{SERVICE_ID}", content="{bad", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-25T12:00:00Z",
                "overrideReason": {
                    "reason": {
                        "system": "http://example.org/override",
                        "code": "already-aspirated",
                        "display": "Already aspirated",
                    }
                },
            },
            {"outcome": "accepted"},  # no card: the request is refused, nothing of it stored
        ]
    }
    assert client.post(f"/cds-services/{SERVICE_ID}/feedback", json=feedback).status_code == 400
    assert store.card_feedback() == []
    feedback["feedback"].pop()
    assert client.post(f"/cds-services/{SERVICE_ID}/feedback", json=feedback).status_code == 200
    calls = store.calls()
    assert [c.status_code for c in calls] == [200, 400, 400, 200]  # newest first: feedback, bad feedback, bad request, the card
    answered = calls[3]
    assert (
        answered.hook_instance == body["hookInstance"] and answered.patient == f"Patient/{body['context']['patientId']}"
    )
    assert (answered.cards, answered.indicator, answered.card_uuid) == (1, "critical", card["uuid"])
    assert answered.knowledge_base_digest == kb.digest and answered.latency_ms > 0
    [stored] = store.card_feedback()
    assert (stored.service_id, stored.card_uuid, stored.outcome, stored.override_reason_code, stored.override_reason_display) == (
        SERVICE_ID,
        card["uuid"],
        "overridden",
        "already-aspirated",
        "Already aspirated",
    )
    engine.dispose()



def test_a_cds_call_records_the_user_who_triggered_it(database_url: str, kb: hipdx.KnowledgeBase) -> None:
    """Who, in the audit trail of a CDS call: the EHR (the token's issuer) and the clinician in whose
    chart the hook fired (context.userId, required by patient-view and the order hooks). Before, only
    the EHR was recorded: the trail could not say which user's chart view sent a patient's data to hipdx."""
    from fhir.resources.R4B.auditevent import AuditEvent

    from hipdx.service.api.auditevent import cds_auditevent

    engine = connect(database_url)
    migrate(engine)
    store = AuditStore(engine, hipdx.__version__, kb.digest)
    client = TestClient(
        create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, store=store), kb)
    )
    body = request_for("toh_man_classic")
    body["context"]["userId"] = "PractitionerRole/dr-lee-ortho"
    assert client.post(f"/cds-services/{SERVICE_ID}", json=body).status_code == 200
    [call] = store.calls()
    assert call.user_ref == "PractitionerRole/dr-lee-ortho"
    event = cds_auditevent(call)
    AuditEvent.model_validate(event)
    [user] = [a for a in event["agent"] if a["who"].get("reference") == "PractitionerRole/dr-lee-ortho"]
    assert user["requestor"] is True
    [ehr] = [a for a in event["agent"] if a is not user]
    assert ehr["requestor"] is False and ehr["who"]["display"] == "(no JWT)"
    engine.dispose()

def test_a_failing_store_does_not_fail_the_call(tmp_path: Path, kb: hipdx.KnowledgeBase) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no tables: every write fails
    store = AuditStore(engine, hipdx.__version__, kb.digest)
    client = TestClient(
        create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, store=store), kb)
    )
    assert client.post(f"/cds-services/{SERVICE_ID}", json=request_for("toh_man_classic")).status_code == 200


def test_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(cli_app, ["db", "upgrade", "--database-url", url], catch_exceptions=False)
    assert result.exit_code == 0 and "current schema" in result.output
    assert is_current(connect(url))
    missing = CliRunner().invoke(cli_app, ["db", "upgrade"], catch_exceptions=False, env={"HIPDX_DATABASE_URL": ""})
    assert missing.exit_code == 2 and "give --database-url" in missing.output


def test_serve_refuses_a_database_not_upgraded(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["serve", "--insecure-no-auth", "--database-url", f"sqlite:///{tmp_path / 'new.db'}"],
        catch_exceptions=False,
    )
    assert result.exit_code == 2 and "create it with `hipdx db upgrade --database-url" in result.output
    assert not (tmp_path / "new.db").exists()  # not created empty by connecting


def test_an_unusable_url_is_a_clear_error() -> None:
    with pytest.raises(IntegrationError, match="database URL not usable"):
        connect("nonsense://")


def test_calls_recorded_at_once_share_commits_and_a_racing_replay_is_refused(database_url: str) -> None:
    """Group commit (hipdx.store.commit): 24 threads record a call each, two of them with the same
    token's jti; every call is recorded, one of the two is refused (False), and the jti check of a
    call in flight reads the database, so a token already recorded is refused before any work."""
    import threading
    import time

    from hipdx.store import CallRecord
    from hipdx.store.replay import PENDING_JTI, DatabaseReplayCache, seen_jti_row

    engine = connect(database_url)
    migrate(engine)
    store = AuditStore(engine, "test", "digest")
    until = time.time() + 300
    results: dict[int, bool] = {}
    start = threading.Barrier(24)

    def call(n: int) -> None:
        start.wait()
        jti = "same" if n in (3, 17) else f"jti-{n}"
        record = CallRecord(method="POST", path="/cds-services/x", status_code=200, latency_ms=1.0, jti=jti)
        results[n] = store.record_call(record, jti=[seen_jti_row("https://ehr", jti, until)])

    threads = [threading.Thread(target=call, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(n for n, ok in results.items() if not ok) in ([3], [17])
    assert len(results) == 24 and len(store.calls(limit=100)) == 23  # the refused call left no row (the service records its 401)
    cache = DatabaseReplayCache(engine)
    pending: list[dict[str, object]] = []
    opened = PENDING_JTI.set(pending)
    try:
        assert cache.first_use("https://ehr", "jti-5", until, time.time()) is False  # recorded above: refused at once
        assert cache.first_use("https://ehr", "fresh", until, time.time()) is True
    finally:
        PENDING_JTI.reset(opened)
    assert [p["jti"] for p in pending] == ["fresh"]  # left for the call's record, not yet written
    assert cache.first_use("https://ehr", "fresh", until, time.time()) is True  # outside a call: written at once
    assert cache.first_use("https://ehr", "fresh", until, time.time()) is False
    engine.dispose()


def test_a_replay_racing_past_the_check_is_refused_when_its_jti_is_committed(
    database_url: str, kb: hipdx.KnowledgeBase, issuers_file: Path, keys: dict[str, object]
) -> None:
    """Two calls with one token, both past the jti read (as two workers at the same instant): the first
    is answered, the second refused 401 at the commit of its record, and both calls are recorded."""
    from hipdx.service import IssuerList
    from hipdx.store.replay import PENDING_JTI, seen_jti_row

    from test_service import URL, token

    class PastTheRead:  # the read of DatabaseReplayCache, as if the other call had not committed yet
        def first_use(self, issuer: str, jti: str, until: float, now: float) -> bool:
            pending = PENDING_JTI.get()
            assert pending is not None  # the service records its calls: the jti goes with the record
            pending.append(seen_jti_row(issuer, jti, until))
            return True

    engine = connect(database_url)
    migrate(engine)
    store = AuditStore(engine, hipdx.__version__, kb.digest)
    issuers = IssuerList.from_file(issuers_file)
    issuers.replay = PastTheRead()
    client = TestClient(create_app(ServiceConfig(issuers=issuers, today=lambda: TODAY, store=store), kb))
    headers = {"Authorization": f"Bearer {token(keys, aud=URL)}"}
    body = request_for("toh_man_classic")
    first = client.post(f"/cds-services/{SERVICE_ID}", json=body, headers=headers)
    again = client.post(f"/cds-services/{SERVICE_ID}", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 401) and again.content == b""
    assert [c.status_code for c in store.calls()] == [401, 200]
    assert store.calls()[0].cards is None  # the refused call is recorded without the card it did not get
    engine.dispose()


def test_connections_held_at_once_are_kept_not_reopened(database_url: str) -> None:
    """16 threads holding a connection at once (16 CDS calls reading their jti), twice: the second
    time every connection comes from the pool. SQLAlchemy's default pool kept 5 and closed the
    others, so a worker under load opened a connection for about one call in three (a PostgreSQL
    backend started and stopped each time)."""
    import threading

    from sqlalchemy import event, text

    engine = connect(database_url)
    opened: list[object] = []
    event.listen(engine, "connect", lambda connection, record: opened.append(connection))

    def burst() -> None:
        together = threading.Barrier(16)

        def hold() -> None:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                together.wait(30)

        threads = [threading.Thread(target=hold) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    burst()
    assert len(opened) == 16
    burst()
    assert len(opened) == 16  # none opened again
    engine.dispose()
