"""The building blocks of hipdx's Markdown: text made inert, table cells and tables.

One home for them: every Markdown renderer (assessment, management, MRI, summary) imports them from here.
"""

from __future__ import annotations

from collections.abc import Sequence


def escape_html(text: str) -> str:
    """Text from the case made inert in Markdown: ``&``, ``<`` and ``>`` as entities, so no raw HTML.

    >>> escape_html('<img src=x onerror="alert(1)">')
    '&lt;img src=x onerror="alert(1)"&gt;'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cell(text: str) -> str:
    """Text made safe for one cell of a Markdown table (no pipe, no line break)."""
    return " ".join(text.split()).replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown (GitHub) table."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
