"""Alembic environment: the connection comes from the caller (hipdx.store.migrate)."""

from __future__ import annotations

from alembic import context

import hipdx.store.tables  # noqa: F401  (registers the API tables on Base)
from hipdx.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
