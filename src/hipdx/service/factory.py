"""Build the whole service (CDS Hooks + REST API) from the settings: what each uvicorn worker runs.

``hipdx serve`` puts its options in the environment (``HIPDX_*``) and starts uvicorn with
``app_from_environment`` as the factory, so one worker or several build the same application.
"""

from __future__ import annotations

import datetime as dt
import logging

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

import hipdx
from hipdx.errors import InputError
from hipdx.knowledge import load_knowledge_base
from hipdx.service.api.context import ApiContext
from hipdx.service.api.jobwatch import fail_stale
from hipdx.service.app import ServiceConfig, create_app
from hipdx.service.auth import IssuerList
from hipdx.service.settings import Settings, load_settings, secret_key
from hipdx.store import AuditStore, connect, is_current, migrate
from hipdx.store.replay import DatabaseReplayCache
from hipdx.web.smart import SmartConfig, SmartServer


def prepare_database(settings: Settings) -> None:
    """The embedded database is created or upgraded; one given by URL must be current already.

    Raises
    ------
    InputError
        The database given by URL is not at the current schema (run ``hipdx db upgrade``).
    """
    engine = connect(settings.effective_database_url())
    try:
        if settings.embedded():
            settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            migrate(engine)
        elif not is_current(engine):
            raise InputError("the database is not at the current schema: run `hipdx db upgrade` first")
    finally:
        engine.dispose()


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
