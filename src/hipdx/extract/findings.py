"""From ConText mentions to the findings of one hip: laterality, routing, conflicts, what to confirm.

Policy (nothing uncertain is used silently):

- affirmed or negated mentions about the hip asked for become findings (negated: the rule's
  ``negated_value``, "absent" for presence findings);
- uncertain, historical and hypothetical mentions, mentions whose side the text never states,
  findings stated with two different values (conflicting), and statements the case model cannot
  take as they are ("unresolved": a measure without its number, a step-off of an unnamed bone) go
  to ``to_confirm``;
- a "normal hip" statement implies the findings of ``normal_implies``; an explicit statement
  about the same finding wins over it;
- a finding the case model does not see on the study's modality, an impression (a diagnosis
  named) and an exclusion ("soft tissue edema") are evidence, never findings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from hipdx.case.model import FINDING_MODALITIES, ImagingFindings, Modality
from hipdx.extract.context import Mention, Sentence, Span, clauses
from hipdx.extract.rules import Category, Rules

#: stop words that end the phrase around a routed mention (its own noun phrase, not the sentence's); the
#: point of a decimal ("1.5 mm") ends nothing
_STOP = re.compile(r"\b(?:with|without|no|not|but|which|however|though|although|whereas|given|because)\b|;|\.(?!\d)", re.IGNORECASE)
_WINDOW = 90  # characters: how far after a mention its site and extent are looked for

STATUS = {
    None: "affirmed",
    Category.negated: "negated",
    Category.normal: "negated",
    Category.uncertain: "uncertain",
    Category.historical: "historical",
    Category.hypothetical: "hypothetical",
}
_NORMAL_VALUES = {"absent", "normal", "preserved", "none"}
#: findings that describe another (its extent, displacement, side): read only with it affirmed
_ATTRIBUTES = frozenset({"edema_extent", "fracture_displaced", "femoral_neck_fracture_side"})
#: the categories of a mention that is neither stated nor denied
_DOUBT = frozenset({Category.uncertain, Category.historical, Category.hypothetical})


@dataclass(eq=False)
class Claim:
    """One finding value stated (or proposed) by one mention, for one or both hips."""

    finding: str
    value: Any
    sides: set[str]
    status: str  # affirmed, negated, implied, uncertain, historical, hypothetical, unresolved (the note says why)
    mention: Mention
    trigger: str | None
    note: str = ""
    side_stated: bool = True
    numbers: dict[str, float] = field(default_factory=dict)

    @property
    def confident(self) -> bool:
        return self.status in ("affirmed", "negated")


_OPPOSITE = {"left": "right", "right": "left"}


def _sides_in(rules: Rules, sentence: Sentence, carried: str | None) -> list[tuple[int, str]]:
    """The sides a sentence names, in order; "contralateral" is the other side than the one named last."""
    found = []
    for side, pattern in rules.side_patterns.items():
        for m in pattern.finditer(sentence.text):
            found.append((sentence.start + m.start(), sentence.start + m.end(), side))
    found.sort(key=lambda f: (f[0], -f[1], f[2]))
    out: list[tuple[int, str]] = []
    covered = -1  # "both hips" also matches "both", "R>L" also "R" and "L": keep the longest
    last = carried
    for start, end, side in found:
        if start < covered:
            continue
        covered = end
        if side == "reference":
            continue  # "relative to the right": the side compared with, not the side described
        if side == "contralateral":
            if last not in _OPPOSITE:
                continue  # no side named before it: it says nothing
            side = _OPPOSITE[last]
        out.append((start, side))
        last = side
    return out


def _sentence_sides(rules: Rules, sentences: list[Sentence]) -> tuple[dict[int, list[tuple[int, str]]], dict[int, str | None]]:
    """The sides each sentence names, and the side carried into it from the sentences before (a heading)."""
    sides_by_sentence: dict[int, list[tuple[int, str]]] = {}
    side_of_sentence: dict[int, str | None] = {}
    carried: str | None = None
    for s in sentences:
        side_of_sentence[s.start] = carried
        sides_by_sentence[s.start] = _sides_in(rules, s, carried)
        if sides_by_sentence[s.start]:
            carried = sides_by_sentence[s.start][-1][1]
    return sides_by_sentence, side_of_sentence


_SIDE_AFTER = re.compile(r"\s+(?:on|in|of) the (left|right)\b(?:\s+(?:side|hip))?(?=\s*[.;,]|\s*$)", re.IGNORECASE)


def _side_for(span: Span, sentence: Sentence, mentions: list[tuple[int, str]]) -> str | None:
    """The side a phrase is about: its clause's side before it (or inside it), else after it, else the sentence's nearest."""
    after = _SIDE_AFTER.match(sentence.text, span.end - sentence.start)
    if after:  # "joint space reduction on the right": the side named right after the phrase
        return after.group(1).lower()
    for low, high in clauses(sentence):
        if low <= span.start < high:
            inside = [m for m in mentions if low <= m[0] < high]
            before = [m for m in inside if m[0] < span.end]
            if before:
                return before[-1][1]
            if inside:
                return inside[0][1]
    if mentions:
        return min(mentions, key=lambda m: abs(m[0] - span.start))[1]
    return None


def _expand(side: str) -> set[str]:
    return {"left", "right"} if side == "both" else {side}


def _window(span: Span, sentence: Sentence, others: list[Span]) -> str:
    """The words of the phrase around a mention: back to the previous stop word, on to the next.

    The words of ``others`` (other target phrases of the sentence) are left out: in "no SIF or
    stress fracture" the SIF is not the stress fracture's site, nor the "subchondral" of a later
    "subchondral collapse" a fracture's.
    """
    chars = list(sentence.text)
    for other in others:
        chars[other.start - sentence.start : other.end - sentence.start] = " " * (other.end - other.start)
    own = "".join(chars)
    rel_start, rel_end = span.start - sentence.start, span.end - sentence.start
    before = own[:rel_start]
    stops = list(_STOP.finditer(before))
    before = before[stops[-1].end() :] if stops else before
    after = own[rel_end : rel_end + _WINDOW]
    stop = _STOP.search(after)
    after = after[: stop.start()] if stop else after
    return f"{before} {span.text} {after}"


def _has(rules: Rules, group: str, key: str, text: str) -> bool:
    return bool(rules.word_sets[group][key].search(text))


def _route_edema(rules: Rules, m: Mention, window: str, value: Any, negated: bool) -> list[tuple[str, Any, str]]:
    acetabulum = _has(rules, "sites", "acetabulum", window)
    femur = _has(rules, "sites", "femur", window)
    if not femur and not acetabulum and _has(rules, "sites", "other_bone", window):
        return [("", None, "marrow edema of another bone than the hip's")]
    out = []
    if acetabulum:
        out.append(("acetabular_edema", value, ""))
    if femur or not acetabulum:
        out.append(("edema", value, ""))
        if not negated and value == "present":  # "normal marrow signal" states no extent
            extent = _extent(rules, window) or _extent_around(rules, m, window)
            if extent:
                out.append(("edema_extent", extent, ""))
    return out


def _extent(rules: Rules, window: str) -> str | None:
    window = rules.word_sets["extent"]["spared"].sub(" ", window)  # "sparing the neck" is not the neck's
    has = lambda key: _has(rules, "extent", key, window)  # noqa: E731
    if has("intertrochanteric"):
        return "intertrochanteric"
    if has("head") and has("neck") or has("into_neck"):  # edema "extending into the neck" spreads from the head
        return "head_and_neck"
    if has("neck"):
        return "femoral_neck"
    if has("head"):
        return "focal" if has("focal") else "femoral_head"
    return None


def _extent_around(rules: Rules, m: Mention, window: str) -> str | None:
    """Oedema "surrounding" a fracture of the femoral neck named before it in the sentence is the neck's.

    Around a fracture of the head it is not read: focal or the whole head, the words do not say.
    """
    earlier = m.sentence.text[: m.span.start - m.sentence.start]
    if not _has(rules, "extent", "around", window) or "fractur" not in earlier.lower():
        return None
    neck_only = _has(rules, "fracture", "neck", earlier) and not _has(rules, "fracture", "head", earlier)
    return "femoral_neck" if neck_only else None


def _route_fracture(rules: Rules, m: Mention, window: str, value: Any, negated: bool) -> list[tuple[str, Any, str]]:
    clause = m.sentence.text
    neck = _has(rules, "fracture", "neck", window)
    head = _has(rules, "fracture", "head", window)
    elsewhere = _has(rules, "sites", "acetabulum", window) or _has(rules, "sites", "other_bone", window)
    before = m.sentence.text[: m.span.start - m.sentence.start].split()
    named = before[-1] if before else ""  # the word naming the bone: "head collapse, acetabular fracture"
    if elsewhere and (not neck and not head and not _has(rules, "sites", "femur", window)
                      or _has(rules, "sites", "acetabulum", named) or _has(rules, "sites", "other_bone", named)):
        return [("", None, "a fracture of another bone than the femur's")]  # "acetabular fracture", "sacral fracture"
    if not neck and not head:
        # "femoral neck oedema without fracture line", "oedema of the femoral neck with a short fracture
        # line": the sentence's site before it, when it is the neck only
        earlier = m.sentence.text[: m.span.start - m.sentence.start]
        neck = _has(rules, "fracture", "neck", earlier) and not _has(rules, "fracture", "head", earlier)
    # a fracture without a site that is negated or only doubted ("r/o fracture") is about both lines;
    # an affirmed one is read as the neck's, with a note
    both = not neck and not head and (negated or m.category in _DOUBT)
    out: list[tuple[str, Any, str]] = []
    if neck or not head:
        note = "" if neck or both else "the fracture's site is not stated: read as the femoral neck"
        out.append(("femoral_neck_fracture_line", value, note))
    if head or both:
        out.append(("subchondral_fracture_line", value, ""))
    if negated:
        return out
    if _has(rules, "fracture", "not_displaced", clause):
        out.append(("fracture_displaced", "absent", ""))
    elif _has(rules, "fracture", "displaced", clause):
        out.append(("fracture_displaced", "present", ""))
    if neck:
        if _has(rules, "fracture", "compression", clause):
            out.append(("femoral_neck_fracture_side", "compression", ""))
        elif _has(rules, "fracture", "tension", clause):
            out.append(("femoral_neck_fracture_side", "tension", ""))
    return out


def _route_uptake(rules: Rules, m: Mention, window: str, value: Any, negated: bool) -> list[tuple[str, Any, str]]:
    if negated:
        return [("uptake", value, "")]
    return [("uptake", "diffuse_increased" if _has(rules, "uptake", "diffuse", window) else value, "")]


#: a route's note with this prefix sends the claim to confirm (status "unresolved", the rest of the note the reason)
UNRESOLVED = "to confirm: "


def _route_head_surface(rules: Rules, m: Mention, window: str, value: Any, negated: bool) -> list[tuple[str, Any, str]]:
    """An articular step-off or depression is collapse of the femoral head only when the head (or its subchondral
    fracture) is named around it.

    A step-off of an acetabular (or other) fracture is not; one whose bone is not named is listed to confirm.
    """
    finding = m.rule.finding or ""
    if _has(rules, "extent", "head", window) and not _has(rules, "sites", "acetabulum", window):
        return [(finding, value, "")]
    upto = m.sentence.text[: m.span.end - m.sentence.start]
    if _has(rules, "sites", "acetabulum", upto + window) or _has(rules, "sites", "other_bone", upto + window):
        return [("", None, "a step-off or depression of another bone than the femoral head")]
    if _has(rules, "extent", "head", upto):  # "Left femoral head: no step-off."
        return [(finding, value, "")]
    if _has(rules, "fracture", "head", upto) and "fractur" in upto.lower():  # "crescentic subchondral fracture with 3 mm depression"
        return [(finding, value, "")]
    return [(finding, value, UNRESOLVED + "the bone of the step-off or depression is not named (the femoral head's would be collapse)")]


def _route_femoral(rules: Rules, m: Mention, window: str, value: Any, negated: bool) -> list[tuple[str, Any, str]]:
    """A finding of the femur only: "linear subchondral T1 hypointensity in the acetabular roof" is not the head's band."""
    elsewhere = _has(rules, "sites", "acetabulum", window) or _has(rules, "sites", "other_bone", window)
    if elsewhere and not _has(rules, "sites", "femur", window):
        return [("", None, "a finding of another bone than the femur")]
    upto = m.sentence.text[: m.span.start - m.sentence.start]
    if m.rule.id == "sclerotic_margin" and _has(rules, "sites", "lesion", upto):
        return [("", None, "the margin of a lesion or cyst named before it")]
    out = [(m.rule.finding or "", value, "")]
    words = m.span.text.lower()  # a band "of low signal on T1 and T2" also states T1 low signal (targets version 7)
    if m.rule.finding == "subchondral_band" and not negated and " on " in words and "t1" in words:
        out.append(("t1_low", "present", ""))
    return out


