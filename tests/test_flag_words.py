"""Red flags name their findings in the clinician's words, not the knowledge base's identifiers
(clinical review: flags printed "Met by: sex_pregnancy = pregnant_or_postpartum"): the core carries
``met_by`` (variable label and state words) and every view shows it: report (text and markdown),
web page, FHIR export.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import hipdx
from hipdx.fhir.export import assessment_bundle
from hipdx.knowledge import KnowledgeBase
from hipdx.report import view
from hipdx.report.markdown import render_markdown
from hipdx.service import ServiceConfig, create_app
from hipdx.web import CaseLibrary

from conftest import EXAMPLES, TODAY

IDENTIFIERS = ("sex_pregnancy", "pregnant_or_postpartum", "mri_edema", "head_and_neck")
WORDS = "Sex and pregnancy: pregnant or postpartum"


@pytest.fixture(scope="module")
def pregnant(kb: KnowledgeBase) -> hipdx.Assessment:
    case = hipdx.parse_case(json.loads((EXAMPLES / "toh_pregnancy_34_weeks.json").read_text(encoding="utf-8")))
    return hipdx.assess(case, kb, TODAY)


def test_the_flag_carries_its_findings_in_words(pregnant: hipdx.Assessment) -> None:
    flag = next(f for f in pregnant.red_flags if f.id == "pregnancy_fracture_risk")
    assert any(WORDS in m for m in flag.met_by), flag.met_by
    assert not any(i in m for m in flag.met_by for i in IDENTIFIERS), flag.met_by
    assert flag.triggered_by and "sex_pregnancy = pregnant_or_postpartum" in flag.triggered_by[0]  # the identifiers stay for machines


def test_an_unmeasured_finding_reads_not_known(kb: KnowledgeBase) -> None:
    a = hipdx.assess(hipdx.parse_case({"age_years": 40, "sex": "male", "labs": {"wbc": {"value": 14, "unit": "10^9/L"}}}), kb, TODAY)
    flag = next(f for f in a.red_flags if f.id == "septic_signs")
    assert any("C-reactive protein (mg/L): not known" in m for m in flag.met_by), flag.met_by


def test_the_report_shows_words_not_identifiers(pregnant: hipdx.Assessment, kb: KnowledgeBase) -> None:
    rows = [view.red_flag_view(f).triggered_by for f in pregnant.red_flags if f.kind == "rule"]
    markdown = render_markdown(pregnant, kb)
    assert any(WORDS in r for r in rows) and WORDS in markdown
    for i in IDENTIFIERS[:2]:
        assert i not in markdown and not any(i in r for r in rows)


def test_the_fhir_export_shows_words(pregnant: hipdx.Assessment) -> None:
    bundle = json.dumps(assessment_bundle(pregnant, recorded=dt.datetime(2026, 12, 8, tzinfo=dt.timezone.utc)))
    assert WORDS in bundle and "sex_pregnancy = " not in bundle


@pytest.fixture(scope="module")
def client(kb: KnowledgeBase) -> Iterator[TestClient]:
    library = CaseLibrary.from_folder(EXAMPLES, TODAY)
    app = create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, cases=library), kb)
    with TestClient(app) as c:
        yield c


def test_the_web_page_shows_words(client: TestClient) -> None:
    page = client.get("/cases/toh_pregnancy_34_weeks/assessment")
    assert page.status_code == 200
    assert WORDS in page.text and "sex_pregnancy = " not in page.text
