"""Every output of the card path, as one JSON document, to compare two trees byte for byte.

For each hand-written bundle of ``tests/data/fhir`` (as a patient-view request, the way the
tests send it, and the benchmark's padded 60-resource charts with and without hip pain): the
response of :func:`hipdx.service.hooks.patient_view` (the card, byte for byte as encoded), the
mapping (``FhirMapping.model_dump_json``) and the full and lean assessments. For each example
case of ``examples/``: the full and the lean assessment. With ``--shared``, also the mapping
(or the error message) of every HL7 R4 example and Synthea bundle in ``../shared/data/fhir``.

Run it once per tree and compare the files::

    PYTHONPATH=OTHER/src python benchmarks/card_outputs.py > before.json
    PYTHONPATH=src python benchmarks/card_outputs.py > after.json
    cmp before.json after.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_path = list(sys.path)
sys.path.insert(0, str(HERE))
from bench_service import chart  # noqa: E402

sys.path[:] = _path  # bench_service puts this tree's src first: the tree compared is the one on PYTHONPATH

TODAY = dt.date(2026, 12, 7)


def request_for(path: Path) -> dict[str, Any]:
    """A patient-view request whose prefetch holds the bundle's resources, references as Type/id."""
    raw = json.loads(path.read_text())
    by_url = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in raw["entry"]}
    text = json.dumps([e["resource"] for e in raw["entry"]])
    for url, ref in by_url.items():
        text = text.replace(f'"{url}"', f'"{ref}"')
    resources = json.loads(text)
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch: dict[str, Any] = {"patient": patient}
    for key, rtype in (("conditions", "Condition"), ("observations", "Observation"),
                       ("medicationStatements", "MedicationStatement"), ("medicationRequests", "MedicationRequest"),
                       ("allergies", "AllergyIntolerance"), ("imagingReports", "DiagnosticReport"),
                       ("imagingStudies", "ImagingStudy")):
        found = [r for r in resources if r["resourceType"] == rtype]
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]} if found else None
    return {"hook": "patient-view", "hookInstance": f"hook-{path.name}", "context": {"patientId": patient["id"]},
            "prefetch": prefetch}


def outputs(shared: bool) -> dict[str, Any]:
    from hipdx.case import Case
    from hipdx.errors import HipdxError
    from hipdx.fhir.mapping import map_fhir
    from hipdx.knowledge import load_knowledge_base
    from hipdx.reasoning import assess
    from hipdx.service.cards import CardLinks
    from hipdx.service.hooks import gather, parse_request, patient_view

    import hipdx

    print(f"hipdx from {hipdx.__file__}", file=sys.stderr)
    kb = load_knowledge_base()
    links = CardLinks(knowledge_base="https://kb.example/hipdx", case="https://hipdx.example/patients/{patient}")
    out: dict[str, Any] = {}
    requests = {p.name: request_for(p) for p in sorted((ROOT / "tests" / "data" / "fhir").glob("*.bundle.json"))}
    requests["bench: hip-pain chart"] = chart()[0]
    requests["bench: no-hip chart"] = chart(hip=False)[0]
    for name, body in requests.items():
        response = patient_view(body, kb, TODAY, links=links)
        request = parse_request(body)
        mapping = map_fhir(gather(request, ()), TODAY, patient_id=request.patient_id)
        out[name] = {
            "response": json.dumps(response, ensure_ascii=False, separators=(",", ":")),
            "mapping": mapping.model_dump_json(),
            "assessment": assess(mapping.case, kb, TODAY).model_dump_json(),
            "lean": assess(mapping.case, kb, TODAY, explain=False).model_dump_json(),
        }
    for path in sorted((ROOT / "examples").glob("*.json")):
        case = Case.model_validate_json(path.read_text())
        out[f"examples/{path.name}"] = {
            "assessment": assess(case, kb, TODAY).model_dump_json(),
            "lean": assess(case, kb, TODAY, explain=False).model_dump_json(),
        }
    if shared:
        folder = ROOT.parent / "shared" / "data" / "fhir"
        for path in sorted(folder.glob("*/*.json*")):
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            try:
                out[path.name] = map_fhir(json.loads(raw), TODAY).model_dump_json()
            except HipdxError as exc:
                out[path.name] = f"{type(exc).__name__}: {exc} {getattr(exc, 'problems', '')}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", action="store_true", help="also map the HL7 examples and Synthea bundles")
    args = parser.parse_args()
    print(json.dumps(outputs(args.shared), indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
