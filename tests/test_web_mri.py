"""The MRI pages of a stored case over the real service (SQLite): a phantom study written as
DICOM by the project's phantom writer is uploaded, de-identified, analysed by the shared job
runner; the measurements, the slice images of both hips and the confirmation that adds the
findings to the case. Every hostile upload is answered 4xx with the problem named."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest

from hipdx.store import records

from api_support import Api
from conftest import EXAMPLES, shared_data
from test_web_pages import text
from web_support import api, sign_in  # noqa: F401  (api: the fixture)

pytestmark = pytest.mark.slow  # MRI phantoms written and analysed: in `make test`, not in `make test-fast`

REAL_SERIES = "data/mri/pelvis-t1/series-01"  # in ../shared


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[Path]]:
    """A small phantom study (T1 and STIR DICOM), edema of the right hip: its truth and files."""
    from hipdx.imaging.phantom import PhantomSpec, write_phantom

    folder = tmp_path_factory.mktemp("phantom")
    truth = write_phantom(folder, PhantomSpec(seed=3, side="right", edema_ml=20.0, slices=24, rows=192, cols=192, pixel_mm=1.6))
    return truth, sorted(p for p in folder.rglob("*.dcm"))


def zipped(entries: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as handle:
        for name, content in entries:
            handle.writestr(name, content)
    return out.getvalue()


def stored_case(api: Api, name: str = "toh_pregnancy_34_weeks") -> str:
    """A stored example case (its side: right) and its id."""
    document = json.loads((EXAMPLES / f"{name}.json").read_text())
    return str(records.create_case(api.engine, name, document, "seed").id)


def wait(api: Api, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = records.get_job(api.engine, job_id)
        if job is not None and job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError("the MRI job did not end")


def upload(api: Api, case_id: str, token: str, files: list[tuple[str, bytes]] = (), archive: bytes | None = None) -> Any:
    parts = [("files", (name, content, "application/octet-stream")) for name, content in files]
    if archive is not None:
        parts.append(("zip", ("study.zip", archive, "application/zip")))
    return api.client.post(f"/cases/{case_id}/mri", data={"csrf_token": token}, files=parts, follow_redirects=False)


def test_a_phantom_upload_gives_measurements_slices_and_findings(api: Api, phantom: tuple[Any, list[Path]]) -> None:
    truth, paths = phantom
    token = sign_in(api)
    case_id = stored_case(api)
    assert "Upload an MRI study" in api.client.get(f"/cases/{case_id}").text
    form = api.client.get(f"/cases/{case_id}/mri").text
    assert 'webkitdirectory' in form and 'name="zip"' in form

    answer = upload(api, case_id, token, archive=zipped([(f"study/{p.parent.name}/{p.name}", p.read_bytes()) for p in paths]))
    assert answer.status_code == 303, answer.text
    job_url = answer.headers["location"]
    job_id = job_url.rsplit("/", 1)[1]
    stored = sorted((api.context.upload_dir / job_id).iterdir())
    assert len(stored) == len(paths) and pydicom.dcmread(stored[0]).PatientIdentityRemoved == "YES"
    job = wait(api, job_id)
    assert job["state"] == "done", job
    # the job is the case's: listed on its page, not reachable from another case
    assert job["case_id"] == case_id and [j["id"] for j in records.jobs_of_case(api.engine, int(case_id))] == [job_id]
    listed = api.client.get(f"/cases/{case_id}").text
    assert f'href="/cases/{case_id}/mri/{job_id}"' in listed and "not added to the case" in text(listed)
    other = stored_case(api, "toh_man_classic")
    assert f"/mri/{job_id}" not in api.client.get(f"/cases/{other}").text
    for foreign in ("", "/view/right?right=3", "/slices/right/3.png"):
        assert api.client.get(f"/cases/{other}/mri/{job_id}{foreign}").status_code == 404, foreign

    page = api.client.get(job_url)
    assert page.status_code == 200
    words = text(page.text)
    right = job["result"]["sides"]["right"]
    assert right["edema"]["volume_ml"] and f"{right['edema']['volume_ml']:.1f} mL" in words
    assert "Measurements" in words and "Subchondral band" in words and "Provenance" in words
    for side in ("right", "left"):  # both hips, each a slider that works without JavaScript (a GET form)
        assert f'id="slice-{side}" type="range" name="{side}"' in page.text
    first = re.search(r'src="(/cases/\d+/mri/[0-9a-f-]+/slices/right/(\d+)\.png)"', page.text)
    assert first is not None
    image = api.client.get(first.group(1))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"
    # the slider's GET (no JavaScript) and the htmx fragment show the slice asked for
    assert 'src="/cases/%s/mri/%s/slices/right/3.png"' % (case_id, job_id) in api.client.get(job_url, params={"right": "3"}).text
    fragment = api.client.get(f"{job_url}/view/left", params={"left": "5"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "/slices/left/5.png" in fragment.text and "Slice <strong>5</strong> of 24" in fragment.text
    # a slice out of range falls back to the head centre; a bad name or side is 404, never 5xx
    assert "/slices/left/999.png" not in api.client.get(f"{job_url}/view/left", params={"left": "999"}).text
    for bad in ("slices/left/999.png", "slices/up/3.png", "slices/left/x.png", "slices/left/..%2F..%2Fhipdx.db"):
        assert api.client.get(f"{job_url}/{bad}").status_code == 404, bad
    assert api.client.get(f"/cases/{case_id}/mri/not-a-job").status_code == 404
    # the progress of an ended job asks htmx to reload the page
    ended = api.client.get(f"{job_url}/progress")
    assert ended.status_code == 286 and ended.headers.get("hx-refresh") == "true"  # 286: htmx stops polling

    # a bad number of days is named at its field; then the clinician confirms
    refused = api.client.post(f"{job_url}/confirm", data={"csrf_token": token, "days_since_onset": "soon"})
    assert refused.status_code == 422 and "is not a number" in text(refused.text)
    assert api.client.post(f"{job_url}/confirm", data={"csrf_token": "forged", "days_since_onset": "30"}).status_code == 403
    late = api.client.post(f"{job_url}/confirm", data={"csrf_token": token, "days_since_onset": "30"})
    assert late.status_code == 422 and "confirm-error" in late.text  # after the case's 21 days since onset
    added = api.client.post(f"{job_url}/confirm", data={"csrf_token": token, "days_since_onset": "20"})
    assert added.status_code == 200 and "MRI findings added" in text(added.text), text(added.text)[-600:]
    study = records.get_case(api.engine, int(case_id)).document["imaging"][-1]
    assert study["modality"] == "mri" and study["days_since_onset"] == 20
    assert study["findings"]["edema"] == "present" and study["findings"]["edema_extent"] != "none"
    # the case page says which facts came from the MRI, as a FHIR read names each fact's source
    assert records.get_job(api.engine, job_id)["added_findings"] == study["findings"]
    case_page = api.client.get(f"/cases/{case_id}").text
    index = len(records.get_case(api.engine, int(case_id)).document["imaging"]) - 1
    edema_field = re.search(r'name="imaging\.%d\.findings\.edema".*?(?=name="imaging\.%d\.findings\.(?!edema"))' % (index, index), case_page, re.S)
    assert edema_field and "from the MRI analysis of" in edema_field.group(0), case_page[-3000:]
    assert "confirmed into the case: " in text(case_page) and "edema = present" in text(case_page)


def test_a_job_runs_once_for_the_api_and_the_pages(api: Api, phantom: tuple[Any, list[Path]]) -> None:
    """The REST API's upload is the same job: its slices are served by the API too."""
    _, paths = phantom
    headers = api.sign_in()
    answer = api.client.post("/api/v1/mri/jobs", content=zipped([(p.name + p.parent.name, p.read_bytes()) for p in paths]),
                             headers=headers | {"Content-Type": "application/zip"})
    assert answer.status_code == 202, answer.text
    job = wait(api, answer.json()["id"])
    assert job["state"] == "done"
    url = answer.headers["location"]
    image = api.client.get(f"{url}/slices/left/12.png", headers=headers)
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    missing = api.client.get(f"{url}/slices/left/99.png", headers=headers)
    assert missing.status_code == 404 and "no slice 99 of the left hip" in missing.json()["detail"]
    assert api.client.get(f"{url}/slices/middle/3.png", headers=headers).status_code == 400
    assert api.client.get(f"{url}/slices/left/3.png").status_code == 401


