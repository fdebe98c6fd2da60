"""Score hipdx on the fixed split of the project's vignettes (evaluation/split.json).

The split was fixed on 2026-12-07, before any model change of the clinical-safety issue:
`development` vignettes may be looked at while changing the model; `held_out` ones may not
(only their summary metrics are printed, never a case). A change is kept only if it does not
worsen the held-out metrics. Run: `.venv/bin/python evaluation/split_score.py [--today YYYY-MM-DD]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from hipdx.evaluation import evaluate_records
from hipdx.evaluation.run import read_vignette_file
from hipdx.knowledge import load_knowledge_base

HERE = Path(__file__).resolve().parent
FILES = [HERE.parent.parent / "shared" / "evaluation" / "literature-dev.json", HERE / "literature-hipdx.json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--today", default="2026-11-25")
    parser.add_argument("--show-development-misses", action="store_true")
    args = parser.parse_args()
    split = json.loads((HERE / "split.json").read_text(encoding="utf-8"))
    records = [r for path in FILES for r in read_vignette_file(path)]
    by_id = {r["id"]: r for r in records}
    kb = load_knowledge_base()
    today = dt.date.fromisoformat(args.today)
    for part in ("development", "held_out"):
        report = evaluate_records([by_id[i] for i in split[part]], kb, today, source=part)
        print(
            f"{part:12s} n={report.cases:3d} top-1 {report.top1:.3f} top-3 {report.top3:.3f} "
            f"mean rank {report.mean_rank:.2f} Brier {report.brier:.3f} log loss {report.log_loss:.3f}"
        )
        if part == "development" and args.show_development_misses:
            for miss in report.misses:
                print(f"   miss {miss.id} {miss.category} rank {miss.rank} p={miss.probability:.3f}")


if __name__ == "__main__":
    main()
