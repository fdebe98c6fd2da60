"""Loading, checking and compiling the knowledge base.

:func:`load_knowledge_base` reads the YAML files, validates them against
:mod:`hipdx.knowledge.schema`, checks every cross-reference (conditions, states,
citations, case fields) and compiles the probabilities into numpy tables the reasoning
core indexes directly:

- ``log_p[key]``: log-likelihood of one observation (a variable's state or aggregate,
  in one time band) under every condition;
- ``log_p_samples[key]``: the same under ``n_samples`` draws from the uncertainty of
  every number (Beta/Dirichlet with the cited effective sample size, smaller for a figure
  transferred from another population: :attr:`~hipdx.knowledge.schema.Provenance.effective_n`),
  for ranges;
- ``outcome_log_p[variable][band]``: stratified samples of each variable's outcome per
  condition, scored under every condition, for the expected information of a test.

Draws use a fixed seed, so an assessment is reproducible.
"""

from __future__ import annotations

import bisect
import dataclasses
import typing
import zlib
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from hipdx.errors import KnowledgeBaseError, Problem
from hipdx.knowledge.course import COURSE_FILE, CourseFile, CourseKnowledge, compile_course
from hipdx.knowledge.files import DataReader, default_data_dir
from hipdx.knowledge.schema import (
    Basis,
    Bibliography,
    Condition,
    ConditionsFile,
    Distribution,
    KbInfo,
    ProbabilityFlag,
    Provenance,
    RedFlag,
    RedFlagsFile,
    Reference,
    Test,
    TestsFile,
    Variable,
    VariablesFile,
)
from hipdx.knowledge.sources import check_source
from hipdx.knowledge.treatment import SafetyFile, StagingFile, TreatmentKnowledge, TreatmentsFile, compile_treatment

_T = typing.TypeVar("_T")

N_SAMPLES = 200
N_OUTCOMES = 32
_SEED = 20261125
#: Dirichlet draws never go below this, so a sampled log-probability stays finite.
_FLOOR = 1e-4


@dataclass(frozen=True)
class CompiledVariable:
    """A variable with its tables, ready for indexing."""

    spec: Variable
    index: int
    #: (bands + 1, conditions, states): point probabilities; the last band is the
    #: "time not known" mixture (the bands weighted by ``unknown_time``, equal without it).
    probs: np.ndarray
    #: (band, observable state or aggregate) -> row of the knowledge base's key tables
    keys: dict[tuple[int, str], int]
    #: observable -> the states it covers
    observables: dict[str, tuple[str, ...]]
    #: provenance per condition and band (condition ids in base order)
    provenance: list[list[Distribution]]
    #: band -> row of the knowledge base's padded ``info_probs`` table
    info_rows: tuple[int, ...] = ()

    @cached_property
    def cited(self) -> list[list[tuple[str, list[str]]]]:
        """Per condition and band: the basis of the number and its references, as shown."""
        return [[(d.basis.value, d.refs) for d in per_condition] for per_condition in self.provenance]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def n_bands(self) -> int:
        return self.spec.band_count()

    def band(self, days: float | None) -> int:
        """Index of the time band for ``days`` since onset; None gives the mixture band."""
        bounds = self.spec.time_bands_days
        if not bounds:
            return 0
        if days is None:
            return len(bounds) + 1
        return bisect.bisect_right(bounds, days)


