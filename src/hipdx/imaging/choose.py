"""Which T1 and which fluid-sensitive series of a study the hip analysis uses, and why.

A hip MRI examination usually holds more series than the two the analysis needs: a coronal T1
and a coronal STIR of both hips, often axial and sagittal series, a small field of view of
the painful hip, and after contrast a fat-saturated T1. Taking the largest series of each kind
would pick an axial T1 (femoral heads are searched on coronal T1) or a fat-saturated T1 (dark
marrow: no head edge, no band contrast). Each kind is therefore ranked by stated preferences,
in this order, the number of voxels deciding last:

T1
    coronal (the head search and the band profiles are coronal); no fat suppression (fatty
    marrow must be bright); before contrast (the default examination is without contrast: ACR
    Appropriateness Criteria, acute hip pain, Ward et al., J Am Coll Radiol 2014;11:114-120, and
    osteonecrosis of the hip, Ha et al., J Am Coll Radiol 2022;19:S409-S416, doi
    10.1016/j.jacr.2022.09.009; enhancement changes the marrow signal that the band and the
    edema references are read against); both hips in the field of view (side-to-side
    comparison and the anatomical pair check).
fluid-sensitive
    the T1's frame of reference (FrameOfReferenceUID: the resampling through patient coordinates
    is not registration when the patient moved); both hips in the field of view; the T1's plane
    (the STIR is resampled onto the T1 grid: across planes its thick slices blur the head); STIR before spectral fat saturation (STIR
    suppresses fat evenly across a large field of view, spectral saturation fails where the
    field is inhomogeneous, off centre, where the femoral heads are: Delfaut et al.,
    RadioGraphics 1999;19:373-382; Del Grande et al., RadioGraphics 2014;34:217-233, doi
    10.1148/rg.341135130); before contrast (gadolinium shortens T1 and STIR nulls short-T1
    tissue: enhancing edema can vanish, Delfaut et al.).

A folder holding several studies (StudyInstanceUID) is measured on the latest with a T1 only.
What was chosen, why, and each series passed over with its reason goes into the analysis's
provenance. A series used that is not coronal or fat-suppressed (T1), shows one hip only, lies
in another frame of reference or plane than the T1 or was acquired after contrast
(fluid-sensitive) is also a warning;
a post-contrast T1 without fat suppression or a fat-saturated T2/PD instead of STIR is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipdx.imaging.parameters import param
from hipdx.imaging.volume import SeriesKind, Volume

#: Tuned parameters (value, unit, basis and reason in imaging/data/parameters.yaml, "series_choice").
BILATERAL_FIELD_MM = param("series_choice.bilateral_field_mm")


@dataclass(frozen=True)
class SeriesChoice:
    """The series the analysis uses and the reasons.

    Attributes
    ----------
    t1, fluid
        The chosen volumes (None when the study has none of that kind).
    reasons
        Per kind ("t1", "fluid"): why the chosen series, and each series passed over with why.
    warnings
        A chosen series that falls short (see the module text).
    """

    t1: Volume | None
    fluid: Volume | None
    reasons: dict[str, str]
    warnings: tuple[str, ...]


def left_right_field_mm(volume: Volume) -> float:
    """Extent of the volume along the patient's left-right axis (x), in mm."""
    shape = volume.array.shape  # (k, j, i)
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[2] - 1) for j in (0, shape[1] - 1) for k in (0, shape[0] - 1)])
    x = (corners @ volume.affine.T)[:, 0]
    # Voxel centres span (n - 1) steps; add one voxel for the field of view.
    return float(x.max() - x.min() + np.abs(volume.affine[0, :3]).max())


@dataclass(frozen=True)
class _Preference:
    met: bool
    good: str  # what the series is when it meets the preference
    bad: str  # ... and when it does not
    warn: bool  # missing it in the series used is a warning


def _preferences(volume: Volume, kind: SeriesKind, t1: Volume | None) -> list[_Preference]:
    """The preferences of ``kind`` for ``volume``, in rank order (``t1``: the T1 chosen, for fluid)."""
    field = left_right_field_mm(volume)
    both = _Preference(field >= BILATERAL_FIELD_MM, "both hips in view", f"one hip in view ({field:.0f} mm left-right)", True)
    agent = volume.contrast_agent
    after = "after contrast" if agent == "contrast" else f"after contrast agent {agent}"
    if kind is SeriesKind.t1:
        return [
            _Preference(volume.plane == "coronal", "coronal", volume.plane, True),
            _Preference(volume.fat_suppression is None, "no fat suppression", volume.fat_suppression or "", True),
            # A post-contrast T1 without fat suppression still shows the heads (the real pelvis
            # series are such): preferred against, not warned about.
            _Preference(agent is None, "before contrast", after, False),
            both,
        ]
    plane = t1.plane if t1 is not None else "coronal"
    known_frames = t1 is not None and None not in (t1.frame_of_reference_uid, volume.frame_of_reference_uid)
    same_frame = not known_frames or t1.frame_of_reference_uid == volume.frame_of_reference_uid
    return [
        # Another frame of reference (the patient moved, a second session): the resampling through
        # patient coordinates is then not registration.
        _Preference(same_frame, "same frame of reference as the T1" if known_frames else "",
                    "another frame of reference than the T1 (not registered)", True),
        both,
        _Preference(volume.plane == plane, f"{volume.plane}" + (" like the T1" if t1 is not None else ""),
                    f"{volume.plane}, not {plane}", True),
        # A fat-saturated T2/PD instead of STIR is routine: preferred against, not warned about.
        _Preference(volume.fat_suppression == "STIR", "STIR", volume.fat_suppression or "fat suppression not stated", False),
        # Gadolinium shortens T1, and STIR nulls short-T1 tissue: enhancing edema can vanish.
        _Preference(agent is None, "before contrast", after, True),
    ]


