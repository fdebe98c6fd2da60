"""The cases: the list, a CDS card's patient link, the entry form (new, opened, posted, read
from a FHIR file), saving, follow-up visits, the course plot and the full assessment. With the
service's database every page needs a signed-in user and every read and write is recorded."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hipdx.case import Modality, parse_case
from hipdx.errors import HipdxError, InputError, Problem
from hipdx.reasoning import assess
from hipdx.reasoning.course import CourseReport, compare_course
from hipdx.web import form as forms
from hipdx.web.context import PageContext, next_study
from hipdx.web.library import StoredCases, plain_number


def routes(ctx: PageContext) -> APIRouter:
    """Every page of the cases, in the order their URLs are matched (``/cases/new`` before ``/cases/{id}``)."""
    router = APIRouter(include_in_schema=False)
    _browse(router, ctx)
    _entry(router, ctx)
    _stored(router, ctx)
    _assessment(router, ctx)
    _report(router, ctx)
    return router


def _browse(router: APIRouter, ctx: PageContext) -> None:
    """The case list, a CDS card's patient link, a new case and a case opened."""
    page = ctx.page

    @router.get("/", response_class=HTMLResponse)
    @ctx.guarded
    def case_list(request: Request, q: str = "") -> HTMLResponse:
        user = ctx.signed_in(request)
        query = q[:200]
        rows = ctx.source.search(query)
        day = ctx.today()
        listed = [(row, ctx.row_assessment(row.id, row.version, day)) for row in rows]
        ctx.record(request, "R", "case list")
        return page("cases.html", user=user, rows=listed, query=query, writable=ctx.source.writable)

    @router.get("/patients/{patient_id}", response_class=HTMLResponse)
    @ctx.guarded
    def open_patient(request: Request, patient_id: str) -> Response:
        """Where a CDS card's link lands (``hipdx serve --case-url .../patients/{patient}``): the
        stored case labelled ``Patient/<id>``, or a new case with that label."""
        ctx.signed_in(request)
        reference = f"Patient/{patient_id[:64]}"
        found = [r for r in ctx.source.search(reference) if r.label == reference or r.label.startswith(reference + " ")]
        if len(found) == 1:
            return RedirectResponse(f"/cases/{found[0].id}", status_code=303)
        if found:
            return RedirectResponse(f"/?q={quote(reference)}", status_code=303)
        return RedirectResponse(f"/cases/new?label={quote(reference)}", status_code=303)

    @router.get("/cases/new", response_class=HTMLResponse)
    @ctx.guarded
    def new_case(request: Request, label: str = "") -> HTMLResponse:
        user = ctx.signed_in(request)
        values: dict[str, str] = {"id": label[:200]} if label and label.isprintable() else {}
        return page("entry.html", user=user, title="New case", **ctx.entry_context(values, forms.FormState(values), None, None))

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    @ctx.guarded
    def open_case(request: Request, case_id: str) -> HTMLResponse:
        user = ctx.signed_in(request)
        row = ctx.source.get(case_id)
        if row is None:
            return ctx.not_found(f"There is no case {case_id!r}.", "/", "the case list", user)
        ctx.record(request, "R", f"case {row.id}")
        values = forms.values_from_case(row.document)
        if ctx.source.writable:
            values["case_key"], values["case_version"] = row.id, str(row.version)
        case, state, assessment = ctx.evaluate(list(values.items()))
        if row.visits_added and case is not None:
            case = parse_case(row.full, ctx.today())
            assessment = assess(case, ctx.kb, ctx.today())
        return page("entry.html", user=user, title=f"Case {row.label}", case_id=row.id,
                    **ctx.entry_context(values, state, assessment, case, row))


