"""Sign-in attempts: the audit of who tried to sign in (refused or not), and the throttle.

Every attempt is a row of ``sign_in_attempt``: the user name tried, when, from which address,
through which door (``api-token``, ``api-session``, ``web``) and the outcome (``signed-in``,
``unknown-user``, ``wrong-password``, ``disabled``, ``throttled``); never the password.

The throttle counts the refusals in the table, so every worker (and every process on a shared
PostgreSQL) sees the same count: an account with :data:`MAX_FAILURES_PER_ACCOUNT` refusals
within :data:`WINDOW` since its last successful sign-in, or an address with
:data:`MAX_FAILURES_PER_ADDRESS` refusals within the window, is refused without the password
being checked until the oldest of those refusals leaves the window (429 with ``Retry-After``).
The address limit is higher because one hospital proxy or NAT may carry many users. Two
attempts racing on two workers may both be checked: the limit holds to within the number of
workers. A ``throttled`` refusal is recorded but not counted (it would extend the lock forever).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from hipdx.store.tables import SignInAttempt

WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
REFUSALS = ("unknown-user", "wrong-password", "disabled")
OUTCOMES = ("signed-in", *REFUSALS, "throttled")


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _wait(times: list[dt.datetime], limit: int, now: dt.datetime) -> int | None:
    """Seconds until fewer than ``limit`` of ``times`` (ascending) are within the window; None if already."""
    if len(times) < limit:
        return None
    frees_at = _utc(times[len(times) - limit]) + WINDOW
    return max(1, int((frees_at - now).total_seconds()) + 1)


def retry_after(session: Session, username: str, address: str | None, now: dt.datetime) -> int | None:
    """Seconds the caller must wait (this account or this address is throttled), or None."""
    start = now - WINDOW
    last_success = session.scalar(select(func.max(SignInAttempt.attempted_at)).where(
        SignInAttempt.username == username, SignInAttempt.outcome == "signed-in", SignInAttempt.attempted_at >= start))
    since = max(start, _utc(last_success)) if last_success is not None else start
    refused = SignInAttempt.outcome.in_(REFUSALS)
    account = list(session.scalars(select(SignInAttempt.attempted_at).where(
        SignInAttempt.username == username, refused, SignInAttempt.attempted_at > since).order_by(SignInAttempt.attempted_at)))
    waits = [_wait(account, MAX_FAILURES_PER_ACCOUNT, now)]
    if address:
        from_address = list(session.scalars(select(SignInAttempt.attempted_at).where(
            SignInAttempt.source_address == address, refused, SignInAttempt.attempted_at > start)
            .order_by(SignInAttempt.attempted_at)))
        waits.append(_wait(from_address, MAX_FAILURES_PER_ADDRESS, now))
    found = [w for w in waits if w is not None]
    return max(found) if found else None


def record(session: Session, username: str, address: str | None, channel: str, outcome: str, now: dt.datetime) -> None:
    """Add one attempt to the session (committed with it)."""
    session.add(SignInAttempt(attempted_at=now, username=username[:100], source_address=(address or "")[:100] or None,
                              channel=channel[:20], outcome=outcome))


def attempts(engine: Engine, since: dt.datetime | None = None, limit: int = 1000,
             refused_only: bool = True) -> list[SignInAttempt]:
    """The recorded attempts, newest first (by default the refused ones: the audit trail's)."""
    query = select(SignInAttempt)
    if refused_only:
        query = query.where(SignInAttempt.outcome != "signed-in")
    if since is not None:
        query = query.where(SignInAttempt.attempted_at >= since)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query.order_by(SignInAttempt.id.desc()).limit(limit)))
