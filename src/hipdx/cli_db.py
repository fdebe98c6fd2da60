"""``hipdx db user-add``, ``users``, ``user-role``, ``user-disable``, ``user-enable``,
``user-password``, ``demo-user``, ``audit-export`` and ``audit-prune-sign-ins``: the service's users and its audit trail,
from the command line (registered on ``hipdx db`` by ``cli_service``). Every change of a user (in
the change's own transaction), every export of the audit trail and every prune is recorded in the
access audit as done by ``os:<the system user>`` through ``CLI``. A database the command cannot use
leaves as one message naming it (``hipdx.store.failures``), never a traceback."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hipdx.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy import Engine

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", "--database", metavar="URL", envvar="HIPDX_DATABASE_URL",
                 help="The service's database (or HIPDX_DATABASE_URL); default: the embedded one in the data folder.",
                 show_default=False),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="DIR", help="The data folder of the embedded database (or HIPDX_DATA_DIR).",
                 show_default=False),
]


class RoleChoice(str, Enum):
    clinician = "clinician"
    admin = "admin"


@contextmanager
def _database(database_url: str | None, data_dir: Path | None, doing: str) -> Iterator[Engine]:
    """The service's database, checked current, for one command: a failure of the database while
    ``doing`` leaves as a :class:`~hipdx.errors.DatabaseError` naming it (password masked) and what to do."""
    from hipdx.service.factory import prepare_database
    from hipdx.service.settings import load_settings
    from hipdx.store import connect
    from hipdx.store.failures import reported

    settings = load_settings(database_url=database_url, data_dir=data_dir)
    prepare_database(settings)
    url = settings.effective_database_url()
    engine = connect(url)
    try:
        with reported(url, doing):
            yield engine
    finally:
        engine.dispose()


def user_add_command(
    username: Annotated[str, typer.Argument(help="The user's sign-in name.")],
    role: Annotated[RoleChoice, typer.Option("--role", help="clinician (patient data) or admin (also users and audit).")]
    = RoleChoice.clinician,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")]
    = False,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Add a user of the REST API (the password is asked for, hidden, or read from standard input)."""
    from hipdx.store.users import Role, add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with _database(database_url, data_dir, "adding the user") as engine:
        add_user(engine, username, password, Role(role.value))
    typer.echo(f"user {username} ({role.value}) added")


def demo_user_command(database_url: DatabaseOption = None, data_dir: DataDirOption = None) -> None:
    """Add the user 'demo' (clinician) with a new random password, printed once: for a local demonstration only."""
    from hipdx.store.users import Role, add_user

    password = secrets.token_urlsafe(12)
    with _database(database_url, data_dir, "adding the user") as engine:
        add_user(engine, "demo", password, Role.clinician)
    typer.echo(f"user demo (clinician) added; password: {password}")


