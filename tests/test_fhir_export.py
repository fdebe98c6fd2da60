"""Assessment -> FHIR R4 (validated with fhir.resources' R4B models), and the FHIR commands of the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from typer.testing import Result

import hipdx
from hipdx.cli import app
from hipdx.fhir import read_fhir
from hipdx.fhir.export import RANGE_EXTENSION, URGENCY_EXTENSION, assessment_bundle

from conftest import EXAMPLES, ROOT, TODAY, CliRunner

BUNDLES = ROOT / "tests" / "data" / "fhir"
RECORDED = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone.utc)
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.json"))


def resources(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}


@pytest.fixture(scope="module")
def exported(kb: hipdx.KnowledgeBase) -> dict[str, tuple[Any, Any, dict[str, Any]]]:
    out = {}
    for name in NAMES:
        mapping = read_fhir((BUNDLES / f"{name}.bundle.json").read_bytes(), TODAY)
        assessment = hipdx.assess(mapping.case, kb, TODAY)
        out[name] = (mapping, assessment, assessment_bundle(assessment, recorded=RECORDED, mapping=mapping))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_export_is_valid_r4b(name: str, exported: dict[str, Any]) -> None:
    _, _, bundle = exported[name]
    parsed = Bundle.model_validate(bundle)
    assert [e.resource.get_resource_type() for e in parsed.entry] == [
        "RiskAssessment",
        "ClinicalImpression",
        "Device",
        "Provenance",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_one_prediction_per_condition_with_its_range(
    name: str, exported: dict[str, Any], kb: hipdx.KnowledgeBase
) -> None:
    _, assessment, bundle = exported[name]
    risk = resources(bundle)["RiskAssessment"]
    predictions = risk["prediction"]
    assert len(predictions) == len(kb.condition_ids)
    assert [p["probabilityDecimal"] for p in predictions] == [d.probability for d in assessment.differential]
    for p, d in zip(predictions, assessment.differential, strict=True):
        [ext] = p["extension"]
        assert ext["url"] == RANGE_EXTENSION
        assert (ext["valueRange"]["low"]["value"], ext["valueRange"]["high"]["value"]) == d.range
        assert p["outcome"]["coding"][0] == {
            "system": "urn:hipdx:codesystem:condition",
            "code": d.id,
            "display": p["outcome"]["coding"][0]["display"],
        }
        assert "5th-95th percentile" in p["rationale"]


def test_standard_outcome_codes_where_they_exist(exported: dict[str, Any]) -> None:
    risk = resources(exported["onfh_steroids_double_line"][2])["RiskAssessment"]
    onfh = next(p for p in risk["prediction"] if p["outcome"]["coding"][0]["code"] == "onfh")
    assert {
        "system": "http://snomed.info/sct",
        "code": "203476003",
        "display": "Avascular necrosis of the head of femur (disorder)",
    } in onfh["outcome"]["coding"]


def test_impression_carries_headline_red_flags_and_plan(exported: dict[str, Any]) -> None:
    _, assessment, bundle = exported["septic_febrile_crp_mg_dl"]
    impression = resources(bundle)["ClinicalImpression"]
    assert impression["description"] == assessment.headline.text
    assert impression["extension"] == [{"url": URGENCY_EXTENSION, "valueCode": "emergency"}]
    assert impression["finding"][0]["itemCodeableConcept"]["coding"][0]["code"] == "septic"
    assert "RED FLAG [emergency]" in impression["finding"][0]["itemCodeableConcept"]["text"]
    notes = "\n".join(n["text"] for n in impression["note"])
    for heading in ("## Differential", "## Red flags", "## Explanation", "## Next tests", "## Staging", "## Plan"):
        assert heading in notes


def test_provenance_names_hipdx_and_every_source(exported: dict[str, Any]) -> None:
    mapping, assessment, bundle = exported["toh_man_classic"]
    found = resources(bundle)
    device, provenance = found["Device"], found["Provenance"]
    versions = {v["type"]["text"]: v["value"] for v in device["version"]}
    assert versions["software"] == hipdx.__version__
    assert versions["knowledge-base digest"] == assessment.provenance.knowledge_base_digest
    assert provenance["recorded"] == "2026-11-25T12:00:00+00:00"
    urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in bundle["entry"]}
    assert [t["reference"] for t in provenance["target"]] == [urls["RiskAssessment"], urls["ClinicalImpression"]]
    assert provenance["agent"][0]["who"]["reference"] == urls["Device"]
    input_ids = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in json.loads((BUNDLES / "toh_man_classic.bundle.json").read_text())["entry"]
    }
    sources = {e["what"]["reference"] for e in provenance["entity"]}
    assert sources == {s.resource for s in mapping.sources} and sources <= input_ids


def test_export_without_fhir_input_and_deterministic(kb: hipdx.KnowledgeBase) -> None:
    case = hipdx.parse_case((EXAMPLES / "fnsf_runner_fracture_line.json").read_bytes())
    assessment = hipdx.assess(case, kb, TODAY)
    first = assessment_bundle(assessment, recorded=RECORDED)
    assert first == assessment_bundle(assessment, recorded=RECORDED)
    Bundle.model_validate(first)
    risk = resources(first)["RiskAssessment"]
    assert risk["subject"] == {"display": "case fnsf_runner_fracture_line"}
    assert "entity" not in resources(first)["Provenance"]
    with pytest.raises(ValueError, match="timezone-aware"):
        assessment_bundle(assessment, recorded=dt.datetime(2026, 11, 25, 12))


# -- the command line -----------------------------------------------------------------------------------


def run(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_assess_fhir_text_shows_sources_and_assessment() -> None:
    result = run("assess", "--fhir", BUNDLES / "toh_man_classic.bundle.json", "--today", "2026-11-20")
    assert result.exit_code == 0, result.output
    assert "FHIR mapping - Patient/" in result.output
    assert "labs.crp <- Observation/" in result.output and "Nothing relevant left out." in result.output
    assert "TOH" in result.output


def test_assess_fhir_json_carries_the_mapping() -> None:
    result = run(
        "assess",
        "--fhir",
        BUNDLES / "septic_febrile_crp_mg_dl.bundle.json",
        "--today",
        "2026-11-25",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["differential"][0]["id"] == "septic"
    assert data["fhir_mapping"]["patient"].startswith("Patient/")
    assert any(s["field"] == "labs.crp" for s in data["fhir_mapping"]["sources"])


def test_assess_fhir_lists_what_was_left_out(tmp_path: Path) -> None:
    raw = json.loads((BUNDLES / "toh_man_classic.bundle.json").read_text())
    raw["entry"].append(
        {
            "resource": {
                "resourceType": "Observation",
                "id": "nounit",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "4537-7"}]},
                "subject": {"reference": raw["entry"][0]["fullUrl"]},
                "effectiveDateTime": "2026-11-20",
                "valueQuantity": {"value": 30},
            }
        }
    )
    path = tmp_path / "b.json"
    path.write_text(json.dumps(raw))
    result = run("assess", "--fhir", path, "--today", "2026-11-20")
    assert result.exit_code == 0, result.output
    assert (
        "Observation/nounit.valueQuantity" in result.output and "a number without its unit is not read" in result.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["assess"], "give a CASE.json or --fhir BUNDLE.json"),
        (
            ["assess", EXAMPLES / "toh_man_classic.json", "--fhir", BUNDLES / "toh_man_classic.bundle.json"],
            "one of them",
        ),
        (["assess", EXAMPLES / "toh_man_classic.json", "--patient", "x"], "--patient chooses a patient"),
        (["assess", "--fhir", BUNDLES / "missing.json"], "cannot read"),
        (["assess", "--fhir", EXAMPLES / "toh_man_classic.json"], "it looks like a hipdx case"),
        (["fhir", "export"], "give a CASE.json or --fhir"),
        (["fhir", "export", EXAMPLES / "toh_man_classic.json", "--recorded", "yesterday"], "not an ISO 8601 instant"),
        (
            ["fhir", "export", EXAMPLES / "toh_man_classic.json", "--recorded", "2026-11-25T12:00:00"],
            "needs a timezone",
        ),
    ],
)
def test_fhir_usage_errors_are_clean(args: list[object], message: str) -> None:
    result = run(*args)
    assert result.exit_code in (2, 5), result.output
    assert message in result.output and "Traceback" not in result.output


def test_duplicate_key_in_a_bundle_is_refused_by_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"resourceType": "Patient", "id": "p", "birthDate": "1980-01-01", "birthDate": "1990-01-01"}')
    result = run("assess", "--fhir", path)
    assert result.exit_code == 5
    assert "birthDate: given twice" in result.output


def test_fhir_export_prints_a_valid_bundle() -> None:
    result = run(
        "fhir",
        "export",
        "--fhir",
        BUNDLES / "onfh_steroids_double_line.bundle.json",
        "--today",
        "2026-11-25",
        "--recorded",
        "2026-11-25T12:00:00Z",
    )
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.output)
    Bundle.model_validate(bundle)
    impression = resources(bundle)["ClinicalImpression"]
    assert any("## Management plan" in n["text"] for n in impression["note"])
    case_result = run(
        "fhir",
        "export",
        EXAMPLES / "pvns_hip.json",
        "--subject",
        "Patient/42",
        "--recorded",
        "2026-11-25T12:00:00+01:00",
    )
    assert case_result.exit_code == 0, case_result.output
    assert resources(json.loads(case_result.output))["RiskAssessment"]["subject"] == {"reference": "Patient/42"}


def test_fhir_map_text_and_json() -> None:
    text = run("fhir", "map", BUNDLES / "rmo_migratory.bundle.json", "--today", "2026-11-25")
    assert text.exit_code == 0, text.output
    assert "labs.bmd_t_score <- Observation/" in text.output and '"bmd_t_score": -2.7' in text.output
    data = json.loads(
        run("fhir", "map", BUNDLES / "rmo_migratory.bundle.json", "--today", "2026-11-25", "-f", "json").output
    )
    assert data["case"]["labs"]["bmd_t_score"] == -2.7 and data["unmapped"] == []
