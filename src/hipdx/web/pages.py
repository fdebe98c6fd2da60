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
``GET, POST /cases/{id}/visits/{n}[/delete]``  correct or delete a visit (:mod:`~hipdx.web.visits`)
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

What the pages share (session, CSRF, access log, rendering) is one
:class:`~hipdx.web.context.PageContext`; each concept answers its URLs in its own module:
:mod:`~hipdx.web.sign_in`, :mod:`~hipdx.web.cases`, :mod:`~hipdx.web.fragments`,
:mod:`~hipdx.web.kb_pages`, :mod:`~hipdx.web.mri`, :mod:`~hipdx.web.static_files` and
:mod:`~hipdx.web.smart` (SMART App Launch).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from hipdx.knowledge import KnowledgeBase
from hipdx.web import cases, fragments, kb_pages, sign_in, static_files, visits
from hipdx.web.context import PageContext
from hipdx.web.library import CaseLibrary
from hipdx.web.mri import mri_router
from hipdx.web.smart import SmartConfig, smart_router


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
    ctx = PageContext(kb, today, library, api)

    @contextlib.asynccontextmanager
    async def warm_at_start_up(app: Any) -> AsyncIterator[None]:
        await run_in_threadpool(ctx.warm)  # before the server accepts its first request
        yield

    router = APIRouter(include_in_schema=False, lifespan=warm_at_start_up)
    router.include_router(sign_in.routes(ctx))
    router.include_router(cases.routes(ctx))
    router.include_router(visits.routes(ctx))
    router.include_router(fragments.routes(ctx))
    router.include_router(kb_pages.routes(ctx))
    router.include_router(mri_router(api, ctx.source, today, page=ctx.page, signed_in=ctx.signed_in, check_csrf=ctx.check_csrf,
                                     record=ctx.record, event=ctx.event, guarded=ctx.guarded))
    router.include_router(static_files.routes())
    router.include_router(smart_router(smart or SmartConfig(), page=ctx.page, user_of=ctx.principal,
                                       needs_sign_in=api is not None, guarded=ctx.guarded, signed_in=ctx.signed_in,
                                       today=today, show_mapping=lambda rq, u, m, patient, notes: cases.fhir_case_page(
                                           ctx, rq, u, m, f"Patient/{patient}", notes),
                                   engine=api.engine if api is not None else None))
    return router
