"""The command line: ``hipdx assess``, ``schema``, ``kb check``, ``kb show``, ``demo``, ``evaluate``, ``fhir``, ``serve``.

An adapter at the edge: it reads files, reads the clock (``--today``), loads the
knowledge base, calls the pure core and prints what a renderer returns. Every error
leaves as one clear message on stderr and a non-zero exit code, never a traceback:

====================================  =========================================
error                                 exit code
====================================  =========================================
usage (bad option or value)           2
a file that cannot be read            2 (``cannot read FILE: reason``)
:class:`~hipdx.errors.HipdxError`     its ``exit_code`` (input 2, knowledge base 3)
anything unexpected                   70 (``internal error: ... (please report)``)
====================================  =========================================

hipdx supports a clinician's decision; it does not replace it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from hipdx._version import __version__
from hipdx.case import Case, parse_case
from hipdx.cli_inputs import assess_inputs
from hipdx.errors import HipdxError, InputError
from hipdx.jsonio import read_input_file
from hipdx.knowledge import KnowledgeBase, load_knowledge_base
from hipdx.output import check_outputs, write_file
from hipdx.reasoning import Assessment, assess
from hipdx.reasoning.course import CourseReport
from hipdx.report import (
    describe_condition,
    render_brief,
    render_check_text,
    render_condition_text,
    render_markdown,
    render_text,
    view,
)
from hipdx.cli_support import (
    INTERNAL_ERROR,
    SERIES_HELP,
    SUPPORTS,
    DataFormat,
    OutputFormat,
    ReportingCommand,
    TodayOption,
    assessment_date,
    report_error,
)
from hipdx.report.text import DEFAULT_WIDTH


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Usage errors are printed by typer; errors raised by a command are printed by
    :func:`report_error`; anything that still escapes is caught here, so no traceback
    ever reaches the user.
    """
    try:
        command = typer.main.get_command(app)
        command.main(args=list(argv) if argv is not None else None, prog_name="hipdx", standalone_mode=True)
    except SystemExit as done:
        return _exit_code(done.code)
    except Exception as exc:  # the last line of defence: still a message, never a traceback
        return report_error(exc)
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    typer.echo(str(code), err=True)
    return 1


# -- the application ------------------------------------------------------------------------

app = typer.Typer(
    name="hipdx",
    help=(
        "Clinical decision support for atraumatic hip pain with bone marrow edema: transient "
        "osteoporosis of the hip and its mimics. " + SUPPORTS
    ),
    epilog=SUPPORTS,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
kb_app = typer.Typer(
    help="Check the knowledge base or show what it holds for one condition. " + SUPPORTS,
    epilog=SUPPORTS,
    no_args_is_help=True,
)
app.add_typer(kb_app, name="kb")


def _mri_app() -> typer.Typer:
    from hipdx.cli_mri import mri_app

    return mri_app


app.add_typer(_mri_app(), name="mri", help="Hip MRI from DICOM or NIfTI: femoral heads, edema, subchondral bands. " + SUPPORTS)


def _fhir_app() -> typer.Typer:
    from hipdx.cli_fhir import fhir_app

    return fhir_app


app.add_typer(_fhir_app(), name="fhir", help="FHIR R4: map a patient's Bundle to a case; write an assessment as FHIR. " + SUPPORTS)


def _serve() -> None:
    from hipdx.cli_service import db_app, serve_command

    from hipdx.cli_web import run_command

    app.command("serve", cls=ReportingCommand, epilog=SUPPORTS)(serve_command)
    app.command("run", cls=ReportingCommand, epilog=SUPPORTS)(run_command)
    app.add_typer(db_app, name="db", help="The CDS service's audit database (hipdx db upgrade). " + SUPPORTS)


_serve()
app.command("extract", cls=ReportingCommand, epilog=SUPPORTS)(__import__("hipdx.cli_extract", fromlist=["extract_command"]).extract_command)


def _reports() -> None:
    from hipdx.cli_report import register_report_commands

    register_report_commands(app)


_reports()



def _version(value: bool) -> None:
    if value:
        typer.echo(f"hipdx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the hipdx version and exit."),
    ] = False,
) -> None:
    """Clinical decision support for atraumatic hip pain with bone marrow edema."""


NoColorOption = Annotated[
    bool,
    typer.Option("--no-color", help="No colour even on a terminal (NO_COLOR in the environment also turns it off)."),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Knowledge-base folder to use instead of the bundled one (for checking edits).",
        show_default=False,
    ),
]


# -- helpers for the adapters ---------------------------------------------------------------