def _bomb() -> bytes:
    return zipped([("study/big.dcm", b"\0" * (60 * 2**20))], zipfile.ZIP_DEFLATED)


@pytest.mark.parametrize(("case", "status", "named"), [
    ("not DICOM", 422, "None of the files is DICOM"),
    ("empty zip", 422, "The zip is empty"),
    ("zero-byte zip", 422, "is empty (0 bytes)"),
    ("not a zip", 422, "The upload is not a readable zip"),
    ("path traversal", 422, "outside its folder ('../../etc/passwd.dcm')"),
    ("absolute path", 422, "outside its folder ('/etc/x.dcm')"),
    ("zip bomb", 422, "looks like a zip bomb"),
    ("too large", 413, "larger than 1 MB"),
    ("nothing chosen", 422, "Choose the study's folder"),
])
def test_every_bad_upload_is_named(api: Api, phantom: tuple[Any, list[Path]], case: str, status: int, named: str) -> None:
    _, paths = phantom
    token = sign_in(api)
    case_id = stored_case(api)
    dicom = paths[0].read_bytes()
    uploads: dict[str, dict[str, Any]] = {
        "not DICOM": {"files": [("notes.txt", b"hello"), ("scan.dcm", b"\0" * 200)]},
        "empty zip": {"archive": zipped([])},
        "zero-byte zip": {"archive": b""},
        "not a zip": {"archive": b"PK\x03\x04 this is not a zip"},
        "path traversal": {"archive": zipped([("../../etc/passwd.dcm", dicom)])},
        "absolute path": {"archive": zipped([("/etc/x.dcm", dicom)])},
        "zip bomb": {"archive": _bomb()},
        "too large": {"files": [(p.name, p.read_bytes()) for p in paths[:20]]},
        "nothing chosen": {},
    }
    if case == "too large":
        api.context.max_upload_bytes = 2**20
    answer = upload(api, case_id, token, **uploads[case])
    assert answer.status_code == status, answer.text[:300]
    assert named in text(answer.text)
    assert 'type="file"' in answer.text  # the upload form again, to try once more
    uploads_dir = api.context.upload_dir
    assert not uploads_dir.exists() or not any(uploads_dir.iterdir())  # nothing stored, no job queued


