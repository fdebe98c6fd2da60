"""The knowledge-base browser (``GET /kb`` and below): the conditions, the findings with each
probability, its range, basis and sources, and the references with what cites them. No
patient data: no sign-in (the signed-in user is shown when there is one)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hipdx.knowledge import KnowledgeBase
from hipdx.report import view
from hipdx.report.knowledge import band_bounds, band_label, implied_range
from hipdx.web.context import PageContext


def routes(ctx: PageContext) -> APIRouter:
    """``GET /kb``, ``/kb/conditions/{id}``, ``/kb/findings/{id}`` and ``/kb/references/{key}``."""
    router = APIRouter(include_in_schema=False)
    kb, page, principal, not_found = ctx.kb, ctx.page, ctx.principal, ctx.not_found
    cited_by = _cited_by(kb)  # once, when the pages are built (not on a first request)
    #: finding id -> its rows (the 90% range of every number: 80-280 ms for the MRI-edema finding), once
    rows_of: Callable[[str], list[dict[str, Any]]] = functools.lru_cache(maxsize=None)(lambda v: _finding_rows(kb, v))
    ctx.warm_also(lambda: [rows_of(v) for v in kb.variables])

    @router.get("/kb", response_class=HTMLResponse)
    @ctx.guarded  # the signed-in user is read from the record store
    def kb_index(request: Request) -> HTMLResponse:
        groups: dict[str, list[Any]] = {}
        for var in kb.variables.values():
            groups.setdefault(var.spec.group, []).append(var.spec)
        return page("kb_index.html", user=principal(request), title="Knowledge base", groups=groups, counts=kb.provenance_counts())

    @router.get("/kb/conditions/{condition_id}", response_class=HTMLResponse)
    @ctx.guarded  # the signed-in user is read from the record store
    def kb_condition(request: Request, condition_id: str) -> HTMLResponse:
        user = principal(request)
        if condition_id not in ctx.condition_ids:
            return not_found(f"The knowledge base has no condition {condition_id!r}.", "/kb", "the knowledge base", user)
        return page("kb_condition.html", user=user, title=kb.condition(condition_id).name, p=ctx.profile(condition_id))

    @router.get("/kb/findings/{variable_id}", response_class=HTMLResponse)
    @ctx.guarded  # the signed-in user is read from the record store
    def kb_finding(request: Request, variable_id: str) -> HTMLResponse:
        user = principal(request)
        var = kb.variables.get(variable_id)
        if var is None:
            return not_found(f"The knowledge base has no finding {variable_id!r}.", "/kb", "the knowledge base", user)
        return page("kb_finding.html", user=user, title=var.spec.label, var=var.spec, rows=rows_of(variable_id))

    @router.get("/kb/references/{key}", response_class=HTMLResponse)
    @ctx.guarded  # the signed-in user is read from the record store
    def kb_reference(request: Request, key: str) -> HTMLResponse:
        user = principal(request)
        ref = kb.references.get(key)
        if ref is None:
            return not_found(f"The knowledge base cites no reference {key!r}.", "/kb#references", "the references", user)
        return page("kb_reference.html", user=user, title=view.citation(key, ref), key=key, ref=ref, cited_by=cited_by.get(key, []))

    return router


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
    for pf in kb.probability_flags.values():
        for tier in pf.tiers:
            add(tier.refs, f"/kb/conditions/{pf.condition}#probability-flag", f"probability flag of {pf.condition}: {tier.urgency} tier")
            if tier.at_or_above:
                threshold = kb.treatment.threshold(tier.at_or_above)
                add(threshold.refs, f"/kb/conditions/{pf.condition}#probability-flag", f"threshold {tier.at_or_above}")
    for t in kb.tests:
        add(t.burden_provenance.refs, "/kb#tests", f"test: {t.name}")
    return out
