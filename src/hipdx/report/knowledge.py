"""What the knowledge base holds, for a reader checking it: one condition, or the whole base.

:func:`describe_condition` gathers, for one condition, its base prior and the probability
of every state of every variable with its provenance and the 90% range that the cited
effective sample size implies; :func:`render_condition_text` and
:func:`render_check_text` lay them out for a terminal.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from hipdx.errors import InputError
from hipdx.knowledge.base import CompiledVariable, KnowledgeBase
from hipdx.knowledge.schema import Provenance, Trigger
from hipdx.report import view
from hipdx.report.text import BASIS_STYLE, DEFAULT_WIDTH, URGENCY_STYLE, capture, heading

#: Draws and seed for the implied ranges: fixed, so ``kb show`` prints the same every time.
RANGE_DRAWS = 4000
RANGE_SEED = 0


def implied_range(probabilities: np.ndarray, n: float) -> np.ndarray:
    """5th and 95th percentile of each probability under Dirichlet(``probabilities`` x ``n``).

    With two states this is the Beta distribution of one proportion with effective sample
    size ``n``.

    Returns
    -------
    numpy.ndarray
        Shape (states, 2).

    >>> implied_range(np.array([0.5, 0.5]), 100).round(2).tolist()
    [[0.42, 0.58], [0.42, 0.58]]
    """
    draws = np.random.default_rng(RANGE_SEED).dirichlet(np.asarray(probabilities) * n, size=RANGE_DRAWS)
    return np.percentile(draws, [5, 95], axis=0).T


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Cited(_View):
    key: str
    citation: str


class Estimate(_View):
    """One state's probability and its implied 90% range."""

    state: str
    probability: float
    range: tuple[float, float]


class Sourced(_View):
    """Where a number (or a distribution of numbers) comes from.

    ``n_effective`` is the sample size its range is drawn with: ``n``, smaller for a
    figure transferred from another population.
    """

    basis: str
    n: float
    n_effective: float
    note: str | None
    refs: list[Cited]


class Band(_View):
    """The distribution of a variable's states under the condition in one time band."""

    days: str | None = None
    from_days: float | None = None
    to_days: float | None = None
    shared_default: bool = False
    estimates: list[Estimate]
    source: Sourced


class VariableProfile(_View):
    id: str
    label: str
    group: str
    note: str | None
    bands: list[Band]


class Prior(_View):
    probability: float
    range: tuple[float, float]
    source: Sourced


class RedFlagProfile(_View):
    id: str
    urgency: str
    title: str
    triggers: list[str]
    action: str
    refs: list[Cited]


class ThresholdProfile(_View):
    """A threshold of ``treatments.yaml`` as shown: its value, basis, reasoning and sources."""

    id: str
    value: float
    basis: str
    note: str | None
    refs: list[Cited]


class ProbabilityTierProfile(_View):
    """One urgency tier of a probability flag: when it holds (a threshold, a state, or always)."""

    urgency: str
    when: str
    threshold: ThresholdProfile | None
    reason: str
    action: str
    note: str | None
    refs: list[Cited]


class ProbabilityFlagProfile(_View):
    """The probability flag of a must-not-miss condition: raised at ``raised_at`` on a case with a
    finding, or on the patient's facts alone when the condition is ranked first at
    ``leading_alone`` (never above urgent then); its urgency is the first tier that holds, or the
    plan's (``plan_urgency``) for a condition without tiers."""

    id: str
    raised_at: ThresholdProfile
    leading_alone: ThresholdProfile
    tiers: list[ProbabilityTierProfile]
    plan_urgency: str


class ConditionProfile(_View):
    """Everything the knowledge base holds for one condition."""

    id: str
    name: str
    short: str
    description: str
    must_not_miss: bool
    prior: Prior
    variables: list[VariableProfile]
    red_flags: list[RedFlagProfile]
    probability_flag: ProbabilityFlagProfile | None
    knowledge_base_version: str
    knowledge_base_digest: str


