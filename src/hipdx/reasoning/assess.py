"""From one :class:`~hipdx.case.Case` to one :class:`Assessment`. Pure: no I/O, no clock.

The steps, in order: read the case's findings (``encode``), compute the posterior and
its range (``differential``), evaluate the must-not-miss rules (``red_flags``), explain
the leading conditions, propose the next tests (``information``), stage the findings
(``staging``) and draw up the management plan with its safety checks (``plan``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import TypeAdapter

from hipdx._version import __version__
from hipdx.case import Case, Modality
from hipdx.case.model import PregnancyStatus, Trauma
from hipdx.case.timeline import Timeline
from hipdx.knowledge.base import N_SAMPLES, CompiledVariable, KnowledgeBase
from hipdx.knowledge.schema import Test
from hipdx.reasoning.assessment import (
    Assessment,
    ConditionExplanation,
    DifferentialItem,
    Explanation,
    MissingFinding,
    NextTest,
    AssessmentProvenance,
    RedFlagHit,
)
from hipdx.reasoning.differential import (
    likelihood_ratios,
    observation_keys,
    observation_weights,
    undefined_folds,
    posterior,
    posterior_range,
)
from hipdx.reasoning.encode import Observation, encoder_for
from hipdx.reasoning.information import burden_of_test, information_of_tests, variable_information
from hipdx.reasoning.plan import Plan, make_plan
from hipdx.reasoning.headline import flag_urgencies, headline
from hipdx.reasoning.red_flags import URGENCY_ORDER, evaluate_red_flags, staging_flags
from hipdx.reasoning.staging import Staging, scope_staging, stage_case

#: How many conditions are explained, missing findings listed and tests proposed.
N_EXPLAINED = 3
N_MISSING = 5
N_TESTS = 4
#: Tests expected to give less than this (bits) are not proposed.
MIN_TEST_BITS = 0.02
#: When no test is worth its burden, the best one is still shown if it would give this much.
MIN_FALLBACK_BITS = 0.1

#: validates the whole differential in one call (one model per condition is slower)
_DIFFERENTIAL = TypeAdapter(list[DifferentialItem])
#: and the explanations of the leading conditions
_EXPLANATIONS = TypeAdapter(list[ConditionExplanation])


def assess(
    case: Case, kb: KnowledgeBase, today: dt.date, *, management: bool = True, explain: bool = True
) -> Assessment:
    """Assess one case.

    Parameters
    ----------
    case
        A validated case.
    kb
        The compiled knowledge base (:func:`hipdx.knowledge.load_knowledge_base`).
    today
        The date the assessment is made, used only when the case gives dates but no
        ``assessed_on``.
    management
        Also stage the findings and draw up the management plan (default). Without it
        ``staging`` and ``plan`` are None: the diagnostic part alone, for screening many
        cases.
    explain
        Explain the leading conditions finding by finding (default). Without it
        ``explanation.leading`` is empty and everything else is the same: for an answer that
        shows the differential, red flags, plan and next test but not the explanation (the
        CDS card, :mod:`hipdx.service.cards`).

    Examples
    --------
    >>> from hipdx.knowledge import load_knowledge_base
    >>> a = assess(Case(age_years=44, sex="male"), load_knowledge_base(), dt.date(2026, 1, 1))
    >>> a.differential[0].id in {c.id for c in load_knowledge_base().conditions}
    True
    """
    timeline = Timeline(case, today)  # every time of the case, derived once for this assessment
    observations = encoder_for(kb).encode(case, today, timeline)
    keys = observation_keys(kb, observations)
    days_now = timeline.onset

    patient_mask = np.array([kb.variables[o.variable].spec.group == "patient" for o in observations], dtype=bool)
    weights = observation_weights(kb, observations)
    folds = undefined_folds(kb, observations)
    patient_prior = posterior(kb, keys[patient_mask], weights[patient_mask], folds)
    post = posterior(kb, keys, weights, folds)
    ranges = posterior_range(kb, keys, weights, folds)
    order = np.argsort(-post, kind="stable")

    differential = _differential(kb, post, ranges, patient_prior, order)
    observed = {o.variable for o in observations}
    missing_vars = [v for v in kb.variables if v not in observed]
    leading = order[:N_EXPLAINED].tolist()
    explanation = Explanation(
        leading=(
            _explain_leading(kb, _shown(kb, observations), likelihood_ratios(kb, keys), weights, leading, post,
                             patient_prior)
            if explain
            else []
        ),
        missing_that_matter=_missing(kb, post, missing_vars, days_now),
    )
    pregnant = case.pregnancy.status is PregnancyStatus.pregnant
    red_flags = evaluate_red_flags(kb, observations, post, keys)
    staging = plan = None
    if management:
        red_flags, staging, plan = _management(case, kb, today, timeline, differential, red_flags, post)
    return Assessment(
        case_id=case.id,
        disclaimer=kb.info.disclaimer.strip(),
        headline=headline(differential, red_flags, plan),
        differential=differential,
        red_flags=red_flags,
        explanation=explanation,
        next_tests=_next_tests(kb, case, post, observed, days_now, pregnant),
        staging=staging,
        plan=plan,
        uncertainty=_uncertainty(kb, differential, len(observations)),
        warnings=_warnings(case, observations, days_now, kb.treatment.threshold("scope_min_age_years").value),
        provenance=_provenance(kb, observations, missing_vars, days_now),
    )


def _condition_rows(kb: KnowledgeBase) -> list[dict[str, object]]:
    """Per condition (base order), the fields of its differential item that do not depend on the case."""
    return [
        {"id": c.id, "name": c.name, "short": c.short, "prior": round(float(p), 4), "must_not_miss": c.must_not_miss}
        for c, p in zip(kb.conditions, kb.prior)
    ]


def _differential(kb: KnowledgeBase, post: np.ndarray, ranges: np.ndarray, patient_prior: np.ndarray, order: np.ndarray) -> list[DifferentialItem]:
    """The differential, most probable first, to 4 decimals."""
    p_round = np.round(post, 4).tolist()
    range_round = np.round(ranges, 4).tolist()
    patient_round = np.round(patient_prior, 4).tolist()
    rows = kb.attached(_condition_rows)
    return _DIFFERENTIAL.validate_python(
        [
            {**rows[i], "probability": p_round[i], "range": range_round[i], "patient_prior": patient_round[i]}
            for i in order.tolist()
        ]
    )


def _management(
    case: Case,
    kb: KnowledgeBase,
    today: dt.date,
    timeline: Timeline,
    differential: list[DifferentialItem],
    red_flags: list[RedFlagHit],
    post: np.ndarray,
) -> tuple[list[RedFlagHit], Staging, Plan]:
    """The red flags with those of the staging, the staging scoped to the supported conditions, and the plan."""
    # the fracture grade is a fact of the findings: it can add a flag before the staging is scoped
    full = stage_case(case, kb.treatment, today, timeline=timeline)
    red_flags = sorted(red_flags + staging_flags(kb, full, post, red_flags), key=lambda h: URGENCY_ORDER[h.urgency])
    staging = scope_staging(full, supported_conditions(kb, differential, red_flags))
    plan = make_plan(
        case,
        [(d.id, d.probability) for d in differential],
        kb.treatment,
        today,
        red_flags=flag_urgencies(red_flags),
        staging=staging,
        timeline=timeline,
    )
    return red_flags, staging, plan


def _provenance(kb: KnowledgeBase, observations: Sequence[Observation], missing_vars: list[str], days_now: int | None) -> AssessmentProvenance:
    """What the assessment was made from: versions, the inputs used and missing, the assumptions."""
    return AssessmentProvenance(
        hipdx_version=__version__,
        knowledge_base=kb.info.name,
        knowledge_base_version=kb.version,
        knowledge_base_digest=kb.digest,
        population=kb.population.strip(),
        inputs_used=sorted({field for o in observations for field in o.inputs}),
        inputs_missing=missing_vars,
        days_since_onset=days_now,
        assumptions=list(kb.info.assumptions),
        n_uncertainty_samples=N_SAMPLES,
    )


def supported_conditions(kb: KnowledgeBase, differential: Sequence[DifferentialItem], red_flags: Sequence[RedFlagHit]) -> set[str]:
    """The conditions the staging describes: the leading one, any at or above the must-not-miss
    threshold, and any flagged."""
    threshold = kb.treatment.threshold("must_not_miss_probability").value
    return {differential[0].id} | {d.id for d in differential if d.probability >= threshold} | {f.condition for f in red_flags}


@dataclass(frozen=True)
class _Shown:
    """What the explanation shows of one observation, whatever the condition."""

    variable: CompiledVariable
    band: int
    row: dict[str, object]
    patient: bool


def _shown(kb: KnowledgeBase, observations: Sequence[Observation]) -> list[_Shown]:
    out = []
    for obs in observations:
        var = kb.variables[obs.variable]
        spec = var.spec
        row = {
            "variable": obs.variable,
            "label": spec.label,
            "group": spec.group,
            "observed": obs.state,
            "days_since_onset": obs.days if spec.time_bands_days else None,
        }
        out.append(_Shown(var, min(var.band(obs.days), var.n_bands - 1), row, spec.group == "patient"))
    return out


def _explain_leading(
    kb: KnowledgeBase,
    shown: Sequence[_Shown],
    ratios: np.ndarray,
    weights: np.ndarray,
    leading: list[int],
    post: np.ndarray,
    patient_prior: np.ndarray,
) -> list[ConditionExplanation]:
    """Each finding's likelihood ratio for each leading condition, strongest first (as counted: a
    finding of a dependence group with its weight). The ratios of all leading conditions are
    counted, rounded and logged together."""
    counted = ratios[:, leading] ** weights[:, None] if (weights != 1.0).any() else ratios[:, leading]
    lrs = np.round(counted, 3).T.tolist()
    log10s = np.round(np.log10(counted), 3).T.tolist()
    rounded_weights = np.round(weights, 3).tolist()
    # one validation of all the leading conditions' explanations: far faster than a model per finding
    return _EXPLANATIONS.validate_python(
        [_explain(kb, shown, lr, log10, rounded_weights, ci, post, patient_prior) for ci, lr, log10 in zip(leading, lrs, log10s)]
    )


def _strongest_first(row: dict[str, object]) -> float:
    return -abs(row["log10_lr"])  # type: ignore[arg-type]


def _explain(
    kb: KnowledgeBase,
    shown: Sequence[_Shown],
    lrs: list[float],
    log10s: list[float],
    rounded_weights: list[float],
    ci: int,
    post: np.ndarray,
    patient_prior: np.ndarray,
) -> dict[str, object]:
    """The explanation of one condition (as data) from its findings' counted, rounded ratios."""
    patient, findings = [], []
    for item, lr, log10, weight in zip(shown, lrs, log10s, rounded_weights):
        basis, refs = item.variable.cited[ci][item.band]
        row = {
            **item.row,
            "likelihood_ratio": lr,
            "log10_lr": log10,
            "weight": weight,
            "direction": "for" if log10 > 0.05 else "against" if log10 < -0.05 else "neutral",
            "basis": basis,
            "refs": refs,
        }
        (patient if item.patient else findings).append(row)
    return {
        "condition": kb.conditions[ci].id,
        "name": kb.conditions[ci].name,
        "probability": round(float(post[ci]), 4),
        "prior": round(float(kb.prior[ci]), 4),
        "patient_prior": round(float(patient_prior[ci]), 4),
        "patient_factors": sorted(patient, key=_strongest_first),
        "findings": sorted(findings, key=_strongest_first),
    }


