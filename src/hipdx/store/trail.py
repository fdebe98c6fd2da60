"""The whole audit trail of a period, in order, in constant memory: every access event, CDS call
and sign-in attempt, never capped.

One order for every export (``hipdx db audit-export``, ``GET /api/v1/audit/events``): oldest
first by the time recorded, then by kind (access, CDS call, sign-in attempt), then by the row's
id: a total order, so a position in it (a :class:`TrailKey`) says exactly which events come
next. Each table is read in batches by keyset (``WHERE (time, id) > last ORDER BY time, id
LIMIT batch``: no OFFSET, no cap), each batch in a short transaction of its own, and the three
are merged as they are read: memory holds at most one batch per table, whatever the size of the
trail.

Completeness: every event committed before a batch is read and after the position reached is
read. An event of a period that closed before the export started (``until`` in the past, by
more than the instant of a commit) is therefore never missed; an event being committed at the
very moment its place is passed may be (it is in the next export of that period).

Example
-------
>>> for event in trail(engine, since, until):  # doctest: +SKIP
...     write(event.kind, event.row)
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, or_, select, true
from sqlalchemy.orm import Session

from hipdx.errors import InputError, Problem
from hipdx.store.models import CdsCall
from hipdx.store.tables import AccessEvent, SignInAttempt

#: the kinds of event, in their order among events recorded at the same instant
KINDS = ("access", "cds", "signin")
_TABLES: dict[str, tuple[Any, Any]] = {"access": (AccessEvent, AccessEvent.recorded_at),
                                       "cds": (CdsCall, CdsCall.recorded_at),
                                       "signin": (SignInAttempt, SignInAttempt.attempted_at)}
#: rows read per table per query: memory is at most three batches of rows
BATCH = 500


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC (a naive value, as SQLite returns it, is UTC)."""
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


@dataclass(frozen=True, order=True)
class TrailKey:
    """An event's place in the trail: when (UTC), which kind (its index in :data:`KINDS`), which row."""

    at: dt.datetime
    rank: int
    id: int

    def token(self) -> str:
        """The place as text (a paging cursor): ``<time>~<kind>~<id>``."""
        return f"{self.at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}~{KINDS[self.rank]}~{self.id}"

    @classmethod
    def parse(cls, text: str, field: str = "cursor") -> TrailKey:
        """The place :meth:`token` wrote; InputError naming ``field`` for anything else."""
        parts = text.split("~")
        try:
            at = dt.datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
            if len(parts) != 3 or parts[1] not in KINDS or not (parts[2].isdigit() and len(parts[2]) <= 18):
                raise ValueError(text)
            return cls(at, KINDS.index(parts[1]), int(parts[2]))
        except ValueError:
            raise InputError("the cursor is not a position this server gave: take it from a next link",
                             [Problem(field, "not a position this server gave")]) from None


@dataclass(frozen=True)
class TrailEvent:
    """One event of the trail: its kind (:data:`KINDS`), its place, its row (detached)."""

    kind: str
    key: TrailKey
    row: Any


def _after(column: Any, table: Any, rank: int, key: TrailKey | None) -> Any:
    """The rows of one table placed after ``key`` in the trail's order."""
    if key is None:
        return true()
    if rank > key.rank:
        return column >= key.at
    if rank < key.rank:
        return column > key.at
    # the time alone bounds the index range (both databases scan it in order, then the ties by id)
    return and_(column >= key.at, or_(column > key.at, table.id > key.id))


def _kind(engine: Engine, kind: str, since: dt.datetime | None, until: dt.datetime | None,
          after: TrailKey | None, batch: int) -> Iterator[TrailEvent]:
    table, column = _TABLES[kind]
    rank = KINDS.index(kind)
    period = [column >= since] if since is not None else []
    if until is not None:
        period.append(column < until)
    while True:
        query = (select(table).where(*period, _after(column, table, rank, after))
                 .order_by(column, table.id).limit(batch))
        with Session(engine, expire_on_commit=False) as session:
            rows = list(session.scalars(query))
        for row in rows:
            after = TrailKey(utc(getattr(row, column.key)), rank, row.id)
            yield TrailEvent(kind, after, row)
        if len(rows) < batch:
            return


def trail(engine: Engine, since: dt.datetime | None = None, until: dt.datetime | None = None,
          after: TrailKey | None = None, batch: int = BATCH) -> Iterator[TrailEvent]:
    """Every event recorded from ``since`` (inclusive) to ``until`` (exclusive), after ``after``, in order.

    Parameters
    ----------
    since, until
        The period (aware datetimes; None: from the first, to the last event); any time zone.
    after
        A place in the trail (the last event a reader has): only the events after it.
    batch
        Rows read from one table per query (at least 1).

    Lazy: a batch of a table is read when the merge needs its next row.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    since = None if since is None else utc(since)
    until = None if until is None else utc(until)
    streams = [_kind(engine, kind, since, until, after, batch) for kind in KINDS]
    return heapq.merge(*streams, key=lambda event: event.key)
