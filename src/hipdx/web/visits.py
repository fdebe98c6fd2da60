"""A follow-up visit of a stored case corrected or deleted (stored cases only).

==============================================  ===========================================
page                                            what it does
==============================================  ===========================================
``GET /cases/{id}/visits/{n}``                  the visit (1-based, in the order the case holds them) in its form
``POST /cases/{id}/visits/{n}``                 the corrected visit saved (checked as the case model checks it)
``GET /cases/{id}/visits/{n}/delete``           "delete this visit?": what it holds, and the button
``POST /cases/{id}/visits/{n}/delete``          the visit deleted
==============================================  ===========================================

Each form carries the case's version: a write that comes after another change to the case
(someone else added or deleted a visit, so the number may name another visit now) is refused
with 409 and the page to reload. Every read and write is recorded in the access log (``R``,
``U``, ``D``), as the other pages record theirs; the course plot and table of the case page
follow at once (they are drawn from the case's visits).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hipdx.case import parse_case
from hipdx.errors import InputError, Problem
from hipdx.web import form as forms
from hipdx.web.context import PageContext
from hipdx.web.library import CaseRow, StoredCases, plain_number


def routes(ctx: PageContext) -> APIRouter:
    """The pages of one visit: its form, its correction, its deletion (asked first)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/cases/{case_id}/visits/{number}", response_class=HTMLResponse)
    @ctx.guarded
    def edit_form(request: Request, case_id: str, number: str) -> HTMLResponse:
        user, found = _opened(ctx, request, case_id, number)
        if isinstance(found, HTMLResponse):
            return found
        row, index, visit = found
        values = {k: v for k, v in forms.values_from_case({"visit": visit}).items()}
        return _edit_page(ctx, user, row, index, forms.FormState(values))

    @router.post("/cases/{case_id}/visits/{number}", response_class=HTMLResponse)
    @ctx.guarded
    async def save(request: Request, case_id: str, number: str) -> Response:
        return await _posted(ctx, request, _save, case_id, number)

    @router.get("/cases/{case_id}/visits/{number}/delete", response_class=HTMLResponse)
    @ctx.guarded
    def ask(request: Request, case_id: str, number: str) -> HTMLResponse:
        user, found = _opened(ctx, request, case_id, number)
        if isinstance(found, HTMLResponse):
            return found
        row, index, visit = found
        return ctx.page("visit_delete.html", user=user, title=f"Delete visit {index + 1} of {row.label}?", row=row,
                        index=index, described=_described(visit, ctx.visit_widgets))

    @router.post("/cases/{case_id}/visits/{number}/delete", response_class=HTMLResponse)
    @ctx.guarded
    async def delete(request: Request, case_id: str, number: str) -> Response:
        return await _posted(ctx, request, _delete, case_id, number)

    return router


def _opened(ctx: PageContext, request: Request, case_id: str, number: str) -> tuple[Any, Any]:
    """The signed-in user and the visit ``number`` of the case (its read recorded), or the page that says why not."""
    user = ctx.signed_in(request)
    found = _visit(ctx, user, case_id, number)
    if not isinstance(found, HTMLResponse):
        ctx.record(request, "R", f"case {found[0].id} visit {found[1] + 1}")
    return user, found


async def _posted(ctx: PageContext, request: Request, write: Any, case_id: str, number: str) -> Response:
    """A visit's form posted by the signed-in user, its CSRF token checked, handed to ``write`` off the event loop."""
    user, _, values = await ctx.posted(request)
    return await run_in_threadpool(write, ctx, request, user, case_id, number, values)


