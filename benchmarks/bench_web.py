"""Response time of every web page, against the real server with the example cases loaded.

The service as ``make run`` starts it (web pages, REST API, CDS Hooks; the example cases stored
in an SQLite database in a temporary folder; a signed-in clinician) runs under uvicorn on a
free loopback port in this process; a client on one keep-alive connection asks each page
``--repeats`` times after one cold request. The baseline, measured in the same run on the same connection, is the
smallest answer the server gives: the stylesheet (a static file). Target: the 95th
percentile of every group of pages (at least 20 requests each) under 200 ms; the cold first
request of each group and its slowest page are printed for information.

    .venv/bin/python benchmarks/bench_web.py [--repeats 10]
"""

from __future__ import annotations

import _pin  # noqa: F401  (first: one CPU, one BLAS thread)
from _pin import PINNED_CPU

import argparse
import datetime as dt
import json
import platform
import socket
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx2 as httpx
import uvicorn

import hipdx
from _report import Row, print_table
from hipdx.knowledge import load_knowledge_base
from hipdx.service import ServiceConfig, create_app
from hipdx.web.form import values_from_case

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TARGET_MS = 200.0
TODAY = dt.date(2026, 11, 25)


PASSWORD = "benchmark password 1"


def _serve(folder: Path) -> tuple[str, uvicorn.Server, threading.Thread, dict[str, str]]:
    """The service on an SQLite database holding the examples; (url, server, thread, case ids by name)."""
    from hipdx.service.api.context import ApiContext
    from hipdx.store import connect, migrate, records
    from hipdx.store.users import Role, add_user

    kb = load_knowledge_base()
    engine = connect(f"sqlite:///{folder / 'hipdx.db'}")
    migrate(engine)
    add_user(engine, "bench", PASSWORD, Role.clinician)
    ids = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        ids[path.stem] = str(records.create_case(engine, path.stem, json.loads(path.read_text(encoding="utf-8")), "bench").id)
    api = ApiContext(engine=engine, kb=kb, secret=b"b" * 32, upload_dir=folder / "uploads", today=lambda: TODAY,
                     session_cookie_secure=False)
    app = create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY, api=api), kb)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # lifespan on, as `make run` and `hipdx serve` start it: the pages warm up before the first request
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = time.perf_counter()
    while not server.started:
        time.sleep(0.05)
    print(f"server started (start-up with the warm-up) in {time.perf_counter() - started:.1f} s")
    return f"http://127.0.0.1:{port}", server, thread, ids


def _requests(ids: dict[str, str], kb_conditions: list[str], kb_findings: list[str], kb_refs: list[str]) -> list[tuple[str, str, str, dict[str, str] | None]]:
    """(group, method, path, form) for every page."""
    out: list[tuple[str, str, str, dict[str, str] | None]] = [
        ("case list", "GET", "/", None),
        ("case list, search", "GET", "/?" + urlencode({"q": "pregnancy"}), None),
        ("new case", "GET", "/cases/new", None),
        ("knowledge base index", "GET", "/kb", None),
    ]
    for path in sorted(EXAMPLES.glob("*.json")):
        form = values_from_case(json.loads(path.read_text(encoding="utf-8")))
        out += [
            ("case entry (each example)", "GET", f"/cases/{ids[path.stem]}", None),
            ("assessment page (each example)", "GET", f"/cases/{ids[path.stem]}/assessment", None),
            ("differential fragment, htmx (each example)", "POST", "/fragments/differential", form),
            ("posted form -> assessment (each example)", "POST", "/assessment", form),
            ("posted form, no JavaScript (each example)", "POST", "/cases/entry", form),
        ]
    out += [("KB condition (each)", "GET", f"/kb/conditions/{c}", None) for c in kb_conditions]
    out += [("KB finding (each)", "GET", f"/kb/findings/{v}", None) for v in kb_findings]
    out += [("KB reference (each)", "GET", f"/kb/references/{r}", None) for r in kb_refs]
    return out


def _time(client: httpx.Client, method: str, path: str, form: dict[str, str] | None) -> float:
    start = time.perf_counter()
    response = client.request(method, path, data=form) if form is not None else client.request(method, path)
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{method} {path} answered {response.status_code}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="warm requests of each page")
    args = parser.parse_args(argv)
    kb = load_knowledge_base()
    print(f"hipdx {hipdx.__version__}, knowledge base {kb.version} ({kb.digest}); Python {platform.python_version()}; "
          f"pinned to CPU {PINNED_CPU} (server and client share it); {platform.machine()}")
    folder = tempfile.TemporaryDirectory()
    base, server, thread, ids = _serve(Path(folder.name))
    pages = _requests(ids, kb.condition_ids, list(kb.variables), sorted(kb.references))
    groups: dict[str, dict[str, list[float]]] = {}
    cold: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        signed = client.post("/sign-in", data={"username": "bench", "password": PASSWORD, "next": "/"})
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get("/cases/new").text)
        if signed.status_code != 303 or token is None:
            raise SystemExit("could not sign in")
        pages = [(g, m, p, None if f is None else f | {"csrf_token": token.group(1)}) for g, m, p, f in pages]
        baseline = [_time(client, "GET", "/static/hipdx.css", None) for _ in range(max(20, args.repeats * 3))]
        per_group = {g: sum(1 for x in pages if x[0] == g) for g, _, _, _ in pages}
        for group, method, path, form in pages:
            cold.setdefault(group, []).append(_time(client, method, path, form))
            # at least 20 requests per group, so that its p95 is not just its slowest request
            repeats = max(args.repeats, -(-20 // per_group[group]))
            warm = [_time(client, method, path, form) for _ in range(repeats)]
            page = f"{method} {path}" + (f" ({form.get('id', '')})" if form else "")
            groups.setdefault(group, {}).setdefault(page, []).extend(warm)
    server.should_exit = True
    thread.join(timeout=10)
    folder.cleanup()

    base_ms = statistics.median(baseline)
    rows = [Row("baseline: GET /static/hipdx.css, median", f"{base_ms:.2f} ms")]
    for group, by_page in groups.items():
        every = [t for times in by_page.values() for t in times]
        p95 = sorted(every)[max(0, int(round(0.95 * len(every))) - 1)]
        worst_page = max(by_page, key=lambda p: statistics.median(by_page[p]))
        rows.append(
            Row(
                f"{group}: median / p95 ({len(by_page)} page{'s' if len(by_page) > 1 else ''})",
                f"{statistics.median(every):.1f} / {p95:.1f} ms",
                f"{base_ms:.2f} ms",
                f"{p95 / base_ms:.0f}x",
                f"p95 < {TARGET_MS:.0f} ms",
                p95 < TARGET_MS,
            )
        )
        rows.append(Row(f"  slowest: {worst_page}", f"{statistics.median(by_page[worst_page]):.1f} ms median; cold {max(cold[group]):.1f} ms"))
    print_table(rows)
    print()
    failed = False
    for r in rows:
        if r.passed is not None:
            print(f"{'PASS' if r.passed else 'FAIL'}: {r.measure}: {r.value} (target {r.target})")
            failed |= not r.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
