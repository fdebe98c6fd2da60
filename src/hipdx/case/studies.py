"""Imaging studies of a case: their findings, and the modalities each finding can be seen on."""

from __future__ import annotations

from pydantic import Field, model_validator

from hipdx.case.timeline import MAX_DAYS_SINCE_ONSET
from hipdx.case.values import (
    ContrastPattern,
    Date,
    EdemaExtent,
    Flag,
    FractureSide,
    JointSpace,
    Modality,
    Number,
    Presence,
    StrictModel,
    Uptake,
)

_U = Presence.unknown


_XR_CT = frozenset({Modality.radiograph, Modality.ct})
_MRI = frozenset({Modality.mri})
_STRUCTURAL = frozenset({Modality.radiograph, Modality.ct, Modality.mri})
_SCAN = frozenset({Modality.bone_scan})

#: The modalities on which each imaging finding can be seen; a finding reported on
#: another modality is an input error.
FINDING_MODALITIES: dict[str, frozenset[Modality]] = {
    "osteopenia": _XR_CT,
    "subchondral_sclerosis": _XR_CT,
    "subchondral_lucency": _XR_CT,
    "crescent_sign": _XR_CT,
    "collapse": _STRUCTURAL,
    "joint_space": _STRUCTURAL,
    "femoral_neck_fracture_line": _STRUCTURAL,
    "femoral_neck_fracture_side": _STRUCTURAL,
    "fracture_displaced": _STRUCTURAL,
    "femoral_neck_fracture_width_percent": _STRUCTURAL,
    "necrotic_extent_percent": _STRUCTURAL,
    "subchondral_fracture_line": _STRUCTURAL,
    "focal_lesion": _STRUCTURAL,
    "intra_articular_mass": _STRUCTURAL,
    "iliac_lesion": _STRUCTURAL,
    "soft_tissue_collection": frozenset({Modality.mri, Modality.ct}),
    "edema": _MRI,
    "t1_low": _MRI,
    "stir_high": _MRI,
    "edema_extent": _MRI,
    "acetabular_edema": _MRI,
    "effusion": _MRI,
    "synovitis": _MRI,
    "double_line_sign": _MRI,
    "subchondral_band": _MRI,
    "subchondral_band_thickness_mm": _MRI,
    "subchondral_band_length_mm": _MRI,
    "contrast_pattern": _MRI,
    "chemical_shift_signal_drop_percent": _MRI,
    "uptake": _SCAN,
}


