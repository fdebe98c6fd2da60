"""ImagingStudy and DiagnosticReport: one imaging study per ImagingStudy (or report), with its findings.

The modality comes from DICOM codes or the report's LOINC code; the date from
ImagingStudy.started or the report's effective time; the findings from the report's results
or from Observations that name the ImagingStudy (derivedFrom, partOf). A study whose findings
do not fit its modality, or that predates the episode, is left out with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from hipdx.case.model import ImagingStudy
from hipdx.case.parse import problems_from_validation
from hipdx.fhir.context import Context, Origin, Study, latest, show_code
from hipdx.fhir.read_observations import FINAL, observation_time
from hipdx.fhir.read_text import collect_report_text, read_study_texts
from hipdx.fhir.resources import Resource, relative_reference


def _modality_from(ctx: Context, res: Resource, codes: Iterable[tuple[str, str]]) -> tuple[Any, str] | None:
    for system, code in codes:
        hit = ctx.t.modalities.find(system, code)
        if hit is not None:
            return hit, show_code(system, code, hit.display)
    return None


def read_imaging_study(ctx: Context, res: Resource) -> None:
    study = ctx.studies.setdefault(res.label, Study(res.label, res.id or res.label))
    codes = []
    for i, coding in enumerate(res.objects("modality")):
        system, code = (
            res.get("system", str, coding, f"modality[{i}].system"),
            res.get("code", str, coding, f"modality[{i}].code"),
        )
        if system and code:
            codes.append((system, code))
    for i, series in enumerate(res.objects("series")):
        coding = res.get("modality", dict, series, f"series[{i}].modality")
        if coding:
            system = res.get("system", str, coding, f"series[{i}].modality.system")
            code = res.get("code", str, coding, f"series[{i}].modality.code")
            if system and code:
                codes.append((system, code))
    found = {_modality_from(ctx, res, [c]) for c in dict.fromkeys(codes)} - {None}
    modalities = {hit.modality for hit, _ in found}  # type: ignore[union-attr]
    if len(modalities) == 1:
        hit, shown = next(iter(found))  # type: ignore[misc]
        study.modality = hit.modality
        study.sources.append(
            Origin(f"imaging[{study.label}].modality", res.label, "modality", shown)
        )
    elif len(modalities) > 1:
        ctx.skip(res, "modality", f"several modalities ({', '.join(sorted(modalities))}) in one study")
    started = res.date("started")
    if started is not None and started.day is not None:
        if started.day > ctx.today:
            ctx.skip(res, "started", f"{started.text} is after the assessment date")
            del ctx.studies[res.label]
            return
        study.date = started.day
        study.sources.append(
            Origin(f"imaging[{study.label}].date", res.label, "started", started.text)
        )


def read_report(ctx: Context, res: Resource) -> None:
    studies = [ref for _, ref in res.references("imagingStudy")]
    status = res.get("status", str)
    if status not in FINAL:
        ctx.skip(res, "status", f"status {status!r}: only final, amended or corrected reports are read")
        return
    modality = _modality_from(ctx, res, res.codings("code"))
    if not studies and modality is None:
        ctx.skip(res, "code", "not an imaging report hipdx reads (no ImagingStudy and no imaging code of its tables)")
        return
    if len(studies) > 1:
        ctx.skip(res, "imagingStudy", "reports on several imaging studies: its results cannot be placed on one")
        return
    if studies:
        target = ctx.res.resolve(studies[0], res)
        key = target.label if isinstance(target, Resource) else (relative_reference(studies[0]) or studies[0])
    else:
        key = res.label
    study = ctx.studies.setdefault(key, Study(key, key.split("/")[-1]))
    if modality is not None:
        hit, shown = modality
        if study.modality is None:
            study.modality = hit.modality
            study.sources.append(
                Origin(f"imaging[{study.label}].modality", res.label, "code", shown)
            )
        elif study.modality != hit.modality:
            ctx.skip(res, "code", f"says {hit.modality}, but the ImagingStudy says {study.modality}")
        if hit.contrast is not None:
            study.contrast = hit.contrast
            study.sources.append(
                Origin(f"imaging[{study.label}].contrast", res.label, "code", shown)
            )
    when, element = observation_time(ctx, res)
    if when is not None and when.day is not None and study.date is None:
        if when.day > ctx.today:
            ctx.skip(res, element, f"{when.text} is after the assessment date")
            return
        study.date = when.day
        study.sources.append(
            Origin(f"imaging[{study.label}].date", res.label, element, when.text)
        )
    collect_report_text(ctx, res, study)
    for _, ref in res.references("result"):
        target = ctx.res.resolve(ref, res)
        label = target.label if isinstance(target, Resource) else (relative_reference(ref) or ref)
        ctx.result_of[label] = study.key
    for i, concept in enumerate(res.objects("conclusionCode")):
        for system, code in res.codings(f"conclusionCode[{i}]", {f"conclusionCode[{i}]": concept}):
            ctx.skip(
                res,
                f"conclusionCode[{i}]",
                f"{system}|{code}: a coded diagnosis is a conclusion, not a finding hipdx reasons from",
            )


def build_study(ctx: Context, study: Study, onset: str | None, side: str | None = None) -> tuple[dict[str, Any], Study] | None:
    read_study_texts(ctx, study, side)
    if not study.findings:
        if study.modality is not None:
            ctx.skip(study.key, "", "an imaging study without findings hipdx reads (coded, or stated in its report text)")
        return None
    if study.modality is None:
        ctx.skip(
            study.key,
            "modality",
            "the study's modality is not coded (DICOM modality or an imaging report code): its findings cannot be read",
        )
        return None
    if onset and study.date and study.date.isoformat() < onset:
        ctx.skip(study.key, "started", f"{study.date.isoformat()} is before the onset of this episode ({onset})")
        return None
    raw: dict[str, Any] = {"modality": study.modality, "findings": {}}
    if study.contrast:
        raw["contrast"] = True
    if study.date:
        raw["date"] = study.date.isoformat()
    for name, options in study.findings.items():
        chosen = latest(options)
        raw["findings"][name] = chosen.value
        for other in options:
            if other is not chosen and other.value != chosen.value:
                ctx.skip(
                    other.source.resource,
                    other.source.element,
                    f"{name} = {other.value} superseded by {chosen.source.resource} ({chosen.value}; coded findings win over report text, then the latest)",
                )
    try:
        ImagingStudy.model_validate(raw)
    except ValidationError as exc:
        reasons = "; ".join(str(p) for p in problems_from_validation(exc))
        ctx.skip(study.key, "", f"the study's findings do not fit together: {reasons}")
        return None
    return raw, study
