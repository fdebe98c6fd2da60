"""MedicationStatement and MedicationRequest: systemic corticosteroids, immunosuppressants, anticoagulants.

A calcineurin inhibitor (tacrolimus, ciclosporin, voclosporin) taken now (status active or
on-hold, its period not ended) also sets ``comorbidities.calcineurin_inhibitor_use``.

The medicine is recognised by its code or its Medication's code and ingredients (ATC classes,
RxNorm); forms made also for local use count only with a systemic route. A corticosteroid
dose is read as prednisolone equivalent when the record gives one dosage line in UCUM mg with
a frequency per period; the duration from the effective or bounds period.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hipdx.fhir.codes import MedicationCode
from hipdx.fhir.context import Context, codes_text, show_code
from hipdx.fhir.resources import Resource

_TAKEN = frozenset({"active", "completed", "on-hold", "stopped"})
# Taken now: on-hold is a pause the prescriber means to end (FHIR R4 medicationrequest-status),
# so an NSAID started during it would meet the drug again; completed and stopped are over.
_CURRENT = frozenset({"active", "on-hold"})
_PER_DAY = {"s": 86400.0, "min": 1440.0, "h": 24.0, "d": 1.0, "wk": 1 / 7}


def read_medication(ctx: Context, res: Resource) -> None:
    status = res.get("status", str)
    if status not in _TAKEN:
        ctx.skip(res, "status", f"status {status!r}: not a medicine the patient takes or took")
        return
    if res.type == "MedicationRequest" and res.get("intent", str) in ("proposal", "plan"):
        ctx.skip(res, "intent", f"intent {res.data['intent']!r}: not prescribed")
        return
    codes, element = _medication_codes(ctx, res)
    hit = None
    for system, code in codes:
        hit = ctx.t.medications.find(system, code)
        if hit is not None:
            shown = show_code(system, code, hit.display)
            break
    if hit is None:
        ctx.skip(res, element, f"{codes_text(codes) or 'no coding'} is not in hipdx's medication tables")
        return
    if hit.drug_class == "not_systemic":
        ctx.skip(res, element, f"{shown}: not a systemic medicine")
        return
    dosages = res.objects("dosage" if res.type == "MedicationStatement" else "dosageInstruction")
    dosage_element = "dosage" if res.type == "MedicationStatement" else "dosageInstruction"
    if hit.systemic == "by_route" and not _systemic_route(ctx, res, dosages, dosage_element):
        ctx.skip(res, f"{dosage_element}.route", f"{shown}: also made for local use, and no systemic route is given")
        return
    start, end, when_element = _medication_period(ctx, res, dosages, dosage_element)
    if start is not None and start > ctx.today:
        ctx.skip(res, when_element, f"starts {start.isoformat()}, after the assessment date")
        return
    last = end or start
    if last is not None and (ctx.today - last).days > ctx.t.exposure_window_days and (end is not None):
        ctx.skip(
            res,
            when_element,
            f"{shown} ended {end.isoformat()}, more than {ctx.t.exposure_window_days} days before the assessment",
        )
        return
    when = start or end
    target = {
        "systemic_corticosteroid": "risk_factors.corticosteroids.status",
        "immunosuppressant": "risk_factors.immunosuppression",
        "anticoagulant": "comorbidities.anticoagulant_use",
    }[hit.drug_class]
    ctx.offer(target, "present", when, res, element, shown, rank=1)
    if hit.calcineurin_inhibitor:
        _calcineurin_inhibitor_now(ctx, res, status, end, when, when_element, shown)
    if hit.drug_class == "systemic_corticosteroid":
        _steroid_dose(ctx, res, hit, dosages, dosage_element, shown, when)
        if start is not None:
            weeks = ((end or ctx.today) - start).days / 7
            if weeks > 0:
                ctx.offer(
                    "risk_factors.corticosteroids.duration_weeks",
                    round(weeks, 1),
                    when,
                    res,
                    when_element,
                    f"{weeks:.1f} weeks from {start.isoformat()}",
                )


def _calcineurin_inhibitor_now(
    ctx: Context, res: Resource, status: str | None, end: dt.date | None, when: dt.date | None, when_element: str, shown: str
) -> None:
    """A calcineurin inhibitor taken now (it blocks NSAIDs); a past one counts only as immunosuppression."""
    if status not in _CURRENT:
        ctx.skip(res, "status", f"{shown}: status {status!r}, so not read as a calcineurin inhibitor taken now")
        return
    if end is not None and end < ctx.today:
        ctx.skip(res, when_element, f"{shown} ended {end.isoformat()}, so not read as a calcineurin inhibitor taken now")
        return
    ctx.offer("comorbidities.calcineurin_inhibitor_use", "present", when, res, "status", f"{shown}, status {status}", rank=1)


def _medication_codes(ctx: Context, res: Resource) -> tuple[list[tuple[str, str]], str]:
    if "medicationCodeableConcept" in res.data:
        return res.codings("medicationCodeableConcept"), "medicationCodeableConcept"
    ref = res.reference("medicationReference")
    if ref is None:
        return [], "medication[x]"
    target = ctx.res.resolve(ref, res)
    if target is None:
        return [], "medicationReference"
    med = (
        target
        if isinstance(target, Resource)
        else Resource("Medication", target.get("id"), target, None, f"{res.label}#{target.get('id')}")
    )
    codes = med.codings("code")
    for i, ingredient in enumerate(med.objects("ingredient")):
        codes += med.codings("itemCodeableConcept", ingredient, f"ingredient[{i}].itemCodeableConcept")
    return codes, "medicationReference"


def _systemic_route(ctx: Context, res: Resource, dosages: list[dict[str, Any]], element: str) -> bool:
    for i, dosage in enumerate(dosages):
        for system, code in res.codings("route", dosage, f"{element}[{i}].route"):
            if ctx.t.systemic_routes.find(system, code) is not None:
                return True
    return False


def _medication_period(
    ctx: Context, res: Resource, dosages: list[dict[str, Any]], element: str
) -> tuple[dt.date | None, dt.date | None, str]:
    if res.type == "MedicationStatement":
        when = res.date("effectiveDateTime")
        if when is not None:
            return when.day, None, "effectiveDateTime"
        period = res.get("effectivePeriod", dict)
        if period is not None:
            start, end = (
                res.date("start", period, "effectivePeriod.start"),
                res.date("end", period, "effectivePeriod.end"),
            )
            return (start.day if start else None), (end.day if end else None), "effectivePeriod"
        return None, None, "effective[x]"
    for i, dosage in enumerate(dosages):
        timing = res.get("timing", dict, dosage, f"{element}[{i}].timing")
        repeat = res.get("repeat", dict, timing, f"{element}[{i}].timing.repeat") if timing else None
        bounds = res.get("boundsPeriod", dict, repeat, f"{element}[{i}].timing.repeat.boundsPeriod") if repeat else None
        if bounds:
            start = res.date("start", bounds, f"{element}[{i}].timing.repeat.boundsPeriod.start")
            end = res.date("end", bounds, f"{element}[{i}].timing.repeat.boundsPeriod.end")
            return (
                (start.day if start else None),
                (end.day if end else None),
                f"{element}[{i}].timing.repeat.boundsPeriod",
            )
    return None, None, f"{element}.timing.repeat.boundsPeriod"


def _steroid_dose(
    ctx: Context,
    res: Resource,
    hit: MedicationCode,
    dosages: list[dict[str, Any]],
    element: str,
    shown: str,
    when: dt.date | None,
) -> None:
    if hit.prednisolone_factor is None:
        ctx.skip(res, element, f"{shown}: the ingredient is not named, so no prednisolone-equivalent dose")
        return
    if len(dosages) != 1:
        ctx.skip(res, element, f"{shown}: {len(dosages)} dosage lines; the daily dose is read from exactly one")
        return
    dosage, at = dosages[0], f"{element}[0]"
    dose = None
    for j, dr in enumerate(res.objects("doseAndRate", dosage, f"{at}.doseAndRate")):
        q = res.get("doseQuantity", dict, dr, f"{at}.doseAndRate[{j}].doseQuantity")
        if q is not None:
            value = res.get("value", (int, float), q, f"{at}.doseAndRate[{j}].doseQuantity.value")
            unit = res.get("code", str, q, f"{at}.doseAndRate[{j}].doseQuantity.code")
            if value is not None and unit == "mg" and res.get("system", str, q) == ctx.t.uri("ucum"):
                dose = float(value)
    timing = res.get("timing", dict, dosage, f"{at}.timing")
    repeat = res.get("repeat", dict, timing, f"{at}.timing.repeat") if timing else None
    per_day = None
    if repeat:
        frequency = res.get("frequency", int, repeat, f"{at}.timing.repeat.frequency") or 1
        period = res.get("period", (int, float), repeat, f"{at}.timing.repeat.period")
        unit = res.get("periodUnit", str, repeat, f"{at}.timing.repeat.periodUnit")
        if period and unit in _PER_DAY:
            per_day = frequency / period * _PER_DAY[unit]
    if dose is None or per_day is None:
        ctx.skip(
            res, f"{at}.doseAndRate", f"{shown}: no dose in UCUM mg with a frequency per period; the dose stays unknown"
        )
        return
    mg = round(dose * per_day * hit.prednisolone_factor, 2)
    text = f"{dose:g} mg x {per_day:g}/day x {hit.prednisolone_factor:g} = {mg:g} mg/day prednisolone equivalent"
    ctx.offer("risk_factors.corticosteroids.dose_mg_per_day", mg, when, res, f"{at}.doseAndRate", text)
