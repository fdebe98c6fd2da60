"""Many cases at once: the differential and red flags of each, without explanations or ranges.

For screening a cohort or re-scoring a registry, where :func:`~hipdx.reasoning.assess`
(one full :class:`~hipdx.reasoning.Assessment` with explanation, ranges and next tests)
is more than is needed. The posterior of every case is the same number ``assess``
reports: the same observations index the same rows of the knowledge base, and one
gather, sum and softmax over a key matrix (:func:`~hipdx.reasoning.differential.batch_posterior`)
scores every case together.

How the cases are read
----------------------
Reading the cases, not the arithmetic, is what costs, so the batch reads them in bulk
(``BatchEncoder``) and must give exactly the observations of
:meth:`~hipdx.reasoning.encode.CaseEncoder.encode` (``tests/test_batch.py`` checks it on
generated cases):

The batch encoder is built from the single encoder's own
:class:`~hipdx.reasoning.encode.SourceReader` of each variable (one description of where
a variable is read) and reads the same sources column-wise:

- plain case fields and labs: one C-level attribute getter per case (labs through
  ``Labs.canonical``, as the single encoder), then one table lookup per column from value
  to knowledge-base row (the state by :func:`~hipdx.reasoning.encode.state_of`, memoised);
  numbers are binned with :func:`numpy.searchsorted` on the source's bins;
- imaging findings: every study of every case in one table, and for each variable the
  most recent study that reports it chosen by one sort (the rule of ``CaseEncoder``);
- computed findings (sex and pregnancy, the MRI edema pattern, the subchondral band,
  contrast): the readers' own ``read``, case by case, the imaging ones only for cases
  with a study.

``tests/test_properties.py`` checks on random cases that both give the same keys.

Red flags are evaluated on the same key matrix by the base's compiled triggers
(:class:`~hipdx.reasoning.red_flags.RedFlagRules`), the very tables the single assessment
evaluates.

Examples
--------
>>> import datetime as dt
>>> from hipdx.case import Case
>>> from hipdx.knowledge import load_knowledge_base
>>> kb = load_knowledge_base()
>>> result = assess_batch([Case(age_years=44, sex="male"), Case(age_years=30, sex="female")], kb, dt.date(2026, 1, 1))
>>> result.probabilities.shape == (2, len(kb.conditions))
True
>>> bool(abs(result.probabilities.sum(axis=1) - 1).max() < 1e-12)
True
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hipdx.case import Case, Modality
from hipdx.case.parse import parse_case
from hipdx.case.timeline import Timeline
from hipdx.errors import InputError, Problem
from hipdx.jsonio import loads
from hipdx.knowledge.base import CompiledVariable, KnowledgeBase
from hipdx.reasoning.differential import batch_posterior, batch_undefined, batch_weights
from hipdx.reasoning.encode import (
    IMAGING_ONLY,
    CaseEncoder,
    SourceKind,
    SourceReader,
    encoder_for,
    qualitative_reading,
    state_of,
)
from hipdx.reasoning.red_flags import red_flag_rules

#: Cases scored per gather; bounds the (cases, variables, conditions) intermediate to a few MB.
CHUNK_CASES = 2048


@dataclass(frozen=True)
class LineError:
    """An input line that could not be read as a case.

    ``index`` is the 0-based position of the line in the input (blank lines count).
    """

    index: int
    message: str
    problems: tuple[Problem, ...]

    def __str__(self) -> str:
        return "\n".join([f"line {self.index}: {self.message}"] + [f"  - {p}" for p in self.problems])


@dataclass(frozen=True)
class BatchResult:
    """The differential of many cases: one row per assessed case.

    Attributes
    ----------
    condition_ids
        The columns of ``probabilities``, in knowledge-base order.
    probabilities
        (cases, conditions) posterior probabilities, float64, unrounded.
    top
        (cases,) column of the most probable condition of each case (the first on a tie,
        as in ``assess``).
    red_flag_ids
        The columns of ``red_flags``, in knowledge-base order.
    red_flags
        (cases, red flags) whether each must-not-miss rule holds for each case.
    n_observations
        (cases,) how many findings of each case the knowledge base could use.
    case_ids
        Each case's ``id`` (None when it has none).
    input_index
        (cases,) position of each row's case in the input; with :func:`assess_batch_json`
        the line it came from, so rows and ``errors`` account for every non-blank line.
    errors
        Lines that were not valid cases (only from :func:`assess_batch_json`).
    """

    condition_ids: tuple[str, ...]
    probabilities: np.ndarray
    top: np.ndarray
    red_flag_ids: tuple[str, ...]
    red_flags: np.ndarray
    n_observations: np.ndarray
    case_ids: tuple[str | None, ...]
    input_index: np.ndarray
    errors: tuple[LineError, ...] = ()

    def __len__(self) -> int:
        return len(self.case_ids)

    def top_condition_ids(self) -> list[str]:
        """The id of the most probable condition of each case."""
        ids = self.condition_ids
        return [ids[i] for i in self.top.tolist()]

    def red_flags_of(self, row: int) -> list[str]:
        """Ids of the red flags that hold for the case in ``row``."""
        return [self.red_flag_ids[j] for j in np.flatnonzero(self.red_flags[row]).tolist()]


class _Column:
    """How one variable's value becomes a row of the knowledge base's tables."""

    def __init__(self, column: int, var: CompiledVariable, pad: int, reader: SourceReader) -> None:
        source = reader.source
        self.reader = reader
        self.column = column
        self.var = var
        self.source = source
        self.banded = bool(var.spec.time_bands_days)
        #: observable name -> column of ``key_table``; the extra last column is "no observation"
        self.observable_index = {name: i for i, name in enumerate(var.observables)}
        self.none = len(self.observable_index)
        n_bands = 1 + max(band for band, _ in var.keys)
        self.key_table = np.full((n_bands, self.none + 1), pad, dtype=np.intp)
        for (band, name), key in var.keys.items():
            self.key_table[band, self.observable_index[name]] = key
        if source.bins:
            self.upper_bounds = np.array([upper for _, upper in source.bins[:-1]], dtype=float)
            self.bin_observable = np.array(
                [self.observable_index[state] for state, _ in source.bins] + [self.none], dtype=np.intp
            )
        #: case value -> observable column, filled as values are met (enums: a handful)
        self._memo: dict[Any, int] = {}

    def observable(self, value: Any) -> int:
        """The observable column of one value; ``self.none`` when it says nothing."""
        index = self._memo.get(value)
        if index is None:
            state = state_of(value, self.source)
            index = self.none if state is None else self.observable_index[state]
            if not isinstance(value, float):  # numbers are many; enums and flags are few
                self._memo[value] = index
        return index

    def observables(self, values: Sequence[Any]) -> np.ndarray:
        """The observable column of each value, as an array."""
        if self.source.bins:
            x = np.array(values, dtype=float)  # None -> nan
            idx = np.searchsorted(self.upper_bounds, x, side="right")
            idx[np.isnan(x)] = len(self.bin_observable) - 1
            return self.bin_observable[idx]
        memo = self._memo
        try:
            return np.fromiter(map(memo.__getitem__, values), dtype=np.intp, count=len(values))
        except KeyError:
            return np.fromiter(map(self.observable, values), dtype=np.intp, count=len(values))

    def keys(self, observables: np.ndarray, days: Sequence[float | None] | None) -> np.ndarray:
        """Rows of the knowledge base for observables seen ``days`` after onset."""
        if not self.banded:
            return self.key_table[0, observables]
        bands = np.fromiter(map(self.var.band, days or ()), dtype=np.intp, count=len(observables))
        return self.key_table[bands, observables]


def _tuple_getter(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """One C-level getter of several (dotted) attributes that always returns a tuple."""
    if len(names) == 1:
        single = operator.attrgetter(names[0])
        return lambda obj: (single(obj),)
    return operator.attrgetter(*names)


class _ImagingColumn(_Column):
    """A variable read from the most recent imaging study that reports its finding."""

    def __init__(self, column: int, var: CompiledVariable, pad: int, reader: SourceReader, finding: int) -> None:
        super().__init__(column, var, pad, reader)
        #: position of the finding in the tuple read from each study
        self.finding = finding
        #: modality -> whether a study of it can report the variable
        self.modality_ok = np.array([m.value in (var.spec.source.imaging or ()) for m in Modality], dtype=bool)


_MODALITY_CODE = {m: i for i, m in enumerate(Modality)}


class BatchEncoder:
    """Reads every variable of a knowledge base from many cases into one key matrix.

    Build one per knowledge base (:func:`batch_encoder_for`); it holds tables derived
    from the base and a memo of the enum values it has met.
    """

    def __init__(self, kb: KnowledgeBase) -> None:
        single = encoder_for(kb)
        self.pad = len(kb.log_p) - 1
        self.variable_ids = list(kb.variables)
        self._fields: list[_Column] = []
        self._labs: list[_Column] = []
        self._imaging: list[_ImagingColumn] = []
        computed_any: list[SourceReader] = []
        computed_imaging: list[SourceReader] = []
        findings: list[str] = []
        for column, (reader, var) in enumerate(zip(single.readers, kb.variables.values(), strict=True)):
            if reader.kind is SourceKind.field:
                self._fields.append(_Column(column, var, self.pad, reader))
            elif reader.kind is SourceKind.lab:
                self._labs.append(_Column(column, var, self.pad, reader))
            elif reader.kind is SourceKind.imaging:
                finding = reader.source.finding or ""
                if finding not in findings:
                    findings.append(finding)
                self._imaging.append(_ImagingColumn(column, var, self.pad, reader, findings.index(finding)))
            elif reader.source.computed in IMAGING_ONLY:
                computed_imaging.append(reader)
            else:
                computed_any.append(reader)
        self._field_getter = _tuple_getter([c.source.field or "" for c in self._fields]) if self._fields else None
        self._lab_names = [(c.source.field or "").split(".", 1)[1] for c in self._labs]
        self._findings_getter = _tuple_getter(findings) if findings else None
        self._needs_days = any(c.banded for c in self._fields + self._labs)
        # computed findings are read by the single encoder's own readers
        self._computed_any = CaseEncoder(computed_any, single.band)
        self._computed_imaging = CaseEncoder(computed_imaging, single.band)
        self._column_of = {vid: i for i, vid in enumerate(self.variable_ids)}
        self._variables = kb.variables

    @property
    def n_columns(self) -> int:
        return len(self.variable_ids)

    def keys(self, cases: Sequence[Case], today: dt.date) -> np.ndarray:
        """(cases, variables) row of the knowledge base's tables for each case and variable.

        Column ``j`` is variable ``j`` of the base; a variable the case says nothing about
        holds the padding row, which adds nothing to a posterior.
        """
        out = np.full((len(cases), self.n_columns), self.pad, dtype=np.intp)
        if len(cases):
            timelines = [Timeline(c, today) for c in cases]
            self._read_fields(cases, timelines, out)
            self._read_case_by_case(cases, timelines, today, out)
        return out

    def _read_fields(self, cases: Sequence[Case], timelines: Sequence[Timeline], out: np.ndarray) -> None:
        """Variables of plain case fields and labs, column by column."""
        days_now = [t.onset for t in timelines] if self._needs_days else None
        if self._field_getter is not None:
            # read row by row (each case while it is in cache), then score column by column
            for c, values in zip(self._fields, zip(*map(self._field_getter, cases))):
                out[:, c.column] = c.keys(c.observables(values), days_now)
        if self._lab_names:
            names = self._lab_names
            lab_rows = [tuple(map(case.labs.canonical, names)) for case in cases]
            for c, values in zip(self._labs, zip(*lab_rows)):
                out[:, c.column] = c.keys(c.observables(values), days_now)
            self._read_qualitative_labs(cases, timelines, out)

    def _read_qualitative_labs(self, cases: Sequence[Case], timelines: Sequence[Timeline], out: np.ndarray) -> None:
        """Labs reported only in words, for the few cases that give one (as ``CaseEncoder``)."""
        in_words = [i for i, case in enumerate(cases) if case.labs.qualitative]
        for c, name in zip(self._labs, self._lab_names):
            if not c.source.qualitative:
                continue
            for i in in_words:
                if out[i, c.column] != self.pad:
                    continue  # a measured value was read; a case cannot give both
                reading = qualitative_reading(cases[i], name, c.source, timelines[i].onset)
                if reading is not None:
                    out[i, c.column] = c.var.keys[(c.var.band(reading[1]), reading[0])]

    def _read_case_by_case(self, cases: Sequence[Case], timelines: Sequence[Timeline], today: dt.date, out: np.ndarray) -> None:
        """Computed variables (by the base's encoder) and the imaging studies of each case."""
        rows: list[int] = []
        columns: list[int] = []
        keys: list[int] = []
        study_case: list[int] = []
        study_days: list[float | None] = []
        study_modality: list[int] = []
        study_findings: list[tuple[Any, ...]] = []
        column_of, variables, read_findings = self._column_of, self._variables, self._findings_getter
        for i, (case, timeline) in enumerate(zip(cases, timelines)):
            observations = self._computed_any.encode(case, today, timeline)
            if case.imaging:
                observations += self._computed_imaging.encode(case, today, timeline)
                for k, study in enumerate(case.imaging):
                    study_case.append(i)
                    study_days.append(timeline.study(k))
                    study_modality.append(_MODALITY_CODE[study.modality])
                    if read_findings is not None:
                        study_findings.append(read_findings(study.findings))
            for o in observations:
                var = variables[o.variable]
                rows.append(i)
                columns.append(column_of[o.variable])
                keys.append(var.keys[(var.band(o.days), o.state)])
        if rows:
            out[rows, columns] = keys
        if study_case and study_findings:
            self._read_imaging(study_case, study_days, study_modality, study_findings, out)

    def _read_imaging(
        self,
        study_case: list[int],
        study_days: list[float | None],
        study_modality: list[int],
        study_findings: list[tuple[Any, ...]],
        out: np.ndarray,
    ) -> None:
        """Each imaging variable from the most recent study that reports its finding.

        The rule of :class:`~hipdx.reasoning.encode.CaseEncoder`: among a case's studies of
        the variable's modalities whose finding is known, the latest by days since onset
        (a study of unknown time counts as -1 days), then the later in the case's list.
        Studies arrive grouped by case, each case's in list order.
        """
        case_of = np.asarray(study_case, dtype=np.intp)
        days = np.array(study_days, dtype=float)  # None -> nan
        position = np.arange(len(case_of)) - np.searchsorted(case_of, case_of)  # index within the case
        # by case, then time (unknown = -1), then position: a case's last eligible study is its latest
        order = np.lexsort((position, np.where(np.isnan(days), -1.0, days), case_of))
        modality = np.asarray(study_modality, dtype=np.intp)
        findings = list(zip(*study_findings))
        for c in self._imaging:
            observable = c.observables(findings[c.finding])
            eligible = (observable != c.none) & c.modality_ok[modality]
            chosen = order[eligible[order]]
            cases = case_of[chosen]
            last = np.ones(len(chosen), dtype=bool)
            last[:-1] = cases[1:] != cases[:-1]
            chosen, cases = chosen[last], cases[last]
            if c.banded:
                bands = np.fromiter((c.var.band(study_days[k]) for k in chosen.tolist()), np.intp, len(chosen))
            else:
                bands = np.zeros(len(chosen), dtype=np.intp)
            out[cases, c.column] = c.key_table[bands, observable[chosen]]


def batch_encoder_for(kb: KnowledgeBase) -> BatchEncoder:
    """The batch encoder of a knowledge base (built once and kept with the base)."""
    return kb.attached(BatchEncoder)


def posterior_matrix(kb: KnowledgeBase, key_matrix: np.ndarray) -> np.ndarray:
    """(cases, conditions) posterior of every row of a padded key matrix, in chunks."""
    out = np.empty((len(key_matrix), len(kb.conditions)))
    for start in range(0, len(key_matrix), CHUNK_CASES):
        stop = start + CHUNK_CASES
        chunk = key_matrix[start:stop]
        out[start:stop] = batch_posterior(kb, chunk, batch_weights(kb, chunk), batch_undefined(kb, chunk))
    return out


def assess_batch(cases: Sequence[Case], kb: KnowledgeBase, today: dt.date) -> BatchResult:
    """The differential and red flags of many cases, without explanations or ranges.

    Parameters
    ----------
    cases
        Validated cases.
    kb
        The compiled knowledge base.
    today
        The date of the assessment, used only for cases that give dates but no
        ``assessed_on`` (as in :func:`~hipdx.reasoning.assess`).

    Returns
    -------
    BatchResult
        One row per case, in input order. ``probabilities`` equal the unrounded
        probabilities ``assess`` reports for the same case.

    Raises
    ------
    InputError
        A case whose times counted from ``today`` are impossible (an onset after it, say;
        :mod:`hipdx.case.timeline`). :func:`assess_batch_json` reports such a line instead.
    """
    key_matrix = batch_encoder_for(kb).keys(cases, today)
    probabilities = posterior_matrix(kb, key_matrix)
    return BatchResult(
        condition_ids=tuple(kb.condition_ids),
        probabilities=probabilities,
        top=np.argmax(probabilities, axis=1) if len(cases) else np.zeros(0, dtype=np.intp),
        red_flag_ids=red_flag_rules(kb).ids,
        red_flags=red_flag_rules(kb).evaluate(key_matrix, probabilities),
        n_observations=np.count_nonzero(key_matrix != len(kb.log_p) - 1, axis=1),
        case_ids=tuple(c.id for c in cases),
        input_index=np.arange(len(cases)),
    )


def assess_batch_json(lines: Iterable[str | bytes], kb: KnowledgeBase, today: dt.date) -> BatchResult:
    """Parse one JSON case per line and assess the valid ones together (NDJSON in, batch out).

    A line that is not a valid case does not stop the batch: it is reported in
    ``errors`` with its index and every problem found. Blank lines are skipped.

    Examples
    --------
    >>> from hipdx.knowledge import load_knowledge_base
    >>> result = assess_batch_json(['{"age_years": 50}', '{"age_yeras": 50}'], load_knowledge_base(), dt.date(2026, 1, 1))
    >>> len(result), result.errors[0].index, result.errors[0].problems[0].field
    (1, 1, 'age_yeras')
    """
    cases: list[Case] = []
    index: list[int] = []
    errors: list[LineError] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            data = loads(line, "the line")
        except InputError as exc:  # the strict reader's reason (a key twice, too deep...) is kept as a problem
            errors.append(LineError(i, "the line is not valid JSON", tuple(exc.problems or [Problem("", exc.message)])))
            continue
        try:
            cases.append(parse_case(data, today))
        except InputError as exc:
            errors.append(LineError(i, exc.message, tuple(exc.problems)))
            continue
        index.append(i)
    result = assess_batch(cases, kb, today)
    return replace(result, input_index=np.asarray(index, dtype=np.intp), errors=tuple(errors))
