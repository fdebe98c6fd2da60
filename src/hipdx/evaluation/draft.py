"""Record-keeping while a vignette becomes a case: every fact ends up used or skipped.

A :class:`Draft` holds the case (or one imaging study) being built as plain data. Each fact
is *offered*: the model validates the draft with it, and either takes it (the fact is
listed as used, with the field it became) or refuses it (the fact is listed as skipped,
with the model's own reason). So a value the model rejects never stops the mapping.
"""

from __future__ import annotations

import math

import copy
import json
from typing import Any

from pydantic import BaseModel, ValidationError

from hipdx.case.parse import problems_from_validation
from hipdx.jsonio import excerpt, printable

#: Keys of a vignette that hold narrative text (paraphrases), not facts.
NARRATIVE_KEYS = frozenset(
    {"text", "findings", "band_description", "bme_pattern", "subchondral_cortex", "delivery_mode", "gravidity_parity"}
)


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def raw_text(value: Any) -> str:
    """A vignette value as JSON, shortened for the report, control characters escaped."""
    return excerpt(value, 120)


def put_value(data: dict[str, Any], target: tuple[str | int, ...], value: Any) -> None:
    """Set ``data[target[0]][target[1]]...`` to ``value``, creating objects on the way.

    An integer index equal to a list's length appends.
    """
    node: Any = data
    for i, part in enumerate(target[:-1]):
        if isinstance(node, list):
            node = node[part]  # type: ignore[index]
            continue
        node = node.setdefault(part, [] if isinstance(target[i + 1], int) else {})
    last = target[-1]
    if isinstance(node, list):
        if last == len(node):
            node.append(value)
        else:
            node[last] = value  # type: ignore[index]
    else:
        node[last] = value


class Draft:
    """A case (or one imaging study) under construction, with the record of what was used.

    ``data`` is the model's input so far (always valid), ``used`` and ``skipped`` the lines
    of the mapping report, ``seen`` the vignette paths already accounted for.
    """

    def __init__(self, model: type[BaseModel], data: dict[str, Any], shown_as: str = "") -> None:
        self.model = model
        self.data = data
        self.shown_as = shown_as
        self.used: list[str] = []
        self.skipped: list[str] = []
        self.seen: set[str] = set()

    def try_put(self, target: tuple[str | int, ...], value: Any) -> str | None:
        """Put ``value`` at ``target`` if the model accepts the result; else return the model's reason."""
        trial = copy.deepcopy(self.data)
        put_value(trial, target, value)
        try:
            self.model.model_validate(trial)
        except ValidationError as exc:
            return "; ".join(str(p) for p in problems_from_validation(exc))
        self.data = trial
        return None

    def offer(self, source: str, raw: Any, target: tuple[str | int, ...], value: Any, rule: str = "") -> bool:
        """Put one fact into the draft; record it as used, or as skipped with the model's reason."""
        refused = self.try_put(target, value)
        if refused is not None:
            self.skip(source, raw, f"the case model refuses it: {refused}")
            return False
        self.note_used(source, raw, target, value, rule)
        return True

    def note_used(self, source: str, raw: Any, target: tuple[str | int, ...], value: Any, rule: str = "") -> None:
        """Record that ``source`` gave ``value`` at ``target`` (already in the draft)."""
        where = ".".join(str(p) for p in target)
        self.seen.add(source)
        line = f"{printable(source)} = {raw_text(raw)} -> {self.shown_as}{where} = {printable(_show(value))}"
        self.used.append(f"{line} ({rule})" if rule else line)

    def skip(self, source: str, raw: Any, reason: str) -> None:
        self.seen.add(source)
        self.skipped.append(f"{printable(source)} = {raw_text(raw)}: {printable(reason)}")

    def has(self, target: tuple[str, ...]) -> bool:
        node: Any = self.data
        for part in target:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def absorb(self, other: Draft) -> None:
        self.used += other.used
        self.skipped += other.skipped
        self.seen |= other.seen


def presence(value: Any) -> str | None:
    """``true`` is present, ``false`` absent; anything else is not a finding (None)."""
    return {True: "present", False: "absent"}.get(value) if isinstance(value, bool) else None


def number(value: Any) -> float | None:
    """A finite JSON number as float; None for anything else (booleans, NaN, infinities)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return result if math.isfinite(result) else None