@dataclass(frozen=True)
class KnowledgeBase:
    """The compiled, validated knowledge base. Immutable; share one instance."""

    info: KbInfo
    digest: str
    population: str
    conditions: list[Condition]
    variables: dict[str, CompiledVariable]
    tests: list[Test]
    red_flags: list[RedFlag]
    references: dict[str, Reference]
    tests_file: TestsFile
    prior: np.ndarray
    log_prior: np.ndarray
    log_prior_samples: np.ndarray
    log_p: np.ndarray
    log_p_samples: np.ndarray
    #: variable id -> band -> (conditions c', conditions c, outcomes m): log P(outcome m
    #: drawn under condition c | condition c')
    outcome_log_p: dict[str, list[np.ndarray]] = field(repr=False)
    #: (variable bands, conditions, max states): every variable's point probabilities,
    #: zero-padded, and their logs (0 where padded), for the information of missing findings
    info_probs: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0, 0)))
    info_log_probs: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0, 0)))
    counts: dict[str, int] = field(default_factory=dict)
    #: condition -> the urgency tiers of its probability flag (``red_flags.yaml``)
    probability_flags: dict[str, ProbabilityFlag] = field(default_factory=dict)
    #: staging thresholds, management options and safety rules (:mod:`hipdx.knowledge.treatment`)
    treatment: TreatmentKnowledge = field(default=None, repr=False)  # type: ignore[assignment]
    #: expected course and follow-up alert rules (:mod:`hipdx.knowledge.course`)
    course: CourseKnowledge = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def condition_ids(self) -> list[str]:
        return [c.id for c in self.conditions]

    @property
    def version(self) -> str:
        return self.info.version

    def condition(self, condition_id: str) -> Condition:
        for c in self.conditions:
            if c.id == condition_id:
                return c
        raise KeyError(condition_id)

    @cached_property
    def definitions(self) -> list[tuple[int, str, frozenset[str], int]]:
        """(condition, defining variable, its defining states, the condition it is counted with
        otherwise) for every condition ``defined_by`` a finding (``conditions.yaml``)."""
        ids = self.condition_ids
        return [
            (ids.index(c.id), c.defined_by.variable, frozenset(c.defined_by.states), ids.index(c.defined_by.otherwise))
            for c in self.conditions
            if c.defined_by is not None
        ]

    @cached_property
    def dependence_group_of(self) -> dict[str, str]:
        """Variable id -> its dependence group (``kb.yaml`` ``structure``), for grouped variables."""
        return {m: g for g, group in self.info.structure.dependence_groups.items() for m in group.members}

    @cached_property
    def group_column(self) -> np.ndarray:
        """(variables,) index of each variable's dependence group, -1 when it has none (base order)."""
        groups = list(self.info.structure.dependence_groups)
        return np.array([groups.index(self.dependence_group_of[v]) if v in self.dependence_group_of else -1 for v in self.variables], dtype=np.intp)

    @cached_property
    def tempering(self) -> np.ndarray:
        """(samples,) the factor each uncertainty sample tempers the likelihood by (model structure)."""
        low = self.info.structure.tempering_min
        return low + (1.0 - low) * (np.arange(N_SAMPLES) + 0.5) / N_SAMPLES

    @cached_property
    def _attached(self) -> dict[typing.Callable[[KnowledgeBase], typing.Any], typing.Any]:
        return {}

    def attached(self, build: typing.Callable[[KnowledgeBase], _T]) -> _T:
        """What ``build`` derives from this base, built on first use and kept with the base.

        How the reasoning core keeps what it compiles from a base (its case encoder, the
        red-flag triggers as tables): one per base and ``build``, living as long as the base,
        with no module-level cache and without the data layer knowing the core.

        Examples
        --------
        >>> kb = load_knowledge_base()
        >>> kb.attached(lambda kb: len(kb.conditions)) == len(kb.conditions)
        True
        """
        try:
            return self._attached[build]
        except KeyError:
            value = self._attached[build] = build(self)
            return value

    def provenance_counts(self) -> dict[str, int]:
        """How many numbers of the base are reported, derived, transferred or estimated.

        A distribution over k states counts as k - 1 numbers (the last is the rest).
        """
        return dict(self.counts)


def _count_provenance(conditions: list[Condition], variables: dict[str, CompiledVariable]) -> dict[str, int]:
    counts = {b.value: 0 for b in Basis}
    for c in conditions:
        counts[c.prior_provenance.basis.value] += 1
    for var in variables.values():
        for per_condition in var.provenance:
            for dist in per_condition:
                counts[dist.basis.value] += len(var.spec.states) - 1
    return counts