def _route_lesion(rules: Rules, m: Mention, window: str, value: Any, negated: bool) -> list[tuple[str, Any, str]]:
    """A lesion of the femur (or of no bone named) is focal_lesion, one of the ilium iliac_lesion, one of another bone
    neither; "intra-articular mass lesion" is the mass's (targets version 7)."""
    if re.search(r"intra[- ]?articular", window, re.IGNORECASE):
        return [("", None, "an intra-articular mass, not a lesion of the bone")]
    femur, ilium = _has(rules, "sites", "femur", window), _has(rules, "sites", "ilium", window)
    out = [("iliac_lesion", value, "")] if ilium else []
    if femur or not ilium and not _has(rules, "sites", "acetabulum", window) and not _has(rules, "sites", "other_bone", window):
        out.append(("focal_lesion", value, ""))
    return out or [("", None, "a lesion of another bone than the femur or the ilium")]


ROUTES = {"edema": _route_edema, "fracture": _route_fracture, "uptake": _route_uptake, "head_surface": _route_head_surface,
          "femoral": _route_femoral, "lesion": _route_lesion}


def _numbers(rules: Rules, m: Mention, text: str | None = None) -> dict[str, float]:
    """The measurements of a mention's number rules, read in ``text`` (its sentence by default)."""
    out = {}
    for key in m.rule.numbers:
        fieldname, patterns = rules.number_patterns[key]
        for pattern in patterns:
            hit = pattern.search(m.sentence.text if text is None else text)
            if hit:
                number = float(hit.group("n")) * (10.0 if hit.group("unit").lower() == "cm" else 1.0)
                out[fieldname] = number
                break
    return out


