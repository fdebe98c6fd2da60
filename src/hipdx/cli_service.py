"""``hipdx serve`` (run the CDS Hooks service) and ``hipdx db upgrade`` (its audit database).

Adapters: they read the options, open the database, start uvicorn.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hipdx.cli_support import SUPPORTS, ReportingCommand
from hipdx.errors import InputError

if TYPE_CHECKING:
    from hipdx.service.settings import Settings

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
db_app = typer.Typer(help="The service's database: schema, users, audit export. " + SUPPORTS, epilog=SUPPORTS,
                     no_args_is_help=True)


@db_app.command("upgrade", cls=ReportingCommand, epilog=SUPPORTS)
def db_upgrade_command(database_url: DatabaseOption = None) -> None:
    """Create or upgrade the service's tables (Alembic migrations) to the current schema."""
    from hipdx.store import connect, migrate

    if database_url is None:
        raise InputError("give --database-url URL (or set HIPDX_DATABASE_URL)")
    engine = connect(database_url)
    try:
        migrate(engine)  # a failure names the database (password masked) and what to do: hipdx.store.failures
    finally:
        engine.dispose()
    typer.echo("the database is at the current schema")


def _given(*flags: str, metavar: str, help: str, **more: Any) -> Any:
    """An option of hipdx serve that takes a value and has no default shown."""
    return typer.Option(*flags, metavar=metavar, help=help, show_default=False, **more)


# the options of hipdx serve
CdsIssuersOption = Annotated[Path | None, _given(
    "--cds-issuers", metavar="FILE", help="JSON allow-list of trusted CDS clients: issuer, pinned JWK Set "
    "(ES384/RS384 public keys), optional jku and tenants. See docs/service.md.")]
InsecureNoAuthOption = Annotated[
    bool, typer.Option("--insecure-no-auth", help="Accept CDS calls without a JWT (local testing only).")
]
HostOption = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]
WorkersOption = Annotated[
    int, typer.Option("--workers", min=1, max=64, help="Worker processes (several: use PostgreSQL).")
]
PublicUrlOption = Annotated[str | None, _given(
    "--public-url", metavar="URL",
    help="The service's externally visible base URL (behind a proxy); JWT audiences are checked against it.")]
FhirServerOption = Annotated[list[str] | None, _given(
    "--fhir-server", metavar="URL", help="A FHIR server the service may fetch missing prefetch from "
    "(repeat for several). Without one, missing prefetch is answered 412.")]
DatabaseUrlOption = Annotated[str | None, _given(
    "--database-url", "--database", metavar="URL", envvar="HIPDX_DATABASE_URL",
    help="PostgreSQL (postgresql+psycopg://...) or SQLite URL (or HIPDX_DATABASE_URL); "
    "default: an embedded SQLite database in the data folder, created on first start.")]
DataDirOption = Annotated[Path | None, _given(
    "--data-dir", metavar="DIR", help="Embedded database, secret key, uploads "
    "(or HIPDX_DATA_DIR; default ~/.local/share/hipdx).")]
ConfigOption = Annotated[Path | None, _given(
    "--config", metavar="FILE", help="A TOML file of settings (or HIPDX_CONFIG); "
    "the environment's HIPDX_* win over it. See docs/service.md.")]
CorsOriginOption = Annotated[list[str] | None, _given(
    "--cors-origin", metavar="ORIGIN", help="A browser origin allowed to call (repeat for several).")]
CaseUrlOption = Annotated[str | None, _given(
    "--case-url", metavar="URL",
    help="Absolute URL that opens a patient's case in hipdx, {patient} replaced by the id (a card link).")]
KnowledgeBaseUrlOption = Annotated[str | None, _given(
    "--knowledge-base-url", metavar="URL",
    help="Absolute URL of the knowledge base the cards cite (default: this service's /knowledge-base).")]

