"""What every page shares: the knowledge base, the cases, the templates, the session and the
rendering (:class:`PageContext`). The route modules (:mod:`hipdx.web.sign_in`,
:mod:`~hipdx.web.cases`, :mod:`~hipdx.web.fragments`, :mod:`~hipdx.web.kb_pages`,
:mod:`~hipdx.web.static_files`, :mod:`~hipdx.web.mri`) each take one and answer their URLs;
:func:`hipdx.web.pages.web_router` assembles them.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import hmac
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from hipdx import __version__
from hipdx.case import Case, Modality, parse_case
from hipdx.errors import DatabaseError, HipdxError
from hipdx.knowledge import KnowledgeBase
from hipdx.reasoning import Assessment, assess
from hipdx.reasoning.course import CourseReport, compare_course
from hipdx.report import view
from hipdx.report.knowledge import ConditionProfile, describe_condition
from hipdx.web import form as forms
from hipdx.web.library import CaseLibrary, CaseRow, CaseSource, StoredCases

log = logging.getLogger("hipdx.web")
#: Scripts and styles only from this server: no inline script, no CDN.
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
MAX_FORM_FIELDS = 2000
_NOT_READ = ("This form could not be read as it was sent (too many fields, or a file where none is taken): nothing was saved. "
             "Reload the page and try again.")
SESSION_COOKIE = "hipdx_session"  # the REST API's session cookie (hipdx.service.api.context)
#: Imported by a page on its first use; imported at start-up instead (:meth:`PageContext.warm`).
_LAZY_MODULES = ("hipdx.store.records", "hipdx.store.users", "hipdx.fhir", "hipdx.fhir.jsonread", "matplotlib.pyplot",
                 "hipdx.report.plot", "hipdx.report.html", "weasyprint", "hipdx.report.slices", "hipdx.imaging.analyze",
                 "hipdx.service.api.mri")


@functools.lru_cache(maxsize=1)
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
        fact=view.fact_words,
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


class PageContext:
    """The pages' shared state and helpers, for one knowledge base; ``today`` dates each assessment.

    ``api`` (:class:`hipdx.service.api.context.ApiContext`): the service's database; the cases
    are the stored ones and the pages need a signed-in user. Without it the pages show
    ``library`` (read-only; none by default) to anyone.
    """

    def __init__(self, kb: KnowledgeBase, today: Callable[[], dt.date], library: CaseLibrary | None = None,
                 api: Any | None = None) -> None:
        self.kb = kb
        self.today = today
        self.api = api
        self.env = _environment()
        self.source: CaseSource = StoredCases(api.engine) if api is not None else (library or CaseLibrary.empty())
        self.sections = forms.case_sections()
        self.widgets = forms.all_widgets(self.sections)
        self.visit_widgets = {w.name: w for w in forms.visit_widgets()}
        self.condition_ids = set(kb.condition_ids)
        #: (case id, version, day) -> the stored case's assessment, or None when no longer valid
        self.row_assessment: Callable[[str, int, dt.date], Assessment | None] = functools.lru_cache(maxsize=512)(self._row_assessment)
        #: condition id -> what the knowledge base says of it
        self.profile: Callable[[str], ConditionProfile] = functools.lru_cache(maxsize=64)(self._profile)
        self._warmers: list[Callable[[], Any]] = []

    # --- sessions ---------------------------------------------------------------------------

    def principal(self, request: Request) -> Any | None:
        if self.api is None:
            return None
        from hipdx.store import users

        cookie = request.cookies.get(SESSION_COOKIE)
        return users.principal(self.api.engine, cookie, "session") if cookie else None

    def signed_in(self, request: Request) -> Any | None:
        """The signed-in user (None when the pages need no sign-in); raises _SignIn otherwise."""
        if self.api is None:
            return None
        user = self.principal(request)
        if user is None:
            raise _SignIn()
        request.state.principal = user
        return user

    def csrf(self, user: Any | None) -> str:
        return self.api.csrf_token(user.token_hash) if self.api is not None and user is not None else ""

    def check_csrf(self, user: Any | None, values: Mapping[str, str]) -> None:
        if self.api is not None and not hmac.compare_digest(values.get("csrf_token", ""), self.csrf(user)):
            raise _Refused()

    def event(self, request: Request, action: str, what: str, status: int = 200, *, saving: str = "") -> dict[str, Any] | None:
        """One access to patient data, as the REST API records them (None without the service's
        database): a write hands it to the store, which records it in the change's own transaction.
        ``saving``: the write in the clinician's words ("the new case"), which the page names if the
        record store fails it (:meth:`unavailable`)."""
        if saving:
            request.state.saving = saving
        if self.api is None:
            return None
        from hipdx.service.api.context import client_address

        user = getattr(request.state, "principal", None)
        return {"username": user.username if user else None, "role": user.role.value if user else None,
                "action": action, "what": what[:100], "method": request.method, "path": request.url.path[:200],
                "status_code": status, "source_address": client_address(request)}

    def record(self, request: Request, action: str, what: str, status: int = 200) -> None:
        """Record a read (or an evaluation) in the access log now, before the page shows it.

        Fail-closed, as the REST API: a refused record raises
        :class:`hipdx.store.records.AuditRefused` and :meth:`guarded` answers 503 instead of the page."""
        event = self.event(request, action, what, status)
        if event is not None:
            from hipdx.store import records

            records.record_access(self.api.engine, event)

    # --- rendering --------------------------------------------------------------------------

    def page(self, template: str, status: int = 200, user: Any | None = None, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(kb=self.kb, user=user, csrf_token=self.csrf(user),
                                                      storage=self.api is not None, **context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})

    def not_found(self, message: str, back: str, back_label: str, user: Any | None = None) -> HTMLResponse:
        return self.page("message.html", 404, user=user, title="Not found", message=message, back=back, back_label=back_label)

    def entry_context(self, values: Mapping[str, str], state: forms.FormState, assessment: Assessment | None, case: Case | None,
                      row: CaseRow | None = None, visit_state: forms.FormState | None = None,
                      fhir: Any | None = None) -> dict[str, Any]:
        jobs = self.source.mri_jobs(row.id) if row is not None and isinstance(self.source, StoredCases) else []
        return {
            "sections": self.sections,
            "state": state,
            "studies": [(i, m, forms.study_widgets(i, m)) for i, m in forms.studies(values)],
            "pregnancy_shown": forms.pregnancy_relevant(values),
            "assessment": assessment,
            "conversions": conversions(case),
            "modalities": [m.value for m in Modality],
            "row": row,
            "writable": self.source.writable,
            "visit_widgets": list(self.visit_widgets.values()),
            "visits": self._visits(row, case, assessment),
            "visit_state": visit_state or forms.FormState(),
            "fhir": fhir,
            "sources": _fact_sources(fhir) | mri_sources(values, jobs),
            "mri_jobs": jobs,
        }

    def assessment_page(self, assessment: Assessment, case: Case, values: Mapping[str, str], user: Any,
                        case_id: str | None = None) -> HTMLResponse:
        keys = _cited_keys(assessment)
        return self.page(
            "assessment.html",
            user=user,
            title=f"Assessment {assessment.case_id or ''}".strip(),
            a=assessment,
            case=case,
            case_id=case_id,
            hidden=[(k, v) for k, v in values.items() if k not in ("add_study", "csrf_token")],
            sources=[(k, view.citation(k, self.kb.references.get(k))) for k in keys],
            test_names={t.id: t.name for t in self.kb.tests},
            course=(course := self._course(case, assessment)),
            course_line=view.course_alerts_line(course, "Visits over time, on the case page"),
        )

    # --- the case ---------------------------------------------------------------------------

    async def posted(self, request: Request) -> tuple[Any | None, list[tuple[str, str]], dict[str, str]]:
        """A form posted by the signed-in user, its CSRF token checked: the user, its fields in order, and as a dict."""
        user = self.signed_in(request)
        items = await self.form_items(request)
        values = dict(items)
        self.check_csrf(user, values)
        return user, items, values

    async def form_items(self, request: Request) -> list[tuple[str, str]]:
        data = await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
        return [(k, v) for k, v in data.multi_items() if isinstance(v, str)]

    def evaluate(self, items: list[tuple[str, str]]) -> tuple[Case | None, forms.FormState, Assessment | None]:
        case, state = forms.read_form(items, self.widgets, self.today())
        return case, state, assess(case, self.kb, self.today()) if case is not None else None

    def _row_assessment(self, case_id: str, version: int, day: dt.date) -> Assessment | None:
        row = self.source.get(case_id)
        if row is None:
            return None
        try:
            return assess(parse_case(row.full, day), self.kb, day)
        except HipdxError:
            return None  # a stored case no longer valid on this day: the list says so

    def _visits(self, row: CaseRow | None, case: Case | None, assessment: Assessment | None) -> dict[str, Any] | None:
        if row is None or case is None or assessment is None:
            return None
        report = self._course(case, assessment)
        return None if report is None else {"report": report, "visits": case.visits}

    def _course(self, case: Case, assessment: Assessment) -> CourseReport | None:
        """The course of the case's visits against its leading diagnosis (None without visits)."""
        if not case.visits:
            return None
        try:
            return compare_course(case, assessment.differential[0].id, self.kb.course, self.today())
        except (HipdxError, KeyError):
            return None

    def _profile(self, condition_id: str) -> ConditionProfile:
        return describe_condition(self.kb, condition_id)

    # --- start-up ---------------------------------------------------------------------------

    def warm_also(self, warmer: Callable[[], Any]) -> None:
        """Run ``warmer`` in :meth:`warm` (a route module's own derived tables)."""
        self._warmers.append(warmer)

    def warm(self) -> None:
        """Pay at start-up what the first clinician would otherwise pay on a first request.

        The modules the pages import on first use (the FHIR reader, the course plot's
        matplotlib, the PDF renderer, the MRI analysis), what the knowledge-base pages derive
        (each condition's profile, each finding's table), the assessment of every case the case list shows (kept per
        case version and day) and one full render of a listed case's entry and assessment pages.
        Then every object alive is moved out of the garbage collector's reach
        (:func:`gc.freeze`): a full collection of the ~300,000 objects of the knowledge base and
        the libraries took 160-400 ms, and fell on whichever request triggered it. A failure
        here is logged and never stops the service (the page then pays on first use, as before).
        """
        started = dt.datetime.now()
        try:
            for module in _LAZY_MODULES:
                importlib.import_module(module)
            for condition_id in self.kb.condition_ids:
                self.profile(condition_id)
            for warmer in self._warmers:
                warmer()
            day = self.today()
            rows = self.source.search("")
            for row in rows:
                self.row_assessment(row.id, row.version, day)
            for row in rows[:1]:
                values = forms.values_from_case(row.document)
                case, state, assessment = self.evaluate(list(values.items()))
                if case is not None and assessment is not None:
                    self.page("entry.html", **self.entry_context(values, state, assessment, case, row))
                    self.assessment_page(assessment, case, values, None)
        except Exception:  # noqa: BLE001 - start-up goes on; the first request pays instead
            log.exception("could not warm the pages at start-up")
        gc.collect()
        gc.freeze()
        log.info("pages warmed in %.1f s", (dt.datetime.now() - started).total_seconds())

    # --- errors of the session ------------------------------------------------------------

    def sign_in_redirect(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/sign-in"})
        if request.method != "GET":
            target = "/"
        return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)

    def guarded(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Every failure of a page route answered as a page (the htmx fragment for htmx requests), never
        the service's JSON: sign-in and CSRF failures, a request not read and input hipdx refuses as
        their 4xx (:meth:`not_done`), a failure of the record store (:data:`hipdx.store.failures.UNAVAILABLE`,
        or a :class:`~hipdx.errors.DatabaseError`) as the 503 page (:meth:`unavailable`), anything else
        as the 500 page (:meth:`failed`). A plain
        function runs in the thread pool (it reads the database and assesses), as FastAPI runs it unwrapped."""
        is_async = inspect.iscoroutinefunction(handler)

        @functools.wraps(handler)
        async def run(*args: Any, **kwargs: Any) -> Response:
            request: Request = kwargs["request"]
            try:
                if is_async:
                    return await handler(*args, **kwargs)
                return await run_in_threadpool(handler, *args, **kwargs)
            except _SignIn:
                return self.sign_in_redirect(request)
            except _Refused:
                return self.page("message.html", 403, title="Form expired",
                                 message="This form is from an earlier session or another site. Reload the page and try again.",
                                 back="/", back_label="the case list")
            except HTTPException as exc:  # the request as sent not read (a form of too many fields, a file where none is taken)
                if exc.status_code >= 500:
                    return self.failed(request, exc)
                return self.not_done(request, exc.status_code, "Form not read", _NOT_READ)
            except DatabaseError as exc:  # an access record refused (hipdx.store.records.AuditRefused), a store failure named
                return await self.unavailable(request, exc)
            except HipdxError as exc:  # input hipdx refuses (a stored case no longer valid today): its 4xx, in words
                if exc.http_status >= 500:
                    return self.failed(request, exc)
                said = "; ".join([exc.message, *(str(p) for p in exc.problems[:5])])
                return self.not_done(request, exc.http_status, "Not done", f"{said[:1].upper()}{said[1:]}.")
            except Exception as exc:
                from hipdx.store.failures import UNAVAILABLE

                if not isinstance(exc, UNAVAILABLE):  # an integrity or data error, any other: a defect of hipdx's own
                    return self.failed(request, exc)
                return await self.unavailable(request, exc)  # the database away, locked, read-only or not at its schema

        return run

    def not_done(self, request: Request, status: int, title: str, message: str) -> HTMLResponse:
        """A request refused as bad input (a form Starlette's reader cannot read, a stored case hipdx no
        longer reads), with its 4xx status, in words: not a defect of hipdx's own, not logged as one."""
        user = getattr(request.state, "principal", None)
        if request.headers.get("hx-request"):
            return self.page("_message.html", status, user=user, message=message)
        return self.page("message.html", status, user=user, title=title, message=message, back="/", back_label="the case list")

    def failed(self, request: Request, exc: Exception) -> HTMLResponse:
        """500 in words, in the site's layout (the htmx fragment for htmx requests), for a defect of
        hipdx's own (anything but a refused sign-in or form, or the record store away): the browser
        never reads the service's JSON. A write may or may not have been committed before the error, so
        the page sends the clinician to the case list to look; the error goes only to the log, as its class and frames (its words may quote patient data)."""
        from hipdx.service.api.problems import log_unexpected

        log_unexpected(log, request, exc)
        said = ("hipdx met an error of its own and stopped; what you sent may not have been saved: look at the case "
                "list before sending it again." if request.method != "GET"
                else "hipdx met an error of its own and could not show this page.")
        message = f"{said} The error was logged; please tell the administrator what you were doing."
        user = getattr(request.state, "principal", None)
        if request.headers.get("hx-request"):
            return self.page("_message.html", 500, user=user, message=message)
        return self.page("message.html", 500, user=user, title="Something went wrong", message=message,
                         back="/", back_label="the case list")

    async def unavailable(self, request: Request, exc: Exception) -> HTMLResponse:
        """503 in words, in the site's layout (the htmx fragment for htmx requests), when the record
        store failed the request: nothing was saved or shown. A write names what was not saved
        (:meth:`event`'s ``saving``) and its form comes back to be sent again. The driver's words (which
        may quote the statement and its values) go only to the log, as the error's class and frames."""
        from hipdx.service.api.problems import log_unexpected
        from hipdx.store.records import AuditRefused

        log_unexpected(log, request, (exc.__cause__ or exc) if isinstance(exc, DatabaseError) else exc)
        again = "Try again in a moment; if it keeps happening, tell the administrator (the database needs checking)."
        saving = getattr(request.state, "saving", "")
        if isinstance(exc, AuditRefused):
            title, said = "Not recorded, so not done", "The access log could not record this, so it was not done: nothing was saved or shown."
        elif saving:
            title, said = "Not saved", f"The record store is not available just now, so {saving} was not saved: nothing of it was stored."
        elif request.method != "GET":
            title, said = "Not done", "The record store is not available just now, so this was not done: nothing was saved."
        else:
            title, said = "Record store unavailable", "The record store is not available just now, so this page cannot be shown."
        user = getattr(request.state, "principal", None)
        if request.headers.get("hx-request"):
            answer = self.page("_message.html", 503, user=user, message=f"{said} {again}")
        else:
            posted = request.method != "GET"
            answer = self.page("unavailable.html", 503, user=user, title=title, message=f"{said} {again}", posted=posted,
                               action=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                               resend=await self._resendable(request) if posted else None)
        answer.headers["Retry-After"] = "5"
        return answer

    async def _resendable(self, request: Request) -> list[tuple[str, str]] | None:
        """The fields of a posted form, to send again from the 503 page; None when it cannot be sent
        again as it came (files, a password, a form that does not read)."""
        from starlette.formparsers import MultiPartException

        try:
            data = await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)  # the handler's form, read once
        except (HTTPException, MultiPartException):
            return None
        items = list(data.multi_items())
        if any(not isinstance(v, str) for _, v in items) or any(k == "password" for k, _ in items):
            return None
        return [(k, str(v)) for k, v in items]