def read_bytes(path: Path) -> bytes:
    """The content of an input file, through the one reader of input files.

    Raises
    ------
    InputError
        ``cannot read FILE: reason`` when it is missing, a directory, a device or FIFO,
        unreadable or larger than :data:`hipdx.jsonio.MAX_INPUT_BYTES`.
    """
    return read_input_file(path)


#: the date of the assessment (``--today``, checked, or the clock)
_today = assessment_date


def use_color(no_color: bool) -> bool:
    """Colour only on a terminal, and not when ``--no-color`` or ``NO_COLOR`` says otherwise."""
    return not no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def _width() -> int:
    if not sys.stdout.isatty():
        return DEFAULT_WIDTH
    return max(60, min(120, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns))


def _print(text: str) -> None:
    typer.echo(text, nl=not text.endswith("\n"))


def _print_json(data: Any) -> None:
    _print(json.dumps(data, indent=2, ensure_ascii=False))


# -- commands -------------------------------------------------------------------------------


@app.command("assess", cls=ReportingCommand, epilog=SUPPORTS)
def assess_command(
    case_file: Annotated[
        Path | None,
        typer.Argument(metavar="[CASE.json]", help="A case as JSON; `hipdx schema` describes the fields. Or give --fhir.",
                       show_default=False),
    ] = None,
    output: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="text: a report for the terminal; json: the assessment as data; "
                     "markdown: a document for a report."),
    ] = OutputFormat.text,
    mri: Annotated[
        Path | None,
        typer.Option(
            "--mri",
            help="A folder of DICOM files (T1 and STIR) or NIfTI images of this episode: its measured findings "
            "are added to the case as an MRI study.",
        ),
    ] = None,
    mri_days: Annotated[
        float | None,
        typer.Option("--mri-days", min=0, max=3650, help="Days from the onset of pain to the MRI given with --mri."),
    ] = None,
    mri_series: Annotated[
        list[str] | None, typer.Option("--mri-series", metavar="SERIES=KIND", help=SERIES_HELP)
    ] = None,
    fhir: Annotated[
        Path | None,
        typer.Option("--fhir", metavar="BUNDLE.json", help="Read the case from one patient's FHIR R4 resources instead; "
                     "the facts read (with their resources) and what was left out are shown.", show_default=False),
    ] = None,
    patient: Annotated[
        str | None,
        typer.Option("--patient", metavar="ID", help="With --fhir: the Patient to read when the input holds several.",
                     show_default=False),
    ] = None,
    detail: Annotated[
        bool,
        typer.Option("--detail", help="The full report: why (each finding's likelihood ratio), missing findings, all "
                     "tests, how sure, MRI measurements, staging, the full plan, references. Without it: one screen."),
    ] = False,
    today: TodayOption = None,
    no_color: NoColorOption = False,
) -> None:
    """Assess one case: one screen with what to do now, red flags, the leading three, the next test, the plan.

    Red flags are shown whatever the probability of their condition. --detail gives the full report; --format json the whole assessment as data.
    """
    kb = load_knowledge_base()
    assessment, case, analysis, mapping, _ = assess_inputs(kb, case_file, fhir, patient, mri, mri_days, mri_series, today)
    course = _course(case, assessment, kb, case.assessed_on or _today(today))
    line = view.course_alerts_line(course, "`hipdx course`")
    if output is OutputFormat.json:
        data = _with_course_alerts(assessment.model_dump(mode="json"), course)
        if analysis is not None:  # the measurements behind the imaging findings, with their provenance
            data["mri_analysis"] = analysis.model_dump(mode="json")
        if mapping is not None:  # the facts read from FHIR, each with its resource and element
            data["fhir_mapping"] = mapping.model_dump(mode="json")
        _print_json(data)
        return
    if mapping is not None:
        from hipdx.fhir.summary import format_mapping

        _print(format_mapping(mapping, markdown=output is OutputFormat.markdown) + "\n")
    markdown = output is OutputFormat.markdown
    if not detail:
        from hipdx.report.summary import render_summary, render_summary_markdown

        if markdown:
            _print(render_summary_markdown(assessment, analysis=analysis, course_line=line))
        else:
            _print(render_summary(assessment, analysis=analysis, color=use_color(no_color), width=_width(), course_line=line))
    elif markdown:
        _print(render_markdown(assessment, kb, analysis=analysis, course_line=line))
    else:
        _print(render_text(assessment, kb, analysis=analysis, color=use_color(no_color), width=_width(), course_line=line))


