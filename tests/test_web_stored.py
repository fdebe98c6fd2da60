"""The web pages over the service's database (SQLite): sign in with a cookie session, CSRF on
every post, the case list from the store, saving a case, adding visits and the course plot."""

from __future__ import annotations

import json
import re

import pytest

from hipdx.store import records

from api_support import Api
from conftest import EXAMPLES
from test_web_pages import text
from web_support import api, example, sign_in  # noqa: F401  (api: the fixture)


def test_case_pages_need_a_signed_in_user(api: Api) -> None:
    client = api.client
    for path in ["/", "/cases/new", "/cases/1", "/cases/1/assessment"]:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in?next="), path
    assert client.post("/fragments/differential", data={}, headers={"HX-Request": "true"}).status_code == 401
    assert client.get("/kb").status_code == 200  # the knowledge base holds no patient data


def test_a_wrong_password_is_refused_in_words(api: Api) -> None:
    answer = api.client.post("/sign-in", data={"username": "clinician", "password": "wrong password!"})
    assert answer.status_code == 401
    assert "Unknown user or wrong password." in text(answer.text)
    assert "set-cookie" not in answer.headers


def test_save_list_open_and_change_a_case(api: Api) -> None:
    client = api.client
    token = sign_in(api)
    data = example("toh_pregnancy_34_weeks") | {"csrf_token": token}
    saved = client.post("/cases/save", data=data, follow_redirects=False)
    assert saved.status_code == 303
    case_id = saved.headers["location"].rsplit("/", 1)[1]
    stored = records.get_case(api.engine, int(case_id))
    assert stored is not None and stored.label == "toh_pregnancy_34_weeks" and stored.created_by == "clinician"
    listing = text(client.get("/").text)
    assert "toh_pregnancy_34_weeks" in listing and "TOH" in listing
    assert "Hip pain with marrow edema in pregnancy or after delivery" in listing  # its red flag in the row
    assert "toh_pregnancy" not in text(client.get("/", params={"q": "septic"}).text)
    opened = client.get(f"/cases/{case_id}").text
    assert f'name="case_key" value="{case_id}"' in opened and 'name="case_version" value="1"' in opened
    # change it: a high CRP; the saved version changes and the list follows
    changed = data | {"case_key": case_id, "case_version": "1", "labs.crp.value": "150", "labs.crp.unit": "mg/L", "labs.temperature.value": "39.5"}
    assert client.post("/cases/save", data=changed, follow_redirects=False).status_code == 303
    assert records.get_case(api.engine, int(case_id)).version == 2
    assert "EMERGENCY" in client.get(f"/cases/{case_id}/assessment").text
    # every read and write is in the access log
    events = [(e.username, e.action, e.what) for e in records.access_events(api.engine)]
    assert ("clinician", "C", f"case {case_id}") in events and ("clinician", "U", f"case {case_id}") in events


def test_posts_without_the_session_csrf_token_are_refused(api: Api) -> None:
    client = api.client
    sign_in(api)
    data = example("toh_man_classic")
    for path in ["/cases/save", "/fragments/differential", "/assessment", "/cases/entry"]:
        assert client.post(path, data=data | {"csrf_token": "0" * 64}).status_code == 403, path
    assert records.list_cases(api.engine, None, 10, 0)[0] == 0


def test_an_invalid_case_is_not_saved_and_the_field_is_named(api: Api) -> None:
    client = api.client
    token = sign_in(api)
    answer = client.post("/cases/save", data=example("toh_man_classic") | {"csrf_token": token, "age_years": "-4"})
    assert answer.status_code == 422
    assert "Age: -4 is below the accepted range; expected from 0 to 120 years" in text(answer.text)
    assert records.list_cases(api.engine, None, 10, 0)[0] == 0


