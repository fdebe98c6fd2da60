"""The JWT ``jti`` replay cache in the database, shared by every worker of the service.

A ``(issuer, jti)`` pair is inserted once; a second insert breaks the unique constraint, which
is the replay. Rows past their expiry are deleted as new ones arrive.
"""

from __future__ import annotations

from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hipdx.store.tables import SeenJti


class DatabaseReplayCache:
    """``first_use(iss, jti, until, now)``: True the first time a pair is seen (until it expires)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def first_use(self, issuer: str, jti: str, until: float, now: float) -> bool:
        with Session(self.engine) as session, session.begin():
            session.execute(delete(SeenJti).where(SeenJti.expires_at < now))
        try:
            with Session(self.engine) as session, session.begin():
                session.add(SeenJti(issuer=issuer[:500], jti=jti[:200], expires_at=until))
        except IntegrityError:
            return False
        return True
