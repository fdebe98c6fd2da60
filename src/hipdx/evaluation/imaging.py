"""The imaging studies of a vignette as imaging studies of a case.

Modalities: ``xray`` is a radiograph, ``mri``, ``ct`` and ``bone_scan`` keep their names,
``pet_ct`` is read as its CT; ``multimodal`` and ``other`` (modality not specified) keep
only the findings that radiograph, CT and MRI show alike (collapse, joint space, fracture
lines, focal lesions) and are carried as CT, which the knowledge base reads with
radiographs. ``ultrasound`` and ``nuclear_other`` are not used.

Each boolean feature becomes one finding (:data:`FEATURE_FINDINGS`); when two features
name one finding, present wins over absent, and an explicit feature wins over what a
``normal: true`` study implies (:data:`NORMAL_STUDY`). A finding that cannot be seen on the
study's modality is refused by the case model and skipped with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from hipdx.case import ImagingStudy, Modality
from hipdx.case.model import FINDING_MODALITIES
from hipdx.evaluation.draft import NARRATIVE_KEYS, Draft, presence
from hipdx.evaluation.text import days_after_onset, is_at_presentation, is_before_onset

_MODALITIES: dict[str, tuple[Modality, bool]] = {
    # vignette modality: (case modality, keep only findings alike on radiograph, CT and MRI)
    "xray": (Modality.radiograph, False),
    "mri": (Modality.mri, False),
    "ct": (Modality.ct, False),
    "bone_scan": (Modality.bone_scan, False),
    "pet_ct": (Modality.ct, False),
    "multimodal": (Modality.ct, True),
    "other": (Modality.ct, True),
}
_STRUCTURAL = frozenset({Modality.radiograph, Modality.ct, Modality.mri})

#: Boolean features that are one finding of the case (true: present, false: absent).
FEATURE_FINDINGS = {
    "osteopenia": "osteopenia",
    "sclerosis": "subchondral_sclerosis",
    "subchondral_lucency": "subchondral_lucency",
    "collapse": "collapse",
    "subchondral_fracture_or_fissure": "subchondral_fracture_line",
    "t1_low": "t1_low",
    "t2_or_stir_high": "stir_high",
    "bone_marrow_edema": "edema",
    "acetabular_edema_or_involvement": "acetabular_edema",
    "joint_effusion": "effusion",
    "synovitis": "synovitis",
    "synovial_thickening": "synovitis",
    "double_line_sign": "double_line_sign",
    "subchondral_band_or_line": "subchondral_band",
    "focal_head_lesion": "focal_lesion",
    "lytic_lesion": "focal_lesion",
    "iliac_bone_involvement": "iliac_lesion",
}
_EXTENT = {
    "femoral_head": "femoral_head",
    "femoral_head_and_neck": "head_and_neck",
    "head_neck_and_intertrochanteric": "intertrochanteric",
    "femoral_neck": "femoral_neck",
    "focal": "focal",
}
_JOINT_SPACE = {
    "preserved": "preserved",
    "narrowed": "narrowed",
    "narrowing_progressive": "narrowed",
    "destroyed": "destroyed",
}
_UPTAKE = {"diffuse_increased": "diffuse_increased", "focal_increased": "focal_increased"}

#: What a study read as normal says, per modality. Only findings a normal report rules
#: out; effusion (small effusions are read as normal) and focal lesions on radiographs
#: (a metastasis may be invisible on a radiograph) are left unknown.
NORMAL_STUDY: dict[Modality, dict[str, str]] = {
    Modality.radiograph: {
        "osteopenia": "absent",
        "subchondral_sclerosis": "absent",
        "subchondral_lucency": "absent",
        "collapse": "absent",
        "femoral_neck_fracture_line": "absent",
        "joint_space": "preserved",
    },
    Modality.mri: {
        "edema": "absent",
        "acetabular_edema": "absent",
        "double_line_sign": "absent",
        "subchondral_band": "absent",
        "focal_lesion": "absent",
        "collapse": "absent",
        "femoral_neck_fracture_line": "absent",
        "subchondral_fracture_line": "absent",
        "joint_space": "preserved",
    },
    Modality.bone_scan: {"uptake": "normal"},
}
NORMAL_STUDY[Modality.ct] = NORMAL_STUDY[Modality.radiograph]
_NORMAL_UNSPECIFIED = {"collapse": "absent", "femoral_neck_fracture_line": "absent", "joint_space": "preserved"}
_UNREMARKABLE = frozenset({"absent", "preserved", "none", "normal"})

_NECK = re.compile(r"\bneck\b|cervical|subcapital", re.I)
_EXTRA_OSSEOUS_MASS = re.compile(
    r"(?:soft[- ]tissue|intra-?articular|synovial|intramuscular|muscle)\s+(?:[\w-]+\s+){0,2}?mass", re.I
)
_INTRA_ARTICULAR = re.compile(
    r"intra-?articular|synovial|within the (?:hip )?joint|arising from the (?:[\w-]+\s+){0,2}joint", re.I
)
_CONTRAST_PATTERNS = (
    (
        "subchondral_non_enhancement",
        re.compile(
            r"^(?=.*subchondral)(?=.*(?:non-?\s?enhanc|no enhancement|lack of enhancement|unenhanc|not enhanc))", re.I
        ),
    ),
    ("synovial_or_rim_enhancement", re.compile(r"^(?!\s*(?:no|without)\b)(?=.*enhanc)(?=.*(?:synovi|\brim\b))", re.I)),
    ("homogeneous_enhancement", re.compile(r"^(?!\s*(?:no|without)\b)(?=.*(?:homogeneous|diffuse))(?=.*enhanc)", re.I)),
)


class _Vote(NamedTuple):
    """One feature's proposal for one finding of a study."""

    finding: str
    value: str
    source: str
    raw: Any
    rule: str = ""
    explicit: bool = True  # False: implied by "normal: true"


