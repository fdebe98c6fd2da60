"""The rows and the table every benchmark prints: value, baseline of the same run, ratio, target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    measure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    passed: bool | None = None  # None: for information


def print_table(rows: list[Row]) -> None:
    headers = ("measure", "value", "baseline (same run)", "ratio", "target", "result")
    cells = [
        (r.measure, r.value, r.baseline, r.ratio, r.target, "" if r.passed is None else "PASS" if r.passed else "FAIL")
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())
