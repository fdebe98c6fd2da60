"""SMART App Launch 2.0 end to end: hipdx (the real service under uvicorn, on 127.0.0.1) against
a real test-only authorization and FHIR server (``smart_peer``, on ``localhost``: another site,
so the browser's SameSite rules apply as with a real record system), with the plain HTTP client
and in headless Chromium, and the hostile answers of either side."""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx2 as httpx
import pytest

from hipdx.knowledge import KnowledgeBase
from hipdx.service import ServiceConfig, create_app
from hipdx.web.smart import FLOW_COOKIE, SmartConfig, SmartServer

from conftest import ROOT, TODAY
from smart_peer import CLIENT_ID, FHIR_USER_ID, Peer, create_peer

uvicorn = pytest.importorskip("uvicorn")
PASSWORD = "correct horse battery staple"
#: the project's bundle of a classic TOH in a man (tests/data/fhir/toh_man_classic.bundle.json)
TOH_MAN = "df2f9c74-cf43-5ca0-bdf2-d0fb0473f326"
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
#: the database of the service under test (a second worker opens it too)
DATABASE: dict[str, str] = {}
PEER_SECRET = "peer secret: 7f1c / ü"  # characters that must be form-urlencoded before Basic


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(app: Any, port: int) -> tuple[Any, threading.Thread]:
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return srv, thread


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    port = _free_port()
    state = Peer(base=f"http://localhost:{port}")
    srv, thread = _serve(create_peer(state), port)
    yield state
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def closed_iss() -> str:
    """An allowed FHIR server that is not running."""
    return f"http://127.0.0.1:{_free_port()}/fhir"


@pytest.fixture(scope="module")
def hipdx_url(peer: Peer, closed_iss: str, kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole service (SQLite, a clinician) with the peer and a dead server on its SMART allow-list."""
    from hipdx.service.api.context import ApiContext
    from hipdx.store import connect, migrate
    from hipdx.store.users import Role, add_user

    folder = tmp_path_factory.mktemp("smart")
    DATABASE["url"] = f"sqlite:///{folder / 'hipdx.db'}"
    engine = connect(DATABASE["url"])
    migrate(engine)
    add_user(engine, "clinician", PASSWORD, Role.clinician)
    add_user(engine, "other", PASSWORD, Role.clinician)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    peer.redirect_uri = f"{url}/smart/callback"
    smart = SmartConfig((SmartServer(peer.fhir, CLIENT_ID, "Test hospital"),
                         SmartServer(closed_iss, CLIENT_ID, "Closed hospital")),
                        public_url=url, timeout_s=5)
    context = ApiContext(engine=engine, kb=kb, secret=b"k" * 32, upload_dir=folder / "uploads", today=lambda: TODAY,
                         session_cookie_secure=False)
    app = create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, api=context, smart=smart), kb)
    srv, thread = _serve(app, port)
    yield url
    srv.should_exit = True
    thread.join(timeout=10)
    context.jobs.shutdown(wait=True)
    engine.dispose()


@pytest.fixture(scope="module")
def signed_in(hipdx_url: str) -> httpx.Cookies:
    """The clinician's session, signed in once through the page for the module (argon2 is the cost of a sign-in)."""
    with httpx.Client(timeout=20, follow_redirects=False) as c:
        signed = c.post(f"{hipdx_url}/sign-in", data={"username": "clinician", "password": PASSWORD, "next": "/"})
        assert signed.status_code == 303
        return httpx.Cookies(c.cookies)


@pytest.fixture
def client(hipdx_url: str, peer: Peer, signed_in: httpx.Cookies) -> Iterator[httpx.Client]:
    """A browser of the signed-in clinician: the module's session cookie, nothing else carried over."""
    peer.behaviour.clear()
    peer.standalone_patient = TOH_MAN
    peer.context_encounter = ""
    with httpx.Client(timeout=20, follow_redirects=False, cookies=httpx.Cookies(signed_in)) as c:
        yield c


def step(c: httpx.Client, response: httpx.Response) -> httpx.Response | None:
    """The next response: a redirect or a continue page (Refresh header) followed, else None."""
    if response.status_code in (302, 303):
        return c.get(urljoin(str(response.url), response.headers["location"]))
    if "refresh" in response.headers:
        return c.get(urljoin(str(response.url), response.headers["refresh"].split("url=", 1)[1]))
    return None


def drive(c: httpx.Client, url: str, stop: str | None = None) -> tuple[httpx.Response, list[str]]:
    """Follow from ``url`` until a page (or a URL starting with ``stop``); the URLs visited."""
    response, seen = c.get(url), [url]
    for _ in range(10):
        if stop and urljoin(str(response.url), response.headers.get("location", "")).startswith(stop):
            break
        following = step(c, response)
        if following is None:
            break
        response = following
        seen.append(str(response.url))
    return response, seen


def ehr_launch_url(c: httpx.Client, peer: Peer, hipdx_url: str, patient: str = TOH_MAN) -> str:
    chart = c.get(f"{peer.base}/ehr", params={"patient": patient, "app_url": f"{hipdx_url}/smart/launch"})
    return html.unescape(re.search(r'href="([^"]+)"', chart.text).group(1))


def to_callback(c: httpx.Client, launch_url: str, hipdx_url: str) -> str:
    """Launch up to the authorization server's redirect back to hipdx (not followed)."""
    response, _ = drive(c, launch_url, stop=f"{hipdx_url}/smart/callback")
    assert response.status_code == 302, response.text
    return urljoin(str(response.url), response.headers["location"])


def text(response: httpx.Response) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.text)))


