"""Users with roles, argon2 password hashes, and the tokens they sign in with.

A token is 32 random bytes (URL-safe base64) handed to the client once; the database keeps only
its SHA-256, so a copy of the database does not let anyone sign in. A token is either a
``bearer`` token (``Authorization: Bearer ...``, for programs) or a ``session`` (an HttpOnly
cookie for the web pages, whose unsafe requests also carry a CSRF token derived from it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hipdx.errors import ConflictError, InputError, Problem, TooManyAttempts
from hipdx.store import signin
from hipdx.store.records import record_in
from hipdx.store.tables import Token, User

#: argon2id with the library's defaults (RFC 9106 "second recommended" parameters: 64 MiB, t=3, p=4)
_HASHER = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MIN_PASSWORD_LENGTH = 12


def plain_username(name: str) -> bool:
    """True when ``name`` is a user name as hipdx makes them: a letter or digit, then letters,
    digits and ``._@-``, at most 100 characters (no control character, no space)."""
    return _USERNAME.fullmatch(name) is not None


class Role(str, Enum):
    clinician = "clinician"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the signed-in user and how (bearer token or browser session)."""

    username: str
    role: Role
    via: str
    token_hash: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def add_user(engine: Engine, username: str, password: str, role: Role, audit: dict[str, Any] | None = None) -> None:
    """Create a user; ``audit``, an access event as :func:`change_user` takes, is recorded in the
    same transaction (:func:`~hipdx.store.records.record_in`).

    Raises
    ------
    InputError
        The name is not 1-100 letters, digits or ``._@-``, the password is shorter than 12
        characters, or the name is taken.
    AuditRefused
        The database refused the access record: the user was not created.
    """
    problems = []
    if not plain_username(username):
        problems.append(Problem("username", "1-100 characters: letters, digits, '.', '_', '@' or '-'"))
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(Problem("password", f"at least {MIN_PASSWORD_LENGTH} characters"))
    if problems:
        raise InputError("the user is not valid", problems)
    row = User(username=username, role=role.value, password_hash=_HASHER.hash(password), active=True,
               created_at=dt.datetime.now(dt.timezone.utc))
    try:
        with Session(engine) as session, session.begin():
            session.add(row)
            session.flush()
            record_in(session, audit)
    except IntegrityError:
        raise ConflictError("the user is not valid", [Problem("username", f"{username!r} exists already")]) from None


def list_users(engine: Engine) -> list[tuple[str, str, bool]]:
    with Session(engine) as session:
        return [(u.username, u.role, u.active) for u in session.scalars(select(User).order_by(User.username))]


def describe_users(engine: Engine) -> list[dict[str, Any]]:
    """Every user (name, role, enabled or not, created when, live tokens), by name; no hash."""
    now = dt.datetime.now(dt.timezone.utc)
    with Session(engine) as session:
        live = {user_id: count for user_id, count in session.execute(
            select(Token.user_id, func.count()).where(Token.expires_at >= now).group_by(Token.user_id))}
        return [{"username": u.username, "role": u.role, "active": u.active,
                 "created_at": (u.created_at if u.created_at.tzinfo else u.created_at.replace(tzinfo=dt.timezone.utc))
                 .isoformat(), "live_tokens": live.get(u.id, 0)}
                for u in session.scalars(select(User).order_by(User.username))]


