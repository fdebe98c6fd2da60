"""The extraction rules as data: ConText modifiers (``context.yaml``) and target phrases (``targets.yaml``).

Loaded once, checked (every pattern compiles, every finding is a field of
:class:`~hipdx.case.model.ImagingFindings`, every value one the field accepts) and compiled.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from hipdx.case.model import FINDING_MODALITIES, ImagingFindings, Modality
from hipdx.errors import KnowledgeBaseError, Problem

DATA_DIR = Path(__file__).with_name("data")


class Category(str, Enum):
    """What a ConText modifier does to the findings in its scope."""

    negated = "negated"
    uncertain = "uncertain"
    historical = "historical"
    hypothetical = "hypothetical"
    normal = "normal"
    pseudo = "pseudo"
    terminate = "terminate"


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModifierRule(_Data):
    category: Category
    direction: Literal["forward", "backward", "bidirectional"]
    source: str
    patterns: list[str]
    bounded: bool = True  # False: the patterns are matched as written, not wrapped in word boundaries


class ContextFile(_Data):
    version: str
    sources: dict[str, str]
    abbreviations: list[str] = []
    modifiers: list[ModifierRule]


class TargetRule(_Data):
    id: str
    finding: str | None
    kind: Literal["finding", "impression", "exclusion", "normal", "measure"] = "finding"  # measure: a number of its own field
    value: str | float | None = None
    negated_value: str | None = "absent"
    route: Literal["edema", "fracture", "uptake", "head_surface", "femoral", "lesion"] | None = None
    numbers: list[str] = []
    source: str
    patterns: list[str]
    # False: a negated phrase of this rule does not deny the findings named inside it ("no T1 hypointense lesion")
    denial_covers_parts: bool = True


class NumberRule(_Data):
    field: str
    patterns: list[str]


class TargetsFile(_Data):
    version: str
    targets: list[TargetRule]
    normal_implies: dict[Modality, dict[str, str]]
    numbers: dict[str, NumberRule]
    sides: dict[Literal["left", "right", "both", "contralateral", "reference"], list[str]]  # contralateral: the other side than the one named last; reference: a side compared with
    sites: dict[Literal["acetabulum", "femur", "ilium", "other_bone", "lesion"], list[str]]
    extent: dict[Literal["intertrochanteric", "head", "neck", "focal", "into_neck", "spared", "around"], list[str]]
    fracture: dict[Literal["neck", "head", "displaced", "not_displaced", "compression", "tension"], list[str]]
    uptake: dict[Literal["diffuse"], list[str]]

    @field_validator("targets")
    @classmethod
    def _unique(cls, targets: list[TargetRule]) -> list[TargetRule]:
        ids = [t.id for t in targets]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"target ids repeat: {', '.join(repeated)}")
        return targets


def words(patterns: list[str]) -> re.Pattern[str]:
    """One case-insensitive regex matching any of ``patterns`` as whole words."""
    return re.compile(r"(?<![\w-])(?:" + "|".join(f"(?:{p})" for p in patterns) + r")(?![\w-])", re.IGNORECASE)


@dataclass(frozen=True)
class Rules:
    """The compiled rules, with the digest of their files (provenance of every extraction)."""

    context: ContextFile
    targets: TargetsFile
    digest: str
    modifier_patterns: tuple[tuple[ModifierRule, re.Pattern[str]], ...]
    target_patterns: tuple[tuple[TargetRule, re.Pattern[str]], ...]
    number_patterns: dict[str, tuple[str, tuple[re.Pattern[str], ...]]]
    side_patterns: dict[str, re.Pattern[str]]
    word_sets: dict[str, dict[str, re.Pattern[str]]]
    abbreviation_pattern: re.Pattern[str] | None = None  # the word before a full stop that does not end a sentence

    @property
    def version(self) -> str:
        return f"context {self.context.version}, targets {self.targets.version}"


def _finding_problems(targets: TargetsFile) -> list[Problem]:
    problems = []
    fields = ImagingFindings.model_fields
    for t in targets.targets:
        where = f"targets.yaml: {t.id}"
        if t.kind == "finding" and t.finding is None:
            problems.append(Problem(where, "a finding target needs a finding"))
        if t.finding is None:
            continue
        if t.finding not in fields:
            problems.append(Problem(where, f"{t.finding!r} is not an imaging finding of the case model"))
            continue
        for value in {t.value, t.negated_value} - {None}:
            try:
                ImagingFindings.model_validate({t.finding: value})
            except ValidationError:
                problems.append(Problem(where, f"{value!r} is not a value of {t.finding}"))
        for key in t.numbers:
            if key not in targets.numbers:
                problems.append(Problem(where, f"number rule {key!r} is not defined"))
        if t.kind == "measure" and not any(targets.numbers[k].field == t.finding for k in t.numbers if k in targets.numbers):
            problems.append(Problem(where, f"a measure needs a number rule of its own field {t.finding!r}"))
    for modality, implied in targets.normal_implies.items():
        for name, value in implied.items():
            if modality not in FINDING_MODALITIES.get(name, ()):
                problems.append(Problem(f"targets.yaml: normal_implies.{modality.value}", f"{name} is not seen on {modality.value}"))
            else:
                try:
                    ImagingFindings.model_validate({name: value})
                except ValidationError:
                    problems.append(Problem(f"targets.yaml: normal_implies.{modality.value}", f"{value!r} is not a value of {name}"))
    for key, rule in targets.numbers.items():
        if rule.field not in fields:
            problems.append(Problem(f"targets.yaml: numbers.{key}", f"{rule.field!r} is not an imaging finding"))
    return problems


def _compile(pattern: str, where: str, problems: list[Problem], bounded: bool = True) -> re.Pattern[str] | None:
    try:
        return words([pattern]) if bounded else re.compile(pattern, re.IGNORECASE)
    except re.error as err:
        problems.append(Problem(where, f"pattern {pattern!r} does not compile: {err}"))
        return None


def _abbreviations(patterns: list[str], problems: list[Problem]) -> re.Pattern[str] | None:
    """The abbreviations as one pattern matching the whole word at the end of the text before a full stop."""
    if not patterns:
        return None
    try:
        return re.compile(r"(?<![\w.])(?:" + "|".join(f"(?:{p})" for p in patterns) + r")$", re.IGNORECASE)
    except re.error as err:
        problems.append(Problem("context.yaml: abbreviations", f"a pattern does not compile: {err}"))
        return None


def load_rules(data_dir: Path | None = None) -> Rules:
    """Read, check and compile the rules.

    Raises
    ------
    KnowledgeBaseError
        A file is missing or malformed, a pattern does not compile, a finding or value is not
        one of the case model, or a modifier cites an unknown source.
    """
    base = data_dir or DATA_DIR
    raw = {}
    try:
        for name in ("context.yaml", "targets.yaml"):
            raw[name] = (base / name).read_bytes()
        context = ContextFile.model_validate(yaml.safe_load(raw["context.yaml"]))
        targets = TargetsFile.model_validate(yaml.safe_load(raw["targets.yaml"]))
    except (OSError, yaml.YAMLError, ValidationError) as err:
        raise KnowledgeBaseError(f"the extraction rules in {base} cannot be read: {err}") from None
    problems = _finding_problems(targets)
    problems += [
        Problem("context.yaml", f"source {m.source!r} is not listed under sources")
        for m in context.modifiers
        if m.source not in context.sources
    ]
    modifiers = []
    for m in context.modifiers:
        for p in m.patterns:
            compiled = _compile(p, f"context.yaml: {m.category.value}", problems, m.bounded)
            if compiled:
                modifiers.append((m, compiled))
    target_patterns = []
    for t in targets.targets:
        for p in t.patterns:
            compiled = _compile(p, f"targets.yaml: {t.id}", problems)
            if compiled:
                target_patterns.append((t, compiled))
    numbers = {
        key: (rule.field, tuple(re.compile(p, re.IGNORECASE) for p in rule.patterns)) for key, rule in targets.numbers.items()
    }
    groups = {"sites": targets.sites, "extent": targets.extent, "fracture": targets.fracture, "uptake": targets.uptake}
    word_sets = {g: {k: words(v) for k, v in d.items()} for g, d in groups.items()}  # type: ignore[attr-defined]
    abbreviation = _abbreviations(context.abbreviations, problems)
    if problems:
        raise KnowledgeBaseError("the extraction rules are not valid", problems)
    digest = hashlib.sha256(b"".join(raw[n] for n in sorted(raw))).hexdigest()
    return Rules(
        context=context,
        targets=targets,
        digest=digest,
        modifier_patterns=tuple(modifiers),
        target_patterns=tuple(target_patterns),
        number_patterns=numbers,
        side_patterns={side: words(p) for side, p in targets.sides.items()},
        word_sets=word_sets,
        abbreviation_pattern=abbreviation,
    )


@lru_cache(maxsize=1)
def default_rules() -> Rules:
    """The bundled rules, loaded once."""
    return load_rules()
