"""A ConText pass over report text: sentences, target phrases, modifiers and their scopes.

The algorithm is ConText's (Harkema et al. 2009): in each sentence, trigger phrases
(modifiers) assert a category (negated, uncertain, historical, hypothetical) over the
target phrases in their scope; a forward trigger's scope runs to the end of the sentence,
a backward trigger's to its start, unless a terminator ("but", "though", a semicolon) comes
first; pseudo-triggers ("no interval change") consume their words and do nothing. Where
several modifiers hold one target, the nearest decides (a list after "no" is negated as a
whole; "edema, probably transient osteoporosis" leaves the edema affirmed).

Everything is regular expressions from the rule files: no model, no download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hipdx.extract.rules import Category, ModifierRule, Rules, TargetRule

#: a sentence ends at . ! ? followed by white space, or at a line break; a question mark that
#: follows a space or a comma ("..., ? crescent sign") doubts what follows it and ends nothing
_SENTENCE_END = re.compile(r"(?:(?<=[.!])|(?<=[^\s,]\?))\s+|\n\s*")
#: a comma before a stated amount starts a new assertion ("No fracture, small effusion.")
_COMMA_ASSERTION = re.compile(
    r",\s*(?=(?:small|moderate|large|mild|marked|extensive|severe|trace|minimal|there (?:is|are))\b)", re.IGNORECASE
)
#: clause boundaries for laterality ("right femoral head edema; the left hip is normal")
_CLAUSE = re.compile(r";|,?\s+(?:but|whereas|while|however)\s+|,\s+and\s+(?=the\s)", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Modifier:
    rule: ModifierRule
    span: Span


@dataclass(frozen=True)
class Mention:
    """One target phrase in one sentence, with the modifier (if any) that holds it."""

    rule: TargetRule
    span: Span
    sentence: Sentence
    modifier: Modifier | None

    @property
    def category(self) -> Category | None:
        return self.modifier.rule.category if self.modifier else None


def sentences(text: str, abbreviation: re.Pattern[str] | None = None) -> list[Sentence]:
    """The sentences of ``text`` with their character offsets.

    A full stop after an abbreviation matched by ``abbreviation`` ("Rt.", "approx.") does not end
    a sentence when a lower-case word or a number follows it.
    """
    out = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if abbreviation and _abbreviated(text, m, abbreviation):
            continue
        if text[start : m.start()].strip():
            out.append(_trimmed(text, start, m.start()))
        start = m.end()
    if text[start:].strip():
        out.append(_trimmed(text, start, len(text)))
    return out


def _abbreviated(text: str, stop: re.Match[str], abbreviation: re.Pattern[str]) -> bool:
    following = text[stop.end() : stop.end() + 1]
    if not (following.islower() or following.isdigit()) or not text[: stop.start()].endswith("."):
        return False
    return bool(abbreviation.search(text[max(0, stop.start() - 12) : stop.start() - 1]))


def _trimmed(text: str, start: int, end: int) -> Sentence:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Sentence(start, end, text[start:end])


def _longest(matches: list[tuple[int, int, object]]) -> list[tuple[int, int, object]]:
    """Non-overlapping matches, the longest first (ties: the earliest)."""
    chosen: list[tuple[int, int, object]] = []
    for m in sorted(matches, key=lambda m: (-(m[1] - m[0]), m[0])):
        if all(m[1] <= c[0] or m[0] >= c[1] for c in chosen):
            chosen.append(m)
    return sorted(chosen, key=lambda m: m[0])


def find_targets(rules: Rules, sentence: Sentence) -> list[tuple[TargetRule, Span]]:
    """The target phrases of a sentence: the longest per finding; impressions and exclusions hide what they cover."""
    hits: dict[str | None, list[tuple[int, int, object]]] = {}
    for rule, pattern in rules.target_patterns:
        # a measure neither hides the findings inside its words nor is hidden by a diagnosis ("AVN involving 30% of
        # the head", "no drop in signal of the iliac lesion": targets version 7)
        key = rule.finding if rule.kind == "finding" else f"measure:{rule.finding}" if rule.kind == "measure" else None
        for m in pattern.finditer(sentence.text):
            hits.setdefault(key, []).append((m.start(), m.end(), rule))
    blocking = _longest(hits.pop(None, []))
    out = []
    for start, end, rule in blocking:
        out.append((rule, _span(sentence, start, end)))
    for group in hits.values():
        for start, end, rule in _longest(group):
            if rule.kind != "measure" and any(start < b[1] and end > b[0] for b in blocking):
                continue
            out.append((rule, _span(sentence, start, end)))
    return sorted(out, key=lambda t: t[1].start)  # type: ignore[arg-type,return-value]


def _span(sentence: Sentence, start: int, end: int) -> Span:
    return Span(sentence.start + start, sentence.start + end, sentence.text[start:end])


def find_modifiers(rules: Rules, sentence: Sentence, targets: list[tuple[TargetRule, Span]]) -> list[Modifier]:
    """The modifiers of a sentence (longest match wins), except words that belong to a target phrase."""
    found: list[tuple[int, int, object]] = []
    for rule, pattern in rules.modifier_patterns:
        for m in pattern.finditer(sentence.text):
            found.append((m.start(), m.end(), rule))
    out = []
    for start, end, rule in _longest(found):
        a, b = sentence.start + start, sentence.start + end
        if any(a < span.end and b > span.start for _, span in targets):
            continue
        out.append(Modifier(rule, _span(sentence, start, end)))  # type: ignore[arg-type]
    for m in _COMMA_ASSERTION.finditer(sentence.text):
        out.append(Modifier(_COMMA_RULE, _span(sentence, m.start(), m.start() + 1)))
    for m in re.finditer(";", sentence.text):
        out.append(Modifier(_COMMA_RULE, _span(sentence, m.start(), m.end())))
    return sorted(out, key=lambda m: m.span.start)


_COMMA_RULE = ModifierRule(category=Category.terminate, direction="forward", source="hipdx", patterns=[","])


def _in_scope(mod: Modifier, target: Span, modifiers: list[Modifier]) -> bool:
    """True when ``target`` lies in the scope of ``mod`` (no terminator between them)."""
    if mod.rule.category in (Category.pseudo, Category.terminate):
        return False
    after = target.start >= mod.span.end
    before = target.end <= mod.span.start
    if after and mod.rule.direction == "backward" or before and mod.rule.direction == "forward":
        return False
    if not (after or before):
        return False
    low, high = (mod.span.end, target.start) if after else (target.end, mod.span.start)
    return not any(
        m.rule.category is Category.terminate and low <= m.span.start and m.span.end <= high for m in modifiers
    )


def mentions(rules: Rules, text: str) -> tuple[list[Mention], list[Sentence]]:
    """Every target phrase of ``text`` with the modifier that holds it (the nearest in scope)."""
    out = []
    all_sentences = sentences(text, rules.abbreviation_pattern)
    for sentence in all_sentences:
        targets = find_targets(rules, sentence)
        modifiers = find_modifiers(rules, sentence, targets)
        for rule, span in targets:
            holding = [m for m in modifiers if _in_scope(m, span, modifiers)]
            nearest = min(holding, key=lambda m: _distance(m.span, span), default=None)
            out.append(Mention(rule, span, sentence, nearest))
    return out, all_sentences


def _distance(a: Span, b: Span) -> int:
    return b.start - a.end if b.start >= a.end else a.start - b.end


def clauses(sentence: Sentence) -> list[tuple[int, int]]:
    """Character ranges (absolute) of the clauses of a sentence, for laterality."""
    bounds = [0] + [m.end() for m in _CLAUSE.finditer(sentence.text)] + [len(sentence.text) + 1]
    return [(sentence.start + a, sentence.start + b) for a, b in zip(bounds, bounds[1:], strict=False)]
