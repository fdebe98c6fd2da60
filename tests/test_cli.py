"""The command line, exercised as a user runs it: real case files, the real knowledge base."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from hipdx import __version__, cli, cli_inputs
from hipdx.cli import app, main
from hipdx.knowledge import default_data_dir, load_knowledge_base

from conftest import CliRunner

TODAY = "2026-11-25"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: A man of 45 with sudden hip pain and diffuse edema of the femoral head and neck on MRI.
TOH_CASE: dict[str, Any] = {
    "id": "toh-man",
    "note": "45-year-old man with sudden hip pain\nsecond line of the note",
    "age_years": 45,
    "sex": "male",
    "onset": {"type": "sudden", "days_since_onset": 30},
    "pain": {"weight_bearing": "present"},
    "labs": {"crp": {"value": 3, "unit": "mg/L"}},
    "imaging": [{"modality": "mri", "days_since_onset": 25, "findings": {"edema": "present", "edema_extent": "head_and_neck"}}],
}

#: A febrile patient with CRP 120 mg/L: the septic red flag must show.
FEBRILE_CASE: dict[str, Any] = {
    "id": "febrile",
    "age_years": 67,
    "sex": "male",
    "onset": {"type": "sudden", "days_since_onset": 3},
    "labs": {"crp": {"value": 120, "unit": "mg/L"}, "temperature": {"value": 39.1, "unit": "degC"}},
}


def run(*args: object) -> Result:
    """Invoke the CLI in-process; an exception that escapes the command fails the test."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def write_case(tmp_path: Path):
    def write(content: dict[str, Any] | str, name: str = "case.json") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
        return path

    return write


