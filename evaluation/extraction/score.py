"""Scores hipdx.extract on the report sentences of sentences.json.

The sentences of sentences.json are split by the parity of the SHA-256 of their id: even ->
development (the rules were tuned on it), odd -> held out (not scored while tuning). fresh.json
holds 40 sentences written after the first tuning, in wording the rules were not written for (since
session 18 a development set: its misses were looked at). fresh-2.json holds 84 sentences written
before the second round of rule changes and never tuned on (its misses were not looked at).
fresh-3.json holds 85 sentences written before the third round (session 19), scored once before it;
fresh-4.json 99 sentences written before the fourth round (session 20), scored once before it;
fresh-5.json 120 sentences written before the fifth round (session 21), scored once before it.

For each part: precision and recall per finding (a finding counts as right when its name and
value match), per assertion (present, absent: "absent" is the negation figure) and for
to_confirm (by finding name). Run from the repository root:

    python evaluation/extraction/score.py [--part development|held_out|fresh|fresh-2|fresh-3|fresh-4|fresh-5|both|all] [--format text|json] [--errors]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hipdx.extract import extract_findings

HERE = Path(__file__).parent
FRESH = ("fresh", "fresh-2", "fresh-3", "fresh-4", "fresh-5")


def part_of(sentence_id: str) -> str:
    return "development" if int(hashlib.sha256(sentence_id.encode()).hexdigest(), 16) % 2 == 0 else "held_out"


def load(part: str) -> list[dict[str, Any]]:
    if part in FRESH:  # written apart from sentences.json (see README.md)
        return json.loads((HERE / f"{part}.json").read_text())["sentences"]
    rows = json.loads((HERE / "sentences.json").read_text())["sentences"]
    return [r for r in rows if part == "both" or part_of(r["id"]) == part]


def _assertion(value: Any) -> str:
    return "absent" if value in ("absent", "none", "normal", "preserved") else "present"


def _pr(tp: int, fp: int, fn: int) -> dict[str, Any]:
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r}


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    errors = []
    exact = 0
    for row in rows:
        x = extract_findings(row["text"], row["modality"], row["side"])
        got = {k: v for k, v in x.findings.items()}
        want = row["findings"]
        got_confirm = {c["finding"] for c in x.to_confirm}
        want_confirm = set(row["to_confirm"])
        for name in set(got) | set(want):
            keys = [name, "assertion:" + _assertion(want.get(name, got.get(name)))]
            if name in got and name in want and got[name] == want[name]:
                for k in keys:
                    tp[k] += 1
            else:
                if name in got:
                    fp[name] += 1
                    fp["assertion:" + _assertion(got[name])] += 1
                if name in want:
                    fn[name] += 1
                    fn["assertion:" + _assertion(want[name])] += 1
        for name in got_confirm | want_confirm:
            k = "to_confirm"
            if name in got_confirm and name in want_confirm:
                tp[k] += 1
            elif name in got_confirm:
                fp[k] += 1
            else:
                fn[k] += 1
        ok = got == want and got_confirm == want_confirm
        exact += ok
        if not ok:
            errors.append({"id": row["id"], "text": row["text"], "side": row["side"], "want": want, "got": got,
                           "want_to_confirm": sorted(want_confirm), "got_to_confirm": sorted(got_confirm)})
    keys = sorted(set(tp) | set(fp) | set(fn))
    findings = {k: _pr(tp[k], fp[k], fn[k]) for k in keys if ":" not in k and k != "to_confirm"}
    micro = _pr(sum(tp[k] for k in findings), sum(fp[k] for k in findings), sum(fn[k] for k in findings))
    return {
        "sentences": len(rows),
        "sentences_exactly_right": exact,
        "all_findings": micro,
        "negation_absent": _pr(tp["assertion:absent"], fp["assertion:absent"], fn["assertion:absent"]),
        "affirmed_present": _pr(tp["assertion:present"], fp["assertion:present"], fn["assertion:present"]),
        "to_confirm": _pr(tp["to_confirm"], fp["to_confirm"], fn["to_confirm"]),
        "per_finding": findings,
        "errors": errors,
    }


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.2f}"


def text_report(name: str, s: dict[str, Any], show_errors: bool) -> str:
    lines = [f"== {name}: {s['sentences']} sentences, {s['sentences_exactly_right']} exactly right"]
    for label in ("all_findings", "negation_absent", "affirmed_present", "to_confirm"):
        m = s[label]
        lines.append(f"  {label:<18} precision {_fmt(m['precision'])}  recall {_fmt(m['recall'])}  (tp {m['tp']}, fp {m['fp']}, fn {m['fn']})")
    lines.append("  per finding:")
    for k, m in s["per_finding"].items():
        lines.append(f"    {k:<34} P {_fmt(m['precision'])}  R {_fmt(m['recall'])}  (tp {m['tp']}, fp {m['fp']}, fn {m['fn']})")
    if show_errors:
        for e in s["errors"]:
            lines.append(f"  x {e['id']} [{e['side']}] {e['text']}\n      want {e['want']} confirm {e['want_to_confirm']}\n      got  {e['got']} confirm {e['got_to_confirm']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["development", "held_out", *FRESH, "both", "all"], default="all")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--errors", action="store_true", help="list the sentences not exactly right")
    args = parser.parse_args(argv)
    parts = {"both": ["development", "held_out"], "all": ["development", "held_out", *FRESH]}.get(args.part, [args.part])
    results = {p: score(load(p)) for p in parts}
    if args.format == "json":
        for r in results.values():
            if not args.errors:
                r.pop("errors")
        print(json.dumps(results, indent=1))
    else:
        print("\n\n".join(text_report(p, r, args.errors) for p, r in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
