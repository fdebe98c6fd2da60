"""Every audit event of a period exported, exactly once, in order, whatever the size of the trail
(hipdx.store.trail, ``hipdx db audit-export``, ``GET /api/v1/audit/events``), on SQLite and
PostgreSQL.

Before this, the command line exported at most 100,000 events of each kind and the API at most
its ``limit``, the older ones left out without a word. The trail is now read in keyset batches;
the tests give a batch or a page smaller than the trail and count the queries the database
answered (a real engine's ``before_cursor_execute``), never the time.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.orm import Session

from hipdx.cli import app as cli_app
from hipdx.errors import InputError
from hipdx.store import connect, migrate
from hipdx.store.models import CdsCall
from hipdx.store.tables import AccessEvent, SignInAttempt
from hipdx.store.trail import KINDS, TrailKey, trail

from conftest import CliRunner

from api_support import Api, api  # noqa: F401  (fixture)
from test_api import _problem
from test_store import database_url  # noqa: F401 - fixture (SQLite and PostgreSQL)

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
TABLES = {"access": (AccessEvent, "recorded_at"), "cds": (CdsCall, "recorded_at"), "signin": (SignInAttempt, "attempted_at")}


def _rows(kind: str, minutes: list[float]) -> list[dict[str, Any]]:
    """Rows of one table recorded ``minutes`` after T0 (a repeated minute: events at the same instant)."""
    at = [T0 + dt.timedelta(minutes=m) for m in minutes]
    if kind == "access":
        return [{"recorded_at": t, "username": "clinician", "role": "clinician", "action": "R", "what": f"Case/{i}",
                 "method": "GET", "path": f"/api/v1/cases/{i}", "status_code": 200, "source_address": None}
                for i, t in enumerate(at)]
    if kind == "cds":
        return [{"recorded_at": t, "method": "POST", "path": "/cds-services/hipdx-patient-view", "status_code": 200,
                 "latency_ms": 1.0, "patient": f"Patient/{i}", "hipdx_version": "test", "knowledge_base_digest": "test"}
                for i, t in enumerate(at)]
    return [{"attempted_at": t, "username": f"user{i}", "source_address": None, "channel": "api-token",
             "outcome": "wrong-password"} for i, t in enumerate(at)]


def _seed(engine: Engine, **minutes: list[float]) -> None:
    with Session(engine) as session, session.begin():
        for kind, values in minutes.items():
            session.execute(insert(TABLES[kind][0]), _rows(kind, values))


def _expected(engine: Engine, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list[str]:
    """The AuditEvent ids of the period in the trail's order, read here with plain queries."""
    found = []
    with Session(engine) as session:
        for rank, kind in enumerate(KINDS):
            table, column = TABLES[kind]
            for row_id, at in session.execute(select(table.id, getattr(table, column))):
                at = at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
                if (since is None or at >= since) and (until is None or at < until):
                    found.append((at, rank, row_id, f"{kind}-{row_id}"))
    return [name for *_, name in sorted(found)]


