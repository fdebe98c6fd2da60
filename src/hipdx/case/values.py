"""The closed value sets and strict value types of a case: findings, enums, numbers, text, dates.

Every finding is one of three facts: ``present``, ``absent`` or ``unknown``. Values are strict: a
boolean is not a number, a number in quotes is refused, a date is ISO text; free text refuses
characters that would make it display differently from what it is.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict

from hipdx.case.timeline import date_problem
from hipdx.jsonio import excerpt


class Presence(str, Enum):
    """A finding is present, absent, or not known: three different facts."""

    present = "present"
    absent = "absent"
    unknown = "unknown"


class Sex(str, Enum):
    female = "female"
    male = "male"
    unknown = "unknown"


class Side(str, Enum):
    left = "left"
    right = "right"
    both = "both"
    unknown = "unknown"


class PregnancyStatus(str, Enum):
    not_pregnant = "not_pregnant"
    pregnant = "pregnant"
    postpartum = "postpartum"
    unknown = "unknown"


class OnsetType(str, Enum):
    sudden = "sudden"
    gradual = "gradual"
    unknown = "unknown"


class Trauma(str, Enum):
    none = "none"
    minor = "minor"
    major = "major"
    unknown = "unknown"


class RangeOfMotion(str, Enum):
    """Hip range of motion on examination."""

    full = "full"
    painful_at_end_range = "painful_at_end_range"
    restricted = "restricted"
    severely_restricted = "severely_restricted"
    unknown = "unknown"


class Modality(str, Enum):
    radiograph = "radiograph"
    mri = "mri"
    ct = "ct"
    bone_scan = "bone_scan"


class EdemaExtent(str, Enum):
    """Extent of femoral bone marrow edema on MRI (T1 low, T2/STIR high)."""

    none = "none"
    focal = "focal"
    femoral_head = "femoral_head"
    head_and_neck = "head_and_neck"
    intertrochanteric = "intertrochanteric"
    femoral_neck = "femoral_neck"
    unknown = "unknown"


class JointSpace(str, Enum):
    preserved = "preserved"
    narrowed = "narrowed"
    destroyed = "destroyed"
    unknown = "unknown"


class Uptake(str, Enum):
    """Bone scintigraphy pattern at the symptomatic hip."""

    normal = "normal"
    diffuse_increased = "diffuse_increased"
    focal_increased = "focal_increased"
    photopenic = "photopenic"
    unknown = "unknown"


class ContrastPattern(str, Enum):
    """Femoral-head enhancement after intravenous gadolinium."""

    homogeneous_enhancement = "homogeneous_enhancement"
    subchondral_non_enhancement = "subchondral_non_enhancement"
    synovial_or_rim_enhancement = "synovial_or_rim_enhancement"
    unknown = "unknown"


class FractureSide(str, Enum):
    """Side of the femoral neck a stress fracture starts on (Shin & Gillingham 1996)."""

    tension = "tension"
    compression = "compression"
    unknown = "unknown"


class Setting(str, Enum):
    """Where the patient is seen: the prior of acute conditions depends on it."""

    outpatient_clinic = "outpatient_clinic"
    emergency_department = "emergency_department"


class Walking(str, Enum):
    """Walking ability at a visit."""

    normal = "normal"
    limp = "limp"
    walking_aids = "walking_aids"
    unable = "unable"
    unknown = "unknown"


class StrictModel(BaseModel):
    """The base of every part of a case: unknown fields refused, frozen, no infinite or NaN number."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_enum_values=False, str_strip_whitespace=True, allow_inf_nan=False
    )


# --- the value types: strict, nothing converted --------------------------------------------

#: A number as JSON writes it, an integer or a decimal. ``true`` is not 1 and ``"45"`` is
#: not 45: a boolean or a number in quotes is refused, never converted.
Number = Annotated[float, Strict()]
#: A yes/no flag: ``true`` or ``false`` only (not 1, 0, "yes").
Flag = Annotated[bool, Strict()]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> dt.date:
    """A date given as ISO text ``"YYYY-MM-DD"`` (or a :class:`datetime.date` from Python)."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"give a date without a time, not {value.isoformat()!r}")
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{excerpt(value)} is not a calendar date") from None
    if isinstance(value, dt.date):
        reason = date_problem(value)
        if reason is not None:
            raise ValueError(reason)
        return value
    raise ValueError(
        f'give the date as text "YYYY-MM-DD", not {excerpt(value)} (a number is not read as a date)'
    )


#: Bidirectional embedding, override and isolate controls: they reorder what a terminal or
#: a browser shows, so text can read differently from what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def refused_character(text: str, multiline: bool) -> str | None:
    """The reason ``text`` is refused as free text, or None when it is plain text.

    Refused: control characters (``ESC`` starts the terminal sequences that recolour, hide
    or erase what follows; a carriage return overwrites the line), lone surrogates and
    bidirectional controls; line breaks and tabs are allowed in ``multiline`` text only.
    """
    for position, char in enumerate(text):
        if multiline and char in "\n\t":
            continue
        if char in _BIDI_CONTROLS or (not char.isprintable() and unicodedata.category(char) != "Zs"):
            name = "a line break" if char in "\n\r" else "a tab" if char == "\t" else "a control character"
            return (
                f"is not printable text: it contains {name} (U+{ord(char):04X}) at character {position + 1}; "
                "remove it (control characters can hide or rewrite what a terminal shows)"
            )
    return None


def _single_line(text: str) -> str:
    reason = refused_character(text, multiline=False)
    if reason:
        raise ValueError(reason)
    return text


def _multiline(text: str) -> str:
    reason = refused_character(text, multiline=True)
    if reason:
        raise ValueError(reason)
    return text


#: Free text on one line (an id, a site, a unit): printable characters only.
Line = Annotated[str, AfterValidator(_single_line)]
#: Free text that may span lines (a note): printable characters, line breaks and tabs.
Paragraph = Annotated[str, AfterValidator(_multiline)]

#: A calendar date, only as ISO text ``"YYYY-MM-DD"``; a number is never read as a Unix time.
Date = Annotated[dt.date, BeforeValidator(_iso_date)]


#: Short for :class:`Presence` where findings are spelt out in bulk.
P = Presence


class Measurement(StrictModel):
    """A value with its unit, as measured: ``{"value": 2.1, "unit": "mg/dL"}``."""

    value: Number
    unit: Line = Field(min_length=1)


class LabResult(str, Enum):
    """A laboratory result reported only in words, against the laboratory's reference range."""

    normal = "normal"
    raised = "raised"


#: Labs whose result can be given in words (``Labs.qualitative``): those the reasoning reads
#: against a reference range (a fever counts as a raised temperature).
QualitativeLab = Literal["esr", "crp", "wbc", "temperature", "calcium"]
