"""A finding whose time since onset is not known mixes the time bands by their stated weights."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from hipdx.knowledge import KnowledgeBase
from hipdx.knowledge.schema import Variable


def test_an_mri_of_unknown_date_is_read_as_taken_after_the_first_two_days(kb: KnowledgeBase) -> None:
    edema = kb.variables["mri_edema"]
    weights = edema.spec.unknown_time.weights
    toh = kb.condition_ids.index("toh")
    early, later, unknown = edema.probs[:, toh]
    assert np.allclose(unknown, weights[0] * early + weights[1] * later)
    none = edema.spec.states.index("none")
    # edema defines TOH: an MRI without it, date unknown, counts strongly against TOH
    assert unknown[none] < 0.05 < early[none]


def test_band_weights_must_match_the_bands_and_sum_to_one() -> None:
    spec = {
        "id": "x",
        "label": "x",
        "group": "mri",
        "states": ["present", "absent"],
        "source": {"field": "x"},
        "time_bands_days": [2],
        "likelihoods": {"default": {"p": {"present": 0.5}, "basis": "estimate", "n": 10, "note": "x"}},
    }
    Variable.model_validate(spec | {"unknown_time": {"weights": [0.1, 0.9], "basis": "estimate", "note": "x"}})
    with pytest.raises(ValidationError, match="2 time bands"):
        Variable.model_validate(spec | {"unknown_time": {"weights": [0.2, 0.3, 0.5], "basis": "estimate", "note": "x"}})
    with pytest.raises(ValidationError, match="sum to"):
        Variable.model_validate(spec | {"unknown_time": {"weights": [0.2, 0.3], "basis": "estimate", "note": "x"}})
    with pytest.raises(ValidationError, match="needs a note"):
        Variable.model_validate(spec | {"unknown_time": {"weights": [0.1, 0.9], "basis": "estimate"}})
