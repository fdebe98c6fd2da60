"""The web pages in a real headless Chromium (Playwright driving Debian's ``chromium``), against
the real service started by uvicorn on a free loopback port.

Screenshots of the main pages are saved to ``tests/artifacts/screenshots`` (looked at by a
person for layout); axe-core (vendored, ``tests/data/web``) checks each page for serious and
critical accessibility violations.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hipdx.knowledge import KnowledgeBase
from hipdx.service import ServiceConfig, create_app
from hipdx.web import CaseLibrary

from conftest import EXAMPLES, ROOT, TODAY

pytestmark = pytest.mark.slow  # a real browser (Debian chromium) against a real server: in `make test`, not in `make test-fast`

playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")
expect = playwright_api.expect

CHROMIUM = os.environ.get("HIPDX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
AXE = (ROOT / "tests" / "data" / "web" / "axe.min.js").read_text(encoding="utf-8")
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
TABLET = {"width": 820, "height": 1180}  # an iPad Air in portrait, CSS pixels
DESKTOP = {"width": 1366, "height": 900}

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":  # CI installs chromium (.ci/run): absent there is a failure
        raise RuntimeError(f"no chromium at {CHROMIUM}; .ci/run installs Debian's chromium")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(kb: KnowledgeBase) -> Iterator[str]:
    """The service with the web pages and the example cases, on a free loopback port."""
    library = CaseLibrary.from_folder(EXAMPLES, TODAY)
    app = create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, cases=library), kb)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def _start(app: Any) -> tuple[str, Any, threading.Thread]:
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", srv, thread


@pytest.fixture(scope="module")
def stored_server(kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole service on an SQLite database holding the example cases, with a clinician."""
    from hipdx.service.api.context import ApiContext
    from hipdx.store import connect, migrate, records
    from hipdx.store.users import Role, add_user

    folder = tmp_path_factory.mktemp("stored")
    engine = connect(f"sqlite:///{folder / 'hipdx.db'}")
    migrate(engine)
    add_user(engine, "clinician", PASSWORD, Role.clinician)
    for path in sorted(EXAMPLES.glob("*.json")):
        records.create_case(engine, path.stem, json.loads(path.read_text()), "seed")
    context = ApiContext(engine=engine, kb=kb, secret=b"k" * 32, upload_dir=folder / "uploads", today=lambda: TODAY,
                         session_cookie_secure=False)
    app = create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, api=context), kb)
    url, srv, thread = _start(app)
    yield url
    srv.should_exit = True
    thread.join(timeout=10)
    context.jobs.shutdown(wait=True)
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # a 422 (input with a problem) or 401 (a wrong password) is shown on the page: not an error of the page
    expected = ("status of 422", "status of 401")
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and not any(e in msg.text for e in expected) else None)
    yield pg
    context.close()
    assert errors == [], errors  # no script error, no refused script or style (CSP)


def shot(pg: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=False)
    return path


def axe_violations(pg: Any) -> list[dict[str, Any]]:
    pg.add_script_tag(content=AXE)
    result = pg.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def leading(pg: Any) -> str:
    return pg.locator("#differential ol.ddx li .name").first.inner_text().strip()


def radio(pg: Any, name: str, value: str) -> Any:
    return pg.locator(f'input[type=radio][name="{name}"][value="{value}"]')


