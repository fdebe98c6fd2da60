"""The cases the pages list and open: read once from a folder of case files (``examples/``).

Each case is assessed once when it is read (the base and the cases do not change while the
service runs); a file that is not a valid case is left out with its reason, never guessed at.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hipdx.case import parse_case
from hipdx.errors import HipdxError
from hipdx.knowledge import KnowledgeBase
from hipdx.reasoning import Assessment, assess

log = logging.getLogger("hipdx.web")


@dataclass(frozen=True)
class LibraryCase:
    id: str
    raw: dict[str, Any]
    summary: str
    assessment: Assessment

    def matches(self, query: str) -> bool:
        """Whether every word of ``query`` appears in the case's label, summary, leading
        diagnosis or red flags (case-insensitive)."""
        leading = self.assessment.differential[0]
        text = " ".join(
            [self.id, self.summary, leading.name, leading.short, *(f.title for f in self.assessment.red_flags)]
        ).lower()
        return all(word in text for word in query.lower().split())


@dataclass(frozen=True)
class CaseLibrary:
    """Read-only cases by id, in file-name order."""

    cases: dict[str, LibraryCase]
    skipped: dict[str, str]

    @classmethod
    def empty(cls) -> CaseLibrary:
        return cls({}, {})

    @classmethod
    def from_folder(cls, folder: Path, kb: KnowledgeBase, today: dt.date) -> CaseLibrary:
        """Every ``*.json`` case of ``folder``, assessed on ``today``."""
        cases: dict[str, LibraryCase] = {}
        skipped: dict[str, str] = {}
        for path in sorted(folder.glob("*.json")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                case = parse_case(raw, today)
            except (OSError, ValueError, HipdxError) as err:
                skipped[path.name] = str(err)
                log.warning("case file %s left out: %s", path, err)
                continue
            case_id = path.stem
            note = (case.note or "").strip()
            summary = note.split(". ")[0].rstrip(".") + "." if note else ""
            cases[case_id] = LibraryCase(case_id, raw, summary, assess(case, kb, today))
        return cls(cases, skipped)

    def search(self, query: str) -> list[LibraryCase]:
        query = query.strip()
        return [c for c in self.cases.values() if not query or c.matches(query)]
