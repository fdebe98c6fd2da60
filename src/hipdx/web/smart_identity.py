"""Who launched hipdx, from the ``id_token`` a SMART launch with ``openid fhirUser`` returns.

The ``fhirUser`` claim (``Practitioner/123``) is shown to the clinician beside the patient read
from the record system; hipdx's own sign-in stays who the user is for hipdx. The token's
signature is verified against the keys the server publishes (``jwks_uri`` of its SMART
configuration; RS256/RS384/ES256/ES384, audience = hipdx's client id, issuer = the
configuration's ``issuer``, not expired, one minute of clock skew). When the server publishes
no keys the claim is read without verification and shown as such, for information only; a
token that fails verification names no one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
LEEWAY_S = 60


@dataclass(frozen=True)
class LaunchUser:
    """The ``fhirUser`` of an id_token (None when it names none or failed verification) and how far to trust it."""

    fhir_user: str | None
    verified: bool
    note: str


def _fhir_user(claims: dict[str, Any]) -> str | None:
    value = claims.get("fhirUser")
    if isinstance(value, str) and 0 < len(value) <= 500 and value.isprintable():
        return value
    return None


def launch_user(id_token: Any, *, client_id: str, issuer: str | None, jwks_uri: str | None,
                fetch: Callable[[str, str], Any]) -> LaunchUser:
    """Read the id_token of a token response. ``fetch(url, what)`` GETs a JSON document (the JWKS)."""
    if not isinstance(id_token, str) or not id_token:
        return LaunchUser(None, False, "The record system gave no id_token: who launched hipdx there is not known.")
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        return LaunchUser(None, False, "The record system's id_token is not a readable JWT; who launched hipdx is not shown.")
    if not jwks_uri:
        try:
            claims = jwt.decode(id_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return LaunchUser(None, False, "The record system's id_token is not a readable JWT; who launched hipdx is not shown.")
        user = _fhir_user(claims)
        if user is None:
            return LaunchUser(None, False, "The record system's id_token names no fhirUser.")
        return LaunchUser(user, False, f"Launched by {user}, as the record system's id_token states it: not verified (the "
                                       "server's SMART configuration publishes no jwks_uri), shown for information only.")
    try:
        published = fetch(jwks_uri, "The server's signing keys (jwks_uri)")
    except Exception as exc:  # noqa: BLE001 - the launch goes on; only the user's name is not shown
        return LaunchUser(None, False, f"The server's signing keys could not be read ({str(exc)[:120]}); who launched hipdx "
                                       "is not shown.")
    try:
        keys = jwt.PyJWKSet.from_dict(published)
        kid = header.get("kid")
        matching = [k for k in keys.keys if kid is None or k.key_id == kid]
        if not matching:
            raise jwt.InvalidKeyError(f"no key {kid!r} in the server's keys")
        claims = jwt.decode(id_token, matching[0].key, algorithms=ALGORITHMS, audience=client_id, issuer=issuer or None,
                            leeway=LEEWAY_S, options={"require": ["exp", "iat", "iss", "aud", "sub"]})
    except (jwt.PyJWTError, jwt.exceptions.PyJWKSetError) as exc:
        return LaunchUser(None, False, f"The record system's id_token did not verify against its keys ({str(exc)[:120]}); "
                                       "who launched hipdx is not shown.")
    user = _fhir_user(claims)
    if user is None:
        return LaunchUser(None, True, "The record system's id_token (verified) names no fhirUser.")
    return LaunchUser(user, True, f"Launched by {user} (the record system's id_token, its signature verified against the "
                                  "server's published keys).")
