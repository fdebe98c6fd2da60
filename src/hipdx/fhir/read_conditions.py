"""Condition, AllergyIntolerance and Procedure: the complaint, pregnancy, risk factors and comorbidities.

A coded problem sets a present/absent fact of the case (code tables: ``facts.yaml``). A record
counts only when confirmed (or without verificationStatus); ``refuted`` makes the fact absent;
facts about the present need an active clinicalStatus; facts with a window (a myocardial
infarction in the last 6 months) need a date inside it.
"""

from __future__ import annotations

from typing import Any

from hipdx.fhir.codes import PREGNANCY_STATUS_WINDOW
from hipdx.fhir.context import Context, codes_text, show_code
from hipdx.fhir.resources import Date, Resource

_ACTIVE = frozenset({"active", "recurrence", "relapse"})


def _record_when(res: Resource, *elements: str) -> tuple[Date | None, str]:
    for element in elements:
        when = res.date(element)
        if when is not None:
            return when, element
    period = res.get("onsetPeriod", dict)
    if period is not None:
        start = res.date("start", period, "onsetPeriod.start")
        if start is not None:
            return start, "onsetPeriod.start"
    return None, ""


def _verification(res: Resource) -> str | None:
    codes = [c for s, c in res.codings("verificationStatus") if "verification" in s or "ver-status" in s]
    return codes[0] if codes else None


def _clinical(res: Resource) -> str | None:
    codes = [c for s, c in res.codings("clinicalStatus") if "clinical" in s]
    return codes[0] if codes else None


def read_condition(ctx: Context, res: Resource) -> None:
    codes = res.codings("code")
    if not codes:
        ctx.skip(res, "code", "no coding (free text is not read)")
        return
    verification = _verification(res)
    if verification == "entered-in-error":
        ctx.skip(res, "verificationStatus", "entered in error")
        return
    if verification in ("unconfirmed", "provisional", "differential"):
        ctx.skip(res, "verificationStatus", f"{verification}: only confirmed conditions are read")
        return
    refuted = verification == "refuted"
    clinical = _clinical(res)
    when, when_element = _record_when(res, "onsetDateTime", "recordedDate")
    if ctx.in_future(res, when_element, when):
        return
    day = when.day if when else None
    for system, code in codes:
        complaint = ctx.t.complaints.find(system, code)
        if complaint is not None:
            _complaint(ctx, res, complaint, refuted, clinical, when, when_element)
            return
        pregnancy = ctx.t.pregnancy_conditions.find(system, code)
        if pregnancy is not None:
            if _stale_not_pregnant(ctx, res, pregnancy, refuted, day):
                return
            if refuted or clinical not in _ACTIVE:
                value = "not_pregnant" if pregnancy.status == "pregnant" else "pregnant"
                if refuted:
                    ctx.offer("pregnancy.status", value, day, res, "verificationStatus", f"refuted {pregnancy.display}")
                else:
                    ctx.skip(
                        res,
                        "clinicalStatus",
                        f"{pregnancy.display} is {clinical or 'without clinical status'}, not active",
                    )
                return
            ctx.offer(
                "pregnancy.status", pregnancy.status, day, res, "code", show_code(system, code, pregnancy.display)
            )
            return
        hit = ctx.t.fact_codes.find(system, code)
        if hit is not None and res.type in hit.entry.resources:  # type: ignore[attr-defined]
            _fact(ctx, res, hit.entry, system, code, hit.display, refuted, clinical, when)  # type: ignore[attr-defined]
            return
    ctx.skip(res, "code", f"{codes_text(codes)} is not in hipdx's code tables")