def describe_condition(kb: KnowledgeBase, condition_id: str) -> ConditionProfile:
    """Gather what the base holds for ``condition_id``.

    Raises
    ------
    InputError
        The base has no such condition; the message lists the ids it has.
    """
    if condition_id not in kb.condition_ids:
        raise InputError(f"unknown condition {condition_id!r}; known conditions: {', '.join(kb.condition_ids)}")
    ci = kb.condition_ids.index(condition_id)
    condition = kb.conditions[ci]
    return ConditionProfile(
        id=condition.id,
        name=condition.name,
        short=condition.short,
        description=" ".join(condition.description.split()),
        must_not_miss=condition.must_not_miss,
        prior=_prior(kb, condition.prior, condition.prior_provenance),
        variables=[_variable(kb, var, ci) for var in kb.variables.values()],
        red_flags=[
            RedFlagProfile(
                id=rf.id,
                urgency=rf.urgency,
                title=rf.title,
                triggers=[_trigger_text(t) for t in rf.triggers],
                action=" ".join(rf.action.split()),
                refs=_cited(kb, rf.refs),
            )
            for rf in kb.red_flags
            if rf.condition == condition_id
        ],
        probability_flag=_probability_flag(kb, condition_id) if condition.must_not_miss else None,
        knowledge_base_version=kb.version,
        knowledge_base_digest=kb.digest,
    )


def _trigger_text(trigger: Trigger) -> str:
    """``"repetitive_loading = present and mri_edema = none or focal (on a study before day 2)"``."""
    early = trigger.before_day or {}
    return " and ".join(
        f"{v} = {' or '.join(s)}" + (f" (on a study before day {early[v]:g} since onset)" if v in early else "")
        for v, s in trigger.all_of.items()
    )


def _probability_flag(kb: KnowledgeBase, condition_id: str) -> ProbabilityFlagProfile:
    """The probability flag of a must-not-miss condition: its thresholds and urgency tiers
    (``probability_flags`` of ``red_flags.yaml``), each with its source."""
    spec = kb.probability_flags.get(condition_id)
    tiers = []
    for tier in spec.tiers if spec else []:
        threshold = _threshold(kb, tier.at_or_above) if tier.at_or_above else None
        conditions = [f"probability {view.percent(threshold.value)} or more ({threshold.id})"] if threshold else []
        conditions += [f"{v} = {' or '.join(states)}" for v, states in (tier.when or {}).items()]
        tiers.append(
            ProbabilityTierProfile(
                urgency=tier.urgency,
                when=" and ".join(conditions) or "otherwise (always holds: the flag is never dropped)",
                threshold=threshold,
                reason=tier.reason,
                action=" ".join(tier.action.split()),
                note=" ".join(tier.note.split()) if tier.note else None,
                refs=_cited(kb, tier.refs),
            )
        )
    return ProbabilityFlagProfile(
        id=f"{condition_id}_probability",
        raised_at=_threshold(kb, "must_not_miss_probability"),
        leading_alone=_threshold(kb, "must_not_miss_leading_probability"),
        tiers=tiers,
        plan_urgency=kb.treatment.treatments.plans[condition_id].urgency,
    )


def _threshold(kb: KnowledgeBase, name: str) -> ThresholdProfile:
    t = kb.treatment.threshold(name)
    note = " ".join(t.note.split()) if t.note else None
    return ThresholdProfile(id=name, value=t.value, basis=t.basis.value, note=note, refs=_cited(kb, t.refs))


def _cited(kb: KnowledgeBase, keys: list[str]) -> list[Cited]:
    return [Cited(key=k, citation=view.citation(k, kb.references.get(k))) for k in keys]


def _sourced(kb: KnowledgeBase, prov: Provenance) -> Sourced:
    return Sourced(
        basis=prov.basis.value,
        n=prov.n,
        n_effective=round(prov.effective_n, 2),
        note=prov.note,
        refs=_cited(kb, prov.refs),
    )


def _prior(kb: KnowledgeBase, p: float, prov: Provenance) -> Prior:
    low, high = implied_range(np.array([p, 1 - p]), prov.effective_n)[0]
    return Prior(probability=p, range=(round(float(low), 4), round(float(high), 4)), source=_sourced(kb, prov))


def band_bounds(bounds: list[float], band: int) -> tuple[float | None, float | None]:
    """(from, to) days of time band ``band`` given the band boundaries; None is open."""
    edges: list[float | None] = [0.0, *bounds, None]
    return edges[band], edges[band + 1]


def band_label(low: float | None, high: float | None) -> str:
    """``"21-42 days"``, ``"42 days or more"`` or ``"under 21 days"`` since onset."""
    if high is None:
        return f"{view.days(low or 0)} days or more"
    if not low:
        return f"under {view.days(high)} days"
    return f"{view.days(low)}-{view.days(high)} days"


