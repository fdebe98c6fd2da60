"""The MRI pages of a stored case: upload a study, follow its analysis, read the measurements,
scroll through the slices of both hips, and add the findings to the case.

- ``GET /static/mri/mri.css``: the pages' stylesheet
- ``GET /cases/{id}/mri``: the upload form (a folder of DICOM files, DICOM files, or a zip)
- ``POST /cases/{id}/mri``: the upload, de-identified, stored and queued; 303 to the job
- ``GET /cases/{id}/mri/{job}``: the job: progress, then the measurements and the slice viewer
- ``GET /cases/{id}/mri/{job}/progress``: htmx, the progress polled; 286 and a reload when it ends
- ``GET /cases/{id}/mri/{job}/view/{side}?{side}=n``: htmx, one hip's image at slice ``n`` (1-based)
- ``GET /cases/{id}/mri/{job}/slices/{side}/{n}.png``: the image of a slice
- ``POST /cases/{id}/mri/{job}/confirm``: the clinician confirms; the findings join the case

The upload and the analysis are the REST API's (:func:`hipdx.service.api.mri.submit_study`,
:func:`~hipdx.service.api.mri.run_job`): one de-identification, one job runner. Without
JavaScript the job page refreshes itself while the job runs and each hip's viewer is a form
(slice number, "Show"); with htmx the progress is polled and the range input swaps the image
as it moves (arrow keys included). Every refused upload is the upload page again, 4xx, with
the problem named.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from hipdx.case import parse_case
from hipdx.errors import HipdxError, InputError
from hipdx.web.library import plain_number

JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SIDES = ("right", "left")
STYLESHEET = Path(__file__).parent / "static" / "mri.css"


def mri_router(api: Any, source: Any, today: Callable[[], Any], *, page: Callable[..., HTMLResponse],
               signed_in: Callable[[Request], Any], check_csrf: Callable[[Any, dict[str, str]], None],
               record: Callable[..., None], guarded: Callable[..., Any],
               event: Callable[..., dict[str, Any] | None] = lambda *_, **__: None) -> APIRouter:
    """The MRI pages, over the pages' own session, CSRF, access-log and rendering helpers
    (``event``: a write's access record, which the store writes in the write's transaction)."""
    m = _MriPages(api, source, today, page, signed_in, check_csrf, record, guarded, event)
    router = APIRouter(include_in_schema=False)
    _upload_routes(router, m)
    _job_routes(router, m)
    _slice_routes(router, m)
    _confirm_route(router, m)
    return router


class _MriPages:
    """The MRI pages' helpers over the pages' session, CSRF, access log and rendering."""

    def __init__(self, api: Any, source: Any, today: Callable[[], Any], page: Callable[..., HTMLResponse],
                 signed_in: Callable[[Request], Any], check_csrf: Callable[[Any, dict[str, str]], None],
                 record: Callable[..., None], guarded: Callable[..., Any],
                 event: Callable[..., dict[str, Any] | None]) -> None:
        self.api, self.source, self.today, self.page = api, source, today, page
        self.signed_in, self.check_csrf, self.record, self.guarded = signed_in, check_csrf, record, guarded
        self.event = event

    def message(self, user: Any, status: int, title: str, text: str, back: str = "/", back_label: str = "the case list") -> HTMLResponse:
        return self.page("message.html", status, user=user, title=title, message=text, back=back, back_label=back_label)

    def stored_case(self, user: Any, case_id: str) -> tuple[Any, HTMLResponse | None]:
        if self.api is None:
            return None, self.message(user, 404, "No MRI upload", "MRI studies are uploaded to stored cases; these pages run without a database.")
        row = self.source.get(case_id)
        if row is None:
            return None, self.message(user, 404, "Not found", f"There is no case {case_id[:40]!r}.")
        return row, None

    def job_of(self, user: Any, row: Any, job_id: str) -> tuple[dict[str, Any] | None, HTMLResponse | None]:
        from hipdx.store import records

        found = records.get_job(self.api.engine, job_id) if JOB_ID.match(job_id) else None
        if found is None or found["case_id"] != row.id:  # each case shows only the MRIs uploaded from it
            return None, self.message(user, 404, "Not found", f"There is no MRI analysis {job_id[:40]!r}.",
                                      f"/cases/{row.id}/mri", "the MRI upload")
        return found, None

    def case_job(self, user: Any, case_id: str, job_id: str) -> tuple[Any, dict[str, Any] | None, HTMLResponse | None]:
        """The stored case and its MRI job, or the page that says which is not there."""
        row, refused = self.stored_case(user, case_id)
        if refused:
            return None, None, refused
        job, refused = self.job_of(user, row, job_id)
        return row, job, refused

    def upload_page(self, user: Any, row: Any, status: int = 200, error: str = "") -> HTMLResponse:
        return self.page("mri_upload.html", status, user=user, title=f"MRI of {row.label}", row=row, error=error,
                         max_mb=self.api.max_upload_bytes // 2**20, max_files=self.api.max_upload_files)

    def hips(self, job_id: str) -> dict[str, Any]:
        from hipdx.report.slices import read_manifest
        from hipdx.service.api.mri import slices_folder

        return read_manifest(slices_folder(self.api, job_id))

    def position(self, hip: Any, wanted: str | None) -> int:
        """The 1-based slice to show: the one asked for when it was drawn, else the head centre."""
        asked = plain_number(wanted.strip()) if wanted is not None else None
        if asked is not None and asked - 1 in hip.slices:
            return asked
        return hip.centre + 1 if hip.centre in hip.slices else hip.slices[len(hip.slices) // 2] + 1

    def job_page(self, request: Request, user: Any, row: Any, job: dict[str, Any], status: int = 200,
                 confirm_error: str = "", days: str = "") -> HTMLResponse:
        drawn = self.hips(job["id"]) if job["state"] == "done" else {}
        viewers = {side: (drawn[side], self.position(drawn[side], request.query_params.get(side))) for side in SIDES if side in drawn}
        from hipdx.report.slices import LEGEND

        return self.page("mri_job.html", status, user=user, title=f"MRI of {row.label}", row=row, job=job,
                         a=job.get("result"), viewers=viewers, others={s: n for s, (_, n) in viewers.items()},
                         legend=LEGEND, confirm_error=confirm_error, days=days)

    def add_findings(self, request: Request, user: Any, case_id: str, job_id: str, days: str) -> Response:
        from hipdx.imaging.results import MriAnalysis
        from hipdx.imaging.to_case import case_with_mri
        from hipdx.store.records import StaleVersion

        row, refused = self.stored_case(user, case_id)
        if refused:
            return refused
        job, refused = self.job_of(user, row, job_id)
        if refused:
            return refused
        if job["state"] != "done" or not job.get("result"):
            return self.job_page(request, user, row, job, 409, "The analysis has not finished; its findings can be added when it has.")
        day = self.today()
        try:
            value = float(days) if days else None
        except ValueError:
            return self.job_page(request, user, row, job, 422, f"Days from onset to the MRI: {days[:20]!r} is not a number; give e.g. 30.", days)
        try:
            case = parse_case(row.full, day)
            measured, notes = case_with_mri(case, MriAnalysis.model_validate(job["result"]), value, day)
        except HipdxError as exc:
            problems = "; ".join(f"{p.field}: {p.reason}" for p in exc.problems[:3])
            return self.job_page(request, user, row, job, 422, f"{exc.message}{': ' + problems if problems else ''}", days)
        if measured is case:
            return self.page("mri_added.html", user=user, title="Nothing added", row=row, job=job, added=False, notes=notes)
        study = measured.model_dump(mode="json", exclude_defaults=True)["imaging"][-1]
        document = dict(row.document)
        document["imaging"] = [*document.get("imaging", []), study]
        try:  # onto the version read above: a change made meanwhile is not undone
            saved = self.source.save(row.id, row.label, document, user.username,
                                     self.event(request, "U", f"case {row.id} MRI {job_id} findings", 200, saving="the MRI findings"),
                                     from_job=(job_id, study["findings"]), version=row.version)
        except StaleVersion:
            return self.job_page(request, user, row, job, 409, "The case was changed while the findings were being added; "
                                 "nothing was written. Add them again.", days)
        if saved is None:
            return self.message(user, 404, "Not found", f"There is no case {case_id[:40]!r} to save.")
        return self.page("mri_added.html", user=user, title="MRI findings added", row=saved, job=job, added=True, notes=notes)


def _upload_routes(router: APIRouter, m: _MriPages) -> None:
    """The stylesheet, the upload form and the upload."""
    from starlette.concurrency import run_in_threadpool

    @router.get("/static/mri/mri.css")
    def stylesheet() -> Response:
        return FileResponse(STYLESHEET, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/cases/{case_id}/mri", response_class=HTMLResponse)
    @m.guarded
    def upload_form(request: Request, case_id: str) -> HTMLResponse:
        user = m.signed_in(request)
        row, refused = m.stored_case(user, case_id)
        return refused or m.upload_page(user, row)

    @router.post("/cases/{case_id}/mri", response_class=HTMLResponse)
    @m.guarded
    async def upload(request: Request, case_id: str) -> Response:
        from hipdx.service.api.mri import submit_study, unzip
        from hipdx.service.api.problems import ApiProblem

        user = m.signed_in(request)
        row, refused = await run_in_threadpool(m.stored_case, user, case_id)
        if refused:
            return refused
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > m.api.max_upload_bytes:
            return m.upload_page(user, row, 413, f"The upload is larger than {m.api.max_upload_bytes // 2**20} MB; send fewer files.")
        try:
            form = await request.form(max_files=m.api.max_upload_files + 1, max_fields=10)
        except Exception:  # the multipart parser's refusals (too many files, malformed)
            return m.upload_page(user, row, 422, f"The upload could not be read: send at most {m.api.max_upload_files} files, "
                                                 "as the form sends them.")
        try:
            m.check_csrf(user, {k: v for k, v in form.multi_items() if isinstance(v, str)})
            files: list[tuple[str, bytes]] = []
            for item in form.getlist("files"):
                if not isinstance(item, str) and item.filename:
                    files.append((item.filename, await item.read()))
            archive = form.get("zip")
            zipped = b""
            if archive is not None and not isinstance(archive, str) and archive.filename:
                zipped = await archive.read(m.api.max_upload_bytes + 1)
                if not zipped:
                    return m.upload_page(user, row, 422, f"The zip {archive.filename[:80]!r} is empty (0 bytes).")
        finally:
            await form.close()
        if not files and not zipped:
            return m.upload_page(user, row, 422, "Choose the study's folder, its DICOM files, or a zip of them.")
        if sum(len(c) for _, c in files) + len(zipped) > m.api.max_upload_bytes:
            return m.upload_page(user, row, 413, f"The upload is larger than {m.api.max_upload_bytes // 2**20} MB.")
        try:
            if zipped:
                files += await run_in_threadpool(unzip, zipped, m.api)
            submitted = await run_in_threadpool(submit_study, m.api, files, user.username,
                                                m.event(request, "C", f"case {row.id} MRI {{id}}", 303, saving="the MRI study"), int(row.id))
        except ApiProblem as problem:
            return m.upload_page(user, row, problem.status, f"{problem.detail[0].upper()}{problem.detail[1:]}.")
        except InputError as exc:
            text = "None of the files is DICOM" if "no DICOM" in exc.message else exc.message
            return m.upload_page(user, row, 422, f"{text}: upload the MRI study's DICOM files (a folder of .dcm files, or a zip of it).")
        return RedirectResponse(f"/cases/{row.id}/mri/{submitted['id']}", status_code=303)


def _job_routes(router: APIRouter, m: _MriPages) -> None:
    """The job page and its progress."""
    @router.get("/cases/{case_id}/mri/{job_id}", response_class=HTMLResponse)
    @m.guarded
    def job_view(request: Request, case_id: str, job_id: str) -> HTMLResponse:
        user = m.signed_in(request)
        row, job, refused = m.case_job(user, case_id, job_id)
        if refused:
            return refused
        m.record(request, "R", f"case {row.id} MRI {job_id}")
        return m.job_page(request, user, row, job)

    @router.get("/cases/{case_id}/mri/{job_id}/progress", response_class=HTMLResponse)
    @m.guarded
    def progress(request: Request, case_id: str, job_id: str) -> Response:
        user = m.signed_in(request)
        row, job, refused = m.case_job(user, case_id, job_id)
        if refused:
            return refused
        if job["state"] in ("done", "failed"):
            # 286: htmx stops polling; then it reloads the page, which shows the result
            return Response(status_code=286, headers={"HX-Refresh": "true"})
        return m.page("_mri_progress.html", user=user, row=row, job=job)


def _slice_routes(router: APIRouter, m: _MriPages) -> None:
    """One hip's image at a slice (htmx) and the image of a slice."""

    @router.get("/cases/{case_id}/mri/{job_id}/view/{side}", response_class=HTMLResponse)
    @m.guarded
    def viewer(request: Request, case_id: str, job_id: str, side: str) -> Response:
        user = m.signed_in(request)
        row, job, refused = m.case_job(user, case_id, job_id)
        if refused:
            return refused
        hip = m.hips(job_id).get(side) if side in SIDES else None
        if hip is None:
            return m.page("_message.html", 404, user=user, message=f"No slices of the {side[:10]} hip for this analysis.")
        return m.page("_mri_slice.html", user=user, row=row, job={"id": job_id}, side=side, hip=hip,
                      n=m.position(hip, request.query_params.get(side)))

    @router.get("/cases/{case_id}/mri/{job_id}/slices/{side}/{name}")
    @m.guarded
    def slice_png(request: Request, case_id: str, job_id: str, side: str, name: str) -> Response:
        from hipdx.service.api.mri import read_slice

        user = m.signed_in(request)
        number = plain_number(name.removesuffix(".png"))
        image = None
        row = m.source.get(case_id)
        if row is not None and side in SIDES and name.endswith(".png") and number is not None and m.job_of(user, row, job_id)[1] is None:
            image = read_slice(m.api, job_id, side, number - 1)
        if image is None:
            return Response("no such slice", status_code=404, media_type="text/plain")
        return Response(image, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


def _confirm_route(router: APIRouter, m: _MriPages) -> None:
    """The clinician confirms: the findings join the case."""
    from starlette.concurrency import run_in_threadpool

    @router.post("/cases/{case_id}/mri/{job_id}/confirm", response_class=HTMLResponse)
    @m.guarded
    async def confirm(request: Request, case_id: str, job_id: str) -> Response:
        user = m.signed_in(request)
        data = await request.form(max_fields=10, max_files=0)
        values = {k: v for k, v in data.multi_items() if isinstance(v, str)}
        m.check_csrf(user, values)
        return await run_in_threadpool(m.add_findings, request, user, case_id, job_id, values.get("days_since_onset", "").strip())
