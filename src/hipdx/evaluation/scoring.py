"""Scoring differentials against the final diagnoses of literature vignettes.

The rules are those of ``shared/evaluation/README.md``:

- each ``final_diagnosis.category`` is mapped to the knowledge-base condition it names
  (:data:`CATEGORY_CONDITIONS`); ``rapidly_destructive_osteoarthritis`` counts as ``oa``,
  both neoplasm categories as ``neoplasm``;
- ``bone_marrow_edema_syndrome_with_possible_early_osteonecrosis`` accepts ``toh`` or
  ``onfh``: its rank is the better of the two, its probability their sum, and for the
  Brier score the two are merged into one class;
- a category the knowledge base does not model is a miss: no rank, probability 0.

Metrics, over cases:

- top-1 and top-3: share of cases whose true condition is ranked first / in the first three;
- mean rank: mean rank of the true condition, counting a case without a rank (unmodelled
  category, record not assessed) as ranked after every condition (number of conditions + 1);
- Brier score: mean over cases of ``sum_c (p_c - y_c)^2`` (0 is perfect, 2 the worst); an
  unmodelled truth is an extra class with predicted probability 0;
- log loss: mean of ``-ln p(true)``, p clipped to at least 1e-6 (0 is perfect, 13.8 the worst).

Red flags (:func:`summarise_red_flags`), over the cases whose true condition the knowledge base
marks must-not-miss (``conditions.yaml``): the share with a red flag (rule, staging or
probability) naming that condition, with any red flag, and with a headline (what to do now)
``urgent`` or ``emergency``; over the other scored cases, and over TOH alone, the false alarms:
the share with an ``emergency`` flag and with a flag naming any must-not-miss condition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from pydantic import Field

from hipdx.reasoning.frozen import Frozen, OutputProvenance

#: final_diagnosis.category -> the knowledge-base condition(s) that count as correct.
CATEGORY_CONDITIONS: dict[str, tuple[str, ...]] = {
    "transient_osteoporosis_of_hip": ("toh",),
    "regional_migratory_osteoporosis": ("rmo",),
    "bone_marrow_edema_syndrome_with_possible_early_osteonecrosis": ("toh", "onfh"),
    "osteonecrosis_femoral_head": ("onfh",),
    "subchondral_fracture_femoral_head": ("sif",),
    "femoral_neck_stress_or_insufficiency_fracture": ("fnsf",),
    "septic_arthritis": ("septic",),
    "inflammatory_arthritis": ("inflammatory",),
    "rapidly_destructive_osteoarthritis": ("oa",),
    "neoplasm_metastasis": ("neoplasm",),
    "neoplasm_lymphoma": ("neoplasm",),
    "pigmented_villonodular_synovitis": ("pvns",),
}
#: Smallest probability the log loss takes, so one confident miss stays finite.
LOG_LOSS_FLOOR = 1e-6


def accepted_conditions(category: str, condition_ids: Sequence[str]) -> tuple[str, ...]:
    """The conditions of the knowledge base that count as correct for ``category`` (may be none)."""
    return tuple(c for c in CATEGORY_CONDITIONS.get(category, ()) if c in condition_ids)


class Prediction(Frozen):
    id: str
    probability: float


class CaseScore(Frozen):
    """How well one differential fits one true category."""

    rank: int | None = Field(description="rank of the true condition, 1 = first; None when it is not modelled")
    probability: float = Field(description="probability given to the true condition (summed when two are accepted)")
    brier: float
    log_loss: float


def score_differential(accepted: Sequence[str], differential: Sequence[Prediction]) -> CaseScore:
    """Score a differential (most probable first) against the accepted condition(s).

    Examples
    --------
    >>> d = [Prediction(id="toh", probability=0.6), Prediction(id="onfh", probability=0.3),
    ...      Prediction(id="sif", probability=0.1)]
    >>> s = score_differential(("onfh",), d)
    >>> s.rank, round(s.brier, 2)
    (2, 0.86)
    """
    ranks = [i + 1 for i, p in enumerate(differential) if p.id in accepted]
    p_true = sum(p.probability for p in differential if p.id in accepted)
    others = sum(p.probability**2 for p in differential if p.id not in accepted)
    return CaseScore(
        rank=min(ranks) if ranks else None,
        probability=p_true,
        brier=(p_true - 1.0) ** 2 + others,
        log_loss=-math.log(min(1.0, max(p_true, LOG_LOSS_FLOOR))),
    )


#: The score of a record that could not be assessed: nothing predicted, truth given 0.
NOT_ASSESSED = CaseScore(rank=None, probability=0.0, brier=1.0, log_loss=-math.log(LOG_LOSS_FLOOR))


class Metrics(Frozen):
    cases: int
    top1: float | None = Field(description="share of cases with the true condition ranked first")
    top3: float | None = Field(description="share of cases with the true condition in the first three")
    mean_rank: float | None = Field(
        description="mean rank of the true condition; unranked cases count as n_conditions + 1"
    )
    brier: float | None = Field(description="multi-class Brier score, mean over cases (0 best, 2 worst)")
    log_loss: float | None = Field(description="mean natural-log loss, probabilities clipped at 1e-6")


class Scored(Protocol):
    """Anything with a case's rank, Brier score and log loss (:class:`CaseScore`, :class:`CaseResult`)."""

    @property
    def rank(self) -> int | None: ...
    @property
    def brier(self) -> float: ...
    @property
    def log_loss(self) -> float: ...


