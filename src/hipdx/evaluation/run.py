"""Evaluating vignette files: read, map, assess, score. The only I/O of the package."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hipdx._version import __version__
from hipdx.case.model import refused_character
from hipdx.errors import InputError, IntegrationError
from hipdx.evaluation.scoring import (
    NOT_ASSESSED,
    CaseResult,
    EvaluationReport,
    FileSummary,
    FlagSeen,
    Miss,
    Prediction,
    RedFlagMiss,
    ReportProvenance,
    accepted_conditions,
    confusion_table,
    flags_condition,
    score_differential,
    summarise,
    summarise_red_flags,
)
from hipdx.evaluation.vignette import vignette_to_case
from hipdx.jsonio import loads, read_input_file
from hipdx.knowledge import KnowledgeBase
from hipdx.reasoning import assess


def read_vignette_file(path: Path) -> list[Any]:
    """The records of one vignette file (a JSON array).

    Raises
    ------
    IntegrationError
        The file cannot be read (not a regular file, larger than 5 MB), is not strict JSON
        (see :func:`hipdx.jsonio.loads`), or is not a JSON array; the message names it.
    """
    if not Path(path).exists():
        raise IntegrationError(f"{path}: vignette file not found")
    try:
        data = loads(read_input_file(path), "the vignette file")
    except InputError as exc:  # an unreadable file or strict-JSON refusal, named with the file
        raise IntegrationError(f"{path}: {exc.message}", exc.problems) from None
    if not isinstance(data, list):
        raise IntegrationError(f"{path}: expected a JSON array of vignettes, found a JSON {type(data).__name__}")
    return data


def _evaluate_one(record: Any, index: int, file: str, kb: KnowledgeBase, today: dt.date) -> CaseResult:
    raw_id = record.get("id") if isinstance(record, Mapping) else None
    printable = isinstance(raw_id, str) and raw_id and refused_character(raw_id, multiline=False) is None
    case_id = raw_id if printable else f"{file}#{index}"  # an id with control characters is not printed
    category = None
    if isinstance(record, Mapping) and isinstance(record.get("final_diagnosis"), Mapping):
        value = record["final_diagnosis"].get("category")
        category = value if isinstance(value, str) else None
    accepted = accepted_conditions(category, kb.condition_ids) if category else ()
    must_not_miss = [c for c in accepted if c in must_not_miss_conditions(kb)]
    used: list[str] = []
    skipped: list[str] = []
    try:
        case, used, skipped = vignette_to_case(record)
        if category is None:
            raise IntegrationError("final_diagnosis.category is missing: the record cannot be scored")
        assessment = assess(case, kb, today)
    except Exception as exc:  # one odd record must not stop the run: it is reported and scored as a miss
        return CaseResult(
            id=case_id,
            file=file,
            category=category,
            accepted=list(accepted),
            status="error",
            top3=[],
            rank=None,
            probability=0.0,
            brier=NOT_ASSESSED.brier,
            log_loss=NOT_ASSESSED.log_loss,
            n_used=len(used),
            n_skipped=len(skipped),
            used=used,
            skipped=skipped,
            must_not_miss=must_not_miss,
            error=f"{type(exc).__name__}: {exc}",
        )
    differential = [Prediction(id=d.id, probability=d.probability) for d in assessment.differential]
    score = score_differential(accepted, differential)
    return CaseResult(
        id=case_id,
        file=file,
        category=category,
        accepted=list(accepted),
        status="scored" if accepted else "unmodelled",
        top3=differential[:3],
        rank=score.rank,
        probability=round(score.probability, 4),
        brier=round(score.brier, 4),
        log_loss=round(score.log_loss, 4),
        n_used=len(used),
        n_skipped=len(skipped),
        used=used,
        skipped=skipped,
        must_not_miss=must_not_miss,
        red_flags=[FlagSeen(id=f.id, kind=f.kind, condition=f.condition, urgency=f.urgency) for f in assessment.red_flags],
        headline_urgency=assessment.headline.urgency,
    )


def must_not_miss_conditions(kb: KnowledgeBase) -> tuple[str, ...]:
    """The conditions the knowledge base marks ``must_not_miss`` (``conditions.yaml``), in its order."""
    return tuple(c.id for c in kb.conditions if c.must_not_miss)


def _red_flag_misses(results: list[CaseResult]) -> list[RedFlagMiss]:
    return [
        RedFlagMiss(
            id=r.id,
            category=r.category,
            must_not_miss=r.must_not_miss,
            probability=r.probability,
            red_flags=r.red_flags,
            headline_urgency=r.headline_urgency,
            status=r.status,
        )
        for r in results
        if r.must_not_miss and not flags_condition(r)
    ]


def _report(results: list[CaseResult], files: list[str], kb: KnowledgeBase, today: dt.date) -> EvaluationReport:
    n_conditions = len(kb.condition_ids)
    per_file = [
        FileSummary(path=f, **summarise([r for r in results if r.file == f], n_conditions).model_dump()) for f in files
    ]
    misses = [
        Miss(
            id=r.id,
            file=r.file,
            category=r.category,
            status=r.status,
            rank=r.rank,
            probability=r.probability,
            top3=r.top3,
            error=r.error,
        )
        for r in results
        if r.rank != 1
    ]
    return EvaluationReport(
        **summarise(results, n_conditions).model_dump(),
        confusion=confusion_table(results),
        misses=misses,
        red_flags=summarise_red_flags(results, must_not_miss_conditions(kb)),
        red_flag_misses=_red_flag_misses(results),
        per_case=results,
        files=per_file,
        unmodelled=[f"{r.id} ({r.category})" for r in results if r.status == "unmodelled"],
        errors=[f"{r.id}: {r.error}" for r in results if r.status == "error"],
        provenance=ReportProvenance(
            hipdx_version=__version__,
            knowledge_base=kb.info.name,
            knowledge_base_version=kb.version,
            knowledge_base_digest=kb.digest,
            assessed_on=today.isoformat(),
            n_conditions=n_conditions,
            files=files,
        ),
    )


def evaluate_records(
    records: Sequence[Any], kb: KnowledgeBase, today: dt.date, source: str = "<records>"
) -> EvaluationReport:
    """Evaluate vignette records already decoded from JSON.

    Parameters
    ----------
    records
        Vignettes in the format of ``shared/evaluation/README.md``. A record that cannot be
        mapped or assessed is reported in ``errors`` and scored as a miss.
    kb
        The knowledge base to assess with.
    today
        The assessment date passed to :func:`hipdx.assess`.
    source
        The name the records are reported under.
    """
    results = [_evaluate_one(record, i, source, kb, today) for i, record in enumerate(records)]
    return _report(results, [source], kb, today)


def evaluate_files(paths: Sequence[Path], kb: KnowledgeBase, today: dt.date) -> EvaluationReport:
    """Evaluate one or more vignette files; the report has totals over all and per file.

    Raises
    ------
    IntegrationError
        A file cannot be read, is not JSON, or is not a JSON array (all files are
        checked before any case is assessed).

    Examples
    --------
    >>> from hipdx.knowledge import load_knowledge_base
    >>> report = evaluate_files([Path("evaluation/literature-hipdx.json")], load_knowledge_base(),
    ...                         dt.date(2026, 1, 1))  # doctest: +SKIP
    >>> print(render_text(report))  # doctest: +SKIP
    """
    loaded = [(str(p), read_vignette_file(Path(p))) for p in paths]
    results = [
        _evaluate_one(record, i, name, kb, today) for name, records in loaded for i, record in enumerate(records)
    ]
    return _report(results, [name for name, _ in loaded], kb, today)
