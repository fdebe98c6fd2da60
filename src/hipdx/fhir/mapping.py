"""FHIR R4 -> :class:`~hipdx.case.Case`, with the source of every fact and what was left out.

:func:`map_fhir` reads one patient's resources (a Bundle, a resource, or an array of them)
and returns a :class:`FhirMapping`: the case, the resource and element behind each fact
(``sources``) and every resource or element not used, each with its reason (``unmapped``).

Nothing is guessed:

- a number is read only with a unit the code tables accept for it (UCUM code, or a unit
  text the case model accepts); a value without a unit, with a comparator (``<5``) or with
  a ``dataAbsentReason`` is not read;
- a code is read only when the tables list it (with its source); free text is never read;
- a fact is present only from a confirmed record; ``refuted`` makes it absent; unconfirmed,
  provisional, entered-in-error or preliminary records are left out;
- when several records give one fact, the latest (on or before the assessment date) wins
  and the others are listed as superseded.

Policy: lenient with what can be left out (recorded in ``unmapped``), strict with what is
malformed: an element hipdx reads that does not follow FHIR R4 raises
:class:`~hipdx.errors.IntegrationError` naming every such resource and element.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from hipdx.case.model import Case, ImagingStudy
from hipdx.case.parse import problems_from_validation
from hipdx.case.units import QUANTITIES
from hipdx.errors import IntegrationError, Problem
from hipdx.fhir.codes import CodeTables, Finding, MedicationCode, load_code_tables
from hipdx.fhir.jsonread import read_json
from hipdx.fhir.resources import Date, Malformed, Resource, Resources, collect, relative_reference

#: resource types the mapping reads; every other type is listed as not read
READ_TYPES = frozenset(
    {"Patient", "Condition", "Observation", "MedicationStatement", "MedicationRequest", "Medication",
     "DiagnosticReport", "ImagingStudy", "Procedure", "AllergyIntolerance", "Bundle"}
)
_ACTIVE = frozenset({"active", "recurrence", "relapse"})
_OBS_FINAL = frozenset({"final", "amended", "corrected"})
_MED_TAKEN = {
    "MedicationStatement": frozenset({"active", "completed", "on-hold", "stopped"}),
    "MedicationRequest": frozenset({"active", "completed", "on-hold", "stopped"}),
}
_PER_DAY = {"s": 86400.0, "min": 1440.0, "h": 24.0, "d": 1.0, "wk": 1 / 7}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class FactSource(_Out):
    """Where one fact of the case came from."""

    field: str
    resource: str
    element: str
    value: str


class Unmapped(_Out):
    """A resource or element not used, and why."""

    resource: str
    element: str
    reason: str


class FhirMapping(_Out):
    """The case built from FHIR, the source of each fact, and what was left out."""

    case: Case
    patient: str
    assessed_on: dt.date
    sources: list[FactSource]
    unmapped: list[Unmapped]
    code_tables_digest: str


@dataclass
class _Candidate:
    value: Any
    when: dt.date | None
    source: FactSource
    rank: int = 0  # breaks ties between equally dated candidates: higher wins


@dataclass
class _Study:
    key: str
    label: str
    modality: str | None = None
    contrast: bool | None = None
    date: dt.date | None = None
    findings: dict[str, list[_Candidate]] = field(default_factory=dict)
    sources: list[FactSource] = field(default_factory=list)


class _Mapper:
    def __init__(self, resources: Resources, tables: CodeTables, assessed_on: dt.date, patient_id: str | None) -> None:
        self.res = resources
        self.t = tables
        self.today = assessed_on
        self.unmapped: list[Unmapped] = []
        self.problems: list[Problem] = []
        self.candidates: dict[str, list[_Candidate]] = {}
        self.studies: dict[str, _Study] = {}
        self.patient, self.patient_keys = self._choose_patient(patient_id)

    # -- the patient ---------------------------------------------------------------------------

    def _choose_patient(self, patient_id: str | None) -> tuple[Resource | None, set[str]]:
        patients = self.res.of_type("Patient")
        if patient_id is not None:
            chosen = [p for p in patients if p.id == patient_id]
            if not chosen:
                raise IntegrationError(f"no Patient with id {patient_id!r} in the FHIR input")
            patient: Resource | None = chosen[0]
        elif len(patients) == 1:
            patient = patients[0]
        elif len(patients) > 1:
            ids = ", ".join(p.label for p in patients[:10])
            raise IntegrationError(f"the FHIR input holds {len(patients)} patients ({ids}); choose one by its id")
        else:
            patient = None
        if patient is not None:
            keys = {patient.label}
            if patient.full_url:
                keys.add(patient.full_url)
            return patient, keys
        subjects = set()
        for res in self.res:
            ref = self._subject(res)
            if ref:
                subjects.add(relative_reference(ref) or ref)
        if len(subjects) == 1:
            return None, subjects
        if not subjects:
            raise IntegrationError("the FHIR input holds no Patient and no resource about a patient")
        raise IntegrationError(
            f"the FHIR input holds no Patient and resources about {len(subjects)} patients; send one patient's record"
        )

    @staticmethod
    def _subject(res: Resource) -> str | None:
        element = "patient" if res.type in ("AllergyIntolerance",) else "subject"
        if res.type not in READ_TYPES or res.type in ("Patient", "Medication", "Bundle"):
            return None
        try:
            return res.reference(element)
        except Malformed:
            return None

    def _about_patient(self, res: Resource) -> bool:
        element = "patient" if res.type == "AllergyIntolerance" else "subject"
        ref = res.reference(element)
        if ref is None:
            self._skip(res, element, "no subject: cannot tell whose record it is")
            return False
        if ref in self.patient_keys or (relative_reference(ref) or "") in self.patient_keys:
            return True
        self._skip(res, element, f"about another subject ({ref}), not the patient assessed")
        return False

    # -- bookkeeping ---------------------------------------------------------------------------

    def _skip(self, res: Resource | str, element: str, reason: str) -> None:
        label = res.label if isinstance(res, Resource) else res
        self.unmapped.append(Unmapped(resource=label, element=element, reason=reason))

    def _offer(self, fieldname: str, value: Any, when: dt.date | None, res: Resource, element: str, shown: str, rank: int = 0) -> None:
        src = FactSource(field=fieldname, resource=res.label, element=element, value=shown)
        self.candidates.setdefault(fieldname, []).append(_Candidate(value, when, src, rank))

    def _in_future(self, res: Resource, element: str, when: Date | None) -> bool:
        if when is not None and when.day is not None and when.day > self.today:
            self._skip(res, element, f"dated {when.text}, after the assessment date {self.today.isoformat()}")
            return True
        return False

    # -- the walk ------------------------------------------------------------------------------

    def run(self) -> FhirMapping:
        readers: dict[str, Callable[[Resource], None]] = {
            "Condition": self._condition,
            "Observation": self._observation,
            "MedicationStatement": self._medication,
            "MedicationRequest": self._medication,
            "AllergyIntolerance": self._allergy,
            "DiagnosticReport": self._report,
            "ImagingStudy": self._imaging_study,
            "Procedure": self._procedure,
        }
        # reports first: they tell which observations are findings of which study
        self.result_of: dict[str, str] = {}
        order = sorted(self.res, key=lambda r: r.type not in ("ImagingStudy", "DiagnosticReport"))
        for res in order:
            reader = readers.get(res.type)
            if reader is None:
                if res.type not in ("Patient", "Medication", "Bundle"):
                    self._skip(res, "", f"{res.type} is not read by hipdx")
                continue
            try:
                if self._about_patient(res):
                    reader(res)
            except Malformed as bad:
                self.problems.append(bad.problem)
        raw: dict[str, Any] = {"assessed_on": self.today.isoformat()}
        if self.patient is not None:
            raw["id"] = self.patient.label[:200]
            try:
                self._patient(self.patient, raw)
            except Malformed as bad:
                self.problems.append(bad.problem)
        if self.problems:
            raise IntegrationError("the FHIR input is malformed", self.problems)
        sources = self._resolve(raw)
        case = self._validate(raw, sources)
        return FhirMapping(
            case=case,
            patient=self.patient.label if self.patient else next(iter(self.patient_keys)),
            assessed_on=self.today,
            sources=sources,
            unmapped=self.unmapped,
            code_tables_digest=self.t.digest,
        )

    # -- Patient -------------------------------------------------------------------------------

    def _patient(self, res: Resource, raw: dict[str, Any]) -> None:
        gender = res.get("gender", str)
        if gender in ("male", "female"):
            raw["sex"] = gender
            self._sources.append(FactSource(field="sex", resource=res.label, element="gender", value=gender))
        elif gender is not None:
            self._skip(res, "gender", f"administrative gender {gender!r} does not give the sex the model uses")
        birth = res.date("birthDate")
        if birth is None:
            return
        if birth.day is None:
            self._skip(res, "birthDate", f"{birth.text!r} gives no day: the age cannot be computed exactly")
            return
        if birth.day > self.today:
            self._skip(res, "birthDate", f"{birth.text} is after the assessment date")
            return
        years = self.today.year - birth.day.year - ((self.today.month, self.today.day) < (birth.day.month, birth.day.day))
        if years > 120:
            self._skip(res, "birthDate", f"{birth.text} gives an age of {years}, beyond the model's 120 years")
            return
        raw["age_years"] = years
        shown = f"{years} years on {self.today.isoformat()} (born {birth.text})"
        self._sources.append(FactSource(field="age_years", resource=res.label, element="birthDate", value=shown))
        if res.get("deceasedBoolean", bool) or res.get("deceasedDateTime", str):
            self._skip(res, "deceased[x]", "the patient is recorded as deceased; the assessment is of the record")

    _sources: list[FactSource]

    # -- Condition, AllergyIntolerance, Procedure ---------------------------------------------------

    def _record_when(self, res: Resource, *elements: str) -> tuple[Date | None, str]:
        for element in elements:
            when = res.date(element)
            if when is not None:
                return when, element
            if element.endswith("Period"):
                continue
        period = res.get("onsetPeriod", dict)
        if period is not None:
            start = res.date("start", period, "onsetPeriod.start")
            if start is not None:
                return start, "onsetPeriod.start"
        return None, ""

    def _verification(self, res: Resource) -> str | None:
        codes = [c for s, c in res.codings("verificationStatus") if "verification" in s or "ver-status" in s]
        return codes[0] if codes else None

    def _clinical(self, res: Resource) -> str | None:
        codes = [c for s, c in res.codings("clinicalStatus") if "clinical" in s]
        return codes[0] if codes else None

    def _condition(self, res: Resource) -> None:
        codes = res.codings("code")
        if not codes:
            self._skip(res, "code", "no coding (free text is not read)")
            return
        verification = self._verification(res)
        if verification == "entered-in-error":
            self._skip(res, "verificationStatus", "entered in error")
            return
        if verification in ("unconfirmed", "provisional", "differential"):
            self._skip(res, "verificationStatus", f"{verification}: only confirmed conditions are read")
            return
        refuted = verification == "refuted"
        clinical = self._clinical(res)
        when, when_element = self._record_when(res, "onsetDateTime", "recordedDate")
        if self._in_future(res, when_element, when):
            return
        day = when.day if when else None
        for system, code in codes:
            complaint = self.t.complaints.find(system, code)
            if complaint is not None:
                self._complaint(res, complaint, refuted, clinical, when, when_element)
                return
            pregnancy = self.t.pregnancy_conditions.find(system, code)
            if pregnancy is not None:
                if refuted or clinical not in _ACTIVE:
                    value = "not_pregnant" if pregnancy.status == "pregnant" else "pregnant"
                    if refuted:
                        self._offer("pregnancy.status", value, day, res, "verificationStatus", f"refuted {pregnancy.display}")
                    else:
                        self._skip(res, "clinicalStatus", f"{pregnancy.display} is {clinical or 'without clinical status'}, not active")
                    return
                self._offer("pregnancy.status", pregnancy.status, day, res, "code", _shown(system, code, pregnancy.display))
                return
            hit = self.t.fact_codes.find(system, code)
            if hit is not None and res.type in hit.entry.resources:  # type: ignore[attr-defined]
                self._fact(res, hit.entry, system, code, hit.display, refuted, clinical, when)  # type: ignore[attr-defined]
                return
        self._skip(res, "code", f"{_codes_text(codes)} is not in hipdx's code tables")

    def _fact(self, res: Resource, fact: Any, system: str, code: str, display: str, refuted: bool, clinical: str | None, when: Date | None) -> None:
        day = when.day if when else None
        if refuted:
            value = "absent" if fact.value == "present" else "present"
            self._offer(fact.field, value, day, res, "verificationStatus", f"refuted: {_shown(system, code, display)}")
            return
        if not fact.history:
            if clinical is None and res.type == "Condition":
                self._skip(res, "clinicalStatus", f"not given: cannot tell whether {display} is current")
                return
            if clinical is not None and clinical not in _ACTIVE:
                self._skip(res, "clinicalStatus", f"{display} is {clinical}; {fact.field} asks about the present")
                return
        if fact.within_days is not None:
            if day is None:
                self._skip(res, "onset[x]", f"{display} has no date; {fact.field} counts only the last {fact.within_days} days")
                return
            if (self.today - day).days > fact.within_days:
                self._skip(res, "onset[x]", f"{display} on {day.isoformat()} is older than the {fact.within_days} days {fact.field} counts")
                return
        self._offer(fact.field, fact.value, day, res, "code", _shown(system, code, display), rank=1)

    def _complaint(self, res: Resource, complaint: Any, refuted: bool, clinical: str | None, when: Date | None, when_element: str) -> None:
        if refuted:
            self._skip(res, "verificationStatus", "hip pain refuted")
            return
        if clinical is not None and clinical not in _ACTIVE:
            self._skip(res, "clinicalStatus", f"hip pain is {clinical}, not the current episode")
            return
        if complaint.side != "unknown":
            self._offer("side", complaint.side, when.day if when else None, res, "code", _shown(self.t.uri(complaint.system), complaint.code, complaint.display))
        onset = res.date("onsetDateTime")
        if onset is None:
            self._skip(res, "onset[x]", "hip pain without an onsetDateTime: the time since onset stays unknown")
        elif onset.day is None:
            self._skip(res, "onsetDateTime", f"{onset.text!r} gives no day: the time since onset stays unknown")
        else:
            self._offer("onset.date", onset.day.isoformat(), onset.day, res, "onsetDateTime", onset.text)

    def _allergy(self, res: Resource) -> None:
        verification = self._verification(res)
        if verification == "entered-in-error" or verification == "unconfirmed":
            self._skip(res, "verificationStatus", f"{verification}: only confirmed allergies are read")
            return
        codes = res.codings("code")
        when, element = self._record_when(res, "onsetDateTime", "recordedDate")
        if self._in_future(res, element, when):
            return
        for system, code in codes:
            hit = self.t.fact_codes.find(system, code)
            if hit is not None and "AllergyIntolerance" in hit.entry.resources:  # type: ignore[attr-defined]
                self._fact(res, hit.entry, system, code, hit.display, verification == "refuted", None, when)  # type: ignore[attr-defined]
                return
        self._skip(res, "code", f"{_codes_text(codes) or 'no coding'} is not in hipdx's code tables")

    def _procedure(self, res: Resource) -> None:
        codes = res.codings("code")
        self._skip(res, "code", f"{_codes_text(codes) or 'no coding'}: hipdx's tables hold no procedure codes yet")

    # -- Observation -----------------------------------------------------------------------------

    def _obs_when(self, res: Resource) -> tuple[Date | None, str]:
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

    def _observation(self, res: Resource) -> None:
        status = res.get("status", str)
        if status not in _OBS_FINAL:
            self._skip(res, "status", f"status {status!r}: only final, amended or corrected results are read")
            return
        codes = res.codings("code")
        when, when_element = self._obs_when(res)
        if self._in_future(res, when_element, when):
            return
        day = when.day if when else None
        hipdx_findings = self.t.uri("hipdx_finding")
        for system, code in codes:
            if system == hipdx_findings:
                finding = self.t.findings.get(code)
                if finding is None:
                    self._skip(res, "code", f"{code!r} is not a code of hipdx's finding code system")
                    return
                self._finding(res, finding, day)
                return
            quantity = self.t.quantity_codes.find(system, code)
            if quantity is not None:
                self._quantity(res, quantity.entry, res.data, "", day, _shown(system, code, quantity.display))  # type: ignore[attr-defined]
                return
            answer = self.t.answer_codes.find(system, code)
            if answer is not None:
                self._answer(res, answer.entry, day)  # type: ignore[attr-defined]
                return
        for i, component in enumerate(res.objects("component")):
            for system, code in res.codings("code", component, f"component[{i}].code"):
                quantity = self.t.quantity_codes.find(system, code)
                if quantity is not None:
                    self._quantity(res, quantity.entry, component, f"component[{i}].", day, _shown(system, code, quantity.display))  # type: ignore[attr-defined]
                    return
        self._skip(res, "code", f"{_codes_text(codes) or 'no coding'} is not in hipdx's code tables")

    def _quantity(self, res: Resource, entry: Any, node: dict[str, Any], prefix: str, day: dt.date | None, what: str) -> None:
        window = self.t.windows.get(entry.quantity)
        if day is None:
            self._skip(res, "effective[x]", f"{what}: no date, so it cannot be placed in this episode")
            return
        if window is not None and (self.today - day).days > window:
            self._skip(res, "effective[x]", f"{what} of {day.isoformat()} is older than the {window} days read for it")
            return
        if res.get("dataAbsentReason", dict, node, prefix + "dataAbsentReason") is not None:
            self._skip(res, prefix + "dataAbsentReason", f"{what}: no value (data absent)")
            return
        number, shown = self._number(res, entry, node, prefix, what)
        if number is None:
            return
        if entry.quantity == "gestational_age":
            number = number + (self.today - day).days / 7
            shown += f", {number:.1f} weeks on {self.today.isoformat()}"
            if number > 44:
                self._skip(res, prefix + "valueQuantity", f"{what}: {number:.1f} weeks by the assessment date; the pregnancy has ended")
                return
            self._offer("pregnancy.status", "pregnant", day, res, prefix + "valueQuantity", f"gestational age recorded ({what})")
        self._offer(entry.field, number, day, res, prefix + "valueQuantity", f"{shown} ({what}, {day.isoformat()})")

    def _number(self, res: Resource, entry: Any, node: dict[str, Any], prefix: str, what: str) -> tuple[Any, str]:
        """The value in the unit the case takes: a Measurement dict for labs, a float otherwise."""
        element = prefix + "valueQuantity"
        q = res.get("valueQuantity", dict, node, element)
        if q is None:
            for alt in ("valueInteger", "valueDecimal"):
                if alt in node and entry.unitless:
                    value = res.get(alt, (int, float), node, prefix + alt)
                    return float(value), f"{value:g}"
            present = next((k for k in node if k.startswith("value")), None)
            self._skip(res, prefix + (present or "value[x]"), f"{what}: {'a ' + present if present else 'no value'}, not a quantity")
            return None, ""
        value = res.get("value", (int, float), q, element + ".value")
        if value is None:
            self._skip(res, element, f"{what}: a quantity without a value")
            return None, ""
        if res.get("comparator", str, q, element + ".comparator"):
            self._skip(res, element + ".comparator", f"{what}: {q['comparator']}{value:g} is a bound, not a value")
            return None, ""
        system = res.get("system", str, q, element + ".system")
        code = res.get("code", str, q, element + ".code")
        text = res.get("unit", str, q, element + ".unit")
        ucum = self.t.uri("ucum")
        if entry.quantity in self.t.plain_units:
            plain = self.t.plain_units[entry.quantity]
            unit = code if system == ucum else None
            if unit is None and entry.unitless and code is None and text is None:
                unit = "1"
            if unit not in plain.accept:
                self._skip(res, element, f"{what}: unit {(code or text)!r} is not one of {', '.join(plain.accept)} (UCUM)")
                return None, ""
            return value * plain.accept[unit], f"{value:g} {unit}"
        accepted = self.t.units[entry.quantity]
        if system == ucum and code is not None:
            unit = accepted.get(code)
        elif text is not None and text in QUANTITIES[entry.quantity].accepted_units:
            unit = text
        else:
            unit = None
        if unit is None:
            given = code or text
            reason = "no unit: a number without its unit is not read" if given is None else (
                f"unit {given!r} is not accepted for {entry.field} (UCUM: {', '.join(accepted)})"
            )
            self._skip(res, element, f"{what}: {reason}")
            return None, ""
        if entry.field == "weight_kg":
            return QUANTITIES["weight"].to_canonical(value, unit), f"{value:g} {unit}"
        return {"value": value, "unit": unit}, f"{value:g} {unit}"

    def _answer(self, res: Resource, entry: Any, day: dt.date | None) -> None:
        values = res.codings("valueCodeableConcept")
        for system, code in values:
            for answer in entry.values:
                if self.t.uri(answer.system) == system and answer.code == code:
                    if answer.value == "unknown":
                        self._skip(res, "valueCodeableConcept", f"{answer.display}: the fact stays unknown")
                        return
                    self._offer(entry.field, answer.value, day, res, "valueCodeableConcept", _shown(system, code, answer.display))
                    return
        self._skip(res, "valueCodeableConcept", f"{_codes_text(values) or 'no coded answer'} is not an answer hipdx reads")

    def _finding(self, res: Resource, finding: Finding, day: dt.date | None) -> None:
        value, shown = self._finding_value(res, finding)
        if value is None:
            return
        if not finding.code.startswith("imaging."):
            self._offer(finding.code, value, day, res, _value_element(res), shown)
            return
        study = self._study_of(res)
        if study is None:
            self._skip(res, "derivedFrom", f"imaging finding {finding.code} is not linked to an ImagingStudy or an imaging DiagnosticReport")
            return
        src = FactSource(field=f"imaging[{study.label}].{finding.code[8:]}", resource=res.label, element=_value_element(res), value=shown)
        study.findings.setdefault(finding.code[8:], []).append(_Candidate(value, day, src))

    def _finding_value(self, res: Resource, finding: Finding) -> tuple[Any, str]:
        element = _value_element(res)
        if finding.kind == "number":
            q = res.get("valueQuantity", dict)
            if q is None:
                self._skip(res, element, f"{finding.code}: needs a valueQuantity in {finding.unit}")
                return None, ""
            value = res.get("value", (int, float), q, "valueQuantity.value")
            code = res.get("code", str, q, "valueQuantity.code")
            system = res.get("system", str, q, "valueQuantity.system")
            if value is None or code != finding.unit or system != self.t.uri("ucum"):
                self._skip(res, "valueQuantity", f"{finding.code}: needs a value in UCUM {finding.unit!r}")
                return None, ""
            return value, f"{value:g} {finding.unit}"
        if finding.kind == "presence" and "valueBoolean" in res.data:
            flag = res.get("valueBoolean", bool)
            return ("present" if flag else "absent"), str(flag).lower()
        codes = res.codings("valueCodeableConcept")
        local = self.t.uri("hipdx_value")
        for system, code in codes:
            if system == local:
                allowed = finding.values if finding.kind == "choice" else ["present", "absent", "unknown"]
                if code in allowed or code == "unknown":
                    return code, code
                self._skip(res, "valueCodeableConcept", f"{code!r} is not a value of {finding.code} ({', '.join(allowed)})")
                return None, ""
            if finding.kind == "presence":
                hit = self.t.presence_values.find(system, code)
                if hit is not None:
                    return hit.value, _shown(system, code, hit.display)
        self._skip(res, element, f"{finding.code}: {_codes_text(codes) or 'no coded value'} is not a value hipdx reads")
        return None, ""

    # -- imaging --------------------------------------------------------------------------------

    def _modality_from(self, res: Resource, codes: Iterable[tuple[str, str]]) -> tuple[Any, str] | None:
        for system, code in codes:
            hit = self.t.modalities.find(system, code)
            if hit is not None:
                return hit, _shown(system, code, hit.display)
        return None

    def _imaging_study(self, res: Resource) -> None:
        study = self.studies.setdefault(res.label, _Study(res.label, res.id or res.label))
        codes = []
        for i, coding in enumerate(res.objects("modality")):
            system, code = res.get("system", str, coding, f"modality[{i}].system"), res.get("code", str, coding, f"modality[{i}].code")
            if system and code:
                codes.append((system, code))
        for i, series in enumerate(res.objects("series")):
            coding = res.get("modality", dict, series, f"series[{i}].modality")
            if coding:
                system = res.get("system", str, coding, f"series[{i}].modality.system")
                code = res.get("code", str, coding, f"series[{i}].modality.code")
                if system and code:
                    codes.append((system, code))
        found = {self._modality_from(res, [c]) for c in dict.fromkeys(codes)} - {None}
        modalities = {hit.modality for hit, _ in found}  # type: ignore[union-attr]
        if len(modalities) == 1:
            hit, shown = next(iter(found))  # type: ignore[misc]
            study.modality = hit.modality
            study.sources.append(FactSource(field=f"imaging[{study.label}].modality", resource=res.label, element="modality", value=shown))
        elif len(modalities) > 1:
            self._skip(res, "modality", f"several modalities ({', '.join(sorted(modalities))}) in one study")
        started = res.date("started")
        if started is not None and started.day is not None:
            if started.day > self.today:
                self._skip(res, "started", f"{started.text} is after the assessment date")
                del self.studies[res.label]
                return
            study.date = started.day
            study.sources.append(FactSource(field=f"imaging[{study.label}].date", resource=res.label, element="started", value=started.text))

    def _report(self, res: Resource) -> None:
        studies = [ref for _, ref in res.references("imagingStudy")]
        status = res.get("status", str)
        if status not in _OBS_FINAL:
            self._skip(res, "status", f"status {status!r}: only final, amended or corrected reports are read")
            return
        modality = self._modality_from(res, res.codings("code"))
        if not studies and modality is None:
            self._skip(res, "code", "not an imaging report hipdx reads (no ImagingStudy and no imaging code of its tables)")
            return
        if len(studies) > 1:
            self._skip(res, "imagingStudy", "reports on several imaging studies: its results cannot be placed on one")
            return
        if studies:
            target = self.res.resolve(studies[0], res)
            key = target.label if isinstance(target, Resource) else (relative_reference(studies[0]) or studies[0])
        else:
            key = res.label
        study = self.studies.setdefault(key, _Study(key, key.split("/")[-1]))
        if modality is not None:
            hit, shown = modality
            if study.modality is None:
                study.modality = hit.modality
                study.sources.append(FactSource(field=f"imaging[{study.label}].modality", resource=res.label, element="code", value=shown))
            elif study.modality != hit.modality:
                self._skip(res, "code", f"says {hit.modality}, but the ImagingStudy says {study.modality}")
            if hit.contrast is not None:
                study.contrast = hit.contrast
                study.sources.append(FactSource(field=f"imaging[{study.label}].contrast", resource=res.label, element="code", value=shown))
        when, element = self._obs_when(res)
        if when is not None and when.day is not None and study.date is None:
            if when.day > self.today:
                self._skip(res, element, f"{when.text} is after the assessment date")
                return
            study.date = when.day
            study.sources.append(FactSource(field=f"imaging[{study.label}].date", resource=res.label, element=element, value=when.text))
        for element, ref in res.references("result"):
            target = self.res.resolve(ref, res)
            label = target.label if isinstance(target, Resource) else (relative_reference(ref) or ref)
            self.result_of[label] = study.key
        for i, concept in enumerate(res.objects("conclusionCode")):
            for system, code in res.codings(f"conclusionCode[{i}]", {f"conclusionCode[{i}]": concept}):
                self._skip(res, f"conclusionCode[{i}]", f"{system}|{code}: a coded diagnosis is a conclusion, not a finding hipdx reasons from")

    def _study_of(self, res: Resource) -> _Study | None:
        key = self.result_of.get(res.label)
        if key is None:
            for element in ("derivedFrom", "partOf"):
                for _, ref in res.references(element):
                    target = self.res.resolve(ref, res)
                    label = target.label if isinstance(target, Resource) else relative_reference(ref)
                    if label and label.startswith("ImagingStudy/") or (isinstance(target, Resource) and target.type == "ImagingStudy"):
                        key = label
                        break
                if key:
                    break
        if key is None:
            return None
        return self.studies.setdefault(key, _Study(key, key.split("/")[-1]))

    # -- medications ---------------------------------------------------------------------------

    def _medication(self, res: Resource) -> None:
        status = res.get("status", str)
        if status not in _MED_TAKEN[res.type]:
            self._skip(res, "status", f"status {status!r}: not a medicine the patient takes or took")
            return
        if res.type == "MedicationRequest" and res.get("intent", str) in ("proposal", "plan"):
            self._skip(res, "intent", f"intent {res.data['intent']!r}: not prescribed")
            return
        codes, element = self._medication_codes(res)
        hit = None
        for system, code in codes:
            hit = self.t.medications.find(system, code)
            if hit is not None:
                shown = _shown(system, code, hit.display)
                break
        if hit is None:
            self._skip(res, element, f"{_codes_text(codes) or 'no coding'} is not in hipdx's medication tables")
            return
        if hit.drug_class == "not_systemic":
            self._skip(res, element, f"{shown}: not a systemic medicine")
            return
        dosages = res.objects("dosage" if res.type == "MedicationStatement" else "dosageInstruction")
        dosage_element = "dosage" if res.type == "MedicationStatement" else "dosageInstruction"
        if hit.systemic == "by_route" and not self._systemic_route(res, dosages, dosage_element):
            self._skip(res, f"{dosage_element}.route", f"{shown}: also made for local use, and no systemic route is given")
            return
        start, end, when_element = self._medication_period(res, dosages, dosage_element)
        if start is not None and start > self.today:
            self._skip(res, when_element, f"starts {start.isoformat()}, after the assessment date")
            return
        last = end or start
        if last is not None and (self.today - last).days > self.t.exposure_window_days and (end is not None):
            self._skip(res, when_element, f"{shown} ended {end.isoformat()}, more than {self.t.exposure_window_days} days before the assessment")
            return
        when = start or end
        target = {
            "systemic_corticosteroid": "risk_factors.corticosteroids.status",
            "immunosuppressant": "risk_factors.immunosuppression",
            "anticoagulant": "comorbidities.anticoagulant_use",
        }[hit.drug_class]
        self._offer(target, "present", when, res, element, shown, rank=1)
        if hit.drug_class == "systemic_corticosteroid":
            self._steroid_dose(res, hit, dosages, dosage_element, shown, when)
            if start is not None:
                weeks = ((end or self.today) - start).days / 7
                if weeks > 0:
                    self._offer("risk_factors.corticosteroids.duration_weeks", round(weeks, 1), when, res, when_element, f"{weeks:.1f} weeks from {start.isoformat()}")

    def _medication_codes(self, res: Resource) -> tuple[list[tuple[str, str]], str]:
        if "medicationCodeableConcept" in res.data:
            return res.codings("medicationCodeableConcept"), "medicationCodeableConcept"
        ref = res.reference("medicationReference")
        if ref is None:
            return [], "medication[x]"
        target = self.res.resolve(ref, res)
        if target is None:
            return [], "medicationReference"
        med = target if isinstance(target, Resource) else Resource("Medication", target.get("id"), target, None, f"{res.label}#{target.get('id')}")
        codes = med.codings("code")
        for i, ingredient in enumerate(med.objects("ingredient")):
            codes += med.codings("itemCodeableConcept", ingredient, f"ingredient[{i}].itemCodeableConcept")
        return codes, "medicationReference"

    def _systemic_route(self, res: Resource, dosages: list[dict[str, Any]], element: str) -> bool:
        for i, dosage in enumerate(dosages):
            for system, code in res.codings("route", dosage, f"{element}[{i}].route"):
                if self.t.systemic_routes.find(system, code) is not None:
                    return True
        return False

    def _medication_period(self, res: Resource, dosages: list[dict[str, Any]], element: str) -> tuple[dt.date | None, dt.date | None, str]:
        if res.type == "MedicationStatement":
            when = res.date("effectiveDateTime")
            if when is not None:
                return when.day, None, "effectiveDateTime"
            period = res.get("effectivePeriod", dict)
            if period is not None:
                start, end = res.date("start", period, "effectivePeriod.start"), res.date("end", period, "effectivePeriod.end")
                return (start.day if start else None), (end.day if end else None), "effectivePeriod"
            return None, None, "effective[x]"
        for i, dosage in enumerate(dosages):
            timing = res.get("timing", dict, dosage, f"{element}[{i}].timing")
            repeat = res.get("repeat", dict, timing, f"{element}[{i}].timing.repeat") if timing else None
            bounds = res.get("boundsPeriod", dict, repeat, f"{element}[{i}].timing.repeat.boundsPeriod") if repeat else None
            if bounds:
                start = res.date("start", bounds, f"{element}[{i}].timing.repeat.boundsPeriod.start")
                end = res.date("end", bounds, f"{element}[{i}].timing.repeat.boundsPeriod.end")
                return (start.day if start else None), (end.day if end else None), f"{element}[{i}].timing.repeat.boundsPeriod"
        return None, None, f"{element}.timing.repeat.boundsPeriod"

    def _steroid_dose(self, res: Resource, hit: MedicationCode, dosages: list[dict[str, Any]], element: str, shown: str, when: dt.date | None) -> None:
        if hit.prednisolone_factor is None:
            self._skip(res, element, f"{shown}: the ingredient is not named, so no prednisolone-equivalent dose")
            return
        if len(dosages) != 1:
            self._skip(res, element, f"{shown}: {len(dosages)} dosage lines; the daily dose is read from exactly one")
            return
        dosage, at = dosages[0], f"{element}[0]"
        dose = None
        for j, dr in enumerate(res.objects("doseAndRate", dosage, f"{at}.doseAndRate")):
            q = res.get("doseQuantity", dict, dr, f"{at}.doseAndRate[{j}].doseQuantity")
            if q is not None:
                value = res.get("value", (int, float), q, f"{at}.doseAndRate[{j}].doseQuantity.value")
                unit = res.get("code", str, q, f"{at}.doseAndRate[{j}].doseQuantity.code")
                if value is not None and unit == "mg" and res.get("system", str, q) == self.t.uri("ucum"):
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
            self._skip(res, f"{at}.doseAndRate", f"{shown}: no dose in UCUM mg with a frequency per period; the dose stays unknown")
            return
        mg = round(dose * per_day * hit.prednisolone_factor, 2)
        text = f"{dose:g} mg x {per_day:g}/day x {hit.prednisolone_factor:g} = {mg:g} mg/day prednisolone equivalent"
        self._offer("risk_factors.corticosteroids.dose_mg_per_day", mg, when, res, f"{at}.doseAndRate", text)

    # -- resolving candidates into the case ------------------------------------------------------

    def _resolve(self, raw: dict[str, Any]) -> list[FactSource]:
        sources = list(self._sources)
        for fieldname, options in self.candidates.items():
            chosen = _latest(options)
            for other in options:
                if other is not chosen and other.value != chosen.value:
                    self._skip(other.source.resource, other.source.element, f"{fieldname} = {_brief(other.value)} superseded by {chosen.source.resource} ({_brief(chosen.value)}, the latest)")
            _put(raw, fieldname, chosen.value)
            sources.append(chosen.source)
        if "risk_factors" in raw and "corticosteroids" in raw["risk_factors"]:
            steroids = raw["risk_factors"]["corticosteroids"]
            if steroids.get("status") == "absent":
                for key in ("dose_mg_per_day", "duration_weeks"):
                    if steroids.pop(key, None) is not None:
                        self._skip("(case)", f"risk_factors.corticosteroids.{key}", "a dose from a medicine record conflicts with a refuted steroid use; left out")
        studies = []
        onset = raw.get("onset", {}).get("date")
        for study in self.studies.values():
            built = self._study(study, onset)
            if built is not None:
                studies.append(built)
                sources += study.sources
                sources += [c.source for options in study.findings.values() for c in [_latest(options)]]
        studies.sort(key=lambda s: (s[0].get("date") or ""))
        if studies:
            raw["imaging"] = [s[0] for s in studies[:50]]
        return sources

    def _study(self, study: _Study, onset: str | None) -> tuple[dict[str, Any], _Study] | None:
        if not study.findings:
            if study.modality is not None:
                self._skip(study.key, "", "an imaging study without coded findings hipdx reads")
            return None
        if study.modality is None:
            self._skip(study.key, "modality", "the study's modality is not coded (DICOM modality or an imaging report code): its findings cannot be read")
            return None
        if onset and study.date and study.date.isoformat() < onset:
            self._skip(study.key, "started", f"{study.date.isoformat()} is before the onset of this episode ({onset})")
            return None
        raw: dict[str, Any] = {"modality": study.modality, "findings": {}}
        if study.contrast:
            raw["contrast"] = True
        if study.date:
            raw["date"] = study.date.isoformat()
        for name, options in study.findings.items():
            chosen = _latest(options)
            raw["findings"][name] = chosen.value
        try:
            ImagingStudy.model_validate(raw)
        except ValidationError as exc:
            reasons = "; ".join(str(p) for p in problems_from_validation(exc))
            self._skip(study.key, "", f"the study's findings do not fit together: {reasons}")
            return None
        return raw, study

    def _validate(self, raw: dict[str, Any], sources: list[FactSource]) -> Case:
        try:
            return Case.model_validate(raw)
        except ValidationError as exc:
            problems = []
            for problem in problems_from_validation(exc):
                origin = [s for s in sources if s.field.split("[")[0] == problem.field.split(".")[0] or s.field == problem.field]
                named = f" (from {', '.join(sorted({s.resource + '.' + s.element for s in origin})[:3])})" if origin else ""
                problems.append(Problem(problem.field, problem.reason + named))
            raise IntegrationError("the facts read from FHIR do not make a valid case", problems) from None


def _latest(options: list[_Candidate]) -> _Candidate:
    return max(options, key=lambda c: (c.when or dt.date.min, c.rank, c.value == "present"))


def _put(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _brief(value: Any) -> str:
    if isinstance(value, dict) and "value" in value:
        return f"{value['value']:g} {value['unit']}"
    return str(value)


def _shown(system: str, code: str, display: str) -> str:
    return f"{system}|{code} {display}"


def _codes_text(codes: list[tuple[str, str]]) -> str:
    return ", ".join(f"{s}|{c}" for s, c in codes[:4])


def _value_element(res: Resource) -> str:
    return next((k for k in res.data if k.startswith("value")), "value[x]")


def map_fhir(
    data: Any,
    assessed_on: dt.date,
    *,
    patient_id: str | None = None,
    tables: CodeTables | None = None,
) -> FhirMapping:
    """Map one patient's FHIR R4 resources to a case.

    Parameters
    ----------
    data
        Decoded JSON: a Bundle (any type; nested Bundles are walked), one resource, or an
        array of resources. Use :func:`read_fhir` for JSON text.
    assessed_on
        The date of the assessment: the age is counted to it, later records are left out.
    patient_id
        The Patient to map when the input holds several.
    tables
        The code tables (default: the bundled ones).

    Raises
    ------
    IntegrationError
        Not FHIR; several patients and no ``patient_id``; an element hipdx reads is
        malformed (each named as ``Type/id.element``); or the facts read contradict each
        other in a way the case model refuses.

    Examples
    --------
    >>> bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
    ...     {"resource": {"resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1980-05-01"}}]}
    >>> m = map_fhir(bundle, dt.date(2026, 11, 20))
    >>> m.case.age_years, m.case.sex.value, m.sources[0].resource
    (46.0, 'male', 'Patient/p')
    """
    mapper = _Mapper(collect(data), tables or load_code_tables(), assessed_on, patient_id)
    mapper._sources = []
    return mapper.run()


def read_fhir(raw: str | bytes, assessed_on: dt.date, *, patient_id: str | None = None, what: str = "the FHIR input") -> FhirMapping:
    """:func:`map_fhir` on JSON text, read strictly (a key given twice is refused)."""
    return map_fhir(read_json(raw, what), assessed_on, patient_id=patient_id)
