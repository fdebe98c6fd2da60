"""MRI analysis of an uploaded DICOM study as a background job.

``POST /api/v1/mri/jobs`` takes the files as ``multipart/form-data`` (field ``files``, repeated)
or one ``application/zip``; each file is de-identified in memory (``hipdx.service.deid``) before
it is written under the data folder, then the job is queued: 202 with ``Location`` the job's
URL. ``GET /api/v1/mri/jobs/{id}`` gives its state (queued, running, done, failed), progress
(0-1), stage, and when done the analysis (the JSON of ``hipdx mri analyze --format json``).
Jobs run one at a time per worker process; their state is in the database, so any worker
answers for any job. A job whose worker died is failed, with the reason, once its heartbeat is
older than five minutes (:mod:`hipdx.service.api.jobwatch`). ``GET /api/v1/mri/jobs/{id}/slices/{side}/{n}.png``: a finished job's
coronal slice ``n`` of one hip with the outlines of the findings (:mod:`hipdx.report.slices`).

:func:`submit_study` (de-identify, store, queue) and :func:`run_job` (read, analyse, draw the
slices) are the one way in and the one runner for this API and the web pages (``hipdx.web.mri``).
"""

from __future__ import annotations

import io
import logging
import shutil
import uuid
import zipfile
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hipdx.errors import HipdxError, Problem
from hipdx.service.api.context import ApiContext, access_event, audit, clinician, context
from hipdx.service.api.problems import ApiProblem
from hipdx.report.slices import read_manifest, slice_file, write_slices
from hipdx.service.deid import deidentify_files
from hipdx.store import records
from hipdx.store.users import Principal

log = logging.getLogger("hipdx.service.api")
router = APIRouter()
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
UPLOAD = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "application/zip": {"schema": {"type": "string", "format": "binary"}}}}}


def _imaging() -> tuple[Any, Any]:
    """The imaging package's public reader and analysis."""
    import hipdx.imaging as imaging

    try:
        return imaging.read_study, imaging.analyze_read_study
    except AttributeError:  # until hipdx.imaging exports them (issue 13 splits the imaging modules)
        from hipdx.imaging.analyze import analyze_read_study
        from hipdx.imaging.io import read_study

        return read_study, analyze_read_study


#: A member unpacking to more than this many times its packed size is refused (a zip bomb);
#: real DICOM packs 2-20 times (blank background compresses best).
MAX_ZIP_RATIO = 200


def _unsafe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


