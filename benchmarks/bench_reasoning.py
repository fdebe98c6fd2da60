"""Speed and memory of the reasoning core, each against a baseline measured in the same run.

These machines are noisy, so every target is checked in one run against a baseline
measured alongside it (parsing the same cases from JSON), and every timing is repeated
and its median taken. Run it alone, not in a unit test::

    .venv/bin/python benchmarks/bench_reasoning.py        # or: make bench

It pins itself to one CPU and to one BLAS thread, prints a table and one PASS/FAIL line
per target, and exits with status 1 if a target fails. ``benchmarks/README.md`` says what
each figure means.
"""

from __future__ import annotations

import os

from _pin import PINNED_CPU  # one core, one BLAS thread: before numpy is imported
from _report import Row, print_table  # noqa: E402

import argparse  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pydantic  # noqa: E402
from cases import TODAY, generate_json_lines  # noqa: E402

import hipdx  # noqa: E402
from hipdx.case import Case  # noqa: E402
from hipdx.knowledge import load_knowledge_base  # noqa: E402
from hipdx.reasoning import assess
from hipdx.reasoning.encode import encoder_for  # noqa: E402
from hipdx.reasoning.batch import assess_batch, assess_batch_json  # noqa: E402
from hipdx.reasoning.differential import batch_posterior, observation_keys  # noqa: E402

#: Targets from the issue.
SINGLE_MEDIAN_MS = 1.0
BATCH_CASES_PER_S = 20_000
BATCH_VS_PARSE = 0.5


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, each after a full collection."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_single(n_cases: int, repeats: int, kb, management: bool = False) -> list[Row]:
    """(a) One assessment per case: differential, ranges, explanation, next tests.

    With ``management`` also the staging and the management plan (for information: the
    1 ms target is the diagnostic assessment's).
    """
    lines = generate_json_lines(n_cases, seed=1)
    cases = [Case.model_validate_json(line) for line in lines]
    for case in cases[:200]:  # warm-up: caches, lazily built tables, branch predictors
        assess(case, kb, TODAY, management=management)
    assess_ms, parse_ms = [], []
    for _ in range(repeats):
        gc.collect()
        per_assess, per_parse = [], []
        for line, case in zip(lines, cases):  # interleaved, so drift hits both alike
            t0 = time.perf_counter_ns()
            Case.model_validate_json(line)
            t1 = time.perf_counter_ns()
            assess(case, kb, TODAY, management=management)
            t2 = time.perf_counter_ns()
            per_parse.append(t1 - t0)
            per_assess.append(t2 - t1)
        assess_ms.append(np.percentile(np.array(per_assess) / 1e6, [50, 95]))
        parse_ms.append(np.percentile(np.array(per_parse) / 1e6, [50, 95]))
    a50, a95 = np.median(assess_ms, axis=0)
    p50, p95 = np.median(parse_ms, axis=0)
    if management:
        return [
            Row(
                f"assessment with staging and plan, median ({n_cases} cases x {repeats})",
                f"{a50:.3f} ms",
                f"parse {p50:.3f} ms",
                f"{a50 / p50:.1f}x parse",
            ),
            Row("assessment with staging and plan, p95", f"{a95:.3f} ms", f"parse {p95:.3f} ms", f"{a95 / p95:.1f}x parse"),
        ]
    return [
        Row(
            f"single assessment, median ({n_cases} cases x {repeats})",
            f"{a50:.3f} ms",
            f"parse {p50:.3f} ms",
            f"{a50 / p50:.1f}x parse",
            f"< {SINGLE_MEDIAN_MS:g} ms",
            a50 < SINGLE_MEDIAN_MS,
        ),
        Row("single assessment, p95", f"{a95:.3f} ms", f"parse {p95:.3f} ms", f"{a95 / p95:.1f}x parse"),
    ]


