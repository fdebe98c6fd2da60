"""The MRI pages in a real headless Chromium (Playwright, Debian's ``chromium``) against the real
service under uvicorn: a phantom study uploaded from the page, the job followed, the
measurements read, both hips' viewers scrolled with the keyboard, axe-core on the page, and a
screenshot in ``tests/artifacts/screenshots``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from test_web_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PASSWORD,
    TABLET,
    axe_violations,
    browser,
    expect,
    page,
    shot,
    stored_server,
)

pytestmark = pytest.mark.slow  # a real browser and an MRI phantom analysed: in `make test`, not in `make test-fast`


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from hipdx.imaging.phantom import PhantomSpec, write_phantom

    folder = tmp_path_factory.mktemp("phantom")
    write_phantom(folder, PhantomSpec(seed=4, side="right", edema_ml=20.0, band_mm=5.0, slices=24, rows=192, cols=192, pixel_mm=1.6))
    return sorted(folder.rglob("*.dcm"))


def sign_in_and_open(pg: Any, server: str, name: str) -> str:
    pg.goto(f"{server}/sign-in?next=/")
    pg.fill("#username", "clinician")
    pg.fill("#password", PASSWORD)
    pg.click("button:text('Sign in')")
    pg.wait_for_url(f"{server}/")
    pg.fill("#q", name)
    pg.click("button:text('Search')")
    pg.click("table.cases tbody tr th a >> nth=0")
    pg.wait_for_url(f"{server}/cases/*")
    return pg.url


def test_upload_a_phantom_follow_the_job_and_scroll_both_hips(page: Any, stored_server: str,  # noqa: F811
                                                             phantom_files: list[Path]) -> None:
    server = stored_server
    sign_in_and_open(page, server, "toh_pregnancy")
    page.click("a:text('Upload an MRI study')")
    expect(page.locator("h1")).to_contain_text("MRI of toh_pregnancy_34_weeks")
    page.set_input_files("#mri-files", [str(p) for p in phantom_files])
    page.click("button:text('Upload and analyse')")
    page.wait_for_url(f"{server}/cases/*/mri/*")
    # the progress (htmx polling) then, when the job ends, the page reloads with the measurements
    expect(page.locator("#h-measures")).to_be_visible(timeout=90_000)
    table = page.locator("table.mri-measures")
    expect(table).to_contain_text("Bone marrow edema, volume")
    expect(table.locator("tr", has_text="Bone marrow edema, volume").locator("td").first).to_contain_text("mL")

    for side in ("right", "left"):
        slider = page.locator(f"#slice-{side}")
        image = page.locator(f"#slice-image-{side} img")
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") > 0  # the image is served and drawn
        start = int(slider.input_value())
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        expect(page.locator(f"#slice-image-{side} .mri-where strong")).to_have_text(str(start + 2))
        expect(page.locator(f"#slice-image-{side} img")).to_have_attribute("src", f"{page.url.split('?')[0].removeprefix(server)}/slices/{side}/{start + 2}.png")
        assert page.evaluate("document.activeElement.id") == f"slice-{side}"  # focus stays on the slider
        page.keyboard.press("ArrowLeft")
        expect(page.locator(f"#slice-image-{side} .mri-where strong")).to_have_text(str(start + 1))
        assert page.locator(f"#slice-image-{side} img").evaluate("img => img.complete && img.naturalWidth > 0")
    page.locator("#viewer-right").scroll_into_view_if_needed()
    shot(page, "mri-viewer")
    page.locator("#h-measures").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "mri-measurements")

    page.fill("#mri-days", "20")
    page.click("button:text('add the findings')")
    expect(page.locator("h1")).to_have_text("MRI findings added")
    expect(page.locator("main")).to_contain_text("MRI findings measured on the right hip")


def test_the_mri_page_reads_without_javascript_and_has_no_serious_violation(
        browser: Any, stored_server: str, phantom_files: list[Path]) -> None:  # noqa: F811
    server = stored_server
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    pg = context.new_page()
    sign_in_and_open(pg, server, "toh_man")
    case_url = pg.url
    pg.goto(f"{case_url}/mri")
    pg.set_input_files("#mri-files", [str(p) for p in phantom_files])
    pg.click("button:text('Upload and analyse')")
    # without JavaScript the page refreshes itself until the job ends
    expect(pg.locator("#h-measures")).to_be_visible(timeout=90_000)
    job_url = pg.url.split("?")[0]
    before = int(pg.locator("#slice-image-left .mri-where strong").inner_text())
    pg.locator("#slice-left").focus()  # the range input moves with the arrow keys without script
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("ArrowRight")
    pg.click("#viewer-left button:text('Show')")  # its form is sent: the page with that slice
    expect(pg.locator("#slice-image-left .mri-where strong")).to_have_text(str(before + 2))
    assert f"/slices/left/{before + 2}.png" in pg.locator("#slice-image-left img").get_attribute("src")
    context.close()

    found = {}
    for viewport in (DESKTOP, TABLET):
        checked = browser.new_context(viewport=viewport, bypass_csp=True)  # axe is an inline script
        cp = checked.new_page()
        sign_in_and_open(cp, server, "toh_man")
        for path in (f"{case_url.removeprefix(server)}/mri", job_url.removeprefix(server)):
            cp.goto(server + path)
            violations = axe_violations(cp)
            if violations:
                found[f"{path} at {viewport['width']} px"] = violations
            # nothing wider than a tablet's screen
            assert cp.evaluate("document.documentElement.scrollWidth") <= viewport["width"], (path, viewport)
        if viewport is TABLET:
            cp.goto(job_url)
            cp.locator("#h-slices").scroll_into_view_if_needed()
            shot(cp, "mri-viewer-tablet")
        checked.close()
    assert found == {}, json.dumps(found, indent=1)