def test_ehr_launch_reads_the_patient_into_the_case(client: httpx.Client, peer: Peer, hipdx_url: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    peer.authorize_requests.clear()
    page, seen = drive(client, ehr_launch_url(client, peer, hipdx_url))
    assert page.status_code == 200, text(page)
    assert str(page.url).startswith(f"{hipdx_url}/smart/case?read=")
    words = text(page)
    assert f"Case read from FHIR (Patient/{TOH_MAN})" in words
    assert "Observation/" in words and "Patient/" + TOH_MAN in words  # each fact's source, the case label
    assert "Most likely: TOH" in words  # the differential of the case read
    assert re.search(r'<p class="source">from Observation/[0-9a-f-]+ value', page.text)  # a fact's source, at its field
    # the authorize request as SMART 2.0 asks it
    asked = peer.authorize_requests[-1]
    assert asked["response_type"] == "code" and asked["client_id"] == CLIENT_ID and asked["aud"] == peer.fhir
    assert asked["code_challenge_method"] == "S256" and len(asked["state"]) >= 43
    assert asked["redirect_uri"] == f"{hipdx_url}/smart/callback" and asked["launch"]
    assert {"launch", "patient/Patient.r", "patient/Observation.rs", "patient/Condition.rs"} <= set(asked["scope"].split())
    # every chart resource type searched in the patient's compartment, with the token
    searched = {urlsplit(u).path.rsplit("/", 1)[1] for u in peer.fhir_requests if f"patient={TOH_MAN}" in u}
    assert {"Condition", "Observation", "ImagingStudy", "DiagnosticReport", "MedicationStatement"} <= searched
    # the token never reaches the page, a URL, a cookie or the log
    tokens = list(peer.tokens)
    assert tokens
    for token in tokens:
        assert token not in page.text and token not in caplog.text and not any(token in u for u in seen)
        assert all(token not in v for v in client.cookies.values())


def test_the_cds_cards_link_launches_hipdx_on_the_patients_chart(client: httpx.Client, peer: Peer, hipdx_url: str) -> None:
    """patient-view answers a card whose SMART link, launched by the record system, opens the case read."""
    from test_service import request_for

    answer = client.post(f"{hipdx_url}/cds-services/hipdx-patient-view", json=request_for("toh_man_classic"))
    assert answer.status_code == 200, answer.text
    [card] = answer.json()["cards"]
    assert card["links"] == [{"label": "Open the case in hipdx", "url": f"{hipdx_url}/smart/launch", "type": "smart"}]
    page, _ = drive(client, ehr_launch_url(client, peer, card["links"][0]["url"].removesuffix("/smart/launch")))
    assert page.status_code == 200 and f"Case read from FHIR (Patient/{TOH_MAN})" in text(page)


def test_standalone_launch_offers_only_the_allowed_servers(client: httpx.Client, peer: Peer, hipdx_url: str) -> None:
    assert 'href="/smart/start"' in client.get(f"{hipdx_url}/cases/new").text
    choose = client.get(f"{hipdx_url}/smart/start")
    assert choose.status_code == 200 and "Test hospital" in choose.text and peer.fhir in choose.text
    page, _ = drive(client, f"{hipdx_url}/smart/start?{urlencode({'iss': peer.fhir})}")
    assert page.status_code == 200 and f"Case read from FHIR (Patient/{TOH_MAN})" in text(page)
    assert "launch/patient" in peer.authorize_requests[-1]["scope"].split()
    assert "launch" not in peer.authorize_requests[-1]


def test_an_issuer_not_on_the_allow_list_is_never_contacted(client: httpx.Client, peer: Peer, hipdx_url: str) -> None:
    before = len(peer.authorize_requests)
    for path in ("/smart/launch?iss=http://localhost:9/fhir&launch=x", f"/smart/start?iss={peer.base}/other"):
        page = client.get(hipdx_url + path)
        assert page.status_code == 403 and "not on the list of allowed servers" in text(page)
    assert len(peer.authorize_requests) == before


def test_the_settings_name_a_bad_smart_server() -> None:
    from hipdx.errors import InputError
    from hipdx.service.settings import load_settings

    settings = load_settings(smart_servers=[{"iss": "https://ehr.example.org/fhir", "client_id": "hipdx"}])
    assert settings.smart_servers[0].scopes == "v2"
    with pytest.raises(InputError) as raised:
        load_settings(smart_servers=[{"iss": "ehr.example.org", "client_id": ""}])
    assert {p.field for p in raised.value.problems} == {"smart_servers.0.iss", "smart_servers.0.client_id"}


def test_missing_or_forged_state_is_refused_and_the_real_one_still_works(client: httpx.Client, peer: Peer, hipdx_url: str) -> None:
    callback = to_callback(client, ehr_launch_url(client, peer, hipdx_url), hipdx_url)
    query = parse_qs(urlsplit(callback).query)
    for forged in (f"{hipdx_url}/smart/callback?code={query['code'][0]}",
                   f"{hipdx_url}/smart/callback?{urlencode({'code': query['code'][0], 'state': 'A' * 43})}"):
        page = client.get(forged)
        assert page.status_code == 400 and "does not belong to a launch started here" in text(page)
    # the state from another browser (no flow cookie) is refused too
    with httpx.Client(timeout=20) as stranger:
        assert stranger.get(callback).status_code in (400, 303)
    page, _ = drive(client, to_callback(client, ehr_launch_url(client, peer, hipdx_url), hipdx_url))
    assert page.status_code == 200 and "Case read from FHIR" in text(page)


def test_a_replayed_callback_or_code_is_refused(client: httpx.Client, peer: Peer, hipdx_url: str) -> None:
    callback = to_callback(client, ehr_launch_url(client, peer, hipdx_url), hipdx_url)
    page, _ = drive(client, callback)
    assert page.status_code == 200
    again = client.get(callback)  # the same state: used already
    assert again.status_code == 400 and "used already" in text(again)
    # the used code under a fresh launch's state: the authorization server refuses it
    fresh = to_callback(client, ehr_launch_url(client, peer, hipdx_url), hipdx_url)
    state = parse_qs(urlsplit(fresh).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    page = client.get(f"{hipdx_url}/smart/callback?{urlencode({'code': code, 'state': state})}")
    assert page.status_code == 424 and "was refused (invalid_grant)" in text(page)


def test_a_code_with_another_launchs_verifier_is_refused(client: httpx.Client, peer: Peer, hipdx_url: str) -> None:
    first = to_callback(client, ehr_launch_url(client, peer, hipdx_url), hipdx_url)
    second = to_callback(client, ehr_launch_url(client, peer, hipdx_url), hipdx_url)
    code = parse_qs(urlsplit(first).query)["code"][0]  # bound to the first launch's code_challenge
    state = parse_qs(urlsplit(second).query)["state"][0]  # hipdx sends the second launch's code_verifier
    page = client.get(f"{hipdx_url}/smart/callback?{urlencode({'code': code, 'state': state})}")
    assert page.status_code == 424 and "invalid_grant" in text(page)


def test_the_peer_checks_the_verifier(peer: Peer, hipdx_url: str) -> None:
    """The peer is strict: without the right code_verifier no token (so hipdx's success proves its PKCE)."""
    with httpx.Client(timeout=20, follow_redirects=False) as c:
        peer.standalone_patient = TOH_MAN
        from hipdx.web.smart import pkce_pair

        verifier, challenge = pkce_pair()
        answer = c.get(f"{peer.base}/auth/authorize", params={
            "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": peer.redirect_uri, "scope": "launch/patient patient/*.rs",
            "state": "s", "aud": peer.fhir, "code_challenge": challenge, "code_challenge_method": "S256"})
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": peer.redirect_uri, "client_id": CLIENT_ID}
        assert c.post(f"{peer.base}/auth/token", data=form | {"code_verifier": pkce_pair()[0]}).json() == {"error": "invalid_grant"}
        assert c.post(f"{peer.base}/auth/token", data=form | {"code_verifier": verifier}).json() == {"error": "invalid_grant"}  # used once


@pytest.mark.parametrize(("behaviour", "status", "words"), [
    ("deny", 403, "Test hospital did not grant hipdx access (The user declined)"),
    ("no-patient", 424, "the answer names no patient"),
    ("garbage-fhir", 424, "The patient's record: the answer is not JSON"),
    ("no-s256", 424, "does not offer PKCE with S256"),
    ("html-config", 424, "The SMART configuration (.well-known/smart-configuration): the answer is not JSON"),
    ("token-500", 424, "was refused (HTTP 500)"),
    ("foreign-next", 424, "The Condition search: the next page is on another server (elsewhere.example)"),
    ("refuse-procedures", 200, "Procedure: not read (the server refused access)"),
    ("bad-encounter", 424, "the launch context 'encounter' ('Encounter/ed 1') is not a FHIR resource id"),
])
def test_hostile_answers_are_named_on_a_page(client: httpx.Client, peer: Peer, hipdx_url: str,
                                             behaviour: str, status: int, words: str) -> None:
    peer.behaviour.add(behaviour)
    page, _ = drive(client, ehr_launch_url(client, peer, hipdx_url))
    assert page.status_code == status, text(page)
    assert words in text(page)
    assert "Traceback" not in page.text


def test_an_unreachable_server_is_named(client: httpx.Client, hipdx_url: str, closed_iss: str) -> None:
    page = client.get(f"{hipdx_url}/smart/start", params={"iss": closed_iss})
    assert page.status_code == 424 and "The SMART configuration (.well-known/smart-configuration): the server cannot be reached" in text(page)


def test_the_case_read_belongs_to_who_started_the_launch(client: httpx.Client, peer: Peer, hipdx_url: str) -> None:
    callback = to_callback(client, ehr_launch_url(client, peer, hipdx_url), hipdx_url)
    hop = client.get(callback)
    target = urljoin(callback, hop.headers["refresh"].split("url=", 1)[1])
    with httpx.Client(timeout=20, follow_redirects=False) as other:
        other.post(f"{hipdx_url}/sign-in", data={"username": "other", "password": PASSWORD, "next": "/"})
        refused = other.get(target)
        assert refused.status_code == 400 and "no patient read for you" in text(refused)
    assert client.get(target).status_code == 400  # taken once, even by the wrong user: start again


def test_a_launch_needs_a_signed_in_user(hipdx_url: str, peer: Peer) -> None:
    with httpx.Client(timeout=20, follow_redirects=False) as c:
        response, seen = drive(c, ehr_launch_url(c, peer, hipdx_url), stop=f"{hipdx_url}/sign-in")
        assert response.status_code == 303 and response.headers["location"].startswith("/sign-in?next=/smart/launch")
        assert "hop%3D1" in response.headers["location"]  # back to the launch, once signed in
        assert FLOW_COOKIE not in c.cookies


# --- in a real browser ---------------------------------------------------------------------------

CHROMIUM = os.environ.get("HIPDX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"no chromium at {CHROMIUM}; .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def consent(peer: Peer) -> Iterator[None]:
    peer.consent = True
    yield
    peer.consent = False


@pytest.mark.slow  # a real browser
def test_ehr_launch_in_the_browser_signs_in_then_opens_the_case(browser: Any, peer: Peer, hipdx_url: str, consent: None) -> None:
    peer.behaviour.clear()
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{peer.base}/ehr?{urlencode({'patient': TOH_MAN, 'app_url': f'{hipdx_url}/smart/launch'})}")
    pg.click("#launch")
    pg.wait_for_url(re.compile(r".*/sign-in\?next=.*"))
    pg.fill("#username", "clinician")
    pg.fill("#password", PASSWORD)
    pg.click("button[type=submit]")
    pg.click("#allow")  # on the record system's page
    pg.wait_for_url(re.compile(r".*/smart/case\?read=.*"), timeout=20000)
    assert pg.locator("h1").first.inner_text() == f"Case read from FHIR (Patient/{TOH_MAN})"
    assert pg.locator("#fhir-sources").count() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / "smart-ehr-launch.png"))
    # signed in now, a second EHR launch from the other site goes straight through
    pg.goto(f"{peer.base}/ehr?{urlencode({'patient': TOH_MAN, 'app_url': f'{hipdx_url}/smart/launch'})}")
    pg.click("#launch")
    pg.click("#allow")
    pg.wait_for_url(re.compile(r".*/smart/case\?read=.*"), timeout=20000)
    assert "Case read from FHIR" in pg.locator("h1").first.inner_text()
    context.close()
    assert errors == []


@pytest.mark.slow  # a real browser
def test_standalone_launch_in_the_browser(browser: Any, peer: Peer, hipdx_url: str, consent: None) -> None:
    peer.behaviour.clear()
    peer.standalone_patient = TOH_MAN
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    pg = context.new_page()
    pg.goto(f"{hipdx_url}/sign-in?next=/smart/start")
    pg.fill("#username", "clinician")
    pg.fill("#password", PASSWORD)
    pg.click("button[type=submit]")
    pg.wait_for_url(f"{hipdx_url}/smart/start")
    pg.get_by_label(re.compile("Test hospital")).check()
    pg.get_by_role("button", name="Open a patient").click()
    pg.click("#allow")
    pg.wait_for_url(re.compile(r".*/smart/case\?read=.*"), timeout=20000)
    assert pg.locator("h1").first.inner_text() == f"Case read from FHIR (Patient/{TOH_MAN})"
    context.close()


@pytest.fixture(scope="module")
def second_worker(hipdx_url: str, peer: Peer, kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another worker of the same service: its own process state and engine on the same database,
    behind the same public address; it knows hipdx's secret at the peer (a confidential client)."""
    from hipdx.service.api.context import ApiContext
    from hipdx.store import connect

    engine = connect(DATABASE["url"])
    port = _free_port()
    smart = SmartConfig((SmartServer(peer.fhir, CLIENT_ID, "Test hospital", client_secret=PEER_SECRET),),
                        public_url=hipdx_url, timeout_s=5)
    context = ApiContext(engine=engine, kb=kb, secret=b"k" * 32, upload_dir=tmp_path_factory.mktemp("second") / "uploads",
                         today=lambda: TODAY, session_cookie_secure=False)
    srv, thread = _serve(create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, api=context,
                                                  smart=smart), kb), port)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    context.jobs.shutdown(wait=True)
    engine.dispose()