def claims(rules: Rules, text: str, mentions: list[Mention], sentences: list[Sentence]) -> tuple[list[Claim], list[dict[str, Any]]]:
    """The claims of every mention, and the mentions that make none (impressions, exclusions, other bones)."""
    sides_by_sentence, side_of_sentence = _sentence_sides(rules, sentences)
    by_sentence: dict[int, list[Mention]] = {}
    for m in mentions:
        by_sentence.setdefault(m.sentence.start, []).append(m)
    out: list[Claim] = []
    unused: list[dict[str, Any]] = []
    for m in mentions:
        side = _side_for(m.span, m.sentence, sides_by_sentence[m.sentence.start]) or side_of_sentence[m.sentence.start]
        status = STATUS[m.category]
        trigger = m.modifier.span.text if m.modifier else None
        if m.rule.kind in ("impression", "exclusion"):
            reason = "a diagnosis named in the report, not a finding hipdx reasons from" if m.rule.kind == "impression" else "not a finding of the hip (excluded wording)"
            unused.append(_unused(m, side, status, trigger, reason))
            continue
        sides = _expand(side) if side else {"left", "right"}
        if m.rule.kind == "normal":
            for_status = "implied" if status == "affirmed" else status
            out.append(Claim("normal", "normal", sides, for_status, m, trigger, side_stated=side is not None))
            continue
        if status == "negated" and _inside_another(m, by_sentence[m.sentence.start]):
            unused.append(_unused(m, side, status, trigger, "part of a longer phrase of another finding that is denied (denying the whole denies no part)"))
            continue
        if m.rule.kind == "measure":
            out.append(_measure(rules, m, sides, status, trigger, side is not None))
            continue
        if status == "negated" and m.rule.route == "lesion" and _named_by_another(m, by_sentence[m.sentence.start]):
            status, trigger = "affirmed", None  # "no drop in signal of the iliac lesion": the drop is denied, the lesion named
        negated = status == "negated"
        value: Any = m.rule.value
        if negated:
            if m.category is Category.normal and m.rule.value in _NORMAL_VALUES:
                negated, status = False, "affirmed"
            elif m.rule.negated_value is None:
                status = "uncertain"
            else:
                value = m.rule.negated_value
        route = ROUTES.get(m.rule.route or "")
        # another member of a list of the same finding has its own site ("SIF or stress fracture"), and so
        # has a later phrase of another finding ("no fracture line or subchondral collapse"); an earlier
        # one's adjective may be shared ("subchondral sclerosis and fracture")
        others = [o.span for o in by_sentence[m.sentence.start]
                  if o is not m and (o.rule.finding == m.rule.finding or o.span.start >= m.span.end)]
        routed = route(rules, m, _window(m.span, m.sentence, others), value, negated) if route else [(m.rule.finding, value, "")]
        for finding, routed_value, note in routed:
            if not finding:
                unused.append(_unused(m, side, status, trigger, note))
                continue
            if finding in _ATTRIBUTES and status != "affirmed":
                continue  # an extent or a fracture's side only describes a finding that is stated
            claim_status = status
            if note.startswith(UNRESOLVED):  # the route could not settle it: to confirm, the note says why
                claim_status, note = "unresolved", note[len(UNRESOLVED) :]
            claim = Claim(finding, routed_value, sides, claim_status, m, trigger, note, side_stated=side is not None)
            if claim_status == "affirmed" and routed_value == m.rule.value:
                claim.numbers = _numbers(rules, m)
            out.append(claim)
    return out, unused


