"""``hipdx extract REPORT.txt``: the findings of one hip read from a report's text.

An adapter at the edge: reads the file, calls :func:`hipdx.extract.extract_findings`, prints.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from hipdx.errors import InputError


class ExtractFormat(str, Enum):
    text = "text"
    json = "json"


class StudyModality(str, Enum):
    mri = "mri"
    radiograph = "radiograph"
    ct = "ct"
    bone_scan = "bone_scan"


class HipSide(str, Enum):
    left = "left"
    right = "right"


def extract_command(
    report: Annotated[Path, typer.Argument(metavar="REPORT.txt", help="The report as plain text (UTF-8).")],
    modality: Annotated[StudyModality, typer.Option("--modality", help="The study the report describes.")],
    side: Annotated[HipSide, typer.Option("--side", help="The hip whose findings to print.")],
    output: Annotated[
        ExtractFormat,
        typer.Option("--format", "-f", help='text for reading; json: {"findings", "evidence", "to_confirm"}.'),
    ] = ExtractFormat.text,
) -> None:
    """Read the findings of one hip from an imaging report's text, each with the words it rests on.

    Negated findings are read as absent; uncertain, historical or hypothetical ones, findings
    stated in two ways and findings whose side the report does not name are listed to confirm,
    never used (docs/fhir.md, "Report text").
    """
    from hipdx.extract import MAX_REPORT_CHARS, extract_findings
    from hipdx.jsonio import printable, read_input_file

    raw = read_input_file(report, MAX_REPORT_CHARS * 4)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{printable(str(report))} is not UTF-8 text") from None
    if not text.strip():  # nothing to read is not "no findings": say so rather than print an empty answer
        raise InputError(f"{printable(str(report))} is empty: give the report's text")
    result = extract_findings(text.replace("\r\n", "\n"), modality.value, side.value)
    if output is ExtractFormat.json:
        data = {
            "findings": result.findings,
            "evidence": result.evidence,
            "to_confirm": result.to_confirm,
            "modality": result.modality,
            "side": result.side,
            "rules": {"version": result.rules_version, "digest": result.rules_digest},
        }
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    typer.echo(format_extraction(result))


def format_extraction(result: object) -> str:
    """The extraction for reading: findings with their words, then what to confirm."""
    r = result  # an Extraction
    lines = [f"Findings of the {r.side} hip ({r.modality} report):"]  # type: ignore[attr-defined]
    used = [e for e in r.evidence if e["used"]]  # type: ignore[attr-defined]
    if not r.findings:  # type: ignore[attr-defined]
        lines.append("  none stated with confidence")
    for name, value in r.findings.items():  # type: ignore[attr-defined]
        words = [f'"{e["text"]}"' + (f' ({e["trigger"]})' if e["trigger"] else "") for e in used if e["finding"] == name]
        lines.append(f"  {name} = {value}" + (f"   from {', '.join(words)}" if words else ""))
    if r.to_confirm:  # type: ignore[attr-defined]
        lines.append("To confirm (not used):")
        for c in r.to_confirm:  # type: ignore[attr-defined]
            trigger = f' ({c["trigger"]})' if c["trigger"] else ""
            proposed = "" if c["proposed"] is None else c["proposed"]  # a measure stated without its number
            lines.append(f'  {c["finding"]} = {proposed}?  "{c["text"]}"{trigger}: {c["reason"]}')
    return "\n".join(lines)