def _tests_revealing(kb: KnowledgeBase) -> dict[str, list[str]]:
    """Variable -> the ids of the tests that reveal it, in base order (built once per base)."""
    out: dict[str, list[str]] = {v: [] for v in kb.variables}
    for t in kb.tests:
        for v in t.reveals:
            if t.id not in out.setdefault(v, []):
                out[v].append(t.id)
    return out


def _revealing_tests(kb: KnowledgeBase, variable: str) -> list[str]:
    group = kb.variables[variable].spec.group
    tests = list(kb.attached(_tests_revealing)[variable])
    if group in ("patient", "history"):
        return ["history"] + tests
    if group == "examination":
        return ["examination"] + tests
    return tests


def _missing(kb: KnowledgeBase, post: np.ndarray, missing: list[str], days: float | None) -> list[MissingFinding]:
    bits = variable_information(kb, post, missing, days)
    scored = sorted(zip(bits.tolist(), missing), key=lambda x: -x[0])
    return [
        MissingFinding(
            variable=v,
            label=kb.variables[v].spec.label,
            expected_information_bits=round(bits, 4),
            obtained_by=_revealing_tests(kb, v),
        )
        for bits, v in scored[:N_MISSING]
        if bits > 1e-3
    ]


def _done(test: Test, case: Case) -> bool:
    if test.modality is None:
        return False
    modality = Modality(test.modality)
    return any(s.modality is modality and (s.contrast or not test.contrast) for s in case.imaging)