def change_user(engine: Engine, username: str, *, role: Role | None = None, active: bool | None = None,
                password: str | None = None, audit: dict[str, Any] | None = None) -> bool:
    """Change a user's role, enable or disable them, or set a new password; False if no such user.

    Disabling a user or setting their password ends every token and session they hold (a
    disabled user cannot sign in, and :func:`principal` refuses their tokens anyway). ``audit``, an
    access event without its time (:class:`~hipdx.store.tables.AccessEvent`), is recorded in the
    same transaction (:func:`~hipdx.store.records.record_in`; its status, 200 unless given, or 404
    when there is no such user): the change and its record are written together or not at all.

    Raises
    ------
    InputError
        The new password is shorter than 12 characters.
    ConflictError
        The change would leave no enabled admin.
    AuditRefused
        The database refused the access record: nothing was changed.
    """
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InputError("the password is not valid", [Problem("password", f"at least {MIN_PASSWORD_LENGTH} characters")])
    new_hash = _HASHER.hash(password) if password is not None else None
    with Session(engine) as session, session.begin():
        user = session.scalars(select(User).where(User.username == username).with_for_update()).first()
        record_in(session, audit if audit is None or user is not None else audit | {"status_code": 404})
        if user is None:
            return False
        demoted = (role is not None and role is not Role.admin) or active is False
        if demoted and user.role == Role.admin.value and user.active and _enabled_admins(session) <= 1:
            raise ConflictError("the change is refused", [Problem(
                "role" if role is not None else "active", f"{username!r} is the last enabled admin")])
        if role is not None:
            user.role = role.value
        if active is not None:
            user.active = active
        if new_hash is not None:
            user.password_hash = new_hash
        if active is False or new_hash is not None:
            session.execute(delete(Token).where(Token.user_id == user.id))
        return True


def _enabled_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User).where(
        User.role == Role.admin.value, User.active.is_(True))) or 0


def sign_in(engine: Engine, username: str, password: str, kind: str, lifetime: dt.timedelta,
            source_address: str | None = None, channel: str | None = None) -> str | None:
    """A new token for the user when the password is right and the user is enabled; None otherwise.

    Every attempt is recorded (:mod:`hipdx.store.signin`: who, when, from where, through which
    door, the outcome; never the password). ``channel``: ``web``, else ``api-token`` or
    ``api-session`` from ``kind``.

    Raises
    ------
    TooManyAttempts
        Too many refusals for this account or from this address lately: the password is not
        checked; ``retry_after_s`` says how long to wait.
    """
    channel = channel or ("api-token" if kind == "bearer" else "api-session")
    now = dt.datetime.now(dt.timezone.utc)
    with Session(engine) as session, session.begin():
        wait = signin.retry_after(session, username, source_address, now)
        if wait is not None:
            signin.record(session, username, source_address, channel, "throttled", now)
        else:
            outcome, token = _check_password(session, username, password, kind, lifetime, now)
            signin.record(session, username, source_address, channel, outcome, now)
            return token
    raise TooManyAttempts("too many refused sign-ins for this account or from this address: try again later", wait)


def _check_password(session: Session, username: str, password: str, kind: str, lifetime: dt.timedelta,
                    now: dt.datetime) -> tuple[str, str | None]:
    """(outcome, token or None): the outcome as :mod:`hipdx.store.signin` records it."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        _HASHER.hash(password)  # the same work as for a known user: no timing oracle on names
        return "unknown-user", None
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return "wrong-password", None
    if not user.active:
        return "disabled", None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    token = secrets.token_urlsafe(32)
    session.add(Token(token_hash=hash_token(token), user_id=user.id, kind=kind, created_at=now,
                      expires_at=now + lifetime))
    session.execute(delete(Token).where(Token.expires_at < now))
    return "signed-in", token


def principal(engine: Engine, token: str, kind: str) -> Principal | None:
    """The user a live token of this kind belongs to; None when unknown, expired or of another kind."""
    digest = hash_token(token)
    now = dt.datetime.now(dt.timezone.utc)
    with Session(engine) as session:
        row = session.execute(
            select(User.username, User.role, Token.expires_at)
            .join(Token, Token.user_id == User.id)
            .where(Token.token_hash == digest, Token.kind == kind, User.active.is_(True))
        ).first()
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.timezone.utc)
    if expires < now:
        return None
    return Principal(row.username, Role(row.role), kind, digest)


def sign_out(engine: Engine, token_hash: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(delete(Token).where(Token.token_hash == token_hash))