def summarise(scores: Sequence[Scored], n_conditions: int) -> Metrics:
    """The metrics of a list of case scores; None for a fraction of no cases."""
    n = len(scores)
    if n == 0:
        return Metrics(cases=0, top1=None, top3=None, mean_rank=None, brier=None, log_loss=None)
    ranks = [s.rank if s.rank is not None else n_conditions + 1 for s in scores]
    return Metrics(
        cases=n,
        top1=round(sum(r == 1 for r in ranks) / n, 4),
        top3=round(sum(r <= 3 for r in ranks) / n, 4),
        mean_rank=round(sum(ranks) / n, 4),
        brier=round(sum(s.brier for s in scores) / n, 4),
        log_loss=round(sum(s.log_loss for s in scores) / n, 4),
    )


class FlagSeen(Frozen):
    """One red flag of an assessment, as the evaluation counts it."""

    id: str
    kind: str = Field(description="'rule', 'staging' or 'probability'")
    condition: str
    urgency: str


class CaseResult(Frozen):
    """One vignette: what was predicted, how it scored, and which facts were used."""

    id: str
    file: str
    category: str | None
    accepted: list[str] = Field(description="conditions counted as correct; empty when the category is not modelled")
    status: str = Field(
        description="'scored', 'unmodelled' (category not in the knowledge base) or 'error' (not assessed)"
    )
    top3: list[Prediction]
    rank: int | None
    probability: float
    brier: float
    log_loss: float
    n_used: int
    n_skipped: int
    used: list[str]
    skipped: list[str]
    must_not_miss: list[str] = Field(
        default=[], description="accepted conditions the knowledge base marks must-not-miss"
    )
    red_flags: list[FlagSeen] = Field(default=[], description="the assessment's red flags, most urgent first")
    headline_urgency: str | None = Field(default=None, description="urgency of the headline; None: not assessed")
    error: str | None = None


class Miss(Frozen):
    id: str
    file: str
    category: str | None
    status: str
    rank: int | None
    probability: float
    top3: list[Prediction]
    error: str | None = None


class RedFlagMiss(Frozen):
    """A must-not-miss case without a red flag naming its condition."""

    id: str
    category: str | None
    must_not_miss: list[str]
    probability: float = Field(description="probability given to the true condition")
    red_flags: list[FlagSeen] = Field(description="the flags it did raise (for other conditions)")
    headline_urgency: str | None
    status: str


class RedFlagCount(Frozen):
    cases: int
    flagged: int = Field(description="cases with a red flag naming the condition")
    emergency: int = Field(default=0, description="cases with an emergency red flag naming the condition")


