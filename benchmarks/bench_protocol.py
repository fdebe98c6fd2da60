"""Where the CPU of a CDS call goes outside the card: each protocol step switched off in turn.

The whole service (``build_app``, as ``hipdx serve`` runs it: SQLite in a temporary folder, or
PostgreSQL with ``--postgresql``) is driven in-process through raw ASGI calls, ``--clients``
concurrent calls at a time, with the no-hip chart of ``bench_service.py`` (``--hip``: the
hip-pain chart, one card) and a fresh ES384 token per call, after the app's start-up (its
lifespan, as uvicorn runs it: the pages warm and freeze the heap out of the garbage collector's
reach, which a run without it pays again, about 0.45 ms of collections per call). No HTTP server (uvicorn's share is ``bench_service.py``'s server CPU minus this).
Each configuration runs in a child process of its own, configurations alternating over
``--rounds``; printed: the median CPU time of the process (all threads) per call, and what each
step adds to the next configuration's. Steps are switched off cumulatively, in this order:

- mapping: ``patient_view`` answers no card without reading the chart (the card path's cost);
- strict JSON: the body decoded by ``json.loads`` instead of :func:`hipdx.jsonio.loads`;
- body: the body read but not decoded;
- token: the token neither verified nor its jti read (claims made up);
- record: the call and its jti not written (no group commit).

What is left is routing, the middlewares, the response and the harness's own ASGI calls.
A benchmark tool, not a test: it replaces functions of the running process to switch steps off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = ("mapping", "strict JSON", "body", "token", "record")


def _switch_off(app_module: Any, off: set[str]) -> None:
    if "mapping" in off:
        app_module.patient_view = lambda *args, **kwargs: {"cards": []}
    if "strict JSON" in off:
        app_module.read_json = lambda raw, *args: json.loads(raw)
    if "body" in off:
        async def body_only(request: Any) -> dict[str, Any]:
            await request.body()
            return {}
        app_module._json_body = body_only


def _child(off: set[str], calls: int, clients: int, postgresql: bool, hip: bool = False) -> float:
    """CPU ms per call of the service with the steps ``off`` switched off (run in a child process)."""
    sys.path[:0] = [str(HERE), str(ROOT / "src")]
    import bench_service as bench
    import hipdx.service.app as app_module
    from hipdx.service.factory import build_app, prepare_database
    from hipdx.service.settings import load_settings
    from hipdx.store import connect, migrate

    _switch_off(app_module, off)
    work = Path(tempfile.mkdtemp())
    key, jwk = bench.signing_key()
    (work / "issuers.json").write_text(json.dumps({"issuers": [{"iss": bench.ISSUER, "jwks": {"keys": [jwk]}}]}))
    settings: dict[str, Any] = {"data_dir": work, "cds_issuers": work / "issuers.json", "public_url": bench.PUBLIC_URL}
    drop = None
    if postgresql:
        url, drop = bench.postgres_schema()
        engine = connect(url)
        migrate(engine)
        engine.dispose()
        settings["database_url"] = url
    loaded = load_settings(**settings)
    prepare_database(loaded)
    app = build_app(loaded)
    if "token" in off:
        from hipdx.service.auth import IssuerList
        IssuerList.verify = lambda self, authorization, audience, now=None: {"iss": bench.ISSUER, "jti": authorization[-24:]}
    if "record" in off:
        from hipdx.store import AuditStore
        AuditStore.record_call = lambda self, *args, **kwargs: True
    body = json.dumps(bench.chart(hip=hip)[0]).encode()
    tokens = bench.tokens(key, calls + 64, bench.PUBLIC_URL + bench.VIEW_PATH)

    async def call(i: int) -> None:
        headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                   (b"authorization", f"Bearer {tokens[i]}".encode()), (b"content-length", str(len(body)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": bench.VIEW_PATH, "raw_path": bench.VIEW_PATH.encode(), "query_string": b"", "root_path": "",
                 "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
        messages = iter([{"type": "http.request", "body": body, "more_body": False}])
        answer: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return next(messages, {"type": "http.disconnect"})

        async def send(message: dict[str, Any]) -> None:
            answer.append(message)

        await app(scope, receive, send)
        assert answer[0]["status"] == 200, answer

    async def run(first: int, last: int) -> None:
        todo = iter(range(first, last))

        async def client() -> None:
            for i in todo:
                await call(i)

        await asyncio.gather(*(client() for _ in range(clients)))

    async def serve() -> float:
        # the app's start-up, as uvicorn runs it: the pages warm and freeze the heap (gc.freeze)
        async with app.router.lifespan_context(app):
            await run(0, 64)  # warm: connections, threads, compiled statements
            start = time.process_time()
            await run(64, 64 + calls)
            return (time.process_time() - start) / calls * 1000

    cpu = asyncio.new_event_loop().run_until_complete(serve())
    if drop is not None:
        drop()
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--hip", action="store_true", help="the hip-pain chart (one card) instead of the no-hip chart")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        off = set(json.loads(args.child))
        print(json.dumps(_child(off, args.calls, args.clients, args.postgresql, args.hip)))
        return 0
    configurations = [STEPS[:n] for n in range(len(STEPS) + 1)]
    cpu: dict[int, list[float]] = {n: [] for n in range(len(configurations))}
    for _ in range(args.rounds):
        for n, off in enumerate(configurations):
            command = [sys.executable, __file__, "--child", json.dumps(list(off)), "--calls", str(args.calls),
                       "--clients", str(args.clients), *(["--postgresql"] if args.postgresql else []),
                       *(["--hip"] if args.hip else [])]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            cpu[n].append(float(out.stdout.splitlines()[-1]))
    median = {n: statistics.median(values) for n, values in cpu.items()}
    import os
    print(f"{'PostgreSQL' if args.postgresql else 'SQLite'}, {args.clients} concurrent calls, {args.calls} calls per run, "
          f"{args.rounds} rounds; load average now {os.getloadavg()[0]:.1f}")
    print(f"{'configuration':52s} {'CPU/call':>9s}  {'step adds':>9s}  runs")
    for n, off in enumerate(configurations):
        label = "the whole call" if not off else "without " + ", ".join(off)
        adds = f"{median[n] - median[n + 1]:.2f} ms" if n + 1 in median else ""
        step = f" ({STEPS[n]})" if n < len(STEPS) else " (the rest)"
        print(f"{label[:52]:52s} {median[n]:7.2f} ms  {adds:>9s}{step if adds else ''}  "
              + " ".join(f"{v:.2f}" for v in cpu[n]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
