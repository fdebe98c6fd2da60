"""The assessment page names the alerts of the follow-up visits beside its headline (a clinical
review found "No red flag" at the top of a case whose visits raised an urgent alert)."""

from __future__ import annotations

from api_support import Api
from test_web_pages import text
from web_support import api, example, sign_in  # noqa: F401  (api: the fixture)


def test_the_assessment_page_names_an_urgent_alert_of_the_visits_under_its_headline(api: Api) -> None:
    client = api.client
    token = sign_in(api)
    data = example("toh_man_classic") | {"csrf_token": token, "assessed_on": ""}  # onset day 0 .. today day 48
    case_id = client.post("/cases/save", data=data, follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    for days, pain in [("43", "3"), ("47", "7")]:  # pain rising by 4 points after day 42
        added = client.post(f"/cases/{case_id}/visits", data={"csrf_token": token, "visit.days_since_onset": days,
                                                              "visit.pain_0_10": pain}, follow_redirects=False)
        assert added.status_code == 303, added.text[:500]
    page = text(client.get(f"/cases/{case_id}/assessment").text)
    now = page[page.index("What to do now"):page.index("Differential")]
    assert "From the follow-up visits: URGENT: Pain or walking worse after the first weeks" in now, now


def test_the_assessment_page_names_a_blocking_fact_with_its_unit(api: Api) -> None:
    # Before: "Blocked by creatinine clearance ml min = ..." and "calcium mmol l".
    client = api.client
    token = sign_in(api)
    data = example("toh_man_classic") | {"csrf_token": token, "weight_kg": "60", "labs.creatinine.value": "3.5",
                                          "labs.creatinine.unit": "mg/dL", "labs.calcium.value": ""}
    case_id = client.post("/cases/save", data=data, follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    page = text(client.get(f"/cases/{case_id}/assessment").text)
    assert "Blocked by creatinine clearance (mL/min)" in page, page[:3000]
    assert "ml min" not in page and "mmol l" not in page
