"""The audit schema's migrations (Alembic), run from Python: ``migrate(engine)``, ``is_current(engine)``."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError

from hipdx.errors import IntegrationError


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("hipdx.store") / "migrations"))
    return config


def connect(url: str) -> Engine:
    """An engine for ``url`` (``postgresql+psycopg://...`` or ``sqlite:///...``).

    Raises
    ------
    IntegrationError
        The URL is not one SQLAlchemy understands.
    """
    try:
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise IntegrationError(f"database URL not usable: {type(exc).__name__}: {exc}") from None


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade (or, with a lower ``revision``, downgrade) the audit schema.

    Raises
    ------
    IntegrationError
        The database cannot be reached or the migration fails.
    """
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            if revision == "base":
                command.downgrade(config, "base")
            else:
                command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise IntegrationError(f"database migration failed: {type(exc).__name__}: {first_line}") from None


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration."""
    config = _alembic_config()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise IntegrationError(f"cannot reach the database: {type(exc).__name__}") from None
    return current in ScriptDirectory.from_config(config).get_heads()
