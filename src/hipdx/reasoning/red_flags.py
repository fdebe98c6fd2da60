"""Must-not-miss red flags: fixed rules on the findings, and the model's own ranking.

Two kinds of flag, both evaluated on every assessment:

* **Rule flags** (``red_flags.yaml``): a trigger's findings hold, whatever the probability
  of the condition (a fracture line is a flag even when the differential favours TOH).
* **Staging flags**: a femoral neck fracture the staging grades, at its grade's urgency.
* **Probability flags**: a must-not-miss condition (``conditions.yaml``) reaches the plan's
  ``must_not_miss_probability`` (5%, ``treatments.yaml``) while no rule of its own holds.
  The model ranking a fracture, an infection or a tumour that high is itself a reason to
  exclude it, and the plan opens that condition's exclusion pathway at the same threshold,
  so the two always agree. A flag must rest on findings: a case known only by age, sex,
  pregnancy and risk factors raises no probability flag (the differential then rests on the
  prior alone; the findings that matter are asked for instead), unless the model ranks the
  condition first at ``must_not_miss_leading_probability`` (50%) or more: then it is flagged,
  never above ``urgent`` (no emergency on the patient's facts alone). Its urgency is the first
  tier of ``probability_flags`` (``red_flags.yaml``) that holds (the septic flag: an emergency
  at 20% or in the emergency department, else urgent), or the plan's for a condition not
  listed there; the flag itself is never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hipdx.knowledge.base import CompiledVariable, KnowledgeBase
from hipdx.knowledge.schema import ProbabilityTier
from hipdx.reasoning.assessment import RedFlagHit
from hipdx.reasoning.encode import Observation
from hipdx.reasoning.staging import Staging, fracture_flag_urgency

#: Trigger pseudo-state: the variable is not known.
UNKNOWN = "unknown"

URGENCY_ORDER = {"emergency": 0, "urgent": 1, "soon": 2, "routine": 3}


def probability_flag_id(condition: str) -> str:
    """The id of the probability flag of one must-not-miss condition."""
    return f"{condition}_probability"


def probability_flag_ids(kb: KnowledgeBase) -> tuple[str, ...]:
    """The ids of every probability flag, in knowledge-base order of their conditions."""
    return tuple(probability_flag_id(c.id) for c in kb.conditions if c.must_not_miss)


class RedFlagRules:
    """The red flags of one knowledge base compiled to tables over its key rows, once per base.

    Every condition of a trigger ("``variable`` in ``states``") becomes a boolean mask over
    the base's rows: a row holds when its observable lies within the listed states (an
    aggregate only when all the states it covers are listed); the padding row, "variable
    not known", holds when the trigger lists the pseudo-state ``unknown``. A trigger's
    ``before_day`` keeps, for its variable, only the rows of the time bands that end by that day
    (an MRI made before edema can show); a study of unknown date is not early. A trigger holds
    when all its conditions hold, a flag when any trigger does. The single assessment
    (:func:`evaluate_red_flags`, one row) and the batch (:func:`hipdx.reasoning.batch.assess_batch`,
    a key matrix) evaluate these same tables.

    Build it with :func:`red_flag_rules` (kept with the base).
    """

    def __init__(self, kb: KnowledgeBase) -> None:
        n_rows = len(kb.log_p)
        self.padding = n_rows - 1
        self.n_columns = len(kb.variables)
        column = {vid: i for i, vid in enumerate(kb.variables)}
        columns: list[int] = []
        masks: list[np.ndarray] = []
        condition_trigger: list[int] = []
        trigger_flag: list[int] = []
        #: per trigger: the variables it names, in order (for the text of a hit)
        self.trigger_variables: list[tuple[str, ...]] = []
        #: per trigger: variable -> the day before which its study must have been made
        self.trigger_early: list[dict[str, float]] = []
        for f, rf in enumerate(kb.red_flags):
            for trigger in rf.triggers:
                t = len(trigger_flag)
                trigger_flag.append(f)
                self.trigger_variables.append(tuple(trigger.all_of))
                before_day = trigger.before_day or {}
                self.trigger_early.append(before_day)
                for variable, states in trigger.all_of.items():
                    var = kb.variables[variable]
                    allowed = {member for s in states if s != UNKNOWN for member in var.observables[s]}
                    early = _bands_before(var, before_day.get(variable))
                    mask = np.zeros(n_rows, dtype=bool)
                    mask[self.padding] = UNKNOWN in states
                    for (band, observed), key in var.keys.items():
                        covered = set(var.observables[observed])
                        # "unknown" also matches an aggregate only partly known that may lie within the
                        # states: a CRP reported as "raised" without a value may be below 50 mg/L
                        mask[key] = band in early and (covered <= allowed or (UNKNOWN in states and bool(covered & allowed)))
                    columns.append(column[variable])
                    masks.append(mask)
                    condition_trigger.append(t)
        n_triggers, n_flags = len(trigger_flag), len(kb.red_flags)
        self.columns = np.asarray(columns, dtype=np.intp)
        self.masks = np.asarray(masks, dtype=bool).reshape(len(columns), n_rows)
        self._condition_index = np.arange(len(columns))
        #: (conditions, triggers) and (triggers, flags) membership, for "all of" and "any of"
        self.trigger_of = np.zeros((len(columns), n_triggers), dtype=np.int64)
        self.trigger_of[self._condition_index, condition_trigger] = 1
        self.flag_of = np.zeros((n_triggers, n_flags), dtype=np.int64)
        self.flag_of[np.arange(n_triggers), trigger_flag] = 1
        self.trigger_flag = trigger_flag
        self.rule_ids = tuple(rf.id for rf in kb.red_flags)
        self.rule_conditions = np.array([kb.condition_ids.index(rf.condition) for rf in kb.red_flags], dtype=np.intp)
        #: must-not-miss conditions, in base order, and the ids of their probability flags
        self.must_not_miss = np.array([i for i, c in enumerate(kb.conditions) if c.must_not_miss], dtype=np.intp)
        self.ids = self.rule_ids + probability_flag_ids(kb)
        #: (rule flags, must-not-miss conditions): whether a rule flags that condition
        self.rules_of = (self.rule_conditions[:, None] == self.must_not_miss[None, :]).astype(np.int64)
        self.threshold = kb.treatment.threshold("must_not_miss_probability").value
        self.leading_threshold = kb.treatment.threshold("must_not_miss_leading_probability").value
        #: the columns of findings (not the patient's age, sex, pregnancy and risk factors)
        self.finding_columns = np.array(
            [column[v] for v, var in kb.variables.items() if var.spec.group != "patient"], dtype=np.intp
        )

    def key_row(self, kb: KnowledgeBase, observations: Sequence[Observation], keys: np.ndarray) -> np.ndarray:
        """(1, variables) key matrix of one case: ``keys`` are its observations' rows."""
        row = np.full((1, self.n_columns), self.padding, dtype=np.intp)
        row[0, [kb.variables[o.variable].index for o in observations]] = keys
        return row

    def triggers(self, key_matrix: np.ndarray) -> np.ndarray:
        """(cases, triggers): whether each trigger holds for each case."""
        holds = self.masks[self._condition_index, key_matrix[:, self.columns]]  # (cases, conditions)
        return (~holds).astype(np.int64) @ self.trigger_of == 0

    def evaluate(self, key_matrix: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """(cases, flags) in the order of :attr:`ids`: rule flags whose triggers hold, then the
        probability flag of each must-not-miss condition that no rule flags, whose probability
        reaches the threshold, in a case that rests on findings or in which the model ranks it
        first at the leading threshold or more."""
        return self._flags(self.triggers(key_matrix), key_matrix, probabilities)

    def _flags(self, triggers: np.ndarray, key_matrix: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        rules = triggers.astype(np.int64) @ self.flag_of > 0  # (cases, rule flags)
        ruled = rules.astype(np.int64) @ self.rules_of > 0  # (cases, must-not-miss): a rule flags it
        has_finding = np.any(key_matrix[:, self.finding_columns] != self.padding, axis=1)
        p = probabilities[:, self.must_not_miss]
        likely = p >= self.threshold
        leading = (p >= self.leading_threshold) & (np.argmax(probabilities, axis=1)[:, None] == self.must_not_miss[None, :])
        return np.concatenate([rules, likely & (has_finding[:, None] | leading) & ~ruled], axis=1)


def _bands_before(var: CompiledVariable, day: float | None) -> frozenset[int]:
    """The time bands of ``var`` a trigger's state may be seen in: all of them (the band of an
    unknown date too) without ``day``, else those lying wholly before ``day`` since onset."""
    bounds = var.spec.time_bands_days
    if day is None:
        return frozenset(range(len(bounds) + 2))
    return frozenset(b for b, upper in enumerate(bounds) if upper <= day)


def words_of(identifier: str) -> str:
    """An identifier in words: ``pregnant_or_postpartum`` -> ``pregnant or postpartum``."""
    return identifier.replace("_", " ")


def finding_words(kb: KnowledgeBase, variable: str, state: str) -> str:
    """A variable's state for the clinician: its label and the state's words; ``unknown`` is "not known".

    >>> from hipdx.knowledge import load_knowledge_base
    >>> finding_words(load_knowledge_base(), "sex_pregnancy", "pregnant_or_postpartum")
    'Sex and pregnancy: pregnant or postpartum'
    """
    return f"{kb.variables[variable].spec.label}: {'not known' if state == UNKNOWN else words_of(state)}"


def red_flag_rules(kb: KnowledgeBase) -> RedFlagRules:
    """The compiled red flags of a knowledge base (built once and kept with the base)."""
    return kb.attached(RedFlagRules)


def rests_on_findings(kb: KnowledgeBase, observations: Sequence[Observation]) -> bool:
    """Whether any finding beyond the patient's age, sex, pregnancy and risk factors is known."""
    return any(kb.variables[o.variable].spec.group != "patient" for o in observations)


def evaluate_red_flags(
    kb: KnowledgeBase, observations: Sequence[Observation], post: np.ndarray, keys: np.ndarray | None = None
) -> list[RedFlagHit]:
    """The red flags that hold, most urgent first: rule flags, then probability flags.

    ``keys`` are the observations' rows (:func:`~hipdx.reasoning.differential.observation_keys`),
    when the caller has them. The flags are those of :meth:`RedFlagRules.evaluate` on the
    case's one row.
    """
    rules = red_flag_rules(kb)
    if keys is None:
        keys = np.asarray([kb.variables[o.variable].keys[(kb.variables[o.variable].band(o.days), o.state)] for o in observations], dtype=np.intp)
    row = rules.key_row(kb, observations, keys)
    triggers = rules.triggers(row)
    flags = rules._flags(triggers, row, post[None, :])[0]
    if not flags.any():
        return []
    seen = {o.variable: o.state for o in observations}
    triggered: dict[int, list[str]] = {}
    words: dict[int, list[str]] = {}
    for t in np.flatnonzero(triggers[0]).tolist():
        early = rules.trigger_early[t]
        when = {v: f" (a study before day {early[v]:g} since onset)" if v in early else "" for v in rules.trigger_variables[t]}
        text = " and ".join(f"{v} = {seen.get(v, UNKNOWN)}{when[v]}" for v in rules.trigger_variables[t])
        triggered.setdefault(rules.trigger_flag[t], []).append(text)
        words.setdefault(rules.trigger_flag[t], []).append(
            "; ".join(f"{finding_words(kb, v, seen.get(v, UNKNOWN))}{when[v]}" for v in rules.trigger_variables[t])
        )
    hits = []
    for f, texts in triggered.items():
        rf = kb.red_flags[f]
        ci = int(rules.rule_conditions[f])
        hits.append(
            RedFlagHit(
                id=rf.id,
                kind="rule",
                condition=rf.condition,
                condition_name=kb.conditions[ci].name,
                urgency=rf.urgency,
                title=rf.title,
                triggered_by=texts,
                met_by=words[f],
                action=" ".join(rf.action.split()),
                refs=rf.refs,
                condition_probability=round(float(post[ci]), 4),
            )
        )
    n_rules = len(rules.rule_ids)
    flagged = [int(rules.must_not_miss[k]) for k in np.flatnonzero(flags[n_rules:]).tolist()]
    hits += _probability_flags(kb, flagged, post, seen, rests_on_findings(kb, observations))
    hits.sort(key=lambda h: URGENCY_ORDER[h.urgency])
    return hits


def staging_flags(kb: KnowledgeBase, staging: Staging, post: np.ndarray, flags: Sequence[RedFlagHit]) -> list[RedFlagHit]:
    """A femoral neck fracture the staging grades (a line, or a displaced fracture) is a red flag.

    The rules of ``red_flags.yaml`` flag a reported fracture line; a displaced fracture
    reported without a line is graded by the staging, and flagged here at its grade's urgency
    (``staging.yaml``), so the flag and the plan's fracture pathway always agree.
    """
    fracture = staging.femoral_neck_fracture
    urgency = fracture_flag_urgency(fracture)
    if urgency is None:
        return []
    if any(f.condition == "fnsf" and URGENCY_ORDER[f.urgency] <= URGENCY_ORDER[urgency] for f in flags):
        return []
    ci = kb.condition_ids.index("fnsf")
    return [
        RedFlagHit(
            id="femoral_neck_fracture_graded",
            kind="staging",
            condition="fnsf",
            condition_name=kb.conditions[ci].name,
            urgency=urgency,
            title=fracture.label,
            # the finding, not the index of the study it came from (the order of studies is not a fact)
            triggered_by=[f"{i.field.rsplit('.', 1)[-1]} = {i.value}" for i in fracture.decided_by],
            met_by=[f"{words_of(i.field.rsplit('.', 1)[-1]).capitalize()}: {words_of(str(i.value))}" for i in fracture.decided_by],
            action=fracture.action or "",
            refs=fracture.refs,
            condition_probability=round(float(post[ci]), 4),
        )
    ]


def probability_tier(kb: KnowledgeBase, condition: str, probability: float, seen: Mapping[str, str]) -> ProbabilityTier | None:
    """The urgency tier of a condition's probability flag: the first of ``probability_flags``
    (``red_flags.yaml``) whose threshold and states hold; ``None`` for a condition not listed
    there (its flag takes the plan's urgency).

    ``seen`` maps each observed variable to its state. A tier's ``when`` holds when every
    variable it names was observed in one of its states (or in an aggregate within them).

    Examples
    --------
    >>> from hipdx.knowledge import load_knowledge_base
    >>> kb = load_knowledge_base()
    >>> probability_tier(kb, "septic", 0.08, {}).urgency
    'urgent'
    >>> probability_tier(kb, "septic", 0.25, {}).urgency
    'emergency'
    >>> probability_tier(kb, "septic", 0.08, {"setting": "emergency_department"}).urgency
    'emergency'
    """
    spec = kb.probability_flags.get(condition)
    if spec is None:
        return None
    for tier in spec.tiers:
        if tier.at_or_above is not None and probability < kb.treatment.threshold(tier.at_or_above).value:
            continue
        if not _when_holds(kb, tier, seen):
            continue
        return tier
    return spec.tiers[-1]  # not reached: the last tier holds always (the schema checks it)


def _patient_facts_tier(kb: KnowledgeBase, condition: str, seen: Mapping[str, str]) -> ProbabilityTier:
    """The tier of a probability flag raised on the patient's facts alone (no finding yet): a
    probability bar does not hold there (it measures a prior, not evidence), but a tier of the
    setting does (in the emergency department the patient is not sent home before the condition is
    excluded); else the tier that always holds, whose action asks for the findings."""
    tiers = kb.probability_flags[condition].tiers
    for tier in tiers[:-1]:
        if tier.at_or_above is None and tier.when is not None and _when_holds(kb, tier, seen):
            return tier
    return tiers[-1]


def _when_holds(kb: KnowledgeBase, tier: ProbabilityTier, seen: Mapping[str, str]) -> bool:
    """A tier's ``when``: every variable it names observed in one of its states (none: it holds)."""
    return tier.when is None or all(_state_within(kb, v, seen.get(v), states) for v, states in tier.when.items())


def _state_within(kb: KnowledgeBase, variable: str, state: str | None, states: Sequence[str]) -> bool:
    if state is None:
        return False
    var = kb.variables[variable]
    allowed = {member for s in states for member in var.observables[s]}
    return set(var.observables[state]) <= allowed


def _probability_flags(
    kb: KnowledgeBase, flagged: Sequence[int], post: np.ndarray, seen: Mapping[str, str], on_findings: bool
) -> list[RedFlagHit]:
    """The probability flags of the ``flagged`` must-not-miss conditions (as :class:`RedFlagRules`
    finds them), each at the urgency of its tier (:func:`probability_tier`) or of its plan; on the
    patient's facts alone (``on_findings`` false: a condition ranked first at 50% or more) a tier of
    the setting (:func:`_patient_facts_tier`) or the tier that always holds, and then never above
    ``urgent``."""
    threshold = kb.treatment.threshold("must_not_miss_probability").value
    plans = kb.treatment.treatments.plans
    hits = []
    for ci in flagged:
        condition = kb.conditions[ci]
        p = float(post[ci])
        plan = plans[condition.id]
        triggered = [f"probability {p:.1%} >= the must-not-miss threshold {threshold:.0%}"]
        urgency, action, refs = plan.urgency, " ".join(plan.summary.split()) + " See the exclusion pathway in the plan.", plan.refs
        if on_findings:
            tier = probability_tier(kb, condition.id, p, seen)
        else:  # a probability on the patient's facts alone is no bar; the setting still is
            tier = _patient_facts_tier(kb, condition.id, seen) if condition.id in kb.probability_flags else None
        if tier is not None:
            urgency, action = tier.urgency, " ".join(tier.action.split())
            refs = list(dict.fromkeys(tier.refs + plan.refs))
            if on_findings or tier.when is not None:
                triggered.append(f"{tier.urgency}: {tier.reason}")
        if not on_findings and (tier is None or tier.when is None):
            urgency = max(urgency, "urgent", key=lambda u: URGENCY_ORDER[u])  # the less urgent of the two
            triggered.append(f"ranked first at {p:.0%} on the patient's facts alone (no finding yet): never above urgent")
        elif not on_findings:
            triggered.append(f"ranked first at {p:.0%} on the patient's facts alone (no finding yet)")
        hits.append(
            RedFlagHit(
                id=probability_flag_id(condition.id),
                kind="probability",
                condition=condition.id,
                condition_name=condition.name,
                urgency=urgency,
                title=f"{condition.name} not excluded: {p:.0%} in the differential",
                triggered_by=triggered,
                met_by=triggered,
                action=action,
                refs=refs,
                condition_probability=round(p, 4),
            )
        )
    return hits
