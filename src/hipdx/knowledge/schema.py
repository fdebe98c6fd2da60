"""Schema of the knowledge-base data files, checked when the base is loaded.

The base is a folder of YAML files (``knowledge/data``):

- ``kb.yaml``: version and scope of the base.
- ``bibliography.yaml``: every publication a number cites.
- ``conditions.yaml``: the conditions of the differential, their base priors and
  must-not-miss status.
- ``variables/*.yaml``: the findings (patient, clinical, laboratory, imaging), each one
  variable with mutually exclusive states, and for each condition the probability of
  each state, optionally by time since onset.
- ``tests.yaml``: the tests hipdx can propose next, what they reveal and their burden.
- ``red_flags.yaml``: must-not-miss rules evaluated whatever the probability.

Every probability carries its provenance: ``basis`` is ``reported`` (a figure printed in
the cited publication), ``derived`` (plain arithmetic on printed figures; ``note`` shows
it), ``transferred`` (a figure printed, or derived, for another population: septic knees,
children, stress injuries at any site; ``note`` names that population) or ``estimate`` (a
judgement; ``note`` gives the reasoning). ``n`` is the effective sample size: the study's
denominator for reported, derived and transferred figures, a pseudo-count expressing
confidence for estimates. The uncertainty of each number is sampled from a Beta/Dirichlet
distribution with ``effective_n`` (``n``, made smaller for a transferred figure, see
:data:`TRANSFER_N`), and ``hipdx kb show`` prints the implied 90% range of every number.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ID = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Basis(str, Enum):
    reported = "reported"
    derived = "derived"
    transferred = "transferred"
    estimate = "estimate"


#: How much a transferred figure can know about this base's population, as a sample size.
#: A figure measured in another population carries two errors: the sampling error of its
#: study (its ``n``) and the error of carrying it over, taken to be that of a 20-patient
#: sample: twice the pseudo-count of 10 that most judgements of this base carry, because
#: the figure was at least measured. The two variances add, so the uncertainty is drawn
#: with ``1 / (1/n + 1/TRANSFER_N)``: always below both ``n`` and ``TRANSFER_N``, so a
#: transferred figure is always more uncertain than the same figure reported.
TRANSFER_N = 20.0


class Reference(_Data):
    """One publication, cited by its key."""

    authors: str | None = Field(default=None, description="None where the author list was not retrieved")
    year: int = Field(ge=1900, le=2100)
    title: str | None = Field(default=None, description="None where the exact title was not retrieved")
    journal: str | None = None
    volume_pages: str | None = None
    pmid: str | None = Field(default=None, pattern=r"^\d{5,9}$")
    doi: str | None = Field(default=None, pattern=r"^10\.\d{4,9}/\S+$")
    url: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _locatable(self) -> Reference:
        if not (self.pmid or self.doi or self.url):
            raise ValueError("a reference needs a pmid, a doi or a url so a reader can find it")
        return self


class Cited(_Data):
    """Where a number, threshold, option or rule comes from.

    ``reported``, ``derived`` and ``transferred`` need a ``ref``; ``derived`` and
    ``estimate`` need a ``note`` with the arithmetic or the reasoning, ``transferred`` a
    ``note`` naming the population the figure was measured in.
    """

    basis: Basis
    ref: str | list[str] | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _cited_or_reasoned(self) -> Cited:
        if self.basis in (Basis.reported, Basis.derived, Basis.transferred) and not self.ref:
            raise ValueError(f"a {self.basis.value} item needs a ref")
        if self.basis in (Basis.derived, Basis.estimate) and not self.note:
            raise ValueError(f"a {self.basis.value} item needs a note with its derivation or reasoning")
        if self.basis is Basis.transferred and not self.note:
            raise ValueError("a transferred item needs a note naming the population the figure was measured in")
        return self

    @property
    def refs(self) -> list[str]:
        if self.ref is None:
            return []
        return [self.ref] if isinstance(self.ref, str) else list(self.ref)


class Provenance(Cited):
    """Where a probability comes from, with the effective sample size its uncertainty is drawn with."""

    n: float = Field(gt=0, le=100000, description="effective sample size")

    @property
    def effective_n(self) -> float:
        """The sample size the uncertainty is drawn with: ``n``, combined with
        :data:`TRANSFER_N` for a transferred figure.

        >>> Provenance(basis="transferred", ref="x", note="knees", n=20).effective_n
        10.0
        >>> Provenance(basis="reported", ref="x", n=20).effective_n
        20.0
        """
        if self.basis is Basis.transferred:
            return 1.0 / (1.0 / self.n + 1.0 / TRANSFER_N)
        return self.n


class Distribution(Provenance):
    """Probabilities of a variable's states under one condition.

    ``p`` maps state to probability. One state may be left out; it takes the rest.
    """

    p: dict[str, float]

    @field_validator("p")
    @classmethod
    def _probabilities(cls, p: dict[str, float]) -> dict[str, float]:
        for state, value in p.items():
            if not 0.0 < value < 1.0:
                raise ValueError(f"probability of {state!r} must lie strictly between 0 and 1, not {value}")
        return p


class BandWeights(Cited):
    """The share of observations made in each time band, for a finding whose time since onset
    is not known: the likelihood is the mixture of the bands with these weights.

    >>> BandWeights(weights=[0.05, 0.95], basis="estimate", note="few studies in the first days").weights
    [0.05, 0.95]
    """

    weights: list[float] = Field(min_length=2)

    @field_validator("weights")
    @classmethod
    def _shares(cls, weights: list[float]) -> list[float]:
        if any(not 0.0 < w < 1.0 for w in weights):
            raise ValueError("each band weight must lie strictly between 0 and 1")
        if abs(sum(weights) - 1.0) > 1e-6:
            raise ValueError(f"band weights sum to {sum(weights):g}, not 1")
        return weights


class Definition(_Data):
    """A condition defined by a finding: without it the condition cannot be told from another.

    When the case does not show ``variable`` in one of ``states`` (absent or not known), the
    condition is at most as likely as ``otherwise`` and cannot lead (a first episode of
    regional migratory osteoporosis cannot yet be told from transient osteoporosis).
    """

    variable: _ID
    states: list[_ID] = Field(min_length=1)
    otherwise: _ID
    note: str


class Condition(_Data):
    id: _ID
    name: str
    short: str
    description: str
    must_not_miss: bool = False
    defined_by: Definition | None = None
    includes: list[str] = []
    icd10: list[str] = []
    snomed: str | None = None
    prior: Annotated[float, Field(gt=0, lt=1)]
    prior_provenance: Provenance


class ConditionsFile(_Data):
    population: str
    conditions: list[Condition]
    prior_provenance_note: str


class Source(_Data):
    """How a variable's state is read from a case.

    Exactly one of ``field`` (a dotted path in the case), ``imaging`` (modalities and a
    finding of the most recent study reporting it) or ``computed`` (a named encoder in
    :mod:`hipdx.reasoning.encode`).
    """

    field: str | None = None
    imaging: list[str] | None = None
    finding: str | None = None
    computed: str | None = None
    bins: list[tuple[str, float | None]] | None = Field(
        default=None, description="[state, upper bound (exclusive) in the canonical unit, or null for the last bin]"
    )
    map: dict[str, str | None] | None = Field(
        default=None, description="case value -> state (or aggregate); null: the value is no observation (the base population's own value)"
    )
    qualitative: dict[str, str] | None = Field(
        default=None,
        description=(
            "a laboratory result reported only in words (case labs.qualitative: normal, raised) -> the state or "
            "aggregate of the bins it covers; read only when no value is given"
        ),
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        kinds = [self.field is not None, self.imaging is not None, self.computed is not None]
        if sum(kinds) != 1:
            raise ValueError("a source has exactly one of field, imaging or computed")
        if self.imaging is not None and not self.finding:
            raise ValueError("an imaging source names its finding")
        if self.qualitative is not None and not (self.bins and (self.field or "").startswith("labs.")):
            raise ValueError("qualitative: only a binned laboratory field can be reported in words")
        if self.bins:
            bounds = [b for _, b in self.bins]
            if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
                raise ValueError("bins: only the last bin is open (null upper bound)")
            if any(a >= b for a, b in zip(bounds[:-2], bounds[1:-1])):
                raise ValueError("bins: upper bounds must increase")
        return self


class Variable(_Data):
    """One finding with mutually exclusive states and its probabilities under each condition."""

    id: _ID
    label: str
    group: str = Field(pattern=r"^(patient|history|examination|laboratory|radiograph|mri|ct|bone_scan|imaging)$")
    states: list[_ID] = Field(min_length=2)
    aggregates: dict[str, list[str]] = Field(
        default={}, description="a coarser observation: the union of several states"
    )
    source: Source
    time_bands_days: list[float] = Field(
        default=[], description="band boundaries on days from onset to the observation"
    )
    unknown_time: BandWeights | None = Field(
        default=None,
        description="how the time bands are mixed when the time since onset is not known; equal weights without it",
    )
    note: str | None = None
    likelihoods: dict[str, Distribution | list[Distribution]]

    @model_validator(mode="after")
    def _shape(self) -> Variable:
        if len(set(self.states)) != len(self.states):
            raise ValueError("states must be unique")
        for name, members in self.aggregates.items():
            if name in self.states:
                raise ValueError(f"aggregate {name!r} has the name of a state")
            unknown = set(members) - set(self.states)
            if unknown or len(members) < 2:
                raise ValueError(f"aggregate {name!r} must list at least two known states, not {members}")
        if any(a >= b for a, b in zip(self.time_bands_days, self.time_bands_days[1:])):
            raise ValueError("time_bands_days must increase")
        n_bands = len(self.time_bands_days) + 1
        if self.unknown_time is not None and len(self.unknown_time.weights) != n_bands:
            raise ValueError(f"unknown_time: {len(self.unknown_time.weights)} weights given, {n_bands} time bands")
        for condition, entry in self.likelihoods.items():
            entries = entry if isinstance(entry, list) else [entry]
            if isinstance(entry, list) and len(entry) != n_bands:
                raise ValueError(f"{condition}: {len(entry)} time bands given, {n_bands} expected")
            for dist in entries:
                unknown = set(dist.p) - set(self.states)
                if unknown:
                    raise ValueError(f"{condition}: unknown state(s) {sorted(unknown)}")
                missing = [s for s in self.states if s not in dist.p]
                total = sum(dist.p.values())
                if len(missing) > 1:
                    raise ValueError(f"{condition}: more than one state left out: {missing}")
                if not missing and abs(total - 1.0) > 1e-6:
                    raise ValueError(f"{condition}: probabilities sum to {total:g}, not 1")
                if missing and not total < 1.0:
                    raise ValueError(f"{condition}: probabilities sum to {total:g}; nothing left for {missing[0]!r}")
        return self

    def band_count(self) -> int:
        return len(self.time_bands_days) + 1


class VariablesFile(_Data):
    variables: list[Variable]


class Test(_Data):
    """A test hipdx can propose next."""

    id: _ID
    name: str
    reveals: list[str] = Field(min_length=1)
    burden: float = Field(gt=0, le=20, description="relative cost and burden; a plain radiograph is 1")
    ionising_radiation: bool = False
    gadolinium: bool = False
    invasive: bool = False
    modality: str | None = Field(
        default=None,
        pattern=r"^(radiograph|mri|ct|bone_scan)$",
        description="the test counts as done when the case has a study of this modality",
    )
    contrast: bool = Field(default=False, description="with modality mri: done only by a contrast MRI")
    note: str | None = None
    burden_provenance: Provenance
    pregnancy_burden: float | None = Field(
        default=None, gt=0, le=20, description="the burden in pregnancy, where it differs and no factor applies"
    )
    pregnancy_burden_provenance: Provenance | None = None

    @model_validator(mode="after")
    def _pregnancy_burden_is_sourced(self) -> Test:
        if (self.pregnancy_burden is None) != (self.pregnancy_burden_provenance is None):
            raise ValueError(f"test {self.id}: pregnancy_burden and pregnancy_burden_provenance come together")
        if self.pregnancy_burden is not None and (self.ionising_radiation or self.gadolinium):
            raise ValueError(f"test {self.id}: a test with radiation or gadolinium takes pregnancy_burden_factor")
        return self


class TestsFile(_Data):
    pregnancy_burden_factor: float = Field(gt=1, le=100)
    burden_weight_bits: float = Field(gt=0, le=1, description="bits of expected information one burden unit costs")
    tests: list[Test]
    pregnancy_provenance: Provenance


class Trigger(_Data):
    """An observed state (or aggregate) of a variable, or a conjunction of them."""

    all_of: dict[str, list[str]] = Field(min_length=1, description="variable -> states, all must hold")
    before_day: dict[str, float] | None = Field(
        default=None,
        min_length=1,
        description=(
            "variable of all_of -> a boundary of its time bands (days since onset): its state holds only "
            "when seen on a study made before that day (an MRI taken before edema can show); a study of "
            "unknown date is not early, as its time bands are mixed (unknown_time)"
        ),
    )


class RedFlag(_Data):
    id: _ID
    condition: str
    urgency: str = Field(pattern=r"^(emergency|urgent|soon)$")
    title: str
    triggers: list[Trigger] = Field(min_length=1)
    action: str
    ref: str | list[str]
    note: str | None = None

    @property
    def refs(self) -> list[str]:
        return [self.ref] if isinstance(self.ref, str) else list(self.ref)


class ProbabilityTier(_Data):
    """One urgency of a must-not-miss condition's probability flag, and when it holds.

    A tier holds when the condition's probability reaches ``at_or_above`` (the name of a
    threshold of ``treatments.yaml``), if given, and every state of ``when`` holds, if given.
    """

    urgency: str = Field(pattern=r"^(emergency|urgent|soon)$")
    at_or_above: str | None = Field(default=None, description="a threshold of treatments.yaml (a probability)")
    when: dict[str, list[str]] | None = Field(
        default=None, min_length=1, description="variable -> states, all must hold (e.g. the setting)"
    )
    reason: str = Field(description="why this urgency, in the clinician's words (shown with the flag)")
    action: str
    ref: str | list[str]
    note: str | None = None

    @property
    def refs(self) -> list[str]:
        return [self.ref] if isinstance(self.ref, str) else list(self.ref)


class ProbabilityFlag(_Data):
    """The urgency tiers of one must-not-miss condition's probability flag: the first that holds
    decides; the last holds always (no ``at_or_above``, no ``when``), so the flag is never dropped."""

    condition: str
    tiers: list[ProbabilityTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _last_tier_always_holds(self) -> ProbabilityFlag:
        last = self.tiers[-1]
        if last.at_or_above is not None or last.when is not None:
            raise ValueError("the last tier must hold always (no at_or_above, no when): the flag is never dropped")
        return self


class RedFlagsFile(_Data):
    red_flags: list[RedFlag]
    probability_flags: list[ProbabilityFlag] = Field(
        default=[], description="urgency tiers of the probability flags; a condition not listed takes its plan's urgency"
    )


class Bibliography(_Data):
    references: dict[str, Reference]


class DependenceGroup(_Data):
    """Findings that travel together: counted as one piece of evidence, not as independent ones."""

    members: list[_ID] = Field(min_length=2)
    note: str


class ModelStructure(Cited):
    """How the model departs from naive independence, and how unsure it is of its own structure.

    ``dependence_exponent``: when k findings of one group are known, each counts with the
    weight k ** -exponent (a tempered, or power, likelihood), so k findings that share one
    cause weigh as about sqrt(k) independent ones at 0.5. ``tempering_min``: the ranges
    temper the whole likelihood by a factor drawn uniformly between this and 1 in each
    sample, for the unknown dependence between the remaining findings; the point
    probability uses 1. ``misspecification``: every probability is mixed with an even spread
    over the conditions at this weight, so no output claims more certainty than the model's
    structure supports (at 0.01 nothing exceeds 99.1% or falls below 0.1%).
    """

    dependence_exponent: float = Field(ge=0, le=1)
    dependence_groups: dict[_ID, DependenceGroup]
    tempering_min: float = Field(gt=0, le=1)
    misspecification: float = Field(ge=0, lt=0.5, description="share of the probability spread evenly over the conditions: the model's structure may be wrong")


class KbInfo(_Data):
    name: str
    version: str = Field(pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    scope: str
    assumptions: list[str]
    disclaimer: str
    structure: ModelStructure
