"""Reading numbers out of the printed strings of literature vignettes.

Vignettes keep values as the source printed them: ``"CRP 0.79 mg/dL"``, ``"leucocytosis
14.1×10^9/L"``, ``"ESR 55 mm/hour"``, ``"afebrile"``. These readers take a value only when a
number *and* a unit that :mod:`hipdx.case.units` accepts for that quantity are both printed;
anything else (a qualitative word, a number without a unit, a censored value such as
``"< 5 mg/L"``, a range such as ``"5-10 mg/L"`` or ``"from 5 to 50 mg/L"``, two candidate
values, a T-score without its sign) is refused with the reason. Nothing is guessed.

Every reader returns ``(value, reason)``: the value when it was read, else None and a short
reason a curator can check.
"""

from __future__ import annotations

import math
import re

from hipdx.case.model import Measurement

_TOO_LONG = "a number too large to be a measurement"

#: For each laboratory quantity, the spellings of its units found in print (a regular
#: expression, matched case-insensitively right after the number) and the accepted unit
#: of :mod:`hipdx.case.units` each stands for.
LAB_UNITS: dict[str, tuple[tuple[str, str], ...]] = {
    "esr": ((r"mm\s*/\s*(?:h|hr|hour)\b|mm\s+in\s+the\s+first\s+hour", "mm/h"),),
    "crp": ((r"mg\s*/\s*dl\b", "mg/dL"), (r"mg\s*/\s*l\b", "mg/L")),
    "wbc": (
        (r"(?:[x×*]\s*)?10\s*(?:\^\s*9|⁹|e9)\s*/\s*l\b", "10^9/L"),
        (r"(?:[x×*]\s*)?10\s*(?:\^\s*3|³|e3)\s*/\s*(?:u|µ|μ|m)l\b", "10^3/uL"),
        (r"g\s*/\s*l\b", "G/L"),
        (r"(?:cells\s*)?/\s*(?:mm3|mm³|cmm)", "/mm3"),
        (r"(?:cells\s*)?/\s*(?:u|µ|μ)l\b", "/uL"),
    ),
    "temperature": ((r"(?:°|º|deg\s*)\s*c\b|c\b", "degC"), (r"(?:°|º|deg\s*)\s*f\b|f\b", "degF")),
    "vitamin_d": ((r"ng\s*/\s*ml\b", "ng/mL"), (r"nmol\s*/\s*l\b", "nmol/L"), (r"(?:u|µ|μ)g\s*/\s*l\b", "ug/L")),
    "calcium": ((r"mmol\s*/\s*l\b", "mmol/L"), (r"mg\s*/\s*dl\b", "mg/dL")),
    "alp": ((r"i?u\s*/\s*l\b", "U/L"),),
}

# A number as printed: "12,300" (thousands), "0.79", "0,79" (decimal comma), "38.5".
_NUMBER = r"(?<![\w.,^])(\d{1,3}(?:,\d{3})+(?![\d,])|\d+(?:[.,]\d+)?)"
_ANY_NUMBER = re.compile(r"\d")
_PARENTHESES = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_CENSORED = re.compile(r"[<>≤≥]\s*=?\s*$|(?:less|more|greater|lower|higher)\s+than\s*$|up\s+to\s*$", re.IGNORECASE)
#: A number joined to the one read by a range word: "5-10 mg/L", "from 5 to 50 mg/L",
#: "between 5 and 10 mg/L", "5 or 10 mg/L".
_RANGE_BEFORE = re.compile(r"\d\s*(?:-|to|and|or)\s*$", re.IGNORECASE)
_MINUS = str.maketrans({"−": "-", "–": "-", "—": "-"})


def number_from_print(text: str) -> float:
    """A printed number: ``"12,300"`` is 12300, ``"0,79"`` is 0.79, ``"38.5"`` is 38.5.

    A comma followed by exactly three digits groups thousands; any other comma is a
    decimal comma.
    """
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", text):
        return float(text.replace(",", ""))
    return float(text.replace(",", "."))