def _next_tests(
    kb: KnowledgeBase, case: Case, post: np.ndarray, observed: set[str], days: float | None, pregnant: bool
) -> list[NextTest]:
    proposals = []
    weight = kb.tests_file.burden_weight_bits
    candidates = []
    for test in kb.tests:
        unknown = tuple(sorted(v for v in test.reveals if v not in observed))
        if unknown and not _done(test, case):
            candidates.append((test, unknown))
    bits_all, shift_all = information_of_tests(kb, post, [u for _, u in candidates], days)
    for (test, _), bits, shift in zip(candidates, bits_all.tolist(), shift_all):
        if bits < MIN_TEST_BITS:
            continue
        burden, warnings = burden_of_test(kb, test, pregnant)
        proposals.append((bits - weight * burden, test, bits, burden, warnings, shift))
    proposals.sort(key=lambda p: -p[0])
    # tests worth their burden; if none is, still the best one when it would tell something
    worth = [p for p in proposals if p[0] > 0] or [p for p in proposals[:1] if p[2] >= MIN_FALLBACK_BITS]
    out = []
    for score, test, bits, burden, warnings, shift in worth[:N_TESTS]:
        movers = [kb.conditions[i] for i in np.argsort(-shift)[:2] if shift[i] > 0.01]
        moved = " and ".join(f"{c.short} (now {post[kb.condition_ids.index(c.id)]:.0%})" for c in movers)
        reason = f"Expected to remove {bits:.2f} bits of diagnostic uncertainty"
        reason += f"; would most change the probability of {moved}." if moved else "."
        if score <= 0:
            reason += " Its expected yield is small for its burden; consider it only if the answer would change management."
        out.append(
            NextTest(
                id=test.id,
                name=test.name,
                expected_information_bits=round(bits, 4),
                burden=round(burden, 3),
                score=round(score, 4),
                reason=reason,
                warnings=warnings,
            )
        )
    return out


