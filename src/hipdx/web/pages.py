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
``GET /kb`` and below                       the knowledge base: conditions, findings, references
``GET /static/{name}``                      the stylesheet and the vendored htmx script
==========================================  ===========================================
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from hipdx import __version__
from hipdx.case import Case, Modality
from hipdx.knowledge import KnowledgeBase
from hipdx.reasoning import Assessment, assess
from hipdx.report import view
from hipdx.report.knowledge import ConditionProfile, band_bounds, band_label, describe_condition, implied_range
from hipdx.web import form as forms
from hipdx.web.library import CaseLibrary

STATIC = Path(__file__).parent / "static"
#: The files /static serves, and nothing else.
STATIC_FILES = {"hipdx.css": "text/css", "htmx.min.js": "text/javascript"}
#: Scripts and styles only from this server: no inline script, no CDN.
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
MAX_FORM_FIELDS = 2000
URGENCY_CLASS = {"emergency": "emergency", "urgent": "urgent", "soon": "soon", "routine": "routine"}


def _environment() -> Environment:
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
    return env


def web_router(kb: KnowledgeBase, today: Callable[[], dt.date], library: CaseLibrary | None = None) -> APIRouter:
    """The pages, for one knowledge base; ``today`` dates each assessment; ``library`` holds
    the cases the list shows (none by default)."""
    env = _environment()
    cases = library or CaseLibrary.empty()
    sections = forms.case_sections()
    widgets = forms.all_widgets(sections)
    condition_ids = set(kb.condition_ids)
    router = APIRouter(include_in_schema=False)

    def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(kb=kb, **context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})

    def entry_context(values: Mapping[str, str], state: forms.FormState, assessment: Assessment | None, case: Case | None) -> dict[str, Any]:
        return {
            "sections": sections,
            "state": state,
            "studies": [(i, m, forms.study_widgets(i, m)) for i, m in forms.studies(values)],
            "pregnancy_shown": forms.pregnancy_relevant(values),
            "assessment": assessment,
            "conversions": _conversions(case),
            "modalities": [m.value for m in Modality],
        }

    async def form_items(request: Request) -> list[tuple[str, str]]:
        data = await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
        return [(k, v) for k, v in data.multi_items() if isinstance(v, str)]

    def evaluate(items: list[tuple[str, str]]) -> tuple[Case | None, forms.FormState, Assessment | None]:
        case, state = forms.read_form(items, widgets, today())
        return case, state, assess(case, kb, today()) if case is not None else None

    # --- cases ------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    def case_list(q: str = "") -> HTMLResponse:
        return page("cases.html", rows=cases.search(q[:200]), query=q[:200], total=len(cases.cases))

    @router.get("/cases/new", response_class=HTMLResponse)
    def new_case() -> HTMLResponse:
        values: dict[str, str] = {}
        return page("entry.html", title="New case", **entry_context(values, forms.FormState(values), None, None))

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    def open_case(case_id: str) -> HTMLResponse:
        item = cases.cases.get(case_id)
        if item is None:
            return not_found(f"There is no case {case_id!r}.", "/", "the case list")
        values = forms.values_from_case(item.raw)
        case, state, assessment = evaluate(list(values.items()))
        return page("entry.html", title=f"Case {case_id}", case_id=case_id, **entry_context(values, state, assessment, case))

    @router.post("/cases/entry", response_class=HTMLResponse)
    async def post_entry(request: Request) -> HTMLResponse:
        items = await form_items(request)
        values = dict(items)
        added = values.get("add_study")
        if added in Modality._value2member_map_:
            values[f"imaging.{_next_study(values)}.modality"] = added
            items = list(values.items())
        case, state, assessment = evaluate(items)
        status = 422 if state.summary else 200
        return page("entry.html", status, title="Case", **entry_context(values, state, assessment, case))

    @router.post("/assessment", response_class=HTMLResponse)
    async def post_assessment(request: Request) -> HTMLResponse:
        items = await form_items(request)
        values = dict(items)
        case, state, assessment = evaluate(items)
        if assessment is None:
            return page("entry.html", 422, title="Case", **entry_context(values, state, None, None))
        return assessment_page(assessment, case, values)

    @router.get("/cases/{case_id}/assessment", response_class=HTMLResponse)
    def case_assessment(case_id: str) -> HTMLResponse:
        item = cases.cases.get(case_id)
        if item is None:
            return not_found(f"There is no case {case_id!r}.", "/", "the case list")
        values = forms.values_from_case(item.raw)
        case, _, assessment = evaluate(list(values.items()))
        assert case is not None and assessment is not None  # a library case is valid by construction
        return assessment_page(assessment, case, values, case_id=case_id)

    def assessment_page(assessment: Assessment, case: Case, values: Mapping[str, str], case_id: str | None = None) -> HTMLResponse:
        keys = _cited_keys(assessment)
        return page(
            "assessment.html",
            title=f"Assessment {assessment.case_id or ''}".strip(),
            a=assessment,
            case=case,
            case_id=case_id,
            values=values,
            hidden=[(k, v) for k, v in values.items() if k not in ("add_study",)],
            sources=[(k, view.citation(k, kb.references.get(k))) for k in keys],
            known_refs=set(kb.references),
            test_names={t.id: t.name for t in kb.tests},
        )

    # --- fragments (htmx) -----------------------------------------------------------------

    @router.post("/fragments/differential", response_class=HTMLResponse)
    async def differential_fragment(request: Request) -> HTMLResponse:
        items = await form_items(request)
        case, state, assessment = evaluate(items)
        # 200 with the problems listed: htmx swaps it in, and the clinician sees what to fix
        return page("_differential.html", state=state, assessment=assessment, conversions=_conversions(case), oob=True,
                    measurement_ids=[w.dom_id for w in widgets.values() if w.kind == "measurement"])

    @router.post("/fragments/pregnancy", response_class=HTMLResponse)
    async def pregnancy_fragment(request: Request) -> HTMLResponse:
        values = dict(await form_items(request))
        section = next(s for s in sections if s.id == "pregnancy")
        return page("_pregnancy.html", section=section, state=forms.FormState(values), pregnancy_shown=forms.pregnancy_relevant(values))

    @router.post("/fragments/study", response_class=HTMLResponse)
    async def study_fragment(request: Request) -> HTMLResponse:
        values = dict(await form_items(request))
        modality = values.get("add_study", "")
        if modality not in Modality._value2member_map_:
            return page("_message.html", 422, message=f"{modality[:40]!r} is not an imaging modality; choose radiograph, MRI, CT or bone scan.")
        index = _next_study(values)
        return page("_study.html", index=index, modality=Modality(modality), study_widgets=forms.study_widgets(index, Modality(modality)),
                    state=forms.FormState({f"imaging.{index}.modality": modality}))

    # --- knowledge base -------------------------------------------------------------------

    @lru_cache(maxsize=64)
    def profile(condition_id: str) -> ConditionProfile:
        return describe_condition(kb, condition_id)

    @router.get("/kb", response_class=HTMLResponse)
    def kb_index() -> HTMLResponse:
        groups: dict[str, list[Any]] = {}
        for var in kb.variables.values():
            groups.setdefault(var.spec.group, []).append(var.spec)
        return page("kb_index.html", title="Knowledge base", groups=groups, counts=kb.provenance_counts())

    @router.get("/kb/conditions/{condition_id}", response_class=HTMLResponse)
    def kb_condition(condition_id: str) -> HTMLResponse:
        if condition_id not in condition_ids:
            return not_found(f"The knowledge base has no condition {condition_id!r}.", "/kb", "the knowledge base")
        return page("kb_condition.html", title=kb.condition(condition_id).name, p=profile(condition_id), condition=kb.condition(condition_id))

    @router.get("/kb/findings/{variable_id}", response_class=HTMLResponse)
    def kb_finding(variable_id: str) -> HTMLResponse:
        var = kb.variables.get(variable_id)
        if var is None:
            return not_found(f"The knowledge base has no finding {variable_id!r}.", "/kb", "the knowledge base")
        return page("kb_finding.html", title=var.spec.label, var=var.spec, rows=_finding_rows(kb, variable_id))

    @router.get("/kb/references/{key}", response_class=HTMLResponse)
    def kb_reference(key: str) -> HTMLResponse:
        ref = kb.references.get(key)
        if ref is None:
            return not_found(f"The knowledge base cites no reference {key!r}.", "/kb#references", "the references")
        return page("kb_reference.html", title=view.citation(key, ref), key=key, ref=ref, cited_by=_cited_by(kb).get(key, []))

    # --- the rest -------------------------------------------------------------------------

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "public, max-age=3600"})

    def not_found(message: str, back: str, back_label: str) -> HTMLResponse:
        return page("message.html", 404, title="Not found", message=message, back=back, back_label=back_label)

    return router


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


_CITED_BY: dict[str, dict[str, list[tuple[str, str]]]] = {}


def _cited_by(kb: KnowledgeBase) -> dict[str, list[tuple[str, str]]]:
    """Reference key -> (link, what) for every item of the base that cites it."""
    if kb.digest in _CITED_BY:
        return _CITED_BY[kb.digest]
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
    _CITED_BY[kb.digest] = out
    return out


_SLUG = re.compile(r"[^a-z0-9_]+")
