"""The web pages over the service's database, as the tests drive them: the service with its
session cookie over plain HTTP (the ``api`` fixture), the clinician signed in with the session's
CSRF token, and an example case as the entry form's fields."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import hipdx
from hipdx.web.context import SESSION_COOKIE

from api_support import PASSWORD, Api, served
from test_web_pages import example_form as example  # noqa: F401  (an example case as the form's fields)


@pytest.fixture
def api(request: pytest.FixtureRequest, tmp_path: Path, kb: hipdx.KnowledgeBase) -> Iterator[Api]:
    """The service on SQLite, its session cookie over plain HTTP; on each database with
    ``pytest.mark.parametrize("api", DATABASES, indirect=True)``."""
    yield from served(getattr(request, "param", "sqlite"), tmp_path, kb, plain_http=True)


def sign_in(api: Api, *, fresh: bool = False) -> str:
    """The clinician signed in; the CSRF token of the session, read from a page.

    Through the sign-in page when ``fresh`` (or no session was issued before the test), else with
    the session the database was copied with (argon2 is the cost of a sign-in)."""
    client = api.client
    if fresh or ("clinician", "session") not in api.issued:
        answer = client.post("/sign-in", data={"username": "clinician", "password": PASSWORD, "next": "/"},
                             follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    else:
        client.cookies.set(SESSION_COOKIE, api.issued[("clinician", "session")])
    page = client.get("/cases/new")
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
