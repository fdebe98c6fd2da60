"""The JWT ``jti`` replay cache in the database, shared by every worker of the service.

A ``(issuer, jti)`` pair is inserted once; a second insert breaks the unique constraint, which
is the replay. Rows past their expiry are deleted as new ones arrive.

Two ways to record a pair:

- on its own: one transaction (the expired rows deleted, the pair inserted) before the call
  goes on;
- with the call's audit record (:meth:`hipdx.store.AuditStore.record_call`), when the service
  records its calls: the service opens :data:`PENDING_JTI` for the call, the check reads
  whether the pair is already in the database (a replay is refused there, before any work)
  and leaves the new pair in it; the pair is then inserted in the same transaction as the
  call's record, before the answer is released. Two calls racing with one token both pass the
  read; the unique constraint refuses the second at that commit, and the service answers it 401.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hipdx.store.tables import SeenJti

#: the pairs the token check of the current call leaves for its audit record; None: record them at once
PENDING_JTI: ContextVar[list[dict[str, Any]] | None] = ContextVar("hipdx_pending_jti", default=None)


def seen_jti_row(issuer: str, jti: str, until: float) -> dict[str, Any]:
    return {"issuer": issuer[:500], "jti": jti[:200], "expires_at": until}


#: is the pair recorded and not expired (one statement, compiled once)
_SEEN = select(SeenJti.id).where(
    SeenJti.issuer == bindparam("issuer"), SeenJti.jti == bindparam("jti"), SeenJti.expires_at >= bindparam("now")
)


def delete_expired(connection: Session | Connection, now: float) -> None:
    connection.execute(delete(SeenJti).where(SeenJti.expires_at < now))


class DatabaseReplayCache:
    """``first_use(iss, jti, until, now)``: True the first time a pair is seen (until it expires)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def first_use(self, issuer: str, jti: str, until: float, now: float) -> bool:
        row = seen_jti_row(issuer, jti, until)
        pending = PENDING_JTI.get()
        if pending is not None:
            with self.engine.connect() as connection:
                hit = connection.execute(_SEEN, {"issuer": row["issuer"], "jti": row["jti"], "now": now}).first()
            if hit is not None:
                return False
            pending.append(row)
            return True
        try:
            with Session(self.engine) as session, session.begin():
                delete_expired(session, now)
                session.add(SeenJti(**row))
        except IntegrityError:
            return False
        return True
