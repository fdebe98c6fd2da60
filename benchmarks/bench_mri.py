"""Speed and memory of the hip MRI analysis, against merely reading the same files with pydicom.

A synthetic study (coronal T1 and STIR, 45 slices of 384 x 384 each, written by
``hipdx.imaging.phantom.write_phantom`` in a child process into a temporary folder) is
analysed with ``read_study`` + ``analyze_study``; the baseline, measured in the same run and
interleaved with it, is ``pydicom.dcmread`` + ``pixel_array`` of every file. Run it alone,
not in a unit test::

    .venv/bin/python benchmarks/bench_mri.py               # or --study DIR for a real folder

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
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pydicom  # noqa: E402

import hipdx  # noqa: E402
from hipdx.imaging.analyze import analyze_study  # noqa: E402
from hipdx.imaging.io import read_study  # noqa: E402

#: Targets from issue 4 ("Speed (benchmark, not test)").
MAX_RATIO_TO_READ = 3.0
MAX_SECONDS = 10.0
MAX_MEMORY_MIB = 1.5 * 1024

#: The study of the issue: two series of about 45 slices of 384 x 384.
PHANTOM = dict(seed=3, side="left", edema_ml=30.0, band_mm=5.0, slices=45, rows=384, cols=384)


def _write_phantom(folder: Path) -> None:
    """Write the phantom in a child process, so its memory does not count in this one's peak RSS."""
    code = (
        "import sys, json; from hipdx.imaging.phantom import PhantomSpec, write_phantom; "
        "write_phantom(sys.argv[1], PhantomSpec(**json.loads(sys.argv[2])))"
    )
    import json

    subprocess.run([sys.executable, "-c", code, str(folder), json.dumps(PHANTOM)], check=True)


def _dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() not in (".json", ".npz"))


def read_with_pydicom(files: list[Path]) -> int:
    """The baseline: parse every file and decode its pixels, nothing else. Returns the voxel count."""
    voxels = 0
    for f in files:
        voxels += pydicom.dcmread(f).pixel_array.size
    return voxels


def analyse(folder: Path):
    return analyze_study(list(read_study(folder).volumes))


def _timed(fn) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_time(folder: Path, files: list[Path], repeats: int) -> list[Row]:
    """Baseline and analysis, interleaved (one of each per repeat, after one warm-up of each)."""
    read_with_pydicom(files)
    analyse(folder)
    base, whole, reading = [], [], []
    for _ in range(repeats):
        base.append(_timed(lambda: read_with_pydicom(files)))
        reading.append(_timed(lambda: read_study(folder)))
        whole.append(_timed(lambda: analyse(folder)))
    b, w, r = statistics.median(base), statistics.median(whole), statistics.median(reading)
    ratio = w / b
    return [
        Row(f"baseline: pydicom dcmread + pixel_array ({len(files)} files)", f"{b:.3f} s"),
        Row("read_study (for information)", f"{r:.3f} s", f"pydicom {b:.3f} s", f"{r / b:.1f}x read"),
        Row("analyze_study alone (whole - read_study)", f"{w - r:.3f} s", f"pydicom {b:.3f} s", f"{(w - r) / b:.1f}x read"),
        Row(
            "whole analysis: read_study + analyze_study",
            f"{w:.3f} s",
            f"pydicom {b:.3f} s",
            f"{ratio:.1f}x read",
            f"<= {MAX_RATIO_TO_READ:g}x read",
            ratio <= MAX_RATIO_TO_READ,
        ),
        Row("whole analysis: wall time", f"{w:.3f} s", "", f"min {min(whole):.3f} / max {max(whole):.3f} s",
            f"< {MAX_SECONDS:g} s", w < MAX_SECONDS),
    ]


def bench_memory(folder: Path, files: list[Path]) -> list[Row]:
    """tracemalloc peak of one baseline read and one whole analysis; process peak RSS."""
    mib = 1024 * 1024
    gc.collect()
    tracemalloc.start()
    read_with_pydicom(files)
    base_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    result = analyse(folder)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    voxels = read_with_pydicom(files)  # the study's pixels as float32: what any analysis must hold
    pixels = voxels * 4
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return [
        Row("memory: whole analysis (tracemalloc peak)", f"{peak / mib:.0f} MiB",
            f"pixels {pixels / mib:.0f} MiB (float32)", f"{peak / pixels:.1f}x pixels", f"< {MAX_MEMORY_MIB:.0f} MiB", peak / mib < MAX_MEMORY_MIB),
        Row("memory: pydicom read, one file at a time (tracemalloc peak)", f"{base_peak / mib:.1f} MiB"),
        Row("memory: process peak RSS (ru_maxrss)", f"{max_rss:.0f} MiB", "", "", f"< {MAX_MEMORY_MIB:.0f} MiB",
            max_rss < MAX_MEMORY_MIB),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of each timing (median taken)")
    parser.add_argument("--study", type=Path, help="benchmark this DICOM folder instead of the phantom")
    args = parser.parse_args(argv)

    print(
        f"hipdx {hipdx.__version__}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"pydicom {pydicom.__version__}"
    )
    print(
        f"pinned to CPU {PINNED_CPU}, BLAS threads 1, OPENBLAS_CORETYPE "
        f"{os.environ.get('OPENBLAS_CORETYPE', 'not set')}, gc enabled; {platform.machine()}, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="hipdx-bench-mri-") as tmp:
        folder = args.study or Path(tmp)
        if args.study is None:
            start = time.perf_counter()
            _write_phantom(folder)
            print(f"phantom {PHANTOM} written in {time.perf_counter() - start:.1f} s (child process)")
        files = _dicom_files(folder)
        size = sum(f.stat().st_size for f in files) / 1024 / 1024
        print(f"study: {folder}, {len(files)} files, {size:.1f} MiB; {args.repeats} repeats, median taken")
        print()
        rows = bench_time(folder, files, args.repeats)
        rows += bench_memory(folder, files)
    print_table(rows)
    print()
    failed = False
    for r in rows:
        if r.passed is not None:
            note = f"; {r.ratio}" if r.ratio else ""
            print(f"{'PASS' if r.passed else 'FAIL'}: {r.measure}: {r.value} (target {r.target}{note})")
            failed |= not r.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
