"""Retention of the sign-in attempts (hipdx.store.signin, ``hipdx db audit-prune-sign-ins``).

The attempts are audit records (exported as FHIR AuditEvents), so nothing deletes them but this
explicit command, which archives first and deletes only what it archived. Runs on SQLite and on
PostgreSQL (the ``database_url`` fixture of test_store).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import select
from sqlalchemy.orm import Session

from hipdx.cli import app as cli_app
from hipdx.errors import InputError
from hipdx.store import connect, migrate, signin
from hipdx.store.records import access_events
from hipdx.store.tables import SignInAttempt

from conftest import CliRunner

from test_store import database_url  # noqa: F401 - fixture (SQLite and PostgreSQL)

NOW = dt.datetime.now(dt.timezone.utc)


def _add(engine, *ages: dt.timedelta) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as session, session.begin():
        for i, age in enumerate(ages):
            signin.record(session, f"user{i}", "192.0.2.7", "api-token", "wrong-password", NOW - age)


def _left(engine) -> list[dt.timedelta]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        times = session.scalars(select(SignInAttempt.attempted_at).order_by(SignInAttempt.id))
        return [NOW - (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)) for t in times]


def test_prune_archives_then_deletes_only_the_old_attempts(database_url: str, tmp_path: Path) -> None:  # noqa: F811
    engine = connect(database_url)
    migrate(engine)
    day = dt.timedelta(days=1)
    # ids interleave old and recent attempts: the ranges deleted must skip the recent ones
    _add(engine, 40 * day, 35 * day, dt.timedelta(minutes=1), 31 * day, 2 * day, dt.timedelta(seconds=5))
    archive = tmp_path / "sign-ins-archive.ndjson"

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli_app, ["db", "audit-prune-sign-ins", *args, "--database-url", database_url],
                                  catch_exceptions=False)

    result = run("--older-than-days", "30", "--archive", str(archive))
    assert result.exit_code == 0, result.output
    assert "archived 3 sign-in attempts" in result.output and "deleted 3" in result.output
    events = [json.loads(line) for line in archive.read_text().splitlines()]
    for event in events:
        AuditEvent.model_validate(event)  # the same AuditEvents as the export
    assert [e["agent"][0]["who"]["display"] for e in events] == ["user0", "user1", "user3"]
    assert all(e["outcome"] == "4" for e in events)
    left = _left(engine)
    assert len(left) == 3 and all(age < 3 * day for age in left)
    [pruned] = [e for e in access_events(engine) if e.path == "hipdx db audit-prune-sign-ins"]
    assert pruned.action == "D" and pruned.what.startswith("SignInAttempt: 3 before") and pruned.username.startswith("os:")
    # an archive that exists is never overwritten, and nothing is deleted then
    again = run("--older-than-days", "1", "--archive", str(archive))
    assert again.exit_code == 2 and "exists" in again.output
    assert len(_left(engine)) == 3
    bad = run("--older-than-days", "0", "--archive", str(tmp_path / "other.ndjson"))
    assert bad.exit_code == 2 and not (tmp_path / "other.ndjson").exists()
    engine.dispose()


def test_only_the_rows_archived_are_deleted_and_never_the_throttles(database_url: str) -> None:  # noqa: F811
    engine = connect(database_url)
    migrate(engine)
    _add(engine, dt.timedelta(days=9), dt.timedelta(days=8))
    before = NOW - dt.timedelta(days=7)
    written: list[int] = []
    ranges = signin.archive_before(engine, before, lambda row: written.append(row.id))
    _add(engine, dt.timedelta(days=10))  # old, but not in the archive (say, a row committed late)
    assert signin.delete_archived(engine, before, ranges, NOW) == 2
    assert [round(age / dt.timedelta(days=1)) for age in _left(engine)] == [10]
    with pytest.raises(InputError, match="throttle"):
        signin.delete_archived(engine, NOW - dt.timedelta(minutes=5), [(1, 10**9)], NOW)
    engine.dispose()


def test_the_archive_holds_every_old_attempt_whatever_the_batch(database_url: str) -> None:  # noqa: F811
    """The archive is read by keyset in batches, never capped: 7 old attempts in batches of 2 are all archived, once, oldest first."""
    engine = connect(database_url)
    migrate(engine)
    day = dt.timedelta(days=1)
    _add(engine, *(day * (40 - i) for i in range(4)), dt.timedelta(minutes=1), *(day * (30 - i) for i in range(3)))
    written: list[int] = []
    ranges = signin.archive_before(engine, NOW - 7 * day, lambda row: written.append(row.id), batch=2)
    assert written == [1, 2, 3, 4, 6, 7, 8] and ranges == [(1, 4), (6, 8)]
    assert signin.delete_archived(engine, NOW - 7 * day, ranges, NOW) == 7 and len(_left(engine)) == 1
    engine.dispose()
