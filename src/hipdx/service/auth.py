"""Checking a CDS client's JWT, as CDS Hooks 2.0 asks (https://cds-hooks.hl7.org/2.0/#trusting-cds-clients).

Every call carries ``Authorization: Bearer <JWT>``. A token is accepted only when:

- its issuer (``iss``) is on the allow-list (``--cds-issuers FILE``), and its signature
  verifies against that issuer's JWK Set, by the header's ``kid``: pinned in the file, or
  fetched from the issuer's configured ``jwks_url`` and cached (:mod:`hipdx.service.jwks`); a
  ``jku`` header must be one the allow-list names for the issuer (hipdx never fetches a ``jku``);
- ``alg`` is ES384 or RS384 (never ``none``, never a symmetric HS*), ``typ`` is JWT;
- ``aud`` is exactly the URL being called (a string, or an array holding that one string: CDS
  Hooks 2.0 allows both, as RFC 7519 does); ``exp``, ``iat`` and ``jti`` are present; ``exp``
  has not passed and ``iat`` is not in the future (60 s leeway); the token lives at most an hour;
- its ``jti`` has not been seen from that issuer before (replay), and its ``tenant``, when the
  issuer lists tenants, is one of them.

Any failure is :class:`Unauthorized`, which the service answers with 401 and no detail. The
reason goes to the log with the issuer and ``jti`` only, never the token.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jwt
from jwt import PyJWK

from hipdx.errors import InputError, Problem
from hipdx.fhir.jsonread import read_json
from hipdx.service.jwks import ALGORITHMS, JwksUnavailable, RemoteJwks, https_or_loopback, public_keys

LEEWAY_SECONDS = 60
MAX_LIFETIME_SECONDS = 3600


class ReplayCache(Protocol):
    def first_use(self, issuer: str, jti: str, until: float, now: float) -> bool: ...


class Unauthorized(Exception):
    """The call is not from a trusted CDS client; the reason is for the log only."""


@dataclass(frozen=True)
class Issuer:
    iss: str
    keys: dict[str, PyJWK]
    jku: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    #: the issuer's JWK Set by URL (then ``keys`` is empty)
    remote: RemoteJwks | None = None

    def key(self, kid: str, now: float) -> PyJWK | None:
        """The key of this ``kid``; :class:`Unauthorized` when the remote set cannot be fetched."""
        if self.remote is None:
            return self.keys.get(kid)
        try:
            return self.remote.key(kid, now)
        except JwksUnavailable as exc:
            raise Unauthorized(f"issuer {self.iss!r}: {exc}") from None


@dataclass
class IssuerList:
    """The trusted CDS clients, read from a JSON file: a list of issuers, or ``{"issuers": [...]}``::

    [{"iss": "https://ehr.example.org",
      "jwks_url": "https://ehr.example.org/.well-known/jwks.json"   (or "jwks": {"keys": [...]},
                                                                      or "jwks_file": "ehr-jwks.json"),
      "jku": ["https://ehr.example.org/jwks.json"],                 (optional)
      "tenants": ["hospital-a"]}]                                   (optional)
    """

    issuers: dict[str, Issuer]
    #: a replay cache shared by every worker (``first_use(iss, jti, until, now) -> bool``, e.g.
    #: :class:`hipdx.store.replay.DatabaseReplayCache`); None: this process's memory only
    replay: ReplayCache | None = None
    _seen: dict[tuple[str, str], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_file(cls, path: Path) -> IssuerList:
        """Read the allow-list.

        Raises
        ------
        InputError
            The file cannot be read, is not strict JSON, or an issuer lacks ``iss`` or keys,
            or a key is not an ES384/RS384 public key with a ``kid``.
        """
        try:
            raw = read_json(path.read_bytes(), str(path))
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        except Exception as exc:  # IntegrationError from the strict reader: for this file it is an input problem
            raise InputError(f"{path}: {exc}") from None
        return cls.from_data(raw, path.parent, str(path))

    @classmethod
    def from_data(cls, raw: Any, folder: Path, name: str = "the issuer list") -> IssuerList:
        entries = raw.get("issuers") if isinstance(raw, dict) and set(raw) == {"issuers"} else raw
        if not isinstance(entries, list) or not entries:
            raise InputError(f'{name} must be a list of issuers [{{"iss": ..., "jwks_url": ...}}] '
                             f'(or {{"issuers": [...]}}) with at least one issuer')
        issuers: dict[str, Issuer] = {}
        problems = []
        for i, item in enumerate(entries):
            where = f"issuers[{i}]"
            try:
                issuer = _issuer(item, folder)
            except _Bad as exc:
                problems.append(Problem(f"{where}.{exc.field}" if exc.field else where, exc.reason))
                continue
            if issuer.iss in issuers:
                problems.append(Problem(f"{where}.iss", f"{issuer.iss!r} is listed twice"))
            issuers[issuer.iss] = issuer
        if problems:
            raise InputError(f"{name} is not valid", problems)
        return cls(issuers)

    def verify(self, authorization: str | None, audience: str, now: float | None = None) -> dict[str, Any]:
        """The token's claims when it is trusted; :class:`Unauthorized` otherwise."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("no bearer token")
        token = authorization[len("Bearer ") :].strip()
        try:  # one unverified parse for the header and the issuer; the signed decode below is the only check
            parsed = jwt.decode_complete(token, options={"verify_signature": False})
            header, unverified = parsed["header"], parsed["payload"]
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"not a JWT: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"algorithm {header.get('alg')!r} is not ES384 or RS384")
        if header.get("typ") != "JWT":
            raise Unauthorized("typ is not JWT")
        issuer = self.issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise Unauthorized(f"issuer {unverified.get('iss')!r} is not on the allow-list")
        if "jku" in header and header["jku"] not in issuer.jku:
            raise Unauthorized("jku is not one the allow-list names for this issuer")
        now = time.time() if now is None else now
        key = issuer.key(str(header.get("kid")), now)
        if key is None:
            raise Unauthorized("no key of this issuer has this kid")
        if key.algorithm_name != header["alg"]:
            raise Unauthorized("the key's algorithm does not match the token's")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[header["alg"]],
                issuer=issuer.iss,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"{type(exc).__name__}: {exc}") from None
        if claims["aud"] != audience and claims["aud"] != [audience]:
            raise Unauthorized("aud is not the URL called (a string, or an array of that one string)")
        if not isinstance(claims["iat"], (int, float)) or not isinstance(claims["exp"], (int, float)):
            raise Unauthorized("iat and exp must be numbers")
        if claims["iat"] > now + LEEWAY_SECONDS:
            raise Unauthorized("issued in the future")
        if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
            raise Unauthorized("lives longer than an hour")
        if issuer.tenants and claims.get("tenant") not in issuer.tenants:
            raise Unauthorized("tenant is not on the allow-list")
        self._remember(issuer.iss, str(claims["jti"]), float(claims["exp"]) + LEEWAY_SECONDS, now)
        return claims

    def _remember(self, iss: str, jti: str, until: float, now: float) -> None:
        if self.replay is not None:
            if not self.replay.first_use(iss, jti, until, now):
                raise Unauthorized("jti seen before (replay)")
            return
        with self._lock:
            for key in [k for k, expiry in self._seen.items() if expiry < now]:
                del self._seen[key]
            if (iss, jti) in self._seen:
                raise Unauthorized("jti seen before (replay)")
            self._seen[(iss, jti)] = until


