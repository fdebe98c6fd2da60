"""The CDS patient-view service under load, beside a no-op endpoint of the same server, same run.

Starts ``hipdx serve`` (one worker, embedded SQLite recording every call, as a default install
runs) and drives it with ``wrk`` (Debian package ``wrk``; a C load generator, so the client does
not eat the server's CPU the way a Python one would): 16 connections (clients), each sending its
next request as soon as the last is answered, for 60 s against

- ``GET /api/v1/health`` (no-op: routing, middleware, JSON; the baseline), then
- ``POST /cds-services/hipdx-patient-view`` with a prefetch of 60 FHIR resources (the
  hand-written hip-pain chart of ``tests/data/fhir/toh_man_classic.bundle.json``, padded with
  older labs, vital signs and unrelated conditions), which gives one card.

Targets: p95 of patient-view under 50 ms, its median at most twice the no-op's, no error (a
socket error, a timeout or an answer other than 200). Prints a table and exits 1 when a target
fails. ``--seconds`` shortens the runs; ``--connections`` changes the clients.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _report import Row, print_table  # noqa: E402

LUA = """
wrk.method = "{method}"
{body}
wrk.headers["Content-Type"] = "application/json"
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT {{\\"requests\\": %d, \\"p50_ms\\": %.3f, \\"p95_ms\\": %.3f, \\"p99_ms\\": %.3f, "
    .. "\\"socket_errors\\": %d, \\"status_errors\\": %d, \\"seconds\\": %.3f}}\\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status, summary.duration / 1e6))
end
"""


def chart(target: int = 60) -> dict[str, Any]:
    """A patient-view request whose prefetch holds ``target`` resources."""
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    [line] = [x for x in out.splitlines() if x.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    body, count = chart()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "noop.lua").write_text(LUA.format(method="GET", body=""))
        (work / "view.lua").write_text(LUA.format(method="POST", body=f"wrk.body = {json.dumps(json.dumps(body))}"))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HIPDX_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT / "src"), env.get("PYTHONPATH", "")] if p)
        env["HIPDX_DATA_DIR"] = str(work / "data")
        server = subprocess.Popen([sys.executable, "-c", "import sys; from hipdx.cli import main; sys.argv[0] = 'hipdx'; main()",
                                   "serve", "--insecure-no-auth", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    with urllib.request.urlopen(f"{base}/api/v1/ready", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    time.sleep(0.2)
            view = f"{base}/cds-services/hipdx-patient-view"
            request = urllib.request.Request(view, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            for _ in range(20):  # warm-up; and the chart gives one card
                with urllib.request.urlopen(request, timeout=30) as answer:
                    cards = json.loads(answer.read())["cards"]
            assert len(cards) == 1, cards
            noop = wrk(f"{base}/api/v1/health", work / "noop.lua", args.connections, args.seconds)
            load = wrk(view, work / "view.lua", args.connections, args.seconds)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    errors = load["socket_errors"] + load["status_errors"] + noop["socket_errors"] + noop["status_errors"]
    ratio = load["p50_ms"] / noop["p50_ms"]
    rows = [
        Row(f"patient-view ({count} resources), {args.connections} clients, {args.seconds} s: requests",
            str(load["requests"]), str(noop["requests"]), f"{load['requests'] / max(noop['requests'], 1):.3f}"),
        Row("patient-view throughput", f"{load['requests'] / load['seconds']:.1f}/s",
            f"{noop['requests'] / noop['seconds']:.1f}/s"),
        Row("patient-view p95", f"{load['p95_ms']:.1f} ms", f"{noop['p95_ms']:.1f} ms", "", "< 50 ms",
            load["p95_ms"] < 50),
        Row("patient-view median", f"{load['p50_ms']:.1f} ms", f"{noop['p50_ms']:.1f} ms", f"{ratio:.2f}",
            "<= 2x no-op", ratio <= 2),
        Row("patient-view p99", f"{load['p99_ms']:.1f} ms", f"{noop['p99_ms']:.1f} ms"),
        Row("errors (socket, timeout, non-200)", str(errors), "", "", "0", errors == 0),
    ]
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print_table(rows)
    failed = [r for r in rows if r.passed is False]
    for r in rows:
        if r.passed is not None:
            print(f"{'PASS' if r.passed else 'FAIL'}: {r.measure} {r.value} (target {r.target})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