def read_lab(name: str, printed: str) -> tuple[Measurement | None, str]:
    """Read one printed laboratory value, e.g. ``read_lab("crp", "CRP 11 mg/dL")``.

    Parenthesised text (reference ranges, comments) is ignored. Exactly one number
    followed by an accepted unit must remain.

    Returns
    -------
    (Measurement, "") when read, or (None, reason) when not.

    Examples
    --------
    >>> read_lab("wbc", "WBC 12,300/mm3")
    (Measurement(value=12300.0, unit='/mm3'), '')
    >>> read_lab("crp", "normal")
    (None, 'no number: a qualitative result is not turned into a value')
    """
    units = LAB_UNITS.get(name)
    if units is None:
        return None, f"hipdx reads no laboratory value called {name!r}"
    text = _PARENTHESES.sub(" ", printed.translate(_MINUS))
    if not _ANY_NUMBER.search(text):
        return None, "no number: a qualitative result is not turned into a value"
    found: list[tuple[float, str]] = []
    censored = ranged = False
    for pattern, unit in units:
        for m in re.finditer(_NUMBER + r"\s*(?:" + pattern + ")", text, re.IGNORECASE):
            if _RANGE_BEFORE.search(text[: m.start()]):
                ranged = True
                continue
            if _CENSORED.search(text[: m.start()]):
                censored = True
                continue
            found.append((number_from_print(m.group(1)), unit))
    found = sorted(set(found))
    if ranged:
        return None, "a range or two values (5-10, from 5 to 50): which one was measured is ambiguous"
    if censored and not found:
        return None, "a censored value (< or >): the number is a bound, not a measurement"
    if not found:
        accepted = ", ".join(u for _, u in units)
        return None, f"no number with an accepted unit ({accepted})"
    if len(found) > 1:
        return None, "several values printed: which one was measured is ambiguous"
    value, unit = found[0]
    if not math.isfinite(value):
        return None, _TOO_LONG
    return Measurement(value=value, unit=unit), ""


#: Words that report a laboratory result against its reference range, without a value.
_QUALITATIVE_WORDS: dict[str, tuple[str, str]] = {
    # lab: (raised, normal), each a regular expression matched against the whole cleaned text
    "esr": (r"raised|elevated|increased|high", r"normal|within normal limits|unremarkable|not (?:raised|elevated|increased)"),
    "crp": (r"raised|elevated|increased|high|positive", r"normal|within normal limits|unremarkable|not (?:raised|elevated|increased)|negative"),
    "wbc": (r"raised|elevated|increased|high|leu[ck]ocytosis", r"normal|within normal limits|unremarkable|no leu[ck]ocytosis"),
    "temperature": (
        r"raised|elevated|high|febrile|pyrexial|(?:(?:high|low)[- ]grade )?(?:fever|pyrexia)",
        r"normal|afebrile|apyrexial|no fever|not febrile",
    ),
    "calcium": (r"raised|elevated|increased|high", r"normal|within normal limits|unremarkable"),
}
_LAB_WORDS = (
    r"(?:serum |blood |body )?(?:crp|c[- ]reactive protein|esr|(?:erythrocyte )?sedimentation rate|wbc|"
    r"white (?:blood )?cell count|leu[ck]ocytes?|temperature|calcium)\s*(?:was |is |were )?"
)
_DEGREE = r"(?:mildly|slightly|moderately|markedly|highly|very|significantly) "
_WHEN = r"(?: at (?:all visits|presentation|admission)| on admission| reported| throughout)?"


def read_qualitative(name: str, printed: str) -> tuple[str | None, str]:
    """A laboratory result printed only in words: ``"raised"``, ``"normal"`` or None.

    The whole text (parenthesised remarks dropped) must be one of a few unambiguous phrases:
    ``"elevated"``, ``"CRP raised"``, ``"mildly elevated"``, ``"afebrile"``, ``"high-grade
    fever"``, ``"no leukocytosis"``. Anything more (``"elevated in 2 of 4 patients"``, a
    number, "abnormal") is refused: it is the reader's job to keep what was reported, not to
    guess.

    Examples
    --------
    >>> read_qualitative("crp", "raised (value not given)")
    ('raised', '')
    >>> read_qualitative("temperature", "apyrexial at all visits")
    ('normal', '')
    >>> read_qualitative("crp", "mildly elevated in 2 of 4 patients")[0] is None
    True
    """
    words = _QUALITATIVE_WORDS.get(name)
    if words is None:
        return None, f"hipdx reads no result in words for {name!r}"
    text = " ".join(_PARENTHESES.sub(" ", printed).lower().split()).strip(" .;,")
    if _ANY_NUMBER.search(text):
        return None, "a number is printed: a result in words is read only without one"
    for result, pattern in zip(("raised", "normal"), words):
        if re.fullmatch(f"(?:{_LAB_WORDS})?(?:{_DEGREE})?(?:{pattern}){_WHEN}", text):
            return result, ""
    return None, "not one of the plain phrases read as raised or normal (elevated, normal, afebrile...)"


_T_SCORE = re.compile(r"t[\s-]*score\D{0,12}?([-+]?)\s*(\d+(?:[.,]\d+)?)", re.IGNORECASE)
_BELOW = re.compile(r"\s*(?:sd\b|standard\s+deviations?)?\s*(below|under|less\s+than|lower\s+than)\b", re.IGNORECASE)
_ABOVE = re.compile(r"\s*(?:sd\b|standard\s+deviations?)?\s*(above|over|more\s+than|higher\s+than)\b", re.IGNORECASE)


