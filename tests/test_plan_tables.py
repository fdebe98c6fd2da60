"""What the plan makes once per knowledge (or once per process) instead of once per case: the
finding of a safety rule whose fact is not known, the item fields of each option, the facts of
a three-valued field and their provenance rows. Each must equal what the case would have
built, and be shared, not rebuilt."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hipdx.case import Case
from hipdx.knowledge import load_knowledge_base
from hipdx.reasoning import assess
from hipdx.reasoning.plan import Fact, FactOut, SafetyFinding, case_facts, make_plan

TODAY = dt.date(2026, 12, 7)
EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.json"))


def reference_finding(rule, fact: Fact) -> SafetyFinding:
    """A finding built field by field from the rule and the fact, as the plan shows it."""
    shown = fact.shown()
    return SafetyFinding(
        rule=rule.id,
        effect=rule.effect.value,
        fact=rule.fact,
        value=f"{shown} ({fact.source})" if fact.known and fact.source else shown,
        message=rule.message,
        basis=rule.basis.value,
        refs=rule.refs,
        note=" ".join(rule.note.split()) if rule.note else None,
    )


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_findings_and_fact_rows_are_what_the_case_gives(kb, path):
    case = Case.model_validate_json(path.read_text())
    plan = assess(case, kb, TODAY).plan
    rules = {r.id: r for r in kb.treatment.safety.rules}
    flagged = set(plan.provenance.red_flag_conditions)
    probability = dict(plan.provenance.differential)
    facts = case_facts(case, kb.treatment, neoplasm_probability=probability.get("neoplasm"), neoplasm_red_flag="neoplasm" in flagged,
                       septic_probability=probability.get("septic"), septic_red_flag="septic" in flagged)
    for item in plan.items():
        option = kb.treatment.treatments.options[item.option]
        assert (item.kind, item.title, item.evidence, item.basis, item.refs) == (
            option.kind.value, option.title, option.evidence.value, option.basis.value, option.refs)
        for finding in item.blocked_by + item.cautions + item.needs_information + item.checks_before_use:
            assert finding == reference_finding(rules[finding.rule], facts[finding.fact])
    assert plan.provenance.facts == [
        FactOut(name=f.name, value=f.shown(), source=f.source, inputs=list(f.inputs)) for f in facts.values()
    ]


def test_a_rule_whose_fact_is_not_known_has_one_finding_for_every_case(kb):
    """Two different patients, neither with a stated bleeding risk: the same finding object."""
    plans = [
        make_plan(Case.model_validate({"age_years": age, "sex": sex}), [("toh", 0.8), ("onfh", 0.2)], kb.treatment, TODAY)
        for age, sex in ((44, "male"), (61, "female"))
    ]
    found = [next(f for i in p.items() for f in i.needs_information if f.rule == "nsaid_bleeding") for p in plans]
    assert found[0] is found[1]
    assert found[0].value == "not known"
    rows = [next(f for f in p.provenance.facts if f.name == "bleeding_risk") for p in plans]
    assert rows[0] is rows[1]
    assert rows[0].source == "comorbidities.bleeding_risk not given"


def test_a_known_fact_still_shows_its_value_and_source(kb):
    case = Case.model_validate({"age_years": 44, "sex": "male", "comorbidities": {"bleeding_risk": "present"}})
    plan = make_plan(case, [("toh", 0.8), ("onfh", 0.2)], kb.treatment, TODAY)
    nsaid = next(i for i in plan.items() if i.option == "nsaid")
    blocked = next(f for f in nsaid.blocked_by if f.rule == "nsaid_bleeding")
    assert blocked.value == "yes (comorbidities.bleeding_risk)"
    assert nsaid.status.value == "blocked"


def test_treatment_knowledge_keeps_what_is_built_from_it(kb):
    """``TreatmentKnowledge.attached``: built on first use, then the same object for the knowledge's life."""
    calls = []

    def build(tk):
        calls.append(tk)
        return {"options": len(tk.treatments.options)}

    first = kb.treatment.attached(build)
    assert kb.treatment.attached(build) is first
    assert calls == [kb.treatment]
    assert first == {"options": len(kb.treatment.treatments.options)}
