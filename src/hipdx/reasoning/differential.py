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


def posterior(kb: KnowledgeBase, keys: np.ndarray) -> np.ndarray:
    """Posterior probability of each condition (knowledge-base order)."""
    return softmax(kb.log_prior + kb.log_p[keys].sum(axis=0))


def posterior_range(kb: KnowledgeBase, keys: np.ndarray, low: float = 0.05, high: float = 0.95) -> np.ndarray:
    """(conditions, 2): the low and high quantiles of the posterior over the sampled bases."""
    samples = np.sort(softmax(kb.log_prior_samples + kb.log_p_samples[keys].sum(axis=0)), axis=0)
    last = samples.shape[0] - 1
    return samples[[round(low * last), round(high * last)]].T


def likelihood_ratios(kb: KnowledgeBase, keys: np.ndarray) -> np.ndarray:
    """(observations, conditions): P(obs | c) / P(obs | not c) for every observation and condition.

    'Not c' weighs the other conditions by their base prior, so a ratio does not depend
    on the order in which findings are read or on the other findings of the case.
    """
    like = np.exp(kb.log_p[keys])
    weighted = kb.prior * like
    others = (weighted.sum(axis=1, keepdims=True) - weighted) / (kb.prior.sum() - kb.prior)
    return like / others


def batch_posterior(kb: KnowledgeBase, key_matrix: np.ndarray) -> np.ndarray:
    """Posterior for many cases at once.

    ``key_matrix`` is (cases, max observations), padded with the knowledge base's
    padding row (``len(kb.log_p) - 1``), which contributes nothing.
    """
    return softmax(kb.log_prior + kb.log_p[key_matrix].sum(axis=1), axis=1)