def _launches() -> int:
    from sqlalchemy import create_engine, text as sql

    engine = create_engine(DATABASE["url"])
    try:
        with engine.connect() as connection:
            return int(connection.execute(sql("SELECT count(*) FROM smart_launch")).scalar_one())
    finally:
        engine.dispose()


def test_a_launch_started_by_one_worker_is_finished_by_another_as_a_confidential_client(
        client: httpx.Client, peer: Peer, hipdx_url: str, second_worker: str) -> None:
    """The launch state is in the database: the callback reaches another worker, which finishes
    it; that worker's configuration is a confidential client, so its token request carries HTTP
    Basic (client_secret_basic) and no client_id; the state is used once."""
    peer.client_secret = PEER_SECRET
    peer.token_auth.clear()
    try:
        before = _launches()
        callback = to_callback(client, ehr_launch_url(client, peer, hipdx_url), hipdx_url)
        assert _launches() == before + 1  # the state and verifier, in the database
        elsewhere = callback.replace(hipdx_url, second_worker)
        page, _ = drive(client, elsewhere)
        assert page.status_code == 200 and f"Case read from FHIR (Patient/{TOH_MAN})" in text(page), text(page)[:500]
        assert peer.token_auth == ["client_secret_basic"] and "client_id" not in peer.token_requests[-1]
        assert _launches() == before  # the state taken, the patient read taken: nothing left
        again, _ = drive(client, elsewhere)
        assert again.status_code == 400 and "Launch not recognised" in text(again)
        # the first worker has no secret: the peer refuses its public token request, named on the page
        callback = to_callback(client, ehr_launch_url(client, peer, hipdx_url), hipdx_url)
        refused, _ = drive(client, callback)
        assert refused.status_code == 424 and "was refused (invalid_client)" in text(refused), text(refused)[:400]
        assert PEER_SECRET not in refused.text
    finally:
        peer.client_secret = None


