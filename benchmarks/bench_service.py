"""The CDS patient-view service under load, beside baselines of the same server, same run.

Needs ``wrk`` (Debian package ``wrk``: ``apt-get install wrk``; a C load generator, so the
client does not eat the server's CPU the way a Python one would).

For each server configuration (``--databases``: the embedded SQLite database with one worker,
as a default install runs, and PostgreSQL with ``--workers`` workers, default one per CPU, in
a schema of its own in the ``test`` database that is dropped afterwards), ``hipdx serve`` is
started as a real process with JWT authentication on (an ES384 issuer of its own, as the CDS
Hooks sandbox signs; every request carries a fresh signed token, so the replay check and the
call record are written for each call) and driven by 16 closed-loop connections for 60 s each:

1. ``GET /api/v1/health``: the no-op of the issue (routing, middleware, JSON; no token);
2. ``POST /cds-services/hipdx-patient-view`` with a chart of the same 60 resources that states
   no hip pain (the hip-pain Condition coded as hypertension, the MRI without edema): the
   same protocol cost (token check, jti and call record, the body read and mapped), no card;
3. the same service with the hip-pain chart (one card).

Targets (issue 14): p95 of (3) under 50 ms, its median at most twice the no-op's (1), no error
(socket error, timeout or an answer other than 200). The median's ratio to (2) is printed for
information. The server's CPU time per request is printed (its processes, from ``/proc``), and
with PostgreSQL the PostgreSQL server's own (its backends alive and ended; other clients of that
server counted too, so an upper bound). Before the load, the CPU time of one patient-view call (the body read by the strict
JSON reader, mapped, assessed, the card built; no HTTP, no token, no database) is measured
in-process (``thread_time``, median of repeats of 20 calls, the lower of two rounds) for this
tree and for ``--before`` (a git revision, default the merge base with ``main``), in alternating child processes,
so the gain of a change is a ratio of the same run whatever the machine's load.
``--databases sqlite:2`` runs a configuration with another number of workers, ``--wrk-threads``
changes wrk's threads (the process model on a small machine); wrk's own CPU per request is printed
too, the share of the machine the client takes.
Exits 1 when a target fails.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))
from _report import Row, print_table  # noqa: E402

ISSUER = "https://ehr.bench.invalid"
PUBLIC_URL = "http://hipdx.bench.invalid"  # the service's public URL: the tokens' aud, whatever the port
VIEW_PATH = "/cds-services/hipdx-patient-view"
POSTGRES = os.environ.get("HIPDX_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

LUA = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local tokens = {{}}
local i = 0
local body = [==[{body}]==]
function init(args)
  local n = 0
  if "{tokens}" ~= "" then
    for line in io.lines("{tokens}") do
      if n % {threads} == id then tokens[#tokens + 1] = line end
      n = n + 1
    end
  end
end
function request()
  if #tokens == 0 then return wrk.format("{method}", nil, nil, nil) end
  i = i % #tokens + 1
  return wrk.format("{method}", nil, {{["Content-Type"] = "application/json",
                                      ["Authorization"] = "Bearer " .. tokens[i]}}, body)
end
local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT {{\\"requests\\": %d, \\"p50_ms\\": %.3f, \\"p95_ms\\": %.3f, \\"p99_ms\\": %.3f, "
    .. "\\"socket_errors\\": %d, \\"status_errors\\": %d, \\"seconds\\": %.3f}}\\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status, summary.duration / 1e6))
end
"""

IN_PROCESS = """
import datetime as dt, json, sys, time
sys.path.insert(0, sys.argv[1])
from hipdx.fhir.jsonread import read_json
from hipdx.knowledge import load_knowledge_base
from hipdx.service.hooks import patient_view
kb, today, out = load_knowledge_base(), dt.date(2026, 12, 7), {}
for name, body in json.loads(open(sys.argv[2]).read()).items():
    raw = json.dumps(body).encode()
    for _ in range(20):
        patient_view(read_json(raw), kb, today)
    runs = []
    for _ in range(int(sys.argv[3])):
        start = time.thread_time()
        for _ in range(20):
            patient_view(read_json(raw), kb, today)
        runs.append((time.thread_time() - start) / 20 * 1000)
    out[name] = sorted(runs)[len(runs) // 2]
print(json.dumps(out))
"""