def test_entering_a_case_changes_the_differential(page: Any, server: str) -> None:
    page.goto(f"{server}/cases/new")
    page.fill("#f-age_years", "44")
    page.select_option("#f-sex", "male")
    page.fill("#f-onset-days_since_onset", "21")
    page.select_option("#f-onset-type", "sudden")
    radio(page, "pain.weight_bearing", "present").check()
    radio(page, "pain.at_rest", "absent").check()
    page.locator("#differential ol.ddx").wait_for()
    page.click('button[name="add_study"][value="mri"]')
    page.locator("#study-0").wait_for()
    page.fill("#f-imaging-0-days_since_onset", "20")
    radio(page, "imaging.0.findings.edema", "present").check()
    page.select_option("#f-imaging-0-findings-edema_extent", "head_and_neck")
    radio(page, "imaging.0.findings.double_line_sign", "absent").check()
    radio(page, "imaging.0.findings.subchondral_band", "absent").check()
    expect(page.locator("#differential .ddx .name").first).to_have_text("TOH")
    before = page.locator("#differential .headline").inner_text()
    shot(page, "case-entry")
    # fever and a high CRP (in mg/dL, converted beside the value): septic arthritis comes first
    page.fill("#f-labs-temperature", "39.4")
    page.fill("#f-labs-crp", "15")
    page.select_option('select[name="labs.crp.unit"]', "mg/dL")
    expect(page.locator("#differential .ddx .name").first).to_have_text(re.compile(r"^\s*Septic"))
    assert "EMERGENCY" in page.locator("#differential .headline").inner_text()
    assert "EMERGENCY" not in before
    expect(page.locator("#conv-f-labs-crp")).to_have_text("= 150 mg/L")
    shot(page, "case-entry-septic")
    # the full assessment of what was entered
    page.click("text=Full assessment")
    page.wait_for_url(f"{server}/assessment")
    assert page.locator("h2#h-now").is_visible()
    assert "Septic" in page.locator(".ddx-table tbody tr").first.inner_text()


def test_pregnancy_is_asked_only_for_a_woman_of_child_bearing_age(page: Any, server: str) -> None:
    page.goto(f"{server}/cases/new")
    assert page.locator("#sec-pregnancy").is_hidden()
    page.select_option("#f-sex", "female")
    page.fill("#f-age_years", "33")
    page.locator("#f-age_years").blur()
    page.locator("#f-pregnancy-status").wait_for(state="visible")
    page.fill("#f-age_years", "72")
    page.locator("#f-age_years").blur()
    page.locator("#sec-pregnancy").wait_for(state="hidden")


def test_bad_input_is_named_at_its_field(page: Any, server: str) -> None:
    page.goto(f"{server}/cases/new")
    page.fill("#f-age_years", "200")
    page.locator("#f-age_years").blur()
    summary = page.locator("#differential .error-summary")
    summary.wait_for()
    assert "Age: 200 is above the accepted range; expected from 0 to 120 years" in summary.inner_text()
    # without the live panel too: the posted form comes back with the message at the field
    page.click("text=Update the differential")
    page.locator("#err-age_years").wait_for()
    assert "expected from 0 to 120 years" in page.locator("#err-age_years").inner_text()
    shot(page, "case-entry-error")


def test_a_case_can_be_entered_with_the_keyboard_alone(page: Any, server: str) -> None:
    page.goto(f"{server}/cases/new")
    page.locator("#f-id").focus()
    page.keyboard.type("keyboard-case")
    page.keyboard.press("Tab")  # age
    page.keyboard.type("44")
    page.keyboard.press("Tab")  # sex
    page.keyboard.press("ArrowDown")  # female -> male (order of the model: female, male, unknown)
    assert page.evaluate("document.activeElement.id") == "f-sex"
    page.locator("#f-pain-weight_bearing input[value=unknown]").focus()
    page.keyboard.press("ArrowLeft")  # radio group: not known -> absent
    page.keyboard.press("ArrowLeft")  # -> present
    assert radio(page, "pain.weight_bearing", "present").is_checked()
    page.locator("#differential ol.ddx").wait_for()
    # the summaries of the closed sections open from the keyboard
    safety = page.locator("#sec-safety > summary")
    safety.focus()
    page.keyboard.press("Enter")
    assert page.locator("#sec-safety").get_attribute("open") is not None
    # and the full assessment is reached with the keyboard
    page.locator("button.primary").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/assessment")
    assert page.locator("h1").inner_text().startswith("Assessment")


def test_the_knowledge_base_browser(page: Any, server: str) -> None:
    page.goto(f"{server}/kb")
    shot(page, "kb-index")
    page.click("text=Transient osteoporosis of the hip")
    page.wait_for_url(f"{server}/kb/conditions/toh")
    assert "Base prior" in page.content()
    shot(page, "kb-condition")
    page.locator("table.kb a[href^='/kb/findings/']").first.click()
    page.wait_for_url(f"{server}/kb/findings/**")
    assert page.locator("table.kb tbody tr").count() >= 10
    page.locator("table.kb a[href^='/kb/references/']").first.click()
    page.wait_for_url(f"{server}/kb/references/**")
    assert page.locator("dl.ref").is_visible()


