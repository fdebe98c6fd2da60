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

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hipdx.errors import ConflictError, InputError, Problem
from hipdx.store.tables import Token, User

#: argon2id with the library's defaults (RFC 9106 "second recommended" parameters: 64 MiB, t=3, p=4)
_HASHER = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MIN_PASSWORD_LENGTH = 12


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


def add_user(engine: Engine, username: str, password: str, role: Role) -> None:
    """Create a user.

    Raises
    ------
    InputError
        The name is not 1-100 letters, digits or ``._@-``, the password is shorter than 12
        characters, or the name is taken.
    """
    problems = []
    if not _USERNAME.match(username):
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
    except IntegrityError:
        raise ConflictError("the user is not valid", [Problem("username", f"{username!r} exists already")]) from None


def list_users(engine: Engine) -> list[tuple[str, str, bool]]:
    with Session(engine) as session:
        return [(u.username, u.role, u.active) for u in session.scalars(select(User).order_by(User.username))]


def sign_in(engine: Engine, username: str, password: str, kind: str, lifetime: dt.timedelta) -> str | None:
    """A new token for the user when the password is right; None otherwise (whatever the reason)."""
    with Session(engine) as session, session.begin():
        user = session.scalars(select(User).where(User.username == username)).first()
        if user is None:
            _HASHER.hash(password)  # the same work as for a known user: no timing oracle on names
            return None
        try:
            _HASHER.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if not user.active:
            return None
        if _HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = _HASHER.hash(password)
        token = secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.timezone.utc)
        session.add(Token(token_hash=hash_token(token), user_id=user.id, kind=kind, created_at=now,
                          expires_at=now + lifetime))
        session.execute(delete(Token).where(Token.expires_at < now))
        return token


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