class _Bad(Exception):
    """One field of one issuer entry is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


_FIELDS = ("iss", "jwks", "jwks_file", "jwks_url", "jku", "tenants")


def _issuer(item: Any, folder: Path) -> Issuer:
    if not isinstance(item, dict):
        raise _Bad("", 'an issuer is an object {"iss": ..., "jwks_url": ...}')
    for name in item:
        if name not in _FIELDS:
            hint = " (did you mean 'jwks_url'?)" if name in ("jwks_uri", "jwksUrl", "jwks_uri_url") else ""
            raise _Bad(str(name), f"not a known field{hint}; known: {', '.join(_FIELDS)}")
    if not isinstance(item.get("iss"), str) or not item["iss"]:
        raise _Bad("iss", "needs an 'iss' (the client's issuer URI)")
    given = [k for k in ("jwks", "jwks_file", "jwks_url") if k in item]
    if len(given) != 1:
        raise _Bad("jwks_url", "needs exactly one of 'jwks_url' (the client's JWK Set URL), 'jwks' (a JWK Set) "
                               f"or 'jwks_file'{'; given: ' + ', '.join(given) if given else ''}")
    jku, tenants = item.get("jku", []), item.get("tenants", [])
    if not isinstance(jku, list) or not all(isinstance(u, str) for u in jku):
        raise _Bad("jku", "'jku' must be a list of URLs")
    if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
        raise _Bad("tenants", "'tenants' must be a list of strings")
    if given == ["jwks_url"]:
        url = item["jwks_url"]
        if not isinstance(url, str) or not https_or_loopback(url):
            raise _Bad("jwks_url", "must be an https URL (http only on a loopback address)")
        return Issuer(item["iss"], {}, tuple(jku), tuple(tenants), RemoteJwks(item["iss"], url))
    jwks = item.get("jwks")
    if given == ["jwks_file"]:
        if not isinstance(item["jwks_file"], str):
            raise _Bad("jwks_file", "must be a file name")
        path = folder / item["jwks_file"]
        try:
            jwks = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _Bad("jwks_file", f"cannot read jwks_file {path}: {exc}") from None
    field = given[0]
    try:
        keys = public_keys(jwks, strict=True, where=field)
    except ValueError as exc:
        raise _Bad(field, str(exc)) from None
    if not keys:
        raise _Bad(field, f"needs '{field}' with at least one key (a JWK Set)")
    return Issuer(item["iss"], keys, tuple(jku), tuple(tenants))