def chart(target: int = 60, hip: bool = True) -> tuple[dict[str, Any], int]:
    """A patient-view request whose prefetch holds ``target`` resources; ``hip=False``: no hip pain, no card."""
    raw = json.loads((ROOT / "tests" / "data" / "fhir" / "toh_man_classic.bundle.json").read_text())
    by_url = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in raw["entry"]}
    text = json.dumps([e["resource"] for e in raw["entry"]])
    for url, ref in by_url.items():
        text = text.replace(f'"{url}"', f'"{ref}"')
    resources = json.loads(text)
    patient = resources[0]["id"]
    n = 0
    while len(resources) < target:  # older CRP values, heart rates and an unrelated condition
        n += 1
        kind = n % 3
        if kind == 0:
            resources.append({"resourceType": "Condition", "id": f"pad-c{n}", "subject": {"reference": f"Patient/{patient}"},
                              "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                              "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]}})
        else:
            code = ("1988-5", "mg/L", 4.0) if kind == 1 else ("8867-4", "/min", 72.0)
            resources.append({"resourceType": "Observation", "id": f"pad-o{n}", "status": "final",
                              "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": f"2025-0{1 + n % 9}-15",
                              "code": {"coding": [{"system": "http://loinc.org", "code": code[0]}]},
                              "valueQuantity": {"value": code[2], "unit": code[1], "system": "http://unitsofmeasure.org", "code": code[1]}})
    if not hip:
        resources = [_without_hip(r) for r in resources]
    keys = {"Patient": "patient", "Condition": "conditions", "Observation": "observations",
            "MedicationStatement": "medicationStatements", "MedicationRequest": "medicationRequests",
            "AllergyIntolerance": "allergies", "DiagnosticReport": "imagingReports", "ImagingStudy": "imagingStudies"}
    prefetch: dict[str, Any] = {key: None for key in keys.values()}
    for resource in resources:
        key = keys[resource["resourceType"]]
        if key == "patient":
            prefetch[key] = resource
        else:
            prefetch[key] = prefetch[key] or {"resourceType": "Bundle", "type": "searchset", "entry": []}
            prefetch[key]["entry"].append({"resource": resource})
    return {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"patientId": patient, "userId": "Practitioner/bench"}, "prefetch": prefetch}, len(resources)


