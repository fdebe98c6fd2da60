"""A case or visit number in a path or form that Python's ``str.isdigit`` passes but ``int`` (or the
database's integer) refuses, "²" or twenty digits, is no such case (404), never a 500."""

from __future__ import annotations

import json

import pytest

from api_support import Api
from conftest import EXAMPLES
from hipdx.store import records
from web_support import api, example, sign_in  # noqa: F401  (api: the fixture, SQLite)


@pytest.mark.parametrize("number", ["²", "99999999999999999999", "9" * 5000])
def test_a_number_that_is_not_one_is_no_such_case(api: Api, number: str) -> None:
    token = sign_in(api)
    case = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
    case["visits"] = [{"days_since_onset": 50, "pain": {"weight_bearing": "present"}}]
    stored = records.create_case(api.engine, "a case", case, "seed").id
    form = example("toh_man_classic") | {"csrf_token": token}
    answers = {
        "save": api.client.post("/cases/save", data=form | {"case_key": number}, follow_redirects=False),
        "view": api.client.get(f"/cases/{number[:100]}", follow_redirects=False),
        "mri": api.client.get(f"/cases/{number[:100]}/mri", follow_redirects=False),
        "visit": api.client.post(f"/cases/{number[:100]}/visits", data=form, follow_redirects=False),
        "its visit": api.client.get(f"/cases/{stored}/visits/{number[:100]}", follow_redirects=False),
    }
    assert {what: answer.status_code for what, answer in answers.items()} == dict.fromkeys(answers, 404)


@pytest.mark.parametrize("version", ["²", "9" * 5000])
def test_a_version_that_is_not_a_number_is_a_stale_form(api: Api, version: str) -> None:
    token = sign_in(api)
    case = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
    case["visits"] = [{"days_since_onset": 50, "pain": {"weight_bearing": "present"}}]
    stored = records.create_case(api.engine, "a case", case, "seed").id
    answer = api.client.post(f"/cases/{stored}/visits/1/delete", data={"csrf_token": token, "version": version}, follow_redirects=False)
    assert answer.status_code == 409 and "<html" in answer.text  # as any version that is not the case's
    assert records.get_case(api.engine, stored).document["visits"]  # nothing deleted