def test_an_assessment_page_from_the_case_list(page: Any, server: str) -> None:
    page.goto(f"{server}/")
    page.fill("#q", "pregnancy")
    page.click("button:text('Search')")
    page.locator("table.cases").wait_for()
    shot(page, "case-list")
    page.click("a[href='/cases/toh_pregnancy_34_weeks/assessment']")
    page.wait_for_url(f"{server}/cases/toh_pregnancy_34_weeks/assessment")
    shot(page, "assessment")
    blocked = page.locator("p.blocked").first
    assert "Blocked by gestational weeks" in blocked.inner_text()
    page.locator(".sources a").first.click()
    page.wait_for_url(f"{server}/kb/references/**")


def test_pages_read_without_javascript(browser: Any, server: str) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    pg = context.new_page()
    pg.goto(f"{server}/cases/toh_pregnancy_34_weeks")
    assert pg.locator("#differential ol.ddx .name").first.inner_text().strip() == "TOH"
    radio(pg, "labs.crp.value", "x").count()  # no-op: the form is plain HTML
    pg.fill("#f-labs-crp", "15")
    pg.select_option('select[name="labs.crp.unit"]', "mg/dL")
    pg.click("text=Update the differential")
    pg.wait_for_load_state()
    assert pg.locator("#conv-f-labs-crp").inner_text() == "= 150 mg/L"
    pg.click('button[name="add_study"][value="radiograph"]')
    pg.wait_for_load_state()
    assert pg.locator("fieldset.study").count() == 2
    context.close()


def test_axe_finds_a_violation_when_there_is_one(browser: Any) -> None:
    context = browser.new_context(bypass_csp=True)
    pg = context.new_page()
    pg.set_content('<html lang="en"><head><title>t</title></head><body><main><input type="text"></main></body></html>')
    assert [v["id"] for v in axe_violations(pg)] == ["label"]
    context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, TABLET], ids=["desktop", "tablet"])
def test_no_serious_accessibility_violation(browser: Any, server: str, viewport: dict[str, int]) -> None:
    # axe is injected as an inline script: only this context lifts the pages' script policy
    context = browser.new_context(viewport=viewport, bypass_csp=True)
    pg = context.new_page()
    found = {}
    for path in ["/", "/cases/new", "/cases/toh_pregnancy_34_weeks", "/cases/septic_febrile_crp_mg_dl/assessment", "/kb", "/kb/conditions/toh", "/kb/findings/mri_edema", "/kb/references/arco2019"]:
        pg.goto(server + path)
        violations = axe_violations(pg)
        if violations:
            found[path] = violations
    if viewport is TABLET:
        pg.goto(server + "/cases/toh_pregnancy_34_weeks")
        shot(pg, "case-entry-tablet")
        # nothing wider than the screen: no sideways scrolling on a tablet
        assert pg.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        pg.goto(server + "/cases/toh_pregnancy_34_weeks/assessment")
        assert pg.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    context.close()
    assert found == {}, json.dumps(found, indent=1)


