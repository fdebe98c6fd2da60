"""Report text in FHIR: DiagnosticReport.conclusion and presentedForm, Observation.valueString.

The text of an imaging report is collected on its study while the resources are read
(:func:`collect_report_text`, :func:`collect_observation_text`); once the case's side is
known, :func:`read_study_texts` extracts the findings of that hip with :mod:`hipdx.extract`
and offers them to the study, each naming the resource, the element and the words it rests
on. A coded finding of the same study wins over one read from text (text offers rank lower).
What the extraction lists to confirm (uncertain, historical, hypothetical, conflicting, side
not stated) is left out with that reason, never used.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from hipdx.errors import HipdxError
from hipdx.fhir.context import Candidate, Context, Origin, Study
from hipdx.fhir.resources import Resource

#: text offers lose ties against coded findings of the same date
TEXT_RANK = -1
MAX_TEXT_BYTES = 200_000


def collect_report_text(ctx: Context, res: Resource, study: Study) -> None:
    """The report's conclusion and its plain-text presentedForm, kept on its study."""
    conclusion = res.get("conclusion", str)
    if conclusion and conclusion.strip():
        study.texts.append((res.label, "conclusion", conclusion))
    for i, form in enumerate(res.objects("presentedForm")):
        element = f"presentedForm[{i}]"
        content_type = (res.get("contentType", str, form, f"{element}.contentType") or "").split(";")[0].strip().lower()
        data = res.get("data", str, form, f"{element}.data")
        if content_type != "text/plain":
            ctx.skip(res, element, f"content type {content_type or 'not given'!r}: only text/plain report text is read")
            continue
        if data is None:
            ctx.skip(res, element, "no inline data (a url is not fetched)")
            continue
        try:
            raw = base64.b64decode(data, validate=True)
            if len(raw) > MAX_TEXT_BYTES:
                ctx.skip(res, element, f"text longer than {MAX_TEXT_BYTES:,} bytes")
                continue
            text = raw.decode("utf-8-sig")
        except (binascii.Error, ValueError):
            ctx.skip(res, f"{element}.data", "not base64-encoded UTF-8 text")
            continue
        study.texts.append((res.label, f"{element}.data", text))


def collect_observation_text(ctx: Context, res: Resource, study: Study) -> None:
    """An imaging Observation's valueString, kept on its study."""
    text = res.get("valueString", str)
    if text and text.strip():
        study.texts.append((res.label, "valueString", text))


def read_study_texts(ctx: Context, study: Study, side: str | None) -> None:
    """Offer the findings the study's texts state about the ``side`` hip; list the rest with the reason."""
    if not study.texts:
        return
    from hipdx.extract import extract_findings  # the extraction wing, loaded only when text is there

    if study.modality is None:
        for label, element, _ in study.texts:
            ctx.skip(label, element, "report text of a study whose modality is not coded: not read")
        return
    if side not in ("left", "right"):
        for label, element, _ in study.texts:
            ctx.skip(label, element, "report text not read: the side of the hip pain is not known (findings of which hip?)")
        return
    offers: dict[str, list[tuple[Any, Origin]]] = {}
    for label, element, text in study.texts:
        clean = "".join(ch if ch >= " " or ch in "\n\t" else " " for ch in text.replace("\r\n", "\n"))
        try:
            result = extract_findings(clean, study.modality, side)
        except HipdxError as err:
            ctx.skip(label, element, f"report text not read: {err.message}")
            continue
        used = {e["finding"]: e for e in result.evidence if e["used"]}
        for name, value in result.findings.items():
            e = used.get(name) or next((x for x in result.evidence if x["used"]), None)
            words = f' from "{e["text"]}" at {e["span"][0]}-{e["span"][1]}' if e else ""
            trigger = f' ({e["trigger"]})' if e and e["trigger"] else ""
            src = Origin(f"imaging[{study.label}].{name}", label, element, f"{value}{words}{trigger} (report text)")
            offers.setdefault(name, []).append((value, src))
        for c in result.to_confirm:
            proposed = "" if c["proposed"] is None else c["proposed"]  # a measure stated without its number
            ctx.skip(
                label,
                element,
                f'needs confirmation: {c["finding"]} = {proposed}? "{c["text"]}" at {c["span"][0]}-{c["span"][1]}: {c["reason"]}',
            )
    for name, found in offers.items():
        values = {str(v) for v, _ in found}
        if len(values) > 1:
            for value, src in found:
                ctx.skip(src.resource, src.element, f"needs confirmation: {name} = {value}? the report texts disagree ({', '.join(sorted(values))})")
            continue
        for value, src in found:
            study.findings.setdefault(name, []).append(Candidate(value, study.date, src, rank=TEXT_RANK))