_POSSESSED = re.compile(r"\b(?:of|in|within|through)\s+the\s+(?:(?!(?:or|and|nor)\b)[\w-]+\s+){0,3}$", re.IGNORECASE)


def _named_by_another(m: Mention, sentence_mentions: list[Mention]) -> bool:
    """True when ``m`` is named ("of the iliac lesion") as the place of another finding the same trigger denies."""
    before = m.sentence.text[: m.span.start - m.sentence.start]
    mod = m.modifier.span if m.modifier else None
    return bool(mod and _POSSESSED.search(before)) and any(
        o is not m and o.rule.finding != m.rule.finding and o.modifier is m.modifier and mod.end <= o.span.start < m.span.start
        for o in sentence_mentions
    )


def _inside_another(m: Mention, sentence_mentions: list[Mention]) -> bool:
    """True when a longer phrase of another finding whose denial does not cover its parts holds ``m``'s words
    ("no subchondral linear T1 low signal": the T1 low signal describes the band, and denying the band does not
    deny T1 low signal; "no STIR hyperintense marrow signal" denies both, as the edema rule covers its parts)."""
    length = m.span.end - m.span.start
    return any(
        o is not m and o.rule.kind in ("finding", "measure") and o.rule.finding != m.rule.finding and not o.rule.denial_covers_parts
        and o.span.start <= m.span.start and m.span.end <= o.span.end and o.span.end - o.span.start > length
        for o in sentence_mentions
    )


