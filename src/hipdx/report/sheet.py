"""The one-page information sheet for patients with transient osteoporosis of the hip.

The words are data (``report/data/patient_sheet_toh.yaml``): plain sentences, each point with
its sources, which are keys of the knowledge base's bibliography, numbered in the footer. The
sheet is rendered by the report templates (``patient_sheet.html``) as HTML; PDF through
:func:`hipdx.report.html.render_pdf`.

Examples
--------
>>> from hipdx import load_knowledge_base
>>> "Come back or call at once if" in render_patient_sheet(load_knowledge_base())
True
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hipdx import __version__
from hipdx.errors import KnowledgeBaseError, Problem
from hipdx.knowledge.base import KnowledgeBase
from hipdx.report import view

SHEET_FILE = "data/patient_sheet_toh.yaml"


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Data):
    """One plain sentence or two, with the bibliography keys of its sources."""

    text: str = Field(min_length=1)
    refs: list[str] = Field(min_length=1)


class Section(_Data):
    heading: str
    points: list[Point] = Field(min_length=1)


class PatientSheet(_Data):
    """The sheet: its title, its sections, the red-flag box and a closing line."""

    condition: str
    title: str
    subtitle: str
    sections: list[Section] = Field(min_length=1)
    come_back: Section
    closing: str

    def points(self) -> list[Point]:
        return [p for s in [*self.sections, self.come_back] for p in s.points]

    def plain_text(self) -> str:
        """The words a patient reads (headings and points), for measuring the reading level."""
        def sentence(text: str) -> str:
            return text if text.endswith((".", "?", "!")) else text + "."

        parts = [sentence(self.title), sentence(self.subtitle)]
        for section in [*self.sections, self.come_back]:
            parts.append(sentence(section.heading))
            parts += [p.text for p in section.points]
        parts.append(self.closing)
        return "\n".join(parts)


@lru_cache(maxsize=1)
def load_patient_sheet() -> PatientSheet:
    """The bundled sheet, validated.

    Raises
    ------
    KnowledgeBaseError
        The file does not fit the schema.
    """
    text = resources.files("hipdx.report").joinpath(SHEET_FILE).read_text(encoding="utf-8")
    try:
        return PatientSheet.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise KnowledgeBaseError(
            f"{SHEET_FILE} is not valid",
            [Problem(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors(include_url=False)],
        ) from None


def sheet_references(sheet: PatientSheet, kb: KnowledgeBase) -> list[tuple[str, str]]:
    """(key, citation) for every source of the sheet, in order of first citation.

    Raises
    ------
    KnowledgeBaseError
        A key the bibliography does not hold: the sheet never cites what cannot be found.
    """
    keys = list(dict.fromkeys(k for p in sheet.points() for k in p.refs))
    unknown = [k for k in keys if k not in kb.references]
    if unknown:
        raise KnowledgeBaseError(f"{SHEET_FILE} cites keys the bibliography does not hold", [Problem("refs", ", ".join(unknown))])
    return [(k, view.citation(k, kb.references[k])) for k in keys]


def render_patient_sheet(kb: KnowledgeBase) -> str:
    """The sheet as a self-contained HTML page (one A4 page when printed)."""
    from hipdx.report.html import environment, stylesheet

    sheet = load_patient_sheet()
    references = sheet_references(sheet, kb)
    number = {key: n for n, (key, _) in enumerate(references, start=1)}
    return environment().get_template("patient_sheet.html").render(
        css=stylesheet(),
        title=sheet.title,
        sheet=sheet,
        number=number,
        references=references,
        provenance=f"hipdx {__version__}, knowledge base {kb.version} ({kb.digest})",
    )
