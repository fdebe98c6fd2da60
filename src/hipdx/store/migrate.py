"""The audit schema's migrations (Alembic), run from Python: ``migrate(engine)``, ``is_current(engine)``."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, QueuePool, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from hipdx.errors import IntegrationError
from hipdx.store.failures import masked, reported


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("hipdx.store") / "migrations"))
    return config


#: Connections an engine keeps open (and the most it opens): every one a service worker may hold
#: at once is kept, so none is opened per request. With SQLAlchemy's default (5 kept, 10 more
#: opened and closed as needed) the CDS load (16 clients, each call reading its token's jti in a
#: thread of its own) opened and closed a PostgreSQL connection for about one call in three:
#: about 2.2 ms of the server's CPU and 0.5 ms of the worker's each, measured here (and a new
#: SQLite connection costs 0.3 ms for its pragmas). The cap rises from 15 to 20 per engine: a
#: worker holds at most 20 connections to PostgreSQL, so ``--workers`` x 20 must stay below
#: its ``max_connections`` (100 by default).
POOL_SIZE = 20


def connect(url: str) -> Engine:
    """An engine for ``url`` (``postgresql+psycopg://...`` or ``sqlite:///...``).

    It keeps up to :data:`POOL_SIZE` connections open and opens no more (a caller beyond
    them waits for one, up to 30 s, SQLAlchemy's ``pool_timeout``).

    Raises
    ------
    IntegrationError
        The URL is not one SQLAlchemy understands.
    """
    try:
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
        if isinstance(engine.pool, QueuePool):  # not SQLite in memory, which keeps one connection per thread
            engine = create_engine(url, pool_pre_ping=True, hide_parameters=True, pool_size=POOL_SIZE, max_overflow=0)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise IntegrationError(f"database URL not usable: {masked(url)}: {type(exc).__name__}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
    """Embedded SQLite: write-ahead log (readers do not block the writer; several workers share
    the file), every commit synced to disk before it is acknowledged, foreign keys enforced, and
    a writer waits up to 10 s for another worker's lock instead of failing."""
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=10000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade (or, with a lower ``revision``, downgrade) the audit schema.

    Raises
    ------
    DatabaseError
        The database cannot be reached or written, is at a revision this hipdx does not know, or the
        migration fails (its transaction rolled back: on PostgreSQL nothing of it stays).
    """
    config = _alembic_config()
    with reported(engine.url, "upgrading the schema"), engine.begin() as connection:
        config.attributes["connection"] = connection
        if revision == "base" or _below_current(connection, config, revision):
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def _below_current(connection, config: Config, revision: str) -> bool:  # type: ignore[no-untyped-def]
    """True when ``revision`` is an ancestor of the database's current revision (a downgrade)."""
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None or revision in ("head", current):
        return False
    older = ScriptDirectory.from_config(config).iterate_revisions(current, "base")
    return revision in {script.revision for script in older if script.revision != current}


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration.

    Raises
    ------
    DatabaseError
        The database cannot be reached or opened.
    """
    return current_revision(engine) in ScriptDirectory.from_config(_alembic_config()).get_heads()


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None: not migrated).

    Raises
    ------
    DatabaseError
        The database cannot be reached or opened.
    """
    with reported(engine.url, "reading its schema revision"), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def known_revision(revision: str) -> bool:
    """True when ``revision`` is one of this hipdx's migrations (an older or the current one)."""
    return any(script.revision == revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions())
