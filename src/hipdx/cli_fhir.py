"""The command line's FHIR commands: ``hipdx fhir map`` and ``hipdx fhir export``.

``hipdx assess --fhir BUNDLE.json`` (in :mod:`hipdx.cli`) uses :func:`mapping_from_file` too.
An adapter at the edge: reads files and the clock, calls the FHIR wing and the core, prints.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from hipdx.cli_support import SUPPORTS, ReportingCommand, TodayOption, assessment_date
from hipdx.errors import InputError

fhir_app = typer.Typer(
    help="FHIR R4 in and out: map a patient's Bundle to a case; write an assessment as FHIR. " + SUPPORTS,
    epilog=SUPPORTS,
    no_args_is_help=True,
)


class MapFormat(str, Enum):
    text = "text"
    json = "json"


PatientOption = Annotated[
    str | None,
    typer.Option(
        "--patient", metavar="ID", help="The Patient to read when the input holds several (its id).", show_default=False
    ),
]
RecordedOption = Annotated[
    str | None,
    typer.Option(
        "--recorded",
        metavar="INSTANT",
        help="When the assessment is recorded, e.g. 2026-11-25T12:00:00Z (default: now).",
        show_default=False,
    ),
]


def mapping_from_file(path: Path, assessed_on: dt.date, patient: str | None) -> Any:
    """Read a FHIR JSON file (a Bundle, a resource or an array of them) into a :class:`~hipdx.fhir.FhirMapping`.

    Raises
    ------
    InputError
        The file cannot be read.
    IntegrationError
        It is not FHIR, is malformed, or holds several patients and none was chosen.
    """
    from hipdx.fhir import read_fhir
    from hipdx.fhir.jsonread import MAX_FHIR_BYTES
    from hipdx.jsonio import printable, read_input_file

    from hipdx.errors import IntegrationError, Problem
    from hipdx.fhir.mapping import PATIENT_CHOICE

    try:
        return read_fhir(read_input_file(path, MAX_FHIR_BYTES), assessed_on, patient_id=patient, what=printable(str(path)))
    except IntegrationError as err:  # the choice of the patient is this command's --patient
        if not any(p.field == PATIENT_CHOICE for p in err.problems):
            raise
        raise IntegrationError(err.message, [Problem("--patient" if p.field == PATIENT_CHOICE else p.field, p.reason)
                                             for p in err.problems]) from None


def mapping_json(mapping: Any) -> dict[str, Any]:
    """The mapping as JSON data: the case read, its sources and what was left out."""
    return mapping.model_dump(mode="json", exclude_defaults=False)


def _recorded(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--recorded: {value!r} is not an ISO 8601 instant (e.g. 2026-11-25T12:00:00Z)") from None
    if when.tzinfo is None:
        raise InputError(f"--recorded: {value!r} needs a timezone (Z or +hh:mm): a FHIR instant carries one")
    return when


@fhir_app.command("map", cls=ReportingCommand, epilog=SUPPORTS)
def map_command(
    bundle: Annotated[
        Path, typer.Argument(metavar="BUNDLE.json", help="A FHIR R4 Bundle, resource or array of resources (JSON).")
    ],
    output: Annotated[
        MapFormat,
        typer.Option("--format", "-f", help="text for reading, json: the case, its sources and what was left out."),
    ] = MapFormat.text,
    patient: PatientOption = None,
    today: TodayOption = None,
) -> None:
    """Read one patient's FHIR R4 resources into a case: each fact with the resource and element it came from.

    Codes are read only from hipdx's cited tables (docs/fhir.md); numbers only with a unit; what is
    left out is listed with its reason.
    """
    from hipdx.fhir.summary import format_mapping

    mapping = mapping_from_file(bundle, assessment_date(today), patient)
    if output is MapFormat.json:
        typer.echo(json.dumps(mapping_json(mapping), indent=2, ensure_ascii=False))
        return
    typer.echo(format_mapping(mapping))
    typer.echo(
        "\nCase:\n"
        + json.dumps(mapping.case.model_dump(mode="json", exclude_defaults=True), indent=2, ensure_ascii=False)
    )


@fhir_app.command("export", cls=ReportingCommand, epilog=SUPPORTS)
def export_command(
    case_file: Annotated[
        Path | None, typer.Argument(metavar="[CASE.json]", help="A case as JSON (or give --fhir).", show_default=False)
    ] = None,
    fhir: Annotated[
        Path | None,
        typer.Option(
            "--fhir",
            metavar="BUNDLE.json",
            help="Assess a FHIR Bundle instead of a case file; its resources become Provenance sources.",
            show_default=False,
        ),
    ] = None,
    patient: PatientOption = None,
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject",
            metavar="Patient/ID",
            help="The patient reference to write (default: the FHIR patient, else the case id as text).",
            show_default=False,
        ),
    ] = None,
    recorded: RecordedOption = None,
    today: TodayOption = None,
) -> None:
    """Assess a case and print the assessment as a FHIR R4 Bundle.

    RiskAssessment (one prediction per condition with its probability and range), ClinicalImpression
    (headline, red flags, explanation, next tests, staging and plan), Device and Provenance (hipdx, its
    version and the knowledge base's digest).
    """
    from hipdx.case import parse_case
    from hipdx.jsonio import read_input_file
    from hipdx.fhir.export import assessment_bundle
    from hipdx.knowledge import load_knowledge_base
    from hipdx.reasoning import assess
    from hipdx.report.management import format_plan, format_staging

    if (case_file is None) == (fhir is None):
        raise InputError("give a CASE.json or --fhir BUNDLE.json (one of them)")
    day = assessment_date(today)
    when = _recorded(recorded)
    mapping = None
    if fhir is not None:
        mapping = mapping_from_file(fhir, day, patient)
        case = mapping.case
    elif case_file is not None:
        case = parse_case(read_input_file(case_file), day)
    assessment = assess(case, load_knowledge_base(), day)
    management = None
    if assessment.staging is not None and assessment.plan is not None:
        staging_text = "## Staging\n\n" + format_staging(assessment.staging)
        management = (
            staging_text,
            format_plan(assessment.plan, markdown=True, heading_level=2),
        )
    bundle = assessment_bundle(assessment, recorded=when, subject=subject, mapping=mapping, management_text=management)
    typer.echo(json.dumps(bundle, indent=2, ensure_ascii=False))