def _measure(rules: Rules, m: Mention, sides: set[str], status: str, trigger: str | None, side_stated: bool) -> Claim:
    """A measure target (a percentage of its own field): the number in its words when affirmed, else to confirm.

    "a 35% signal drop on opposed-phase images" -> 35; "less than 15% of the head" (a bound), "marked signal
    drop-out" or "no appreciable signal drop" (words, no number) -> to confirm: the case model holds the number only.
    """
    finding = m.rule.finding or ""
    value = _numbers(rules, m, m.span.text).get(finding)
    doubt = _measure_doubt(rules, m) if value is not None else None
    if status == "affirmed" and value is not None and doubt is None:
        return Claim(finding, value, sides, status, m, trigger, side_stated=side_stated)
    note = ""
    if status in ("affirmed", "negated"):
        status, note = "unresolved", doubt or "stated without a value the case model holds (a bound, a range or words): give the percentage"
    return Claim(finding, None if doubt else value, sides, status, m, trigger, note, side_stated=side_stated)


#: a percentage figure; the end of a measure's own phrase (a clause's end, not a decimal point)
_PERCENT = re.compile(r"\d+(?:\.\d+)? ?%")
_CLAUSE_END = re.compile(r";|\.(?!\d)")


def _measure_doubt(rules: Rules, m: Mention) -> str | None:
    """Why a measure's number may not be the hip's own, or None.

    "35% signal drop in the contralateral head and 5% in the left neck lesion" (two figures: which is the
    lesion's?), "necrotic fat occupying 20% of the acetabular roof" (another bone), and for a share of the
    femoral head (route head_surface) "necrotic tumour with 70% necrosis" (the head is not named).
    """
    sentence, rel_end = m.sentence.text, m.span.end - m.sentence.start
    after = _CLAUSE_END.split(sentence[rel_end:], 1)[0][:60]
    where = m.span.text + after
    if len(_PERCENT.findall(sentence)) > 1:
        return "the sentence gives more than one percentage: which is the hip's own?"
    if _has(rules, "sites", "acetabulum", where) or _has(rules, "sites", "other_bone", where):
        return "the percentage is stated for another bone than the femur"
    if m.rule.route == "head_surface" and not _has(rules, "extent", "head", sentence[:rel_end] + after):
        return "the percentage is not stated as the femoral head's (a share of a tumour or of a lesion elsewhere?)"
    return None


