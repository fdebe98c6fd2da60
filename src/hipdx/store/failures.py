"""A database's failure in the user's words, in one place: which database (its password masked),
what failed, what to do. Every entry point that opens the service's database (``hipdx serve``,
``hipdx db ...``) goes through :func:`reported`, so none prints a driver's traceback, its SQL or
its parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from alembic.util import CommandError
from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, InternalError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hipdx.errors import DatabaseError, HipdxError

UPGRADE = "run `hipdx db upgrade` with this --database-url"

#: what a running service meets when its database is away, locked, read-only or not at its schema
#: (not an integrity or data error, which is a defect of hipdx's own and stays a 500)
UNAVAILABLE: tuple[type[SQLAlchemyError], ...] = (OperationalError, InterfaceError, InternalError, ProgrammingError, PoolTimeout)
#: the answer to a request that met one of them: no driver text (it may quote the statement's values)
UNAVAILABLE_DETAIL = "the service's database is not available or refused the operation; nothing was changed, try again shortly"
RETRY_AFTER = {"Retry-After": "5"}


_QUERY_SECRET = re.compile(r"([?&](?:password|passwd|pwd|sslpassword|secret|token)=)[^&#]*", re.IGNORECASE)


def masked(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``, in the user part and in a query parameter
    (libpq's ``?password=``, ``sslpassword=``), also when it does not parse."""
    try:
        parsed = make_url(url)
        text = str(url) if isinstance(url, str) and parsed.password is None else parsed.render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        text = re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", str(url))
    return _QUERY_SECRET.sub(r"\1***", text)


def database_error(exc: BaseException, url: str | URL, doing: str) -> DatabaseError:
    """``exc``, raised by the driver, SQLAlchemy or Alembic while ``doing`` something with the database
    at ``url``, as a :class:`~hipdx.errors.DatabaseError` naming the problem and what to do."""
    where = masked(url)
    detail = _driver_message(exc)
    text = detail.lower()
    parsed = _parsed(url)
    if isinstance(exc, CommandError) and "can't locate revision" in text:
        revision = re.search(r"identified by '([^']+)'", detail)
        return DatabaseError(f"the database {where} is at schema revision {revision.group(1) if revision else '?'}, "
                             "which this version of hipdx does not know (a newer hipdx upgraded it): "
                             "run that version, or restore the database from a backup")
    if "connection refused" in text:
        host = f"{parsed.host or 'localhost'}:{parsed.port or 5432}" if parsed is not None else "its address"
        return DatabaseError(f"cannot connect to the database {where}: the server refused the connection "
                             f"(is PostgreSQL running and listening on {host}?)")
    missing = re.search(r'database "([^"]+)" does not exist', detail)
    if missing:
        return DatabaseError(f"the database {missing.group(1)!r} does not exist on the server of {where}: "
                             f"create it (createdb {missing.group(1)}), then {UPGRADE}")
    if "password authentication failed" in text or "no password supplied" in text or re.search(r'role "[^"]+" does not exist', text):
        return DatabaseError(f"the database server refused to sign in to {where}: check the user name and password")
    if "could not translate host name" in text or "name or service not known" in text or "timeout" in text:
        return DatabaseError(f"cannot reach the database server of {where}: {detail} (check the host name and the network)")
    if "unable to open database file" in text:
        return DatabaseError(f"cannot open the SQLite database {where}: its folder does not exist, "
                             "or the file or its folder cannot be written (check the path and the permissions)")
    if "file is not a database" in text:
        return DatabaseError(f"{where} is not an SQLite database (the file holds something else): give the service's database")
    if "readonly database" in text or "read-only" in text:
        return DatabaseError(f"the database {where} is read-only, so {doing} failed: give a database hipdx can write to")
    if "no such table" in text or "undefinedtable" in text or re.search(r'relation "[^"]+" does not exist', text):
        return DatabaseError(f"the database {where} lacks the service's tables: {UPGRADE}")
    if "database is locked" in text:
        return DatabaseError(f"the database {where} stayed locked by another process, so {doing} failed: try again")
    return DatabaseError(f"the database {where} failed while {doing}: {type(exc).__name__}: {detail}")


@contextmanager
def reported(url: str | URL, doing: str) -> Iterator[None]:
    """Turn a failure of the database at ``url`` in the block into a :class:`~hipdx.errors.DatabaseError`
    (an error hipdx raises on purpose passes unchanged, but a DatabaseError raised from the driver's
    error is named with it)."""
    try:
        yield
    except DatabaseError as exc:
        if isinstance(exc.__cause__, SQLAlchemyError):  # e.g. records.AuditRefused: the operator reads the driver's word
            raise database_error(exc.__cause__, url, doing) from None
        raise
    except HipdxError:
        raise
    except (SQLAlchemyError, CommandError) as exc:
        raise database_error(exc, url, doing) from None


def _driver_message(exc: BaseException) -> str:
    """The first line of what the driver said (never SQLAlchemy's appended SQL and parameters)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _parsed(url: str | URL) -> URL | None:
    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return None
