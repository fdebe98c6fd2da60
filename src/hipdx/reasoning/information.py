"""Which missing finding, and which test, would tell the most about the diagnosis.

The value of a test is the mutual information between the diagnosis and the test's
outcome (the findings it reveals that are not known yet), under the current posterior:
the expected fall in uncertainty, in bits. It is estimated from stratified outcome
samples compiled with the knowledge base, so it is deterministic. Tests are ranked by
information minus burden (``burden_weight_bits`` per unit; multiplied in pregnancy for
ionising radiation and gadolinium).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from hipdx.knowledge.base import KnowledgeBase
from hipdx.knowledge.schema import Test

_LN2 = np.log(2.0)


def variable_information(kb: KnowledgeBase, post: np.ndarray, variables: list[str], days: float | None) -> np.ndarray:
    """Exact mutual information (bits) between the diagnosis and each unobserved variable."""
    if not variables:
        return np.zeros(0)
    rows = [kb.variables[v].info_rows[kb.variables[v].band(days)] for v in variables]
    probs = kb.info_probs[rows]  # (V, C, S), zero-padded states
    marginal = np.einsum("c,vcs->vs", post, probs)  # (V, S)
    log_marginal = np.log(np.where(marginal > 0, marginal, 1.0))
    terms = probs * (kb.info_log_probs[rows] - log_marginal[:, None, :])  # (V, C, S)
    return terms.sum(axis=2) @ post / _LN2


#: Summed outcome tables kept per knowledge base, at most this many (variable, band) combinations.
_TABLES_MAX = 4096


def _outcome_tables(kb: KnowledgeBase) -> dict[tuple[tuple[str, int], ...], tuple[np.ndarray, np.ndarray]]:
    """The memo of one base's summed outcome tables (kept with the base)."""
    return {}


def _outcome_table(kb: KnowledgeBase, variables: Iterable[str], days: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The joint outcome table of several variables and its diagonal, each (1, ...), memoised per base."""
    combo = tuple((v, kb.variables[v].band(days)) for v in variables)
    tables = kb.attached(_outcome_tables)
    cached = tables.get(combo)
    if cached is None:
        table = np.add.reduce([kb.outcome_log_p[v][b] for v, b in combo])
        n = table.shape[0]
        # kept with a leading axis of one, so the tests of a case are joined by one concatenate
        cached = (table[None], table[np.arange(n), np.arange(n), :][None])
        if len(tables) >= _TABLES_MAX:
            tables.clear()
        tables[combo] = cached
    return cached


def information_of_tests(
    kb: KnowledgeBase, post: np.ndarray, tests: Sequence[Sequence[str]], days: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual information (bits) between the diagnosis and the joint outcome of each test.

    ``tests`` lists, per test, the variables it would reveal that are not known yet. Also
    returns, per test and condition, the expected absolute change of the condition's
    probability once the outcome is known (what the test would move). All tests are
    computed in one vectorised pass.
    """
    if not tests:
        return np.zeros(0), np.zeros((0, len(post)))
    tables = [_outcome_table(kb, variables, days) for variables in tests]
    # table[t, c', c, m] = log P(outcome m drawn under c | c'); own[t, c, m] = table[t, c, c, m]
    table = np.concatenate([t for t, _ in tables])
    own = np.concatenate([o for _, o in tables])
    post32 = post.astype(np.float32)
    log_joint = np.log(post32)[:, None, None] + table  # (T, C', C, M)
    peak = log_joint.max(axis=1)  # (T, C, M)
    weights = np.exp(log_joint - peak[:, None])
    mix = weights.sum(axis=1)  # (T, C, M)
    info = (own - np.log(mix) - peak).mean(axis=2) @ post / _LN2  # (T,)
    updated = weights / mix[:, None]  # (T, C', C, M): posterior of c' after outcome m drawn under c
    shift = np.abs(updated - post32[:, None, None]).mean(axis=3) @ post  # (T, C')
    return np.maximum(info.astype(float), 0.0), shift.astype(float)


def burden_of_test(kb: KnowledgeBase, test: Test, pregnant: bool) -> tuple[float, list[str]]:
    """Burden of a test for this patient, with the warnings that raised it."""
    burden = test.burden
    warnings = []
    if pregnant and test.pregnancy_burden is not None:  # MRI without contrast: the imaging of choice in pregnancy
        burden = test.pregnancy_burden
    if pregnant and (test.ionising_radiation or test.gadolinium):
        burden *= kb.tests_file.pregnancy_burden_factor
        if test.gadolinium:
            warnings.append("gadolinium in pregnancy: only if essential and not obtainable without contrast")
        if test.ionising_radiation:
            warnings.append("ionising radiation in pregnancy: justify, shield, or prefer MRI without contrast")
    if test.invasive:
        warnings.append("invasive")
    return burden, warnings
