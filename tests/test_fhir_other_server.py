"""A resource about another server's Patient/<same id> is never read as the patient assessed.

``https://other.example/fhir/Patient/123`` and the chart's ``Patient/123`` share an id, not a
person. Only a reference that resolves to the patient in context is read: relative
``Patient/<id>``, absolute under the call's FHIR server (CDS Hooks ``fhirServer``, SMART
``iss``) or the Patient's own base, or the Patient's fullUrl (urn:uuid) in a Bundle. Every
other one is left out and listed in ``unmapped`` with the reason.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import hipdx
from hipdx.fhir import map_fhir
from hipdx.fhir.mapping import READERS
from hipdx.service import ServiceConfig, create_app
from hipdx.service.hooks import SERVICE_ID

from conftest import ROOT, TODAY
from test_service import request_for, server_shaped

BUNDLES = ROOT / "tests" / "data" / "fhir"
EHR = "https://ehr.example.org/fhir"
OTHER = "https://other.example/fhir"
NAME = "toh_man_classic"


def _subject(res: dict[str, Any]) -> str:
    return "patient" if res["resourceType"] == "AllergyIntolerance" else "subject"


def _rebased(resources: list[dict[str, Any]], base: str) -> list[dict[str, Any]]:
    """The resources with every subject (patient) made absolute under ``base``."""
    out = copy.deepcopy(resources)
    for res in out:
        ref = res.get(_subject(res), {}).get("reference")
        if ref and ref.startswith("Patient/"):
            res[_subject(res)]["reference"] = f"{base}/{ref}"
    return out


def _facts(mapping: Any) -> list[tuple[str, str]]:
    return sorted((s.field, s.value) for s in mapping.sources)


def test_another_servers_patient_with_the_same_id_is_not_read() -> None:
    patient, resources = server_shaped(NAME)
    own = map_fhir(resources, TODAY, patient_id=patient, fhir_server=EHR)
    assert len(own.sources) > 10 and own.unmapped == []
    foreign = map_fhir(_rebased(resources, OTHER), TODAY, patient_id=patient, fhir_server=EHR)
    assert {s.resource for s in foreign.sources} == {f"Patient/{patient}"}  # age and sex only
    about = [r for r in resources if r["resourceType"] in READERS]
    left_out = {u.resource: u.reason for u in foreign.unmapped}
    for res in about:
        reason = left_out[f"{res['resourceType']}/{res['id']}"]
        assert f"{OTHER}/Patient/{patient}" in reason and "another FHIR server" in reason


def test_absolute_references_under_the_calls_fhir_server_are_the_patient() -> None:
    patient, resources = server_shaped(NAME)
    own = map_fhir(resources, TODAY, patient_id=patient, fhir_server=EHR)
    absolute = map_fhir(_rebased(resources, EHR), TODAY, patient_id=patient, fhir_server=EHR + "/")
    assert _facts(absolute) == _facts(own) and absolute.unmapped == []
    without_server = map_fhir(_rebased(resources, EHR), TODAY, patient_id=patient)  # no base to resolve against
    assert {s.resource for s in without_server.sources} == {f"Patient/{patient}"}


def test_a_bundle_reads_urn_uuid_and_the_patients_own_base_only() -> None:
    raw = json.loads((BUNDLES / f"{NAME}.bundle.json").read_text())
    assert map_fhir(raw, TODAY).unmapped == []  # urn:uuid fullUrl references: read
    pid = raw["entry"][0]["resource"]["id"]
    here = copy.deepcopy(raw)
    here["entry"][0]["fullUrl"] = f"{EHR}/Patient/{pid}"
    for entry in here["entry"][1:]:
        entry["resource"][_subject(entry["resource"])] = {"reference": f"{EHR}/Patient/{pid}"}
    assert _facts(map_fhir(here, TODAY)) == _facts(map_fhir(raw, TODAY))
    for entry in here["entry"][1:]:
        entry["resource"][_subject(entry["resource"])] = {"reference": f"{OTHER}/Patient/{pid}"}
    foreign = map_fhir(here, TODAY)
    assert {s.resource for s in foreign.sources} == {f"Patient/{pid}"}
    assert len([u for u in foreign.unmapped if "another FHIR server" in u.reason]) == len(raw["entry"]) - 1


@pytest.mark.parametrize("rtype", sorted(READERS))
def test_every_resource_type_read_checks_the_server(rtype: str) -> None:
    """Each type the mapping reads is left out, with the reason, when about another server's Patient/p."""
    res = {"resourceType": rtype, "id": "x", ("patient" if rtype == "AllergyIntolerance" else "subject"):
           {"reference": f"{OTHER}/Patient/p/_history/2"}}
    patient = {"resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1980-05-01"}
    mapping = map_fhir([patient, res], TODAY, fhir_server=EHR)
    [left] = [u for u in mapping.unmapped if u.resource == f"{rtype}/x"]
    assert "another FHIR server" in left.reason and left.element in ("subject", "patient")


def test_the_cds_hook_gives_no_card_from_another_servers_patient(kb: hipdx.KnowledgeBase) -> None:
    client = TestClient(create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY), kb),
                        raise_server_exceptions=False)
    body = request_for(NAME, fhirServer=EHR)
    [card] = client.post(f"/cds-services/{SERVICE_ID}", json=body).json()["cards"]
    for key, value in body["prefetch"].items():
        if key != "patient" and value:
            for entry in value["entry"]:
                entry["resource"] = _rebased([entry["resource"]], EHR)[0]
    assert client.post(f"/cds-services/{SERVICE_ID}", json=body).json()["cards"][0]["summary"] == card["summary"]
    for key, value in body["prefetch"].items():
        if key != "patient" and value:
            for entry in value["entry"]:
                ref = entry["resource"][_subject(entry["resource"])]
                ref["reference"] = ref["reference"].replace(EHR, OTHER)
    response = client.post(f"/cds-services/{SERVICE_ID}", json=body)
    assert response.status_code == 200 and response.json() == {"cards": []}  # no hip pain read: no card


def test_the_fhir_command_lists_what_it_left_out(tmp_path: Path) -> None:
    raw = json.loads((BUNDLES / f"{NAME}.bundle.json").read_text())
    pid = raw["entry"][0]["resource"]["id"]
    raw["entry"][1]["resource"]["subject"] = {"reference": f"{OTHER}/Patient/{pid}"}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-m", "hipdx", "fhir", "map", str(path), "--format", "json",
                           "--today", TODAY.isoformat()],
                          capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert f"{OTHER}/Patient/{pid}" in done.stdout and "another FHIR server" in done.stdout
