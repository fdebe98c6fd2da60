"""The setting (emergency department or clinic) read from the Encounter: FHIR mapping and CDS patient-view.

The septic probability flag's urgency depends on the setting (red_flags.yaml ``probability_flags``):
in the emergency department an emergency ("do not discharge"), in the clinic under 20% urgent.
The case is test_safety's SEPTIC_LOW (no septic rule holds; septic 7% in the clinic, 18% in the
emergency department), written as FHIR by tests/data/fhir/make_bundles.py; the Encounters follow
the official R4 examples (Encounter-emerg: status, class as a v3 ActCode Coding, subject, period,
location), and the last tests read those examples themselves.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.encounter import Encounter

import hipdx
from hipdx.errors import IntegrationError
from hipdx.fhir import map_fhir
from hipdx.fhir.mapping import FhirMapping
from hipdx.service import ServiceConfig, create_app
from hipdx.service.hooks import SERVICE_ID

from conftest import LoopbackHTTPServer, ROOT, TODAY, send_json, shared_data

ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
DISPLAY = {"EMER": "emergency", "AMB": "ambulatory", "IMP": "inpatient encounter", "VR": "virtual", "OBSENC": "observation encounter"}
SEPTIC_NO_SIGNS = {"id": "septic-no-signs", "age_years": 50, "sex": "male", "onset": {"type": "sudden", "days_since_onset": 30},
                   "imaging": [{"modality": "mri", "days_since_onset": 25, "findings": {"edema_extent": "head_and_neck"}}]}
URL = f"/cds-services/{SERVICE_ID}"


def _writer() -> Any:
    spec = importlib.util.spec_from_file_location("make_bundles", ROOT / "tests" / "data" / "fhir" / "make_bundles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Writer


def _server_shaped() -> list[dict[str, Any]]:
    """The septic case's resources as a FHIR server holds them: references as Type/id."""
    bundle = _writer()(SEPTIC_NO_SIGNS).bundle()
    text = json.dumps([e["resource"] for e in bundle["entry"]])
    for entry in bundle["entry"]:
        text = text.replace(f'"{entry["fullUrl"]}"', f'"{entry["resource"]["resourceType"]}/{entry["resource"]["id"]}"')
    return json.loads(text)


RESOURCES = _server_shaped()
PATIENT = RESOURCES[0]["id"]
assert RESOURCES[0]["resourceType"] == "Patient"


def encounter(code: str | None, status: str = "in-progress", eid: str = "emerg", **more: Any) -> dict[str, Any]:
    """An Encounter shaped as the official R4 example Encounter-emerg, with the class and status asked for."""
    res: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": ACTCODE, "code": code, "display": DISPLAY.get(code or "", "")},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "period": {"start": f"{TODAY.isoformat()}T07:15:00+10:00"},
        "location": [{"location": {"display": "Emergency"}, "status": "active", "period": {"start": f"{TODAY.isoformat()}T08:45:00+10:00"}}],
    }
    if code is None:
        del res["class"]
    res.update(more)
    return res


def mapped(*encounters: dict[str, Any], encounter_id: str | None = None) -> FhirMapping:
    return map_fhir([*copy.deepcopy(RESOURCES), *encounters], TODAY, encounter_id=encounter_id)


def septic_flag(mapping: FhirMapping, kb: hipdx.KnowledgeBase) -> Any:
    a = hipdx.assess(mapping.case, kb, TODAY)
    return next(f for f in a.red_flags if f.condition == "septic")


def setting_source(mapping: FhirMapping) -> tuple[str, str, str] | None:
    return next(((s.resource, s.element, s.value) for s in mapping.sources if s.field == "setting"), None)


def test_the_encounters_of_these_tests_are_valid_r4() -> None:
    for code in ("EMER", "AMB", "IMP", "VR"):
        Encounter.model_validate(encounter(code))


# -- the FHIR path ---------------------------------------------------------------------------------------------


def test_an_emergency_encounter_makes_the_septic_probability_flag_an_emergency(kb: hipdx.KnowledgeBase) -> None:
    """Fails without the Encounter reading: the ED patient was a clinic patient, flagged only urgent."""
    without = mapped()
    assert septic_flag(without, kb).urgency == "urgent"  # the same chart without its encounter
    mapping = mapped(encounter("EMER"))
    assert mapping.case.setting.value == "emergency_department"
    assert setting_source(mapping) == ("Encounter/emerg", "class", f"{ACTCODE}|EMER emergency")
    assert mapping.assumed == []
    flag = septic_flag(mapping, kb)
    assert flag.urgency == "emergency" and "Do not discharge" in flag.action