def _entry(router: APIRouter, ctx: PageContext) -> None:
    """The entry form posted (no JavaScript) and a FHIR file read into it."""
    page = ctx.page

    @router.post("/cases/entry", response_class=HTMLResponse)
    @ctx.guarded
    async def post_entry(request: Request) -> HTMLResponse:
        user, items, values = await ctx.posted(request)
        added = values.get("add_study")
        if added in Modality._value2member_map_:
            values[f"imaging.{next_study(values)}.modality"] = added
            items = list(values.items())
        case, state, assessment = ctx.evaluate(items)
        status = 422 if state.summary else 200
        row = ctx.source.get(values["case_key"]) if values.get("case_key") else None
        return page("entry.html", status, user=user, title="Case", **ctx.entry_context(values, state, assessment, case, row))

    @router.post("/cases/from-fhir", response_class=HTMLResponse)
    @ctx.guarded
    async def from_fhir(request: Request) -> HTMLResponse:
        """A FHIR R4 file (a Bundle, a resource or an array) read into the entry form, each fact
        with the resource and element it came from."""
        from hipdx.fhir import read_fhir
        from hipdx.fhir.jsonread import MAX_FHIR_BYTES

        user = ctx.signed_in(request)
        try:
            form = await request.form(max_files=1, max_fields=5, max_part_size=MAX_FHIR_BYTES)
        except Exception:  # the multipart parser's refusals (malformed, too many parts)
            form = None
        values = {k: v for k, v in form.multi_items() if isinstance(v, str)} if form is not None else {}
        ctx.check_csrf(user, values)
        upload = form.get("bundle") if form is not None else None
        problem = None
        if upload is None or isinstance(upload, str):
            problem = "choose a FHIR R4 JSON file (a Bundle of one patient's resources)"
        else:
            raw = await upload.read(MAX_FHIR_BYTES + 1)
            await form.close()
            if len(raw) > MAX_FHIR_BYTES:
                problem = f"the file is larger than {MAX_FHIR_BYTES // 2**20} MB"
        if problem is None:
            patient = values.get("patient", "").strip() or None
            try:
                mapping = await run_in_threadpool(read_fhir, raw, ctx.today(), patient_id=patient, what="the FHIR file")
            except HipdxError as err:
                problem = "; ".join([err.message, *(str(p) for p in err.problems[:5])])
        if problem is not None:
            state = forms.FormState({}, summary=[("fhir-file", "The FHIR file", problem)])
            return page("entry.html", 422, user=user, title="New case", **ctx.entry_context({}, state, None, None))
        return fhir_case_page(ctx, request, user, mapping)


def fhir_case_page(ctx: PageContext, request: Request, user: Any | None, mapping: Any, label: str = "",
                   notes: Iterable[str] = ()) -> HTMLResponse:
    """The entry form filled in from a FHIR mapping (:class:`hipdx.fhir.FhirMapping`), each fact with
    the resource and element it came from; ``label``: the case's label when the mapping gives none,
    ``notes``: what the reader noted (as ``fhir_notes``)."""
    ctx.record(request, "E", f"FHIR read {mapping.patient}"[:100])
    case_values = forms.values_from_case(mapping.case.model_dump(mode="json", exclude_defaults=True))
    if label and "id" not in case_values:
        case_values["id"] = label
    case, state, assessment = ctx.evaluate(list(case_values.items()))
    return ctx.page("entry.html", user=user, title=f"Case read from FHIR ({mapping.patient})", fhir_notes=list(notes),
                    **ctx.entry_context(case_values, state, assessment, case, fhir=mapping))


def _form_version(values: dict[str, str]) -> int:
    """The case version the form was opened on (-1, which no case has, when the form does not carry one)."""
    number = plain_number(values.get("case_version", ""))
    return -1 if number is None else number


def _stored(router: APIRouter, ctx: PageContext) -> None:
    """Saving a case and adding a follow-up visit (stored cases only)."""
    page = ctx.page

    @router.post("/cases/save", response_class=HTMLResponse)
    @ctx.guarded
    async def save_case(request: Request) -> Response:
        user, items, values = await ctx.posted(request)
        case, state, assessment = ctx.evaluate(items)
        if not isinstance(ctx.source, StoredCases):
            return page("message.html", 405, user=user, title="Not saved", message="These cases are read-only (no database).",
                        back="/", back_label="the case list")
        if case is None:
            return page("entry.html", 422, user=user, title="Case not saved", **ctx.entry_context(values, state, None, None))
        raw, _, _ = forms.case_from_form(items, ctx.widgets)
        label = (case.id or f"case of {ctx.today().isoformat()}")[:200]
        key = values.get("case_key") or None
        number = plain_number(key) if key else None
        event = ctx.event(request, "U" if key else "C", f"case {key if number is None else number}" if key else "case {id}", 303,
                          saving="the change to the case" if key else "the new case")
        from hipdx.store.records import StaleVersion

        try:  # an update is written only onto the version the form was opened on (two tabs, two clinicians)
            row = await run_in_threadpool(ctx.source.save, key, label, raw, user.username, event, None,
                                          _form_version(values) if key else None)
        except StaleVersion:
            return page("message.html", 409, user=user, title="The case has changed",
                        message="The case was changed after you opened it (in another tab or by someone else), so "
                                "nothing was written. Open the case again, and enter your change once more.",
                        back=f"/cases/{quote(key or '', safe='')}", back_label="the case as it is now")
        if row is None:
            return ctx.not_found(f"There is no case {key!r} to save.", "/", "the case list", user)
        return RedirectResponse(f"/cases/{row.id}", status_code=303)

    @router.post("/cases/{case_id}/visits", response_class=HTMLResponse)
    @ctx.guarded
    async def add_visit(request: Request, case_id: str) -> Response:
        user, _, values = await ctx.posted(request)
        if not isinstance(ctx.source, StoredCases):
            return ctx.not_found(f"There is no stored case {case_id!r}.", "/", "the case list", user)
        opened = _case_of(ctx, user, case_id)  # a case no longer valid today: its page, not a raw error
        if isinstance(opened, HTMLResponse):
            return opened
        row, stored = opened
        visit, problems = forms.visit_from_form(values, ctx.visit_widgets)
        if not problems:
            full = dict(row.full)
            full["visits"] = [*(full.get("visits") or []), visit]
            try:
                parse_case(full, ctx.today())
            except InputError as err:
                position = len(full["visits"]) - 1
                problems = [Problem(p.field.replace(f"visits.{position}", "visit", 1), p.reason) for p in err.problems] or [Problem("", err.message)]
        if problems:
            case_values = forms.values_from_case(row.document) | {"case_key": row.id, "case_version": str(row.version)}
            case, state, assessment = ctx.evaluate(list(case_values.items()))
            if case is not None:
                case = stored
                assessment = assess(case, ctx.kb, ctx.today())
            visit_state = forms.form_state(values, ctx.visit_widgets, problems)
            return page("entry.html", 422, user=user, title=f"Case {row.label}", case_id=row.id,
                        **ctx.entry_context(case_values, state, assessment, case, row, visit_state))
        await run_in_threadpool(ctx.source.add_visit, case_id, visit, user.username,
                                ctx.event(request, "U", f"case {row.id} visit", 303, saving="the new visit"))
        return RedirectResponse(f"/cases/{row.id}#visits", status_code=303)