def _variable(kb: KnowledgeBase, var: CompiledVariable, ci: int) -> VariableProfile:
    spec = var.spec
    own = kb.condition_ids[ci] in spec.likelihoods
    bands = []
    for b, dist in enumerate(var.provenance[ci]):
        probs = var.probs[b, ci]
        ranges = implied_range(probs, dist.effective_n)
        low, high = band_bounds(spec.time_bands_days, b) if spec.time_bands_days else (None, None)
        bands.append(
            Band(
                days=band_label(low, high) if spec.time_bands_days else None,
                from_days=low,
                to_days=high,
                shared_default=not own,
                estimates=[
                    Estimate(state=s, probability=round(float(p), 4), range=(round(float(r[0]), 4), round(float(r[1]), 4)))
                    for s, p, r in zip(spec.states, probs, ranges)
                ],
                source=_sourced(kb, dist),
            )
        )
    note = " ".join(spec.note.split()) if spec.note else None
    return VariableProfile(id=spec.id, label=spec.label, group=spec.group, note=note, bands=bands)


# -- terminal ----------------------------------------------------------------------------


def render_condition_text(profile: ConditionProfile, *, color: bool = False, width: int = DEFAULT_WIDTH) -> str:
    """A condition's profile for a terminal."""
    return capture(_condition(profile), color=color, width=width)


def _condition(p: ConditionProfile) -> Iterator[RenderableType]:
    title = Text.assemble((f"{p.short}: {p.name}", "bold"), f"  ({p.id})")
    if p.must_not_miss:
        title.append(f"  {view.MUST_NOT_MISS}", style="bold red")
    yield title
    yield Text(p.description)
    yield Text(f"knowledge base {p.knowledge_base_version} (digest {p.knowledge_base_digest})", style="dim")
    yield heading("Base prior (90% range)")
    prior = _grid()
    prior.add_row(
        "",
        Text.assemble((view.percent(p.prior.probability), "bold"), f" ({view.percent_range(*p.prior.range)})  "),
    )
    _add_source(prior, p.prior.source)
    yield prior
    yield heading("Variables: probability of each state given the condition (90% range)")
    for variable in p.variables:
        yield _variable_block(variable)
    yield heading("Red flags")
    if not p.red_flags:
        yield Text("None for this condition.", style="dim")
    for rf in p.red_flags:
        yield _red_flag_block(rf)
    if p.probability_flag is not None:
        yield _probability_flag_block(p.probability_flag)