@pytest.mark.parametrize("code", ["AMB", "VR"])
def test_an_ambulatory_or_virtual_encounter_is_the_clinic_and_stays_urgent(code: str, kb: hipdx.KnowledgeBase) -> None:
    mapping = mapped(encounter(code))
    assert mapping.case.setting.value == "outpatient_clinic" and mapping.assumed == []
    assert setting_source(mapping) == ("Encounter/emerg", "class", f"{ACTCODE}|{code} {DISPLAY[code]}")
    assert septic_flag(mapping, kb).urgency == "urgent"


@pytest.mark.parametrize("code", ["IMP", "OBSENC"])
def test_an_inpatient_or_observation_class_is_listed_not_guessed(code: str, kb: hipdx.KnowledgeBase) -> None:
    mapping = mapped(encounter(code))
    assert setting_source(mapping) is None
    [item] = [u for u in mapping.unmapped if u.resource == "Encounter/emerg"]
    assert item.element == "class" and f"{code} {DISPLAY[code]}" in item.reason
    assert "outside the knowledge base's settings" in item.reason or "describe inpatients" in item.reason
    [assumed] = mapping.assumed
    assert (assumed.field, assumed.value) == ("setting", "outpatient_clinic")
    assert "Encounter/emerg" in assumed.reason and "outpatient clinic's" in assumed.reason
    assert septic_flag(mapping, kb).urgency == "urgent"  # the clinic's tier, shown as assumed


def test_without_an_encounter_the_clinic_is_assumed_and_said() -> None:
    [assumed] = mapped().assumed
    assert assumed.value == "outpatient_clinic" and "no current Encounter" in assumed.reason


@pytest.mark.parametrize("status", ["finished", "cancelled", "entered-in-error", "planned"])
def test_an_encounter_that_is_not_current_gives_no_setting(status: str) -> None:
    mapping = mapped(encounter("EMER", status=status))
    assert mapping.case.setting.value == "outpatient_clinic" and setting_source(mapping) is None
    assert any(u.resource == "Encounter/emerg" and u.element == "status" and status in u.reason for u in mapping.unmapped)
    assert "no Encounter of the record is current" in mapping.assumed[0].reason


def test_the_encounter_the_hook_names_is_read_even_among_others() -> None:
    clinic = encounter("AMB", eid="clinic")
    mapping = mapped(clinic, encounter("EMER"), encounter_id="emerg")
    assert mapping.case.setting.value == "emergency_department"
    assert any(u.resource == "Encounter/clinic" and "hook's context" in u.reason for u in mapping.unmapped)


@pytest.mark.parametrize("status", ["finished", "entered-in-error"])
def test_a_named_encounter_that_ended_or_was_entered_in_error_is_not_read(status: str) -> None:
    mapping = mapped(encounter("EMER", status=status), encounter_id="emerg")
    assert setting_source(mapping) is None and mapping.case.setting.value == "outpatient_clinic"
    assert f"status {status}" in mapping.assumed[0].reason


def test_a_named_encounter_missing_from_the_record_is_said() -> None:
    mapping = mapped(encounter_id="89284")
    assert "Encounter/89284" in mapping.assumed[0].reason and "not in the record" in mapping.assumed[0].reason


def test_several_current_encounters_that_disagree_are_not_guessed() -> None:
    mapping = mapped(encounter("EMER"), encounter("AMB", eid="clinic"))
    assert setting_source(mapping) is None
    assert "2 current encounters do not agree on a setting" in mapping.assumed[0].reason
    assert {u.resource for u in mapping.unmapped if "not guessed" in u.reason} == {"Encounter/emerg", "Encounter/clinic"}
    with_inpatient = mapped(encounter("EMER"), encounter("IMP", eid="ward"))  # one class outside the settings
    assert setting_source(with_inpatient) is None and "IMP inpatient encounter" in with_inpatient.assumed[0].reason
    assert {u.resource for u in with_inpatient.unmapped if "not guessed" in u.reason} == {"Encounter/emerg", "Encounter/ward"}
    agreeing = mapped(encounter("EMER"), encounter("EMER", eid="emerg2"))
    assert agreeing.case.setting.value == "emergency_department" and agreeing.assumed == []


