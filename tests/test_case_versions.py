"""Optimistic concurrency on stored cases: a version per case, its ETag, If-Match on PUT and DELETE.

Ten clinicians (or integrations) who read version 1 and write at once: exactly one write is
made, the nine others answer 412 naming the case and its current version, and nothing is
lost silently. The claim of a version is one conditional UPDATE, so this holds on SQLite and
PostgreSQL alike (both databases run here: PostgreSQL with ``-m slow``, as the other store tests).
The web form carries the version it was opened on: two tabs cannot undo each other's change.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn

import hipdx
from hipdx.store import records

from api_support import DATABASES, Api, api, served  # noqa: F401  (api: the fixture)
from conftest import EXAMPLES
from web_support import example, sign_in

CASE = json.loads((EXAMPLES / "toh_man_classic.json").read_text())
WRITERS = 10


def _created(api: Api, headers: dict[str, str]) -> tuple[int, str]:
    answer = api.client.post("/api/v1/cases", json={"label": "first", "case": CASE}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], answer.headers["etag"]


def _errors(answer: Any, status: int) -> dict[str, str]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return {e["field"]: e["reason"] for e in answer.json()["errors"]}


def test_every_answer_with_a_case_carries_its_strong_etag(api: Api) -> None:
    headers = api.sign_in()
    number, tag = _created(api, headers)
    assert tag == f'"case-{number}-v1"'  # strong: If-Match compares strongly (RFC 9110 13.1.1)
    assert api.client.get(f"/api/v1/cases/{number}", headers=headers).headers["etag"] == tag
    put = api.client.put(f"/api/v1/cases/{number}", json={"label": "second", "case": CASE}, headers=headers | {"If-Match": tag})
    assert put.status_code == 200 and put.headers["etag"] == f'"case-{number}-v2"' and put.json()["version"] == 2
    visit = api.client.post(f"/api/v1/cases/{number}/visits", json={"days_since_onset": 30}, headers=headers)
    assert visit.status_code == 201 and visit.headers["etag"] == f'"case-{number}-v3"'


def test_a_change_without_if_match_is_428_and_a_stale_one_412(api: Api) -> None:
    headers = api.sign_in()
    number, tag = _created(api, headers)
    body = {"label": "renamed", "case": CASE}
    assert "header.If-Match" in _errors(api.client.put(f"/api/v1/cases/{number}", json=body, headers=headers), 428)
    assert "header.If-Match" in _errors(api.client.delete(f"/api/v1/cases/{number}", headers=headers), 428)
    assert api.client.put(f"/api/v1/cases/{number}", json=body, headers=headers | {"If-Match": tag}).status_code == 200
    for stale in (tag, f'W/"case-{number}-v2"', f'"case-{number + 1}-v2"', '"2"'):  # old, weak, another case's, bare
        answer = api.client.put(f"/api/v1/cases/{number}", json=body | {"label": "lost"}, headers=headers | {"If-Match": stale})
        errors = _errors(answer, 412)
        assert f"case {number}" in answer.json()["detail"] and "version 2" in answer.json()["detail"]
        assert f'"case-{number}-v2"' in errors["header.If-Match"] and answer.headers["etag"] == f'"case-{number}-v2"'
        _errors(api.client.delete(f"/api/v1/cases/{number}", headers=headers | {"If-Match": stale}), 412)
    assert api.client.get(f"/api/v1/cases/{number}", headers=headers).json()["label"] == "renamed"
    either = f'"case-{number}-v1", "case-{number}-v2"'  # a list matches any of its tags
    assert api.client.put(f"/api/v1/cases/{number}", json=body, headers=headers | {"If-Match": either}).status_code == 200
    assert "header.If-Match" in _errors(api.client.put(f"/api/v1/cases/{number}", json=body,
                                                       headers=headers | {"If-Match": "case-1-v1"}), 400)  # unquoted
    _errors(api.client.post(f"/api/v1/cases/{number}/visits", json={"days_since_onset": 30},
                            headers=headers | {"If-Match": tag}), 412)  # optional on a visit, honoured when given
    assert api.client.delete(f"/api/v1/cases/{number}", headers=headers | {"If-Match": "*"}).status_code == 204
    assert api.client.put(f"/api/v1/cases/{number}", json=body, headers=headers | {"If-Match": "*"}).status_code == 404


@pytest.fixture(params=DATABASES)
def live(request: pytest.FixtureRequest, tmp_path: Path, kb: hipdx.KnowledgeBase) -> Iterator[tuple[Api, str]]:
    """The service over real HTTP (uvicorn on loopback) on SQLite or PostgreSQL."""
    for built in served(request.param, tmp_path, kb):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(built.client.app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            yield built, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def _at_once(count: int, call: Any) -> list[Any]:
    barrier, answers = threading.Barrier(count), [None] * count

    def run(index: int) -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            answers[index] = call(client, index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return answers


def test_ten_concurrent_puts_of_one_version_make_one_write(live: tuple[Api, str]) -> None:
    api, base = live
    headers = api.sign_in()
    number, tag = _created(api, headers)

    def put(client: httpx.Client, index: int) -> Any:
        return client.put(f"{base}/api/v1/cases/{number}", json={"label": f"writer {index}", "case": CASE},
                          headers=headers | {"If-Match": tag})

    answers = _at_once(WRITERS, put)
    won = [i for i, a in enumerate(answers) if a.status_code == 200]
    assert len(won) == 1, [a.status_code for a in answers]
    assert sorted(a.status_code for a in answers) == [200] + [412] * (WRITERS - 1)
    for answer in answers:
        if answer.status_code == 412:
            assert answer.json()["detail"].startswith(f"case {number} has changed") and "version 2" in answer.json()["detail"]
    stored = records.get_case(api.engine, number)
    assert stored is not None and stored.version == 2 and stored.label == f"writer {won[0]}"


def test_ten_concurrent_read_modify_writes_lose_nothing(live: tuple[Api, str]) -> None:
    """Each writer adds its mark to the label, retrying on 412 as an integrator does: all ten marks stay."""
    api, base = live
    headers = api.sign_in()
    number, _ = _created(api, headers)

    def add_mark(client: httpx.Client, index: int) -> int:
        for attempt in range(1, 200):
            read = client.get(f"{base}/api/v1/cases/{number}", headers=headers)
            label = f"{read.json()['label']} {index}"
            answer = client.put(f"{base}/api/v1/cases/{number}", json={"label": label, "case": CASE},
                                headers=headers | {"If-Match": read.headers["etag"]})
            if answer.status_code == 200:
                return attempt
            assert answer.status_code == 412, answer.text
        raise AssertionError("no write in 200 attempts")

    attempts = _at_once(WRITERS, add_mark)
    stored = records.get_case(api.engine, number)
    assert stored is not None and stored.version == 1 + WRITERS
    assert sorted(stored.label.split()[1:], key=int) == [str(i) for i in range(WRITERS)], stored.label
    assert all(isinstance(a, int) for a in attempts)


@pytest.fixture(params=DATABASES)
def web(request: pytest.FixtureRequest, tmp_path: Path, kb: hipdx.KnowledgeBase) -> Iterator[Api]:
    yield from served(request.param, tmp_path, kb, plain_http=True)


def test_two_tabs_of_the_web_form_cannot_undo_each_others_change(web: Api) -> None:
    api = web
    client, token = api.client, sign_in(api)
    data = example("toh_man_classic") | {"csrf_token": token}
    case_id = client.post("/cases/save", data=data, follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    opened = client.get(f"/cases/{case_id}").text  # both tabs open version 1
    assert 'name="case_version" value="1"' in opened
    tab = data | {"case_key": case_id, "case_version": "1"}
    first = client.post("/cases/save", data=tab | {"labs.crp.value": "150", "labs.crp.unit": "mg/L"}, follow_redirects=False)
    assert first.status_code == 303
    second = client.post("/cases/save", data=tab | {"labs.crp.value": "3", "labs.crp.unit": "mg/L"}, follow_redirects=False)
    assert second.status_code == 409 and "The case has changed" in second.text
    stored = records.get_case(api.engine, int(case_id))
    assert stored is not None and stored.version == 2 and stored.document["labs"]["crp"]["value"] == 150
    without = client.post("/cases/save", data=data | {"case_key": case_id}, follow_redirects=False)
    assert without.status_code == 409  # a form that carries no version is not written blind


def test_the_store_refuses_a_stale_version_on_both_databases(api: Api) -> None:
    made = records.create_case(api.engine, "a", copy.deepcopy(CASE), "seed")
    assert records.update_case(api.engine, made.id, "b", CASE, version=1) is not None
    with pytest.raises(records.StaleVersion) as stale:
        records.update_case(api.engine, made.id, "c", CASE, version=1)
    assert (stale.value.case_id, stale.value.current) == (made.id, 2)
    with pytest.raises(records.StaleVersion):
        records.delete_case(api.engine, made.id, version=1)
    assert records.get_case(api.engine, made.id).label == "b"
    assert records.update_case(api.engine, made.id + 1000, "c", CASE, version=1) is None
