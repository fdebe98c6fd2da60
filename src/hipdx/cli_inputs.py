"""The inputs of ``hipdx assess`` and ``hipdx report``: a case file or FHIR, an MRI folder, assessed once.

An adapter of the command line (it reads files and prints notes); the commands that share it
import it from here, so no command module imports another.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import typer

from hipdx.case import Case, parse_case
from hipdx.cli_support import assessment_date, series_kinds
from hipdx.errors import InputError
from hipdx.jsonio import read_input_file
from hipdx.knowledge import KnowledgeBase
from hipdx.reasoning import Assessment, assess

if TYPE_CHECKING:
    from hipdx.fhir import FhirMapping
    from hipdx.imaging.analyze import MriAnalysis
    from hipdx.imaging.io import Study

_today = assessment_date
read_bytes = read_input_file


class Assessed(NamedTuple):
    """An assessment with the case, the MRI study and analysis and the FHIR mapping it was made from (None: not given)."""

    assessment: Assessment
    case: Case
    analysis: MriAnalysis | None
    mapping: FhirMapping | None
    study: Study | None


def assess_inputs(
    kb: KnowledgeBase,
    case_file: Path | None,
    fhir: Path | None,
    patient: str | None,
    mri: Path | None,
    mri_days: float | None,
    mri_series: list[str] | None,
    today: datetime | None,
) -> Assessed:
    """Read a case (a file or FHIR), add the findings of an MRI folder, assess it: ``hipdx assess`` and ``report``.

    Raises
    ------
    InputError
        Options that do not go together, or an input that cannot be read.
    """
    if mri is None and (mri_days is not None or mri_series):
        option = "--mri-days" if mri_days is not None else "--mri-series"
        raise InputError(f"{option} describes the MRI given with --mri; give --mri DIR too")
    if (case_file is None) == (fhir is None):
        raise InputError("give a CASE.json or --fhir BUNDLE.json (one of them)")
    if patient is not None and fhir is None:
        raise InputError("--patient chooses a patient of the FHIR input; give --fhir BUNDLE.json too")
    mapping = None
    if fhir is not None:
        from hipdx.cli_fhir import mapping_from_file

        mapping = mapping_from_file(fhir, _today(today), patient)
        case = mapping.case
    else:
        case = parse_case(read_bytes(case_file), _today(today))  # type: ignore[arg-type]  # one of the two is given
    analysis = study = None
    if mri is not None:
        from hipdx.imaging.analyze import analyze_read_study
        from hipdx.imaging.io import read_study
        from hipdx.imaging.to_case import case_with_mri

        study = read_study(mri, kinds=series_kinds(mri_series, "--mri-series"))
        analysis = analyze_read_study(study)
        case, notes = case_with_mri(case, analysis, mri_days, _today(today))
        for note in notes:
            typer.echo(f"mri: {note}", err=True)
    assessment = assess(case, kb, _today(today))
    return Assessed(assessment, case, analysis, mapping, study)
