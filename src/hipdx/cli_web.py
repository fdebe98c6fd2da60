"""``hipdx run``: the whole service on this computer for a demonstration (what ``make run`` starts).

The web pages, the REST API and the CDS services on http://127.0.0.1:8000, with the embedded
SQLite database in a data folder holding the example cases and a demo user whose password is
generated once and printed at every start. Local use only: the CDS services accept calls
without a JWT and the session cookie is sent over plain HTTP (loopback).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from hipdx.errors import InputError

DEMO_USER = "demo"


def run_command(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1.")] = 8000,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", metavar="DIR", help="The demo's database, secret key and password file.")
    ] = Path(".hipdx-run"),
    examples: Annotated[
        Path, typer.Option("--examples", metavar="DIR", help="Case files (*.json) stored on first start.")
    ] = Path("examples"),
) -> None:
    """Run the web pages, the REST API and the CDS services on http://127.0.0.1:PORT for a local
    demonstration, with the example cases and a demo sign-in (printed). Ctrl-C stops it."""
    import uvicorn

    from hipdx.service.factory import prepare_database
    from hipdx.service.settings import load_settings
    from hipdx.store import connect
    from hipdx.store.failures import reported

    environment = {
        "HIPDX_DATA_DIR": str(data_dir.resolve()),
        "HIPDX_INSECURE_NO_AUTH": "true",
        "HIPDX_SESSION_COOKIE_SECURE": "false",
    }
    for name in ("HIPDX_DATABASE_URL", "HIPDX_CONFIG", "HIPDX_CDS_ISSUERS"):
        os.environ.pop(name, None)  # the demo uses its own embedded database, nothing else
    os.environ.update(environment)
    settings = load_settings()
    prepare_database(settings)
    engine = connect(settings.effective_database_url())
    try:
        with reported(engine.url, "storing the example cases and the demo user"):
            stored = _store_examples(engine, examples)
            password = _demo_password(engine, settings.data_dir)
    finally:
        engine.dispose()
    url = f"http://127.0.0.1:{port}"
    typer.echo(
        f"\nhipdx is starting at {url} (it answers once its pages are warmed up: 5-20 s)\n"
        f"  sign in as: {DEMO_USER}\n"
        f"  password:   {password}\n"
        f"  cases:      {stored} example cases in {settings.data_dir / 'hipdx.db'}\n"
        f"  REST API:   {url}/api/v1 (OpenAPI at {url}/openapi.json); CDS Hooks: {url}/cds-services\n"
        "Local demonstration only (CDS calls without a JWT, cookies over plain HTTP). Ctrl-C stops it.\n"
    )
    uvicorn.run("hipdx.service.factory:app_from_environment", factory=True, host="127.0.0.1", port=port,
                workers=1, log_level="warning", access_log=False,
                proxy_headers=False)  # the app believes forwarded addresses (ServiceConfig.trusted_proxies)


def _store_examples(engine: object, folder: Path) -> int:
    """Store every valid case of ``folder`` not stored yet (by label); how many are stored."""
    from hipdx.case import parse_case
    from hipdx.errors import HipdxError
    from hipdx.store import records

    if not folder.is_dir():
        raise InputError(f"--examples: {folder} is not a folder of case files")
    _, present = records.list_cases(engine, None, 10000, 0)
    labels = {r.label for r in present}
    count = len(present)
    for path in sorted(folder.glob("*.json")):
        if path.stem in labels:
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            parse_case(raw)
        except (OSError, ValueError, HipdxError) as err:
            typer.echo(f"left out {path.name}: {err}", err=True)
            continue
        records.create_case(engine, path.stem, raw, DEMO_USER)
        count += 1
    return count


def _demo_password(engine: object, data_dir: Path) -> str:
    """The demo user's password: made once (random) and kept in ``data_dir/demo-password`` (0600)."""
    from hipdx.store.users import Role, add_user, list_users

    path = data_dir / "demo-password"
    exists = any(name == DEMO_USER for name, _, _ in list_users(engine))
    if exists and path.is_file():
        return path.read_text(encoding="utf-8").strip()
    if exists:
        raise InputError(f"the user {DEMO_USER!r} exists but its password file {path} is gone: delete {data_dir} to start afresh")
    password = secrets.token_urlsafe(12)
    add_user(engine, DEMO_USER, password, Role.clinician)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")
    return password
