"""A CDS client's JWK Set fetched from its ``jwks_url``, cached, refetched when its keys rotate.

The allow-list (``--cds-issuers FILE``) may give an issuer's keys by URL instead of pinning
them (CDS Hooks 2.0, "Trusting CDS Clients": the client publishes its public keys as a JWK Set
at a URL the service is configured with). The set is fetched over HTTPS (HTTP only on a
loopback address), without following redirects, within :data:`TIMEOUT_SECONDS`, at most
:data:`MAX_JWKS_BYTES`, and kept as long as its ``Cache-Control: max-age`` says, bounded to
:data:`MIN_TTL`-:data:`MAX_TTL` (:data:`DEFAULT_TTL` without one; ``no-store``/``no-cache`` give
the minimum). A token whose ``kid`` is not in the cached set makes it fetched again (the client
rotated its keys), but never sooner than :data:`MIN_REFETCH` after the last fetch: a stream of
tokens with made-up ``kid`` values cannot make hipdx hammer the issuer. Only public keys usable
for ES384 (EC P-384) or RS384 signatures (``use`` absent or ``sig``) are kept; the others are
skipped. A set that cannot be fetched makes the call a 401 (no detail to the caller; the reason
logged with the issuer and URL, never a token), and a failed fetch is not retried before
:data:`MIN_REFETCH` either.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
import jwt
from jwt import PyJWK

log = logging.getLogger("hipdx.service")
ALGORITHMS = ("ES384", "RS384")
TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 256 * 1024
MIN_TTL = 60.0
DEFAULT_TTL = 15 * 60.0
MAX_TTL = 24 * 3600.0
MIN_REFETCH = 30.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


class JwksUnavailable(Exception):
    """The issuer's JWK Set cannot be had now; the reason is for the log only."""


def https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.hostname) and (parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}))


def public_keys(jwks: Any, strict: bool, where: str = "jwks") -> dict[str, PyJWK]:
    """The ES384/RS384 public signing keys of a JWK Set, by ``kid``.

    ``strict`` (a pinned set in the allow-list): a key that is not one is a ``ValueError``
    naming it; otherwise (a fetched set) such keys are skipped.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError(f"{where} is not a JWK Set (an object with a 'keys' list)")
    keys: dict[str, PyJWK] = {}
    for j, jwk in enumerate(jwks["keys"]):
        try:
            kid, key = _public_key(jwk, f"{where}.keys[{j}]")
        except ValueError:
            if strict:
                raise
            continue
        keys[kid] = key
    return keys


def _public_key(jwk: Any, where: str) -> tuple[str, PyJWK]:
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
        raise ValueError(f"{where} needs a 'kid'")
    if "d" in jwk:
        raise ValueError(f"{where} holds a private key; pin the public key only")
    if jwk.get("use", "sig") != "sig":
        raise ValueError(f"{where} is not a signing key (use {jwk.get('use')!r})")
    algorithm = jwk.get("alg") or {"EC": "ES384", "RSA": "RS384"}.get(jwk.get("kty", ""))
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{where} is not an ES384 or RS384 key")
    if algorithm == "ES384" and jwk.get("crv") != "P-384":
        raise ValueError(f"{where}: ES384 needs curve P-384")
    try:
        return jwk["kid"], PyJWK(jwk, algorithm=algorithm)
    except jwt.PyJWTError as exc:
        raise ValueError(f"{where}: {exc}") from None


def ttl(cache_control: str | None) -> float:
    """How long to keep a fetched set (seconds), from its ``Cache-Control``, within the bounds."""
    if not cache_control:
        return DEFAULT_TTL
    if re.search(r"\b(no-store|no-cache)\b", cache_control, re.IGNORECASE):
        return MIN_TTL
    found = _MAX_AGE.search(cache_control)
    if found is None:
        return DEFAULT_TTL
    return min(MAX_TTL, max(MIN_TTL, float(found.group(1))))


class RemoteJwks:
    """One issuer's JWK Set at a URL, cached in this process (each worker keeps its own)."""

    def __init__(self, iss: str, url: str, timeout_s: float = TIMEOUT_SECONDS, min_refetch_s: float = MIN_REFETCH) -> None:
        self.iss, self.url, self.timeout_s, self.min_refetch_s = iss, url, timeout_s, min_refetch_s
        self._keys: dict[str, PyJWK] | None = None
        self._expires = 0.0
        self._fetched_at: float | None = None
        self._failure: str | None = None
        self._lock = threading.Lock()
        #: how many times the set was requested from the issuer (the tests count them)
        self.fetches = 0

    def key(self, kid: str, now: float) -> PyJWK | None:
        """The key with this ``kid``, fetching the set when the cache has expired or lacks the kid.

        Raises
        ------
        JwksUnavailable
            The set could not be fetched (now, or at the last try less than the minimum interval ago).
        """
        with self._lock:
            may_fetch = self._fetched_at is None or now - self._fetched_at >= self.min_refetch_s
            expired = self._keys is None or now >= self._expires
            unknown = self._keys is not None and kid not in self._keys
            if may_fetch and (expired or unknown):
                self._fetch(now)
            elif expired and self._keys is None:
                raise JwksUnavailable(f"the JWK Set of {self.iss} could not be fetched lately ({self._failure})")
            return (self._keys or {}).get(kid)

    def _fetch(self, now: float) -> None:
        self._fetched_at = now
        self.fetches += 1
        try:
            keys, cache_control = self._get()
        except JwksUnavailable as exc:
            self._failure = str(exc)
            log.warning("the JWK Set of issuer %s cannot be fetched from %s: %s", self.iss, self.url, exc)
            if now >= self._expires:  # an expired set is not used: the call is refused
                self._keys = None
                raise
            return  # a set still fresh stays in use (only a kid was unknown)
        self._keys, self._failure = keys, None
        self._expires = now + ttl(cache_control)
        log.info("JWK Set of issuer %s fetched from %s: %d usable keys", self.iss, self.url, len(keys))

    def _get(self) -> tuple[dict[str, PyJWK], str | None]:
        try:
            with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client, \
                    client.stream("GET", self.url, headers={"Accept": "application/json, application/jwk-set+json"}) as answer:
                body = b""
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JwksUnavailable(f"the answer is larger than {MAX_JWKS_BYTES // 1024} KB")
        except httpx.TimeoutException:
            raise JwksUnavailable(f"no answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"unreachable ({type(exc).__name__})") from None
        if answer.status_code != 200:
            raise JwksUnavailable(f"HTTP {answer.status_code}")
        try:
            document = json.loads(body)
            return public_keys(document, strict=False), answer.headers.get("cache-control")
        except ValueError as exc:
            raise JwksUnavailable(f"not a JWK Set: {str(exc)[:200]}") from None