def _stale_not_pregnant(ctx: Context, res: Resource, pregnancy: Any, refuted: bool, day: Any) -> bool:
    """True (and the record left out) when it says "not pregnant" but is undated or older than the window.

    A refuted pregnancy or a "Not pregnant" finding speaks of the visit it was recorded at; an old
    one must not stand for today, when the plan and the order hooks ask before a bisphosphonate or
    an X-ray (``observations.yaml: windows``, ``pregnancy_status``).
    """
    if (pregnancy.status == "pregnant") != refuted:
        return False  # it says pregnant: not bounded (the plan treats it with caution)
    window = ctx.t.windows[PREGNANCY_STATUS_WINDOW]
    if day is None:
        ctx.skip(res, "onset[x]", f"not pregnant ({pregnancy.display}): no date, so not the pregnancy status today")
        return True
    if (ctx.today - day).days > window:
        ctx.skip(res, "onset[x]", f"not pregnant ({pregnancy.display}) on {day.isoformat()}: a pregnancy status "
                                  f"older than the {window} days read for it is not today's")
        return True
    return False


def _fact(
    ctx: Context,
    res: Resource,
    fact: Any,
    system: str,
    code: str,
    display: str,
    refuted: bool,
    clinical: str | None,
    when: Date | None,
) -> None:
    day = when.day if when else None
    if refuted:
        value = "absent" if fact.value == "present" else "present"
        ctx.offer(fact.field, value, day, res, "verificationStatus", f"refuted: {show_code(system, code, display)}")
        return
    if not fact.history:
        if clinical is None and res.type == "Condition":
            ctx.skip(res, "clinicalStatus", f"not given: cannot tell whether {display} is current")
            return
        if clinical is not None and clinical not in _ACTIVE:
            ctx.skip(res, "clinicalStatus", f"{display} is {clinical}; {fact.field} asks about the present")
            return
    if fact.within_days is not None:
        if day is None:
            ctx.skip(
                res, "onset[x]", f"{display} has no date; {fact.field} counts only the last {fact.within_days} days"
            )
            return
        if (ctx.today - day).days > fact.within_days:
            ctx.skip(
                res,
                "onset[x]",
                f"{display} on {day.isoformat()} is older than the {fact.within_days} days {fact.field} counts",
            )
            return
    ctx.offer(fact.field, fact.value, day, res, "code", show_code(system, code, display), rank=1)


def _complaint(
    ctx: Context,
    res: Resource,
    complaint: Any,
    refuted: bool,
    clinical: str | None,
    when: Date | None,
    when_element: str,
) -> None:
    if refuted:
        ctx.skip(res, "verificationStatus", "hip pain refuted")
        return
    if clinical is not None and clinical not in _ACTIVE:
        ctx.skip(res, "clinicalStatus", f"hip pain is {clinical}, not the current episode")
        return
    ctx.complaints.append(res.label)
    if complaint.side != "unknown":
        ctx.offer(
            "side",
            complaint.side,
            when.day if when else None,
            res,
            "code",
            show_code(ctx.t.uri(complaint.system), complaint.code, complaint.display),
        )
    onset = res.date("onsetDateTime")
    if onset is None:
        ctx.skip(res, "onset[x]", "hip pain without an onsetDateTime: the time since onset stays unknown")
    elif onset.day is None:
        ctx.skip(res, "onsetDateTime", f"{onset.text!r} gives no day: the time since onset stays unknown")
    else:
        ctx.offer("onset.date", onset.day.isoformat(), onset.day, res, "onsetDateTime", onset.text)


def read_allergy(ctx: Context, res: Resource) -> None:
    verification = _verification(res)
    if verification == "entered-in-error" or verification == "unconfirmed":
        ctx.skip(res, "verificationStatus", f"{verification}: only confirmed allergies are read")
        return
    codes = res.codings("code")
    when, element = _record_when(res, "onsetDateTime", "recordedDate")
    if ctx.in_future(res, element, when):
        return
    for system, code in codes:
        hit = ctx.t.fact_codes.find(system, code)
        if hit is not None and "AllergyIntolerance" in hit.entry.resources:  # type: ignore[attr-defined]
            _fact(ctx, res, hit.entry, system, code, hit.display, verification == "refuted", None, when)  # type: ignore[attr-defined]
            return
    ctx.skip(res, "code", f"{codes_text(codes) or 'no coding'} is not in hipdx's code tables")


def read_procedure(ctx: Context, res: Resource) -> None:
    codes = res.codings("code")
    ctx.skip(res, "code", f"{codes_text(codes) or 'no coding'}: hipdx's tables hold no procedure codes yet")
