"""Findings from the free text of hip imaging reports (a wing: the core never imports it).

:func:`extract_findings` reads a report's text (a DiagnosticReport's conclusion or
presentedForm, an Observation's valueString, a pasted report) and returns the findings of
one hip in the case model's names and values (:class:`~hipdx.case.model.ImagingFindings`),
the text span behind each, and what the clinician must confirm before it is used.
Negation, uncertainty, history, hypotheticals and laterality are handled as the ConText
algorithm does (Harkema et al. 2009), with rules kept as data (``data/*.yaml``).

>>> x = extract_findings("Extensive marrow edema of the right femoral head and neck. No double-line sign.", "mri", "right")
>>> x.findings
{'edema': 'present', 'edema_extent': 'head_and_neck', 'double_line_sign': 'absent'}
>>> extract_findings("Cannot exclude a subchondral fracture of the left femoral head.", "mri", "left").to_confirm[0]["finding"]
'subchondral_fracture_line'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from hipdx.case.model import Modality
from hipdx.errors import InputError
from hipdx.extract.context import mentions
from hipdx.extract.findings import claims, resolve
from hipdx.extract.rules import Rules, default_rules, load_rules

__all__ = ["Extraction", "MAX_REPORT_CHARS", "extract_findings", "load_rules"]

#: a report longer than this is refused (a radiology report is a few thousand characters)
MAX_REPORT_CHARS = 200_000


class Extraction(BaseModel):
    """What one report says about one hip."""

    model_config = ConfigDict(frozen=True)

    modality: str
    side: str
    findings: dict[str, Any]
    evidence: list[dict[str, Any]]
    to_confirm: list[dict[str, Any]]
    rules_version: str
    rules_digest: str


def extract_findings(text: str, modality: str | Modality, side: str, rules: Rules | None = None) -> Extraction:
    """The findings of the ``side`` hip stated in ``text``, a report of a ``modality`` study.

    Parameters
    ----------
    text
        The report (plain text; any length up to :data:`MAX_REPORT_CHARS`).
    modality
        mri, radiograph, ct or bone_scan: the case model reads each finding on some modalities only.
    side
        left or right.

    Raises
    ------
    InputError
        An unknown modality or side, or a text that is not plain text.
    """
    try:
        study = Modality(modality)
    except ValueError:
        raise InputError(f"modality {modality!r}: give one of {', '.join(m.value for m in Modality)}") from None
    if side not in ("left", "right"):
        raise InputError(f"side {side!r}: give left or right")
    if not isinstance(text, str):
        raise InputError("the report must be text")
    if len(text) > MAX_REPORT_CHARS:
        raise InputError(f"the report is longer than {MAX_REPORT_CHARS:,} characters")
    bad = next((ch for ch in text if ord(ch) < 32 and ch not in "\n\r\t"), None)
    if bad is not None:
        raise InputError(f"the report holds a control character (U+{ord(bad):04X}): give plain text")
    rules = rules or default_rules()
    found, sentences = mentions(rules, text)
    all_claims, unused = claims(rules, text, found, sentences)
    findings, evidence, to_confirm = resolve(rules, all_claims, study, side)
    evidence = sorted(evidence + unused, key=lambda e: (e["span"][0], e["finding"] or ""))
    to_confirm.sort(key=lambda e: (e["span"][0], e["finding"] or ""))
    return Extraction(
        modality=study.value,
        side=side,
        findings=findings,
        evidence=evidence,
        to_confirm=to_confirm,
        rules_version=rules.version,
        rules_digest=rules.digest,
    )