def assert_clean_failure(result: Result, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


# -- assess -------------------------------------------------------------------------------


def test_assess_json_is_the_whole_assessment(write_case) -> None:
    result = run("assess", write_case(TOH_CASE), "--format", "json", "--today", TODAY)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("differential", "red_flags", "next_tests", "explanation", "provenance"):
        assert key in data
    probabilities = [item["probability"] for item in data["differential"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=0.01)
    assert len(data["differential"]) == len(load_knowledge_base().conditions)
    assert data["provenance"]["knowledge_base_version"] == load_knowledge_base().version
    assert data["case_id"] == "toh-man"


def test_assess_text_shows_every_section_in_order(write_case) -> None:
    result = run("assess", write_case(TOH_CASE), "--today", TODAY, "--detail")
    assert result.exit_code == 0, result.output
    text = result.stdout
    sections = ["Now: ", "RED FLAGS", "Differential", "Why", "Missing findings", "Next tests",
                "How sure", "Warnings", "Staging", "Management plan", "knowledge base: ", "supports a clinician"]
    positions = [text.index(s) for s in sections]
    assert positions == sorted(positions)
    for condition in load_knowledge_base().conditions:
        assert condition.short in text
    assert "\x1b[" not in text  # not a terminal: no colour codes


def test_assess_by_default_prints_one_screen(write_case) -> None:
    """What to do now, red flags, the leading three with ranges, the next test and the plan: about 40 lines."""
    for case in (TOH_CASE, FEBRILE_CASE, EXAMPLES / "toh_man_classic.json", EXAMPLES / "toh_pregnancy_34_weeks.json"):
        path = case if isinstance(case, Path) else write_case(case)
        text = run("assess", path, "--today", TODAY).stdout
        assert len(text.splitlines()) <= 45, text
        sections = ["Now: ", "Red flags", "Leading 3 (probability and 90% range)", "Next test", "Plan", "--detail"]
        positions = [text.index(s) for s in sections]
        assert positions == sorted(positions)
        assert "Why: the leading conditions" not in text and "References" not in text


@pytest.mark.parametrize("options", [[], ["--detail"], ["-f", "markdown"], ["--detail", "-f", "markdown"]])
def test_the_decision_support_statement_appears_once(options: list[str]) -> None:
    text = run("assess", EXAMPLES / "toh_man_classic.json", "--today", TODAY, *options).stdout
    flat = " ".join(text.split())
    assert flat.count("supports a clinician's decision") == 1, flat
    assert flat.count("Check every output against the patient in front of you") == 1


def test_the_one_screen_names_the_blocked_options_with_the_fact_that_blocked_them() -> None:
    text = " ".join(run("assess", EXAMPLES / "toh_pregnancy_34_weeks.json", "--today", TODAY).stdout.split())
    assert "URGENT: Hip pain with marrow edema in pregnancy" in text
    assert "BLOCKED by pregnant = yes" in text and "Zoledronic acid" in text


def test_assess_markdown(write_case) -> None:
    result = run("assess", write_case(TOH_CASE), "-f", "markdown", "--today", TODAY, "--detail")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# hipdx assessment: case toh-man")
    assert "| # | Condition | Probability | 90% range |" in result.stdout
    headings = [line for line in result.stdout.splitlines() if line.startswith("#")]
    assert headings[0] == "# hipdx assessment: case toh-man"
    assert all(h.startswith("## ") or h.startswith("### ") for h in headings[1:]), headings  # one title, rendered so
    assert {"## Staging", "## Management plan", "## Provenance"} <= set(headings)
    short = run("assess", write_case(TOH_CASE), "-f", "markdown", "--today", TODAY).stdout
    assert short.startswith("# hipdx: case toh-man") and "## Leading 3" in short and len(short.splitlines()) < 60


def test_febrile_case_shows_the_septic_red_flag_first(write_case) -> None:
    septic_flag = next(rf for rf in load_knowledge_base().red_flags if rf.condition == "septic")
    for options in ([], ["--detail"]):
        result = run("assess", write_case(FEBRILE_CASE), "--today", TODAY, *options)
        assert result.exit_code == 0, result.output
        assert septic_flag.title in result.stdout
        assert "EMERGENCY" in result.stdout
        assert result.stdout.index(septic_flag.title) < result.stdout.index("Leading 3" if not options else "Differential")


def test_malformed_json(write_case) -> None:
    result = run("assess", write_case('{"age_years": 45,'))
    assert_clean_failure(result)
    assert "not valid JSON" in result.stderr


def test_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"note": "caf\u00e9"}'.encode("latin-1"))
    result = run("assess", path)
    assert_clean_failure(result)
    assert "UTF-8" in result.stderr


def test_unknown_field_is_named(write_case) -> None:
    result = run("assess", write_case({**TOH_CASE, "age_yeras": 45}))
    assert_clean_failure(result)
    assert "age_yeras" in result.stderr


def test_implausible_age_is_named(write_case) -> None:
    result = run("assess", write_case({**TOH_CASE, "age_years": 300}))
    assert_clean_failure(result)
    assert "age_years" in result.stderr


def test_wrong_unit_names_the_field_and_accepted_units(write_case) -> None:
    result = run("assess", write_case({**TOH_CASE, "labs": {"crp": {"value": 1, "unit": "g"}}}))
    assert_clean_failure(result)
    assert "labs.crp" in result.stderr
    assert "mg/L" in result.stderr and "mg/dL" in result.stderr


def test_every_problem_is_listed(write_case) -> None:
    result = run("assess", write_case({"age_years": 300, "sex": "robot", "colour": "blue"}))
    assert_clean_failure(result)
    for field in ("age_years", "sex", "colour"):
        assert field in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    result = run("assess", missing)
    assert_clean_failure(result)
    assert f"cannot read {missing}" in result.stderr


def test_directory_instead_of_file(tmp_path: Path) -> None:
    result = run("assess", tmp_path)
    assert_clean_failure(result)
    assert f"cannot read {tmp_path}" in result.stderr


def test_invalid_today_names_the_option(write_case) -> None:
    result = CliRunner().invoke(app, ["assess", str(write_case(TOH_CASE)), "--today", "2026-13-45"])
    assert_clean_failure(result)
    assert "--today" in result.output


def test_today_counts_days_from_an_onset_date(write_case) -> None:
    case = {**TOH_CASE, "onset": {"type": "sudden", "date": "2026-11-01"}, "imaging": []}
    result = run("assess", write_case(case), "-f", "json", "--today", TODAY)
    assert json.loads(result.stdout)["provenance"]["days_since_onset"] == 24


def test_unexpected_error_is_an_internal_error(write_case, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_inputs, "assess", broken)  # where `hipdx assess` assesses
    result = run("assess", write_case(TOH_CASE))
    assert_clean_failure(result, code=cli.INTERNAL_ERROR)
    assert "internal error: RuntimeError: boom (please report)" in result.stderr


# -- main() and the installed script ----------------------------------------------------------


def test_main_returns_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["assess", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2


def test_main_catches_what_escapes_a_command(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("escaped")

    monkeypatch.setattr(cli.typer.main, "get_command", broken)
    assert main(["--version"]) == cli.INTERNAL_ERROR
    assert "internal error: ValueError: escaped" in capsys.readouterr().err


def test_installed_script_reports_without_traceback(write_case) -> None:
    script = Path(sys.executable).with_name("hipdx")
    if not script.exists():
        pytest.skip("the hipdx script is not installed next to this interpreter")
    done = subprocess.run([str(script), "assess", str(write_case("[1, 2")), "--today", TODAY],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "not valid JSON" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# -- help and version -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [[], ["assess"], ["schema"], ["kb"], ["kb", "check"], ["kb", "show"], ["demo"], ["evaluate"]]
)
def test_help_says_hipdx_supports_a_clinician(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "supports a clinician's decision" in " ".join(result.stdout.split())


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"hipdx {__version__}"


# -- schema ---------------------------------------------------------------------------------


def test_schema_is_the_case_json_schema() -> None:
    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "imaging" in schema["properties"]
    assert "labs" in schema["properties"]


# -- kb check -------------------------------------------------------------------------------


def test_kb_check_prints_counts() -> None:
    kb = load_knowledge_base()
    result = run("kb", "check")
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"{len(kb.conditions)} conditions" in lines
    assert f"{len(kb.variables)} variables" in lines
    assert f"{len(kb.references)} references" in lines
    for basis, count in kb.provenance_counts().items():
        assert any(line.startswith(f"{count} {basis}") for line in lines)


def test_kb_check_on_a_broken_copy_names_the_missing_reference(tmp_path: Path) -> None:
    data = shutil.copytree(default_data_dir(), tmp_path / "data")
    bibliography = yaml.safe_load((data / "bibliography.yaml").read_text(encoding="utf-8"))
    removed = load_knowledge_base().red_flags[0].refs[0]
    del bibliography["references"][removed]
    (data / "bibliography.yaml").write_text(yaml.safe_dump(bibliography, allow_unicode=True), encoding="utf-8")

    result = run("kb", "check", "--data-dir", data)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert removed in result.stderr
    assert "bibliography.yaml" in result.stderr


def test_kb_check_refuses_a_key_given_twice(tmp_path: Path) -> None:
    data = shutil.copytree(default_data_dir(), tmp_path / "data")
    path = data / "bibliography.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    first = lines.index("  cotten1995:\n") + 1
    # a second, shorter entry under the same key at the end: plain YAML would keep it silently
    lines.append("  cotten1995:\n    year: 1995\n    url: https://example.org/shorter\n")
    second = len(lines)
    path.write_text("".join(lines), encoding="utf-8")

    result = run("kb", "check", "--data-dir", data)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert f"bibliography.yaml: key 'cotten1995' is given twice, on line {first} and line {second}" in result.stderr


def test_kb_check_on_a_missing_folder(tmp_path: Path) -> None:
    result = run("kb", "check", "--data-dir", tmp_path / "nothing")
    assert result.exit_code != 0
    assert "cannot read" in result.stderr


# -- kb show --------------------------------------------------------------------------------


def test_kb_show_text() -> None:
    kb = load_knowledge_base()
    toh = kb.condition("toh")
    result = run("kb", "show", "toh")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert toh.name in text
    assert "Base prior" in text
    for variable in kb.variables.values():
        assert variable.spec.label in text
    banded = next(v for v in kb.variables.values() if v.spec.time_bands_days)
    assert f"under {banded.spec.time_bands_days[0]:g} days" in text
    for flag in (rf for rf in kb.red_flags if rf.condition == "toh"):
        assert flag.title in text


def test_kb_show_json() -> None:
    kb = load_knowledge_base()
    result = run("kb", "show", "toh", "--format", "json")
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["id"] == "toh"
    assert profile["prior"]["probability"] == pytest.approx(kb.condition("toh").prior)
    assert len(profile["variables"]) == len(kb.variables)
    for variable in profile["variables"]:
        spec = kb.variables[variable["id"]].spec
        assert len(variable["bands"]) == spec.band_count()
        for band in variable["bands"]:
            assert sum(e["probability"] for e in band["estimates"]) == pytest.approx(1.0, abs=1e-3)
            assert all(0 <= e["range"][0] <= e["range"][1] <= 1 for e in band["estimates"])
            assert band["source"]["basis"] in {"reported", "derived", "transferred", "estimate"}
            assert 0 < band["source"]["n_effective"] <= band["source"]["n"]


def test_kb_show_gives_the_probability_flags_tiers_and_thresholds_with_their_sources() -> None:
    """The septic probability flag's urgency tiers (red_flags.yaml probability_flags) and the 5% and
    50% thresholds (treatments.yaml) are shown as the rules are, each with its basis and sources."""
    kb = load_knowledge_base()
    text = " ".join(run("kb", "show", "septic").stdout.split())
    tiers = kb.probability_flags["septic"].tiers
    for name in ("must_not_miss_probability", "must_not_miss_leading_probability", "septic_emergency_probability"):
        threshold = kb.treatment.threshold(name)
        assert f"{name} = {threshold.value:g}: basis {threshold.basis.value}" in text, name
    assert "when setting = emergency_department" in text
    assert "EMERGENCY when probability 20% or more (septic_emergency_probability)" in text
    assert "URGENT when otherwise" in text
    for tier in tiers:
        assert " ".join(tier.reason.split()) in text
        for ref in tier.refs:
            assert f"{ref}: " in text, ref
    profile = json.loads(run("kb", "show", "septic", "--format", "json").stdout)["probability_flag"]
    assert [t["urgency"] for t in profile["tiers"]] == [t.urgency for t in tiers]
    assert profile["leading_alone"]["value"] == kb.treatment.threshold("must_not_miss_leading_probability").value
    fnsf = json.loads(run("kb", "show", "fnsf", "--format", "json").stdout)["probability_flag"]
    assert fnsf["tiers"] == [] and fnsf["plan_urgency"] == kb.treatment.treatments.plans["fnsf"].urgency
    fnsf_text = " ".join(run("kb", "show", "fnsf").stdout.split())
    assert "urgency: the plan's, URGENT" in fnsf_text
    # a rule's trigger on an early study says so (the runner's rule: an MRI before edema can show)
    assert "mri_edema = none or focal or femoral_head (on a study before day 2 since onset)" in fnsf_text
    assert json.loads(run("kb", "show", "toh", "--format", "json").stdout)["probability_flag"] is None


def test_kb_show_unknown_condition_lists_the_known_ids() -> None:
    result = run("kb", "show", "nonsense")
    assert_clean_failure(result)
    assert "nonsense" in result.stderr
    for condition_id in load_knowledge_base().condition_ids:
        assert condition_id in result.stderr


# -- demo -----------------------------------------------------------------------------------


def test_demo_runs_the_good_cases_and_names_the_bad_one(tmp_path: Path) -> None:
    (tmp_path / "a_toh.json").write_text(json.dumps(TOH_CASE), encoding="utf-8")
    (tmp_path / "b_bad.json").write_text(json.dumps({"age_years": 300}), encoding="utf-8")
    (tmp_path / "c_febrile.json").write_text(json.dumps(FEBRILE_CASE), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a case", encoding="utf-8")

    result = run("demo", tmp_path, "--today", TODAY)
    assert_clean_failure(result)
    out = result.stdout
    assert out.index("toh-man") < out.index("febrile")
    assert "45-year-old man with sudden hip pain" in out
    assert "second line of the note" not in out
    assert "next test:" in out
    assert "red flags:" in out
    assert "b_bad.json" in result.stderr and "age_years" in result.stderr
    assert "2 of 3 cases assessed" in out


def test_demo_all_good_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(TOH_CASE), encoding="utf-8")
    result = run("demo", tmp_path, "--today", TODAY)
    assert result.exit_code == 0, result.output
    assert "1 of 1 cases assessed" in result.stdout


def test_demo_missing_directory(tmp_path: Path) -> None:
    result = run("demo", tmp_path / "nowhere")
    assert_clean_failure(result)
    assert "cannot read" in result.stderr


# -- colour -----------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert not cli.use_color(no_color=False)  # pytest captures stdout: not a terminal
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert cli.use_color(no_color=False)
    assert not cli.use_color(no_color=True)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli.use_color(no_color=False)


# -- hostile inputs (issue 12) --------------------------------------------------------------

#: Documents that crashed every command with an internal error (exit 70) before issue 12.
CRASHERS = {
    "nested_990_deep": '{"labs": ' + '{"a": ' * 990 + "1" + "}" * 990 + "}",
    "list_990_deep": '{"note": ' + "[" * 990 + "]" * 990 + "}",
    "integer_of_4301_digits": '{"age_years": ' + "9" * 4301 + "}",
}


@pytest.mark.parametrize("command", ["assess", "plan", "course", "stage"])
@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_deep_nesting_and_huge_integers_are_input_errors(write_case, command: str, name: str) -> None:
    result = run(command, write_case(CRASHERS[name]), "--today", TODAY)
    assert_clean_failure(result)
    assert "internal error" not in result.stderr
    assert "levels deep" in result.stderr or "number of 4,301 characters" in result.stderr


def test_a_key_given_twice_is_refused_naming_it(write_case) -> None:
    text = json.dumps(TOH_CASE)[:-1] + ', "sex": "female", "labs": {"crp": {"value": 5, "unit": "mg/L"}, "crp": {"value": 5, "unit": "mg/dL"}}}'
    result = run("assess", write_case(text), "--today", TODAY)
    assert_clean_failure(result)
    assert "sex: given twice" in result.stderr and '"female"' in result.stderr
    assert "labs: given twice" in result.stderr
    inner = json.dumps(TOH_CASE)[:-1] + ', "labs": {"crp": {"value": 5, "unit": "mg/L"}, "crp": {"value": 5, "unit": "mg/dL"}}}'
    inner = inner.replace('"labs": {"crp": {"value": 3, "unit": "mg/L"}}, ', "")
    result = run("assess", write_case(inner), "--today", TODAY)
    assert_clean_failure(result)
    assert "labs.crp: given twice" in result.stderr


def test_demo_goes_on_after_a_file_that_crashed_it(tmp_path: Path) -> None:
    (tmp_path / "a_deep.json").write_text(CRASHERS["nested_990_deep"], encoding="utf-8")
    (tmp_path / "b_huge.json").write_text(CRASHERS["integer_of_4301_digits"], encoding="utf-8")
    (tmp_path / "c_toh.json").write_text(json.dumps(TOH_CASE), encoding="utf-8")
    result = run("demo", tmp_path, "--today", TODAY)
    assert_clean_failure(result)
    assert "1 of 3 cases assessed; not assessed: a_deep.json, b_huge.json" in result.stdout
    assert "toh-man" in result.stdout


def test_evaluate_refuses_a_vignette_file_with_a_key_twice_or_too_deep(tmp_path: Path) -> None:
    twice = tmp_path / "twice.json"
    twice.write_text('[{"id": "v1", "patient": {"sex": "male", "sex": "female"}}]', encoding="utf-8")
    result = run("evaluate", twice, "--today", TODAY)
    assert_clean_failure(result, code=5)
    assert "0.patient.sex: given twice" in result.stderr
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 990 + "]" * 990, encoding="utf-8")
    result = run("evaluate", deep, "--today", TODAY)
    assert_clean_failure(result, code=5)
    assert "levels deep" in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("command", ["assess", "evaluate"])
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, command: str) -> None:
    import threading

    fifo = tmp_path / "case.json"
    os.mkfifo(fifo)

    def feed() -> None:  # a regression that reads the FIFO gets a valid case (and fails below) instead of hanging
        try:
            with open(fifo, "w", encoding="utf-8") as writer:
                writer.write(json.dumps(TOH_CASE))
        except BrokenPipeError:  # the reader went without reading (the command opened the FIFO only to look at it)
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        done = CliRunner().invoke(app, [command, str(fifo), "--today", TODAY], catch_exceptions=False)
    finally:
        # a reader lets the writer's open return when nothing opened the FIFO; it stays open until the
        # writer has written and closed (closed earlier, the writer's write would break the pipe)
        release = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        writer.join(timeout=10)
        os.close(release)
    assert done.exit_code in (2, 5), done.stderr
    assert "not a regular file" in done.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_refused_not_read_until_memory_runs_out() -> None:
    result = run("assess", "/dev/zero", "--today", TODAY)
    assert_clean_failure(result)
    assert "cannot read /dev/zero: it is not a regular file" in result.stderr


def test_a_case_file_over_5_mb_is_refused(write_case) -> None:
    result = run("assess", write_case('{"note": "' + "x" * (5 * 1024 * 1024) + '"}'), "--today", TODAY)
    assert_clean_failure(result)
    assert "larger than 5 MB" in result.stderr


def test_an_escape_sequence_in_free_text_never_reaches_the_terminal(write_case, tmp_path: Path) -> None:
    hidden = {**TOH_CASE, "note": "ok\u001b[8m", "id": "x"}
    result = run("assess", write_case(hidden), "--today", TODAY)
    assert_clean_failure(result)
    assert "note: is not printable text" in result.stderr
    assert "\u001b" not in result.output
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "a.json").write_text(json.dumps(hidden), encoding="utf-8")
    result = run("demo", demo, "--today", TODAY)
    assert "\u001b" not in result.output and "0 of 1 cases assessed" in result.stdout
    vignettes = tmp_path / "v.json"
    vignettes.write_text(json.dumps([{"id": "v\u001b[8m", "final_diagnosis": {"category": "toh"}}]), encoding="utf-8")
    result = run("evaluate", vignettes, "--today", TODAY)
    assert result.exit_code == 0, result.output
    assert "\u001b" not in result.output


def test_markdown_escapes_html_from_the_case(write_case) -> None:
    case = {**TOH_CASE, "id": '<img src=x onerror="alert(1)">',
            "visits": [{"days_since_onset": 20, "new_joint_pain": "present", "new_joint_site": "<script>x</script>"}]}
    for command, options in (("assess", []), ("assess", ["--detail"]), ("plan", [])):
        result = run(command, write_case(case), "-f", "markdown", "--today", TODAY, *options)
        assert result.exit_code == 0, result.output
        assert "<img" not in result.stdout and "<script" not in result.stdout
        assert "&lt;img src=x" in result.stdout


@pytest.mark.parametrize(
    ("command", "change", "field"),
    [
        # counted from --today (no assessed_on): the onset in the future, or 13,000 days ago
        ("assess", {"onset": {"type": "sudden", "date": "2099-01-01"}, "imaging": []}, "onset.date: is after the date of the assessment"),
        ("plan", {"onset": {"type": "sudden", "date": "1990-01-01"}, "imaging": []}, "onset.date: 13,477 days"),
        # an MRI dated before the onset given as days before the assessment
        ("stage", {"imaging": [{"modality": "mri", "date": "2026-09-01"}]}, "imaging.0.date: is 55 days before the onset"),
        # a visit in the future of the assessment
        ("course", {"visits": [{"date": "2026-12-20", "pain_0_10": 5}]}, "visits.0.date: is after the date of the assessment"),
        ("course", {"visits": [{"days_since_onset": 60, "pain_0_10": 5}]}, "visits.0.days_since_onset: 60 days"),
    ],
)
def test_impossible_times_counted_from_today_are_input_errors(write_case, command, change, field) -> None:
    result = run(command, write_case({**TOH_CASE, **change}), "--today", TODAY)
    assert_clean_failure(result)
    assert field in result.stderr, result.stderr


@pytest.mark.parametrize("today", ["0001-01-01", "9999-12-31"])
def test_an_implausible_today_is_refused(write_case, today: str) -> None:
    result = run("assess", write_case(TOH_CASE), "--today", today)
    assert_clean_failure(result)
    assert "--today" in result.stderr and "not a plausible date" in result.stderr


def test_valid_times_are_unchanged(write_case) -> None:
    case = {**TOH_CASE, "onset": {"type": "sudden", "days_since_onset": 30},
            "imaging": [{"modality": "mri", "date": "2026-11-20", "findings": {"edema": "present"}}],
            "visits": [{"date": "2026-11-25", "pain_0_10": 6}]}
    result = run("course", write_case(case), "-f", "json", "--today", TODAY)
    assert result.exit_code == 0, result.output
    assert [p["days_since_onset"] for p in json.loads(result.stdout)["course"]["points"]] == [30]


def test_python_dash_m_hipdx_runs_the_command_line() -> None:
    """`python -m hipdx serve ...` (a container's entry point, a venv without its scripts on PATH) is
    the same command line as `hipdx`. Before: "No module named hipdx.__main__"."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-m", "hipdx", "serve", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--cds-issuers" in done.stdout