def test_an_expired_launch_is_not_finished(peer: Peer, hipdx_url: str) -> None:
    from hipdx.store import connect
    from hipdx.store.launches import put_launch, take_launch

    engine = connect(DATABASE["url"])
    try:
        put_launch(engine, "old-state", issuer=peer.fhir, verifier="v" * 43, launch=None, document={}, seconds=-1, cap=1000)
        put_launch(engine, "new-state", issuer=peer.fhir, verifier="v" * 43, launch="l", document={"a": 1}, seconds=60, cap=1000)
        assert take_launch(engine, "old-state") is None
        taken = take_launch(engine, "new-state")
        assert taken is not None and taken["document"] == {"a": 1} and taken["launch"] == "l"
        assert take_launch(engine, "new-state") is None  # once
    finally:
        engine.dispose()


@pytest.mark.parametrize(("behaviour", "shown", "said"), [
    (set(), True, "its signature verified against the server's published keys"),
    ({"no-jwks"}, True, "not verified (the server's SMART configuration publishes no jwks_uri), shown for information only"),
    ({"forged-id-token"}, False, "did not verify against its keys"),
])
def test_the_launching_users_fhir_user_is_shown_as_far_as_it_is_verified(client: httpx.Client, peer: Peer, hipdx_url: str,
                                                                          behaviour: set[str], shown: bool, said: str) -> None:
    peer.behaviour |= behaviour
    peer.authorize_requests.clear()
    page, _ = drive(client, ehr_launch_url(client, peer, hipdx_url))
    assert page.status_code == 200, text(page)[:400]
    assert {"openid", "fhirUser"} <= set(peer.authorize_requests[-1]["scope"].split())
    words = text(page)
    assert said in words
    assert (FHIR_USER_ID in words) is shown