def read_t_score(printed: str) -> tuple[float | None, str]:
    """A bone-density T-score printed with its sign, e.g. ``"T-score -2.7 at the spine"``.

    ``"2.5 below the mean"`` is -2.5 and ``"1.0 above the mean"`` +1.0; a T-score printed
    without a sign or a direction (``"T-score 2.5"``, often a dropped minus) is refused.
    """
    text = _PARENTHESES.sub(" ", printed.translate(_MINUS))
    found = set()
    for m in _T_SCORE.finditer(text):
        value = number_from_print(m.group(2))
        below, above = _BELOW.match(text, m.end()), _ABOVE.match(text, m.end())
        if (below and m.group(1) == "+") or (above and m.group(1) == "-"):
            return None, "the sign and the words (below/above the mean) disagree"
        if m.group(1) == "-" or below:
            value = -value
        elif m.group(1) != "+" and not above and value != 0:
            return None, "a T-score without a sign or 'below/above the mean': the minus may have been dropped"
        found.add(value)
    if not found:
        return None, "no T-score printed as a number"
    if not all(math.isfinite(v) for v in found):
        return None, _TOO_LONG
    if len(found) > 1:
        return None, "several T-scores printed (sites differ): ambiguous"
    return found.pop(), ""


_WORD_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
#: Days per unit; a month is 4.35 weeks, as in the vignette format's own conversion.
DAYS_PER_UNIT = {"hour": 1 / 24, "day": 1.0, "week": 7.0, "month": 4.35 * 7.0, "year": 12 * 4.35 * 7.0}
_AMOUNT = r"(\d+(?:\.\d+)?|" + "|".join(_WORD_NUMBERS) + r")"
_SINCE_ONSET = re.compile(
    _AMOUNT
    + r"(?:\s*(?:-|–|to)\s*"
    + _AMOUNT
    + r")?\s*(hour|day|week|month|year)s?\s+(?:after|from|since|into)\s+(?:the\s+)?"
    r"(?:[a-z-]+\s+){0,3}?(?:onset|pain|symptoms?)\b",
    re.IGNORECASE,
)
_BEFORE_ONSET = re.compile(r"\bbefore\s+(?:the\s+)?(?:[a-z-]+\s+){0,2}?(?:onset|symptoms?|pain)\b", re.IGNORECASE)
_AT_PRESENTATION = re.compile(r"\b(?:at|on)\s+(?:first\s+)?presentation\b|\bfirst\s+visit\b", re.IGNORECASE)


def _amount(text: str) -> float:
    return float(_WORD_NUMBERS.get(text.lower(), 0) or text)


def days_after_onset(timing: str) -> tuple[float | None, str]:
    """Days from the onset of pain to a study, when the timing says so explicitly.

    ``"1 week after onset"`` gives 7, ``"5-6 weeks after onset"`` the midpoint 38.5,
    ``"5 days after pain onset"`` 5. ``"3 months later"`` or ``"after treatment"`` are
    relative to something else and give None.
    """
    m = _SINCE_ONSET.search(timing)
    if m is None:
        return None, "the timing is not stated as time since the onset of pain"
    low = _amount(m.group(1))
    high = _amount(m.group(2)) if m.group(2) else low
    if not math.isfinite(low + high):
        return None, _TOO_LONG
    return round((low + high) / 2 * DAYS_PER_UNIT[m.group(3).lower()], 1), ""


def is_before_onset(timing: str) -> bool:
    """Whether a study's timing places it before the pain began (not this episode)."""
    return bool(_BEFORE_ONSET.search(timing))


def is_at_presentation(timing: str) -> bool:
    """Whether a study's timing says it was done at the first presentation."""
    return bool(_AT_PRESENTATION.search(timing))


_DECADE_OR_RANGE = re.compile(r"\d\s*'?s\b|\d\s*(?:-|–|to)\s*\d", re.IGNORECASE)
_AGE_UNIT = re.compile(
    r"\d\s*-?\s*(years?|yrs?|y|months?|mos?|weeks?|wks?|days?)\b(?!\s*(?:after|since|from|ago|before|later))",
    re.IGNORECASE,
)
#: Units of an age printed in months, weeks or days, in those per year.
_PER_YEAR = {"m": 12.0, "w": 365.25 / 7, "d": 365.25}


def age_from_text(text: str) -> tuple[float | None, str]:
    """An age in years from free text when exactly one age is printed (``"45-year-old"``).

    An age printed in months, weeks or days is converted: ``"18-month-old"`` is 1.5 years.
    A decade (``"in her 40s"``), a range (``"40-50"``) or two ages give None.
    """
    numbers = re.findall(r"\d+(?:\.\d+)?", text)
    if len(numbers) != 1 or _DECADE_OR_RANGE.search(text):
        return None, "not one single age (a range, a decade or several ages)"
    unit = _AGE_UNIT.search(text)
    per_year = _PER_YEAR.get(unit.group(1)[0].lower(), 1.0) if unit else 1.0
    age = float(numbers[0]) / per_year
    return (round(age, 3), "") if math.isfinite(age) else (None, _TOO_LONG)