def _assessment(router: APIRouter, ctx: PageContext) -> None:
    """The course plot of a case's visits and the full assessment (posted, or of a case)."""
    page = ctx.page

    @router.get("/cases/{case_id}/course.svg")
    @ctx.guarded
    def course_plot(request: Request, case_id: str) -> Response:
        ctx.signed_in(request)
        row = ctx.source.get(case_id)
        if row is None:
            return Response("no such case", status_code=404, media_type="text/plain")
        case = parse_case(row.full, ctx.today())
        if not case.visits:
            return Response("this case has no visits", status_code=404, media_type="text/plain")
        assessment = assess(case, ctx.kb, ctx.today())
        report = compare_course(case, assessment.differential[0].id, ctx.kb.course, ctx.today())
        ctx.record(request, "R", f"case {row.id} course")
        return Response(_svg(report), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    @router.post("/assessment", response_class=HTMLResponse)
    @ctx.guarded
    async def post_assessment(request: Request) -> HTMLResponse:
        user, items, values = await ctx.posted(request)
        case, state, assessment = ctx.evaluate(items)
        if assessment is None or case is None:
            return page("entry.html", 422, user=user, title="Case", **ctx.entry_context(values, state, None, None))
        return ctx.assessment_page(assessment, case, values, user)

    @router.get("/cases/{case_id}/assessment", response_class=HTMLResponse)
    @ctx.guarded
    def case_assessment(request: Request, case_id: str) -> HTMLResponse:
        user = ctx.signed_in(request)
        found = _case_of(ctx, user, case_id)
        if isinstance(found, HTMLResponse):
            return found
        row, case = found
        ctx.record(request, "R", f"case {row.id} assessment")
        values = forms.values_from_case(row.document)
        return ctx.assessment_page(assess(case, ctx.kb, ctx.today()), case, values, user, case_id=row.id)


def _report(router: APIRouter, ctx: PageContext) -> None:
    """The printable report of a stored case (PDF), as ``hipdx report`` writes it."""

    @router.get("/cases/{case_id}/report.pdf")
    @ctx.guarded
    def case_report(request: Request, case_id: str) -> Response:
        from hipdx.report.html import ReportContent, course_content, render_html, render_pdf

        user = ctx.signed_in(request)
        found = _case_of(ctx, user, case_id)
        if isinstance(found, HTMLResponse):
            return found
        row, case = found
        day = ctx.today()
        ctx.record(request, "R", f"case {row.id} report")
        assessment = assess(case, ctx.kb, day)
        course, plot = course_content(case, assessment, ctx.kb, day)
        content = ReportContent(assessment=assessment, case=case, course=course, course_plot=plot,
                                inputs=(("Case", f"{row.label} (stored case {row.id})"), ("Date of the assessment", day.isoformat())),
                                assessed_on=day)
        pdf = render_pdf(render_html(content, ctx.kb))
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="hipdx-case-{row.id}.pdf"'})


def _case_of(ctx: PageContext, user: Any | None, case_id: str) -> tuple[Any, Any] | HTMLResponse:
    """A stored case and its Case as of today, or the page that says why not (no such case; not valid today)."""
    row = ctx.source.get(case_id)
    if row is None:
        return ctx.not_found(f"There is no case {case_id!r}.", "/", "the case list", user)
    try:
        return row, parse_case(row.full, ctx.today())
    except InputError as err:
        return ctx.page("message.html", 422, user=user, title="Case not valid today", message=str(err),
                        back=f"/cases/{row.id}", back_label="the case")


def _svg(report: CourseReport) -> bytes:
    import matplotlib

    from hipdx.report.plot import course_figure

    figure = course_figure(report)
    out = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "hipdx", "svg.fonttype": "path"}):
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    return out.getvalue()