def test_damaged_pixels_end_in_words_not_a_5xx(api: Api, phantom: tuple[Any, list[Path]]) -> None:
    """DICOM whose pixel data is cut short: stored, then the analysis says what is wrong."""
    _, paths = phantom
    token = sign_in(api)
    case_id = stored_case(api)
    damaged = []
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        damaged.append((path.name, out.getvalue()))
    answer = upload(api, case_id, token, files=damaged)
    assert answer.status_code == 303, answer.text[:300]
    job_id = answer.headers["location"].rsplit("/", 1)[1]
    job = wait(api, job_id)
    page = api.client.get(answer.headers["location"])
    assert page.status_code == 200
    words = text(page.text)
    if job["state"] == "failed":
        assert "The analysis failed" in words and job["error"] and "internal error" not in job["error"]
    else:
        assert job["result"]["damaged_pixels"] and "Damaged pixels" in words


@pytest.mark.real_data
def test_a_real_study_through_the_page(api: Api) -> None:
    token = sign_in(api)
    case_id = stored_case(api)
    files = [(p.name, p.read_bytes()) for p in sorted(shared_data(REAL_SERIES).iterdir())]
    answer = upload(api, case_id, token, files=files)
    assert answer.status_code == 303, answer.text[:300]
    job = wait(api, answer.headers["location"].rsplit("/", 1)[1])
    assert job["state"] == "done", job
    page = api.client.get(answer.headers["location"])
    assert page.status_code == 200 and "Measurements" in text(page.text)
    if job["result"]["sides"]["right"]["femoral_head"] is not None:
        assert 'id="slice-right"' in page.text
        shown = re.search(r'src="([^"]+/slices/right/\d+\.png)"', page.text).group(1)
        assert api.client.get(shown).content[:4] == b"\x89PNG"
