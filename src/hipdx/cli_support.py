"""The command line's error policy, in one place, shared by every command group.

Every command is a :class:`ReportingCommand`: an error leaves as a message on stderr and an
exit code (a :class:`~hipdx.errors.HipdxError` maps to its own), never as a traceback.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from hipdx.errors import HipdxError, InputError, Problem

INTERNAL_ERROR = 70


class OutputFormat(str, Enum):
    """``--format`` of a command that renders a report: text for the terminal, json, or Markdown."""

    text = "text"
    json = "json"
    markdown = "markdown"


class DataFormat(str, Enum):
    """``--format`` of a command that prints data only: text for reading, json for tools."""

    text = "text"
    json = "json"


class DocumentFormat(str, Enum):
    """``--format`` of a printable document (``hipdx report``, ``patient-sheet``): one HTML page or a PDF."""

    html = "html"
    pdf = "pdf"


SUPPORTS = "hipdx supports a clinician's decision; it does not replace it."
SERIES_HELP = (
    "Set a series' kind: SERIES=KIND, SERIES being its description, SeriesInstanceUID or NIfTI file name, "
    "KIND t1, fluid or unknown (unknown leaves it out). Repeat for several."
)


def series_kinds(values: list[str] | None, option: str) -> dict[str, str]:
    """``["COR PD SPAIR=fluid", ...]`` as the ``kinds`` override of ``read_study``.

    Raises
    ------
    InputError
        A value without ``=``, an empty series name or a kind other than t1, fluid or unknown
        (each named with the option).
    """
    kinds: dict[str, str] = {}
    problems = []
    for value in values or []:
        key, sep, kind = value.rpartition("=")
        key, kind = key.strip(), kind.strip().lower()
        if not sep or not key:
            problems.append(Problem(option, f"{value!r} is not SERIES=KIND"))
        elif kind not in ("t1", "fluid", "unknown"):
            problems.append(Problem(option, f"{value!r}: kind {kind!r} is not one of t1, fluid, unknown"))
        else:
            kinds[key] = kind
    if problems:
        raise InputError("invalid series kind override", problems)
    return kinds


# -- error policy: one place --------------------------------------------------------------


def report_error(exc: Exception) -> int:
    """Print ``exc`` as a message on stderr and return the exit code it maps to."""
    if isinstance(exc, HipdxError):
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    typer.echo(f"internal error: {type(exc).__name__}: {exc} (please report)", err=True)
    return INTERNAL_ERROR


class ReportingCommand(TyperCommand):
    """A command whose errors leave through :func:`report_error`, never as a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, BrokenPipeError):
            raise  # typer's own handling: exit codes, "Aborted!", a closed pipe
        except Exception as exc:
            raise typer.Exit(report_error(exc)) from None


TodayOption = Annotated[
    datetime | None,
    typer.Option(
        "--today",
        formats=["%Y-%m-%d"],
        metavar="YYYY-MM-DD",
        help="Date of the assessment, for cases that give dates but no assessed_on (default: today).",
        show_default=False,
    ),
]


def assessment_date(value: datetime | None) -> date:
    """The date of the assessment: ``--today`` (checked like any date of a case) or the clock."""
    from hipdx.case.timeline import check_date

    return check_date(value.date(), "--today") if value is not None else date.today()