@lru_cache(maxsize=4)
def load_knowledge_base(data_dir: Path | None = None) -> KnowledgeBase:
    """Load, validate and compile the knowledge base in ``data_dir`` (default: bundled).

    The base is every data file of the folder: the differential (conditions, variables,
    tests, red flags), the staging, treatment and safety data, and the expected course,
    all citing one bibliography. The digest covers them all.

    Raises
    ------
    KnowledgeBaseError
        A file is missing or malformed, a number lacks its citation or reasoning, a
        cross-reference does not resolve; every problem is listed.
    """
    reader = DataReader(Path(data_dir) if data_dir is not None else default_data_dir())
    info = reader.read("kb.yaml", KbInfo)
    bibliography = reader.read("bibliography.yaml", Bibliography)
    conditions_file = reader.read("conditions.yaml", ConditionsFile)
    variables: list[Variable] = []
    for path in sorted((reader.data_dir / "variables").glob("*.yaml")):
        vf = reader.read(f"variables/{path.name}", VariablesFile)
        if vf is not None:
            variables.extend(vf.variables)
    tests_file = reader.read("tests.yaml", TestsFile)
    red_flags_file = reader.read("red_flags.yaml", RedFlagsFile)
    staging_file = reader.read("staging.yaml", StagingFile)
    treatments_file = reader.read("treatments.yaml", TreatmentsFile)
    safety_file = reader.read("safety.yaml", SafetyFile)
    course_file = reader.read(COURSE_FILE, CourseFile)
    problems = reader.problems
    if problems:
        raise KnowledgeBaseError("the knowledge base does not match its schema", problems)

    references = bibliography.references
    _check_references(conditions_file, variables, tests_file, red_flags_file, references, problems)
    _check_cross(conditions_file, variables, tests_file, red_flags_file, problems)
    known = {v.id for v in variables}
    condition_ids = {c.id for c in conditions_file.conditions}
    for c in conditions_file.conditions:
        d = c.defined_by
        if d is None:
            continue
        var = next((v for v in variables if v.id == d.variable), None)
        if var is None or not set(d.states) <= set(var.states) or d.otherwise not in condition_ids or d.otherwise == c.id:
            problems.append(Problem(f"conditions.yaml: {c.id}.defined_by", f"needs a known variable, its states and another condition (got {d.variable!r}, {d.states}, {d.otherwise!r})"))
    for gid, group in info.structure.dependence_groups.items():
        for member in group.members:
            if member not in known:
                problems.append(Problem(f"kb.yaml: structure.dependence_groups.{gid}", f"unknown variable {member!r}"))
    for ref in info.structure.refs:
        if ref not in references:
            problems.append(Problem("kb.yaml: structure", f"cites {ref!r}, which is not in bibliography.yaml"))
    digest = reader.digest
    treatment = compile_treatment(staging_file, treatments_file, safety_file, references, digest, problems)
    _check_probability_flags(conditions_file, variables, red_flags_file, references, treatments_file, problems)
    names = {c.id: c.name for c in conditions_file.conditions}
    course = compile_course(course_file, references, names, digest, problems)
    if problems:
        raise KnowledgeBaseError("the knowledge base is inconsistent", problems)

    return _compile(
        info, digest, conditions_file, variables, tests_file, red_flags_file, references, treatment, course
    )


def _all_provenance(
    conditions: ConditionsFile, variables: list[Variable], tests: TestsFile
) -> typing.Iterator[tuple[str, Provenance]]:
    for c in conditions.conditions:
        yield f"conditions.yaml: {c.id}.prior", c.prior_provenance
    for v in variables:
        for cond, entry in v.likelihoods.items():
            for i, dist in enumerate(entry if isinstance(entry, list) else [entry]):
                yield f"variables: {v.id}.{cond}[{i}]", dist
    yield "tests.yaml: pregnancy_burden_factor", tests.pregnancy_provenance
    for t in tests.tests:
        yield f"tests.yaml: {t.id}.burden", t.burden_provenance
        if t.pregnancy_burden_provenance is not None:
            yield f"tests.yaml: {t.id}.pregnancy_burden", t.pregnancy_burden_provenance