def _name(volume: Volume) -> str:
    return repr(volume.description or volume.source or "unnamed series")


def _rank(candidates: list[Volume], kind: SeriesKind, t1: Volume | None) -> tuple[Volume | None, str, list[str]]:
    """The best candidate, the reason text, and the warned-about preferences it misses."""
    if not candidates:
        return None, "", []
    ranked = sorted(
        range(len(candidates)),
        # Preferences in order, then more voxels (finer or larger); among equals the first read.
        key=lambda i: (tuple(p.met for p in _preferences(candidates[i], kind, t1)), candidates[i].array.size, -i),
        reverse=True,
    )
    best = candidates[ranked[0]]
    chosen = _preferences(best, kind, t1)
    reason = f"{_name(best)} (" + ", ".join(t for t in (p.good if p.met else p.bad for p in chosen) if t) + ")"
    others = []
    for i in ranked[1:]:
        # Passed over on the preferences the chosen series meets and it misses, else on size.
        worse = [p.bad for c, p in zip(chosen, _preferences(candidates[i], kind, t1)) if c.met and not p.met]
        others.append(f"{_name(candidates[i])} ({', '.join(worse) or 'fewer voxels'})")
    if others:
        reason += "; not used: " + "; ".join(others)
    return best, reason, [p.bad for p in chosen if p.warn and not p.met]


def _study_label(volumes: list[Volume]) -> str:
    dates = sorted({v.study_date for v in volumes if v.study_date})
    when = f"of {dates[-1][:4]}-{dates[-1][4:6]}-{dates[-1][6:8]}" if dates and len(dates[-1]) == 8 else ""
    uid = next((v.study_uid for v in volumes if v.study_uid), "")
    return " ".join(p for p in ("study", when or f"...{uid[-12:]}", f"({len(volumes)} series)") if p)


def _one_study(volumes: list[Volume], warnings: list[str]) -> list[Volume]:
    """The volumes of one study: the latest (StudyDate) with a T1 when the folder holds several.

    Volumes without a study (NIfTI) go with any study."""
    unknown = [v for v in volumes if not v.study_uid]
    studies: dict[str, list[Volume]] = {}
    for v in volumes:
        if v.study_uid:
            studies.setdefault(v.study_uid, []).append(v)
    if len(studies) <= 1:
        return volumes
    groups = [members + unknown for members in studies.values()]
    with_t1 = [n for n, g in enumerate(groups) if any(v.kind is SeriesKind.t1 for v in g)]
    candidates = with_t1 or list(range(len(groups)))
    # Latest date first; among equal dates (or none) the first read.
    chosen = max(candidates, key=lambda n: (max(v.study_date or "" for v in groups[n]), -n))
    why = " (the latest with a T1)" if len(with_t1) > 1 else " (the one with a T1)" if with_t1 else ""
    others = ", ".join(_study_label(g) for n, g in enumerate(groups) if n != chosen)
    warnings.append(
        f"the folder holds {len(groups)} studies: measured on the {_study_label(groups[chosen])}{why}; "
        f"not used: {others}. Analyse each study on its own to compare them"
    )
    return groups[chosen]


def choose_series(volumes: list[Volume] | tuple[Volume, ...]) -> SeriesChoice:
    """Choose the T1 and the fluid-sensitive series for the hip analysis (see the module text).

    When the folder holds several studies (StudyInstanceUID), only the latest with a T1 is used,
    with a warning naming the others; the fluid-sensitive series of the T1's frame of reference
    are preferred.

    >>> choose_series([]).t1 is None
    True
    """
    reasons: dict[str, str] = {}
    warnings: list[str] = []
    volumes = _one_study(list(volumes), warnings)
    t1, reasons["t1"], t1_missed = _rank([v for v in volumes if v.kind is SeriesKind.t1], SeriesKind.t1, None)
    if t1 is not None and t1_missed:
        warnings.append(f"T1 series used: {_name(t1)} is {', '.join(t1_missed)}")
    fluid, reasons["fluid"], fluid_missed = _rank([v for v in volumes if v.kind is SeriesKind.fluid], SeriesKind.fluid, t1)
    if fluid is not None and fluid_missed:
        warnings.append(f"fluid-sensitive series used: {_name(fluid)} is {', '.join(fluid_missed)}")
    return SeriesChoice(t1=t1, fluid=fluid, reasons={k: v for k, v in reasons.items() if v}, warnings=tuple(warnings))
