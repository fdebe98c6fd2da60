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

Retention: the attempts are audit records (exported as FHIR AuditEvents with the rest of the
trail), so hipdx never deletes them on its own. A site that bounds the table runs
``hipdx db audit-prune-sign-ins`` (its policy: how old, how often): :func:`archive_before` writes
every attempt older than a cutoff to an archive first, then :func:`delete_archived` deletes
exactly the rows archived; a cutoff inside the throttle's window is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.orm import Session

from hipdx.errors import InputError
from hipdx.store.records import record_in
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


def archive_before(engine: Engine, before: dt.datetime, write: Callable[[SignInAttempt], None],
                   batch: int = 1000) -> list[tuple[int, int]]:
    """Pass every attempt older than ``before`` to ``write``, oldest first; the id ranges passed.

    Read in batches by id (any size of table); each returned range ``(first, last)`` holds only
    ids that were passed, so deleting those ranges deletes nothing that was not archived.
    """
    ranges: list[tuple[int, int]] = []
    last_id = 0
    while True:
        with Session(engine, expire_on_commit=False) as session:
            rows = list(session.scalars(select(SignInAttempt).where(
                SignInAttempt.attempted_at < before, SignInAttempt.id > last_id).order_by(SignInAttempt.id).limit(batch)))
        if not rows:
            return ranges
        for row in rows:
            write(row)
            if ranges and ranges[-1][1] == row.id - 1:
                ranges[-1] = (ranges[-1][0], row.id)
            else:
                ranges.append((row.id, row.id))
        last_id = rows[-1].id


def delete_archived(engine: Engine, before: dt.datetime, ranges: list[tuple[int, int]], now: dt.datetime,
                    audit: Callable[[int], dict[str, Any]] | None = None) -> int:
    """Delete the attempts of ``ranges`` (from :func:`archive_before`) older than ``before``, in one transaction,
    with the access event ``audit(deleted)`` gives (:class:`~hipdx.store.tables.AccessEvent` without its time):
    the prune and its record are written together or not at all.

    Raises
    ------
    InputError
        ``before`` is inside the throttle's window (the throttle counts those rows).
    """
    if before > now - WINDOW:
        raise InputError(f"sign-in attempts newer than {int(WINDOW.total_seconds() // 60)} minutes are the throttle's: "
                         "give an older cutoff")
    deleted = 0
    with Session(engine) as session, session.begin():
        for i in range(0, len(ranges), 200):
            chunk = ranges[i: i + 200]
            result = session.execute(delete(SignInAttempt).where(
                SignInAttempt.attempted_at < before,
                or_(*(SignInAttempt.id.between(first, last) for first, last in chunk))))
            deleted += result.rowcount  # type: ignore[attr-defined]
        if audit is not None:
            record_in(session, audit(deleted) | {"recorded_at": now})
    return deleted
