"""SMART App Launches under way (:mod:`hipdx.web.smart`), kept in the database so that any worker
of the service can finish a launch another worker started.

A launch is stored under its key (the OAuth ``state``, then the id of the patient read) with
an expiry; :func:`take_launch` deletes it as it reads it, so a key is used once even when two
workers race for it (only one delete succeeds). Expired launches are purged on every write.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from hipdx.store.tables import SmartLaunch


class TooManyLaunches(Exception):
    """More launches under way than the cap: refused rather than letting the table grow."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def put_launch(engine: Engine, key: str, *, issuer: str, verifier: str | None, launch: str | None,
               document: dict[str, Any], seconds: float, cap: int) -> None:
    """Keep a launch for ``seconds`` under ``key``; raises :class:`TooManyLaunches` beyond ``cap``."""
    now = _now()
    with Session(engine) as session, session.begin():
        session.execute(delete(SmartLaunch).where(SmartLaunch.expires_at < now))
        if (session.scalar(select(func.count()).select_from(SmartLaunch)) or 0) >= cap:
            raise TooManyLaunches(f"{cap} SMART launches under way")
        session.add(SmartLaunch(state=key, verifier=verifier, issuer=issuer, launch=launch, document=document,
                                created_at=now, expires_at=now + dt.timedelta(seconds=seconds)))


def take_launch(engine: Engine, key: str) -> dict[str, Any] | None:
    """The launch under ``key``, deleted as it is read; None when unknown, used or expired."""
    with Session(engine) as session, session.begin():
        row = session.get(SmartLaunch, key)
        if row is None:
            return None
        found = {"issuer": row.issuer, "verifier": row.verifier, "launch": row.launch, "document": row.document,
                 "expires_at": row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.timezone.utc)}
        taken = session.execute(delete(SmartLaunch).where(SmartLaunch.state == key)).rowcount
    if taken != 1 or found["expires_at"] < _now():
        return None  # another worker took it first, or it expired
    return found
