"""The posterior over conditions, its uncertainty, and each finding's likelihood ratio.

All arithmetic is in log space. Observations index rows of the knowledge base's
compiled tables, so a posterior is one gather and one sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hipdx.knowledge.base import KnowledgeBase
from hipdx.reasoning.encode import Observation


def observation_keys(kb: KnowledgeBase, observations: Sequence[Observation]) -> np.ndarray:
    """Row indices of the observations in the knowledge base's tables."""
    keys = [kb.variables[o.variable].keys[(kb.variables[o.variable].band(o.days), o.state)] for o in observations]
    return np.asarray(keys, dtype=np.intp)


def softmax(log_weights: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = log_weights - log_weights.max(axis=axis, keepdims=True)
    w = np.exp(shifted)
    return w / w.sum(axis=axis, keepdims=True)


def _hedged(kb: KnowledgeBase, log_weights: np.ndarray, folds: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """The posterior (conditions on the last axis), folded, then mixed with an even spread at
    the base's ``misspecification`` weight."""
    eps = kb.info.structure.misspecification
    return (1.0 - eps) * _fold(softmax(log_weights), folds) + eps / log_weights.shape[-1]


def observation_weights(kb: KnowledgeBase, observations: Sequence[Observation]) -> np.ndarray:
    """The weight each observation's likelihood counts with (``kb.yaml`` ``structure``).

    k known members of one dependence group count k ** -exponent each; a finding outside any
    group counts 1.
    """
    group_of = kb.dependence_group_of
    counts: dict[str, int] = {}
    for o in observations:
        if o.variable in group_of:
            counts[group_of[o.variable]] = counts.get(group_of[o.variable], 0) + 1
    exponent = kb.info.structure.dependence_exponent
    return np.array(
        [counts[group_of[o.variable]] ** -exponent if o.variable in group_of else 1.0 for o in observations], dtype=float
    )


def undefined_folds(kb: KnowledgeBase, observations: Sequence[Observation]) -> list[tuple[int, int]]:
    """(condition, counted with) for each condition whose defining finding the case does not show."""
    seen = {o.variable: o.state for o in observations}
    return [(ci, into) for ci, variable, states, into in kb.definitions if seen.get(variable) not in states]


def _fold(p: np.ndarray, folds: Sequence[tuple[int, int]]) -> np.ndarray:
    """A condition whose defining finding is not shown is at most as likely as the condition it
    cannot be told from: where it would be more likely, the two share their mass equally (the
    other one listed first)."""
    for ci, into in folds:
        if p.ndim == 1:  # one case: plain floats are far cheaper than array operations
            gap = float(p[ci] - p[into])
            if gap > 0:
                p[ci] -= gap / 2.0 + 1e-12  # the tilt keeps the other one first after rounding errors
                p[into] += gap / 2.0 + 1e-12
            continue
        gap = p[..., ci] - p[..., into]
        excess = np.where(gap > 0, gap / 2.0 + 1e-12, 0.0)
        p[..., ci] -= excess
        p[..., into] += excess
    return p


def posterior(
    kb: KnowledgeBase, keys: np.ndarray, weights: np.ndarray | None = None, folds: Sequence[tuple[int, int]] = ()
) -> np.ndarray:
    """Posterior probability of each condition (knowledge-base order).

    ``weights`` (one per key, :func:`observation_weights`) temper dependent findings;
    None counts every key fully. ``folds`` (:func:`undefined_folds`) count a condition whose
    defining finding is not shown with the condition it cannot yet be told from.
    """
    log_p = kb.log_p[keys]
    if weights is not None and (weights != 1.0).any():
        log_p = log_p * weights[:, None]
    return _hedged(kb, kb.log_prior + log_p.sum(axis=0), folds)


def posterior_range(
    kb: KnowledgeBase,
    keys: np.ndarray,
    weights: np.ndarray | None = None,
    folds: Sequence[tuple[int, int]] = (),
    low: float = 0.05,
    high: float = 0.95,
) -> np.ndarray:
    """(conditions, 2): the low and high quantiles of the posterior over the sampled bases.

    Each sample draws every number from its uncertainty and tempers the whole likelihood by
    its factor of ``kb.tempering`` (the uncertainty of the model's structure).
    """
    if weights is not None and (weights != 1.0).any():
        likelihood = np.einsum("o,osc->sc", weights, kb.log_p_samples[keys])
    else:
        likelihood = kb.log_p_samples[keys].sum(axis=0)  # (samples, conditions)
    likelihood *= kb.tempering[:, None]
    samples = softmax(kb.log_prior_samples + likelihood)
    if folds:
        _fold(samples, folds)
    samples.sort(axis=0)
    last = samples.shape[0] - 1
    picked = samples[[round(low * last), round(high * last)]].T
    # the hedge is the same increasing map for every sample: applied to the quantiles, not to all samples
    eps = kb.info.structure.misspecification
    return (1.0 - eps) * picked + eps / picked.shape[0]


def likelihood_ratios(kb: KnowledgeBase, keys: np.ndarray) -> np.ndarray:
    """(observations, conditions): P(obs | c) / P(obs | not c) for every observation and condition.

    'Not c' weighs the other conditions by their base prior, so a ratio does not depend
    on the order in which findings are read or on the other findings of the case.
    """
    like = np.exp(kb.log_p[keys])
    weighted = kb.prior * like
    others = (weighted.sum(axis=1, keepdims=True) - weighted) / (kb.prior.sum() - kb.prior)
    return like / others


def batch_posterior(
    kb: KnowledgeBase, key_matrix: np.ndarray, weights: np.ndarray | None = None, undefined: np.ndarray | None = None
) -> np.ndarray:
    """Posterior for many cases at once.

    ``key_matrix`` is (cases, max observations), padded with the knowledge base's
    padding row (``len(kb.log_p) - 1``), which contributes nothing; ``weights`` has its
    shape (:func:`batch_weights`); ``undefined`` (cases, definitions) says where each
    definition of ``kb.definitions`` is not met (:func:`batch_undefined`).
    """
    log_p = kb.log_p[key_matrix]
    if weights is not None:
        log_p = log_p * weights[:, :, None]
    p = softmax(kb.log_prior + log_p.sum(axis=1), axis=1)
    if undefined is not None:
        for d, (ci, _, _, into) in enumerate(kb.definitions):
            rows = undefined[:, d]
            p[rows] = _fold(p[rows], [(ci, into)])
    eps = kb.info.structure.misspecification
    return (1.0 - eps) * p + eps / p.shape[-1]


def batch_undefined(kb: KnowledgeBase, key_matrix: np.ndarray) -> np.ndarray:
    """(cases, definitions): the case does not show the condition's defining finding; column j
    of ``key_matrix`` is variable j of the base (the vectorised :func:`undefined_folds`)."""
    columns = list(kb.variables)
    out = np.ones((len(key_matrix), len(kb.definitions)), dtype=bool)
    for d, (_, variable, states, _) in enumerate(kb.definitions):
        var = kb.variables[variable]
        defining = [row for (_, state), row in var.keys.items() if state in states]
        out[:, d] = ~np.isin(key_matrix[:, columns.index(variable)], defining)
    return out


def batch_weights(kb: KnowledgeBase, key_matrix: np.ndarray) -> np.ndarray:
    """(cases, variables) weights of a key matrix whose column j is variable j of the base:
    the vectorised :func:`observation_weights`."""
    weights = np.ones(key_matrix.shape, dtype=float)
    observed = key_matrix != len(kb.log_p) - 1
    exponent = kb.info.structure.dependence_exponent
    for g in range(len(kb.info.structure.dependence_groups)):
        columns = np.flatnonzero(kb.group_column == g)
        counts = observed[:, columns].sum(axis=1, keepdims=True)
        weights[:, columns] = np.where(observed[:, columns], np.maximum(counts, 1) ** -exponent, 1.0)
    return weights