def test_sign_in_change_save_and_add_visits(page: Any, stored_server: str) -> None:
    server = stored_server
    page.goto(f"{server}/")
    page.wait_for_url(f"{server}/sign-in?next=/")
    page.fill("#username", "clinician")
    page.fill("#password", "not the password")
    page.click("button:text('Sign in')")
    expect(page.locator("#sign-in-error")).to_have_text("Unknown user or wrong password.")
    page.fill("#password", PASSWORD)
    page.click("button:text('Sign in')")
    page.wait_for_url(f"{server}/")
    page.fill("#q", "toh_man")
    page.click("button:text('Search')")
    assert page.locator("table.cases tbody tr").count() == 1
    page.click("table.cases tbody tr th a >> nth=0")
    page.wait_for_url(re.compile(rf"{server}/cases/\d+$"))
    case_url = page.url
    expect(page.locator("#differential .ddx .name").first).to_have_text("TOH")
    shot(page, "case-page")
    # the assessment is made today (the stored date is cleared): visits up to day 48 can be added
    page.fill("#f-assessed_on", "")
    radio(page, "limp", "present").check()
    page.click("button:text('Save the case')")
    page.wait_for_url(case_url)
    assert radio(page, "limp", "present").is_checked()
    for days, pain in [("20", "7"), ("35", "5"), ("47", "3")]:
        page.fill("#f-visit-days_since_onset", days)
        page.fill("#f-visit-pain_0_10", pain)
        page.click("button:text('Add the visit')")
        page.wait_for_url(case_url + "#visits")
    course = page.locator("img.course")
    expect(course).to_be_visible()
    assert page.evaluate("document.querySelector('img.course').naturalWidth") > 100  # the SVG loaded
    assert page.locator("#visits tbody tr").count() == 3
    page.locator("#visits").scroll_into_view_if_needed()
    shot(page, "case-visits")
    # a visit corrected: the table and the plot follow
    plot_before = page.evaluate("document.querySelector('img.course').src")
    page.click("#visits tbody tr >> nth=1 >> text=Correct or delete")
    page.wait_for_url(re.compile(rf"{case_url}/visits/2$"))
    expect(page.locator("#f-visit-pain_0_10")).to_have_value("5")
    page.fill("#f-visit-pain_0_10", "9")
    shot(page, "visit-edit")
    page.click("button:text('Save the visit')")
    page.wait_for_url(case_url + "#visits")
    assert "9" in page.locator("#visits tbody tr >> nth=1").inner_text()
    assert page.evaluate("document.querySelector('img.course').src") != plot_before  # a new version of the plot
    # a visit deleted, after the confirmation page
    page.click("#visits tbody tr >> nth=2 >> text=Correct or delete")
    page.click("text=Delete this visit…")
    page.wait_for_url(re.compile(rf"{case_url}/visits/3/delete$"))
    expect(page.locator("h1")).to_contain_text("Delete visit 3")
    shot(page, "visit-delete")
    page.click("button:text('Delete visit 3')")
    page.wait_for_url(case_url + "#visits")
    assert page.locator("#visits tbody tr").count() == 2
    page.click("button:text('Sign out')")
    page.wait_for_url(f"{server}/sign-in")


def test_a_fhir_file_opens_as_a_case_with_its_sources(page: Any, server: str) -> None:
    page.goto(f"{server}/cases/new")
    page.click("#fhir-file > summary")
    page.set_input_files("#fhir-bundle", str(ROOT / "tests" / "data" / "fhir" / "neoplasm_metastasis.bundle.json"))
    page.click("button:text('Read the file')")
    page.wait_for_url(f"{server}/cases/from-fhir")
    expect(page.locator("h1")).to_contain_text("Case read from FHIR")
    assert page.locator("p.source").count() >= 10
    expect(page.locator("#differential .ddx .name").first).to_have_text(re.compile(r"Neoplasm"))
    shot(page, "case-from-fhir")


def test_a_refused_live_update_is_shown_and_marks_the_differential_out_of_date(browser: Any, server: str) -> None:
    """An htmx request answered 4xx/5xx (here a form the server will not read: over 2,000 fields)
    puts its message in the page's alert box and marks the differential out of date, instead of
    leaving the last differential on screen as if current; the next good update clears both.
    Before, htmx swapped nothing on such an answer and the page said nothing."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    expected = ("status of 400", "Response Status Error Code 400")  # the browser's and htmx's own notes of the 400
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and not any(e in msg.text for e in expected) else None)
    page.goto(f"{server}/cases/new")
    page.fill("#f-age_years", "44")
    page.select_option("#f-sex", "male")
    page.locator("#differential ol.ddx").wait_for()
    expect(page.locator("#request-error")).to_be_hidden()
    page.evaluate("""() => { const form = document.getElementById('case-form');
        for (let i = 0; i < 2001; i++) { const x = document.createElement('input'); x.type = 'hidden';
            x.name = 'x' + i; x.value = '1'; x.className = 'junk'; form.appendChild(x); } }""")
    page.fill("#f-age_years", "45")
    alert = page.locator("#request-error [role=alert]")
    expect(alert).to_be_visible()
    assert "form" in alert.inner_text().lower()
    expect(page.locator("#differential")).to_have_class(re.compile(r"\bstale\b"))
    shot(page, "live-update-refused")
    page.evaluate("() => document.querySelectorAll('input.junk').forEach(x => x.remove())")
    page.fill("#f-age_years", "46")
    expect(page.locator("#differential")).not_to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#request-error")).to_be_hidden()
    context.close()
    assert errors == [], errors
