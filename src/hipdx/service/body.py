"""A request body read up to a limit, never further: the CDS services and the REST API share it.

``Content-Length`` is checked before a byte is read; a body without one (chunked transfer
coding) is counted while it is read, and reading stops at the first chunk past the limit. Either
way the answer is :class:`~hipdx.errors.ContentTooLarge` (413), and the server does not hold
more than ``limit`` bytes of it.
"""

from __future__ import annotations

from starlette.requests import Request

from hipdx.errors import ContentTooLarge, InputError, Problem


async def read_limited(request: Request, limit: int, what: str = "the request body") -> bytes:
    """The body of ``request``, at most ``limit`` bytes.

    Raises
    ------
    ContentTooLarge
        ``Content-Length`` says more than ``limit``, or the body read so far is longer.
    InputError
        ``Content-Length`` is not a number.
    """
    megabytes = f"{limit / 2**20:g} MB"
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise InputError("Content-Length is not a number", [Problem("header.Content-Length", f"{declared[:40]!r}")])
        if int(declared) > limit:
            raise ContentTooLarge(f"{what} is larger than {megabytes} (Content-Length {int(declared)}); "
                                  "hipdx did not read it", [Problem("header.Content-Length", f"at most {limit} bytes")])
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ContentTooLarge(f"{what} is larger than {megabytes}; hipdx stopped reading it there",
                                  [Problem("body", f"at most {limit} bytes")])
    return bytes(raw)
