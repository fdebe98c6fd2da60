"""A stored case hipdx no longer reads (the store keeps what it was given; here a visit later than
the assessment) is refused as input, its 4xx in words, never the 500 page of a defect of hipdx's own
nor an "unexpected" error in the log."""

from __future__ import annotations

import json
import logging

import pytest

from api_support import Api
from conftest import EXAMPLES
from hipdx.store import records
from test_web_pages import text
from web_support import api, sign_in  # noqa: F401  (api: the fixture, SQLite)


def test_the_course_of_a_case_no_longer_read_is_refused_in_words(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    sign_in(api)
    case = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
    case["visits"] = [{"days_since_onset": 50}]  # the assessment is on day 43
    stored = records.create_case(api.engine, "a case", case, "seed").id
    with caplog.at_level(logging.ERROR):
        answer = api.client.get(f"/cases/{stored}/course.svg")
        fragment = api.client.get(f"/cases/{stored}/course.svg", headers={"HX-Request": "true"})
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html")
    words = text(answer.text)
    assert "Not done" in words and "Something went wrong" not in words
    assert "The case is not valid; visits.0.days_since_onset: 50 days since the onset of pain is later than the assessment" in words
    assert fragment.status_code == 400 and "<html" not in fragment.text and 'role="alert"' in fragment.text
    assert "unexpected" not in caplog.text
