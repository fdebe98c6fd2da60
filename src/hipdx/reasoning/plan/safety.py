"""Evaluating the safety rules of one option on the facts of a case.

Each safety rule tests one fact. When the fact holds, a ``block`` rule blocks the option
and names the fact; a ``caution`` rule adds a warning. When the fact is **not known**, a
block rule makes the option ``needs_information`` and the plan asks for the fact: hipdx
never assumes a missing fact is normal, and such an option is never recommended.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from enum import Enum

from pydantic import Field

from hipdx.knowledge.treatment import Effect, SafetyRule, TreatmentKnowledge
from hipdx.reasoning.frozen import Frozen
from hipdx.reasoning.plan.facts import Fact


# --- evaluating the rules ---------------------------------------------------------------------


class ItemStatus(str, Enum):
    recommended = "recommended"
    #: recommended, with warnings to heed
    caution = "caution"
    #: a fact needed by a safety check is not known; not recommended until it is
    needs_information = "needs_information"
    blocked = "blocked"
    #: a safer instruction of another section governs now (no weight-bearing while a fracture
    #: is excluded); this item applies once that condition is excluded
    deferred = "deferred"


class SafetyFinding(Frozen):
    """A safety rule that holds (or whose fact is not known) for one option."""

    rule: str
    effect: str
    fact: str
    value: str = Field(description="the fact's value and where it came from, or 'not known'")
    message: str
    basis: str
    refs: list[str]
    note: str | None = None


def _holds(rule: SafetyRule, fact: Fact) -> bool | None:
    """True/False whether the rule's test holds; None when the fact is not known."""
    if not fact.applicable:
        return False
    if not fact.known:
        return None
    if rule.is_true is not None:
        return fact.value is rule.is_true
    value = float(fact.value)  # type: ignore[arg-type]
    if rule.below is not None:
        return value < rule.below
    if rule.at_least is not None:
        return value >= rule.at_least
    assert rule.above is not None
    return value > rule.above


@lru_cache(maxsize=4096)
def fold_text(text: str | None) -> str | None:
    """Data text with its line breaks and runs of spaces folded (memoised: the texts are few)."""
    return " ".join(text.split()) if text else None


@dataclass(frozen=True)
class _RuleCheck:
    """One safety rule as the plan applies it, compiled once per knowledge."""

    rule: SafetyRule
    block: bool
    #: the finding's fields that do not depend on the case (all but ``value``)
    fields: dict[str, object]
    #: the finding when the rule's fact is not known: "not known" is the same for every case
    unknown: SafetyFinding


def _rule_checks(knowledge: TreatmentKnowledge) -> dict[str, tuple[_RuleCheck, ...]]:
    """Option -> its safety rules compiled, in file order (:meth:`TreatmentKnowledge.attached`)."""
    compiled = {}
    for rule in knowledge.safety.rules:
        fields: dict[str, object] = {
            "rule": rule.id,
            "effect": rule.effect.value,
            "fact": rule.fact,
            "message": rule.message,
            "basis": rule.basis.value,
            "refs": rule.refs,
            "note": fold_text(rule.note),
        }
        compiled[rule.id] = _RuleCheck(rule, rule.effect is Effect.block, fields, SafetyFinding(**fields, value="not known"))
    options = dict.fromkeys(option for rule in knowledge.safety.rules for option in rule.options)
    return {option: tuple(compiled[r.id] for r in knowledge.rules_for(option)) for option in options}


def _finding(check: _RuleCheck, fact: Fact) -> SafetyFinding:
    """The finding of a rule whose fact is known (its value and where it came from)."""
    shown = fact.shown()
    return SafetyFinding(**check.fields, value=f"{shown} ({fact.source})" if fact.source else shown)


@dataclass(frozen=True)
class Verdict:
    status: ItemStatus
    blocked_by: list[SafetyFinding]
    cautions: list[SafetyFinding]
    needs: list[SafetyFinding]
    checks: list[SafetyFinding]


def evaluate_option(
    option: str, facts: dict[str, Fact], knowledge: TreatmentKnowledge, found: dict[str, SafetyFinding] | None = None
) -> Verdict:
    """Apply every safety rule of ``option`` to the facts.

    ``found``: the findings of the rules already applied to these same ``facts``, by rule id
    (a plan applies one rule to many options; its finding is built once and shared, frozen).
    A rule whose fact is not known has the same finding for every case, built with the knowledge.
    """
    blocked, cautions, needs, checks = [], [], [], []
    for check in knowledge.attached(_rule_checks).get(option, ()):
        fact = facts[check.rule.fact]
        if fact.applicable and not fact.known:  # as _holds: not known, the same finding for every case
            (needs if check.block else checks).append(check.unknown)
        elif _holds(check.rule, fact):
            finding = found.get(check.rule.id) if found is not None else None
            if finding is None:
                finding = _finding(check, fact)
                if found is not None:
                    found[check.rule.id] = finding
            (blocked if check.block else cautions).append(finding)
    if blocked:
        status = ItemStatus.blocked
    elif needs:
        status = ItemStatus.needs_information
    elif cautions:
        status = ItemStatus.caution
    else:
        status = ItemStatus.recommended
    return Verdict(status, blocked, cautions, needs, checks)
