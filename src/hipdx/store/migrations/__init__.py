"""Alembic migrations of the audit store (run with ``hipdx db upgrade``)."""