def _unused(m: Mention, side: str | None, status: str, trigger: str | None, reason: str) -> dict[str, Any]:
    return {
        "finding": None,
        "value": None,
        "side": side or "not stated",
        "status": status,
        "text": m.span.text,
        "span": [m.span.start, m.span.end],
        "sentence": m.sentence.text,
        "trigger": trigger,
        "rule": m.rule.id,
        "used": False,
        "reason": reason,
    }


def evidence_item(c: Claim, used: bool, reason: str = "", side: str | None = None) -> dict[str, Any]:
    return {
        "finding": c.finding,
        "value": c.value,
        "side": side or (("both" if len(c.sides) == 2 else next(iter(c.sides))) if c.side_stated else "not stated"),
        "status": c.status,
        "text": c.mention.span.text,
        "span": [c.mention.span.start, c.mention.span.end],
        "sentence": c.mention.sentence.text,
        "trigger": c.trigger,
        "rule": c.mention.rule.id,
        "used": used,
        "reason": reason or c.note,
    }


def resolve(rules: Rules, all_claims: list[Claim], modality: Modality, side: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The findings for one side, the evidence behind every claim, and what the clinician must confirm."""
    findings: dict[str, Any] = {}
    evidence: list[dict[str, Any]] = []
    confirm: list[dict[str, Any]] = []
    implied: list[Claim] = []
    by_finding: dict[str, list[Claim]] = {}
    for c in all_claims:
        if side not in c.sides:
            evidence.append(evidence_item(c, False, "about the other hip"))
            continue
        if c.finding == "normal":
            for name, value in rules.targets.normal_implies.get(modality, {}).items():
                implied.append(Claim(name, value, c.sides, c.status, c.mention, c.trigger, "implied by a normal hip", c.side_stated))
            continue
        if modality not in FINDING_MODALITIES[c.finding]:
            evidence.append(evidence_item(c, False, f"the case model does not read {c.finding} on a {modality.value} study"))
            continue
        by_finding.setdefault(c.finding, []).append(c)
    for c in implied:
        if c.finding not in by_finding:
            by_finding.setdefault(c.finding, []).append(c)
        else:
            evidence.append(evidence_item(c, False, "implied by a normal hip; the report states this finding explicitly"))
    for name, group in by_finding.items():
        sure = [c for c in group if c.confident or c.status == "implied"]
        stated = [c for c in sure if c.side_stated]
        if len(stated) < len(sure):
            for c in sure:
                if not c.side_stated:
                    confirm.append(_confirm(c, side, "the report does not say which hip"))
            sure = stated
        values = {_key(c.value) for c in sure}
        chosen_ids = {id(c) for c in sure}
        doubtful = [c for c in group if id(c) not in chosen_ids and not c.confident and c.status != "implied"]
        others = [c for c in doubtful if c.side_stated]
        unsided = [c for c in doubtful if not c.side_stated]  # "MRI to r/o fracture.": listed, never a finding
        if len(values) > 1 or (values and any(_key(c.value) not in values and c.status == "uncertain" for c in others)):
            for c in sure + [c for c in others if c.status == "uncertain"]:
                confirm.append(_confirm(c, side, "the report states it in more than one way (conflicting)"))
            continue
        if values:
            chosen = sure[-1]
            findings[name] = chosen.value
            for c in sure:
                evidence.append(evidence_item(c, True, side=side))
                for number_field, number in c.numbers.items():
                    findings[number_field] = number
            for c in others + unsided:
                evidence.append(evidence_item(c, False, f"{c.status}; the finding is stated elsewhere"))
            continue
        for c in others:
            confirm.append(_confirm(c, side, c.note if c.status == "unresolved" else _WHY[c.status]))
        for c in unsided:
            confirm.append(_confirm(c, side, "the report does not say which hip"))
    _drop_orphans(findings, evidence)
    return _validated(findings, evidence, confirm)


#: an attribute describes these findings; without one of them present it is not used
_DESCRIBES = {"edema_extent": ("edema",), "femoral_neck_fracture_side": ("femoral_neck_fracture_line",),
              "fracture_displaced": ("femoral_neck_fracture_line", "subchondral_fracture_line")}


def _drop_orphans(findings: dict[str, Any], evidence: list[dict[str, Any]]) -> None:
    """An extent, side or displacement whose finding went to confirm (conflicting) is not used either."""
    for name, described in _DESCRIBES.items():
        if name in findings and not any(findings.get(d) == "present" for d in described):
            del findings[name]
            for item in evidence:
                if item["finding"] == name and item["used"]:
                    item["used"], item["reason"] = False, "describes a finding that is not used (to confirm)"


_WHY = {
    "uncertain": "stated with uncertainty",
    "historical": "about the past, not this study",
    "hypothetical": "a plan or a possibility, not a finding",
}


def _key(value: Any) -> str:
    return str(value)


def _confirm(c: Claim, side: str, reason: str) -> dict[str, Any]:
    item = evidence_item(c, False, reason, side=side if c.side_stated else "not stated")
    item["proposed"] = item.pop("value")
    return item


def _validated(findings: dict[str, Any], evidence: list[dict[str, Any]], confirm: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The findings if the case model accepts them together; otherwise all of them to confirm."""
    try:
        ImagingFindings.model_validate(findings)
    except ValidationError as exc:
        reason = "; ".join(e["msg"] for e in exc.errors())
        for item in evidence:
            if item["used"]:
                item["used"] = False
                moved = dict(item, reason=f"the findings do not fit together: {reason}")
                moved["proposed"] = moved.pop("value")
                confirm.append(moved)
        return {}, evidence, confirm
    return findings, evidence, confirm