def next_study(values: Mapping[str, str]) -> int:
    """The index of one more imaging study in the form."""
    return max((i for i, _ in forms.studies(values)), default=-1) + 1


def conversions(case: Case | None) -> dict[str, str]:
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


def mri_sources(values: Mapping[str, str], jobs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Form key -> "MRI analysis of <date>" for each finding of an MRI study of the form that is
    the one a confirmed analysis of the case added (its value unchanged since); the study that
    matches most of an analysis's findings is its study."""
    out: dict[str, list[str]] = {}
    studies = [i for i, m in forms.studies(values) if m is Modality.mri]
    for job in jobs:
        added = job.get("added_findings")
        if not added or not studies:
            continue
        given = {k.split(".", 3)[-1]: v for k, v in forms.values_from_case({"imaging": [{"modality": "mri", "findings": added}]}).items()
                 if k.startswith("imaging.0.findings.")}
        matching = {i: [n for n, v in given.items() if values.get(f"imaging.{i}.findings.{n}") == v] for i in studies}
        best = max(studies, key=lambda i: len(matching[i]))
        for name in matching[best]:
            out.setdefault(f"imaging.{best}.findings.{name}", []).append(
                f"the MRI analysis of {job['created_at'][:10]} ({job['id'][:8]}), confirmed into the case")
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