def unzip(raw: bytes, ctx: ApiContext) -> list[tuple[str, bytes]]:
    """The files of an uploaded zip, checked before anything is unpacked.

    Refused (ApiProblem, its detail naming the problem): not a zip, an empty zip, a member
    named outside the zip's folder (``../x``, ``/etc/x``), more files or more unpacked bytes
    than the service takes, a member packed more than :data:`MAX_ZIP_RATIO` times, a member
    larger than its header says, an encrypted member.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = [m for m in archive.infolist() if not m.is_dir()]
        if not members:
            raise ApiProblem(422, "the zip is empty: it holds no file", [Problem("body", "no file in the zip")])
        unsafe = [m.filename for m in archive.infolist() if _unsafe_name(m.filename)]
        if unsafe:
            raise ApiProblem(422, f"the zip names a file outside its folder ({unsafe[0][:80]!r}); zip the study folder itself",
                             [Problem("body", "a member's path leaves the zip's folder")])
        if len(members) > ctx.max_upload_files:
            raise ApiProblem(413, f"the zip holds more than {ctx.max_upload_files} files")
        if sum(m.file_size for m in members) > ctx.max_upload_bytes:
            raise ApiProblem(413, f"the zip unpacks to more than {ctx.max_upload_bytes // 2**20} MB")
        bomb = [m.filename for m in members if m.file_size > 1_000_000 and m.file_size > MAX_ZIP_RATIO * max(m.compress_size, 1)]
        if bomb:
            raise ApiProblem(422, f"the zip looks like a zip bomb: {bomb[0][:80]!r} unpacks to more than {MAX_ZIP_RATIO} times its size",
                             [Problem("body", "a member's compression ratio is not that of an image")])
        out = []
        for member in members:
            if member.flag_bits & 0x1:
                raise ApiProblem(422, "the zip is encrypted; upload it without a password", [Problem("body", "encrypted member")])
            with archive.open(member) as handle:
                content = handle.read(member.file_size + 1)
            if len(content) > member.file_size:
                raise ApiProblem(422, "the zip is not valid: a file in it is larger than its header says",
                                 [Problem("body", "a member is larger than it says")])
            out.append((member.filename, content))
        return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, ValueError, EOFError,
            OSError) as exc:
        raise ApiProblem(422, "the upload is not a readable zip", [Problem("body", type(exc).__name__)]) from None


async def _files(request: Request, ctx: ApiContext) -> list[tuple[str, bytes]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > ctx.max_upload_bytes:
        raise ApiProblem(413, f"the upload is larger than {ctx.max_upload_bytes // 2**20} MB")
    if content_type == "application/zip":
        raw = await request.body()
        if len(raw) > ctx.max_upload_bytes:
            raise ApiProblem(413, f"the upload is larger than {ctx.max_upload_bytes // 2**20} MB")
        return await run_in_threadpool(unzip, raw, ctx)
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=ctx.max_upload_files, max_fields=10)
        except (HipdxError, ApiProblem):
            raise
        except Exception as exc:  # the multipart parser's refusals (too many files, malformed)
            raise ApiProblem(400, "the multipart body is not valid", [Problem("body", type(exc).__name__)]) from None
        out = []
        for item in form.getlist("files"):
            if isinstance(item, str):
                raise ApiProblem(400, "files must be file parts", [Problem("files", "a text field, not a file")])
            out.append((item.filename or "", await item.read()))
        await form.close()
        if not out:
            raise ApiProblem(400, "no file in the upload", [Problem("files", "required: one or more DICOM files")])
        return out
    raise ApiProblem(415, "send the study as multipart/form-data (files) or application/zip",
                     [Problem("header.content-type", f"{content_type[:60] or 'missing'} is not accepted")])


def slices_folder(ctx: ApiContext, job_id: str) -> FilePath:
    """Where a job's slice images are kept (beside its de-identified DICOM, never inside it)."""
    return ctx.upload_dir / f"{job_id}.slices"


def run_job(ctx: ApiContext, job_id: str) -> None:
    """Analyse a submitted study and draw its slices; the job ends done or failed, never running.

    The one job runner of the REST API and the web pages (:func:`submit_study` queues it).
    """
    folder = ctx.upload_dir / job_id
    try:
        read_study, analyze = _imaging()
        records.update_job(ctx.engine, job_id, state="running", progress=0.1, stage="reading the study")
        study = read_study(folder)
        records.update_job(ctx.engine, job_id, progress=0.3, stage="analysing (femoral heads, edema, bands)")
        analysis = analyze(study)
        records.update_job(ctx.engine, job_id, progress=0.7, stage="drawing the slices of both hips")
        result = analysis.model_dump(mode="json")
        try:
            write_slices(analysis, slices_folder(ctx, job_id))
        except HipdxError as exc:  # the measurements stand without the images
            result["warnings"] = [*result["warnings"], f"no slice images: {exc}"]
        records.update_job(ctx.engine, job_id, state="done", progress=1.0, stage="done", result=result)
    except HipdxError as exc:
        records.update_job(ctx.engine, job_id, state="failed", stage="failed", error=str(exc)[:4000])
    except Exception as exc:  # noqa: BLE001 - a job must end in a state, never hang "running"
        log.error("MRI job %s failed: %s", job_id, type(exc).__name__)
        records.update_job(ctx.engine, job_id, state="failed", stage="failed",
                           error=f"internal error ({type(exc).__name__}); please report")
    finally:
        ctx.watch.release(job_id)