def _visit(ctx: PageContext, user: Any, case_id: str, number: str) -> tuple[CaseRow, int, dict[str, Any]] | HTMLResponse:
    """The stored case, the 0-based index and the visit ``number`` names, or the page that says why not."""
    row = ctx.source.get(case_id) if isinstance(ctx.source, StoredCases) else None
    if row is None:
        return ctx.not_found(f"There is no stored case {case_id[:40]!r}.", "/", "the case list", user)
    visits = row.full.get("visits") or []
    index = plain_number(number)
    if index is None or not 1 <= index <= len(visits):
        return ctx.not_found(f"Case {row.label} has no visit {number[:20]!r} (it has {len(visits)}).",
                             f"/cases/{row.id}#visits", "the case", user)
    return row, index - 1, visits[index - 1]


def _edit_page(ctx: PageContext, user: Any, row: CaseRow, index: int, state: forms.FormState, status: int = 200) -> HTMLResponse:
    return ctx.page("visit_edit.html", status, user=user, title=f"Visit {index + 1} of {row.label}", row=row, index=index,
                    visit_state=state, visit_widgets=list(ctx.visit_widgets.values()))


def _stale(ctx: PageContext, user: Any, row: CaseRow) -> HTMLResponse:
    return ctx.page("message.html", 409, user=user, title="The case has changed",
                    message="The case was changed after you opened this visit (a visit added, corrected or deleted), so "
                            "nothing was written. Open the case again and repeat the change.",
                    back=f"/cases/{row.id}#visits", back_label="the case")


def _version(values: dict[str, str]) -> int:
    number = plain_number(values.get("version", ""))
    return -1 if number is None else number


def _save(ctx: PageContext, request: Request, user: Any, case_id: str, number: str, values: dict[str, str]) -> Response:
    found = _visit(ctx, user, case_id, number)
    if isinstance(found, HTMLResponse):
        return found
    row, index, _ = found
    visit, problems = forms.visit_from_form(values, ctx.visit_widgets)
    if not problems:
        full = dict(row.full)
        full["visits"] = [*full["visits"][:index], visit, *full["visits"][index + 1:]]
        try:
            parse_case(full, ctx.today())
        except InputError as err:
            problems = [Problem(p.field.replace(f"visits.{index}", "visit", 1), p.reason) for p in err.problems] or [Problem("", err.message)]
    if problems:
        return _edit_page(ctx, user, row, index, forms.form_state(values, ctx.visit_widgets, problems), 422)
    return _change(ctx, request, user, row, index, number, visit, values)


def _delete(ctx: PageContext, request: Request, user: Any, case_id: str, number: str, values: dict[str, str]) -> Response:
    found = _visit(ctx, user, case_id, number)
    if isinstance(found, HTMLResponse):
        return found
    row, index, _ = found
    return _change(ctx, request, user, row, index, number, None, values)


def _change(ctx: PageContext, request: Request, user: Any, row: CaseRow, index: int, number: str,
            visit: dict[str, Any] | None, values: dict[str, str]) -> Response:
    """Store the corrected visit (None: delete it) if the case is still the version the form was opened on."""
    from hipdx.store.records import StaleVersion

    try:
        saved = ctx.source.change_visit(row.id, index, visit, _version(values),
                                        ctx.event(request, "U" if visit is not None else "D", f"case {row.id} visit {index + 1}", 303,
                                                  saving=f"the {'change to' if visit is not None else 'deletion of'} visit {index + 1}"))
    except StaleVersion:
        return _stale(ctx, user, row)
    if saved is None:
        return ctx.not_found(f"Case {row.label} has no visit {number[:20]!r}.", f"/cases/{row.id}#visits", "the case", user)
    return RedirectResponse(f"/cases/{row.id}#visits", status_code=303)


def _described(visit: dict[str, Any], widgets: dict[str, Any]) -> list[tuple[str, str]]:
    """The visit's values in words, each under its field's label, for the confirmation page."""
    out = []
    for key, value in forms.values_from_case({"visit": visit}).items():
        widget = widgets.get(key.removesuffix(".value"))
        if value and not key.endswith(".unit"):
            label = widget.label if widget is not None else forms.choice_label(key.removeprefix("visit."))
            out.append((label, forms.choice_label(value)))
    return out