def _grid() -> Table:
    """Two columns: a short label (or indent) and text that wraps under itself."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=2)
    grid.add_column()
    return grid


def _add_source(grid: Table, source: Sourced, shared_default: bool = False, first: bool = True) -> None:
    """Rows for the basis and n; with ``first``, also the note and the references."""
    line = Text.assemble("basis ", (source.basis, BASIS_STYLE.get(source.basis, "")), f", n {source.n:g}")
    if source.n_effective != source.n:
        line.append(f" (range drawn with n {source.n_effective:.3g}: measured in another population)")
    if shared_default:
        line.append(" (default for conditions without their own entry)", style="dim")
    grid.add_row("", line)
    if not first:
        return
    if source.note:
        grid.add_row("", Text(f"note: {' '.join(source.note.split())}", style="italic"))
    for ref in source.refs:
        grid.add_row("", Text(f"{ref.key}: {ref.citation}", style="dim"))


def _variable_block(v: VariableProfile) -> Group:
    grid = _grid()
    if v.note:
        grid.add_row("", Text(v.note, style="dim"))
    seen: list[Sourced] = []
    for band in v.bands:
        estimates = "  ".join(
            f"{view.state_label(e.state)} {view.percent(e.probability)} ({view.percent_range(*e.range)})"
            for e in band.estimates
        )
        grid.add_row(band.days or "", estimates)
        _add_source(grid, band.source, band.shared_default, first=band.source not in seen)
        seen.append(band.source)
    title = Text.assemble((v.label, "bold"), f"  ({v.id}, {v.group})")
    return Group(title, grid, Text())


def _red_flag_block(rf: RedFlagProfile) -> Group:
    title = Text.assemble((f"{rf.urgency.upper()}: {rf.title}", URGENCY_STYLE.get(rf.urgency, "bold")), f"  ({rf.id})")
    grid = _grid()
    for trigger in rf.triggers:
        grid.add_row("", f"when {trigger}")
    grid.add_row("", f"action: {rf.action}")
    for ref in rf.refs:
        grid.add_row("", Text(f"{ref.key}: {ref.citation}", style="dim"))
    return Group(title, grid, Text())


def _probability_flag_block(pf: ProbabilityFlagProfile) -> Group:
    """The probability flag: when it is raised, and each urgency tier with its source."""
    grid = _grid()
    grid.add_row("", f"raised when the model gives it {view.percent(pf.raised_at.value)} or more ({pf.raised_at.id}) and no rule above holds, on a case with a finding")
    _add_threshold(grid, pf.raised_at)
    grid.add_row(
        "",
        f"on age, sex, pregnancy and risk factors alone only when ranked first at {view.percent(pf.leading_alone.value)} "
        f"or more ({pf.leading_alone.id}), then never above URGENT",
    )
    _add_threshold(grid, pf.leading_alone)
    if not pf.tiers:
        grid.add_row("", f"urgency: the plan's, {pf.plan_urgency.upper()}")
    for tier in pf.tiers:
        grid.add_row("", Text.assemble((f"{tier.urgency.upper()}", URGENCY_STYLE.get(tier.urgency, "bold")), f" when {tier.when}: {tier.reason}"))
        if tier.threshold is not None:
            _add_threshold(grid, tier.threshold)
        grid.add_row("", f"action: {tier.action}")
        if tier.note:
            grid.add_row("", Text(f"note: {tier.note}", style="italic"))
        for ref in tier.refs:
            grid.add_row("", Text(f"{ref.key}: {ref.citation}", style="dim"))
    title = Text.assemble(("Probability flag: urgency by tier (the first that holds decides)", "bold"), f"  ({pf.id})")
    return Group(title, grid, Text())


def _add_threshold(grid: Table, t: ThresholdProfile) -> None:
    """The threshold's value, basis, reasoning and sources, indented under the line that uses it."""
    inner = _grid()
    inner.add_row("", Text.assemble(f"{t.id} = {t.value:g}: basis ", (t.basis, BASIS_STYLE.get(t.basis, ""))))
    if t.note:
        inner.add_row("", Text(f"note: {t.note}", style="italic"))
    for ref in t.refs:
        inner.add_row("", Text(f"{ref.key}: {ref.citation}", style="dim"))
    grid.add_row("", inner)


def reference_gaps(kb: KnowledgeBase) -> list[tuple[str, list[str]]]:
    """(key, missing fields) for every reference whose authors or title was not retrieved."""
    gaps = []
    for key, ref in kb.references.items():
        missing = [name for name in ("authors", "title") if getattr(ref, name) is None]
        if missing:
            gaps.append((key, missing))
    return gaps


def render_check_text(kb: KnowledgeBase, *, color: bool = False, width: int = DEFAULT_WIDTH) -> str:
    """The result of checking the whole base: counts, provenance of the numbers, gaps."""
    return capture(_check(kb), color=color, width=width)


def _check(kb: KnowledgeBase) -> Iterator[RenderableType]:
    yield Text.assemble(("knowledge base is valid", "bold green"), f": {kb.info.name} {kb.version} (digest {kb.digest})")
    counts = Table.grid(padding=(0, 2))
    counts.add_column(justify="right")
    counts.add_column()
    for label, number in [
        ("conditions", len(kb.conditions)),
        ("variables", len(kb.variables)),
        ("tests", len(kb.tests)),
        ("red flags", len(kb.red_flags)),
        ("staging systems and thresholds", len(kb.treatment.staging.systems) + len(kb.treatment.staging.thresholds)),
        ("management options", len(kb.treatment.treatments.options)),
        ("safety rules", len(kb.treatment.safety.rules)),
        ("expected courses", len(kb.course.courses)),
        ("course alert rules", len(kb.course.alerts)),
        ("references", len(kb.references)),
    ]:
        counts.add_row(str(number), label)
    yield counts
    provenance = kb.provenance_counts()
    total = sum(provenance.values())
    yield heading(f"Provenance of the {total} probabilities of the differential")
    numbers = Table.grid(padding=(0, 2))
    numbers.add_column(justify="right")
    numbers.add_column()
    numbers.add_column(justify="right", style="dim")
    for basis, number in provenance.items():
        numbers.add_row(str(number), Text(basis, style=BASIS_STYLE.get(basis, "")), view.percent(number / total))
    yield numbers
    gaps = reference_gaps(kb)
    yield heading(f"Warnings: {len(gaps)} references with gaps")
    for key, missing in gaps:
        yield Text(f"warning: reference {key}: {' and '.join(missing)} not retrieved", style="yellow")