def _check_references(conditions, variables, tests, red_flags, references, problems) -> None:
    for where, prov in _all_provenance(conditions, variables, tests):
        for ref in prov.refs:
            if ref not in references:
                problems.append(Problem(where, f"cites {ref!r}, which is not in bibliography.yaml"))
    for rf in red_flags.red_flags:
        for ref in rf.refs:
            if ref not in references:
                problems.append(Problem(f"red_flags.yaml: {rf.id}", f"cites {ref!r}, which is not in bibliography.yaml"))


def _check_cross(conditions, variables, tests, red_flags, problems) -> None:
    ids = [c.id for c in conditions.conditions]
    if len(set(ids)) != len(ids):
        problems.append(Problem("conditions.yaml", "condition ids must be unique"))
    total = sum(c.prior for c in conditions.conditions)
    if abs(total - 1.0) > 1e-6:
        problems.append(Problem("conditions.yaml", f"base priors sum to {total:g}, not 1"))
    by_id: dict[str, Variable] = {}
    for v in variables:
        if v.id in by_id:
            problems.append(Problem(f"variables: {v.id}", "defined twice"))
        by_id[v.id] = v
        extra = set(v.likelihoods) - set(ids) - {"default"}
        if extra:
            problems.append(Problem(f"variables: {v.id}", f"likelihoods for unknown condition(s) {sorted(extra)}"))
        if "default" not in v.likelihoods:
            missing = [c for c in ids if c not in v.likelihoods]
            if missing:
                problems.append(Problem(f"variables: {v.id}", f"no likelihood for {missing} and no default"))
        for reason in check_source(v):
            problems.append(Problem(f"variables: {v.id}.source", reason))
    for t in tests.tests:
        for var in t.reveals:
            if var not in by_id:
                problems.append(Problem(f"tests.yaml: {t.id}", f"reveals unknown variable {var!r}"))
    for rf in red_flags.red_flags:
        if rf.condition not in ids:
            problems.append(Problem(f"red_flags.yaml: {rf.id}", f"unknown condition {rf.condition!r}"))
        for trig in rf.triggers:
            for var, states in trig.all_of.items():
                if var not in by_id:
                    problems.append(Problem(f"red_flags.yaml: {rf.id}", f"unknown variable {var!r}"))
                    continue
                allowed = set(by_id[var].states) | set(by_id[var].aggregates) | {"unknown"}
                bad = set(states) - allowed
                if bad:
                    problems.append(Problem(f"red_flags.yaml: {rf.id}", f"{var} has no state(s) {sorted(bad)}"))
            for var, day in (trig.before_day or {}).items():
                if var not in trig.all_of or "unknown" in trig.all_of[var] or day not in by_id[var].time_bands_days:
                    problems.append(
                        Problem(f"red_flags.yaml: {rf.id}", f"before_day {var}: {day} needs a state of {var} in all_of (not unknown) and a boundary of its time bands")
                    )


def _check_probability_flags(conditions, variables, red_flags, references, treatments, problems) -> None:
    """The urgency tiers of the probability flags name must-not-miss conditions, known thresholds,
    variables and states, and cited publications."""
    must_not_miss = {c.id for c in conditions.conditions if c.must_not_miss}
    by_id = {v.id: v for v in variables}
    seen: set[str] = set()
    for pf in red_flags.probability_flags:
        where = f"red_flags.yaml: probability_flags.{pf.condition}"
        if pf.condition not in must_not_miss or pf.condition in seen:
            problems.append(Problem(where, "needs a must-not-miss condition of conditions.yaml, listed once"))
        seen.add(pf.condition)
        for i, tier in enumerate(pf.tiers):
            if tier.at_or_above is not None and tier.at_or_above not in treatments.thresholds:
                problems.append(Problem(f"{where}.tiers.{i}", f"unknown threshold {tier.at_or_above!r}"))
            for var, states in (tier.when or {}).items():
                known = set(by_id[var].states) | set(by_id[var].aggregates) if var in by_id else set()
                if not known or not set(states) <= known:
                    problems.append(Problem(f"{where}.tiers.{i}", f"unknown variable or state(s) {var}: {states}"))
            problems.extend(
                Problem(f"{where}.tiers.{i}", f"cites {ref!r}, which is not in bibliography.yaml")
                for ref in tier.refs
                if ref not in references
            )