class RedFlagMetrics(Frozen):
    """How often red flags name the true must-not-miss condition, and how often they raise false alarms."""

    must_not_miss_conditions: list[str] = Field(description="as the knowledge base marks them")
    must_not_miss_cases: int
    flag_for_condition: float | None = Field(description="share with a red flag naming the true condition")
    any_flag: float | None = Field(description="share with any red flag")
    urgent_headline: float | None = Field(description="share whose headline is urgent or emergency")
    by_condition: dict[str, RedFlagCount]
    other_cases: int = Field(description="scored cases whose true condition is not must-not-miss")
    other_emergency_flag: float | None = Field(description="share of them with an emergency flag")
    other_must_not_miss_flag: float | None = Field(description="share of them with a flag naming a must-not-miss condition")
    toh_cases: int = Field(description="cases whose true category is transient osteoporosis of the hip")
    toh_emergency_flag: float | None
    toh_must_not_miss_flag: float | None


def _share(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def flags_condition(result: CaseResult) -> bool:
    """Whether a red flag of the case names one of its true must-not-miss conditions."""
    return any(f.condition in result.must_not_miss for f in result.red_flags)


def summarise_red_flags(results: Sequence[CaseResult], must_not_miss: Sequence[str]) -> RedFlagMetrics:
    """The red-flag measures of a list of case results (a record not assessed raises no flag)."""
    targets = [r for r in results if r.must_not_miss]
    others = [r for r in results if not r.must_not_miss and r.status == "scored"]
    toh = [r for r in others if r.category == "transient_osteoporosis_of_hip"]

    def emergency(r: CaseResult) -> bool:
        return any(f.urgency == "emergency" for f in r.red_flags)

    def names_must_not_miss(r: CaseResult) -> bool:
        return any(f.condition in must_not_miss for f in r.red_flags)

    by_condition = {}
    for condition in must_not_miss:
        of = [r for r in targets if condition in r.must_not_miss]
        by_condition[condition] = RedFlagCount(
            cases=len(of),
            flagged=sum(any(f.condition == condition for f in r.red_flags) for r in of),
            emergency=sum(any(f.condition == condition and f.urgency == "emergency" for f in r.red_flags) for r in of),
        )
    return RedFlagMetrics(
        must_not_miss_conditions=list(must_not_miss),
        must_not_miss_cases=len(targets),
        flag_for_condition=_share(sum(map(flags_condition, targets)), len(targets)),
        any_flag=_share(sum(bool(r.red_flags) for r in targets), len(targets)),
        urgent_headline=_share(sum(r.headline_urgency in ("urgent", "emergency") for r in targets), len(targets)),
        by_condition=by_condition,
        other_cases=len(others),
        other_emergency_flag=_share(sum(map(emergency, others)), len(others)),
        other_must_not_miss_flag=_share(sum(map(names_must_not_miss, others)), len(others)),
        toh_cases=len(toh),
        toh_emergency_flag=_share(sum(map(emergency, toh)), len(toh)),
        toh_must_not_miss_flag=_share(sum(map(names_must_not_miss, toh)), len(toh)),
    )


class FileSummary(Metrics):
    path: str


class ReportProvenance(OutputProvenance):
    knowledge_base: str
    knowledge_base_version: str
    knowledge_base_digest: str
    assessed_on: str = Field(description="the date passed to the assessment")
    n_conditions: int
    files: list[str]


class EvaluationReport(Metrics):
    """The result of evaluating one or more vignette files."""

    confusion: dict[str, dict[str, int]] = Field(description="true category -> predicted top-1 condition -> count")
    misses: list[Miss] = Field(description="cases whose true condition is not ranked first")
    red_flags: RedFlagMetrics
    red_flag_misses: list[RedFlagMiss] = Field(
        description="must-not-miss cases without a red flag naming their condition"
    )
    per_case: list[CaseResult]
    files: list[FileSummary]
    unmodelled: list[str] = Field(description="ids of cases whose category the knowledge base does not model")
    errors: list[str] = Field(description="ids of records that could not be assessed, with the reason")
    provenance: ReportProvenance


def confusion_table(results: Sequence[CaseResult]) -> dict[str, dict[str, int]]:
    """true category -> predicted top-1 condition -> count; '(not assessed)' when none."""
    table: dict[str, dict[str, int]] = {}
    for r in results:
        row = table.setdefault(r.category or "(no category)", {})
        predicted = r.top3[0].id if r.top3 else "(not assessed)"
        row[predicted] = row.get(predicted, 0) + 1
    return {category: dict(sorted(row.items())) for category, row in sorted(table.items())}
