"""Score hipdx on the fixed splits of the project's vignettes (evaluation/split.json, -2, -3, -4, -5, -6).

`split.json` (the 60 vignettes of literature-dev.json and literature-hipdx.json) was fixed on
2026-12-07 before any model change of the clinical-safety issue; `split-2.json` (the 90 of
literature-hipdx-2.json and -3.json) was fixed the same day, by the same content-blind rule,
before any model change of the accuracy part of that issue; `split-3.json` (the 30 of
literature-hipdx-4.json, all held out) was fixed on the same day after three rounds had used the
first two held-out parts; `split-4.json` (the 31 of literature-hipdx-5.json, all held out) was
fixed the same day after split-3 had judged the fourth round; `split-5.json` (the 30 of
literature-hipdx-6.json, all held out) was fixed the same day after split-4 had judged a round;
`split-6.json` (the 30 of literature-hipdx-7.json, all held out) was fixed on 2026-12-08 after
split-5 had judged a round, before the model was run on any of its vignettes.
`development` vignettes may be looked at while changing the model; `held_out` ones may not: only
their summary metrics are ever printed, never a case. A change is kept only if it does not worsen
the held-out metrics.

Each part also gets its red-flag measures (aggregates): on the vignettes whose true condition the
knowledge base marks must-not-miss, the share with a red flag naming it, with any flag and with an
urgent or emergency headline; on the others, and on TOH alone, the share with an emergency flag and
with a flag naming a must-not-miss condition.

Run: `.venv/bin/python evaluation/split_score.py [--today YYYY-MM-DD] [--held-out-only | --development-only]
[--show-development-misses] [--show-development-red-flag-misses]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from hipdx.evaluation import evaluate_records
from hipdx.evaluation.render import red_flag_lines
from hipdx.evaluation.run import read_vignette_file
from hipdx.evaluation.vignette import vignette_to_case
from hipdx.knowledge import KnowledgeBase, load_knowledge_base
from hipdx.reasoning.encode import encoder_for

HERE = Path(__file__).resolve().parent
FILES = [
    HERE.parent.parent / "shared" / "evaluation" / "literature-dev.json",
    HERE / "literature-hipdx.json",
    HERE / "literature-hipdx-2.json",
    HERE / "literature-hipdx-3.json",
    HERE / "literature-hipdx-4.json",
    HERE / "literature-hipdx-5.json",
    HERE / "literature-hipdx-6.json",
    HERE / "literature-hipdx-7.json",
]
SPLITS = {
    "": "split.json", "-2": "split-2.json", "-3": "split-3.json", "-4": "split-4.json", "-5": "split-5.json",
    "-6": "split-6.json",
}


def parts() -> dict[str, list[str]]:
    """The ids of each non-empty part: development, held_out, development-2, held_out-2, held_out-3,
    held_out-4, held_out-5, held_out-6 and the unions of the first two splits (``held_out-all`` stays
    the 71 of split.json and split-2.json; split-3.json to split-6.json, all held out, are reported
    on their own)."""
    out: dict[str, list[str]] = {}
    for suffix, name in SPLITS.items():
        split = json.loads((HERE / name).read_text(encoding="utf-8"))
        out[f"development{suffix}"] = split["development"]
        out[f"held_out{suffix}"] = split["held_out"]
    out["development-all"] = out["development"] + out["development-2"]
    out["held_out-all"] = out["held_out"] + out["held_out-2"]
    return {part: ids for part, ids in out.items() if ids}


def has_findings(record: dict, kb: KnowledgeBase, today: dt.date) -> bool:
    """Whether the record gives the model any finding beyond who the patient is (age, sex,
    pregnancy, risk factors): a record without one is ranked by the patient's prior alone."""
    try:
        case, _, _ = vignette_to_case(record)
        observations = encoder_for(kb).encode(case, today)
    except Exception:  # a record that cannot be mapped is scored as an error by evaluate_records
        return False
    return any(kb.variables[o.variable].spec.group != "patient" for o in observations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--today", default="2026-11-25")
    parser.add_argument("--held-out-only", action="store_true", help="score the held-out parts only (aggregates)")
    parser.add_argument("--development-only", action="store_true", help="score the development parts only")
    parser.add_argument("--show-development-misses", action="store_true")
    parser.add_argument(
        "--show-development-red-flag-misses", action="store_true",
        help="list the development must-not-miss vignettes without a red flag naming their condition",
    )
    parser.add_argument(
        "--by-findings", action="store_true",
        help="also top-1/top-3 (aggregates) of the records with and without a finding beyond the patient's prior",
    )
    args = parser.parse_args()
    records = [r for path in FILES for r in read_vignette_file(path)]
    by_id = {r["id"]: r for r in records}
    kb = load_knowledge_base()
    today = dt.date.fromisoformat(args.today)
    print(f"knowledge base {kb.version}")
    for part, ids in parts().items():
        held_out = part.startswith("held_out")
        if (args.held_out_only and not held_out) or (args.development_only and held_out):
            continue
        report = evaluate_records([by_id[i] for i in ids], kb, today, source=part)
        print(
            f"{part:16s} n={report.cases:3d} top-1 {report.top1:.3f} top-3 {report.top3:.3f} "
            f"mean rank {report.mean_rank:.2f} Brier {report.brier:.3f} log loss {report.log_loss:.3f}"
        )
        for line in red_flag_lines(report.red_flags):
            print(f"   {line}")
        if args.by_findings:
            informative = {r["id"] for r in (by_id[i] for i in ids) if has_findings(r, kb, today)}
            for label, keep in (("with findings", True), ("patient only", False)):
                chosen = [i for i in ids if (i in informative) == keep]
                if chosen:
                    sub = evaluate_records([by_id[i] for i in chosen], kb, today, source=part)
                    print(f"   {label:14s} n={sub.cases:3d} top-1 {sub.top1:.3f} top-3 {sub.top3:.3f}")
                    print(f"   {'':14s} {red_flag_lines(sub.red_flags)[0]}")
        if not held_out and part != "development-all" and args.show_development_misses:
            for miss in report.misses:
                print(f"   miss {miss.id} {miss.category} rank {miss.rank} p={miss.probability:.3f}")
        if not held_out and part != "development-all" and args.show_development_red_flag_misses:
            for rf in report.red_flag_misses:
                raised = ", ".join(f"{f.id} ({f.urgency})" for f in rf.red_flags) or "none"
                print(
                    f"   no flag for {'/'.join(rf.must_not_miss)}: {rf.id} {rf.category} p={rf.probability:.3f} "
                    f"headline {rf.headline_urgency}; flags raised: {raised}"
                )


if __name__ == "__main__":
    main()
