"""The printable reports from the command line: ``hipdx report`` and ``hipdx patient-sheet``.

An adapter: it reads the case (and the MRI folder), has the core assess it, gathers what the
report shows beside the assessment (the course and its plot, the MRI overlays, the inputs with
their SHA-256) and writes the HTML or PDF through :mod:`hipdx.output` (never over an input,
never over an existing file without ``--force``, never half-written).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from hipdx.cli_support import SERIES_HELP, SUPPORTS, DocumentFormat, ReportingCommand, TodayOption, assessment_date
from hipdx.errors import InputError


_SUFFIXES = {".html": DocumentFormat.html, ".htm": DocumentFormat.html, ".pdf": DocumentFormat.pdf}

OutOption = Annotated[
    Path,
    typer.Option("--out", "-o", metavar="FILE.pdf|FILE.html", help="Where to write the report.", show_default=False),
]
FormatOption = Annotated[
    DocumentFormat | None,
    typer.Option("--format", "-f", help="pdf or html (default: by the suffix of --out).", show_default=False),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace --out if it exists (never an input, never through a link).")
]


def register_report_commands(app: typer.Typer) -> None:
    """Add ``report`` and ``patient-sheet`` to the command line."""
    app.command("report", cls=ReportingCommand, epilog=SUPPORTS)(report_command)
    app.command("patient-sheet", cls=ReportingCommand, epilog=SUPPORTS)(patient_sheet_command)


def output_format(out: Path, given: DocumentFormat | None) -> DocumentFormat:
    """The format of the report: ``--format``, else the suffix of ``--out``; they must agree.

    Raises
    ------
    InputError
        No format and a suffix that says none, or a format the suffix contradicts.
    """
    by_suffix = _SUFFIXES.get(out.suffix.lower())
    if given is None and by_suffix is None:
        raise InputError(f"--out {out}: give a file ending in .pdf or .html, or --format pdf|html")
    if given is not None and by_suffix is not None and given is not by_suffix:
        raise InputError(f"--format {given.value} but --out {out} ends in {out.suffix}: make them agree")
    return given or by_suffix  # type: ignore[return-value]  # one of the two is set


def report_command(
    case_file: Annotated[
        Path | None,
        typer.Argument(metavar="[CASE.json]", help="A case as JSON (`hipdx schema`). Or give --fhir.", show_default=False),
    ] = None,
    out: OutOption = ...,  # type: ignore[assignment]  # required
    output: FormatOption = None,
    mri: Annotated[
        Path | None,
        typer.Option("--mri", help="A folder of DICOM files (T1 and STIR) or NIfTI images of this episode: its measured "
                     "findings join the case; the report shows the measurements and the key overlay images."),
    ] = None,
    mri_days: Annotated[
        float | None, typer.Option("--mri-days", min=0, max=3650, help="Days from the onset of pain to the MRI given with --mri.")
    ] = None,
    mri_series: Annotated[list[str] | None, typer.Option("--mri-series", metavar="SERIES=KIND", help=SERIES_HELP)] = None,
    fhir: Annotated[
        Path | None,
        typer.Option("--fhir", metavar="BUNDLE.json", help="Read the case from one patient's FHIR R4 resources instead.",
                     show_default=False),
    ] = None,
    patient: Annotated[
        str | None, typer.Option("--patient", metavar="ID", help="With --fhir: the Patient to read.", show_default=False)
    ] = None,
    force: ForceOption = False,
    today: TodayOption = None,
) -> None:
    """Write a printable report of one assessment, PDF or HTML.

    Patient summary, red flags, the differential with each finding's likelihood ratio, the next test, stages, the plan (each blocked option with the fact that blocked it).

    The course plot when the case has visits; the MRI measurements and key overlay images with --mri; sources and provenance (hipdx version, knowledge-base digest, inputs).
    """
    from hipdx.cli_inputs import assess_inputs
    from hipdx.knowledge import load_knowledge_base
    from hipdx.output import check_outputs
    from hipdx.report.html import ReportContent, course_content, render_html

    fmt = output_format(out, output)
    check_outputs({"--out": out}, inputs=[case_file, fhir, mri], force=force)
    kb = load_knowledge_base()
    day = assessment_date(today)
    assessed = assess_inputs(kb, case_file, fhir, patient, mri, mri_days, mri_series, today)
    course, course_plot = course_content(assessed.case, assessed.assessment, kb, day)
    content = ReportContent(
        assessment=assessed.assessment,
        case=assessed.case,
        analysis=assessed.analysis,
        overlays=_overlays(assessed.study, assessed.analysis),
        course=course,
        course_plot=course_plot,
        inputs=tuple(_inputs(case_file, fhir, mri, assessed.analysis, day)),
        assessed_on=day,
    )
    _write(render_html(content, kb), out, fmt, force)


def patient_sheet_command(
    out: OutOption = ...,  # type: ignore[assignment]  # required
    output: FormatOption = None,
    force: ForceOption = False,
) -> None:
    """Write the one-page information sheet on transient osteoporosis of the hip for patients, PDF or HTML.

    Plain language: what it is, what to expect, weight-bearing, when to come back; its sources in the footer.
    """
    from hipdx.knowledge import load_knowledge_base
    from hipdx.output import check_outputs
    from hipdx.report.sheet import render_patient_sheet

    fmt = output_format(out, output)
    check_outputs({"--out": out}, force=force)
    _write(render_patient_sheet(load_knowledge_base()), out, fmt, force)


# -- what goes with the assessment --------------------------------------------------------------


def _write(html: str, out: Path, fmt: DocumentFormat, force: bool) -> None:
    from hipdx.output import write_file
    from hipdx.report.html import render_pdf

    data = render_pdf(html) if fmt is DocumentFormat.pdf else html.encode("utf-8")
    write_file(out, lambda temporary: temporary.write_bytes(data), option="--out", force=force)
    typer.echo(f"wrote {out} ({fmt.value}, {len(data):,} bytes)")


#: What an overlay's file name says about its slice (hipdx.report.overlay names them so).
_SLICE_REASONS = {
    "heads": "through both femoral head centres",
    "right_head": "through the right femoral head centre",
    "left_head": "through the left femoral head centre",
    "max_edema": "with the most edema",
}


def _overlays(study: Any, analysis: Any) -> tuple[Any, ...]:
    """The key overlay images of the MRI, drawn by :func:`hipdx.report.overlay.write_overlays`."""
    if study is None or analysis is None:
        return ()
    from hipdx.report.html import Image
    from hipdx.report.overlay import write_overlays

    images = []
    with tempfile.TemporaryDirectory(prefix="hipdx-overlays-") as folder:
        for path in write_overlays(analysis, folder, statement=False):  # the report states it once
            _, number, tag = path.stem.split("_", 2)
            reasons = " and ".join(_SLICE_REASONS.get(t, t) for t in _split_tag(tag))
            images.append(Image(f"Coronal slice {int(number)}, {reasons}: contours to check on the images.", path.read_bytes()))
    return tuple(images)


def _split_tag(tag: str) -> list[str]:
    parts, rest = [], tag
    for known in ("max_edema", "right_head", "left_head", "heads"):
        if known in rest:
            parts.append(known)
            rest = rest.replace(known, "")
    return parts or [tag]


def _digest(path: Path) -> str:
    if path.is_dir():
        return "a folder"
    return "SHA-256 " + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _inputs(case_file: Path | None, fhir: Path | None, mri: Path | None, analysis: Any, day: Any) -> list[tuple[str, str]]:
    rows = [("assessed on", day.isoformat())]
    if case_file is not None:
        rows.append(("case file", f"{case_file.name} ({_digest(case_file)})"))
    if fhir is not None:
        rows.append(("FHIR input", f"{fhir.name} ({_digest(fhir)})"))
    if mri is not None and analysis is not None:
        used = ", ".join(f"{kind}: {desc}" for kind, desc in analysis.provenance.series_used.items()) or "none"
        rows.append(("MRI", f"{mri.name} (series used: {used})"))
    return rows
