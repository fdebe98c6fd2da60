"""The kind of a series (T1-weighted, fluid-sensitive, unknown) and its fat suppression and contrast, from its headers or description."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pydicom

from hipdx.imaging.parameters import param
from hipdx.imaging.volume import SeriesKind


#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "reading").
STIR_INVERSION_TIME_MS = param("reading.stir_inversion_time_ms")


T1_MAX_REPETITION_TIME_MS = param("reading.t1_max_repetition_time_ms")


T1_MAX_ECHO_TIME_MS = param("reading.t1_max_echo_time_ms")


_FAT_SAT_WORDS = {"fs", "fatsat", "fsat", "spair", "spir", "chess", "fatsup", "water", "dixonw"}


_IR_WORDS = {"stir", "tirm", "tir"}


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def classify_description(text: str) -> tuple[SeriesKind, str]:
    """Kind of a series from its description or file name alone.

    STIR/TIRM -> fluid; T2 or PD with fat saturation (fs, fatsat, spair, spir) -> fluid;
    T1 -> t1 (a fat-saturated T1 is still T1); anything else -> unknown.

    >>> classify_description("t2_tirm_cor")[0].value
    'fluid'
    """
    tokens = _tokens(text)
    quoted = f"description {text!r}"
    if any(t in _IR_WORDS or t.startswith("stir") for t in tokens):
        return SeriesKind.fluid, f"{quoted} names STIR/TIRM"
    t2_or_pd = any(re.fullmatch(r"(t2(w|wi)?|pd(w|wi)?)(fs|spair)?", t) for t in tokens)
    fat_sat = any(t in _FAT_SAT_WORDS or re.fullmatch(r"(t2|pd)\w*fs", t) for t in tokens)
    if t2_or_pd and fat_sat:
        return SeriesKind.fluid, f"{quoted} names a fat-saturated T2/PD"
    if any(re.fullmatch(r"t1(w|wi|tse|se|fse|fl2d|vibe)?", t) for t in tokens):
        return SeriesKind.t1, f"{quoted} names T1"
    if t2_or_pd:
        return SeriesKind.unknown, f"{quoted} names T2/PD without fat saturation"
    return SeriesKind.unknown, f"{quoted} names no known weighting"


def header_number(headers: Any, keyword: str) -> float | None:
    value = headers.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _words(headers: Any, keyword: str) -> set[str]:
    value = headers.get(keyword)
    if value is None:
        return set()
    if isinstance(value, str):
        return {w.strip().upper() for w in value.split("\\") if w.strip()}
    return {str(w).strip().upper() for w in value if str(w).strip()}


def _fat_sat_option(headers: Any) -> bool:
    """ScanOptions says fat saturation (FS, SFS, FAT...)."""
    return any(o in {"FS", "SFS"} or "FAT" in o for o in _words(headers, "ScanOptions"))


def classify(headers: Mapping[str, Any] | pydicom.Dataset) -> tuple[SeriesKind, str]:
    """T1-weighted or fluid-sensitive, from the acquisition headers of one slice.

    Parameters
    ----------
    headers
        A pydicom ``Dataset`` or a mapping of DICOM keywords to values
        (ScanningSequence, SequenceVariant, ScanOptions, InversionTime, RepetitionTime,
        EchoTime in ms, SeriesDescription, ProtocolName, ContrastBolusAgent).

    Returns
    -------
    (SeriesKind, reason)
        The headers decide when they are conclusive: inversion recovery with TI 80-300 ms
        is STIR (fluid); TR < 800 ms and TE < 30 ms is T1; a T2 (TE >= 30 ms) or PD
        (TR >= 1500 ms) with fat saturation (ScanOptions FS, or fs/spair in the
        description) is fluid-sensitive. Otherwise the description decides
        (:func:`classify_description`).

    Example
    -------
    >>> classify({"ScanningSequence": "SE\\\\IR", "InversionTime": 160, "RepetitionTime": 4000,
    ...           "EchoTime": 40})[0].value
    'fluid'
    """
    description = str(headers.get("SeriesDescription") or headers.get("ProtocolName") or "")
    by_text, text_reason = classify_description(description) if description else (SeriesKind.unknown, "")
    sequence = _words(headers, "ScanningSequence") | _words(headers, "SequenceVariant")
    ti, tr, te = (header_number(headers, k) for k in ("InversionTime", "RepetitionTime", "EchoTime"))
    fat_sat_header = _fat_sat_option(headers)
    fat_sat_text = any(t in _FAT_SAT_WORDS for t in _tokens(description)) or by_text is SeriesKind.fluid

    by_header, header_reason = SeriesKind.unknown, ""
    if "IR" in sequence or (ti is not None and ti > 0):
        if ti is not None and STIR_INVERSION_TIME_MS[0] <= ti <= STIR_INVERSION_TIME_MS[1]:
            by_header, header_reason = SeriesKind.fluid, f"inversion recovery with TI {ti:g} ms (STIR)"
        elif ti is not None and ti >= 400 and te is not None and te < T1_MAX_ECHO_TIME_MS:
            by_header, header_reason = SeriesKind.t1, f"inversion-prepared T1 (TI {ti:g} ms, TE {te:g} ms)"
    if by_header is SeriesKind.unknown and tr is not None and te is not None:
        if tr < T1_MAX_REPETITION_TIME_MS and te < T1_MAX_ECHO_TIME_MS:
            by_header, header_reason = SeriesKind.t1, f"TR {tr:g} ms and TE {te:g} ms (T1-weighted)"
        elif te >= T1_MAX_ECHO_TIME_MS or tr >= 1500:
            weighting = "T2" if te >= T1_MAX_ECHO_TIME_MS else "PD"
            if fat_sat_header or fat_sat_text:
                where = "ScanOptions" if fat_sat_header else "description"
                by_header = SeriesKind.fluid
                header_reason = f"TR {tr:g} ms, TE {te:g} ms ({weighting}) with fat saturation ({where})"
            else:
                header_reason = f"TR {tr:g} ms, TE {te:g} ms ({weighting}) without fat saturation"

    if by_header is not SeriesKind.unknown:
        kind, reason = by_header, header_reason
        if text_reason and by_text not in (SeriesKind.unknown, by_header):
            reason += f"; {text_reason}, the headers win"
        elif text_reason and by_text is by_header:
            reason += f"; {text_reason}"
    elif by_text is not SeriesKind.unknown:
        kind, reason = by_text, text_reason + (f"; {header_reason}" if header_reason else "")
    else:
        kind = SeriesKind.unknown
        reason = "; ".join(r for r in (header_reason, text_reason) if r) or "no sequence headers or description"
    agent = headers.get("ContrastBolusAgent")
    if agent:
        reason += f"; after contrast ({agent})"
    return kind, reason


#: Description words that say the series was acquired after a contrast agent.
_CONTRAST_WORDS = {"post", "postcontrast", "gd", "gad", "gado", "contrast", "km"}


def describe_acquisition(headers: Mapping[str, Any] | pydicom.Dataset) -> tuple[str | None, str | None]:
    """Fat suppression and contrast agent of a series, from the headers of one slice.

    Returns
    -------
    (fat_suppression, contrast_agent)
        ``fat_suppression`` is "STIR" (inversion recovery with a TI of 80-300 ms, or STIR/TIRM
        in the description), "fat-saturated" (ScanOptions FS/SFS or a fat-saturation word such
        as fs, spair or water in the description) or None. ``contrast_agent`` is
        ContrastBolusAgent, "contrast" when only the description says so (post, gd, contrast),
        or None.

    >>> describe_acquisition({"SeriesDescription": "COR T1 FS POST GD"})
    ('fat-saturated', 'contrast')
    """
    description = str(headers.get("SeriesDescription") or headers.get("ProtocolName") or "")
    tokens = _tokens(description)
    ti = header_number(headers, "InversionTime")
    suppression = None
    if ti is not None and ti > 0:  # the inversion time decides over the description
        stir = STIR_INVERSION_TIME_MS[0] <= ti <= STIR_INVERSION_TIME_MS[1]
    else:
        stir = any(t in _IR_WORDS or t.startswith("stir") for t in tokens)
    if stir:
        suppression = "STIR"
    elif (
        _fat_sat_option(headers)
        or any(t in _FAT_SAT_WORDS or re.fullmatch(r"(t1|t2|pd)\w*fs", t) for t in tokens)
    ):
        suppression = "fat-saturated"
    agent = str(headers.get("ContrastBolusAgent") or "").strip() or None
    if agent is None and any(t in _CONTRAST_WORDS for t in tokens):
        agent = "contrast"
    return suppression, agent