def _without_hip(resource: dict[str, Any]) -> dict[str, Any]:
    """The hip-pain Condition coded as hypertension; the MRI's edema finding absent."""
    out = copy.deepcopy(resource)
    codes = [c.get("code") for c in out.get("code", {}).get("coding", [])]
    if out["resourceType"] == "Condition" and "M25.552" in codes:
        out["code"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10", "display": "Essential hypertension"},
                                  {"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]}
        out.pop("bodySite", None)
    if out["resourceType"] == "Observation" and "imaging.edema" in codes:
        out["valueCodeableConcept"] = {"coding": [{"system": "urn:hipdx:codesystem:value", "code": "absent"}]}
    return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_key() -> tuple[Any, dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP384R1())
    return key, {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": "bench", "alg": "ES384", "use": "sig"}


def tokens(key: Any, count: int, audience: str) -> list[str]:
    """``count`` ES384 JWTs as a CDS client signs them, each with its own ``jti``, valid for 58 minutes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    header = _b64(json.dumps({"alg": "ES384", "typ": "JWT", "kid": "bench"}).encode())
    now = int(time.time())
    out = []
    for _ in range(count):
        claims = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + 3500, "jti": str(uuid.uuid4())}
        signed = f"{header}.{_b64(json.dumps(claims).encode())}"
        r, s = utils.decode_dss_signature(key.sign(signed.encode(), ec.ECDSA(hashes.SHA384())))
        out.append(f"{signed}.{_b64(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}")
    return out


def in_process(before: str | None, bodies: dict[str, Any], work: Path, repeats: int) -> dict[str, dict[str, float]]:
    """CPU ms of one patient-view call per chart, for this tree and the ``before`` revision (alternating children)."""
    trees = {"after": ROOT / "src"}
    if before:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", before, "src"], capture_output=True)
        if archive.returncode != 0:
            print(f"--before {before}: not a revision of this repository; no before/after ratio", file=sys.stderr)
        else:
            (work / "before").mkdir()
            subprocess.run(["tar", "-x", "-C", str(work / "before")], input=archive.stdout, check=True)
            trees = {"before": work / "before" / "src", **trees}
    (work / "bodies.json").write_text(json.dumps(bodies))
    best: dict[str, dict[str, float]] = {}
    for _ in range(2):
        for name, src in trees.items():
            out = subprocess.run([sys.executable, "-c", IN_PROCESS, str(src), str(work / "bodies.json"), str(repeats)],
                                 capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ""})
            for chart_name, ms in json.loads(out.stdout.splitlines()[-1]).items():
                best.setdefault(name, {})[chart_name] = min(ms, best.get(name, {}).get(chart_name, float("inf")))
    return best


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _proc_stats() -> dict[int, list[str]]:
    """The fields of ``/proc/PID/stat`` after the command, by process id (Linux)."""
    out: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = _proc_stats()
    parents = {p: int(fields[1]) for p, fields in stats.items()}
    times = {p: (int(fields[11]) + int(fields[12])) / tick for p, fields in stats.items()}
    family, grew = {pid}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in family} - family
        grew = bool(more)
        family |= more
    return sum(times.get(p, 0.0) for p in family)


def postgres_cpu_seconds() -> float | None:
    """CPU seconds of the local PostgreSQL server: its backends alive now plus those that ended
    (the postmaster's children's time), or None when no postmaster is seen. Other clients of
    the same server are counted too: an upper bound of what the service cost it."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = _proc_stats()
    names = {}
    for pid in stats:
        try:
            names[pid] = (Path("/proc") / str(pid) / "comm").read_text().strip()
        except OSError:
            continue
    masters = [p for p, name in names.items() if name == "postgres" and names.get(int(stats[p][1])) != "postgres"]
    if not masters:
        return None
    total = 0.0
    for master in masters:
        fields = stats[master]
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
        total += sum((int(f[11]) + int(f[12])) / tick for p, f in stats.items() if int(f[1]) == master)
    return total


def wrk(url: str, script: Path, connections: int, seconds: int, threads: int = 2) -> dict[str, Any]:
    """wrk's summary (the Lua script's RESULT line) and its own CPU seconds (``wrk_cpu_s``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    [line] = [x for x in out.splitlines() if x.startswith("RESULT ")]
    return {**json.loads(line[len("RESULT "):]),
            "wrk_cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def _post(url: str, body: dict[str, Any], token: str) -> tuple[int, list[Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, json.loads(answer.read())["cards"]


def postgres_schema() -> tuple[str, Any]:
    """A fresh schema in the test database (URL with its search_path) and a function that drops it."""
    import psycopg

    admin = psycopg.connect(POSTGRES.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3, autocommit=True)
    schema = f"hipdx_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()

    return f"{POSTGRES}?options=-csearch_path%3D{schema}", drop


def run_server(kind: str, workers: int, work: Path, scripts: dict[str, Path], warm: dict[str, list[str]],
               bodies: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Start ``hipdx serve`` (``kind``: sqlite or postgresql), load each endpoint in turn, stop it."""
    from hipdx.store import connect, migrate

    drop = None
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPDX_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT / "src"), env.get("PYTHONPATH", "")] if p)
    env["HIPDX_DATA_DIR"] = str(work / f"data-{kind}-{workers}")  # one database per configuration: the tokens are used once each
    command = [sys.executable, "-c", "import sys; from hipdx.cli import main; sys.argv[0] = 'hipdx'; main()", "serve",
               "--cds-issuers", str(work / "issuers.json"), "--public-url", PUBLIC_URL, "--workers", str(workers)]
    if kind == "postgresql":
        url, drop = postgres_schema()
        engine = connect(url)
        migrate(engine)
        engine.dispose()
        command += ["--database-url", url]
    port = free_port()
    server = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{base}/api/v1/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        for name, expected in (("no_hip", 0), ("view", 1)):  # warm every worker; the charts give 0 and 1 card
            for token in warm[name]:
                status, cards = _post(base + VIEW_PATH, bodies[name], token)
                assert (status, len(cards)) == (200, expected), (name, status, cards)
        for name, path in (("noop", "/api/v1/health"), ("no_hip", VIEW_PATH), ("view", VIEW_PATH)):
            load = os.getloadavg()[0]
            cpu, database = tree_cpu_seconds(server.pid), postgres_cpu_seconds() if kind == "postgresql" else None
            results[name] = wrk(base + path, scripts[name], args.connections, args.seconds, args.wrk_threads)
            results[name]["server_cpu_s"] = tree_cpu_seconds(server.pid) - cpu
            after = postgres_cpu_seconds() if database is not None else None
            results[name]["postgres_cpu_s"] = None if after is None or database is None else after - database
            results[name]["load"] = load
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        if drop is not None:
            drop()
    return results


