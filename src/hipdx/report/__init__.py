"""Every way an assessment (or the knowledge base) leaves hipdx for a reader.

All renderers are pure functions of their input and return a string (the PDF: bytes); the
command line and the other adapters decide where it goes. ``hipdx assess`` prints
:func:`render_summary` (one screen) or, with ``--detail``, :func:`render_text`; ``hipdx report``
writes :func:`hipdx.report.html.render_html` or :func:`~hipdx.report.html.render_pdf` (imported
where used: Jinja2 and WeasyPrint load only for a report). The content and wording shared by the
renderers lives in :mod:`hipdx.report.view`.
"""

from hipdx.report.knowledge import (
    ConditionProfile,
    describe_condition,
    implied_range,
    reference_gaps,
    render_check_text,
    render_condition_text,
)
from hipdx.report.markdown import render_markdown
from hipdx.report.summary import render_summary, render_summary_markdown
from hipdx.report.text import render_brief, render_text

__all__ = [
    "ConditionProfile",
    "describe_condition",
    "implied_range",
    "reference_gaps",
    "render_brief",
    "render_check_text",
    "render_condition_text",
    "render_markdown",
    "render_summary",
    "render_summary_markdown",
    "render_text",
]
