"""``hipdx db ...`` against a database it cannot use: a message naming the database (its password
masked), the problem and what to do, a non-zero exit code, no traceback, nothing half-written.

Before this, the same failures printed "cannot reach the database: OperationalError" (no database,
no reason), "internal error: CommandError ... (please report)" for a database upgraded by a newer
hipdx, the driver's SQL and parameters for a read-only database, and a command given the wrong
SQLite path created an empty file there. The databases here are real: a PostgreSQL port nothing
listens on, a database missing on the test server, SQLite files that are not databases or cannot
be written.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hipdx.cli import app as cli_app
from hipdx.errors import DatabaseError
from hipdx.store.failures import masked

from conftest import CliRunner
from test_store import POSTGRES, _postgres_schema

REFUSED = "postgresql+psycopg://hipdx:s3cret-pw@127.0.0.1:1/hipdx"
COMMANDS = [["users"], ["user-role", "alice", "--role", "admin"], ["user-disable", "alice"], ["user-enable", "alice"],
            ["audit-export", "--out", "{tmp}/trail.json"],
            ["audit-prune-sign-ins", "--older-than-days", "30", "--archive", "{tmp}/archive.ndjson"]]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the test server (tests/test_store.py)."""
    yield from _postgres_schema()


def _db(args: list[str], url: str, tmp_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, ["db", *[a.format(tmp=tmp_path) for a in args], "--database-url", url])
    return result.exit_code, result.output


def _clean(code: int, output: str, expected: str, tmp_path: Path) -> None:
    assert code == DatabaseError.exit_code, output
    assert expected in output
    assert "Traceback" not in output and "internal error" not in output and "[SQL:" not in output
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.ndjson")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("args", [["upgrade"], *COMMANDS], ids=lambda a: a[0])
def test_a_refused_connection_names_the_server_and_masks_the_password(args: list[str], tmp_path: Path) -> None:
    code, output = _db(args, REFUSED, tmp_path)
    _clean(code, output, "cannot connect to the database postgresql+psycopg://hipdx:***@127.0.0.1:1/hipdx: "
                         "the server refused the connection (is PostgreSQL running and listening on 127.0.0.1:1?)", tmp_path)
    assert "s3cret-pw" not in output


@pytest.mark.parametrize("args", [["upgrade"], ["users"], ["audit-export", "--out", "{tmp}/trail.json"]], ids=lambda a: a[0])
def test_a_database_missing_on_the_server_is_named_with_what_to_do(args: list[str], postgres_url: str, tmp_path: Path) -> None:
    # postgres_url: skips (or fails in CI) when the test server is away
    url = POSTGRES.rsplit("/", 1)[0] + "/hipdx_no_such_database"
    code, output = _db(args, url, tmp_path)
    _clean(code, output, "the database 'hipdx_no_such_database' does not exist on the server of "
                         f"{url}: create it (createdb hipdx_no_such_database), then run `hipdx db upgrade`", tmp_path)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_an_unmigrated_database_says_run_hipdx_db_upgrade(args: list[str], tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    code, output = _db(args, f"sqlite:///{path}", tmp_path)
    _clean(code, output, f"the database sqlite:///{path} has no hipdx schema yet (it was never migrated): "
                         "run `hipdx db upgrade` with this --database-url", tmp_path)


@pytest.mark.parametrize("args", [["upgrade"], *COMMANDS], ids=lambda a: a[0])
def test_a_file_that_is_not_a_database_is_named(args: list[str], tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database\n" * 100)
    code, output = _db(args, f"sqlite:///{path}", tmp_path)
    _clean(code, output, f"sqlite:///{path} is not an SQLite database", tmp_path)
    assert path.read_text() == "not a database\n" * 100


def test_a_database_upgraded_by_a_newer_hipdx_is_not_an_internal_error(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    assert _db(["upgrade"], f"sqlite:///{path}", tmp_path)[0] == 0
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_future'")
    for args in (["upgrade"], ["users"]):
        code, output = _db(args, f"sqlite:///{path}", tmp_path)
        _clean(code, output, "is at schema revision 9999_future, which this version of hipdx does not know", tmp_path)


def test_an_unwritable_folder_is_named_and_no_file_is_created(tmp_path: Path) -> None:
    # /proc refuses new files even to root (the tests may run as root, where permissions do not bite)
    code, output = _db(["upgrade"], "sqlite:////proc/hipdx-test.db", tmp_path)
    _clean(code, output, "cannot open the SQLite database sqlite:////proc/hipdx-test.db: its folder does not exist, "
                         "or the file or its folder cannot be written", tmp_path)
    missing = tmp_path / "typo" / "hipdx.db"
    code, output = _db(["users"], f"sqlite:///{missing}", tmp_path)
    assert code == 2 and f"no SQLite database at {missing}" in output and "Traceback" not in output
    assert not missing.parent.exists()  # before, connecting created an empty database file there
    result = CliRunner().invoke(cli_app, ["db", "users", "--data-dir", "/proc/hipdx-test"])
    assert result.exit_code == 2 and "cannot create the data folder /proc/hipdx-test" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["user-enable", "alice"], ["audit-export", "--out", "{tmp}/trail.json"]], ids=lambda a: a[0])
def test_a_read_only_database_is_refused_without_its_sql_and_without_output(args: list[str], tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    assert _db(["upgrade"], f"sqlite:///{path}", tmp_path)[0] == 0
    result = CliRunner().invoke(cli_app, ["db", "user-add", "alice", "--role", "admin", "--password-stdin",
                                          "--database-url", f"sqlite:///{path}"], input="a-long-password-1\n")
    assert result.exit_code == 0, result.output
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    code, output = _db(args, read_only, tmp_path)
    _clean(code, output, f"the database {read_only} is read-only", tmp_path)


def test_a_subprocess_sees_the_message_on_stderr_and_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; from hipdx.cli import main; sys.exit(main(sys.argv[1:]))",
                           "db", "users", "--database-url", REFUSED], capture_output=True, text=True, timeout=120)
    assert done.returncode == DatabaseError.exit_code
    assert done.stdout == "" and "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr
    assert done.stderr.startswith("error: cannot connect to the database postgresql+psycopg://hipdx:***@127.0.0.1:1/hipdx")


