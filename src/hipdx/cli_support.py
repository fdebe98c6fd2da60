"""The command line's error policy, in one place, shared by every command group.

Every command is a :class:`ReportingCommand`: an error leaves as a message on stderr and an
exit code (a :class:`~hipdx.errors.HipdxError` maps to its own), never as a traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand

from hipdx.errors import HipdxError

INTERNAL_ERROR = 70
SUPPORTS = "hipdx supports a clinician's decision; it does not replace it."


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