def test_visits_over_time_with_the_course_plot(api: Api) -> None:
    client = api.client
    token = sign_in(api)
    # onset 2026-10-08, assessed today (TODAY, day 48): visits up to day 48
    data = example("toh_man_classic") | {"csrf_token": token, "assessed_on": ""}
    case_id = client.post("/cases/save", data=data, follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    assert "No follow-up visit yet." in text(client.get(f"/cases/{case_id}").text)
    for days, pain in [("20", "7"), ("35", "6"), ("47", "8")]:
        added = client.post(f"/cases/{case_id}/visits", data={"csrf_token": token, "visit.days_since_onset": days, "visit.pain_0_10": pain,
                                                              "visit.walking": "limp"}, follow_redirects=False)
        assert added.status_code == 303, added.text[:500]
    page = client.get(f"/cases/{case_id}")
    body = text(page.text)
    assert re.search(r"47 .*8 ", body)  # the visit on day 47 with a pain of 8
    assert f'src="/cases/{case_id}/course.svg' in page.text
    plot = client.get(f"/cases/{case_id}/course.svg")
    assert plot.status_code == 200 and plot.headers["content-type"].startswith("image/svg+xml")
    assert plot.text.lstrip().startswith("<?xml") and "<svg" in plot.text
    # a visit before the onset or after today is refused, named at its field
    refused = client.post(f"/cases/{case_id}/visits", data={"csrf_token": token, "visit.days_since_onset": "-5"})
    assert refused.status_code == 422
    assert "Days since onset: -5 is below the accepted range; expected from 0 to 3650 days" in text(refused.text)
    later = client.post(f"/cases/{case_id}/visits", data={"csrf_token": token, "visit.date": "2027-03-01"})
    assert later.status_code == 422 and "Date of the visit:" in text(later.text)
    both = client.post(f"/cases/{case_id}/visits", data={"csrf_token": token, "visit.pain_0_10": "3"})
    assert both.status_code == 422 and "give exactly one of date or days since onset" in text(both.text)
    assert len(records.get_case(api.engine, int(case_id)).visits) == 3


def test_sign_out_ends_the_session(api: Api) -> None:
    client = api.client
    token = sign_in(api, fresh=True)  # through the page: the cookie's flags are checked
    out = client.post("/sign-out", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    client.cookies.clear()
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_rest_api_reads_what_the_pages_saved(api: Api) -> None:
    client = api.client
    token = sign_in(api)
    case_id = client.post("/cases/save", data=example("septic_febrile_crp_mg_dl") | {"csrf_token": token},
                          follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    answer = client.get(f"/api/v1/cases/{case_id}", headers=api.sign_in())
    assert answer.status_code == 200
    assert answer.json()["case"]["labs"]["crp"] == {"value": 18.5, "unit": "mg/dL"}


def test_a_cds_card_link_opens_the_patients_case(api: Api) -> None:
    client = api.client
    token = sign_in(api)
    first = client.get("/patients/pat-17", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/cases/new?label=Patient/pat-17"
    assert 'value="Patient/pat-17"' in client.get(first.headers["location"]).text
    saved = client.post("/cases/save", data=example("toh_man_classic") | {"csrf_token": token, "id": "Patient/pat-17"},
                        follow_redirects=False)
    case_url = saved.headers["location"]
    client.post("/cases/save", data=example("toh_man_classic") | {"csrf_token": token, "id": "Patient/pat-170"})
    opened = client.get("/patients/pat-17", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == case_url


@pytest.mark.parametrize(
    "path",
    ["/cases/abc", "/cases/99999999999999999999", "/cases/0/assessment", "/cases/-1/course.svg", "/patients/" + "x" * 500,
     "/cases/new?label=%1b%5b31m", "/?q=%25%5f%5c", "/sign-in?next=//evil.example/x"],
)
def test_odd_addresses_never_answer_5xx(api: Api, path: str) -> None:
    client = api.client
    sign_in(api)
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code in (200, 303, 404), (path, answer.status_code)
    if path.startswith("/sign-in"):
        assert 'name="next" value="/"' in answer.text  # never sent on to another site


def test_a_case_without_visits_has_no_course_plot(api: Api) -> None:
    client = api.client
    token = sign_in(api)
    case_url = client.post("/cases/save", data=example("toh_man_classic") | {"csrf_token": token},
                           follow_redirects=False).headers["location"]
    assert client.get(case_url + "/course.svg").status_code == 404


@pytest.mark.slow  # lays out a PDF (WeasyPrint)
def test_the_assessment_links_the_printable_report_of_the_case(api: Api) -> None:
    import io

    from pypdf import PdfReader

    client = api.client
    token = sign_in(api)
    saved = client.post("/cases/save", data=example("toh_pregnancy_34_weeks") | {"csrf_token": token}, follow_redirects=False)
    case_id = saved.headers["location"].rsplit("/", 1)[1]
    assert f'href="/cases/{case_id}/report.pdf"' in client.get(f"/cases/{case_id}/assessment").text
    answer = client.get(f"/cases/{case_id}/report.pdf")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
    words = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(answer.content)).pages)
    assert "toh_pregnancy_34_weeks" in words and "TOH" in words and "supports a clinician's decision" in words
    assert ("clinician", "R", f"case {case_id} report") in [(e.username, e.action, e.what) for e in records.access_events(api.engine)]
    assert client.get("/cases/99999/report.pdf").status_code == 404
    client.post("/sign-out", data={"csrf_token": token})
    assert client.get(f"/cases/{case_id}/report.pdf", follow_redirects=False).status_code in (303, 401)


def test_a_visit_is_corrected_and_deleted_with_a_confirmation_and_both_are_audited(api: Api) -> None:
    client = api.client
    token = sign_in(api)
    document = json.loads((EXAMPLES / "toh_man_classic.json").read_text()) | {"assessed_on": None}
    document.pop("assessed_on")
    document["visits"] = [{"days_since_onset": 10, "pain_0_10": 7}]  # a visit the case was created with
    case_id = str(records.create_case(api.engine, "visits", document, "seed").id)
    for days, pain in [("20", "6"), ("35", "5")]:
        assert client.post(f"/cases/{case_id}/visits", data={"csrf_token": token, "visit.days_since_onset": days,
                                                              "visit.pain_0_10": pain}, follow_redirects=False).status_code == 303
    page = client.get(f"/cases/{case_id}").text
    assert f'href="/cases/{case_id}/visits/3"' in page and "Correct or delete" in page
    plot_before = client.get(f"/cases/{case_id}/course.svg").text

    form = client.get(f"/cases/{case_id}/visits/2")
    assert form.status_code == 200 and 'value="20"' in form.text and 'value="6"' in form.text
    version = re.search(r'name="version" value="(\d+)"', form.text).group(1)
    # a correction checked as a new visit is: named at its field, nothing written
    refused = client.post(f"/cases/{case_id}/visits/2", data={"csrf_token": token, "version": version,
                                                              "visit.days_since_onset": "-3", "visit.pain_0_10": "6"})
    assert refused.status_code == 422 and "Days since onset" in text(refused.text)
    assert client.post(f"/cases/{case_id}/visits/2", data={"csrf_token": "forged", "version": version,
                                                           "visit.days_since_onset": "21"}).status_code == 403
    fixed = client.post(f"/cases/{case_id}/visits/2", data={"csrf_token": token, "version": version,
                                                            "visit.days_since_onset": "21", "visit.pain_0_10": "2"}, follow_redirects=False)
    assert fixed.status_code == 303 and fixed.headers["location"] == f"/cases/{case_id}#visits"
    stored = records.get_case(api.engine, int(case_id))
    assert stored.visits[0] == {"days_since_onset": 21, "pain_0_10": 2} and stored.document["visits"] == document["visits"]
    # the same old form again: the case changed since, so nothing is written
    stale = client.post(f"/cases/{case_id}/visits/2", data={"csrf_token": token, "version": version,
                                                            "visit.days_since_onset": "22", "visit.pain_0_10": "2"})
    assert stale.status_code == 409 and "The case has changed" in text(stale.text)
    assert client.get(f"/cases/{case_id}/course.svg").text != plot_before  # the plot follows the correction

    # deletion is asked first, then done; the case's own first visit too
    ask = client.get(f"/cases/{case_id}/visits/1/delete")
    assert ask.status_code == 200 and "Delete visit 1" in ask.text and "cannot be undone" in text(ask.text)
    version = re.search(r'name="version" value="(\d+)"', ask.text).group(1)
    assert len(records.get_case(api.engine, int(case_id)).full_case()["visits"]) == 3  # asking deletes nothing
    gone = client.post(f"/cases/{case_id}/visits/1/delete", data={"csrf_token": token, "version": version}, follow_redirects=False)
    assert gone.status_code == 303
    stored = records.get_case(api.engine, int(case_id))
    assert "visits" not in stored.document and [v["days_since_onset"] for v in stored.full_case()["visits"]] == [21, 35]
    for missing in ("9", "0", "x"):
        assert client.get(f"/cases/{case_id}/visits/{missing}").status_code == 404
    actions = [(e.action, e.what) for e in records.access_events(api.engine)]
    assert ("U", f"case {case_id} visit 2") in actions and ("D", f"case {case_id} visit 1") in actions


def test_a_visit_to_a_case_no_longer_valid_today_answers_a_page_not_a_raw_error(api: Api) -> None:
    client = api.client
    token = sign_in(api)
    data = example("toh_man_classic") | {"csrf_token": token, "assessed_on": ""}
    case_id = client.post("/cases/save", data=data, follow_redirects=False).headers["location"].rsplit("/", 1)[1]
    # a visit stored by another route (an import, an older hipdx) that today's checks refuse: day 400 is after today
    records.add_visit(api.engine, int(case_id), {"days_since_onset": 400, "pain_0_10": 2}, "importer")
    refused = client.post(f"/cases/{case_id}/visits", data={"csrf_token": token, "visit.pain_0_10": "3"})
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("text/html")
    body = text(refused.text)
    assert "Case not valid today" in body and "OperationOutcome" not in refused.text
    assert len(records.get_case(api.engine, int(case_id)).visits) == 1  # nothing added