def _full(dist: Distribution, states: list[str]) -> np.ndarray:
    out = np.array([dist.p.get(s, np.nan) for s in states], dtype=float)
    missing = np.isnan(out)
    if missing.any():
        out[missing] = 1.0 - np.nansum(out)
    return out


def _compile(
    info, digest, conditions_file, variables, tests_file, red_flags_file, references, treatment, course
) -> KnowledgeBase:
    rng = np.random.default_rng(_SEED)
    conditions = conditions_file.conditions
    ids = [c.id for c in conditions]
    n_cond = len(ids)

    prior = np.array([c.prior for c in conditions])
    prior_n = np.array([c.prior_provenance.effective_n for c in conditions])
    # Dirichlet on the base prior with the smallest effective sample size of its parts
    prior_samples = rng.dirichlet(prior * prior_n.min(), size=N_SAMPLES).clip(_FLOOR)
    prior_samples /= prior_samples.sum(axis=1, keepdims=True)

    log_rows: list[np.ndarray] = []
    sample_rows: list[np.ndarray] = []
    compiled: dict[str, CompiledVariable] = {}
    outcome_log_p: dict[str, list[np.ndarray]] = {}

    for index, v in enumerate(variables):
        # one stream per variable, seeded by its id: adding or changing one variable does not
        # move the draws of the others, so a knowledge-base diff shows only what changed
        vrng = np.random.default_rng([_SEED, zlib.crc32(v.id.encode("utf-8"))])
        n_states = len(v.states)
        n_bands = v.band_count()
        probs = np.empty((n_bands, n_cond, n_states))
        samples = np.empty((n_bands, N_SAMPLES, n_cond, n_states))
        provenance: list[list[Distribution]] = []
        for ci, cid in enumerate(ids):
            entry = v.likelihoods.get(cid, v.likelihoods.get("default"))
            entries = entry if isinstance(entry, list) else [entry] * n_bands
            provenance.append(list(entries))
            for b, dist in enumerate(entries):
                p = _full(dist, v.states)
                probs[b, ci] = p
                draw = vrng.dirichlet(np.maximum(p * dist.effective_n, 0.05), size=N_SAMPLES).clip(_FLOOR)
                samples[b, :, ci] = draw / draw.sum(axis=1, keepdims=True)
        if n_bands > 1:  # time since onset not known: the bands mixed by their weights (equal unless given)
            w = np.asarray(v.unknown_time.weights if v.unknown_time else [1.0 / n_bands] * n_bands)
            probs = np.concatenate([probs, np.tensordot(w, probs, axes=1)[None]])
            samples = np.concatenate([samples, np.tensordot(w, samples, axes=1)[None]])

        observables = {s: (s,) for s in v.states} | {a: tuple(m) for a, m in v.aggregates.items()}
        keys: dict[tuple[int, str], int] = {}
        for b in range(probs.shape[0]):
            for name, members in observables.items():
                idx = [v.states.index(m) for m in members]
                keys[(b, name)] = len(log_rows)
                log_rows.append(np.log(probs[b][:, idx].sum(axis=1)))
                sample_rows.append(np.log(samples[b][:, :, idx].sum(axis=2)))
        compiled[v.id] = CompiledVariable(v, index, probs, keys, observables, provenance)
        outcome_log_p[v.id] = [_outcome_table(probs[b], vrng) for b in range(probs.shape[0])]

    info_probs, info_log_probs, compiled = _info_tables(compiled, n_cond)
    # one padding row of zeros: "no observation"
    log_rows.append(np.zeros(n_cond))
    sample_rows.append(np.zeros((N_SAMPLES, n_cond)))
    return KnowledgeBase(
        info=info,
        digest=digest,
        population=conditions_file.population,
        conditions=conditions,
        variables=compiled,
        tests=tests_file.tests,
        red_flags=red_flags_file.red_flags,
        probability_flags={pf.condition: pf for pf in red_flags_file.probability_flags},
        references=references,
        tests_file=tests_file,
        prior=prior,
        log_prior=np.log(prior),
        log_prior_samples=np.log(prior_samples).astype(np.float32),
        log_p=np.vstack(log_rows),
        log_p_samples=np.stack(sample_rows).astype(np.float32),  # ranges need no more precision
        outcome_log_p=outcome_log_p,
        info_probs=info_probs,
        info_log_probs=info_log_probs,
        counts=_count_provenance(conditions, compiled),
        treatment=treatment,
        course=course,
    )