def _votes(
    features: Mapping[str, Any], text: str, modality: Modality, unspecified: bool, src: str, draft: Draft
) -> list[_Vote]:
    """The findings one study's features propose; features that propose none are skipped."""
    votes: list[_Vote] = []
    neck = bool(_NECK.search(text))
    if features.get("normal") is True:
        implied = _NORMAL_UNSPECIFIED if unspecified else NORMAL_STUDY[modality]
        rule = f"a normal {modality.value} rules it out"
        votes += [_Vote(f, v, f"{src}.normal", True, rule, explicit=False) for f, v in implied.items()]
    elif "normal" in features:
        draft.skip(f"{src}.normal", features["normal"], "the abnormal findings are read from the other features")
    for key, value in features.items():
        fsrc = f"{src}.{key}"
        state = presence(value)
        if key in ("normal", "contrast_enhancement") or key in NARRATIVE_KEYS:
            continue  # "normal" above, contrast by _contrast, narrative by nobody
        if key in ("bme_extent", "joint_space", "uptake"):
            finding, table = _ENUMERATED[key]
            if isinstance(value, str) and value in table:
                votes.append(_Vote(finding, table[value], fsrc, value))
            else:
                draft.skip(fsrc, value, f"not one of {', '.join(table)}")
        elif key not in _BOOLEAN_KEYS:
            draft.skip(fsrc, value, "the case model has no field for it")
        elif state is None:
            draft.skip(fsrc, value, "expected true or false")
        elif key in FEATURE_FINDINGS:
            votes.append(_Vote(FEATURE_FINDINGS[key], state, fsrc, value))
        elif key == "mass" and value and _INTRA_ARTICULAR.search(text):
            votes.append(_Vote("intra_articular_mass", state, fsrc, value, "the text places the mass in the joint"))
        elif key == "mass" and value and _EXTRA_OSSEOUS_MASS.search(text):
            draft.skip(fsrc, value, "the findings text places the mass in the soft tissues, not in bone or the joint")
        elif key == "soft_tissue_fluid" and modality in (Modality.mri, Modality.ct):
            votes.append(_Vote("soft_tissue_collection", state, fsrc, value, "a periarticular fluid collection"))
        elif key == "soft_tissue_fluid":
            draft.skip(fsrc, value, "a soft-tissue collection is read from MRI or CT only")
        elif key == "progressive_destruction" and value:
            votes.append(_Vote("joint_space", "destroyed", fsrc, value, "progressive destruction of the joint"))
        elif key == "progressive_destruction":
            draft.skip(fsrc, value, "no destruction says nothing about the joint space")
        elif key == "mass":
            votes.append(_Vote("focal_lesion", state, fsrc, value, "a mass of bone"))
        elif key == "fracture_line" and not value:
            votes.append(_Vote("femoral_neck_fracture_line", "absent", fsrc, value, "no fracture reported"))
        elif key in ("fracture_line", "displaced_fracture") and not neck:
            draft.skip(fsrc, value, "the findings text does not place the fracture at the femoral neck")
        elif key == "fracture_line":
            votes.append(_Vote("femoral_neck_fracture_line", "present", fsrc, value, "the text names the femoral neck"))
        elif key == "displaced_fracture":
            votes.append(_Vote("fracture_displaced", state, fsrc, value, "a femoral neck fracture"))
            if value:
                rule = "a displaced neck fracture has a fracture line"
                votes.append(_Vote("femoral_neck_fracture_line", "present", fsrc, value, rule))
        elif key == "osteonecrosis_signs" and not value and modality is Modality.mri and not unspecified:
            votes.append(_Vote("double_line_sign", "absent", fsrc, value, "no MRI sign of osteonecrosis"))
        else:  # osteonecrosis_signs otherwise
            draft.skip(fsrc, value, "a summary judgement; the case model records signs, not conclusions")
    return votes


