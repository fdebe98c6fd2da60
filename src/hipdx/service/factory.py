"""Build the whole service (CDS Hooks + REST API) from the settings: what each uvicorn worker runs.

``hipdx serve`` puts its options in the environment (``HIPDX_*``) and starts uvicorn with
``app_from_environment`` as the factory, so one worker or several build the same application.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

import hipdx
from hipdx.errors import DatabaseError, InputError
from hipdx.knowledge import load_knowledge_base
from hipdx.service.api.context import ApiContext
from hipdx.service.api.jobwatch import fail_stale
from hipdx.service.app import ServiceConfig, create_app
from hipdx.service.auth import IssuerList
from hipdx.service.settings import Settings, load_settings, secret_key
from hipdx.store import AuditStore, connect, is_current, migrate
from hipdx.store.failures import UPGRADE, masked
from hipdx.store.migrate import current_revision, known_revision
from hipdx.store.replay import DatabaseReplayCache
from hipdx.web.smart import SmartConfig, SmartServer


def prepare_database(settings: Settings) -> None:
    """The embedded database is created or upgraded; one given by URL must exist and be current already.

    Raises
    ------
    InputError
        The data folder cannot be created, or an SQLite file given by URL does not exist.
    DatabaseError
        The database cannot be reached, opened or written, or is not at the current schema (the
        message says what to do, e.g. run ``hipdx db upgrade``).
    """
    url = settings.effective_database_url()
    if settings.embedded():
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise InputError(f"cannot create the data folder {settings.data_dir}: {exc.strerror or exc} "
                             "(give a writable --data-dir or HIPDX_DATA_DIR)") from None
    else:
        _sqlite_file_exists(url)
    engine = connect(url)
    try:
        if settings.embedded():
            migrate(engine)
        else:
            _check_schema(engine)
    finally:
        engine.dispose()


def _sqlite_file_exists(url: str) -> None:
    """An SQLite database given by URL is a file that exists (connecting would create an empty one)."""
    parsed = make_url(url)
    name = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or name in ("", ":memory:") or name.startswith("file:"):
        return
    if not Path(name).is_file():
        raise InputError(f"no SQLite database at {name}: create it with `hipdx db upgrade --database-url {url}`, "
                         "or correct the path")


def _check_schema(engine: Engine) -> None:
    """The database is at the current schema, else the reason and what to do."""
    if is_current(engine):
        return
    current = current_revision(engine)
    where = masked(engine.url)
    if current is None:
        raise DatabaseError(f"the database {where} has no hipdx schema yet (it was never migrated): {UPGRADE}")
    if known_revision(current):
        raise DatabaseError(f"the database {where} is at an older schema ({current}): {UPGRADE}")
    raise DatabaseError(f"the database {where} is at schema revision {current}, which this version of hipdx "
                        "does not know (a newer hipdx upgraded it): run that version, or restore the database from a backup")


def build_app(settings: Settings) -> FastAPI:
    # the HTTP client logs every URL it fetches at INFO, and a FHIR search URL names the patient
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    kb = load_knowledge_base()
    engine = connect(settings.effective_database_url())
    try:
        fail_stale(engine)  # MRI jobs left queued or running by a worker that died (their heartbeat stopped)
    except SQLAlchemyError as exc:  # the database away at start-up: every job read applies the rule again
        logging.getLogger("hipdx.service").warning("stale MRI jobs not checked at start-up: %s", type(exc).__name__)
    issuers = IssuerList.from_file(settings.cds_issuers) if settings.cds_issuers is not None else None
    if issuers is not None:
        issuers.replay = DatabaseReplayCache(engine)
    api = ApiContext(
        engine=engine,
        kb=kb,
        secret=secret_key(settings),
        upload_dir=settings.data_dir / "uploads",
        token_lifetime=dt.timedelta(minutes=settings.token_lifetime_minutes),
        session_cookie_secure=settings.session_cookie_secure,
        max_upload_bytes=settings.max_upload_mb * 2**20,
        max_upload_files=settings.max_upload_files,
        public_url=settings.public_url,
    )
    config = ServiceConfig(
        issuers=issuers,
        insecure_no_auth=settings.insecure_no_auth,
        public_url=settings.public_url,
        fhir_servers=tuple(settings.fhir_servers),
        cors_origins=tuple(settings.cors_origins),
        trusted_proxies=tuple(settings.trusted_proxies),
        case_url=settings.case_url,
        knowledge_base_url=settings.knowledge_base_url,
        store=AuditStore(engine, hipdx.__version__, kb.digest),
        api=api,
        smart=SmartConfig(tuple(SmartServer(**s.model_dump()) for s in settings.smart_servers), settings.public_url),
    )
    return create_app(config, kb)


def app_from_environment() -> FastAPI:
    """The application of one uvicorn worker (``HIPDX_*`` environment and ``HIPDX_CONFIG``)."""
    return build_app(load_settings())
