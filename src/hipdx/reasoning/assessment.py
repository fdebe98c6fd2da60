"""The assessment: everything the core concludes about one case, ready to render.

Every way out (terminal, JSON, REST, CDS cards, FHIR, reports) renders this one object.
"""

from __future__ import annotations

from pydantic import Field

from hipdx.reasoning.frozen import Frozen, OutputProvenance
from hipdx.reasoning.plan import Plan
from hipdx.reasoning.staging import Staging


class DifferentialItem(Frozen):
    id: str
    name: str
    short: str
    probability: float = Field(description="posterior probability with the knowledge base's point numbers")
    range: tuple[float, float] = Field(
        description="5th-95th percentile of the probability when every number is sampled from its uncertainty"
    )
    prior: float = Field(description="base prior in the reference population")
    patient_prior: float = Field(description="prior for this patient: after age, sex, pregnancy and risk factors")
    must_not_miss: bool


class Contribution(Frozen):
    """What one observed finding does to one condition."""

    variable: str
    label: str
    group: str
    observed: str
    likelihood_ratio: float = Field(
        description="P(finding | condition) / P(finding | other conditions), as counted: raised to the finding's weight"
    )
    log10_lr: float
    weight: float = Field(default=1.0, description="below 1 for a finding of a dependence group (kb.yaml structure): counted with this weight")
    direction: str = Field(description="'for', 'against' or 'neutral'")
    basis: str = Field(description="reported, derived, transferred (measured in another population) or estimate")
    refs: list[str]
    days_since_onset: float | None = None


class ConditionExplanation(Frozen):
    condition: str
    name: str
    probability: float
    prior: float
    patient_prior: float
    patient_factors: list[Contribution] = Field(description="age, sex, pregnancy and risk factors")
    findings: list[Contribution] = Field(description="history, examination, laboratory and imaging")


class MissingFinding(Frozen):
    variable: str
    label: str
    expected_information_bits: float
    obtained_by: list[str] = Field(description="tests that would reveal it")


class Explanation(Frozen):
    leading: list[ConditionExplanation]
    missing_that_matter: list[MissingFinding]


class RedFlagHit(Frozen):
    id: str
    kind: str = Field(description="'rule' (a rule of red_flags.yaml holds), 'staging' (the staging grades a femoral neck fracture) or 'probability' (the model ranks a must-not-miss condition at or above the must-not-miss threshold)")
    condition: str
    condition_name: str
    urgency: str
    title: str
    triggered_by: list[str] = Field(description="the findings that met the rule, as variable = state (identifiers, for machines)")
    met_by: list[str] = Field(
        default=[],
        description="the same findings in words for the clinician: the variable's label and the state's words "
        "(e.g. 'Sex and pregnancy: pregnant or postpartum'); what every view shows",
    )
    action: str
    refs: list[str]
    condition_probability: float


class NextTest(Frozen):
    id: str
    name: str
    expected_information_bits: float
    burden: float
    score: float = Field(description="expected information minus weighted burden; higher is better")
    reason: str
    warnings: list[str]


class AssessmentProvenance(OutputProvenance):
    """How the assessment was made: the knowledge base, the inputs used and missing, the assumptions."""

    knowledge_base: str
    knowledge_base_version: str
    knowledge_base_digest: str
    population: str
    inputs_used: list[str]
    inputs_missing: list[str] = Field(description="variables of the model not known for this case")
    days_since_onset: float | None
    assumptions: list[str]
    n_uncertainty_samples: int


class Headline(Frozen):
    """What to do now, in one line: the most urgent of the red flags and the plan's sections."""

    urgency: str = Field(description="emergency, urgent, soon or routine: the most urgent red flag or plan section")
    condition: str = Field(description="the condition it is about")
    text: str


class Assessment(Frozen):
    case_id: str | None
    disclaimer: str
    headline: Headline
    differential: list[DifferentialItem] = Field(description="most probable first")
    red_flags: list[RedFlagHit] = Field(description="must-not-miss rules met, most urgent first")
    explanation: Explanation
    next_tests: list[NextTest] = Field(description="best first")
    staging: Staging | None = Field(
        description="ARCO 2019 and other stages, TOH phase, band and fracture grades (None: not asked for)"
    )
    plan: Plan | None = Field(description="ordered, cited management plan with safety checks (None: not asked for)")
    uncertainty: str = Field(description="a sentence on how sure the model is, in words")
    warnings: list[str]
    provenance: AssessmentProvenance