_ENUMERATED = {
    "bme_extent": ("edema_extent", _EXTENT),
    "joint_space": ("joint_space", _JOINT_SPACE),
    "uptake": ("uptake", _UPTAKE),
}
_BOOLEAN_KEYS = frozenset(FEATURE_FINDINGS) | {
    "mass",
    "fracture_line",
    "displaced_fracture",
    "osteonecrosis_signs",
    "soft_tissue_fluid",
    "progressive_destruction",
}


def _study_findings(votes: list[_Vote], unspecified: bool, study: Draft) -> None:
    """Offer one value per finding: explicit beats implied by "normal", present beats absent."""
    by_finding: dict[str, list[_Vote]] = {}
    for vote in votes:
        by_finding.setdefault(vote.finding, []).append(vote)
    for finding, group in by_finding.items():
        group.sort(key=lambda v: (not v.explicit, v.value != "present"))
        best = group[0]
        if unspecified and FINDING_MODALITIES.get(finding) != _STRUCTURAL:
            reason = f"modality not specified: {finding} is kept only when radiograph, CT and MRI all show it"
            for vote in group:
                study.skip(vote.source, vote.raw, reason)
            continue
        if not study.offer(best.source, best.raw, ("findings", finding), best.value, best.rule):
            continue
        for other in group[1:]:
            if other.source == best.source:
                continue
            if other.value == best.value:
                study.note_used(other.source, other.raw, ("findings", finding), other.value, f"as {best.source}")
            else:
                reason = f"{finding} is taken from {best.source} (explicit beats 'normal', present beats absent)"
                study.skip(other.source, other.raw, reason)


def _contrast(features: Mapping[str, Any], src: str, study: Draft) -> None:
    text = features.get("contrast_enhancement")
    if text is None:
        return
    source = f"{src}.contrast_enhancement"
    if not isinstance(text, str) or study.data["modality"] != Modality.mri.value:
        study.skip(source, text, "contrast patterns are read only from an MRI, as text")
        return
    study.offer(source, text, ("contrast",), True, "an enhancement pattern is described: gadolinium was given")
    for pattern, regex in _CONTRAST_PATTERNS:
        if regex.search(text):
            study.offer(source, text, ("findings", "contrast_pattern"), pattern)
            return
    study.skip(source, text, "the pattern is not clearly homogeneous, subchondral non-enhancing, or synovial/rim")


def _unremarkable(findings: Mapping[str, Any]) -> bool:
    return set(findings.values()) <= _UNREMARKABLE