def _encounter(eid: str, code: str, patient: str = TOH_MAN) -> dict[str, Any]:
    return {"resourceType": "Encounter", "id": eid, "status": "in-progress", "subject": {"reference": f"Patient/{patient}"},
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code},
            "period": {"start": TODAY.isoformat()}}


def test_the_launchs_encounter_gives_the_setting(client: httpx.Client, peer: Peer, hipdx_url: str) -> None:
    """A launch from the emergency department: the token's encounter is read and its class sets the setting."""
    peer.encounters.update({"ed-1": _encounter("ed-1", "EMER"), "amb-1": _encounter("amb-1", "AMB")})
    peer.context_encounter = "ed-1"
    peer.fhir_requests.clear()
    page, _ = drive(client, ehr_launch_url(client, peer, hipdx_url))
    assert page.status_code == 200, text(page)
    assert "launch/encounter" in peer.authorize_requests[-1]["scope"].split()
    assert "patient/Encounter.r" in peer.authorize_requests[-1]["scope"].split()
    assert any(urlsplit(u).path == "/fhir/Encounter/ed-1" for u in peer.fhir_requests)
    words = text(page)
    assert re.search(r"setting \S+\|EMER emergency Encounter/ed-1 class", words)  # the table of facts read
    assert "from Encounter/ed-1 class" in words  # at the form's setting field
    assert "Assumed setting" not in words
    # a standalone launch asks for the encounter too; the ambulatory one gives the clinic, read, not assumed
    peer.context_encounter = "amb-1"
    page, _ = drive(client, f"{hipdx_url}/smart/start?{urlencode({'iss': peer.fhir})}")
    assert "launch/encounter" in peer.authorize_requests[-1]["scope"].split()
    assert re.search(r"setting \S+\|AMB \w+ Encounter/amb-1 class", text(page)) and "Assumed setting" not in text(page)


def test_without_a_readable_encounter_the_setting_is_shown_as_assumed(client: httpx.Client, peer: Peer, hipdx_url: str) -> None:
    page, _ = drive(client, ehr_launch_url(client, peer, hipdx_url))  # the token names no encounter
    assert page.status_code == 200 and "Assumed setting: outpatient clinic (no current Encounter in the record" in text(page)
    peer.context_encounter = "gone-1"  # named, but the server has no such Encounter
    page, _ = drive(client, ehr_launch_url(client, peer, hipdx_url))
    words = text(page)
    assert page.status_code == 200, words
    assert "Encounter/gone-1 (the launch's encounter): not read (the server answered HTTP 404.)" in words
    assert "Assumed setting: outpatient clinic (Encounter/gone-1, the encounter the hook's context names" in words
