"""Strict JSON in: the one reader for every JSON document that comes into hipdx.

Python's :mod:`json` is lenient where a clinical input must not be: it keeps the *last*
of two equal keys (``{"sex": "male", "sex": "female"}`` is a woman), reads ``NaN`` and
``Infinity``, recurses without a bound (a document nested a thousand deep ends in a
``RecursionError``) and reads integers of thousands of digits (slowly, then a
``ValueError``). :func:`loads` refuses each of these with an
:class:`~hipdx.errors.InputError` that names the place and quotes a short excerpt.

:func:`read_input_file` is the one way an adapter reads an input file: only a regular
file, and at most :data:`MAX_INPUT_BYTES` of it (``/dev/zero`` or a FIFO would otherwise
be read forever or wait forever). It does I/O and is for adapters only (the command line,
the evaluation runner); the core calls :func:`loads` alone.

Examples
--------
>>> loads('{"age_years": 45}')
{'age_years': 45}
>>> loads('{"sex": "male", "sex": "female"}')
Traceback (most recent call last):
...
hipdx.errors.InputError: the input gives a key twice
  - sex: given twice ("male" and "female"); hipdx does not choose which one holds
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from itertools import accumulate
from pathlib import Path
from typing import Any

from hipdx.errors import InputError, Problem

#: Deepest nesting of objects and arrays accepted. A case is five levels deep
#: (``imaging[0].findings.edema``), a vignette file seven; 32 leaves room and is far
#: below Python's recursion limit.
MAX_DEPTH = 32
#: Longest number accepted, in characters. A 64-bit float has 17 significant digits; a
#: number written with more than 40 characters is an entry error, not a measurement.
MAX_NUMBER_CHARS = 40
#: Largest input file read, in bytes. The largest bundled vignette file is about 0.2 MB.
MAX_INPUT_BYTES = 5 * 1024 * 1024

# Outside strings, a run of number characters longer than MAX_NUMBER_CHARS; strings and
# brackets are matched to skip strings and count nesting.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|[-+0-9.eE]{%d,}' % (MAX_NUMBER_CHARS + 1))
# The same strings, long numbers and brackets, for the quick proof that a document needs no token scan
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_LONG_NUMBER = re.compile(r"[-+0-9.eE]{%d,}" % (MAX_NUMBER_CHARS + 1))
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_ONLY_BRACKETS = str.maketrans({chr(c): None for c in range(128) if chr(c) not in "[]{}"})
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAYBE_SURROGATE = re.compile("[\ud800-\udfff]|\\\\u[dD][89a-fA-F]")


def excerpt(value: Any, limit: int = 40) -> str:
    """``value`` as JSON, control characters escaped, cut to about ``limit`` characters.

    The one way an error message quotes what was given: short, and safe to print on a
    terminal.

    >>> excerpt("x" * 100, 10)
    '"xxxxxx...'
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str) -> str:
    r"""``text`` with every character a terminal could obey (controls, bidi) escaped, as ``\x1b``.

    For names taken from the input, such as the keys of a field path.

    >>> printable("sex\x1b[8m")
    'sex\\x1b[8m'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class _Refused(Exception):
    """A value :func:`loads` does not accept, raised from inside the json decoder."""


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


def _outside_strings(text: str) -> str:
    """``text`` with its strings cut out, as ``_STRINGS.sub("", text)`` cuts them.

    When no quote is escaped (no backslash before a quote), no backslash precedes a line
    break (``_STRINGS``'s ``.`` does not cross one) and the quotes pair up, every quote opens or
    closes a string, so the strings are the odd pieces of a split on quotes: the same cut, at
    C speed (the pattern costs about 0.5 ms on a 30 kB chart of many short strings)."""
    if text.count('"') % 2 == 0 and ("\\" not in text or ('\\"' not in text and "\\\n" not in text)):
        return "".join(text.split('"')[0::2])
    return _STRINGS.sub("", text)


def _plainly_within_limits(text: str) -> bool:
    """True when ``text`` has no number too long and no nesting too deep, proved at C speed.

    The strings are cut out with the same pattern as the token scan, so what is left is the
    text the scan reads outside strings: a long number there is a run of number characters
    (cutting a string out can only join two runs, so a run found here may be a false alarm:
    the scan then decides), and the depth is the running sum of its brackets. False sends
    the document to :func:`_check_tokens`, which names the place."""
    outside = _outside_strings(text)
    if _LONG_NUMBER.search(outside):
        return False
    brackets = outside.translate(_ONLY_BRACKETS)  # every ASCII character but a bracket deleted, at C speed
    if not brackets.isascii():  # a character beyond ASCII outside the strings (not JSON): the pattern removes it
        brackets = _NOT_BRACKET.sub("", brackets)
    return _shallow(brackets) or max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))) <= MAX_DEPTH


def _shallow(brackets: str) -> bool:
    """True when ``brackets`` pair up at most :data:`MAX_DEPTH` deep, proved at C speed; False: not proved.

    A pass deletes every innermost ``[]``, then every innermost ``{}``: at least one level and
    at most two, so brackets gone after ``MAX_DEPTH // 2`` passes were nested at most
    ``MAX_DEPTH`` deep, and brackets nested at most ``MAX_DEPTH // 2`` deep are always proved;
    deeper ones go to the running sum (about 9 against 29 us on a 30 kB chart, depth 10)."""
    for _ in range(MAX_DEPTH // 2):
        if not brackets:
            return True
        brackets = brackets.replace("[]", "").replace("{}", "")
    return not brackets


def _check_tokens(text: str, what: str) -> None:
    depth = 0
    for m in _TOKENS.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(
                    f"{what} is nested more than {MAX_DEPTH} levels deep (at {_where(text, m.start())}); "
                    "no hipdx input is that deep"
                )
        elif token in "]}":
            depth -= 1
        elif token[0] != '"':
            raise InputError(
                f"{what} has a number of {len(token):,} characters at {_where(text, m.start())} "
                f"(starting {token[:12]}...); numbers longer than {MAX_NUMBER_CHARS} characters are refused"
            )


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number hipdx accepts (JSON has no NaN or Infinity)")


def _float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _Refused(f"the number {excerpt(token)} is too large")
    return value


_Found = list[tuple[tuple[str, ...], Any]]


def _find_paths(node: Any, path: tuple[str, ...], targets: dict[int, Any], found: _Found) -> None:
    """Append (path, duplicates) for every object of ``node`` whose id is in ``targets``."""
    if isinstance(node, dict):
        if id(node) in targets:
            found.append((path, targets[id(node)]))
        for key, value in node.items():
            _find_paths(value, (*path, key), targets, found)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _find_paths(value, (*path, str(i)), targets, found)


def _has_lone_surrogate(node: Any) -> bool:
    if isinstance(node, str):
        return _SURROGATE.search(node) is not None
    if isinstance(node, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_has_lone_surrogate(v) for v in node)
    return False


#: what :func:`_plain_loads` returns when it cannot prove the document acceptable
_NOT_PROVED = object()
# every byte but a quote, a colon and the brackets (a UTF-8 byte of a character beyond ASCII is never one of them)
_ALL_BUT_STRUCTURE = bytes(c for c in range(256) if c not in b'":[]{}')


def _short_int(token: str) -> int:
    if len(token) > MAX_NUMBER_CHARS:
        raise _Refused("a long number")  # the step-by-step read names it
    return int(token)


def _short_float(token: str) -> float:
    if len(token) > MAX_NUMBER_CHARS:
        raise _Refused("a long number")
    return _float(token)


def _plain_loads(text: str, raw: bytes) -> Any:
    r"""``text`` decoded at C speed, when every check of :func:`loads` is proved to pass; else ``_NOT_PROVED``.

    The document is decoded without the per-object duplicate-key hook (``object_hook`` only
    sums the members of the objects decoded); then, on its UTF-8 bytes ``raw``:

    - escapes removed (``\\`` pairs, then ``\"``), every quote left opens or closes a string, so
      with every byte but quotes, colons and brackets deleted, the pieces between a closing and
      an opening quote are what lies outside the strings (strings holding none of these bytes are
      ``""`` and are deleted first, which keeps every quote's parity);
    - outside the strings a colon separates a key from its value, so the colons there count the
      members the text gives; the decoded objects hold as many only when no key is given twice;
    - the brackets there are the nesting, proved at most :data:`MAX_DEPTH` deep as
      :func:`_plainly_within_limits` proves it;
    - in a valid document, a run of number characters outside the strings is one number, which
      the decoder hands to ``parse_int`` or ``parse_float`` whole: each refuses one longer than
      :data:`MAX_NUMBER_CHARS` characters.

    Anything not proved (and any error while decoding) goes to :func:`_checked_loads`, which
    decides with its messages, so every verdict is the one it gives (3.1 against 5.8 million
    instructions for the 30 kB chart of ``benchmarks/bench_service.py``).
    """
    members = 0

    def count(obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal members
        members += len(obj)
        return obj

    try:
        data = json.loads(text, object_hook=count, parse_constant=_constant, parse_float=_short_float, parse_int=_short_int)
    except (ValueError, _Refused, RecursionError):
        return _NOT_PROVED
    escapes = b"\\" in raw
    if escapes:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(None, _ALL_BUT_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        structure = b"".join(structure.split(b'"')[0::2])
    if structure.count(b":") != members:
        return _NOT_PROVED
    brackets = structure.translate(None, b":").decode("ascii")
    if not (_shallow(brackets) or max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))) <= MAX_DEPTH):
        return _NOT_PROVED
    maybe = not text.isascii() or (escapes and "\\u" in text)  # a \u escape needs a backslash
    if maybe and _MAYBE_SURROGATE.search(text) and _has_lone_surrogate(data):
        return _NOT_PROVED
    return data


def loads(text: str | bytes, what: str = "the input") -> Any:
    """Decode one JSON document strictly.

    Parameters
    ----------
    text
        The document; bytes must be UTF-8 (a byte-order mark is allowed).
    what
        How the messages name the document, e.g. ``"the case"``.

    Raises
    ------
    InputError
        Not UTF-8, not JSON, a key given twice in one object (each listed with its dotted
        path and both values), nesting deeper than :data:`MAX_DEPTH`, a number longer than
        :data:`MAX_NUMBER_CHARS` characters, ``NaN``/``Infinity``/an overflowing number,
        or a lone UTF-16 surrogate in a string.
    """
    if isinstance(text, (bytes, bytearray)):
        raw = bytes(text)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"{what} is not UTF-8 text (byte {exc.start + 1} cannot be read)") from None
    else:
        raw = text.encode("utf-8", "surrogatepass")
    data = _plain_loads(text, raw)
    if data is not _NOT_PROVED:
        return data
    return _checked_loads(text, what)


def _checked_loads(text: str, what: str) -> Any:
    """:func:`loads` step by step: every check before or while decoding, each refusal named."""
    if not _plainly_within_limits(text):
        _check_tokens(text, what)
    duplicated: dict[int, list[tuple[str, Any, Any]]] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        fast = dict(items)  # at C speed; a key given twice makes it shorter, and the loop below names it
        if len(fast) == len(items):
            return fast
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicated.setdefault(id(out), []).append((key, out[key], value))
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=_constant, parse_float=_float)
    except _Refused as exc:
        raise InputError(f"{what} is not valid: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if duplicated:
        found: _Found = []
        _find_paths(data, (), duplicated, found)
        problems = [
            Problem(
                ".".join(printable(part) for part in (*path, key)),
                f"given twice ({excerpt(first, 30)} and {excerpt(second, 30)}); hipdx does not choose which one holds",
            )
            for path, keys in found
            for key, first, second in keys
        ]
        raise InputError(f"{what} gives a key twice", problems)
    maybe = not text.isascii() or "\\u" in text  # what _MAYBE_SURROGATE can match at all, found at C speed
    if maybe and _MAYBE_SURROGATE.search(text) and _has_lone_surrogate(data):  # walk only when one may be there
        raise InputError(f"{what} has a string with a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
    return data


def read_input_file(path: Path | str, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The content of an input file: a regular file of at most ``max_bytes`` bytes.

    For adapters only (the core does no I/O). A FIFO, a device such as ``/dev/zero``, a
    socket or a directory is refused without reading from it.

    Raises
    ------
    InputError
        ``cannot read FILE: reason`` when it is missing, unreadable, not a regular file,
        or larger than ``max_bytes``.
    """
    path = Path(path)
    shown = printable(str(path))  # a file name is input too
    try:
        # non-blocking: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise InputError(f"cannot read {shown}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise InputError(f"cannot read {shown}: it is {kind}")
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(max_bytes + 1)
        except OSError as exc:
            raise InputError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InputError(
            f"cannot read {shown}: larger than {max_bytes / (1024 * 1024):g} MB, the most hipdx reads from one file"
        )
    return data