def rows_for(label: str, r: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[Row]:
    noop, base, view = r["noop"], r["no_hip"], r["view"]
    errors = sum(x["socket_errors"] + x["status_errors"] for x in r.values())
    ratio, fair = view["p50_ms"] / noop["p50_ms"], view["p50_ms"] / base["p50_ms"]

    def cpu(x: dict[str, Any]) -> str:
        return f"{x['server_cpu_s'] / max(x['requests'], 1) * 1000:.2f} ms"

    def wrk_cpu(x: dict[str, Any]) -> str:
        return f"{x['wrk_cpu_s'] / max(x['requests'], 1) * 1000:.2f} ms"

    def pg(x: dict[str, Any]) -> str:
        return f"{x['postgres_cpu_s'] / max(x['requests'], 1) * 1000:.2f} ms"

    return [
        Row(f"{label}: throughput, {args.connections} clients x {args.seconds} s",
            f"{view['requests'] / view['seconds']:.0f}/s", f"no-op {noop['requests'] / noop['seconds']:.0f}/s, "
            f"no-hip chart {base['requests'] / base['seconds']:.0f}/s"),
        Row(f"{label}: server CPU per request (all workers)", cpu(view), f"no-op {cpu(noop)}, no-hip chart {cpu(base)}"),
        Row(f"{label}: wrk's CPU per request (the client)", wrk_cpu(view), f"no-op {wrk_cpu(noop)}, no-hip chart {wrk_cpu(base)}"),
        *([Row(f"{label}: PostgreSQL's CPU per request (all its processes)", pg(view),
               f"no-op {pg(noop)}, no-hip chart {pg(base)}")] if view.get("postgres_cpu_s") is not None else []),
        Row(f"{label}: patient-view p95", f"{view['p95_ms']:.1f} ms", f"no-op {noop['p95_ms']:.1f} ms", "", "< 50 ms",
            view["p95_ms"] < 50),
        Row(f"{label}: patient-view median vs no-op", f"{view['p50_ms']:.1f} ms", f"no-op {noop['p50_ms']:.1f} ms",
            f"{ratio:.2f}", "<= 2x no-op", ratio <= 2),
        Row(f"{label}: patient-view median vs no-hip chart", f"{view['p50_ms']:.1f} ms", f"no-hip {base['p50_ms']:.1f} ms",
            f"{fair:.2f}"),
        Row(f"{label}: patient-view p99", f"{view['p99_ms']:.1f} ms", f"no-op {noop['p99_ms']:.1f} ms"),
        Row(f"{label}: errors (socket, timeout, non-200), all runs", str(errors), "", "", "0", errors == 0),
        Row(f"{label}: load average at the start of each run", " / ".join(f"{x['load']:.1f}" for x in r.values())),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="comma-separated: sqlite (1 worker), postgresql (--workers); KIND:N runs N workers (sqlite:2)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers with PostgreSQL")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk's threads (each drives its share of the connections)")
    parser.add_argument("--before", default=None, help="git revision whose in-process cost is the 'before' "
                        "(default: where this branch left main, git merge-base HEAD main; '': none)")
    parser.add_argument("--repeats", type=int, default=15, help="in-process: repeats of 20 calls")
    parser.add_argument("--max-rate", type=int, default=800, help="signed tokens per second of load (a pool per run)")
    args = parser.parse_args()
    if args.before is None:
        base = subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], capture_output=True, text=True)
        args.before = base.stdout.strip()[:10] if base.returncode == 0 else "main"
    configurations = []
    for entry in args.databases.split(","):
        kind, _, count = entry.partition(":")
        if kind not in ("sqlite", "postgresql") or (count and not count.isdigit()) or count == "0":
            parser.error(f"--databases: {entry!r} is not sqlite or postgresql, optionally with :WORKERS (sqlite:2)")
        configurations.append((kind, int(count) if count else 1 if kind == "sqlite" else args.workers))
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (Debian package)", file=sys.stderr)
        return 2
    view, count = chart()
    no_hip, _ = chart(hip=False)
    bodies = {"view": view, "no_hip": no_hip}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        cost = in_process(args.before, bodies, work, args.repeats)
        after = cost["after"]
        for name, what in (("view", "hip-pain chart, 1 card"), ("no_hip", "no-hip chart, no card")):
            before = cost.get("before", {}).get(name)
            rows.append(Row(f"in-process CPU per patient-view call ({what})", f"{after[name]:.2f} ms",
                            f"{args.before} {before:.2f} ms" if before else "", f"{after[name] / before:.2f}x" if before else ""))
        key, jwk = signing_key()
        (work / "issuers.json").write_text(json.dumps({"issuers": [{"iss": ISSUER, "jwks": {"keys": [jwk]}}]}))
        audience = PUBLIC_URL + VIEW_PATH
        pool = args.max_rate * args.seconds
        scripts = {"noop": work / "noop.lua"}
        scripts["noop"].write_text(LUA.format(method="GET", body="", tokens="", threads=args.wrk_threads))
        for name in ("no_hip", "view"):  # one pool per endpoint, used by every configuration (each has its own database)
            (work / f"{name}.tokens").write_text("\n".join(tokens(key, pool, audience)) + "\n")
            scripts[name] = work / f"{name}.lua"
            scripts[name].write_text(LUA.format(method="POST", body=json.dumps(bodies[name]), tokens=work / f"{name}.tokens", threads=args.wrk_threads))
        for kind, workers in configurations:
            warm = {name: tokens(key, 4 * workers, audience) for name in bodies}
            results = run_server(kind, workers, work, scripts, warm, bodies, args)
            rows += rows_for(f"{kind}, {workers} worker{'s' if workers > 1 else ''}", results, args)
    print(f"{count} resources per chart; {os.cpu_count()} CPUs; ES384 tokens, one per request; load average now "
          f"{os.getloadavg()[0]:.2f}")
    print_table(rows)
    for r in rows:
        if r.passed is not None:
            print(f"{'PASS' if r.passed else 'FAIL'}: {r.measure} {r.value} (target {r.target})")
    return 1 if any(r.passed is False for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