def audit_export_command(
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Write the FHIR Bundle here (a new file).")],
    since: Annotated[str | None, typer.Option("--since", metavar="YYYY-MM-DD", help="Only events from this day on (UTC).")]
    = None,
    until: Annotated[str | None, typer.Option("--until", metavar="YYYY-MM-DD",
                                              help="Only events up to the end of this day (UTC); default: up to now.")]
    = None,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export the audit trail (REST accesses, user changes, CDS calls, sign-in attempts) as a FHIR R4
    Bundle of AuditEvents, oldest first: every event of the period, read in batches (any size of trail)."""
    from hipdx.output import check_outputs, write_file

    start, end = _day(since, "--since"), _day(until, "--until")
    if start is not None and end is not None and end < start:
        raise InputError(f"--until {until} is before --since {since}: give a period that ends after it starts")
    now = dt.datetime.now(dt.timezone.utc)
    if start is not None and start > now:
        raise InputError(f"--since {since} is in the future: no event is recorded there yet")
    stop = now if end is None or end > now else min(now, end + dt.timedelta(days=1))
    check_outputs({"--out": out}, force=False)
    counts: dict[str, int] = {}

    def write(temporary: Path) -> None:  # the read is recorded before the file appears; if it cannot be, no file
        _write_trail_bundle(temporary, engine, start, stop, now, counts)
        _record_trail_read(engine, start, stop, sum(counts.values()))

    with _database(database_url, data_dir, "exporting the audit trail") as engine:
        write_file(out, write, option="--out", force=False)
    _sync_folder(out.parent)
    period = f"from {start:%Y-%m-%d} " if start is not None else "from the first event "
    typer.echo(f"wrote {sum(counts.values())} AuditEvents ({counts.get('access', 0)} accesses, {counts.get('cds', 0)} CDS calls, "
               f"{counts.get('signin', 0)} sign-in attempts) {period}to before {stop:%Y-%m-%d %H:%M:%S} UTC to {out}")


def _record_trail_read(engine: Engine, since: dt.datetime | None, until: dt.datetime, events: int) -> None:
    """Record in the access audit that the system user read the trail of this period (as the API does)."""
    from hipdx.store.records import record_access, trail_read

    record_access(engine, _cli_event("R", trail_read(since, until, events), "audit-export"))


def _day(text: str | None, option: str) -> dt.datetime | None:
    """The start (UTC) of the day ``text`` names, for ``option``."""
    if text is None:
        return None
    try:
        return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.timezone.utc)
    except ValueError:
        raise InputError(f"{option} {text!r} is not a date YYYY-MM-DD") from None


def _write_trail_bundle(path: Path, engine, since: dt.datetime | None, until: dt.datetime,  # type: ignore[no-untyped-def]
                        now: dt.datetime, counts: dict[str, int]) -> None:
    """Write the trail of the period as one collection Bundle, an entry at a time (constant memory), durable."""
    from hipdx.service.api.auditevent import bundle_entry, trail_auditevent
    from hipdx.store.trail import trail

    with path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"resourceType": "Bundle", "type": "collection", "timestamp": now.isoformat()})[:-1])
        for event in trail(engine, since, until):
            handle.write(",\n\"entry\": [\n" if not counts else ",\n")
            handle.write(json.dumps(bundle_entry(trail_auditevent(event))))
            counts[event.kind] = counts.get(event.kind, 0) + 1
        handle.write("\n]}\n" if counts else "}\n")
        handle.flush()
        os.fsync(handle.fileno())


def audit_prune_sign_ins_command(
    older_than_days: Annotated[int, typer.Option("--older-than-days", min=1, metavar="DAYS",
                                                 help="Remove the sign-in attempts older than this many days (the site's retention).")],
    archive: Annotated[Path, typer.Option("--archive", metavar="FILE",
                                          help="Write them here first, as FHIR AuditEvents, one per line (NDJSON; a new file).")],
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Archive, then delete, the sign-in attempts older than a retention period: the archive is on disk before any row goes, only archived rows go, the prune is audited."""
    from hipdx.output import check_outputs, write_file
    from hipdx.service.api.auditevent import signin_auditevent
    from hipdx.store import signin

    check_outputs({"--archive": archive}, force=False)
    now = dt.datetime.now(dt.timezone.utc)
    before = now - dt.timedelta(days=older_than_days)
    found: dict[str, list[tuple[int, int]]] = {}

    def write(temporary: Path) -> None:
        with temporary.open("w", encoding="utf-8") as out:
            found["ranges"] = signin.archive_before(
                engine, before, lambda row: out.write(json.dumps(signin_auditevent(row), separators=(",", ":")) + "\n"))
            out.flush()
            os.fsync(out.fileno())

    with _database(database_url, data_dir, "pruning the sign-in attempts") as engine:
        write_file(archive, write, option="--archive", force=False)
        _sync_folder(archive.parent)
        archived = sum(last - first + 1 for first, last in found["ranges"])
        try:
            deleted = signin.delete_archived(engine, before, found["ranges"], now, lambda count: _cli_event(
                "D", f"SignInAttempt: {count} before {before:%Y-%m-%dT%H:%MZ}", "audit-prune-sign-ins"))
        except Exception:
            archive.unlink(missing_ok=True)  # one transaction with its record, rolled back: nothing deleted, the archive would only block a retry
            raise
    typer.echo(f"archived {archived} sign-in attempts older than {before:%Y-%m-%d %H:%M} UTC to {archive}; "
               f"deleted {deleted} from the database")


def _sync_folder(folder: Path) -> None:
    """Make a new file's name durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _cli_event(action: str, what: str, command: str) -> dict[str, object]:
    """An access-audit row of ``hipdx db <command>``, done by the system user through ``CLI``."""
    return {"username": _system_user()[:100], "role": None, "action": action, "what": what[:100],
            "method": "CLI", "path": f"hipdx db {command}", "status_code": 200, "source_address": None}


def _system_user() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return "os:unknown"


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


def _change(command: str, username: str, database_url: str | None, data_dir: Path | None, **change: object) -> None:
    """Apply one change to a user and record it in the access audit, in one transaction; a refused
    change is recorded with its status (nothing of the change is written)."""
    from hipdx.errors import HipdxError
    from hipdx.store.records import AuditRefused, record_access
    from hipdx.store.users import change_user

    audit = _cli_event("U", f"User/{username}", command)
    with _database(database_url, data_dir, "changing the user") as engine:
        try:
            found = change_user(engine, username, audit=audit, **change)  # type: ignore[arg-type]
        except AuditRefused:
            raise  # the refused record is the failure: nothing to record it with
        except HipdxError as exc:
            record_access(engine, audit | {"status_code": exc.http_status})
            raise
    if not found:
        raise InputError(f"no user {username!r} (hipdx db users lists them)")


def users_command(database_url: DatabaseOption = None, data_dir: DataDirOption = None) -> None:
    """List the users: name, role, enabled or disabled, live tokens."""
    from hipdx.store.users import describe_users

    with _database(database_url, data_dir, "listing the users") as engine:
        rows = describe_users(engine)
    for row in rows:
        state = "enabled" if row["active"] else "disabled"
        typer.echo(f"{row['username']}\t{row['role']}\t{state}\t{row['live_tokens']} live tokens")


def user_role_command(
    username: Annotated[str, typer.Argument(help="The user's sign-in name.")],
    role: Annotated[RoleChoice, typer.Option("--role", help="The new role: clinician or admin.")],
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a user's role (the last enabled admin cannot be demoted)."""
    from hipdx.store.users import Role

    _change("user-role", username, database_url, data_dir, role=Role(role.value))
    typer.echo(f"user {username} is now {role.value}")


def user_disable_command(
    username: Annotated[str, typer.Argument(help="The user's sign-in name.")],
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Disable a user: they cannot sign in, and their tokens and sessions end now."""
    _change("user-disable", username, database_url, data_dir, active=False)
    typer.echo(f"user {username} disabled; their tokens and sessions ended")


def user_enable_command(
    username: Annotated[str, typer.Argument(help="The user's sign-in name.")],
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Enable a disabled user again."""
    _change("user-enable", username, database_url, data_dir, active=True)
    typer.echo(f"user {username} enabled")


def user_password_command(
    username: Annotated[str, typer.Argument(help="The user's sign-in name.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")]
    = False,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Set a user's password (asked for, hidden, or read from standard input); their tokens and sessions end."""
    _change("user-password", username, database_url, data_dir, password=_read_password(password_stdin))
    typer.echo(f"password of {username} set; their tokens and sessions ended")
