"""The one base of the core's output models, and the provenance every output carries.

An output (an assessment, a staging, a plan, a course report, a score) is a value: a frozen
pydantic model, never changed after it is made, so what is rendered is what was computed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """A frozen output model: every output of hipdx derives from it."""

    model_config = ConfigDict(frozen=True)


class OutputProvenance(Frozen):
    """What every output records of its making: the program's version, then each output's own
    (its knowledge, inputs used and missing): the assessment's, the staging's, the plan's."""

    hipdx_version: str
