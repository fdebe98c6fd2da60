"""The web pages over HTTP (no browser): content, form round trip, errors named in words, no 5xx.

The browser tests (tests/test_web_browser.py) drive the same pages in Chromium.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from hipdx.knowledge import KnowledgeBase
from hipdx.service import ServiceConfig, create_app
from hipdx.web import CaseLibrary
from hipdx.web import form as forms

from conftest import EXAMPLES, TODAY


@pytest.fixture(scope="module")
def library(kb: KnowledgeBase) -> CaseLibrary:
    return CaseLibrary.from_folder(EXAMPLES, TODAY)


@pytest.fixture(scope="module")
def client(kb: KnowledgeBase, library: CaseLibrary) -> Iterator[TestClient]:
    app = create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, cases=library), kb)
    with TestClient(app) as c:
        yield c


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.parts))


def example_form(name: str) -> dict[str, str]:
    return forms.values_from_case(json.loads((EXAMPLES / f"{name}.json").read_text()))


def test_every_example_is_listed_with_its_leading_diagnosis_and_red_flags(client: TestClient, library: CaseLibrary) -> None:
    assert library.skipped == {}
    page = client.get("/")
    assert page.status_code == 200
    body = text(page.text)
    assert len(library.rows) == len(list(EXAMPLES.glob("*.json")))
    for case in library.rows.values():
        assert case.id in body
    assert "Possible septic arthritis or osteomyelitis" in body  # the septic example's red flag


def test_search_keeps_only_matching_cases(client: TestClient) -> None:
    body = text(client.get("/", params={"q": "septic"}).text)
    assert "septic_febrile_crp_mg_dl" in body
    assert "toh_man_classic" not in body
    assert "No case matches" in text(client.get("/", params={"q": "zzzz-nothing"}).text)


def test_an_example_opens_in_the_form_with_its_findings_and_differential(client: TestClient) -> None:
    page = client.get("/cases/toh_pregnancy_34_weeks")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'name="pregnancy.status".*?<option value="pregnant" selected>', html, re.S)
    assert re.search(r'name="pain.weight_bearing" value="present" checked', html)
    assert 'name="imaging.0.findings.edema" value="present" checked' in html
    # MRI-only findings shown for the MRI, no radiograph findings
    assert "imaging.0.findings.osteopenia" not in html
    assert "TOH" in text(html.split('id="differential"')[1])


def test_a_new_case_has_every_finding_not_known_and_no_pregnancy_until_it_applies(client: TestClient) -> None:
    html = client.get("/cases/new").text
    checked = re.findall(r'<input type="radio" name="([^"]+)" value="(\w+)" checked', html)
    assert checked and all(value == "unknown" for _, value in checked)
    assert 'id="sec-pregnancy" open hidden' in html
    for sex, age, shown in [("female", "33", True), ("female", "70", False), ("male", "33", False), ("female", "", True)]:
        fragment = client.post("/fragments/pregnancy", data={"sex": sex, "age_years": age}).text
        assert ("hidden" not in fragment.split(">")[0]) is shown, (sex, age)


def test_the_differential_follows_the_findings(client: TestClient) -> None:
    base = example_form("toh_man_classic")
    before = client.post("/fragments/differential", data=base)
    assert before.status_code == 200
    septic = base | {"labs.temperature.value": "39.4", "labs.temperature.unit": "degC", "labs.crp.value": "15", "labs.crp.unit": "mg/dL"}
    after = client.post("/fragments/differential", data=septic)
    assert "EMERGENCY" in after.text and "EMERGENCY" not in before.text
    leading = lambda html: text(html.split('<ol class="ddx">')[1]).split()[0]  # noqa: E731
    assert leading(before.text) == "TOH"
    # the conversion beside the value: 15 mg/dL = 150 mg/L
    assert re.search(r'id="conv-f-labs-crp"[^>]*hx-swap-oob="true">= 150 mg/L<', after.text)


@pytest.mark.parametrize(
    ("field", "value", "label", "words"),
    [
        ("age_years", "abc", "Age", "is not a number"),
        ("age_years", "200", "Age", "above the accepted range; expected from 0 to 120 years"),
        ("labs.crp.value", "2,5", "CRP", "decimal point"),
        ("pain.severity_0_10", "11", "Pain severity", "above the accepted range; expected from 0 to 10"),
        ("onset.date", "2027-01-01", "Date of onset", "after"),
        ("imaging.0.days_since_onset", "-3", "MRI 1: Days since onset", "below the accepted range; expected from 0 to 3650 days"),
    ],
)
def test_bad_input_names_the_field_in_words(client: TestClient, field: str, value: str, label: str, words: str) -> None:
    data = example_form("toh_pregnancy_34_weeks") | {field: value}
    if field == "onset.date":
        data.pop("onset.days_since_onset", None)
    for url in ("/fragments/differential", "/cases/entry", "/assessment"):
        response = client.post(url, data=data)
        assert response.status_code in (200, 422), url
        body = text(response.text)
        assert f"{label}:" in body and words in body, (url, body[:600])
        assert "Input should" not in body and "Traceback" not in body


def test_a_unit_that_is_not_accepted_is_named_with_the_accepted_ones(client: TestClient) -> None:
    data = example_form("toh_man_classic") | {"labs.crp.value": "4", "labs.crp.unit": "mmol/L"}
    body = text(client.post("/cases/entry", data=data).text)
    assert "CRP: unit 'mmol/L' is not accepted" in body and "mg/L, mg/dL" in body


@pytest.mark.parametrize(
    "data",
    [
        {"imaging.0.modality": "xray"},
        {"sex": "x" * 5000},
        {"visits_json": "[{"},
        {"assessed_on": "07/12/2026"},
        {"note": "\x1b[31mred"},
        {"risk_factors.corticosteroids.status": "absent", "risk_factors.corticosteroids.dose_mg_per_day": "20"},
    ],
)
def test_hostile_or_odd_posts_never_answer_5xx(client: TestClient, data: dict[str, str]) -> None:
    for url in ("/fragments/differential", "/cases/entry", "/assessment", "/fragments/study", "/fragments/pregnancy"):
        response = client.post(url, data=data)
        assert response.status_code < 500, (url, response.text[:300])


def test_the_assessment_page_shows_every_part_with_links_to_the_knowledge_base(client: TestClient, kb: KnowledgeBase) -> None:
    page = client.get("/cases/toh_pregnancy_34_weeks/assessment")
    assert page.status_code == 200
    html = page.text
    body = text(html)
    headings = re.findall(r'<h2 id="h-[a-z]+">([^<]+)</h2>', html)
    assert headings == ["What to do now", "Differential", "Why", "What would help", "Stages", "Plan", "Sources", "Provenance"]
    assert "Blocked by gestational weeks" in body  # the NSAID option, blocked at 34 weeks
    assert "Likelihood ratio" in body
    sources = re.findall(r'href="/kb/references/([a-z0-9_]+)"', html)
    assert sources and set(sources) <= set(kb.references)
    for key in set(sources):
        assert client.get(f"/kb/references/{key}").status_code == 200


def test_the_posted_form_gives_the_same_assessment_as_the_case_file(client: TestClient) -> None:
    posted = text(client.post("/assessment", data=example_form("septic_febrile_crp_mg_dl")).text)
    stored = text(client.get("/cases/septic_febrile_crp_mg_dl/assessment").text)
    assert posted.split("What to do now")[1].split("Provenance")[0] == stored.split("What to do now")[1].split("Provenance")[0]


def test_every_example_round_trips_through_the_form(kb: KnowledgeBase) -> None:
    sections = forms.case_sections()
    widgets = forms.all_widgets(sections)
    for path in sorted(EXAMPLES.glob("*.json")):
        raw = json.loads(path.read_text())
        case, state = forms.read_form(forms.values_from_case(raw).items(), widgets, TODAY)
        assert case is not None, (path.name, state.summary)
        from hipdx.case import parse_case

        assert case == parse_case(raw, TODAY), path.name


def test_the_knowledge_base_browser_shows_every_condition_and_finding_with_its_quality(client: TestClient, kb: KnowledgeBase) -> None:
    index = client.get("/kb").text
    for condition in kb.conditions:
        assert f'href="/kb/conditions/{condition.id}"' in index
    for variable in kb.variables:
        assert f'href="/kb/findings/{variable}"' in index
    page = text(client.get("/kb/conditions/septic").text)
    assert "Base prior" in page and re.search(r"(reported|derived|transferred|estimate) n = ", page)
    finding = text(client.get("/kb/findings/mri_edema").text)
    assert "Septic" in finding or "septic" in finding
    assert re.search(r"(reported|derived|transferred|estimate) n = ", finding)
    assert client.get("/kb/conditions/nope").status_code == 404
    assert "no condition 'nope'" in text(client.get("/kb/conditions/nope").text)


def test_a_must_not_miss_conditions_page_shows_its_probability_flags_tiers_with_sources(client: TestClient, kb: KnowledgeBase) -> None:
    """The septic urgency tiers and the 5%, 20% and 50% thresholds are on the condition's page, as
    its rules are, with their sources; the references they cite link back to them."""
    page = text(client.get("/kb/conditions/septic").text)
    assert "Probability flag" in page
    assert "EMERGENCY when setting = emergency_department" in page
    assert "EMERGENCY when probability 20% or more (septic_emergency_probability)" in page
    assert "ranked first at 50% or more, then never above urgent" in page
    for name in ("must_not_miss_probability", "must_not_miss_leading_probability", "septic_emergency_probability"):
        assert f"{name} = {kb.treatment.threshold(name).value}" in page, name
    assert "Margaretten" in page and "Coakley" in page
    assert "probability flag of septic" in text(client.get("/kb/references/coakley2006").text)
    assert "Its urgency is the plan's: urgent" in text(client.get("/kb/conditions/fnsf").text)


def test_pages_forbid_inline_scripts_and_serve_only_listed_static_files(client: TestClient) -> None:
    page = client.get("/cases/new")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and "https://" not in re.sub(r'href="https://[^"]+"', "", page.text)
    assert client.get("/static/htmx.min.js").status_code == 200
    assert client.get("/static/VENDORED.md").status_code == 404
    assert client.get("/static/%2e%2e%2fpages.py").status_code == 404


def test_a_case_read_from_fhir_opens_with_each_facts_source(client: TestClient) -> None:
    bundle = (EXAMPLES.parent / "tests" / "data" / "fhir" / "septic_febrile_crp_mg_dl.bundle.json").read_bytes()
    answer = client.post("/cases/from-fhir", files={"bundle": ("chart.json", bundle, "application/fhir+json")})
    assert answer.status_code == 200, text(answer.text)[:500]
    html = answer.text
    assert re.search(r'name="labs.crp.value"[^>]*value="18.5"', html)
    assert re.search(r'<p class="source">from Observation/[0-9a-f-]+ value', html)  # the CRP's source, at the field
    assert re.search(r'name="imaging.0.findings.effusion" value="present" checked', html)
    assert "EMERGENCY" in html.split('id="differential"')[1]
    body = text(html)
    assert "Read from FHIR:" in body and "Patient/" in body


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"{not json", "The FHIR file:"), (b'{"resourceType": "Banana"}', "The FHIR file:"), (b"", "The FHIR file:")],
)
def test_a_file_that_is_not_fhir_is_named_as_such(client: TestClient, content: bytes, words: str) -> None:
    answer = client.post("/cases/from-fhir", files={"bundle": ("x.json", content, "application/json")})
    assert answer.status_code == 422
    assert words in text(answer.text)
    assert client.post("/cases/from-fhir", data={"patient": "x"}).status_code == 422  # no file at all



def test_the_warm_up_pays_what_a_first_request_would(kb: KnowledgeBase, library: CaseLibrary) -> None:
    """Every case the list shows is assessed, every condition profiled, every finding's table
    derived, and the objects alive then are out of the garbage collector's full collections."""
    import gc

    from hipdx.web.context import PageContext

    ctx = PageContext(kb, lambda: TODAY, library)
    tables: list[int] = []
    ctx.warm_also(lambda: tables.append(1))
    assert ctx.row_assessment.cache_info().currsize == 0  # type: ignore[attr-defined]
    ctx.warm()
    listed = ctx.source.search("")
    assert listed and ctx.row_assessment.cache_info().currsize == len(listed)  # type: ignore[attr-defined]
    assert all(ctx.row_assessment(r.id, r.version, TODAY) is not None for r in listed)
    assert ctx.profile.cache_info().currsize == len(kb.condition_ids)  # type: ignore[attr-defined]
    assert tables == [1]
    assert gc.get_freeze_count() > 100_000


def test_the_server_warms_the_pages_before_its_first_request(kb: KnowledgeBase, library: CaseLibrary,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The router's lifespan runs the warm-up (counted here, not run: the test above runs it)."""
    from hipdx.web.context import PageContext

    calls: list[PageContext] = []
    monkeypatch.setattr(PageContext, "warm", lambda self: calls.append(self))
    app = create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, cases=library), kb)
    TestClient(app).get("/kb")
    assert calls == []  # no lifespan, no warm-up: the app still answers
    with TestClient(app) as started:
        assert len(calls) == 1
        assert started.get("/").status_code == 200