def serve_command(
    cds_issuers: CdsIssuersOption = None,
    insecure_no_auth: InsecureNoAuthOption = False,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    workers: WorkersOption = 1,
    public_url: PublicUrlOption = None,
    fhir_server: FhirServerOption = None,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    cors_origin: CorsOriginOption = None,
    case_url: CaseUrlOption = None,
    knowledge_base_url: KnowledgeBaseUrlOption = None,
) -> None:
    """Run the CDS Hooks 2.0 services (patient-view, order-select, order-sign) and the REST API (/api/v1).

    Every CDS call must carry a JWT from an issuer of --cds-issuers (ES384 or RS384, aud = the exact URL called,
    exp, iat and jti, no replay across workers); a bad token is answered 401 without detail. The REST API
    needs a user (hipdx db user-add).
    """
    import os

    import uvicorn

    from hipdx.service.factory import prepare_database

    if config is not None:
        if not config.is_file():
            raise InputError(f"--config: file not found: {config}")
        os.environ["HIPDX_CONFIG"] = str(config.resolve())
    overrides = {
        "cds_issuers": cds_issuers,
        "insecure_no_auth": insecure_no_auth or None,
        "public_url": public_url,
        "fhir_servers": fhir_server or None,
        "database_url": database_url,
        "data_dir": data_dir.resolve() if data_dir else None,
        "cors_origins": cors_origin or None,
        "case_url": case_url,
        "knowledge_base_url": knowledge_base_url,
    }
    settings = _checked_settings(overrides)
    prepare_database(settings)
    _export_to_environment(overrides)
    if settings.insecure_no_auth:
        typer.echo("warning: CDS authentication is off (--insecure-no-auth): local testing only", err=True)
    uvicorn.run("hipdx.service.factory:app_from_environment", factory=True, host=host, port=port,
                workers=workers, log_level="info", access_log=False,
                proxy_headers=False)  # the app believes forwarded addresses (ServiceConfig.trusted_proxies)


def _checked_settings(overrides: dict[str, Any]) -> Settings:
    """The service's settings (options over the environment over the config file), refused before any
    worker starts when authentication is neither configured nor explicitly off, or a URL is not http(s)."""
    from hipdx.service.settings import load_settings

    settings = load_settings(**overrides)
    if settings.cds_issuers is None and not settings.insecure_no_auth:
        raise InputError("give --cds-issuers FILE (the trusted CDS clients), or --insecure-no-auth for local testing")
    if settings.cds_issuers is not None and settings.insecure_no_auth:
        raise InputError("--cds-issuers and --insecure-no-auth contradict each other; give one")
    for url in [settings.public_url or "http://x", *settings.fhir_servers,
                settings.case_url or "http://x", settings.knowledge_base_url or "http://x"]:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"{url!r} is not an http(s) URL")
    if settings.cds_issuers is not None:
        from hipdx.service import IssuerList

        IssuerList.from_file(settings.cds_issuers)  # refused here, before any worker starts
    return settings


def _export_to_environment(overrides: dict[str, Any]) -> None:
    """The options given, as HIPDX_* variables: the workers read the same settings from the environment."""
    import json
    import os

    for name, value in overrides.items():
        if isinstance(value, Path):
            value = value.resolve()
        if value is not None:
            os.environ[f"HIPDX_{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)


def _register() -> None:
    from hipdx import cli_db

    for name, command in (("user-add", cli_db.user_add_command), ("users", cli_db.users_command),
                          ("user-role", cli_db.user_role_command), ("user-disable", cli_db.user_disable_command),
                          ("user-enable", cli_db.user_enable_command), ("user-password", cli_db.user_password_command),
                          ("demo-user", cli_db.demo_user_command), ("audit-export", cli_db.audit_export_command),
                          ("audit-prune-sign-ins", cli_db.audit_prune_sign_ins_command)):
        db_app.command(name, cls=ReportingCommand, epilog=SUPPORTS)(command)


_register()