def test_a_missing_class_an_unknown_system_or_code_and_a_future_start_are_listed() -> None:
    cases = {
        ("class", "no class"): encounter(None),
        ("class.system", "is not HL7 v3 ActCode"): encounter("EMER", **{"class": {"system": "http://hl7.org/fhir/v3/ActCode", "code": "EMER"}}),
        ("class.code", "is not an encounter class"): encounter("EMER", **{"class": {"system": ACTCODE, "code": "ER"}}),
        ("period.start", "after the assessment date"): encounter("EMER", period={"start": "2099-01-01"}),
        ("period.end", "stale"): encounter("EMER", period={"start": "2020-01-01", "end": "2020-01-02"}),
    }
    for (element, words), res in cases.items():
        mapping = mapped(res)
        assert setting_source(mapping) is None, element
        assert any(u.resource == "Encounter/emerg" and u.element == element and words in u.reason for u in mapping.unmapped), element
        assert words in mapping.assumed[0].reason


@pytest.mark.parametrize(
    ("klass", "where", "words"),
    [
        ([{"coding": [{"system": ACTCODE, "code": "EMER"}]}], "Encounter/emerg.class", "R5's list of CodeableConcepts"),
        ({"coding": [{"system": ACTCODE, "code": "EMER"}]}, "Encounter/emerg.class", "not a CodeableConcept"),
        ("EMER", "Encounter/emerg.class", "must be a Coding"),
        ({"system": ACTCODE, "code": 7}, "Encounter/emerg.class.code", "must be a string"),
    ],
)
def test_a_malformed_class_is_a_clear_error_naming_the_element(klass: Any, where: str, words: str) -> None:
    with pytest.raises(IntegrationError) as caught:
        mapped(encounter("EMER", **{"class": klass}))
    [problem] = caught.value.problems
    assert problem.field == where and words in problem.reason


def test_a_status_that_is_not_an_r4_status_is_a_clear_error() -> None:
    with pytest.raises(IntegrationError) as caught:
        mapped(encounter("EMER", status="active"))
    [problem] = caught.value.problems
    assert problem.field == "Encounter/emerg.status" and "not an R4 encounter status" in problem.reason


# -- the CDS patient-view call ----------------------------------------------------------------------------------


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any] | None:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]} if resources else None


def request(encounter_id: str | None = None, enc: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    by_type = {"conditions": "Condition", "observations": "Observation", "medicationStatements": "MedicationStatement",
               "medicationRequests": "MedicationRequest", "allergies": "AllergyIntolerance",
               "imagingReports": "DiagnosticReport", "imagingStudies": "ImagingStudy"}
    prefetch: dict[str, Any] = {"patient": RESOURCES[0]}
    prefetch |= {key: searchset([r for r in RESOURCES if r["resourceType"] == rtype]) for key, rtype in by_type.items()}
    if enc is not None:
        prefetch["encounter"] = enc
    context = {"userId": "Practitioner/example", "patientId": PATIENT}
    if encounter_id is not None:
        context["encounterId"] = encounter_id
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch, **more}


@pytest.fixture(scope="module")
def client(kb: hipdx.KnowledgeBase) -> TestClient:
    return TestClient(create_app(ServiceConfig(issuers=None, insecure_no_auth=True, today=lambda: TODAY), kb),
                      raise_server_exceptions=False)


def test_patient_view_in_the_emergency_department_flags_septic_as_an_emergency(client: TestClient) -> None:
    """Fails without the encounter prefetch and its reading: the card said URGENT, as for a clinic patient."""
    answer = client.post(URL, json=request("emerg", encounter("EMER")))
    assert answer.status_code == 200, answer.text
    [card] = answer.json()["cards"]
    assert card["indicator"] == "critical"
    assert "**EMERGENCY** Septic arthritis" in card["detail"] and "Do not discharge" in card["detail"]
    assert "**Seen in:** emergency department (Encounter/emerg, class EMER emergency)." in card["detail"]


def test_patient_view_in_an_ambulatory_encounter_stays_urgent(client: TestClient) -> None:
    [card] = client.post(URL, json=request("emerg", encounter("AMB"))).json()["cards"]
    assert "**URGENT** Septic arthritis" in card["detail"] and "**EMERGENCY**" not in card["detail"]
    assert "**Seen in:** outpatient clinic (Encounter/emerg, class AMB ambulatory)." in card["detail"]


