"""The htmx fragments of the entry form: the differential as findings are entered, the
pregnancy section when it applies, and one more imaging study."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hipdx.case import Modality
from hipdx.web import form as forms
from hipdx.web.context import PageContext, conversions, next_study


def routes(ctx: PageContext) -> APIRouter:
    """``POST /fragments/differential``, ``/fragments/pregnancy`` and ``/fragments/study``."""
    router = APIRouter(include_in_schema=False)
    page = ctx.page

    @router.post("/fragments/differential", response_class=HTMLResponse)
    @ctx.guarded
    async def differential_fragment(request: Request) -> HTMLResponse:
        user = ctx.signed_in(request)
        items = await ctx.form_items(request)
        ctx.check_csrf(user, dict(items))
        case, state, assessment = ctx.evaluate(items)
        # 200 with the problems listed: htmx swaps it in, and the clinician sees what to fix
        return page("_differential.html", user=user, state=state, assessment=assessment, conversions=conversions(case), oob=True,
                    measurement_ids=[w.dom_id for w in ctx.widgets.values() if w.kind == "measurement"])

    @router.post("/fragments/pregnancy", response_class=HTMLResponse)
    @ctx.guarded
    async def pregnancy_fragment(request: Request) -> HTMLResponse:
        user, _, values = await ctx.posted(request)
        section = next(s for s in ctx.sections if s.id == "pregnancy")
        return page("_pregnancy.html", user=user, section=section, state=forms.FormState(values), pregnancy_shown=forms.pregnancy_relevant(values))

    @router.post("/fragments/study", response_class=HTMLResponse)
    @ctx.guarded
    async def study_fragment(request: Request) -> HTMLResponse:
        user, _, values = await ctx.posted(request)
        modality = values.get("add_study", "")
        if modality not in Modality._value2member_map_:
            return page("_message.html", 422, user=user, message=f"{modality[:40]!r} is not an imaging modality; choose radiograph, MRI, CT or bone scan.")
        index = next_study(values)
        return page("_study.html", user=user, index=index, modality=Modality(modality), study_widgets=forms.study_widgets(index, Modality(modality)),
                    state=forms.FormState({f"imaging.{index}.modality": modality}))

    return router
