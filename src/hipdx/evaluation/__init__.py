"""Evaluation on published vignettes: map each to a case, assess it, score the differential.

The vignette format and the scoring rules are those of ``shared/evaluation/README.md``;
``docs/evaluation.md`` describes every mapping rule and the current results.

Examples
--------
>>> import datetime as dt
>>> from pathlib import Path
>>> from hipdx.knowledge import load_knowledge_base
>>> report = evaluate_files([Path("evaluation/literature-hipdx.json")], load_knowledge_base(),
...                         dt.date(2026, 1, 1))  # doctest: +SKIP
>>> print(render_text(report))  # doctest: +SKIP
"""

from hipdx.evaluation.render import render_text
from hipdx.evaluation.run import evaluate_files, evaluate_records
from hipdx.evaluation.scoring import CATEGORY_CONDITIONS, EvaluationReport
from hipdx.evaluation.vignette import vignette_to_case

__all__ = [
    "CATEGORY_CONDITIONS",
    "EvaluationReport",
    "evaluate_files",
    "evaluate_records",
    "render_text",
    "vignette_to_case",
]
