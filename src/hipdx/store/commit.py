"""Group commit: the rows of many concurrent requests written in one transaction.

Every commit of the embedded SQLite database (``synchronous=FULL``) and of PostgreSQL
(``synchronous_commit=on``) waits for the disk: about 4 ms on the development machine. One
transaction per request would cap a worker at about 250 recorded calls a second however fast
the rest is. :class:`GroupCommit` hands the rows of each caller to one writer thread, which
writes everything waiting in one transaction; each caller returns only when its own rows
are committed, so nothing is acknowledged before it is on disk (the same guarantee as a
commit of its own). When the shared transaction breaks a constraint (a replayed JWT ``jti``),
the rows are written again caller by caller, so only the caller whose rows break it is told.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, insert
from sqlalchemy.exc import IntegrityError


#: a row to insert: its table (an ORM class) and its values
Row = tuple[type, dict[str, Any]]


class _Item:
    __slots__ = ("rows", "done", "error")

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: BaseException | None = None


class GroupCommit:
    """``write(rows)``: returns once ``rows`` (``(Table, values)`` pairs) are committed; raises
    what their commit raised (:class:`~sqlalchemy.exc.IntegrityError` when they break a constraint).

    housekeeping
        Run inside a write transaction at most every ``housekeeping_every_s`` seconds (e.g.
        deleting expired rows), so that it costs no commit of its own.
    """

    def __init__(
        self,
        engine: Engine,
        housekeeping: Callable[[Connection], None] | None = None,
        housekeeping_every_s: float = 60.0,
    ) -> None:
        self.engine = engine
        self._housekeeping = housekeeping
        self._every = housekeeping_every_s
        self._last_housekeeping = float("-inf")
        self._queue: list[_Item] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def write(self, rows: Sequence[Row]) -> None:
        item = _Item(rows)
        with self._wake:
            self._queue.append(item)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hipdx-group-commit", daemon=True)
                self._thread.start()
            self._wake.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                batch, self._queue = self._queue, []
            self._commit(batch)

    def _commit(self, batch: list[_Item]) -> None:
        try:
            with self.engine.begin() as connection:
                self._tidy(connection)
                _insert(connection, [row for item in batch for row in item.rows])
        except IntegrityError as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:  # one caller's rows break a constraint: find whose, commit the others'
                for item in batch:
                    self._alone(item)
        except BaseException as exc:  # noqa: BLE001 - handed to every caller, who decides
            for item in batch:
                item.error = exc
        for item in batch:
            item.done.set()

    def _alone(self, item: _Item) -> None:
        try:
            with self.engine.begin() as connection:
                _insert(connection, item.rows)
        except BaseException as exc:  # noqa: BLE001
            item.error = exc

    def _tidy(self, connection: Connection) -> None:
        now = time.monotonic()
        if self._housekeeping is not None and now - self._last_housekeeping >= self._every:
            self._housekeeping(connection)
            self._last_housekeeping = now


def _insert(connection: Connection, rows: Sequence[Row]) -> None:
    """One multi-row INSERT per table, in the order the tables first appear."""
    by_table: dict[type, list[dict[str, Any]]] = {}
    for table, values in rows:
        by_table.setdefault(table, []).append(values)
    for table, values in by_table.items():
        connection.execute(insert(table), values)
