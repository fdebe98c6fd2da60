"""``hipdx serve`` (run the CDS Hooks service) and ``hipdx db upgrade`` (its audit database).

Adapters: they read the options, open the database, start uvicorn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hipdx.cli_support import SUPPORTS, ReportingCommand
from hipdx.errors import InputError

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        envvar="HIPDX_DATABASE_URL",
        help="The audit database, e.g. postgresql+psycopg://hipdx@127.0.0.1/hipdx (or HIPDX_DATABASE_URL).",
        show_default=False,
    ),
]
db_app = typer.Typer(help="The CDS service's audit database. " + SUPPORTS, epilog=SUPPORTS, no_args_is_help=True)


@db_app.command("upgrade", cls=ReportingCommand, epilog=SUPPORTS)
def db_upgrade_command(database_url: DatabaseOption = None) -> None:
    """Create or upgrade the audit tables (Alembic migrations) to the current schema."""
    from hipdx.store import connect, migrate

    if database_url is None:
        raise InputError("give --database-url URL (or set HIPDX_DATABASE_URL)")
    migrate(connect(database_url))
    typer.echo("the audit database is at the current schema")


def serve_command(
    cds_issuers: Annotated[
        Path | None,
        typer.Option(
            "--cds-issuers",
            metavar="FILE",
            help="JSON allow-list of trusted CDS clients: issuer, pinned JWK Set "
            "(ES384/RS384 public keys), optional jku and tenants. See docs/service.md.",
            show_default=False,
        ),
    ] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option("--insecure-no-auth", help="Accept calls without a JWT (local testing only).")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8080,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            metavar="URL",
            help="The service's externally visible base URL (behind a proxy); JWT audiences are checked against it.",
            show_default=False,
        ),
    ] = None,
    fhir_server: Annotated[
        list[str] | None,
        typer.Option(
            "--fhir-server",
            metavar="URL",
            help="A FHIR server the service may fetch missing prefetch from "
            "(repeat for several). Without one, missing prefetch is answered 412.",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseOption = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            metavar="ORIGIN",
            help="A browser origin allowed to call (repeat for several).",
            show_default=False,
        ),
    ] = None,
    case_url: Annotated[
        str | None,
        typer.Option(
            "--case-url",
            metavar="URL",
            help="Absolute URL that opens a patient's case in hipdx, {patient} replaced by the id (a card link).",
            show_default=False,
        ),
    ] = None,
    knowledge_base_url: Annotated[
        str | None,
        typer.Option(
            "--knowledge-base-url",
            metavar="URL",
            help="Absolute URL of the knowledge base the cards cite (default: this service's /knowledge-base).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the CDS Hooks 2.0 service: discovery at /cds-services, patient-view, order-select and order-sign.

    Every call must carry a JWT from an issuer of --cds-issuers (ES384 or RS384, aud = the exact URL called,
    exp, iat and jti, no replay); a bad token is answered 401 without detail.
    """
    import uvicorn

    from hipdx.service import IssuerList, ServiceConfig, create_app

    if cds_issuers is None and not insecure_no_auth:
        raise InputError("give --cds-issuers FILE (the trusted CDS clients), or --insecure-no-auth for local testing")
    if cds_issuers is not None and insecure_no_auth:
        raise InputError("--cds-issuers and --insecure-no-auth contradict each other; give one")
    for url in [public_url or "http://x", *(fhir_server or []), case_url or "http://x", knowledge_base_url or "http://x"]:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"{url!r} is not an http(s) URL")
    issuers = IssuerList.from_file(cds_issuers) if cds_issuers is not None else None
    store = None
    if database_url is not None:
        from hipdx import __version__
        from hipdx.knowledge import load_knowledge_base
        from hipdx.store import AuditStore, connect, is_current

        engine = connect(database_url)
        if not is_current(engine):
            raise InputError("the audit database is not at the current schema: run `hipdx db upgrade` first")
        store = AuditStore(engine, __version__, load_knowledge_base().digest)
    config = ServiceConfig(
        store=store,
        issuers=issuers,
        insecure_no_auth=insecure_no_auth,
        public_url=public_url,
        fhir_servers=tuple(fhir_server or ()),
        cors_origins=tuple(cors_origin or ()),
        case_url=case_url,
        knowledge_base_url=knowledge_base_url,
    )
    if insecure_no_auth:
        typer.echo("warning: authentication is off (--insecure-no-auth): local testing only", err=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")
