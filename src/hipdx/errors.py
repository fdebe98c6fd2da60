"""One hierarchy of errors, each mapped once to an exit code and an HTTP status.

The status is the class's, and every entry point uses it as is (the web service answers
``exc.http_status``): 400 for input the caller got wrong (malformed, invalid, implausible;
RFC 9110 section 15.5.1), 422 for well-formed content that cannot be processed (a FHIR
chart, an imaging study; section 15.5.21), 500 for a fault of hipdx or its knowledge base.

Every error carries a message a clinician or integrator can act on; ``problems``
lists each offending field with its reason, so no problem is lost when several
fields are wrong at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (a dotted field path) and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class HipdxError(Exception):
    """Base of every error hipdx raises on purpose."""

    exit_code = 1
    http_status = 500

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class InputError(HipdxError):
    """The input is malformed, implausible, or uses a unit hipdx does not accept."""

    exit_code = 2
    http_status = 400


class ConflictError(InputError):
    """The input is valid but conflicts with what is stored (a user name taken; RFC 9110 section 15.5.10)."""

    http_status = 409


class ContentTooLarge(InputError):
    """The request body is larger than the service reads (RFC 9110 section 15.5.14, 413); it was not read whole."""

    http_status = 413


class KnowledgeBaseError(HipdxError):
    """The knowledge base is invalid: schema, missing citation, inconsistent numbers."""

    exit_code = 3
    http_status = 500


class ImagingError(HipdxError):
    """An imaging study cannot be read or analysed."""

    exit_code = 4
    http_status = 422


class IntegrationError(HipdxError):
    """An external format (FHIR, CDS Hooks, vignette file) cannot be mapped."""

    exit_code = 5
    http_status = 422


class DatabaseError(HipdxError):
    """The database cannot be reached, opened or written, or is not at the schema hipdx needs
    (the message names the database, its password masked, and what to do; RFC 9110 section 15.6.4)."""

    exit_code = 6
    http_status = 503


class TooManyAttempts(HipdxError):
    """Too many refused sign-ins for this account or from this address lately (RFC 6585 section 4).

    ``retry_after_s``: how long to wait before the next attempt can be considered.
    """

    exit_code = 2
    http_status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