def _count_reads(engine: Engine) -> list[str]:
    """The statements the database is sent from now on, for the tables of the trail."""
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _sent(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            sent.extend(kind for kind, (table, _) in TABLES.items() if f"FROM {table.__tablename__}" in statement)

    return sent


def test_the_trail_is_read_whole_in_order_in_bounded_batches(database_url: str) -> None:  # noqa: F811
    engine = connect(database_url)
    migrate(engine)
    # interleaved kinds, events at the same instant within a kind and across kinds
    _seed(engine, access=[5, 1, 3, 3, 9, 2, 7], cds=[3, 0, 8, 3, 6], signin=[3, 4, 4, 10, 0, 1])
    expected = _expected(engine)
    reads = _count_reads(engine)
    events = list(trail(engine, batch=2))
    assert [f"{e.kind}-{e.row.id}" for e in events] == expected  # every event once, in order
    assert len(expected) == 18 and [e.key for e in events] == sorted({e.key for e in events})
    # 7, 5 and 6 rows in batches of 2: 4 + 3 + 4 queries (the last of a full table finds 0 rows)
    assert reads.count("access") == 4 and reads.count("cds") == 3 and reads.count("signin") == 4

    reads.clear()
    lazily = trail(engine, batch=2)
    first = [next(lazily) for _ in range(3)]
    assert [f"{e.kind}-{e.row.id}" for e in first] == expected[:3]
    assert sorted(reads) == ["access", "cds", "signin"]  # one batch a table in memory, not the trail

    since, until = T0 + dt.timedelta(minutes=3), T0 + dt.timedelta(minutes=8)
    assert [f"{e.kind}-{e.row.id}" for e in trail(engine, since, until, batch=3)] == _expected(engine, since, until)
    for cut in (0, 4, 5, 11, 17):  # a reader resumes after any event: the rest, nothing twice
        after = TrailKey.parse(events[cut].key.token())
        assert after == events[cut].key
        assert [f"{e.kind}-{e.row.id}" for e in trail(engine, after=after, batch=2)] == expected[cut + 1:]
    with pytest.raises(InputError, match="next link"):
        TrailKey.parse("2026-03-01T08:00:00.000000Z~nothing~1")
    engine.dispose()


def _page(api: Api, admin: dict[str, str], url: str) -> dict[str, Any]:
    answer = api.client.get(url, headers=admin)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_api_pages_with_next_links_to_every_event(api: Api) -> None:  # noqa: F811
    admin = api.sign_in("admin")
    _seed(api.engine, access=[float(m % 9) for m in range(14)], cds=[2, 2, 5], signin=[0, 2, 8, 8, 8, 1])
    expected = _expected(api.engine)
    pages, url = [], "/api/v1/audit/events?_count=5"
    while url:
        bundle = _page(api, admin, url)
        Bundle.model_validate(bundle)
        pages.append([e["resource"]["id"] for e in bundle.get("entry", [])])
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        url = links.get("next")
        assert bundle["type"] == "searchset" and (url is None or len(pages[-1]) == 5)  # a cut page says so
    read = [name for page in pages for name in page]
    assert [name for name in read if name in expected] == expected  # every event, once, oldest first
    # and the reads of the earlier pages, each recorded as it happened (now, after the seeded events)
    assert read[len(expected):] == [f"access-{15 + i}" for i in range(len(read) - len(expected))] and len(read) > len(expected)
    assert len(pages) == -(-len(read) // 5)

    since, until = (T0 + dt.timedelta(minutes=2)).isoformat(), (T0 + dt.timedelta(minutes=8)).isoformat()
    first = _page(api, admin, f"/api/v1/audit/events?_count=4&since={since}&until={until}".replace("+", "%2B"))
    link = {lk["relation"]: lk["url"] for lk in first["link"]}["next"]
    assert parse_qs(urlsplit(link).query)["since"] == [since] and parse_qs(urlsplit(link).query)["_count"] == ["4"]
    second = _page(api, admin, link[link.index("/api/"):])
    for event in first["entry"] + second["entry"]:
        AuditEvent.model_validate(event["resource"])
    window = _expected(api.engine, T0 + dt.timedelta(minutes=2), T0 + dt.timedelta(minutes=8))
    assert [e["resource"]["id"] for e in first["entry"] + second["entry"]] == window[:8]

    api.context.public_url = "https://hipdx.example.org/"  # behind a proxy: the links a client can follow
    proxied = {lk["relation"]: lk["url"] for lk in _page(api, admin, "/api/v1/audit/events?_count=2")["link"]}
    assert proxied["next"].startswith("https://hipdx.example.org/api/v1/audit/events?_count=2&cursor=")
    api.context.public_url = None
    _problem(api.client.get("/api/v1/audit/events?cursor=12", headers=admin), 400, "query.cursor")
    _problem(api.client.get(f"/api/v1/audit/events?cursor=2026-03-01T08:00:00.000000Z~cds~{'9' * 30}",
                            headers=admin), 400, "query.cursor")
    _problem(api.client.get("/api/v1/audit/events?since=0001-01-01T00:00:00%2B05:00", headers=admin), 400, "query.since")
    _problem(api.client.get(f"/api/v1/audit/events?since={until}&until={since}".replace("+", "%2B"), headers=admin),
             400, "query.until")
    _problem(api.client.get("/api/v1/audit/events?_count=0", headers=admin), 400, "query._count")
    _problem(api.client.get("/api/v1/audit/events?limit=10", headers=admin), 400, "query.limit")  # the old cut


def test_each_page_read_through_the_api_is_recorded_with_its_period(api: Api) -> None:  # noqa: F811
    """Before, reading the audit trail left no trace: an admin could read it unseen."""
    admin = api.sign_in("admin")
    _seed(api.engine, access=[0.0, 1.0, 2.0])
    _page(api, admin, "/api/v1/audit/events?_count=2&since=2026-03-01T08:00:00Z&until=2026-03-01T10:00:00%2B01:00")
    with api.engine.connect() as connection:
        rows = list(connection.execute(select(AccessEvent).where(AccessEvent.path == "/api/v1/audit/events")))
    assert [(r.username, r.role, r.action, r.method, r.status_code) for r in rows] == [("admin", "admin", "R", "GET", 200)]
    assert rows[0].what == "AuditEvent: 2026-03-01T08:00:00Z to 2026-03-01T09:00:00Z, 2 events, more follow"
    assert rows[0].source_address  # from where: the client's address
    answer = api.client.get("/api/v1/audit/events", headers=api.sign_in("clinician"))
    assert answer.status_code == 403


def test_a_refused_read_of_the_trail_is_recorded_and_exported(api: Api) -> None:  # noqa: F811
    """Before, a clinician's refused read of the trail (403) left no row: trying to read it unseen was itself unseen."""
    clinician = api.sign_in("clinician") | {"X-Forwarded-For": "10.6.6.6"}
    _problem(api.client.get("/api/v1/audit/events?_count=5", headers=clinician), 403)
    _problem(api.client.patch("/api/v1/users/admin", json={"role": "clinician"}, headers=clinician), 403)  # an admin route alike
    with api.engine.connect() as connection:
        rows = list(connection.execute(select(AccessEvent).where(AccessEvent.status_code == 403)))
    assert [(r.username, r.role, r.action, r.what, r.method, r.path, r.source_address) for r in rows] == [
        ("clinician", "clinician", "R", "AuditEvent", "GET", "/api/v1/audit/events", "10.6.6.6"),
        ("clinician", "clinician", "U", "User/admin", "PATCH", "/api/v1/users/admin", "10.6.6.6")]
    assert all(r.recorded_at is not None for r in rows)  # when
    answer = api.client.get("/api/v1/audit/events", headers=api.sign_in("admin"))
    assert answer.status_code == 200
    refused = [e["resource"] for e in answer.json()["entry"] if e["resource"]["outcome"] != "0"]
    for event in refused:
        AuditEvent.model_validate(event)
    attempt = refused[0]  # FHIR audit-event-outcome 4 "Minor failure" (an HTTP 4xx), as a refused sign-in
    assert (attempt["action"], attempt["outcome"], attempt["outcomeDesc"]) == ("R", "4", "GET /api/v1/audit/events -> 403")
    assert attempt["agent"][0]["who"]["display"] == "clinician" and attempt["agent"][0]["network"]["address"] == "10.6.6.6"
    assert attempt["entity"][0]["what"]["display"] == "AuditEvent"
    assert [(e["action"], e["entity"][0]["what"]["display"]) for e in refused] == [("R", "AuditEvent"), ("U", "User/admin")]


def test_the_command_line_exports_every_event_of_the_period(database_url: str, tmp_path: Path) -> None:  # noqa: F811
    engine = connect(database_url)
    migrate(engine)
    # more access events than one batch (500): the export reads three batches of them
    day = 24 * 60.0
    _seed(engine, access=[i * 0.01 for i in range(1201)] + [day + 1, 2 * day + 1],
          cds=[0.005, day + 2], signin=[-day, 0.0, 2 * day])
    expected = _expected(engine)
    engine.dispose()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli_app, ["db", "audit-export", *args, "--database-url", database_url],
                                  catch_exceptions=False)

    out = tmp_path / "all.json"
    result = run("--out", str(out))
    assert result.exit_code == 0, result.output
    bundle = json.loads(out.read_text())
    assert [e["resource"]["id"] for e in bundle["entry"]] == expected and len(expected) == 1208
    assert "wrote 1208 AuditEvents (1203 accesses, 2 CDS calls, 3 sign-in attempts) from the first event" in result.output

    march_1 = tmp_path / "march-1.json"
    assert run("--out", str(march_1), "--since", "2026-03-01", "--until", "2026-03-02").exit_code == 0
    engine = connect(database_url)
    window = _expected(engine, T0.replace(hour=0), T0.replace(hour=0) + dt.timedelta(days=2))
    engine.dispose()
    assert [e["resource"]["id"] for e in json.loads(march_1.read_text())["entry"]] == window  # both days, whole
    empty = tmp_path / "empty.json"
    assert run("--out", str(empty), "--until", "2020-01-01").exit_code == 0
    Bundle.model_validate(json.loads(empty.read_text()))  # no entry: no empty array either

    for args, said in ((("--since", "2026-02-30"), "--since '2026-02-30' is not a date YYYY-MM-DD"),
                       (("--since", "2026-03-02", "--until", "2026-03-01"), "--until 2026-03-01 is before --since"),
                       (("--since", "2999-01-01"), "in the future")):
        refused = run("--out", str(tmp_path / "refused.json"), *args)
        assert refused.exit_code == 2 and said in refused.output and not (tmp_path / "refused.json").exists()


@pytest.mark.slow
def test_more_than_a_hundred_thousand_events_of_one_kind_are_all_exported(database_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The defect as found: the command line stopped at 100,000 events of a kind, silently."""
    engine = connect(database_url)
    migrate(engine)
    _seed(engine, access=[i / 1000 for i in range(100_001)])
    engine.dispose()
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(cli_app, ["db", "audit-export", "--out", str(out), "--database-url", database_url],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ids = [e["resource"]["id"] for e in json.loads(out.read_text())["entry"]]
    assert len(ids) == 100_001 and ids[0] == "access-1" and ids[-1] == "access-100001" and len(set(ids)) == len(ids)


def test_reading_the_trail_is_itself_recorded(database_url: str, tmp_path: Path) -> None:  # noqa: F811
    """Who exported the audit trail, when, which period: recorded as any other read, and in the next export.
    Before, an export left no trace of itself."""
    engine = connect(database_url)
    migrate(engine)
    _seed(engine, access=[0.0, 1.0], signin=[0.5])
    engine.dispose()

    def export(name: str, *args: str) -> dict[str, Any]:
        result = CliRunner().invoke(cli_app, ["db", "audit-export", "--out", str(tmp_path / name), *args,
                                              "--database-url", database_url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / name).read_text())

    first = export("march.json", "--since", "2026-03-01", "--until", "2026-03-01")
    assert len(first["entry"]) == 3  # the export does not contain its own record
    engine = connect(database_url)
    with engine.connect() as connection:
        [row] = list(connection.execute(select(AccessEvent).where(AccessEvent.path == "hipdx db audit-export")))
    engine.dispose()
    assert row.action == "R" and row.username.startswith("os:") and row.method == "CLI" and row.status_code == 200
    assert row.what == "AuditEvent: 2026-03-01T00:00:00Z to 2026-03-02T00:00:00Z, 3 events"
    later = export("all.json")
    [recorded] = [e["resource"] for e in later["entry"]
                  if e["resource"].get("entity", [{}])[0].get("what", {}).get("display", "").startswith("AuditEvent")]
    AuditEvent.model_validate(recorded)
    assert recorded["action"] == "R" and recorded["agent"][0]["who"]["display"] == row.username
    assert recorded["outcomeDesc"] == "CLI hipdx db audit-export -> 200"
