"""Reliability of hipdx's probabilities on the project's 60 vignettes (development and held-out
parts together; only aggregates are printed). Writes docs/calibration.png and prints the table
that docs/evaluation.md quotes. Run: `.venv/bin/python evaluation/calibration.py`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hipdx import assess  # noqa: E402
from hipdx.evaluation.run import read_vignette_file  # noqa: E402
from hipdx.evaluation.scoring import accepted_conditions  # noqa: E402
from hipdx.evaluation.vignette import vignette_to_case  # noqa: E402
from hipdx.knowledge import load_knowledge_base  # noqa: E402

HERE = Path(__file__).resolve().parent
FILES = [HERE.parent.parent / "shared" / "evaluation" / "literature-dev.json", HERE / "literature-hipdx.json"]
EDGES = np.array([0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 1.0])


def main() -> None:
    kb = load_knowledge_base()
    predicted, observed = [], []
    for path in FILES:
        for record in read_vignette_file(path):
            accepted = accepted_conditions(record["final_diagnosis"]["category"], kb.condition_ids)
            if not accepted:
                continue
            case, _, _ = vignette_to_case(record)
            a = assess(case, kb, dt.date(2026, 11, 25), management=False)
            for d in a.differential:
                predicted.append(d.probability)
                observed.append(d.id in accepted)
    p, o = np.array(predicted), np.array(observed, dtype=float)
    which = np.clip(np.searchsorted(EDGES, p, side="right") - 1, 0, len(EDGES) - 2)
    print("| predicted | n | mean predicted | observed |")
    print("|---|---|---|---|")
    means, freqs, counts = [], [], []
    for b in range(len(EDGES) - 1):
        mask = which == b
        if mask.any():
            means.append(p[mask].mean()); freqs.append(o[mask].mean()); counts.append(int(mask.sum()))
            print(f"| {EDGES[b]:.2f}-{EDGES[b + 1]:.2f} | {mask.sum()} | {p[mask].mean():.3f} | {o[mask].mean():.3f} |")
    print(f"\n{int(o.sum())} true conditions among {len(p)} predictions; expected calibration error "
          f"{sum(c * abs(m - f) for m, f, c in zip(means, freqs, counts)) / len(p):.3f}")
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    ax.plot(means, freqs, marker="o", color="#1f5fa8", label="hipdx (60 vignettes)")
    for m, f, c in zip(means, freqs, counts):
        ax.annotate(str(c), (m, f), textcoords="offset points", xytext=(5, -10), fontsize=8)
    ax.set_xlabel("predicted probability"); ax.set_ylabel("observed frequency"); ax.set_xlim(0, 1); ax.set_ylim(0, 1)
    ax.set_title("Reliability of the differential"); ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout(); fig.savefig(HERE.parent / "docs" / "calibration.png")


if __name__ == "__main__":
    main()
