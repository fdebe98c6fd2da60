"""Persistence wing (SQLAlchemy 2, Alembic migrations; PostgreSQL, or embedded SQLite in WAL mode).

``migrate(url)`` brings a database to the current schema (``hipdx db upgrade``);
:class:`AuditStore` records each CDS call and feedback item; ``records`` keeps the REST API's
cases, visits, assessments (with provenance), MRI jobs and its access log; ``users`` the users
(argon2 hashes) and their tokens; ``signin`` every sign-in attempt and the throttle shared by all workers; ``replay`` the JWT ``jti`` cache shared by all workers; ``trail`` the whole audit trail of a period, in order, in batches (the exports).
The CDS call log holds no token, no request payload and no clinical content: who called, about which patient reference, the
outcome, the card's indicator and uuid, the latency and the versions.
"""

from hipdx.store.audit import AuditStore, CallRecord, CardFeedback
from hipdx.store.migrate import connect, is_current, migrate

__all__ = ["AuditStore", "CallRecord", "CardFeedback", "connect", "is_current", "migrate"]
