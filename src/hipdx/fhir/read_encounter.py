"""The setting of the case (emergency department or outpatient clinic) from the Encounter the clinician is in.

Which Encounter: the one the CDS hook's context names (``encounterId``); without one (a Bundle
read on its own), the patient's one *current* Encounter (status arrived, triaged, in-progress or
onleave, ``encounters.yaml``). Its ``class`` (an R4 Coding of HL7 v3 ActCode) gives the setting
by ``encounters.yaml``: EMER the emergency department, AMB and VR the clinic.

Nothing is guessed. When no Encounter gives a setting (none named or current, a class outside
the knowledge base's settings such as an inpatient one, an unknown code system, a named
encounter that has ended or was entered in error, several current ones that disagree) the case
keeps its default, the outpatient clinic, and the mapping lists that as *assumed* with the
reason, for the clinician to see; the Encounter itself is listed in ``unmapped``.
"""

from __future__ import annotations

import datetime as dt

from hipdx.case.values import Setting
from hipdx.fhir.context import Context, show_code
from hipdx.fhir.resources import Malformed, Resource

#: the case's setting when no Encounter gives one (``Case.setting``'s default)
DEFAULT = Setting.outpatient_clinic


def read_encounter(ctx: Context, res: Resource) -> None:
    """Check the elements the setting is read from and keep the Encounter for :func:`read_setting`.

    Raises
    ------
    Malformed
        ``status`` not an R4 encounter status; ``class`` not one Coding (an R5 list of
        CodeableConcepts, a CodeableConcept, a string); ``class.system``/``class.code`` not
        strings; ``period`` dates that are not FHIR dates.
    """
    statuses = ctx.t.encounter_statuses
    status = res.get("status", str)
    if status is not None and status not in statuses.current and status not in statuses.not_current:
        known = ", ".join([*statuses.current, *statuses.not_current])
        raise Malformed(res.at("status"), f"{status[:40]!r} is not an R4 encounter status ({known})")
    coding = res.data.get("class")
    if coding is not None:
        if isinstance(coding, list):
            raise Malformed(res.at("class"), "must be one Coding (an object with system and code), not an array "
                            "(R5's list of CodeableConcepts: hipdx reads FHIR R4)")
        if not isinstance(coding, dict):
            raise Malformed(res.at("class"), f"must be a Coding (an object with system and code), not {str(coding)[:40]!r}")
        if "coding" in coding:
            raise Malformed(res.at("class"), "must be a Coding ({system, code}), not a CodeableConcept: "
                            "in R4 Encounter.class is one Coding")
        res.get("system", str, coding, "class.system")
        res.get("code", str, coding, "class.code")
    period = res.get("period", dict)
    if period:
        res.date("start", period, "period.start")
        res.date("end", period, "period.end")
    ctx.encounters.append(res)


def read_setting(ctx: Context, encounter_id: str | None) -> None:
    """Offer the setting from the Encounter the clinician is in, or record the default as assumed (see the module)."""
    if encounter_id is not None:
        named = [e for e in ctx.encounters if e.id == encounter_id]
        for other in ctx.encounters:
            if other.id != encounter_id:
                ctx.skip(other, "", f"not the encounter the clinician is in (Encounter/{encounter_id}, the hook's context)")
        if not named:
            _assume(ctx, f"Encounter/{encounter_id}, the encounter the hook's context names, is not in the record read "
                    "(not prefetched and not fetched, or about another patient)")
            return
        _judge(ctx, [named[0]])
        return
    current = []
    for res in ctx.encounters:
        status = res.data.get("status")
        if status in ctx.t.encounter_statuses.current:
            current.append(res)
        else:
            ctx.skip(res, "status", f"{status or 'no status'}: not an encounter the patient is being seen in now")
    if not current:
        _assume(ctx, "no current Encounter in the record" if not ctx.encounters else
                "no Encounter of the record is current (arrived, triaged, in progress or on leave)")
        return
    _judge(ctx, current)


def _judge(ctx: Context, encounters: list[Resource]) -> None:
    """Offer the setting the encounters agree on; otherwise list each and assume the default."""
    verdicts = [(res, *_verdict(ctx, res)) for res in encounters]
    if len(verdicts) == 1 and verdicts[0][1] is None:
        res, _, element, said = verdicts[0]
        ctx.skip(res, element, said)
        _assume(ctx, f"{res.label}: {said}")
        return
    settings = {setting for _, setting, _, _ in verdicts}
    if len(settings) > 1 or None in settings:
        named = "; ".join(f"{res.label} {said}" for res, _, _, said in verdicts)
        for res, _, element, said in verdicts:
            ctx.skip(res, element, f"one of {len(verdicts)} current encounters that do not agree on a setting ({said}): not guessed")
        _assume(ctx, f"{len(verdicts)} current encounters do not agree on a setting ({named})")
        return
    for res, setting, _, said in verdicts:
        if setting is not None:  # always, here: checked above
            ctx.offer("setting", setting.value, _start(res), res, "class", said)


def _verdict(ctx: Context, res: Resource) -> tuple[Setting | None, str, str]:
    """(setting, element, the class as read) or (None, element, why no setting is read from ``res``)."""
    status = res.data.get("status")
    if status not in ctx.t.encounter_statuses.current:
        return None, "status", f"status {status or 'missing'}: the patient is not being seen in this encounter now"
    period = res.data.get("period") or {}
    start, end = res.date("start", period, "period.start"), res.date("end", period, "period.end")
    if start is not None and start.day is not None and start.day > ctx.today:
        return None, "period.start", f"starts {start.text}, after the assessment date {ctx.today.isoformat()}"
    if end is not None and end.day is not None and end.day < ctx.today:
        return None, "period.end", f"{status} but ended {end.text}, before the assessment date: a stale record"
    coding = res.data.get("class")
    if coding is None:
        return None, "class", "no class (required in R4): the setting cannot be read"
    system, code = coding.get("system"), coding.get("code")
    uri = ctx.t.uri("v3_actcode")
    if not system or not code:
        return None, "class", "the class has no system or no code: the setting cannot be read"
    if system != uri:
        return None, "class.system", f"code system {system[:80]!r} is not HL7 v3 ActCode ({uri}): class {code[:20]!r} is not read"
    entry = ctx.t.encounter_classes.find(system, code)
    if entry is None:
        return None, "class.code", f"ActCode {code[:20]!r} is not an encounter class (v3 ActEncounterCode): not read"
    shown = show_code(system, code, entry.display)
    if entry.setting is None:
        return None, "class", f"{shown}: {entry.note}"
    return entry.setting, "class", shown


def _start(res: Resource) -> dt.date | None:
    period = res.data.get("period") or {}
    start = res.date("start", period, "period.start")
    return start.day if start is not None else None


def _assume(ctx: Context, reason: str) -> None:
    ctx.assumed.append({"field": "setting", "value": DEFAULT.value,
                        "reason": f"{reason.rstrip('.')}; the knowledge base's priors and red-flag urgencies are the outpatient clinic's"})
