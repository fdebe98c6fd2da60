"""Observation: labs and vital signs (LOINC, through UCUM), coded answers, and hipdx-coded findings.

A number is read only with a unit the tables accept for its quantity and only when dated
within that quantity's window; imaging findings are handed to the study they belong to.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from hipdx.case.units import QUANTITIES
from hipdx.fhir.codes import Finding
from hipdx.fhir.context import Candidate, Context, Origin, Study, codes_text, show_code, value_element
from hipdx.fhir.read_text import collect_observation_text
from hipdx.fhir.resources import Date, Resource, relative_reference

#: result statuses that are read; preliminary, registered, cancelled and entered-in-error are not
FINAL = frozenset({"final", "amended", "corrected"})


def observation_time(ctx: Context, res: Resource) -> tuple[Date | None, str]:
    for element in ("effectiveDateTime", "effectiveInstant"):
        when = res.date(element)
        if when is not None:
            return when, element
    period = res.get("effectivePeriod", dict)
    if period is not None:
        for part in ("end", "start"):
            when = res.date(part, period, f"effectivePeriod.{part}")
            if when is not None:
                return when, f"effectivePeriod.{part}"
    return None, ""


def read_observation(ctx: Context, res: Resource) -> None:
    status = res.get("status", str)
    if status not in FINAL:
        ctx.skip(res, "status", f"status {status!r}: only final, amended or corrected results are read")
        return
    codes = res.codings("code")
    when, when_element = observation_time(ctx, res)
    if ctx.in_future(res, when_element, when):
        return
    day = when.day if when else None
    hipdx_findings = ctx.t.systems["hipdx_finding"]  # ctx.t.uri, without the call
    for system, code in codes:
        if system == hipdx_findings:
            finding = ctx.t.findings.get(code)
            if finding is None:
                ctx.skip(res, "code", f"{code!r} is not a code of hipdx's finding code system")
                return
            _finding(ctx, res, finding, day)
            return
        quantity = ctx.t.quantity_codes.find(system, code)
        if quantity is not None:
            _quantity(ctx, res, quantity.entry, res.data, "", day, show_code(system, code, quantity.display))  # type: ignore[attr-defined]
            return
        answer = ctx.t.answer_codes.find(system, code)
        if answer is not None:
            _answer(ctx, res, answer.entry, day, show_code(system, code, answer.display))  # type: ignore[attr-defined]
            return
    for i, component in enumerate(res.objects("component")):
        for system, code in res.codings("code", component, f"component[{i}].code"):
            quantity = ctx.t.quantity_codes.find(system, code)
            if quantity is not None:
                _quantity(
                    ctx,
                    res,
                    quantity.entry,
                    component,
                    f"component[{i}].",
                    day,
                    show_code(system, code, quantity.display),
                )  # type: ignore[attr-defined]
                return
    if "valueString" in res.data:
        study = study_of(ctx, res)
        if study is not None:  # a finding of an imaging study given as text: read with the study's report text
            collect_observation_text(ctx, res, study)
            return
    ctx.skip(res, "code", f"{codes_text(codes) or 'no coding'} is not in hipdx's code tables")


def _quantity(
    ctx: Context, res: Resource, entry: Any, node: dict[str, Any], prefix: str, day: dt.date | None, what: str
) -> None:
    window = ctx.t.windows.get(entry.quantity)
    if day is None:
        ctx.skip(res, "effective[x]", f"{what}: no date, so it cannot be placed in this episode")
        return
    if window is not None and (ctx.today - day).days > window:
        ctx.skip(res, "effective[x]", f"{what} of {day.isoformat()} is older than the {window} days read for it")
        return
    if res.get("dataAbsentReason", dict, node, prefix + "dataAbsentReason") is not None:
        ctx.skip(res, prefix + "dataAbsentReason", f"{what}: no value (data absent)")
        return
    number, shown = _number(ctx, res, entry, node, prefix, what)
    if number is None:
        return
    if entry.quantity == "gestational_age":
        number = number + (ctx.today - day).days / 7
        shown += f", {number:.1f} weeks on {ctx.today.isoformat()}"
        if number > 44:
            ctx.skip(
                res,
                prefix + "valueQuantity",
                f"{what}: {number:.1f} weeks by the assessment date; the pregnancy has ended",
            )
            return
        ctx.offer(
            "pregnancy.status", "pregnant", day, res, prefix + "valueQuantity", f"gestational age recorded ({what})"
        )
    ctx.offer(entry.field, number, day, res, prefix + "valueQuantity", f"{shown} ({what}, {day.isoformat()})")


def _number(ctx: Context, res: Resource, entry: Any, node: dict[str, Any], prefix: str, what: str) -> tuple[Any, str]:
    """The value in the unit the case takes: a Measurement dict for labs, a float otherwise."""
    element = prefix + "valueQuantity"
    q = res.get("valueQuantity", dict, node, element)
    if q is None:
        for alt in ("valueInteger", "valueDecimal"):
            if alt in node and entry.unitless:
                value = res.get(alt, (int, float), node, prefix + alt)
                return float(value), f"{value:g}"
        present = next((k for k in node if k.startswith("value")), None)
        ctx.skip(
            res,
            prefix + (present or "value[x]"),
            f"{what}: {'a ' + present if present else 'no value'}, not a quantity",
        )
        return None, ""
    value = res.get("value", (int, float), q, element + ".value")
    if value is None:
        ctx.skip(res, element, f"{what}: a quantity without a value")
        return None, ""
    if res.get("comparator", str, q, element + ".comparator"):
        ctx.skip(res, element + ".comparator", f"{what}: {q['comparator']}{value:g} is a bound, not a value")
        return None, ""
    system = res.get("system", str, q, element + ".system")
    code = _ascii_micro(res.get("code", str, q, element + ".code"))
    text = _ascii_micro(res.get("unit", str, q, element + ".unit"))
    ucum = ctx.t.uri("ucum")
    if entry.quantity in ctx.t.plain_units:
        plain = ctx.t.plain_units[entry.quantity]
        unit = code if system == ucum else None
        if unit is None and entry.unitless and code is None and text is None:
            unit = "1"
        if unit not in plain.accept:
            ctx.skip(res, element, f"{what}: unit {(code or text)!r} is not one of {', '.join(plain.accept)} (UCUM)")
            return None, ""
        return value * plain.accept[unit], f"{value:g} {unit}"
    accepted = ctx.t.units[entry.quantity]
    shown_unit = text if text is not None and text in QUANTITIES[entry.quantity].accepted_units else None
    if system == ucum and code is not None:
        unit = accepted.get(code)
        if unit is not None and shown_unit is not None and not _same_unit(entry.quantity, value, unit, shown_unit):
            ctx.skip(res, element, f"{what}: the unit code {code!r} and the unit shown {text!r} disagree; "
                                   "hipdx does not choose which one holds")
            return None, ""
    else:
        unit = shown_unit
    if unit is None:
        given = code or text
        reason = (
            "no unit: a number without its unit is not read"
            if given is None
            else (f"unit {given!r} is not accepted for {entry.field} (UCUM: {', '.join(accepted)})")
        )
        ctx.skip(res, element, f"{what}: {reason}")
        return None, ""
    if entry.field == "weight_kg":
        return QUANTITIES["weight"].to_canonical(value, unit), f"{value:g} {unit}"
    return {"value": value, "unit": unit}, f"{value:g} {unit}"


def _same_unit(quantity: str, value: float, unit: str, other: str) -> bool:
    """Two names of one unit (``10*9/L`` and ``x10^9/L``): the value converts alike through either."""
    convert = QUANTITIES[quantity].to_canonical
    return math.isclose(convert(value, unit), convert(value, other), rel_tol=1e-9, abs_tol=1e-12)


def _ascii_micro(unit: str | None) -> str | None:
    """UCUM writes micro as ``u``; a unit given with the micro sign (U+00B5) or Greek mu (U+03BC),
    as lab systems print it (``µmol/L``), is the same unit, not a guess."""
    return unit.replace("\u00b5", "u").replace("\u03bc", "u") if unit else unit


def _answer(ctx: Context, res: Resource, entry: Any, day: dt.date | None, what: str) -> None:
    if entry.window is not None:  # an answer about the present (pregnancy status): only a recent one is today's
        window = ctx.t.windows[entry.window]
        if day is None:
            ctx.skip(res, "effective[x]", f"{what}: no date, so it cannot be taken as the status today")
            return
        if (ctx.today - day).days > window:
            ctx.skip(res, "effective[x]", f"{what} of {day.isoformat()} is older than the {window} days read for it")
            return
    values = res.codings("valueCodeableConcept")
    for system, code in values:
        for answer in entry.values:
            if ctx.t.uri(answer.system) == system and answer.code == code:
                if answer.value == "unknown":
                    ctx.skip(res, "valueCodeableConcept", f"{answer.display}: the fact stays unknown")
                    return
                ctx.offer(
                    entry.field, answer.value, day, res, "valueCodeableConcept", show_code(system, code, answer.display)
                )
                return
    ctx.skip(res, "valueCodeableConcept", f"{codes_text(values) or 'no coded answer'} is not an answer hipdx reads")


def _finding(ctx: Context, res: Resource, finding: Finding, day: dt.date | None) -> None:
    element = value_element(res)
    value, shown = _finding_value(ctx, res, finding, element)
    if value is None:
        return
    if not finding.code.startswith("imaging."):
        ctx.offer(finding.code, value, day, res, element, shown)
        return
    study = study_of(ctx, res)
    if study is None:
        ctx.skip(
            res,
            "derivedFrom",
            f"imaging finding {finding.code} is not linked to an ImagingStudy or an imaging DiagnosticReport",
        )
        return
    name = finding.code[8:]
    src = Origin(f"imaging[{study.label}].{name}", res.label, element, shown)
    study.findings.setdefault(name, []).append(Candidate(value, day, src))


def _finding_value(ctx: Context, res: Resource, finding: Finding, element: str) -> tuple[Any, str]:
    if finding.kind == "number":
        q = res.get("valueQuantity", dict)
        if q is None:
            ctx.skip(res, element, f"{finding.code}: needs a valueQuantity in {finding.unit}")
            return None, ""
        value = res.get("value", (int, float), q, "valueQuantity.value")
        code = res.get("code", str, q, "valueQuantity.code")
        system = res.get("system", str, q, "valueQuantity.system")
        if value is None or code != finding.unit or system != ctx.t.uri("ucum"):
            ctx.skip(res, "valueQuantity", f"{finding.code}: needs a value in UCUM {finding.unit!r}")
            return None, ""
        return value, f"{value:g} {finding.unit}"
    if finding.kind == "presence" and "valueBoolean" in res.data:
        flag = res.get("valueBoolean", bool)
        return ("present" if flag else "absent"), str(flag).lower()
    codes = res.codings("valueCodeableConcept")
    local = ctx.t.systems["hipdx_value"]
    for system, code in codes:
        if system == local:
            allowed = finding.values if finding.kind == "choice" else ["present", "absent", "unknown"]
            if code in allowed or code == "unknown":
                return code, code
            ctx.skip(res, "valueCodeableConcept", f"{code!r} is not a value of {finding.code} ({', '.join(allowed)})")
            return None, ""
        if finding.kind == "presence":
            hit = ctx.t.presence_values.find(system, code)
            if hit is not None:
                return hit.value, show_code(system, code, hit.display)
    ctx.skip(res, element, f"{finding.code}: {codes_text(codes) or 'no coded value'} is not a value hipdx reads")
    return None, ""


def study_of(ctx: Context, res: Resource) -> Study | None:
    key = ctx.result_of.get(res.label)
    if key is None:
        for element in ("derivedFrom", "partOf"):
            for _, ref in res.references(element):
                target = ctx.res.resolve(ref, res)
                label = target.label if isinstance(target, Resource) else relative_reference(ref)
                if (
                    label
                    and label.startswith("ImagingStudy/")
                    or (isinstance(target, Resource) and target.type == "ImagingStudy")
                ):
                    key = label
                    break
            if key:
                break
    if key is None:
        return None
    study = ctx.studies.get(key)
    if study is None:
        study = ctx.studies[key] = Study(key, key.split("/")[-1])
    return study