def read_slice(ctx: ApiContext, job_id: str, side: str, k: int) -> bytes | None:
    """The PNG of slice ``k`` (0-based) of one hip of a job, or None when there is none."""
    hip = read_manifest(slices_folder(ctx, job_id)).get(side)
    if hip is None or k not in hip.slices:
        return None
    try:
        return slice_file(slices_folder(ctx, job_id), side, k).read_bytes()
    except OSError:
        return None


def submit_study(ctx: ApiContext, files: list[tuple[str, bytes]], username: str,
                 audit: dict[str, Any] | None = None, case_id: int | None = None) -> dict[str, Any]:
    """De-identify and store an uploaded study, and queue its analysis (:func:`run_job`).

    The one way in for the REST API and the web pages. ``files``: (name as uploaded, content),
    a zip already expanded by :func:`unzip`. ``audit``: the upload's access event, recorded with
    the job in one transaction (its object becomes ``MriJob/<id>``, or the caller's name with the
    job's id for ``{id}``: :func:`hipdx.store.records.named`); ``case_id``: the stored case it
    was uploaded from (the web pages), tied to the job in that same transaction. Returns the job's id, the
    number of DICOM files kept and one line per file left out.

    Raises
    ------
    InputError
        No file of the upload is DICOM.
    """
    job_id = str(uuid.uuid4())
    folder = ctx.upload_dir / job_id
    try:
        written, skipped = deidentify_files(files, folder)
        records.create_job(ctx.engine, job_id, written, username, records.named(audit, f"MriJob/{job_id}", job_id),
                           case_id)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # without its job no one would read or remove these files
        raise
    ctx.watch.hold(ctx.engine, job_id)  # heartbeats while queued and running: a dead worker's jobs are failed
    ctx.jobs.submit(run_job, ctx, job_id)
    return {"id": job_id, "files": written, "left_out": skipped}


@router.post("/mri/jobs", status_code=202, openapi_extra=UPLOAD, tags=["mri"])
async def submit(request: Request, user: Principal = Depends(clinician)) -> Response:
    """Upload a study; it is de-identified, stored and analysed in the background."""
    ctx = context(request)
    files = await _files(request, ctx)
    submitted = await run_in_threadpool(submit_study, ctx, files, user.username, access_event(request, "C", "MriJob", 202))
    job_id = submitted["id"]
    url = f"/api/v1/mri/jobs/{job_id}"
    return JSONResponse({"id": job_id, "state": "queued", "url": url, "files": submitted["files"],
                         "left_out": submitted["left_out"]},
                        status_code=202, headers={"Location": url})


@router.get("/mri/jobs/{job_id}", tags=["mri"])
async def job(request: Request, job_id: JobId, user: Principal = Depends(clinician)) -> dict[str, Any]:
    """A job's state, progress and, when done, the analysis."""
    ctx = context(request)
    found = await run_in_threadpool(records.get_job, ctx.engine, job_id)
    if found is None:
        raise ApiProblem(404, f"no MRI job {job_id}", [Problem("path.job_id", "not found")])
    await run_in_threadpool(audit, request, "R", f"MriJob/{job_id}")
    return found


@router.get("/mri/jobs/{job_id}/slices/{side}/{index}.png", tags=["mri"],
            responses={200: {"content": {"image/png": {}}}})
async def slice_image(request: Request, job_id: JobId, side: Annotated[str, Path(pattern="^(left|right)$")],
                      index: Annotated[int, Path(ge=1, le=100000)], user: Principal = Depends(clinician)) -> Response:
    """One coronal slice (1-based) of one hip of a finished job, with the outlines of the findings."""
    ctx = context(request)
    image = await run_in_threadpool(read_slice, ctx, job_id, side, index - 1)
    if image is None:
        raise ApiProblem(404, f"no slice {index} of the {side} hip for MRI job {job_id}", [Problem("path.index", "not found")])
    await run_in_threadpool(audit, request, "R", f"MriJob/{job_id}")
    return Response(image, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
