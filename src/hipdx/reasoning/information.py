"""Which missing finding, and which test, would tell the most about the diagnosis.

The value of a test is the mutual information between the diagnosis and the test's
outcome (the findings it reveals that are not known yet), under the current posterior:
the expected fall in uncertainty, in bits. It is estimated from stratified outcome
samples compiled with the knowledge base, so it is deterministic. Tests are ranked by
information minus burden (``burden_weight_bits`` per unit; multiplied in pregnancy for
ionising radiation and gadolinium).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hipdx.knowledge.base import KnowledgeBase
from hipdx.knowledge.schema import Test

_LN2 = np.log(2.0)


def variable_information(kb: KnowledgeBase, post: np.ndarray, variable: str, days: float | None) -> float:
    """Exact mutual information (bits) between the diagnosis and one unobserved variable."""
    var = kb.variables[variable]
    probs = var.probs[var.band(days)]  # (C, S)
    marginal = post @ probs  # (S,)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = probs * (np.log(probs) - np.log(marginal))
    return float(post @ np.nansum(terms, axis=1) / _LN2)


def test_information(
    kb: KnowledgeBase, post: np.ndarray, variables: Iterable[str], days: float | None
) -> tuple[float, np.ndarray]:
    """Mutual information (bits) between the diagnosis and the joint outcome of ``variables``.

    Returns the information and, per condition, the expected absolute change of its
    probability once the outcome is known (for the reason given in words).
    """
    table = None
    for v in variables:
        var = kb.variables[v]
        t = kb.outcome_log_p[v][var.band(days)]
        table = t if table is None else table + t
    if table is None:
        return 0.0, np.zeros_like(post)
    # table[c, m, c'] = log P(outcome m drawn under c | c')
    log_joint = np.log(post) + table  # (C, M, C')
    log_mix = np.logaddexp.reduce(log_joint, axis=2)  # (C, M)
    own = np.take_along_axis(table, np.arange(len(post))[:, None, None], axis=2)[:, :, 0]  # (C, M)
    info = float(post @ (own - log_mix).mean(axis=1) / _LN2)
    updated = np.exp(log_joint - log_mix[:, :, None])  # (C, M, C'): posterior after outcome
    shift = (post[:, None] * np.abs(updated - post).mean(axis=1)).sum(axis=0)
    return max(info, 0.0), shift


def test_burden(kb: KnowledgeBase, test: Test, pregnant: bool) -> tuple[float, list[str]]:
    """Burden of a test for this patient, with the warnings that raised it."""
    burden = test.burden
    warnings = []
    if pregnant and (test.ionising_radiation or test.gadolinium):
        burden *= kb.tests_file.pregnancy_burden_factor
        if test.gadolinium:
            warnings.append("gadolinium in pregnancy: only if essential and not obtainable without contrast")
        if test.ionising_radiation:
            warnings.append("ionising radiation in pregnancy: justify, shield, or prefer MRI without contrast")
    if test.invasive:
        warnings.append("invasive")
    return burden, warnings