def _uncertainty(kb: KnowledgeBase, differential: list[DifferentialItem], n_observations: int) -> str:
    first, second = differential[0], differential[1]
    low, high = first.range
    if low > second.range[1]:
        lead = f"{first.short} leads clearly: {first.probability:.0%} (range {low:.0%}-{high:.0%})."
    else:
        lead = (
            f"{first.short} ({first.probability:.0%}, range {low:.0%}-{high:.0%}) is not separated from "
            f"{second.short} ({second.probability:.0%}, range {second.range[0]:.0%}-{second.range[1]:.0%})."
        )
    counts = kb.provenance_counts()
    total = sum(counts.values())
    return (
        f"{lead} Based on {n_observations} known findings; {counts['estimate']} of the base's "
        f"{total} numbers are estimates, so treat the figures as a ranking, not as calibrated risks."
    )


def _warnings(case: Case, observations: Sequence[Observation], days: float | None, scope_min_age: float) -> list[str]:
    out = []
    if case.age_years is not None and case.age_years < scope_min_age:
        out.append(
            f"The patient is under {scope_min_age:g}: hipdx is built for adults and recommends no medicine; in children "
            "consider transient synovitis, Perthes disease, slipped capital femoral epiphysis and the Kocher criteria."
        )
    if case.trauma is Trauma.major:
        out.append("Major trauma is outside the scope of hipdx: manage as an injury first.")
    if not case.imaging:
        out.append("No imaging yet: the differential rests on history, examination and laboratory findings only.")
    edema = next((o for o in observations if o.variable == "mri_edema"), None)
    if edema is not None and edema.state == "none":
        if edema.days is not None and edema.days < 2:
            out.append("MRI within 48 h of onset can miss bone marrow edema; repeat it if pain persists.")
        else:
            out.append(
                "The MRI shows no bone marrow edema. hipdx ranks only the marrow-edema conditions it models; "
                "with a normal MRI consider causes outside them (labral tear, tendinopathy, bursitis, "
                "referred lumbar or abdominal pain), and read the probabilities as relative."
            )
    if days is None:
        out.append("Time since onset is not known: time-dependent findings are weighed as if the time were unknown.")
    return out
