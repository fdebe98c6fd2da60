"""Checking a CDS client's JWT, as CDS Hooks 2.0 asks (https://cds-hooks.hl7.org/2.0/#trusting-cds-clients).

Every call carries ``Authorization: Bearer <JWT>``. A token is accepted only when:

- its issuer (``iss``) is on the allow-list (``--cds-issuers FILE``), and its signature
  verifies against that issuer's pinned JWK Set, by the header's ``kid``; a ``jku`` header
  must be one the allow-list names for the issuer (hipdx never fetches an arbitrary ``jku``);
- ``alg`` is ES384 or RS384 (never ``none``, never a symmetric HS*), ``typ`` is JWT;
- ``aud`` is exactly the URL being called; ``exp``, ``iat`` and ``jti`` are present; ``exp``
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

ALGORITHMS = ("ES384", "RS384")
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


@dataclass
class IssuerList:
    """The trusted CDS clients, read from a JSON file::

    {"issuers": [{"iss": "https://ehr.example.org",
                  "jwks": {"keys": [...]}          (or "jwks_file": "ehr-jwks.json"),
                  "jku": ["https://ehr.example.org/jwks.json"],   (optional)
                  "tenants": ["hospital-a"]}]}                     (optional)
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
        if not isinstance(raw, dict) or not isinstance(raw.get("issuers"), list) or not raw["issuers"]:
            raise InputError(f'{name} must be {{"issuers": [...]}} with at least one issuer')
        issuers: dict[str, Issuer] = {}
        problems = []
        for i, item in enumerate(raw["issuers"]):
            where = f"issuers[{i}]"
            try:
                issuer = _issuer(item, folder, where)
            except ValueError as exc:
                problems.append(Problem(where, str(exc)))
                continue
            issuers[issuer.iss] = issuer
        if problems:
            raise InputError(f"{name} is not valid", problems)
        return cls(issuers)

    def verify(self, authorization: str | None, audience: str, now: float | None = None) -> dict[str, Any]:
        """The token's claims when it is trusted; :class:`Unauthorized` otherwise."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("no bearer token")
        token = authorization[len("Bearer ") :].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
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
        key = issuer.keys.get(str(header.get("kid")))
        if key is None:
            raise Unauthorized("no pinned key with this kid")
        if key.algorithm_name != header["alg"]:
            raise Unauthorized("the key's algorithm does not match the token's")
        now = time.time() if now is None else now
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[header["alg"]],
                audience=audience,
                issuer=issuer.iss,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "jti"], "strict_aud": True},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"{type(exc).__name__}: {exc}") from None
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


def _issuer(item: Any, folder: Path, where: str) -> Issuer:
    if not isinstance(item, dict) or not isinstance(item.get("iss"), str) or not item["iss"]:
        raise ValueError("needs an 'iss' (the client's issuer URI)")
    jwks = item.get("jwks")
    if jwks is None and isinstance(item.get("jwks_file"), str):
        path = folder / item["jwks_file"]
        try:
            jwks = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read jwks_file {path}: {exc}") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError("needs 'jwks' (a JWK Set with keys) or 'jwks_file'")
    keys = {}
    for j, jwk in enumerate(jwks["keys"]):
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            raise ValueError(f"jwks.keys[{j}] needs a 'kid'")
        if "d" in jwk:
            raise ValueError(f"jwks.keys[{j}] holds a private key; pin the public key only")
        algorithm = jwk.get("alg") or {"EC": "ES384", "RSA": "RS384"}.get(jwk.get("kty", ""))
        if algorithm not in ALGORITHMS:
            raise ValueError(f"jwks.keys[{j}] is not an ES384 or RS384 key")
        try:
            keys[jwk["kid"]] = PyJWK(jwk, algorithm=algorithm)
        except jwt.PyJWTError as exc:
            raise ValueError(f"jwks.keys[{j}]: {exc}") from None
        if algorithm == "ES384" and jwk.get("crv") != "P-384":
            raise ValueError(f"jwks.keys[{j}]: ES384 needs curve P-384")
    jku = item.get("jku", [])
    tenants = item.get("tenants", [])
    if not isinstance(jku, list) or not all(isinstance(u, str) for u in jku):
        raise ValueError("'jku' must be a list of URLs")
    if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
        raise ValueError("'tenants' must be a list of strings")
    return Issuer(item["iss"], keys, tuple(jku), tuple(tenants))
