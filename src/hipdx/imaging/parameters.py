"""The tuned parameters of the hip MRI analysis, as data: ``imaging/data/parameters.yaml``.

Every number the analysis was tuned with (a threshold, a search range, a reporting limit) lives
in that file with its value, unit, basis (measured, derived, estimate or literature) and the
reason or source behind it, like a likelihood of the knowledge base. The file is read once, on
import, through the knowledge base's strict YAML reader (a key given twice is refused) and
checked against :class:`ParametersFile` (unknown or missing fields, a text where a number
belongs: refused, every problem named). Each module reads its values with :func:`param`;
:func:`provenance_parameters` gives all of them, with the file's digest, for the provenance of
every MRI result.

Why beside the imaging code and not in ``knowledge/data``: the knowledge base is the clinical
content, loaded for every assessment and versioned by its own digest; these are the image
analysis's method parameters, needed without a knowledge base (``hipdx mri analyze``) and
changed with the imaging code. ``fhir/data`` holds the FHIR code maps the same way.

Array indices, axis numbers and physical constants stay in the code. The subchondral band's
cut-off and its indeterminate margin are not method parameters but clinical thresholds: their one
home is the knowledge base's ``staging.yaml`` (``band_cutoff_mm``, ``band_indeterminate_margin_mm``),
read there by the staging and the differential's encoder, and here, as :data:`BAND_CUTOFF_MM` and
:data:`BAND_INDETERMINATE_MM`, by the imaging wing.

Example
-------
>>> param("band.min_band_length_mm")
4.0
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from hipdx.errors import KnowledgeBaseError, Problem
from hipdx.knowledge.base import load_knowledge_base
from hipdx.knowledge.files import load_yaml

__all__ = [
    "BAND_CUTOFF_MM",
    "BAND_INDETERMINATE_MM",
    "ImagingParameters",
    "Parameter",
    "ParametersFile",
    "load_parameters",
    "param",
    "provenance_parameters",
]

#: The file, relative to the package.
PARAMETERS_FILE = "imaging/data/parameters.yaml"

Number = StrictInt | StrictFloat


class Parameter(BaseModel):
    """One tuned parameter: its value, unit, basis and why it is what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: Number | list[Number] = Field(description="A number, or a list of numbers (a range, a set of angles)")
    unit: str = Field(min_length=1, description='"mm", "mL", "deg", ...; "1" for a ratio or share')
    basis: Literal["measured", "derived", "estimate", "literature"]
    reason: str = Field(min_length=10, description="The measurement, computation, source or reasoning behind the value")


class ParametersFile(BaseModel):
    """The schema of ``parameters.yaml``: groups (one per part of the analysis) of named parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    parameters: dict[str, dict[str, Parameter]]


@dataclass(frozen=True)
class ImagingParameters:
    """The parameters as read, with the SHA-256 of the file's bytes."""

    groups: dict[str, dict[str, Parameter]]
    sha256: str
    source: str = PARAMETERS_FILE

    def value(self, key: str) -> float | int | tuple[float | int, ...]:
        """The value of ``"group.name"``: a number, or a tuple for a list.

        Raises
        ------
        KeyError
            No such parameter (a typo in the code: the file is the one home of the value).
        """
        group, _, name = key.partition(".")
        try:
            entry = self.groups[group][name]
        except KeyError:
            raise KeyError(f"no imaging parameter {key!r} in {self.source}") from None
        return tuple(entry.value) if isinstance(entry.value, list) else entry.value

    def flat(self) -> dict[str, float | int | list[float | int]]:
        """Every parameter as ``{"group.name": value}``, in file order."""
        return {f"{group}.{name}": entry.value for group, entries in self.groups.items() for name, entry in entries.items()}


def load_parameters(path: str | Path | None = None) -> ImagingParameters:
    """Read and check a parameters file (by default the bundled one).

    Raises
    ------
    KnowledgeBaseError
        The file cannot be read, is not YAML, repeats a key, or does not match the schema
        (each problem named by its place in the file).
    """
    if path is None:
        path = Path(str(resources.files("hipdx") / PARAMETERS_FILE))
        name = PARAMETERS_FILE
    else:
        path = Path(path)
        name = str(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise KnowledgeBaseError(f"cannot read the imaging parameters {path}: {exc.strerror}") from None
    raw = load_yaml(text, name)
    try:
        checked = ParametersFile.model_validate(raw)
    except ValidationError as exc:
        raise KnowledgeBaseError(
            f"{name} does not match the imaging parameters' schema",
            [Problem(f"{name}: " + ".".join(str(p) for p in err["loc"]), str(err["msg"])) for err in exc.errors(include_url=False)],
        ) from None
    return ImagingParameters(checked.parameters, hashlib.sha256(text).hexdigest(), name)


#: The bundled parameters, read once on import (immutable data, not configuration).
PARAMETERS = load_parameters()


#: The subchondral band's thickness cut-off (mm), from the bundled knowledge base's ``staging.yaml``.
BAND_CUTOFF_MM: float = load_knowledge_base().treatment.threshold("band_cutoff_mm").value
#: Within this distance (mm) of the cut-off a thickness is not decided (``staging.yaml``).
BAND_INDETERMINATE_MM: float = load_knowledge_base().treatment.threshold("band_indeterminate_margin_mm").value


def param(key: str) -> float | int | tuple[float | int, ...]:
    """The value of the bundled parameter ``"group.name"`` (a tuple for a list)."""
    return PARAMETERS.value(key)


def provenance_parameters() -> dict[str, object]:
    """Every bundled parameter and the file's digest, for an MRI result's provenance."""
    return {
        "parameters_file": f"{PARAMETERS.source} sha256:{PARAMETERS.sha256}",
        **PARAMETERS.flat(),
    }
