"""A strict JSON reader for FHIR input: a key given twice in one object is refused.

Python's :mod:`json` keeps the last of two equal keys silently; in clinical data that
would let a second ``"value"`` replace the first without anyone noticing. This reader
refuses it, naming the key and where it was found.

.. note:: ``hipdx.case.parse`` is getting its own strict reader on another branch; the two
   should become one at merge (see docs/fhir.md).
"""

from __future__ import annotations

import json
from typing import Any

from hipdx.errors import IntegrationError


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_json(raw: str | bytes, what: str = "the FHIR input") -> Any:
    """Decode JSON text, refusing duplicate keys, NaN and Infinity.

    Parameters
    ----------
    raw
        UTF-8 bytes or text.
    what
        How to name the input in messages (e.g. a file name).

    Raises
    ------
    IntegrationError
        Not UTF-8, not JSON, a key given twice in one object, or NaN/Infinity.

    Examples
    --------
    >>> read_json('{"a": 1}')
    {'a': 1}
    >>> read_json('{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    hipdx.errors.IntegrationError: the FHIR input gives the key 'a' twice in one object; refusing to guess which one is meant
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise IntegrationError(f"{what} is not UTF-8 text") from None
    try:
        return json.loads(raw, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
    except _DuplicateKey as dup:
        raise IntegrationError(
            f"{what} gives the key {dup.key!r} twice in one object; refusing to guess which one is meant"
        ) from None
    except json.JSONDecodeError as exc:
        raise IntegrationError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise IntegrationError(f"{what}: {exc}") from None
    except RecursionError:
        raise IntegrationError(f"{what} is nested too deeply to be FHIR") from None
