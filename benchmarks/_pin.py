"""Pin a benchmark to one CPU and one BLAS thread. Import it before numpy.

OPENBLAS_CORETYPE is left alone (see the environment notes in benchmarks/README.md).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

PINNED_CPU: int | None
if hasattr(os, "sched_setaffinity"):
    PINNED_CPU = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {PINNED_CPU})
else:  # pragma: no cover - macOS, Windows
    PINNED_CPU = None