def test_patient_view_of_an_inpatient_shows_the_clinic_as_assumed(client: TestClient) -> None:
    [card] = client.post(URL, json=request("emerg", encounter("IMP"))).json()["cards"]
    assert "**Seen in: outpatient clinic (assumed).** Encounter/emerg:" in card["detail"]
    assert "IMP inpatient encounter" in card["detail"] and "**URGENT** Septic arthritis" in card["detail"]


def test_patient_view_works_without_an_encounter_id_or_its_prefetch(client: TestClient) -> None:
    """The template cannot be filled without encounterId, so the client leaves the key out: no 412."""
    for body in (request(), request("89284")):  # no encounterId; an encounterId the client did not prefetch
        answer = client.post(URL, json=body)
        assert answer.status_code == 200, answer.text
        [card] = answer.json()["cards"]
        assert "**Seen in: outpatient clinic (assumed).**" in card["detail"]
    assert "Encounter/89284" in card["detail"]


def test_a_bad_encounter_id_is_a_400_naming_it(client: TestClient) -> None:
    answer = client.post(URL, json=request("not/an id"))
    assert answer.status_code == 400 and "context.encounterId" in answer.text


def test_a_malformed_encounter_in_the_prefetch_is_a_422_naming_the_element(client: TestClient) -> None:
    bad = encounter("EMER", **{"class": [{"coding": [{"system": ACTCODE, "code": "EMER"}]}]})
    answer = client.post(URL, json=request("emerg", bad))
    assert answer.status_code == 422 and "Encounter/emerg.class" in answer.text and "Traceback" not in answer.text


class _Server(BaseHTTPRequestHandler):
    resources: list[dict[str, Any]] = []
    asked: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.asked.append(self.path)
        rtype, _, rid = self.path.split("?")[0].strip("/").partition("/")
        found = [r for r in self.resources if r["resourceType"] == rtype and (not rid or r["id"] == rid)]
        status, body = (200, found[0] if rid else searchset(found) or {"resourceType": "Bundle", "type": "searchset"})
        if rid and not found:
            status, body = 404, {"resourceType": "OperationOutcome"}
        send_json(self, status, json.dumps(body).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fhir_server() -> Iterator[str]:
    _Server.resources, _Server.asked = [encounter("EMER")], []
    with LoopbackHTTPServer.serving(_Server) as url:
        yield url


def test_an_encounter_not_prefetched_is_fetched_from_an_allowed_server(fhir_server: str, kb: hipdx.KnowledgeBase) -> None:
    config = ServiceConfig(issuers=None, insecure_no_auth=True, fhir_servers=(fhir_server,), today=lambda: TODAY)
    app = TestClient(create_app(config, kb), raise_server_exceptions=False)
    answer = app.post(URL, json=request("emerg", fhirServer=fhir_server))
    assert answer.status_code == 200, answer.text
    assert _Server.asked == ["/Encounter/emerg"]
    assert "**Seen in:** emergency department" in answer.json()["cards"][0]["detail"]
    # an encounter the server does not hold: the call still answers, the clinic assumed and said
    answer = app.post(URL, json=request("gone", fhirServer=fhir_server))
    assert answer.status_code == 200 and "Encounter/gone" in answer.json()["cards"][0]["detail"]


# -- the official R4 examples ------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_the_official_examples_an_admitted_emergency_patient_and_a_finished_visit() -> None:
    """Encounter-emerg: an emergency visit now an inpatient stay (class IMP, classHistory EMER): not the ED.
    Encounter-f001: a finished ambulatory visit: not current."""
    folder = shared_data("data/fhir/hl7-r4-examples")
    for name, element, words in (("Encounter-emerg.json", "class", "IMP inpatient encounter"),
                                 ("Encounter-f001.json", "status", "finished")):
        res = json.loads((folder / name).read_text())
        res["subject"] = {"reference": f"Patient/{PATIENT}"}
        res.pop("period", None)  # dated 2013 and 2017: the status and class are what is tested
        mapping = mapped(res)
        assert setting_source(mapping) is None and mapping.case.setting.value == "outpatient_clinic"
        assert any(u.resource == f"Encounter/{res['id']}" and u.element == element and words in u.reason for u in mapping.unmapped)
