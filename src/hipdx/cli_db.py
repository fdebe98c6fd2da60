"""``hipdx db user-add``, ``hipdx db demo-user`` and ``hipdx db audit-export``: the service's users
and its audit trail, from the command line (registered on ``hipdx db`` by ``cli_service``)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from hipdx.errors import InputError

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


def _engine(database_url: str | None, data_dir: Path | None):  # type: ignore[no-untyped-def]
    from hipdx.service.factory import prepare_database
    from hipdx.service.settings import load_settings
    from hipdx.store import connect

    settings = load_settings(database_url=database_url, data_dir=data_dir)
    prepare_database(settings)
    return connect(settings.effective_database_url())


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
    engine = _engine(database_url, data_dir)
    try:
        add_user(engine, username, password, Role(role.value))
    finally:
        engine.dispose()
    typer.echo(f"user {username} ({role.value}) added")


def demo_user_command(database_url: DatabaseOption = None, data_dir: DataDirOption = None) -> None:
    """Add the user 'demo' (clinician) with a new random password, printed once: for a local demonstration only."""
    from hipdx.store.users import Role, add_user

    password = secrets.token_urlsafe(12)
    engine = _engine(database_url, data_dir)
    try:
        add_user(engine, "demo", password, Role.clinician)
    finally:
        engine.dispose()
    typer.echo(f"user demo (clinician) added; password: {password}")


def audit_export_command(
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Write the FHIR Bundle here (a new file).")],
    since: Annotated[str | None, typer.Option("--since", metavar="YYYY-MM-DD", help="Only events from this day on.")]
    = None,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export the audit trail (REST accesses and CDS calls) as a FHIR R4 Bundle of AuditEvents."""
    from hipdx.output import check_outputs, write_file
    from hipdx.service.api.accounts import export_audit

    start = None
    if since is not None:
        try:
            start = dt.datetime.combine(dt.date.fromisoformat(since), dt.time(), dt.timezone.utc)
        except ValueError:
            raise InputError(f"--since {since!r} is not a date YYYY-MM-DD") from None
    check_outputs({"--out": out}, force=False)
    engine = _engine(database_url, data_dir)
    try:
        bundle = export_audit(engine, start, 100000)
    finally:
        engine.dispose()
    write_file(out, lambda temporary: temporary.write_text(json.dumps(bundle, indent=1)), option="--out", force=False)
    typer.echo(f"wrote {bundle['total']} AuditEvents to {out}")