def test_a_user_change_whose_audit_record_fails_is_rolled_back(tmp_path: Path) -> None:
    """A database that refuses the audit row (a real trigger, as a full disk would): before, the change
    was committed first and stayed, unrecorded; now the change and its record are one transaction."""
    path = tmp_path / "service.db"
    url = f"sqlite:///{path}"
    assert _db(["upgrade"], url, tmp_path)[0] == 0
    for name, role in (("alice", "admin"), ("bob", "clinician")):
        result = CliRunner().invoke(cli_app, ["db", "user-add", name, "--role", role, "--password-stdin",
                                              "--database-url", url], input="a-long-password-1\n")
        assert result.exit_code == 0, result.output
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TRIGGER refuse BEFORE INSERT ON access_event BEGIN SELECT RAISE(ABORT, 'no room left'); END")
    code, output = _db(["user-disable", "bob"], url, tmp_path)
    _clean(code, output, f"the database {url} failed while changing the user: IntegrityError: no room left", tmp_path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT active FROM app_user WHERE username = 'bob'").fetchone() == (1,)


def test_serve_names_the_database_it_cannot_reach(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--insecure-no-auth", "--database-url", REFUSED])
    _clean(result.exit_code, result.output, "cannot connect to the database postgresql+psycopg://hipdx:***@127.0.0.1:1/hipdx", tmp_path)
    assert "s3cret-pw" not in result.output


def test_a_prune_whose_audit_record_fails_deletes_nothing_and_leaves_no_archive(tmp_path: Path) -> None:
    """Before, the sign-in attempts were deleted first and the prune's record, refused, never written."""
    import datetime as dt

    from sqlalchemy import func, insert, select

    from hipdx.store import connect
    from hipdx.store.tables import SignInAttempt

    path = tmp_path / "service.db"
    url = f"sqlite:///{path}"
    assert _db(["upgrade"], url, tmp_path)[0] == 0
    engine = connect(url)
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=90)
    with engine.begin() as connection:
        connection.execute(insert(SignInAttempt), [{"attempted_at": old, "username": f"user{i}", "source_address": None,
                                                    "channel": "api-token", "outcome": "wrong-password"} for i in range(3)])
        connection.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON access_event BEGIN SELECT RAISE(ABORT, 'no room left'); END")
    code, output = _db(["audit-prune-sign-ins", "--older-than-days", "30", "--archive", "{tmp}/archive.ndjson"], url, tmp_path)
    _clean(code, output, f"the database {url} failed while pruning the sign-in attempts: IntegrityError: no room left", tmp_path)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(SignInAttempt)) == 3
    engine.dispose()


def test_a_read_only_postgresql_database_is_named_and_nothing_is_written(postgres_url: str, tmp_path: Path) -> None:
    assert _db(["upgrade"], postgres_url, tmp_path)[0] == 0
    read_only = postgres_url + "%20-cdefault_transaction_read_only%3Don"  # the server refuses every write
    result = CliRunner().invoke(cli_app, ["db", "user-add", "alice", "--password-stdin", "--database-url", read_only],
                                input="a-long-password-1\n")
    _clean(result.exit_code, result.output, "is read-only, so adding the user failed", tmp_path)
    code, output = _db(["audit-export", "--out", "{tmp}/trail.json"], read_only, tmp_path)
    _clean(code, output, "is read-only, so exporting the audit trail failed", tmp_path)
    assert _db(["users"], postgres_url, tmp_path) == (0, "")


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://hipdx@127.0.0.1:1/hipdx?password=s3cr3t-Pw",
    "postgresql+psycopg://hipdx@127.0.0.1:1/hipdx?sslmode=require&sslpassword=s3cr3t-Pw",
    "postgresql+psycopg://hipdx:s3cr3t-Pw@127.0.0.1:1/hipdx?PASSWORD=s3cr3t-Pw",
    "not a url //hipdx:s3cr3t-Pw@host/db?password=s3cr3t-Pw",
])
def test_a_password_in_the_url_is_masked_wherever_it_is_given(url: str) -> None:
    shown = masked(url)
    assert "s3cr3t-Pw" not in shown
    assert "***" in shown