def _course(case: Case, assessment: Assessment, kb: KnowledgeBase, day: date) -> CourseReport | None:
    """The follow-up visits' course (their alerts head the output, as on the report and web page); None without visits."""
    if not case.visits:
        return None
    from hipdx.reasoning.course import compare_course

    return compare_course(case, assessment.differential[0].id, kb.course, day)


def _with_course_alerts(data: dict[str, Any], course: CourseReport | None) -> dict[str, Any]:
    """The assessment's JSON with ``course_alerts`` (the visits' alerts, [] without) right after the headline."""
    alerts = [alert.model_dump(mode="json") for alert in course.alerts] if course is not None else []
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = value
        if key == "headline":
            out["course_alerts"] = alerts
    out.setdefault("course_alerts", alerts)
    return out


@app.command("schema", cls=ReportingCommand, epilog=SUPPORTS)
def schema_command() -> None:
    """Print the JSON Schema of a case: every field hipdx reads, its unit and accepted values."""
    _print_json(Case.model_json_schema())


@kb_app.command("check", cls=ReportingCommand, epilog=SUPPORTS)
def kb_check_command(data_dir: DataDirOption = None, no_color: NoColorOption = False) -> None:
    """Validate the whole knowledge base and count its numbers by provenance.

    Prints the number of conditions, variables, tests, red flags and references, how many
    numbers are reported, derived, transferred from another population or estimated, and
    warns about references with gaps.
    Exits non-zero and lists every problem when the base is invalid.
    """
    kb = load_knowledge_base(data_dir)
    _print(render_check_text(kb, color=use_color(no_color), width=_width()))


@kb_app.command("show", cls=ReportingCommand, epilog=SUPPORTS)
def kb_show_command(
    condition: Annotated[str, typer.Argument(help="A condition id, e.g. toh, onfh, septic.")],
    output: Annotated[
        DataFormat, typer.Option("--format", "-f", help="text for reading, json for tools.")
    ] = DataFormat.text,
    data_dir: DataDirOption = None,
    no_color: NoColorOption = False,
) -> None:
    """Show what the knowledge base holds for one condition, with the source of every number.

    For each variable: the probability of each state (per time band where it has bands),
    its basis, effective sample size n, the 90% range n implies, the note and references.
    """
    profile = describe_condition(load_knowledge_base(data_dir), condition)
    if output is DataFormat.json:
        _print_json(profile.model_dump(mode="json"))
    else:
        _print(render_condition_text(profile, color=use_color(no_color), width=_width()))


@app.command("demo", cls=ReportingCommand, epilog=SUPPORTS)
def demo_command(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A folder of case files (*.json).")],
    today: TodayOption = None,
    no_color: NoColorOption = False,
) -> None:
    """Assess every *.json case in DIR (by name) and print a short summary of each.

    A case that cannot be read or is invalid is reported and the others still run; the
    exit code is 0 only when every case was assessed.
    """
    files = _case_files(directory)
    kb = load_knowledge_base()
    failed = [path.name for path in files if not _demo_one(path, kb, _today(today), use_color(no_color))]
    summary = f"{len(files) - len(failed)} of {len(files)} cases assessed"
    _print(summary + (f"; not assessed: {', '.join(failed)}" if failed else ""))
    if failed:
        raise typer.Exit(InputError.exit_code)


def _case_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        reason = "not a directory" if directory.exists() else "no such directory"
        raise InputError(f"cannot read {directory}: {reason}")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise InputError(f"no case files (*.json) in {directory}")
    return files


def _demo_one(path: Path, kb: KnowledgeBase, today: date, color: bool) -> bool:
    """Assess and summarise one case file; on an error of this case, report it and return False."""
    try:
        case = parse_case(read_bytes(path), today)
        assessment: Assessment = assess(case, kb, today)
    except HipdxError as err:
        typer.echo(f"error: {path.name}: {err}", err=True)
        return False
    title = f"{case.id or path.stem}  ({path.name})"
    _print(render_brief(assessment, title=title, note=case.note, color=color, width=_width()))
    return True


@app.command("evaluate", cls=ReportingCommand, epilog=SUPPORTS)
def evaluate_command(
    files: Annotated[list[Path], typer.Argument(help="Vignette files with known diagnoses.")],
    output: Annotated[
        DataFormat, typer.Option("--format", "-f", help="text for reading, json for tools.")
    ] = DataFormat.text,
    today: TodayOption = None,
) -> None:
    """Evaluate hipdx on vignettes with known final diagnoses (accuracy and calibration)."""
    from hipdx.evaluation import evaluate_files, render_text as render_evaluation

    report = evaluate_files(list(files), load_knowledge_base(), _today(today))
    if output is DataFormat.json:
        _print_json(report.model_dump(mode="json"))
    else:
        _print(render_evaluation(report))


