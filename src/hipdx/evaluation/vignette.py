"""One literature vignette to one :class:`~hipdx.case.Case`, leniently and transparently.

The vignette format is described in ``shared/evaluation/README.md``. Its conventions carry
over unchanged: a key the source did not report is left out, so it stays *not known* in the
case, never *absent*; a boolean ``false`` is an explicit *absent*. Each fact of the record is
either used (and the list says which case field it became, and by which rule) or skipped
(and the list says why). A value the case model refuses (an implausible number, a finding
that cannot be seen on that modality) is skipped with the model's own reason; it never stops
the mapping.

Rules worth knowing (``docs/evaluation.md`` lists them all):

- ``pregnancy.status = peripartum`` becomes ``pregnant``: the knowledge base scores
  pregnancy and the puerperium as one state, and ``pregnant`` keeps the radiation and
  contrast warnings of the next-test advice.
- Laboratory strings give a value only when a number and an accepted unit are printed.
  A result printed only in words (``"elevated"``, ``"normal"``, ``"afebrile"``, ``"fever
  reported"``) becomes ``labs.qualitative`` (raised or normal), never a number; anything
  vaguer is skipped.
- ``fracture_line`` counts as a femoral-neck fracture line only when the study's findings
  text names the neck; a ``mass`` counts as a bone lesion unless the text places it in the
  soft tissues or the joint.
- A study whose findings are all normal or absent, after an earlier abnormal study of the
  same modality, documents recovery rather than the presentation and is left out.
- Studies of an unspecified modality (``multimodal``, ``other``) keep only the findings
  that radiograph, CT and MRI all show alike; ``pet_ct`` is read as its CT.

Examples
--------
>>> case, used, skipped = vignette_to_case({"id": "v1", "patient": {"age_years": 40, "sex": "male"},
...                                          "history": {"limp_or_antalgic_gait": False}})
>>> case.limp.value, case.pain.at_night.value
('absent', 'unknown')
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from hipdx.case import Case
from hipdx.errors import IntegrationError
from hipdx.evaluation.draft import NARRATIVE_KEYS, Draft, number, presence
from hipdx.evaluation.imaging import map_imaging
from hipdx.evaluation.text import age_from_text, read_lab, read_qualitative, read_t_score
from hipdx.jsonio import printable

Mapped = tuple[Case, list[str], list[str]]

#: Keys that describe the publication or the answer, not the patient at presentation.
#: They are neither used nor listed as skipped.
NOT_EVIDENCE = frozenset(
    {"id", "source", "source_coverage", "curator_notes", "final_diagnosis", "initial_misdiagnosis", "toh_confusion"}
)
#: Keys that report the course or the reference standard; reading them would reveal the answer.
HINDSIGHT = ("other_investigations", "treatment", "outcome")

_PREGNANCY = {
    "pregnant": "pregnant",
    "postpartum": "postpartum",
    "peripartum": "pregnant",
    "not_pregnant": "not_pregnant",
}
_SIDE = {
    "left": "left",
    "right": "right",
    "bilateral": "both",
    "bilateral_simultaneous": "both",
    "bilateral_sequential": "both",
}
_TRAUMA = {"none": "none", "minor": "minor"}
_PAIN = {
    "weight_bearing_pain": "weight_bearing",
    "pain_at_rest": "at_rest",
    "night_pain": "at_night",
    "relieved_by_rest": "relieved_by_lying_down",
}
_RISK_FACTORS = {
    "corticosteroids": ("corticosteroids", "status"),
    "alcohol": ("alcohol_excess",),
    "smoking": ("smoking",),
    "sle": ("sle",),
    "hiv": ("hiv",),
    "bariatric_surgery": ("bariatric_surgery",),
    "low_bmd_or_osteoporosis": ("osteoporosis",),
    "prior_episodes_other_joints": ("prior_episodes_other_joints",),
}
_LABS = ("esr", "crp", "wbc", "temperature", "vitamin_d", "calcium", "alp")

#: Clear terms in ``risk_factors.other`` and ``history.other_history`` and the case field (a
#: risk factor or a finding) each one establishes as present. Only present is ever inferred,
#: never absent.
HISTORY_TERMS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"\bcancer|carcinoma|metasta", re.I), "risk_factors.cancer_history", "a history of cancer"),
    (
        re.compile(r"\brun(?:s|ning|ners?)?\b|\bjog(?:s|ging|gers?)?\b|marathon|military|recruit", re.I),
        "risk_factors.repetitive_loading",
        "running, marching or recruit training",
    ),
    (
        re.compile(r"rheumatoid|spondyl|psoria", re.I),
        "risk_factors.inflammatory_disease",
        "rheumatoid, spondyloarthritis or psoriatic disease",
    ),
    (re.compile(r"transplant|immunosuppress", re.I),
        "risk_factors.immunosuppression",
        "transplantation or immunosuppression"),
    (
        re.compile(
            r"intravenous drug|injecti(?:ng|on)[- ]drug|\bIVDU\b|\bPWID\b"
            r"|\binject(?:s|ed|ing)\b[^.;]*\b(?:heroin|cocaine|drugs|femoral|groin)",
            re.I,
        ),
        "risk_factors.injection_drug_use",
        "injecting drugs",
    ),
    (
        re.compile(
            r"\b(?:poly|oligo)(?:arthritis|articular)\b"
            r"|\barthritis (?:first )?(?:in|of) (?:the |both )?(?:left |right )?"
            r"(?:shoulder|elbow|wrist|hand|finger|knee|ankle|foot|feet|toe)s?\b"
            r"|\b(?:two|three|four|several|multiple) (?:painful|swollen|inflamed) joints\b",
            re.I,
        ),
        "other_joint_arthritis",
        "arthritis of another joint in the same illness",
    ),
)
_NEGATED = re.compile(
    r"\b(?:no|not|without|denie[sd]|negative|excluded|absent|never|free of|possible|possibly|suspected|"
    r"query|ruled? out|rather than|alternative)\b|\?",
    re.I,
)


def _section(record: Mapping[str, Any], key: str, draft: Draft) -> Mapping[str, Any]:
    section = record.get(key)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        draft.skip(key, section, "expected an object")
        return {}
    return section


# --- patient and history -------------------------------------------------------------


def _patient(patient: Mapping[str, Any], draft: Draft) -> None:
    if "sex" in patient:
        sex = patient["sex"]
        if sex in ("female", "male"):
            draft.offer("patient.sex", sex, ("sex",), sex)
        else:
            draft.skip("patient.sex", sex, "not 'female' or 'male'")
    age = number(patient.get("age_years"))
    if age is not None:
        draft.offer("patient.age_years", patient["age_years"], ("age_years",), age)
    elif "age_years" in patient:
        draft.skip("patient.age_years", patient["age_years"], "not a number")
    if age is None and isinstance(patient.get("age_text"), str):
        value, reason = age_from_text(patient["age_text"])
        if value is None:
            draft.skip("patient.age_text", patient["age_text"], reason)
        else:
            draft.offer("patient.age_text", patient["age_text"], ("age_years",), value, "the one age printed")
    if "side" in patient:
        side = patient["side"]
        if isinstance(side, str) and side in _SIDE:
            draft.offer("patient.side", side, ("side",), _SIDE[side])
        else:
            draft.skip("patient.side", side, "side not stated" if side == "not_stated" else "not a side hipdx knows")
    pregnancy = patient.get("pregnancy")
    if isinstance(pregnancy, Mapping):
        _pregnancy(pregnancy, draft)


def _pregnancy(pregnancy: Mapping[str, Any], draft: Draft) -> None:
    status = pregnancy.get("status")
    src = "patient.pregnancy.status"
    if isinstance(status, str) and status in _PREGNANCY:
        rule = "pregnancy and the puerperium are one state of the knowledge base" if status == "peripartum" else ""
        draft.offer(src, status, ("pregnancy", "status"), _PREGNANCY[status], rule)
    elif status == "not_applicable" and draft.data.get("sex") == "female":
        draft.offer(src, status, ("pregnancy", "status"), "not_pregnant", "not applicable in a woman: not pregnant")
    elif status is not None:
        draft.skip(
            src, status, "says nothing beyond sex" if status == "not_applicable" else "pregnancy status not stated"
        )
    for key, field in (("gestational_weeks", "gestational_weeks"), ("postpartum_weeks", "postpartum_weeks")):
        if key in pregnancy:
            weeks = number(pregnancy[key])
            if weeks is None:
                draft.skip(f"patient.pregnancy.{key}", pregnancy[key], "not a number")
            else:
                draft.offer(f"patient.pregnancy.{key}", pregnancy[key], ("pregnancy", field), weeks)
    if "trimester" in pregnancy:
        draft.skip(
            "patient.pregnancy.trimester", pregnancy["trimester"], "a trimester is not turned into weeks of gestation"
        )


def _history(history: Mapping[str, Any], draft: Draft) -> None:
    if "onset" in history:
        onset = history["onset"]
        if onset in ("sudden", "gradual"):
            draft.offer("history.onset", onset, ("onset", "type"), onset)
        else:
            draft.skip("history.onset", onset, "not 'sudden' or 'gradual'")
    if "trauma" in history:
        trauma = history["trauma"]
        if isinstance(trauma, str) and trauma in _TRAUMA:
            draft.offer("history.trauma", trauma, ("trauma",), _TRAUMA[trauma])
        elif trauma == "remote_minor":
            draft.skip(
                "history.trauma", trauma, "a minor injury long before the episode: neither trauma at onset nor none"
            )
        else:
            draft.skip("history.trauma", trauma, "not one of none, minor, remote_minor")
    if "symptom_duration_weeks" in history:
        weeks = number(history["symptom_duration_weeks"])
        if weeks is None:
            draft.skip("history.symptom_duration_weeks", history["symptom_duration_weeks"], "not a number")
        elif not 0 <= weeks <= 520:
            draft.skip("history.symptom_duration_weeks", weeks, "implausible: not between 0 and 520 weeks")
        else:
            draft.offer(
                "history.symptom_duration_weeks",
                history["symptom_duration_weeks"],
                ("onset", "days_since_onset"),
                float(round(weeks * 7)),
                "weeks x 7, rounded; the case is assessed at presentation",
            )
    features = history.get("pain_features")
    if isinstance(features, Mapping):
        _pain(features, draft)
    if "limp_or_antalgic_gait" in history:
        _flag(draft, "history.limp_or_antalgic_gait", history["limp_or_antalgic_gait"], ("limp",))
    if "rom_limitation" in history:
        rom = history["rom_limitation"]
        state = {True: "restricted", False: "full"}.get(rom) if isinstance(rom, bool) else None
        if state is None:
            draft.skip("history.rom_limitation", rom, "expected true or false")
        else:
            draft.offer("history.rom_limitation", rom, ("range_of_motion",), state)
    _history_terms(history.get("other_history"), "history.other_history", draft)


def _pain(features: Mapping[str, Any], draft: Draft) -> None:
    for key, field in _PAIN.items():
        if key in features:
            rule = "relief by rest is relief by off-loading" if key == "relieved_by_rest" else ""
            _flag(draft, f"history.pain_features.{key}", features[key], ("pain", field), rule)
    if "mechanical_pain" in features:
        src, value = "history.pain_features.mechanical_pain", features["mechanical_pain"]
        if value is not True:
            draft.skip(src, value, "pain that is not mechanical may still hurt on weight-bearing")
        elif draft.has(("pain", "weight_bearing")):
            draft.skip(src, value, "weight-bearing pain is given explicitly")
        else:
            draft.offer(src, value, ("pain", "weight_bearing"), "present", "mechanical pain is pain on loading")
    for key in sorted(set(features) - set(_PAIN) - {"mechanical_pain"}):
        draft.skip(f"history.pain_features.{key}", features[key], "the case model has no field for it")


def _flag(draft: Draft, source: str, value: Any, target: tuple[str, ...], rule: str = "") -> None:
    state = presence(value)
    if state is None:
        draft.skip(source, value, "expected true or false")
    else:
        draft.offer(source, value, target, state, rule)


def _strings(value: Any, source: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield source, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield f"{source}[{i}]", item


def _value_at(data: Mapping[str, Any], target: tuple[str, ...]) -> Any:
    for part in target:
        data = data[part]
    return data


def _history_terms(value: Any, source: str, draft: Draft) -> None:
    """Risk factors and findings named in free-text history items; only clear, affirmative terms count."""
    for src, text in _strings(value, source):
        hits = [(field, label) for pattern, field, label in HISTORY_TERMS if pattern.search(text)]
        if not hits:
            draft.skip(src, text, "names no risk factor or finding hipdx reads from text")
            continue
        if _NEGATED.search(text):
            draft.skip(src, text, "negated or uncertain wording")
            continue
        for field, label in hits:
            target = tuple(field.split("."))
            if draft.has(target) and _value_at(draft.data, target) != "present":
                draft.skip(src, text, f"{field} is given explicitly")
            else:
                draft.offer(src, text, target, "present", f"the text names {label}")


def _risk_factors(risk: Mapping[str, Any], draft: Draft) -> None:
    for key, field in _RISK_FACTORS.items():
        if key in risk:
            _flag(draft, f"risk_factors.{key}", risk[key], ("risk_factors", *field))
    _history_terms(risk.get("other"), "risk_factors.other", draft)


def _labs(labs: Mapping[str, Any], draft: Draft) -> None:
    for name in _LABS:
        if name not in labs:
            continue
        printed = labs[name]
        if not isinstance(printed, str):
            draft.skip(f"labs.{name}", printed, "expected the value as printed, a string")
            continue
        measurement, reason = read_lab(name, printed)
        if measurement is None:
            result, why_not = read_qualitative(name, printed)
            if result is None:
                draft.skip(f"labs.{name}", printed, f"{reason}; {why_not}")
            else:
                draft.offer(f"labs.{name}", printed, ("labs", "qualitative", name), result, "a result in words")
        else:
            draft.offer(f"labs.{name}", printed, ("labs", name), measurement.model_dump(), "number and unit as printed")
    if isinstance(labs.get("bmd"), str):
        t_score, reason = read_t_score(labs["bmd"])
        if t_score is None:
            draft.skip("labs.bmd", labs["bmd"], reason)
        else:
            draft.offer("labs.bmd", labs["bmd"], ("labs", "bmd_t_score"), t_score)
    for src, text in _strings(labs.get("other"), "labs.other"):
        draft.skip(src, text, "free-text results are not parsed (they mix blood, joint fluid and serology)")


# --- the record ----------------------------------------------------------------------


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def _accounted(path: str, seen: set[str]) -> bool:
    while path:
        if path in seen:
            return True
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return False


def _account_for_the_rest(record: Mapping[str, Any], draft: Draft) -> None:
    """List every fact of the record that no rule took up: nothing disappears silently."""
    hindsight = [key for key in HINDSIGHT if key in record]
    if hindsight:
        draft.skipped.append(
            f"{', '.join(hindsight)}: course and reference standard, not used (they would reveal the answer)"
        )
    narrative: list[str] = []
    for key, value in record.items():
        if key in NOT_EVIDENCE or key in HINDSIGHT:
            continue
        for path, leaf in _leaves(value, key):
            if _accounted(path, draft.seen):
                continue
            name = re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1]
            if name.endswith("_text") or name in NARRATIVE_KEYS:
                narrative.append(path)
            else:
                draft.skip(path, leaf, "the case model has no field for it")
    if narrative:
        draft.skipped.append(f"narrative text, not read as facts: {', '.join(printable(p) for p in narrative)}")


def vignette_to_case(record: Mapping[str, Any]) -> Mapped:
    """Map one literature vignette to a case.

    Parameters
    ----------
    record
        One element of a vignette file (a JSON object in the format of
        ``shared/evaluation/README.md``).

    Returns
    -------
    (case, used, skipped)
        The case; one line per fact used, naming the case field it became; one line per
        fact skipped, with the reason.

    Raises
    ------
    IntegrationError
        The record is not a JSON object.
    """
    if not isinstance(record, Mapping):
        raise IntegrationError(f"a vignette must be a JSON object, not {type(record).__name__}")
    draft = Draft(Case, {})
    if isinstance(record.get("id"), str):
        draft.try_put(("id",), record["id"])  # taken when the case model accepts it; else the case has no id
    _patient(_section(record, "patient", draft), draft)
    _history(_section(record, "history", draft), draft)
    _risk_factors(_section(record, "risk_factors", draft), draft)
    _labs(_section(record, "labs", draft), draft)
    if "imaging" in record:
        map_imaging(record["imaging"], draft)
    _account_for_the_rest(record, draft)
    return Case.model_validate(draft.data), draft.used, draft.skipped