class ImagingFindings(StrictModel):
    """Typed findings of one imaging study. Leave out what the report does not say."""

    # radiograph / CT
    osteopenia: Presence = _U
    subchondral_sclerosis: Presence = _U
    subchondral_lucency: Presence = _U
    crescent_sign: Presence = _U
    # any structural modality
    collapse: Presence = Field(default=_U, description="Flattening or depression of the femoral head")
    collapse_depth_mm: Number | None = Field(default=None, ge=0, le=30)
    joint_space: JointSpace = JointSpace.unknown
    femoral_neck_fracture_line: Presence = _U
    femoral_neck_fracture_side: FractureSide = FractureSide.unknown
    fracture_displaced: Presence = _U
    femoral_neck_fracture_width_percent: Number | None = Field(
        default=None, ge=0, le=100, description="Length of a neck fracture line as a percentage of the neck width"
    )
    necrotic_extent_percent: Number | None = Field(
        default=None, ge=0, le=100, description="Share of the femoral head occupied by a necrotic segment"
    )
    subchondral_fracture_line: Presence = _U
    focal_lesion: Presence = Field(default=_U, description="Lytic, sclerotic or marrow-replacing focal lesion")
    intra_articular_mass: Presence = Field(default=_U, description="Nodular or villous mass within the joint")
    iliac_lesion: Presence = Field(
        default=_U, description="Lesion or marrow change of the ilium beyond the acetabular roof (the pelvic bone);"
        " not sacroiliitis: changes at the sacroiliac joint are not this finding"
    )
    soft_tissue_collection: Presence = Field(
        default=_U, description="Fluid collection or abscess in the soft tissues around the hip"
    )
    # MRI
    edema: Presence = Field(default=_U, description="Bone marrow edema of the proximal femur")
    t1_low: Presence = _U
    stir_high: Presence = Field(default=_U, description="High signal on STIR or fat-saturated T2/PD")
    edema_extent: EdemaExtent = EdemaExtent.unknown
    acetabular_edema: Presence = _U
    effusion: Presence = _U
    synovitis: Presence = _U
    double_line_sign: Presence = _U
    subchondral_band: Presence = Field(default=_U, description="Subchondral low-signal band or line on T1/T2")
    subchondral_band_thickness_mm: Number | None = Field(default=None, gt=0, le=30)
    subchondral_band_length_mm: Number | None = Field(default=None, gt=0, le=80)
    contrast_pattern: ContrastPattern = ContrastPattern.unknown
    chemical_shift_signal_drop_percent: Number | None = Field(
        default=None, ge=-50, le=100, description="Signal drop of the marrow lesion from in-phase to opposed-phase images (chemical-shift MRI), %"
    )
    # bone scintigraphy
    uptake: Uptake = Uptake.unknown

    @model_validator(mode="after")
    def _coherent(self) -> ImagingFindings:
        measured = self.subchondral_band_thickness_mm is not None or self.subchondral_band_length_mm is not None
        if measured and self.subchondral_band is Presence.absent:
            raise ValueError("subchondral_band: measurements given but subchondral_band is 'absent'")
        if self.edema is Presence.absent and self.edema_extent not in (EdemaExtent.unknown, EdemaExtent.none):
            raise ValueError(f"edema_extent: edema is 'absent' but edema_extent is {self.edema_extent.value!r}")
        if self.collapse_depth_mm is not None and self.collapse is Presence.absent:
            raise ValueError("collapse_depth_mm: given but collapse is 'absent'")
        if self.femoral_neck_fracture_line is Presence.absent:
            # the grade of a line the same study reports absent (a displaced fracture has a line)
            graded = {
                "fracture_displaced": self.fracture_displaced is Presence.present,
                "femoral_neck_fracture_side": self.femoral_neck_fracture_side is not FractureSide.unknown,
                "femoral_neck_fracture_width_percent": self.femoral_neck_fracture_width_percent is not None,
            }
            given = [name for name, is_given in graded.items() if is_given]
            if given:
                raise ValueError(f"{given[0]}: given but femoral_neck_fracture_line is 'absent' in the same study")
        return self

    def reported(self) -> list[str]:
        """Names of the findings this study reports (not left at unknown)."""
        out = []
        for name in FINDING_MODALITIES:
            value = getattr(self, name)
            if value is None or getattr(value, "value", None) == "unknown":
                continue
            out.append(name)
        return out


class ImagingStudy(StrictModel):
    """One dated imaging study of the hip."""

    modality: Modality
    contrast: Flag = Field(default=False, description="MRI with intravenous gadolinium")
    date: Date | None = None
    days_since_onset: Number | None = Field(default=None, ge=0, le=MAX_DAYS_SINCE_ONSET)
    findings: ImagingFindings = ImagingFindings()

    @model_validator(mode="after")
    def _findings_fit_modality(self) -> ImagingStudy:
        if self.date is not None and self.days_since_onset is not None:
            raise ValueError("days_since_onset: give either date or days_since_onset, not both")
        if self.contrast and self.modality is not Modality.mri:
            raise ValueError(f"contrast: contrast is only modelled for MRI, not {self.modality.value}")
        wrong = [n for n in self.findings.reported() if self.modality not in FINDING_MODALITIES[n]]
        if wrong:
            raise ValueError(
                f"findings.{wrong[0]}: {', '.join(wrong)} cannot be reported on a {self.modality.value} study "
                f"(seen on: {', '.join(sorted(m.value for m in FINDING_MODALITIES[wrong[0]]))})"
            )
        if self.findings.contrast_pattern is not ContrastPattern.unknown and not self.contrast:
            raise ValueError("findings.contrast_pattern: given for an MRI without contrast; set contrast: true")
        return self
