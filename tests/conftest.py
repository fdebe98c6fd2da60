"""Shared fixtures: the bundled knowledge base, a fixed assessment date, and a case runner."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

import hipdx
from hipdx.knowledge import KnowledgeBase, load_knowledge_base

# Property tests are deterministic in every run (CI included): the same examples each time,
# no example database carried between runs.
settings.register_profile("hipdx", derandomize=True, database=None, deadline=None)
# `make fuzz`: the fuzz targets (tests/test_fuzz.py) with random examples, many of them.
settings.register_profile(
    "fuzz", database=None, deadline=None, max_examples=int(os.environ.get("HIPDX_FUZZ_EXAMPLES", "20000"))
)
settings.load_profile(os.environ.get("HIPDX_HYPOTHESIS_PROFILE", "hipdx"))

#: Every assessment in the tests is made on this date, so nothing depends on the clock.
TODAY = dt.date(2026, 11, 25)
ROOT = Path(__file__).resolve().parent.parent

#: A man with every safety fact of the plan known and normal, so that only the fact a test
#: changes moves an option.
SAFE_MAN: dict[str, Any] = {
    "age_years": 45,
    "sex": "male",
    "weight_kg": 80,
    "systolic_bp_mmhg": 125,
    "labs": {
        "creatinine": {"value": 1.0, "unit": "mg/dL"},
        "egfr": {"value": 90, "unit": "mL/min/1.73m2"},
        "calcium": {"value": 2.4, "unit": "mmol/L"},
        "vitamin_d": {"value": 32, "unit": "ng/mL"},
        "alp": {"value": 80, "unit": "U/L"},
    },
    "risk_factors": {"cancer_history": "absent"},
    "comorbidities": {name: "absent" for name in hipdx.Case.model_fields["comorbidities"].annotation.model_fields},
}
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return load_knowledge_base()


@pytest.fixture(scope="session")
def today() -> dt.date:
    return TODAY


@pytest.fixture(scope="session")
def run(kb: KnowledgeBase) -> Callable[[dict[str, Any]], hipdx.Assessment]:
    """Validate a case given as a mapping and assess it against the bundled base on TODAY."""

    def _run(raw: dict[str, Any]) -> hipdx.Assessment:
        return hipdx.assess(hipdx.parse_case(raw), kb, TODAY)

    return _run


def analyse_phantoms(factory: pytest.TempPathFactory, phantoms: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
    """Write each phantom once and analyse it: name -> (truth, MriAnalysis)."""
    from hipdx.imaging.analyze import analyze_study
    from hipdx.imaging.io import read_study
    from hipdx.imaging.phantom import PhantomSpec, write_phantom

    out = {}
    for name, parameters in phantoms.items():
        folder = factory.mktemp(name)
        truth = write_phantom(folder, PhantomSpec(**parameters))
        out[name] = (truth, analyze_study(read_study(folder).volumes))
    return out


def healthy_side(truth: Any) -> str:
    """The side of a phantom without the lesion."""
    return "right" if truth.side == "left" else "left"

