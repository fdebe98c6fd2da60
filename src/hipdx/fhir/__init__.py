"""FHIR R4 in and out: one patient's resources -> :class:`~hipdx.case.Case`; an assessment -> FHIR.

A wing over the core: it imports the case model and the reasoning's output, never the other
way round. The code tables it reads are data (``hipdx/fhir/data/*.yaml``), each code with
its system and source (:mod:`hipdx.fhir.codes`); docs/fhir.md describes the mapping.
"""

from hipdx.fhir.codes import CodeTables, load_code_tables
from hipdx.fhir.jsonread import read_json
from hipdx.fhir.context import Assumption, FactSource, Unmapped
from hipdx.fhir.mapping import FhirMapping, map_fhir, read_fhir

__all__ = [
    "Assumption",
    "CodeTables",
    "FactSource",
    "FhirMapping",
    "Unmapped",
    "load_code_tables",
    "map_fhir",
    "read_fhir",
    "read_json",
]
