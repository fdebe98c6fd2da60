"""A form the pages cannot read as sent (more fields than the form reader takes, a file where none
is taken) is bad input: a 4xx page in words, never the 500 page of a defect of hipdx's own nor an
"unexpected" error in the log."""

from __future__ import annotations

import logging

import pytest

from api_support import Api
from test_web_pages import text
from web_support import api, sign_in  # noqa: F401  (api: the fixture, SQLite)

FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_a_form_of_too_many_fields_or_with_a_file_is_refused_as_bad_input(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    token = sign_in(api)
    crowded = "&".join([f"csrf_token={token}", *(f"f{i}=x" for i in range(2100))])
    with caplog.at_level(logging.ERROR):
        answers = [
            api.client.post("/cases/save", content=crowded, headers=FORM, follow_redirects=False),
            api.client.post("/cases/save", files={"f": ("a.txt", b"x")}, data={"csrf_token": token}, follow_redirects=False),
        ]
        fragment = api.client.post("/cases/save", content=crowded, headers=FORM | {"HX-Request": "true"}, follow_redirects=False)
    for answer in answers:
        assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html")
        assert "Form not read" in answer.text and "could not be read as it was sent" in text(answer.text)
        assert "Something went wrong" not in answer.text
    assert fragment.status_code == 400 and "<html" not in fragment.text and 'role="alert"' in fragment.text
    assert "unexpected" not in caplog.text
