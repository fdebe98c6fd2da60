"""The cases the pages list, open and save.

Two sources with one shape: :class:`CaseLibrary`, read once from a folder of case files
(read-only: the examples, the tests), and :class:`StoredCases`, the service's database
(:mod:`hipdx.store.records`: saved cases with their visits). A file that is not a valid case
is left out of the library with its reason, never guessed at.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hipdx.case import parse_case
from hipdx.errors import HipdxError

log = logging.getLogger("hipdx.web")



def plain_number(text: str) -> int | None:
    """The number ``text`` gives in a path or a form (a case, a visit, a slice): 1-12 ASCII digits; None for
    anything else (``str.isdigit`` also passes ``"²"``, which ``int`` refuses, and digits too many for the database)."""
    return int(text) if 0 < len(text) <= 12 and text.isascii() and text.isdigit() else None


def summary_of(document: dict[str, Any]) -> str:
    """The first sentence of a case's note."""
    note = document.get("note")
    if not isinstance(note, str) or not note.strip():
        return ""
    return note.strip().split(". ")[0].rstrip(".") + "."


@dataclass(frozen=True)
class CaseRow:
    """One case: its id in the URL, its label, the document as entered (``document``) and with
    the visits added since (``full``), and a version that changes whenever it does."""

    id: str
    label: str
    document: dict[str, Any]
    full: dict[str, Any]
    version: int = 0
    summary: str = ""
    visits_added: int = 0


class CaseSource(Protocol):
    writable: bool

    def search(self, query: str) -> list[CaseRow]: ...

    def get(self, case_id: str) -> CaseRow | None: ...


@dataclass(frozen=True)
class CaseLibrary:
    """Read-only cases by id, in file-name order."""

    rows: dict[str, CaseRow] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    writable: bool = False

    @classmethod
    def empty(cls) -> CaseLibrary:
        return cls()

    @classmethod
    def from_folder(cls, folder: Path, today: dt.date) -> CaseLibrary:
        """Every ``*.json`` case of ``folder`` that is valid on ``today``."""
        rows: dict[str, CaseRow] = {}
        skipped: dict[str, str] = {}
        for path in sorted(folder.glob("*.json")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                parse_case(raw, today)
            except (OSError, ValueError, HipdxError) as err:
                skipped[path.name] = str(err)
                log.warning("case file %s left out: %s", path, err)
                continue
            rows[path.stem] = CaseRow(path.stem, path.stem, raw, raw, 0, summary_of(raw))
        return cls(rows, skipped)

    def search(self, query: str) -> list[CaseRow]:
        words = query.lower().split()
        return [r for r in self.rows.values() if all(w in f"{r.label} {r.summary}".lower() for w in words)]

    def get(self, case_id: str) -> CaseRow | None:
        return self.rows.get(case_id)


class StoredCases:
    """The service's saved cases (:mod:`hipdx.store.records`); ids are the database's numbers."""

    writable = True
    LIST_LIMIT = 200

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    @staticmethod
    def _row(record: Any) -> CaseRow:
        return CaseRow(str(record.id), record.label, record.document, record.full_case(), record.version,
                       summary_of(record.document), len(record.visits))

    def search(self, query: str) -> list[CaseRow]:
        from hipdx.store import records

        _, found = records.list_cases(self.engine, query.strip() or None, self.LIST_LIMIT, 0)
        return [self._row(r) for r in found]

    def get(self, case_id: str) -> CaseRow | None:
        from hipdx.store import records

        number = plain_number(case_id)
        if number is None:
            return None
        record = records.get_case(self.engine, number)
        return None if record is None else self._row(record)

    def save(self, case_id: str | None, label: str, document: dict[str, Any], user: str,
             audit: dict[str, Any] | None = None, from_job: tuple[str, Any] | None = None,
             version: int | None = None) -> CaseRow | None:
        """Create (no id) or update a case; None when the id names no case. ``audit``: the access
        record, written in the change's own transaction (its ``{id}`` the new case's number); a
        refused record raises :class:`hipdx.store.records.AuditRefused` and nothing is changed.
        ``from_job``: (MRI job id, findings) an update adds, marked on the job in that transaction.
        ``version``: the version the page was opened on; a case changed since raises
        :class:`hipdx.store.records.StaleVersion` and nothing is written."""
        from hipdx.store import records

        if case_id is None:
            return self._row(records.create_case(self.engine, label, document, user, audit))
        number = plain_number(case_id)
        if number is None:
            return None
        record = records.update_case(self.engine, number, label, document, audit, from_job, version)
        return None if record is None else self._row(record)

    def change_visit(self, case_id: str, index: int, visit: dict[str, Any] | None, version: int,
                     audit: dict[str, Any] | None = None) -> CaseRow | None:
        """Replace (or, with None, delete) visit ``index`` of the case, with its access record
        ``audit``; None when there is no such case or visit; raises
        :class:`hipdx.store.records.StaleVersion` when the case changed."""
        from hipdx.store import records

        number = plain_number(case_id)
        if number is None:
            return None
        record = records.change_visit(self.engine, number, index, visit, version, audit)
        return None if record is None else self._row(record)

    def mri_jobs(self, case_id: str) -> list[dict[str, Any]]:
        """The MRI analyses uploaded from a case, newest first (:func:`hipdx.store.records.jobs_of_case`)."""
        from hipdx.store import records

        number = plain_number(case_id)
        return records.jobs_of_case(self.engine, number) if number is not None else []

    def add_visit(self, case_id: str, visit: dict[str, Any], user: str, audit: dict[str, Any] | None = None) -> CaseRow | None:
        """Add a visit to the case, with its access record ``audit``; None when there is no such case."""
        from hipdx.store import records

        number = plain_number(case_id)
        if number is None:
            return None
        record = records.add_visit(self.engine, number, visit, user, audit)
        return None if record is None else self._row(record)