def _info_tables(
    compiled: dict[str, CompiledVariable], n_cond: int
) -> tuple[np.ndarray, np.ndarray, dict[str, CompiledVariable]]:
    """Stack every (variable, band) probability table, zero-padded to the widest variable."""
    width = max(len(v.spec.states) for v in compiled.values())
    rows: list[np.ndarray] = []
    out: dict[str, CompiledVariable] = {}
    for vid, var in compiled.items():
        start = len(rows)
        for band_probs in var.probs:
            padded = np.zeros((n_cond, width))
            padded[:, : band_probs.shape[1]] = band_probs
            rows.append(padded)
        out[vid] = dataclasses.replace(var, info_rows=tuple(range(start, len(rows))))
    probs = np.stack(rows)
    with np.errstate(divide="ignore"):
        log_probs = np.where(probs > 0, np.log(np.where(probs > 0, probs, 1.0)), 0.0)
    return probs, log_probs, out


def _outcome_table(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stratified outcome draws per condition, scored under every condition.

    ``probs`` is (conditions, states). Returns (conditions, conditions, outcomes): entry
    [c', c, m] is log P(outcome m drawn under c | c'). Quantiles are spread evenly and
    shuffled per variable, so variables of one test combine like a Latin hypercube. The
    scoring condition comes first so that sums over it are fast.
    """
    n_cond = probs.shape[0]
    u = (np.arange(N_OUTCOMES) + 0.5) / N_OUTCOMES
    u = rng.permutation(u)
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = 1.0
    drawn = np.array([np.searchsorted(cdf[c], u, side="right") for c in range(n_cond)])  # (C, M)
    drawn = np.minimum(drawn, probs.shape[1] - 1)
    # float32: these tables are stacked per assessment; half the memory traffic, ample precision
    return np.ascontiguousarray(np.log(probs[:, drawn]), dtype=np.float32)  # [c', c, m]


def load_treatment_knowledge(data_dir: Path | None = None) -> TreatmentKnowledge:
    """The staging, treatment and safety part of the knowledge base in ``data_dir``.

    Raises
    ------
    KnowledgeBaseError
        As :func:`load_knowledge_base`: the whole base is checked.

    Examples
    --------
    >>> tk = load_treatment_knowledge()
    >>> tk.threshold("arco_iiia_max_depression_mm").value
    2.0
    """
    return load_knowledge_base(data_dir).treatment


def load_course_knowledge(data_dir: Path | None = None) -> CourseKnowledge:
    """The expected course and follow-up alert rules of the knowledge base in ``data_dir``.

    Raises
    ------
    KnowledgeBaseError
        As :func:`load_knowledge_base`: the whole base is checked.

    Examples
    --------
    >>> load_course_knowledge().course("toh").pain.at(0)
    (3.0, 10.0)
    """
    return load_knowledge_base(data_dir).course
