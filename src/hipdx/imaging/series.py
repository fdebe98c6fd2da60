"""What a study read gives: its series (volume, files, why of its kind) and what was skipped."""

from __future__ import annotations

from dataclasses import dataclass


from hipdx.errors import Problem
from hipdx.imaging.volume import SeriesKind, Volume


@dataclass(frozen=True)
class Series:
    """One series as read: its volume, the files of its slices and why it got its kind.

    ``files`` and ``sop_instance_uids`` follow the slice order of ``volume.array``; a slice
    filled in for a missing one has ``""`` in both.
    """

    volume: Volume
    files: tuple[str, ...]
    sop_instance_uids: tuple[str, ...]
    kind_reason: str


@dataclass(frozen=True)
class Study:
    """Everything read from one folder: the series, plus what was skipped and why.

    ``warnings`` are about the study (skipped files); each volume carries its own series
    warnings (gaps, duplicates); ``problems`` name each file that could not be used.
    """

    series: tuple[Series, ...]
    warnings: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    source: str = ""

    @property
    def volumes(self) -> tuple[Volume, ...]:
        return tuple(s.volume for s in self.series)

    @property
    def all_warnings(self) -> tuple[str, ...]:
        """Study warnings, series warnings (prefixed with the series) and problems, as text."""
        out = list(self.warnings)
        for s in self.series:
            out += [f"{s.volume.description}: {w}" for w in s.volume.warnings]
        out += [str(p) for p in self.problems]
        return tuple(out)


def volumes_of(study: Study, kind: SeriesKind | str) -> list[Volume]:
    """The volumes of one kind ("t1", "fluid", "unknown"), in reading order."""
    wanted = SeriesKind(kind)
    return [v for v in study.volumes if v.kind is wanted]