@app.command("course", cls=ReportingCommand, epilog=SUPPORTS)
def course_command(
    case_file: Annotated[
        Path, typer.Argument(metavar="CASE.json", help="A case with follow-up visits, as JSON.")
    ],
    output: Annotated[
        DataFormat, typer.Option("--format", "-f", help="text for reading, json for tools.")
    ] = DataFormat.text,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE.png|FILE.svg",
            help="Also draw pain over time against the expected band; PNG or SVG by the suffix.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --plot file if it exists (never the case file, never through a link).")
    ] = False,
    today: TodayOption = None,
) -> None:
    """Compare the follow-up visits with the expected course of the leading diagnosis.

    Re-runs the differential on the whole case (the visits do not change it), then places each visit in time.

    Alerts: no improvement by about 3 months, worsening, new pain in another joint, rising pain in pregnancy.

    Also: edema gone on MRI while the pain persists, and edema persisting beyond 12 months.
    """
    from hipdx.reasoning.course import compare_course
    from hipdx.report.course import render_course_text
    from hipdx.report.plot import check_plot_path, plot_course

    if plot is not None:
        check_plot_path(plot)
    check_outputs({"--plot": plot}, inputs=[case_file], force=force)
    day = _today(today)
    case = parse_case(read_bytes(case_file), day)
    kb = load_knowledge_base()
    assessment = assess(case, kb, day)
    report = compare_course(case, assessment.differential[0].id, kb.course, day)
    if plot is not None:
        write_file(plot, lambda temporary: plot_course(report, temporary), option="--plot", force=force)
    if output is DataFormat.json:
        _print_json({
            "differential": [item.model_dump(mode="json") for item in assessment.differential[:3]],
            "red_flags": [flag.model_dump(mode="json") for flag in assessment.red_flags],
            "course": report.model_dump(mode="json"),
        })
        return
    leading = ", ".join(f"{item.short} {item.probability:.0%}" for item in assessment.differential[:3])
    lines = [f"Differential (re-run on the whole case): {leading}"]
    lines += [f"RED FLAG [{flag.urgency}]: {flag.title} - {flag.action}" for flag in assessment.red_flags]
    _print("\n".join(lines) + "\n\n" + render_course_text(report, width=_width()))


@app.command("stage", cls=ReportingCommand, epilog=SUPPORTS)
def stage_command(
    case_file: Annotated[
        Path, typer.Argument(metavar="CASE.json", help="A case as JSON; `hipdx schema` describes the fields.")
    ],
    output: Annotated[
        DataFormat, typer.Option("--format", "-f", help="text for reading, json for tools.")
    ] = DataFormat.text,
    today: TodayOption = None,
) -> None:
    """Stage the femoral head and the episode from the imaging findings.

    ARCO 2019, Ficat-Arlet and Steinberg; TOH phase (an estimate) and migratory pattern;
    subchondral band; femoral neck fracture grade and urgency. Missing findings are named, never assumed normal.
    Each part is staged only for a condition the differential supports (as in `assess`).
    """
    from hipdx.report.management import format_staging

    # staged for the conditions the differential supports, as in `assess`
    day = _today(today)
    staging = assess(parse_case(read_bytes(case_file), day), load_knowledge_base(), day).staging
    if output is DataFormat.json:
        _print_json(staging.model_dump(mode="json"))
    else:
        _print(format_staging(staging))


@app.command("plan", cls=ReportingCommand, epilog=SUPPORTS)
def plan_command(
    case_file: Annotated[
        Path, typer.Argument(metavar="CASE.json", help="A case as JSON; `hipdx schema` describes the fields.")
    ],
    output: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="text for the terminal, json for tools, markdown for a report."),
    ] = OutputFormat.text,
    today: TodayOption = None,
) -> None:
    """A cited management plan for the leading diagnosis and the must-not-miss conditions.

    Every option shows its evidence level and sources; safety checks run on the case, and an option
    whose safety facts are not known is not recommended until they are.
    """
    from hipdx.report.management import format_plan

    day = _today(today)
    plan = assess(parse_case(read_bytes(case_file), day), load_knowledge_base(), day).plan
    if output is OutputFormat.json:
        _print_json(plan.model_dump(mode="json"))
    else:
        _print(format_plan(plan, markdown=output is OutputFormat.markdown))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
