"""Draft drug orders recognised by the name of the medicine when their code is not one hipdx reads.

A record system may code a draft MedicationRequest with an RxNorm clinical drug (SCD/SBD,
"zoledronic acid 5 MG in 100 ML Injection") rather than the ingredient codes of
``fhir/data/orders.yaml``; without a second look the drug would pass the plan's safety rules
unchecked. No code is invented for it: the order's text (``medicationCodeableConcept.text``,
each coding's ``display``, and the same of a Medication it references) is searched for the
names hipdx already holds, as whole words, case-insensitive:

- the display of each ``drug_orders`` code of ``orders.yaml`` that names one medicine (exact
  codes; a class such as ATC M01A, matched by prefix, is not a name), its parenthesis dropped
  ("calcitonin (salmon synthetic)" -> "calcitonin");
- the knowledge base's drug options (``treatments.yaml``, kind ``drug``), whose ids are the
  medicines' names ("zoledronic_acid" -> "zoledronic acid", "pamidronate");
- each name's other form under the naming convention of acids and their salts: "-ic acid"
  and "-ate" ("zoledronic acid" and "zoledronate", "pamidronate" and "pamidronic acid").

A match gives the option with confidence "by name": the card says so, to be confirmed
(:mod:`hipdx.service.orders`). A name inside another word ("denosumabxyz") is not a match; a
drug under a code hipdx cannot read and with no name it knows gets no card.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hipdx.fhir.codes import CodeTables

_ACID = re.compile(r"^(.*\S)ic acid$")
_SALT = re.compile(r"^(.*\S)ate$")


@dataclass(frozen=True)
class NameMatch:
    option: str  # the treatment option id
    name: str  # the known name, as hipdx holds it
    text: str  # the order's text it was found in


def _forms(name: str) -> set[str]:
    """The name and its other form ("-ic acid" / "-ate")."""
    out = {name}
    if acid := _ACID.match(name):
        out.add(f"{acid.group(1)}ate")
    if salt := _SALT.match(name):
        out.add(f"{salt.group(1)}ic acid")
    return out


def _plain(text: str) -> str:
    return " ".join(re.sub(r"\([^)]*\)", " ", text).lower().split())


class DrugNames:
    """The medicine names hipdx knows, each to its treatment option; found in text as whole words."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = dict(names)
        ordered = sorted(self.names, key=len, reverse=True)  # "zoledronic acid" before a shorter name inside it
        alternatives = "|".join(r"\s+".join(map(re.escape, name.split())) for name in ordered)
        self._pattern = re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE) if ordered else None

    @classmethod
    def known(cls, tables: CodeTables, drug_options: Iterable[str]) -> DrugNames:
        """From ``orders.yaml``'s drug codes and the knowledge base's drug option ids (see the module)."""
        names: dict[str, str] = {}
        for code in tables.drug_orders.codes():
            if code.match == "exact" and code.option:
                for form in _forms(_plain(code.display)):
                    names.setdefault(form, code.option)
        for option in drug_options:
            for form in _forms(option.replace("_", " ")):
                names.setdefault(form, option)
        return cls(names)

    def find(self, texts: Iterable[str]) -> list[NameMatch]:
        """Each option named in ``texts`` (once, the first text naming it)."""
        found: dict[str, NameMatch] = {}
        for text in texts:
            for hit in self._pattern.finditer(text) if self._pattern else ():
                name = " ".join(hit.group(0).lower().split())
                option = self.names[name]
                found.setdefault(option, NameMatch(option, name, text))
        return list(found.values())


def order_texts(concepts: Iterable[Any]) -> list[str]:
    """The ``text`` and each coding's ``display`` of CodeableConcepts (what is not a string is skipped)."""
    out: list[str] = []
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        codings = concept.get("coding") if isinstance(concept.get("coding"), list) else []
        for value in [concept.get("text"), *(c.get("display") for c in codings if isinstance(c, dict))]:
            if isinstance(value, str) and value.strip():
                out.append(" ".join(value.split())[:300])
    return out
