"""The clinician's pages: case entry, the assessment, the case list and the knowledge base.

Server-rendered HTML (Jinja2); htmx, where the browser runs it, refreshes the differential
as findings are entered. Every page reads without JavaScript: the entry form posts and the
page comes back with its differential. Bad input answers 422 with the page and every
problem named at its field, in the clinician's words; nothing here answers 500 on input.

==========================================  ===========================================
page                                        what it shows
==========================================  ===========================================
``GET /``                                   the cases, with search, leading diagnosis and red flags
``GET /cases/new``                          an empty case-entry form
``GET /cases/{id}``                         a case in the entry form, with its differential
``POST /cases/entry``                       the form posted (no JavaScript): form + differential
``GET /cases/{id}/assessment``              the full assessment of a case
``POST /assessment``                        the full assessment of the posted form
``POST /fragments/differential``            htmx: the differential panel for the form
``POST /fragments/pregnancy``               htmx: the pregnancy section, when it applies
``POST /fragments/study``                   htmx: one more imaging study in the form
``GET /patients/{id}``                      a CDS card's link: the case labelled ``Patient/<id>`` (or a new one)
``POST /cases/from-fhir``                   a FHIR R4 file read into the form, each fact's source shown
``POST /cases/save``                        save the posted case (stored cases only)
``POST /cases/{id}/visits``                 add a follow-up visit (stored cases only)
``GET /cases/{id}/course.svg``              the course plot of a case's visits
``GET, POST /sign-in``; ``POST /sign-out``  a browser session (stored cases only)
``GET /kb`` and below                       the knowledge base: conditions, findings, references
``GET /static/{name}``                      the stylesheet and the vendored htmx script
==========================================  ===========================================

With the service's database (``api``, :class:`hipdx.service.api.context.ApiContext`) the cases
are the stored ones and every page with patient data needs a signed-in user: the session is
the REST API's cookie (``hipdx_session``, HttpOnly, SameSite=Strict), and every form carries
the session's CSRF token, checked on each POST. Every read and write of a stored case is
recorded in the access log. Without it the pages show a read-only :class:`CaseLibrary`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import inspect
import io
import logging
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from hipdx import __version__
from hipdx.case import Case, Modality, parse_case
from hipdx.errors import HipdxError, InputError, Problem
from hipdx.knowledge import KnowledgeBase
from hipdx.reasoning import Assessment, assess
from hipdx.reasoning.course import CourseReport, compare_course
from hipdx.report import view
from hipdx.report.knowledge import ConditionProfile, band_bounds, band_label, describe_condition, implied_range
from hipdx.web import form as forms
from hipdx.web.library import CaseLibrary, CaseRow, CaseSource, StoredCases
from hipdx.web.mri import mri_router

log = logging.getLogger("hipdx.web")
STATIC = Path(__file__).parent / "static"
#: The files /static serves, and nothing else.
STATIC_FILES = {"hipdx.css": "text/css", "htmx.min.js": "text/javascript"}
#: Scripts and styles only from this server: no inline script, no CDN.
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
MAX_FORM_FIELDS = 2000
SESSION_COOKIE = "hipdx_session"  # the REST API's session cookie (hipdx.service.api.context)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    """The templates, every one compiled once per process (not on a clinician's first request)."""
    env = Environment(
        loader=PackageLoader("hipdx.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        percent=view.percent,
        percent_range=lambda r: view.percent_range(*r),
        lr=view.likelihood_ratio,
        words=forms.choice_label,
        days=view.days,
        first_sentence=view.first_sentence,
        pct=lambda p: f"{max(0.0, min(1.0, float(p))) * 100:.1f}",
    )
    env.globals.update(version=__version__, modality_names=forms.MODALITY_NAMES)
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
    return env


class _SignIn(Exception):
    """The page needs a signed-in user."""


class _Refused(Exception):
    """The form's CSRF token is missing or wrong."""


def web_router(
    kb: KnowledgeBase,
    today: Callable[[], dt.date],
    library: CaseLibrary | None = None,
    api: Any | None = None,
    smart: Any | None = None,
) -> APIRouter:
    """The pages, for one knowledge base; ``today`` dates each assessment.

    ``api`` (:class:`hipdx.service.api.context.ApiContext`): the service's database; the cases
    are the stored ones and the pages need a signed-in user. Without it the pages show
    ``library`` (read-only; none by default) to anyone. ``smart``: the FHIR servers hipdx may
    be launched from (:class:`hipdx.web.smart.SmartConfig`; none by default).
    """
    env = _environment()
    source: CaseSource = StoredCases(api.engine) if api is not None else (library or CaseLibrary.empty())
    sections = forms.case_sections()
    widgets = forms.all_widgets(sections)
    visit_widgets = {w.name: w for w in forms.visit_widgets()}
    condition_ids = set(kb.condition_ids)
    router = APIRouter(include_in_schema=False)

    # --- sessions ---------------------------------------------------------------------------

    def principal(request: Request) -> Any | None:
        if api is None:
            return None
        from hipdx.store import users

        cookie = request.cookies.get(SESSION_COOKIE)
        return users.principal(api.engine, cookie, "session") if cookie else None

    def signed_in(request: Request) -> Any | None:
        """The signed-in user (None when the pages need no sign-in); raises _SignIn otherwise."""
        if api is None:
            return None
        user = principal(request)
        if user is None:
            raise _SignIn()
        request.state.principal = user
        return user

    def csrf(user: Any | None) -> str:
        return api.csrf_token(user.token_hash) if api is not None and user is not None else ""

    def check_csrf(user: Any | None, values: Mapping[str, str]) -> None:
        if api is not None and not hmac.compare_digest(values.get("csrf_token", ""), csrf(user)):
            raise _Refused()

    def record(request: Request, action: str, what: str, status: int = 200) -> None:
        """One access to patient data in the service's access log (as the REST API records them)."""
        if api is None:
            return
        from hipdx.store import records

        user = getattr(request.state, "principal", None)
        client = request.client.host if request.client else None
        try:
            records.record_access(api.engine, {
                "username": user.username if user else None, "role": user.role.value if user else None,
                "action": action, "what": what[:100], "method": request.method, "path": request.url.path[:200],
                "status_code": status, "source_address": (request.headers.get("x-forwarded-for") or client or "")[:100] or None,
            })
        except Exception:  # the page is still answered; the failure is logged
            log.exception("could not record the access")

    # --- rendering --------------------------------------------------------------------------

    def page(template: str, status: int = 200, user: Any | None = None, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(kb=kb, user=user, csrf_token=csrf(user), storage=api is not None, **context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})

    def entry_context(values: Mapping[str, str], state: forms.FormState, assessment: Assessment | None, case: Case | None,
                      row: CaseRow | None = None, visit_state: forms.FormState | None = None,
                      fhir: Any | None = None) -> dict[str, Any]:
        return {
            "sections": sections,
            "state": state,
            "studies": [(i, m, forms.study_widgets(i, m)) for i, m in forms.studies(values)],
            "pregnancy_shown": forms.pregnancy_relevant(values),
            "assessment": assessment,
            "conversions": _conversions(case),
            "modalities": [m.value for m in Modality],
            "row": row,
            "writable": source.writable,
            "visit_widgets": list(visit_widgets.values()),
            "visits": _visits(row, case, assessment),
            "visit_state": visit_state or forms.FormState(),
            "fhir": fhir,
            "sources": _fact_sources(fhir),
        }

    async def form_items(request: Request) -> list[tuple[str, str]]:
        data = await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
        return [(k, v) for k, v in data.multi_items() if isinstance(v, str)]

    def evaluate(items: list[tuple[str, str]]) -> tuple[Case | None, forms.FormState, Assessment | None]:
        case, state = forms.read_form(items, widgets, today())
        return case, state, assess(case, kb, today()) if case is not None else None

    @lru_cache(maxsize=512)
    def row_assessment(case_id: str, version: int, day: dt.date) -> Assessment | None:
        row = source.get(case_id)
        if row is None:
            return None
        try:
            return assess(parse_case(row.full, day), kb, day)
        except HipdxError:
            return None  # a stored case no longer valid on this day: the list says so

    def _visits(row: CaseRow | None, case: Case | None, assessment: Assessment | None) -> dict[str, Any] | None:
        if row is None or case is None or assessment is None or not case.visits:
            return None
        try:
            report = compare_course(case, assessment.differential[0].id, kb.course, today())
        except (HipdxError, KeyError):
            return None
        return {"report": report, "visits": case.visits}

    # --- errors of the session ------------------------------------------------------------

    def sign_in_redirect(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/sign-in"})
        if request.method != "GET":
            target = "/"
        return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)

    def guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
        """Sign-in and CSRF failures answered as pages, never as 5xx. A plain function runs in
        the thread pool (it reads the database and assesses), as FastAPI runs it unwrapped."""
        is_async = inspect.iscoroutinefunction(handler)

        @functools.wraps(handler)
        async def run(*args: Any, **kwargs: Any) -> Response:
            request: Request = kwargs["request"]
            try:
                if is_async:
                    return await handler(*args, **kwargs)
                return await run_in_threadpool(handler, *args, **kwargs)
            except _SignIn:
                return sign_in_redirect(request)
            except _Refused:
                return page("message.html", 403, title="Form expired",
                            message="This form is from an earlier session or another site. Reload the page and try again.",
                            back="/", back_label="the case list")

        return run

    # --- sign in ----------------------------------------------------------------------------

    @router.get("/sign-in", response_class=HTMLResponse)
    def sign_in_page(next: str = "/") -> HTMLResponse:
        if api is None:
            return page("message.html", 404, title="No sign-in", message="These pages run without users (no database).",
                        back="/", back_label="the case list")
        return page("sign_in.html", title="Sign in", next=_local(next), error="")

    @router.post("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        if api is None:
            return page("message.html", 404, title="No sign-in", message="These pages run without users.", back="/", back_label="the case list")
        from hipdx.store import users

        values = dict(await form_items(request))
        username, password = values.get("username", "").strip(), values.get("password", "")
        target = _local(values.get("next", "/"))
        if not username or not password or len(username) > 100 or len(password) > 1000 or not username.isprintable():
            return page("sign_in.html", 422, title="Sign in", next=target, username=username[:100],
                        error="Give your user name and your password.")
        token = await run_in_threadpool(users.sign_in, api.engine, username, password, "session", api.token_lifetime)
        if token is None:
            return page("sign_in.html", 401, title="Sign in", next=target, username=username,
                        error="Unknown user or wrong password.")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, max_age=int(api.token_lifetime.total_seconds()), httponly=True,
                            secure=api.session_cookie_secure, samesite="strict", path="/")
        return response

    @router.post("/sign-out")
    @guarded
    async def sign_out(request: Request) -> Response:
        from hipdx.store import users

        user = signed_in(request)
        check_csrf(user, dict(await form_items(request)))
        await run_in_threadpool(users.sign_out, api.engine, user.token_hash)
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- cases ------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    @guarded
    def case_list(request: Request, q: str = "") -> HTMLResponse:
        user = signed_in(request)
        query = q[:200]
        rows = source.search(query)
        day = today()
        listed = [(row, row_assessment(row.id, row.version, day)) for row in rows]
        record(request, "R", "case list")
        return page("cases.html", user=user, rows=listed, query=query, writable=source.writable)

    @router.get("/patients/{patient_id}", response_class=HTMLResponse)
    @guarded
    def open_patient(request: Request, patient_id: str) -> Response:
        """Where a CDS card's link lands (``hipdx serve --case-url .../patients/{patient}``): the
        stored case labelled ``Patient/<id>``, or a new case with that label."""
        user = signed_in(request)
        reference = f"Patient/{patient_id[:64]}"
        found = [r for r in source.search(reference) if r.label == reference or r.label.startswith(reference + " ")]
        if len(found) == 1:
            return RedirectResponse(f"/cases/{found[0].id}", status_code=303)
        if found:
            return RedirectResponse(f"/?q={quote(reference)}", status_code=303)
        return RedirectResponse(f"/cases/new?label={quote(reference)}", status_code=303)

    @router.get("/cases/new", response_class=HTMLResponse)
    @guarded
    def new_case(request: Request, label: str = "") -> HTMLResponse:
        user = signed_in(request)
        values: dict[str, str] = {"id": label[:200]} if label and label.isprintable() else {}
        return page("entry.html", user=user, title="New case", **entry_context(values, forms.FormState(values), None, None))

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    @guarded
    def open_case(request: Request, case_id: str) -> HTMLResponse:
        user = signed_in(request)
        row = source.get(case_id)
        if row is None:
            return not_found(f"There is no case {case_id!r}.", "/", "the case list", user)
        record(request, "R", f"case {row.id}")
        values = forms.values_from_case(row.document)
        if source.writable:
            values["case_key"] = row.id
        case, state, assessment = evaluate(list(values.items()))
        if row.visits_added and case is not None:
            case = parse_case(row.full, today())
            assessment = assess(case, kb, today())
        return page("entry.html", user=user, title=f"Case {row.label}", case_id=row.id,
                    **entry_context(values, state, assessment, case, row))

    @router.post("/cases/entry", response_class=HTMLResponse)
    @guarded
    async def post_entry(request: Request) -> HTMLResponse:
        user = signed_in(request)
        items = await form_items(request)
        values = dict(items)
        check_csrf(user, values)
        added = values.get("add_study")
        if added in Modality._value2member_map_:
            values[f"imaging.{_next_study(values)}.modality"] = added
            items = list(values.items())
        case, state, assessment = evaluate(items)
        status = 422 if state.summary else 200
        row = source.get(values["case_key"]) if values.get("case_key") else None
        return page("entry.html", status, user=user, title="Case", **entry_context(values, state, assessment, case, row))

    @router.post("/cases/from-fhir", response_class=HTMLResponse)
    @guarded
    async def from_fhir(request: Request) -> HTMLResponse:
        """A FHIR R4 file (a Bundle, a resource or an array) read into the entry form, each fact
        with the resource and element it came from."""
        from hipdx.fhir import read_fhir
        from hipdx.fhir.jsonread import MAX_FHIR_BYTES

        user = signed_in(request)
        try:
            form = await request.form(max_files=1, max_fields=5, max_part_size=MAX_FHIR_BYTES)
        except Exception:  # the multipart parser's refusals (malformed, too many parts)
            form = None
        values = {k: v for k, v in form.multi_items() if isinstance(v, str)} if form is not None else {}
        check_csrf(user, values)
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
                mapping = await run_in_threadpool(read_fhir, raw, today(), patient_id=patient, what="the FHIR file")
            except HipdxError as err:
                problem = "; ".join([err.message, *(str(p) for p in err.problems[:5])])
        if problem is not None:
            state = forms.FormState({}, summary=[("fhir-file", "The FHIR file", problem)])
            return page("entry.html", 422, user=user, title="New case", **entry_context({}, state, None, None))
        return fhir_case_page(request, user, mapping)

    def fhir_case_page(request: Request, user: Any | None, mapping: Any, label: str = "", notes: Iterable[str] = ()) -> HTMLResponse:
        """The entry form filled in from a FHIR mapping, each fact with its source (a file or a SMART launch)."""
        record(request, "E", f"FHIR read {mapping.patient}"[:100])
        case_values = forms.values_from_case(mapping.case.model_dump(mode="json", exclude_defaults=True))
        if label and "id" not in case_values:
            case_values["id"] = label
        case, state, assessment = evaluate(list(case_values.items()))
        return page("entry.html", user=user, title=f"Case read from FHIR ({mapping.patient})", fhir_notes=list(notes),
                    **entry_context(case_values, state, assessment, case, fhir=mapping))

    @router.post("/cases/save", response_class=HTMLResponse)
    @guarded
    async def save_case(request: Request) -> Response:
        user = signed_in(request)
        items = await form_items(request)
        values = dict(items)
        check_csrf(user, values)
        case, state, assessment = evaluate(items)
        if not isinstance(source, StoredCases):
            return page("message.html", 405, user=user, title="Not saved", message="These cases are read-only (no database).",
                        back="/", back_label="the case list")
        if case is None:
            return page("entry.html", 422, user=user, title="Case not saved", **entry_context(values, state, None, None))
        raw, _, _ = forms.case_from_form(items, widgets)
        label = (case.id or f"case of {today().isoformat()}")[:200]
        key = values.get("case_key") or None
        row = await run_in_threadpool(source.save, key, label, raw, user.username)
        if row is None:
            return not_found(f"There is no case {key!r} to save.", "/", "the case list", user)
        record(request, "U" if key else "C", f"case {row.id}", 303)
        return RedirectResponse(f"/cases/{row.id}", status_code=303)

    @router.post("/cases/{case_id}/visits", response_class=HTMLResponse)
    @guarded
    async def add_visit(request: Request, case_id: str) -> Response:
        user = signed_in(request)
        values = dict(await form_items(request))
        check_csrf(user, values)
        row = source.get(case_id)
        if row is None or not isinstance(source, StoredCases):
            return not_found(f"There is no stored case {case_id!r}.", "/", "the case list", user)
        visit, problems = forms.visit_from_form(values, visit_widgets)
        if not problems:
            full = dict(row.full)
            full["visits"] = [*(full.get("visits") or []), visit]
            try:
                parse_case(full, today())
            except InputError as err:
                position = len(full["visits"]) - 1
                problems = [Problem(p.field.replace(f"visits.{position}", "visit", 1), p.reason) for p in err.problems] or [Problem("", err.message)]
        if problems:
            case_values = forms.values_from_case(row.document) | {"case_key": row.id}
            case, state, assessment = evaluate(list(case_values.items()))
            if case is not None:
                case = parse_case(row.full, today())
                assessment = assess(case, kb, today())
            visit_state = forms.form_state(values, visit_widgets, problems)
            return page("entry.html", 422, user=user, title=f"Case {row.label}", case_id=row.id,
                        **entry_context(case_values, state, assessment, case, row, visit_state))
        await run_in_threadpool(source.add_visit, case_id, visit, user.username)
        record(request, "U", f"case {row.id} visit", 303)
        return RedirectResponse(f"/cases/{row.id}#visits", status_code=303)

    @router.get("/cases/{case_id}/course.svg")
    @guarded
    def course_plot(request: Request, case_id: str) -> Response:
        signed_in(request)
        row = source.get(case_id)
        if row is None:
            return Response("no such case", status_code=404, media_type="text/plain")
        case = parse_case(row.full, today())
        if not case.visits:
            return Response("this case has no visits", status_code=404, media_type="text/plain")
        assessment = assess(case, kb, today())
        report = compare_course(case, assessment.differential[0].id, kb.course, today())
        record(request, "R", f"case {row.id} course")
        return Response(_svg(report), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    @router.post("/assessment", response_class=HTMLResponse)
    @guarded
    async def post_assessment(request: Request) -> HTMLResponse:
        user = signed_in(request)
        items = await form_items(request)
        values = dict(items)
        check_csrf(user, values)
        case, state, assessment = evaluate(items)
        if assessment is None or case is None:
            return page("entry.html", 422, user=user, title="Case", **entry_context(values, state, None, None))
        return assessment_page(assessment, case, values, user)

    @router.get("/cases/{case_id}/assessment", response_class=HTMLResponse)
    @guarded
    def case_assessment(request: Request, case_id: str) -> HTMLResponse:
        user = signed_in(request)
        row = source.get(case_id)
        if row is None:
            return not_found(f"There is no case {case_id!r}.", "/", "the case list", user)
        try:
            case = parse_case(row.full, today())
        except InputError as err:
            return page("message.html", 422, user=user, title="Case not valid today", message=str(err), back=f"/cases/{row.id}", back_label="the case")
        record(request, "R", f"case {row.id} assessment")
        values = forms.values_from_case(row.document)
        return assessment_page(assess(case, kb, today()), case, values, user, case_id=row.id)

    def assessment_page(assessment: Assessment, case: Case, values: Mapping[str, str], user: Any, case_id: str | None = None) -> HTMLResponse:
        keys = _cited_keys(assessment)
        return page(
            "assessment.html",
            user=user,
            title=f"Assessment {assessment.case_id or ''}".strip(),
            a=assessment,
            case=case,
            case_id=case_id,
            hidden=[(k, v) for k, v in values.items() if k not in ("add_study", "csrf_token")],
            sources=[(k, view.citation(k, kb.references.get(k))) for k in keys],
            test_names={t.id: t.name for t in kb.tests},
        )

    # --- fragments (htmx) -----------------------------------------------------------------

    @router.post("/fragments/differential", response_class=HTMLResponse)
    @guarded
    async def differential_fragment(request: Request) -> HTMLResponse:
        user = signed_in(request)
        items = await form_items(request)
        check_csrf(user, dict(items))
        case, state, assessment = evaluate(items)
        # 200 with the problems listed: htmx swaps it in, and the clinician sees what to fix
        return page("_differential.html", user=user, state=state, assessment=assessment, conversions=_conversions(case), oob=True,
                    measurement_ids=[w.dom_id for w in widgets.values() if w.kind == "measurement"])

    @router.post("/fragments/pregnancy", response_class=HTMLResponse)
    @guarded
    async def pregnancy_fragment(request: Request) -> HTMLResponse:
        user = signed_in(request)
        values = dict(await form_items(request))
        check_csrf(user, values)
        section = next(s for s in sections if s.id == "pregnancy")
        return page("_pregnancy.html", user=user, section=section, state=forms.FormState(values), pregnancy_shown=forms.pregnancy_relevant(values))

    @router.post("/fragments/study", response_class=HTMLResponse)
    @guarded
    async def study_fragment(request: Request) -> HTMLResponse:
        user = signed_in(request)
        values = dict(await form_items(request))
        check_csrf(user, values)
        modality = values.get("add_study", "")
        if modality not in Modality._value2member_map_:
            return page("_message.html", 422, user=user, message=f"{modality[:40]!r} is not an imaging modality; choose radiograph, MRI, CT or bone scan.")
        index = _next_study(values)
        return page("_study.html", user=user, index=index, modality=Modality(modality), study_widgets=forms.study_widgets(index, Modality(modality)),
                    state=forms.FormState({f"imaging.{index}.modality": modality}))

    # --- knowledge base (no patient data: no sign-in) ------------------------------------

    @lru_cache(maxsize=64)
    def profile(condition_id: str) -> ConditionProfile:
        return describe_condition(kb, condition_id)

    cited_by: dict[str, list[tuple[str, str]]] = {}

    @router.get("/kb", response_class=HTMLResponse)
    def kb_index(request: Request) -> HTMLResponse:
        groups: dict[str, list[Any]] = {}
        for var in kb.variables.values():
            groups.setdefault(var.spec.group, []).append(var.spec)
        return page("kb_index.html", user=principal(request), title="Knowledge base", groups=groups, counts=kb.provenance_counts())

    @router.get("/kb/conditions/{condition_id}", response_class=HTMLResponse)
    def kb_condition(request: Request, condition_id: str) -> HTMLResponse:
        user = principal(request)
        if condition_id not in condition_ids:
            return not_found(f"The knowledge base has no condition {condition_id!r}.", "/kb", "the knowledge base", user)
        return page("kb_condition.html", user=user, title=kb.condition(condition_id).name, p=profile(condition_id))

    @router.get("/kb/findings/{variable_id}", response_class=HTMLResponse)
    def kb_finding(request: Request, variable_id: str) -> HTMLResponse:
        user = principal(request)
        var = kb.variables.get(variable_id)
        if var is None:
            return not_found(f"The knowledge base has no finding {variable_id!r}.", "/kb", "the knowledge base", user)
        return page("kb_finding.html", user=user, title=var.spec.label, var=var.spec, rows=_finding_rows(kb, variable_id))

    @router.get("/kb/references/{key}", response_class=HTMLResponse)
    def kb_reference(request: Request, key: str) -> HTMLResponse:
        user = principal(request)
        ref = kb.references.get(key)
        if ref is None:
            return not_found(f"The knowledge base cites no reference {key!r}.", "/kb#references", "the references", user)
        if not cited_by:
            cited_by.update(_cited_by(kb))
        return page("kb_reference.html", user=user, title=view.citation(key, ref), key=key, ref=ref, cited_by=cited_by.get(key, []))

    router.include_router(mri_router(api, source, today, page=page, signed_in=signed_in, check_csrf=check_csrf, record=record, guarded=guarded))

    # --- the rest -------------------------------------------------------------------------

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "public, max-age=3600"})

    def not_found(message: str, back: str, back_label: str, user: Any | None = None) -> HTMLResponse:
        return page("message.html", 404, user=user, title="Not found", message=message, back=back, back_label=back_label)

    from hipdx.web.smart import SmartConfig, smart_router

    router.include_router(smart_router(smart or SmartConfig(), page=page, user_of=principal, needs_sign_in=api is not None,  # SMART launch
                                       guarded=guarded, signed_in=signed_in, today=today,
                                       show_mapping=lambda rq, u, m, patient, notes: fhir_case_page(rq, u, m, f"Patient/{patient}", notes)))
    return router


def _local(target: str) -> str:
    """A redirect target on this site only (a path), else the case list."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target and len(target) < 500 else "/"


def _svg(report: CourseReport) -> bytes:
    import matplotlib

    from hipdx.report.plot import course_figure

    figure = course_figure(report)
    out = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "hipdx", "svg.fonttype": "path"}):
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    return out.getvalue()


_STUDY_PARTS = {"date", "days_since_onset", "contrast", "modality"}


def _fact_sources(mapping: Any | None) -> dict[str, list[str]]:
    """Form key -> "Resource/id element" for each fact of a case read from FHIR."""
    out: dict[str, list[str]] = {}
    if mapping is None:
        return out
    for source in mapping.sources:
        key = source.field
        parts = key.split(".")
        if parts[0] == "imaging" and len(parts) == 3 and parts[2] not in _STUDY_PARTS:
            key = f"imaging.{parts[1]}.findings.{parts[2]}"
        out.setdefault(key, []).append(f"{source.resource} {source.element}")
    return out


def _next_study(values: Mapping[str, str]) -> int:
    return max((i for i, _ in forms.studies(values)), default=-1) + 1


def _conversions(case: Case | None) -> dict[str, str]:
    """Dom id -> "= 60 mg/L" for every measured value given in another unit than the canonical."""
    if case is None:
        return {}
    out = {}
    for name in ("esr", "crp", "wbc", "temperature", "vitamin_d", "calcium", "creatinine", "egfr", "alp", "synovial_wbc"):
        measured = getattr(case.labs, name)
        if measured is None:
            continue
        canonical_unit = forms.QUANTITIES[name].canonical_unit
        value = case.labs.canonical(name)
        if value is not None and measured.unit.replace(" ", "") != canonical_unit:
            out[f"f-labs-{name}"] = f"= {value:.3g} {canonical_unit}"
    return out


def _cited_keys(assessment: Assessment) -> list[str]:
    """Every reference the assessment cites: red flags, explanation, staging and plan."""
    keys = list(view.cited_keys(assessment))
    if assessment.staging is not None:
        s = assessment.staging
        for part in [*s.osteonecrosis, s.toh_phase, s.pattern, s.subchondral_band, s.femoral_neck_fracture]:
            keys.extend(part.refs)
    if assessment.plan is not None:
        for section in assessment.plan.sections:
            keys.extend(section.refs)
            for item in section.items:
                keys.extend(item.refs)
                for finding in [*item.blocked_by, *item.cautions]:
                    keys.extend(finding.refs)
    return list(dict.fromkeys(keys))


def _finding_rows(kb: KnowledgeBase, variable_id: str) -> list[dict[str, Any]]:
    """For one finding: per condition and time band, each state's probability with its 90%
    range, the basis and the sources."""
    var = kb.variables[variable_id]
    spec = var.spec
    rows = []
    for ci, condition in enumerate(kb.conditions):
        for b, dist in enumerate(var.provenance[ci]):
            probs = var.probs[b, ci]
            ranges = implied_range(np.asarray(probs), dist.effective_n)
            low, high = band_bounds(spec.time_bands_days, b) if spec.time_bands_days else (None, None)
            rows.append(
                {
                    "condition": condition,
                    "band": band_label(low, high) if spec.time_bands_days else "",
                    "first": b == 0,
                    "n_bands": len(var.provenance[ci]),
                    "estimates": [(s, float(p), (float(r[0]), float(r[1]))) for s, p, r in zip(spec.states, probs, ranges)],
                    "basis": dist.basis.value,
                    "n": dist.n,
                    "note": " ".join(dist.note.split()) if dist.note else "",
                    "refs": dist.refs,
                    "shared_default": condition.id not in spec.likelihoods,
                }
            )
    return rows


def _cited_by(kb: KnowledgeBase) -> dict[str, list[tuple[str, str]]]:
    """Reference key -> (link, what) for every item of the base that cites it."""
    out: dict[str, list[tuple[str, str]]] = {}

    def add(keys: Iterable[str], link: str, what: str) -> None:
        for key in keys:
            entry = (link, what)
            if entry not in out.setdefault(key, []):
                out[key].append(entry)

    for c in kb.conditions:
        add(c.prior_provenance.refs, f"/kb/conditions/{c.id}", f"prior of {c.short}")
    for var in kb.variables.values():
        for per_condition in var.provenance:
            for dist in per_condition:
                add(dist.refs, f"/kb/findings/{var.id}", f"finding: {var.spec.label}")
    for rf in kb.red_flags:
        add(rf.refs, f"/kb/conditions/{rf.condition}", f"red flag: {rf.title}")
    for t in kb.tests:
        add(t.burden_provenance.refs, "/kb#tests", f"test: {t.name}")
    return out