def map_imaging(studies: Any, case: Draft) -> None:
    """Add the vignette's imaging studies to the case draft, study by study, in record order.

    The record order is taken as the order in time. A study whose findings are all normal
    or absent after an earlier abnormal study of the same modality documents recovery (a
    follow-up MRI after TOH has resolved) and is left out: the case is the patient at the
    diagnostic work-up, and the knowledge base reads the latest study of each finding.
    """
    if not isinstance(studies, list):
        case.skip("imaging", studies, "expected a list of studies")
        return
    kept: list[tuple[Modality, dict[str, Any]]] = []
    for i, study in enumerate(studies):
        src = f"imaging[{i}]"
        if not isinstance(study, Mapping):
            case.skip(src, study, "expected an object")
            continue
        raw_modality = study.get("modality")
        raw_timing, raw_features, raw_text = study.get("timing"), study.get("features"), study.get("findings")
        timing: str = raw_timing if isinstance(raw_timing, str) else ""
        features: Mapping[str, Any] = raw_features if isinstance(raw_features, Mapping) else {}
        text: str = raw_text if isinstance(raw_text, str) else ""
        if not isinstance(raw_modality, str) or raw_modality not in _MODALITIES:
            case.skip(f"{src}.modality", raw_modality, "a modality the case model does not hold; the study is not used")
            case.seen.add(src)
            continue
        if timing and is_before_onset(timing):
            case.skip(f"{src}.timing", timing, "a study from before the pain began is not this episode; not used")
            case.seen.add(src)
            continue
        modality, unspecified = _MODALITIES[raw_modality]
        n = len(case.data.get("imaging", []))
        draft = Draft(ImagingStudy, {"modality": modality.value}, shown_as=f"imaging.{n}.")
        _study_findings(_votes(features, text, modality, unspecified, f"{src}.features", draft), unspecified, draft)
        _contrast(features, f"{src}.features", draft)
        findings = draft.data.get("findings", {})
        label = f"{src} ({raw_modality}{', ' + timing if timing else ''})"
        earlier = [f for m, f in kept if unspecified or m is modality]
        if not findings:
            reason = "no feature maps to a finding; the study is not used"
        elif _unremarkable(findings) and not all(_unremarkable(f) for f in earlier):
            reason = (
                f"every finding normal or absent after an earlier abnormal study of "
                f"{'any modality' if unspecified else 'the same modality'}: "
                "it documents recovery, not the presentation, and is not used"
            )
            draft = Draft(ImagingStudy, {}, shown_as="")  # its findings are neither used nor skipped one by one
        else:
            refused = case.try_put(("imaging", n), draft.data)
            reason = f"the case model refuses the study: {refused}" if refused else ""
        case.absorb(draft)
        case.seen.add(f"{src}.modality")
        if reason:
            case.seen.add(src)
            case.skipped.append(f"{label}: {reason}")
            continue
        kept.append((modality, findings))
        if raw_modality in _MODALITY_RULE:
            case.note_used(
                f"{src}.modality", raw_modality, ("imaging", n, "modality"), "ct", _MODALITY_RULE[raw_modality]
            )
        _timing(timing, f"{src}.timing", n, case)


_MODALITY_RULE = {
    "pet_ct": "its CT component",
    "multimodal": "modality not specified; CT stands for any structural study",
    "other": "modality not specified; CT stands for any structural study",
}


def _timing(timing: str, source: str, n: int, case: Draft) -> None:
    if not timing:
        return
    days, reason = days_after_onset(timing)
    if days is not None:
        case.offer(source, timing, ("imaging", n, "days_since_onset"), days, "time since onset as printed")
        return
    onset_days = case.data.get("onset", {}).get("days_since_onset")
    if is_at_presentation(timing) and onset_days is not None:
        case.offer(
            source, timing, ("imaging", n, "days_since_onset"), onset_days, "at presentation: the symptom duration"
        )
        return
    if is_at_presentation(timing):
        reason = "at presentation, but the symptom duration is not known"
    case.skip(source, timing, reason)
