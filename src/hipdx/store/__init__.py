"""Persistence wing: the CDS service's audit log (SQLAlchemy 2, Alembic migrations; PostgreSQL or SQLite).

``migrate(url)`` brings a database to the current schema (``hipdx db upgrade``);
:class:`AuditStore` records each CDS call and feedback item. The store holds no token, no
request payload and no clinical content: who called, about which patient reference, the
outcome, the card's indicator and uuid, the latency and the versions.
"""

from hipdx.store.audit import AuditStore, CallRecord, CardFeedback
from hipdx.store.migrate import connect, is_current, migrate

__all__ = ["AuditStore", "CallRecord", "CardFeedback", "connect", "is_current", "migrate"]