def bench_batch(n_cases: int, repeats: int, kb) -> list[Row]:
    """(b) Many cases at once, against merely parsing them from JSON."""
    lines = generate_json_lines(n_cases, seed=2)
    cases = [Case.model_validate_json(line) for line in lines]
    assess_batch(cases[:500], kb, TODAY)  # warm-up

    def parse() -> None:
        [Case.model_validate_json(line) for line in lines]

    parse_s = _median_time(parse, repeats)
    batch_s = _median_time(lambda: assess_batch(cases, kb, TODAY), repeats)
    end_to_end_s = _median_time(lambda: assess_batch_json(lines, kb, TODAY), repeats)
    encoder = encoder_for(kb)
    pad = len(kb.log_p) - 1

    def one_by_one_encoder() -> None:  # the batch without its column-wise reader
        keys = [observation_keys(kb, encoder.encode(c, TODAY)) for c in cases]
        matrix = np.full((len(keys), max(map(len, keys))), pad, dtype=np.intp)
        for i, k in enumerate(keys):
            matrix[i, : len(k)] = k
        for start in range(0, len(matrix), 2048):
            batch_posterior(kb, matrix[start : start + 2048])

    reference_s = _median_time(one_by_one_encoder, max(1, repeats // 2))
    parse_rate, batch_rate = n_cases / parse_s, n_cases / batch_s
    ratio = batch_rate / parse_rate
    return [
        Row(f"parse JSON -> Case (baseline, {n_cases} cases)", f"{parse_rate:,.0f} cases/s"),
        Row(
            "assess_batch on the parsed cases",
            f"{batch_rate:,.0f} cases/s",
            f"parse {parse_rate:,.0f}/s",
            f"{ratio:.2f}x parse",
            f">= {BATCH_CASES_PER_S:,} /s",
            batch_rate >= BATCH_CASES_PER_S,
        ),
        Row(
            "assess_batch vs parse",
            f"{ratio:.2f}x",
            f"parse {parse_rate:,.0f}/s",
            f"{ratio:.2f}x parse",
            f">= {BATCH_VS_PARSE:g}x parse",
            ratio >= BATCH_VS_PARSE,
        ),
        Row(
            "end to end: assess_batch_json (parse + batch)",
            f"{n_cases / end_to_end_s:,.0f} cases/s",
            f"parse {parse_rate:,.0f}/s",
            f"{parse_s / end_to_end_s:.2f}x parse",
        ),
        Row(
            "reference: CaseEncoder.encode per case + batch posterior",
            f"{n_cases / reference_s:,.0f} cases/s",
            f"batch {batch_rate:,.0f}/s",
            f"batch {reference_s / batch_s:.1f}x faster",
        ),
    ]


def bench_memory(n_cases: int, kb) -> list[Row]:
    """(c) Peak traced allocations of parsing and of the batch (for information)."""
    lines = generate_json_lines(n_cases, seed=2)
    gc.collect()
    tracemalloc.start()
    cases = [Case.model_validate_json(line) for line in lines]
    _, parse_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    result = assess_batch(cases, kb, TODAY)
    _, batch_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    batch_extra = batch_peak - before
    del result
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    mib = 1024 * 1024
    return [
        Row(f"memory: {n_cases} parsed cases (traced peak)", f"{parse_peak / mib:.1f} MiB"),
        Row(
            "memory: assess_batch working set (traced peak)",
            f"{batch_extra / mib:.1f} MiB",
            f"cases {parse_peak / mib:.1f} MiB",
            f"{batch_extra / parse_peak:.2f}x cases",
        ),
        Row("memory: process peak RSS", f"{max_rss:.0f} MiB"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single-cases", type=int, default=2000, help="cases for the single-assessment timing")
    parser.add_argument("--batch-cases", type=int, default=20_000, help="cases for the batch timing")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of each batch timing (median taken)")
    parser.add_argument("--single-repeats", type=int, default=3, help="passes over the single-assessment cases")
    args = parser.parse_args(argv)

    kb = load_knowledge_base()
    print(
        f"hipdx {hipdx.__version__}, knowledge base {kb.version} ({kb.digest}); Python {platform.python_version()}, "
        f"numpy {np.__version__}, pydantic {pydantic.VERSION}"
    )
    print(
        f"pinned to CPU {PINNED_CPU}, BLAS threads 1, OPENBLAS_CORETYPE "
        f"{os.environ.get('OPENBLAS_CORETYPE', 'not set')}, gc enabled; {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print()
    rows = bench_single(args.single_cases, args.single_repeats, kb)
    rows += bench_single(max(200, args.single_cases // 4), 1, kb, management=True)
    rows += bench_batch(args.batch_cases, args.repeats, kb)
    rows += bench_memory(args.batch_cases, kb)
    print_table(rows)
    print()
    failed = False
    for r in rows:
        if r.passed is not None:
            print(f"{'PASS' if r.passed else 'FAIL'}: {r.measure}: {r.value} (target {r.target}; {r.ratio})")
            failed |= not r.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
