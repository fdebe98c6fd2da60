"""Writes fresh-4.json: report sentences written BEFORE the fourth round of rule changes (session
20), in wording not used in sentences.json, fresh.json, fresh-2.json or fresh-3.json. It probes
the four forms the third round left unread, each in several wordings with negations, doubt and
the other side: an articular step-off or cortical depression of the femoral head (collapse, with
its depth; a step-off of an acetabular fracture is not collapse), the necrotic share of the head
("involves approximately 30% of the weight-bearing portion": necrotic_extent_percent; a bound
such as "less than 15%" is not a value and goes to confirm), the chemical-shift signal drop (in-
and opposed-/out-of-phase: chemical_shift_signal_drop_percent when a percentage is stated; a drop
described without one, "marked signal drop-out", "no appreciable signal drop", is listed to
confirm: the case model holds the percentage only), and a subchondral band described as "linear
subchondral T1 hypointensity" or "curvilinear low T1 signal line beneath the articular surface".
Also: femoral neck fracture side, width and displacement, edema extents (focal, neck,
intertrochanteric), contrast patterns, collections, masses, lesions, joint space, radiograph and
CT signs, bone-scan patterns, lists, headings, history ("status post", "known", "previous"),
comparisons ("has resolved"), indications with "query", and the other hip.

The writer (session 20's extraction helper) had read docs/fhir.md's section on the extraction, the
case model (hipdx.case.studies) and the rows of the other sets, not the rule files (targets.yaml,
context.yaml), and did not run the extractor on these sentences before they were committed.

Same policy and row format as write_sentences.py: id | modality | side asked | text | expected
findings | expected to_confirm (finding names). Negated -> "absent"; uncertain, historical,
hypothetical (a "query" in an indication included), conflicting, or no side named anywhere ->
to_confirm; an explicit current statement answers a history or an indication; a diagnosis (AVN,
osteonecrosis, PVNS, OA, abscess named as a diagnosis) is not a finding; "the X hip is
normal/unremarkable" implies the findings of normal_implies for that hip (MRI: no edema;
radiograph/CT: no osteopenia, collapse or neck fracture line; bone scan: normal uptake); a
generic "fracture" is both fracture lines; "T1 hypointense / STIR hyperintense" alone is t1_low and
stir_high (as fresh-3 h-044); a finding the modality does not carry is not expected. The labels are
checked against the case model (every row's findings must make a valid ImagingStudy).
"""
import json
from pathlib import Path

P, A = "present", "absent"
FX = {"femoral_neck_fracture_line": A, "subchondral_fracture_line": A}
FXC = ["femoral_neck_fracture_line", "subchondral_fracture_line"]
CS = "chemical_shift_signal_drop_percent"
NE = "necrotic_extent_percent"
ROWS = [
# --- MRI ---------------------------------------------------------------------------------
("k-001", "mri", "right", "Indication: right hip pain in a runner, query femoral neck stress fracture.", {}, ["femoral_neck_fracture_line"]),
("k-002", "mri", "right", "There is oedema along the medial (compression) cortex of the right femoral neck with a short low-signal fracture line, undisplaced.", {"edema": P, "edema_extent": "femoral_neck", "femoral_neck_fracture_line": P, "femoral_neck_fracture_side": "compression", "fracture_displaced": A}, []),
("k-003", "mri", "left", "A 6 mm fracture line is seen at the lateral (tension side) cortex of the L femoral neck.", {"femoral_neck_fracture_line": P, "femoral_neck_fracture_side": "tension"}, []),
("k-004", "mri", "right", "There is a 2 mm step-off of the anterosuperior articular surface of the right femoral head.", {"collapse": P, "collapse_depth_mm": 2.0}, []),
("k-005", "mri", "left", "Cortical depression of the weight-bearing left femoral head, measuring approximately 1 mm.", {"collapse": P, "collapse_depth_mm": 1.0}, []),
("k-006", "mri", "left", "No articular step-off or cortical depression of the left femoral head.", {"collapse": A}, []),
("k-007", "mri", "right", "Possible minimal step-off at the articular surface of the R femoral head.", {}, ["collapse"]),
("k-008", "mri", "right", "The necrotic lesion involves approximately 30% of the weight-bearing portion of the right femoral head.", {NE: 30.0}, []),
("k-009", "mri", "left", "Necrotic area occupying about 50% of the L femoral head, with early flattening.", {NE: 50.0, "collapse": P}, []),
("k-010", "mri", "left", "Left femoral head osteonecrosis, necrotic segment less than 15% of the head, no collapse.", {"collapse": A}, [NE]),
("k-011", "mri", "right", "Extent of necrosis ~40% of the right femoral head (ARCO IIC).", {NE: 40.0}, []),
("k-012", "mri", "left", "In- and opposed-phase imaging shows a 35% signal drop in the left femoral head.", {CS: 35.0}, []),
("k-013", "mri", "right", "Signal loss of approximately 60% on out-of-phase images in the R femoral neck, consistent with benign marrow.", {CS: 60.0}, []),
("k-014", "mri", "left", "No appreciable signal drop on out-of-phase images in the left femoral neck.", {}, [CS]),
("k-015", "mri", "right", "Chemical shift ratio 0.6 (40% signal drop) in the right femoral head marrow abnormality.", {CS: 40.0}, []),
("k-016", "mri", "left", "Marked signal drop-out on opposed-phase images, in keeping with preserved marrow fat (left hip).", {}, [CS]),
("k-017", "mri", "left", "Linear subchondral T1 hypointensity in the left femoral head, parallel to the articular surface.", {"subchondral_band": P, "t1_low": P}, []),
("k-018", "mri", "right", "Curvilinear low T1 signal line beneath the articular surface of the right femoral head, 10 mm long.", {"subchondral_band": P, "subchondral_band_length_mm": 10.0, "t1_low": P}, []),
("k-019", "mri", "left", "No subchondral linear T1 low signal in the left femoral head.", {"subchondral_band": A}, []),
("k-020", "mri", "right", "Subchondral T1-hypointense line in the R femoral head, possibly representing a fracture.", {"subchondral_band": P, "t1_low": P}, ["subchondral_fracture_line"]),
("k-021", "mri", "left", "Low-signal subchondral line on T1 and T2 in the weight-bearing L femoral head, 2 mm thick.", {"subchondral_band": P, "subchondral_band_thickness_mm": 2.0, "t1_low": P}, []),
("k-022", "mri", "right", "Right femoral head: geographic subchondral area with a double-line sign; surrounding marrow oedema extending into the neck.", {"double_line_sign": P, "edema": P, "edema_extent": "head_and_neck"}, []),
("k-023", "mri", "left", "No bone marrow oedema pattern in either femoral head or neck.", {"edema": A}, []),
("k-024", "mri", "right", "Right hip: unremarkable marrow signal. Left hip: extensive BME of the femoral head and neck.", {"edema": A}, []),
("k-025", "mri", "left", "Right hip: unremarkable marrow signal. Left hip: extensive BME of the femoral head and neck.", {"edema": P, "edema_extent": "head_and_neck"}, []),
("k-026", "mri", "left", "Moderate joint effusion on the left with synovial thickening and enhancement.", {"effusion": P, "synovitis": P, "contrast_pattern": "synovial_or_rim_enhancement"}, []),
("k-027", "mri", "right", "Both femoral heads enhance homogeneously after gadolinium.", {"contrast_pattern": "homogeneous_enhancement"}, []),
("k-028", "mri", "left", "Non-enhancing subchondral segment of the left femoral head on post-gadolinium images.", {"contrast_pattern": "subchondral_non_enhancement"}, []),
("k-029", "mri", "right", "Small effusion right hip. No synovitis.", {"effusion": P, "synovitis": A}, []),
("k-030", "mri", "left", "Physiological amount of fluid in both hip joints.", {"effusion": A}, []),
("k-031", "mri", "right", "Fluid collection in the right gluteus medius, in keeping with an abscess.", {"soft_tissue_collection": P}, []),
("k-032", "mri", "left", "No drainable collection about the left hip.", {"soft_tissue_collection": A}, []),
("k-033", "mri", "left", "Acetabular subchondral marrow oedema on the left, no femoral marrow oedema.", {"acetabular_edema": P, "edema": A}, []),
("k-034", "mri", "right", "Mild oedema of the right acetabular roof; femoral head and neck normal.", {"acetabular_edema": P, "edema": A}, []),
("k-035", "mri", "left", "Intra-articular nodular low-signal mass with blooming on gradient echo, left hip, suggestive of PVNS.", {"intra_articular_mass": P}, []),
("k-036", "mri", "right", "T2 hypointense lesion in the right femoral neck with marrow replacement on T1.", {"focal_lesion": P}, []),
("k-037", "mri", "left", "No suspicious marrow-replacing lesion in the visualised pelvis or proximal femora.", {"focal_lesion": A}, []),
("k-038", "mri", "right", "History of right femoral neck stress fracture 2 years ago; no current fracture line, no marrow oedema.", {"femoral_neck_fracture_line": A, "edema": A}, []),
("k-039", "mri", "left", "Status post left hip core decompression. Residual marrow oedema of the femoral head.", {"edema": P, "edema_extent": "femoral_head"}, []),
("k-040", "mri", "right", "Known right femoral head AVN. Today there is 3 mm collapse of the anterolateral head.", {"collapse": P, "collapse_depth_mm": 3.0}, []),
("k-041", "mri", "left", "Bilateral femoral head AVN, larger on the left, with collapse on the left only.", {"collapse": P}, []),
("k-042", "mri", "left", "Right: no BME. Left: BME of femoral neck.", {"edema": P, "edema_extent": "femoral_neck"}, []),
("k-043", "mri", "right", "Oedema-like marrow signal confined to the anterosuperior subchondral region of the right femoral head.", {"edema": P, "edema_extent": "focal"}, []),
("k-044", "mri", "left", "Patchy marrow oedema of the left femoral head, neck and intertrochanteric region.", {"edema": P, "edema_extent": "intertrochanteric"}, []),
("k-045", "mri", "right", "No oedema of the proximal right femur. Minimal trochanteric bursitis.", {"edema": A}, []),
("k-046", "mri", "left", "Equivocal faint marrow oedema in the left femoral head.", {}, ["edema"]),
("k-047", "mri", "right", "Subtle marrow oedema in the right femoral neck cannot be excluded.", {}, ["edema"]),
("k-048", "mri", "right", "Marrow oedema of the right femoral head, likely reactive to the subchondral fracture.", {"edema": P, "edema_extent": "femoral_head", "subchondral_fracture_line": P}, []),
("k-049", "mri", "left", "No subchondral fracture or collapse is identified on the left.", {"subchondral_fracture_line": A, "collapse": A}, []),
("k-050", "mri", "right", "Subchondral insufficiency fracture of the right femoral head with surrounding oedema; no collapse.", {"subchondral_fracture_line": P, "edema": P, "edema_extent": "femoral_head", "collapse": A}, []),
("k-051", "mri", "left", "Collapse of the L femoral head measuring 4 mm, with a crescentic subchondral fluid cleft.", {"collapse": P, "collapse_depth_mm": 4.0}, []),
("k-052", "mri", "right", "Stable appearance of the known right femoral head flattening (2 mm).", {"collapse": P, "collapse_depth_mm": 2.0}, []),
("k-053", "mri", "right", "The right femoral head is spherical, without collapse. Joint space preserved.", {"collapse": A, "joint_space": "preserved"}, []),
("k-054", "mri", "left", "Moderate superior joint space narrowing of the left hip with marginal osteophytes.", {"joint_space": "narrowed"}, []),
("k-055", "mri", "left", "Left hip: normal appearance of the femoral head and neck on all sequences.", {"edema": A}, []),
("k-056", "mri", "right", "MRI right hip to exclude occult fracture after a fall: no fracture line, no marrow oedema.", {**FX, "edema": A}, []),
("k-057", "mri", "left", "Impression: 1. Left femoral neck stress fracture, compression side, undisplaced. 2. No AVN.", {"femoral_neck_fracture_line": P, "femoral_neck_fracture_side": "compression", "fracture_displaced": A}, []),
("k-058", "mri", "left", "No evidence of fracture, osteonecrosis or marrow oedema in the left hip.", {**FX, "edema": A}, []),
("k-059", "mri", "right", "Possible tiny subchondral fracture in the right femoral head versus a prominent vascular channel.", {}, ["subchondral_fracture_line"]),
("k-060", "mri", "left", "Findings raise the possibility of early osteonecrosis on the left; no double line sign or subchondral band is seen.", {"double_line_sign": A, "subchondral_band": A}, []),
("k-061", "mri", "right", "Right femoral neck: fracture line involving approximately 60% of the neck width, tension side.", {"femoral_neck_fracture_line": P, "femoral_neck_fracture_width_percent": 60.0, "femoral_neck_fracture_side": "tension"}, []),
("k-062", "mri", "left", "Displaced subcapital fracture of the left femoral neck.", {"femoral_neck_fracture_line": P, "fracture_displaced": P}, []),
("k-063", "mri", "right", "Left hip effusion with synovitis; right hip normal.", {"edema": A}, []),
("k-064", "mri", "left", "Trace fluid left hip, within physiological limits.", {"effusion": A}, []),
("k-065", "mri", "left", "The small left hip effusion has resolved since the previous examination.", {"effusion": A}, []),
("k-066", "mri", "left", "Diffuse low T1 and high STIR signal in the left femoral head and neck, sparing the subchondral bone.", {"t1_low": P, "stir_high": P}, []),
("k-067", "mri", "right", "No fracture, effusion or marrow oedema in the right hip.", {**FX, "effusion": A, "edema": A}, []),
("k-068", "mri", "left", "Impression: transient osteoporosis pattern in the left hip: diffuse BME of the femoral head and neck, no subchondral fracture, no collapse, small effusion.", {"edema": P, "edema_extent": "head_and_neck", "subchondral_fracture_line": A, "collapse": A, "effusion": P}, []),
("k-069", "mri", "left", "Femoral head oedema, R>L.", {"edema": P, "edema_extent": "femoral_head"}, []),
# --- radiographs -------------------------------------------------------------------------
("kx-001", "radiograph", "right", "AP pelvis: subchondral crescentic lucency in the right femoral head (crescent sign), no collapse.", {"crescent_sign": P, "subchondral_lucency": P, "collapse": A}, []),
("kx-002", "radiograph", "left", "Left femoral head: 2 mm step in the articular contour with loss of sphericity.", {"collapse": P, "collapse_depth_mm": 2.0}, []),
("kx-003", "radiograph", "right", "No step-off of the femoral head articular surface on either side.", {"collapse": A}, []),
("kx-004", "radiograph", "left", "Mixed subchondral sclerosis and lucency in the left femoral head without flattening.", {"subchondral_sclerosis": P, "subchondral_lucency": P, "collapse": A}, []),
("kx-005", "radiograph", "right", "Marked demineralisation of the right femoral head and neck.", {"osteopenia": P}, []),
("kx-006", "radiograph", "left", "Left hip: bone density normal. No fracture.", {"osteopenia": A, **FX}, []),
("kx-007", "radiograph", "left", "Possible undisplaced fracture of the left femoral neck; CT recommended.", {}, ["femoral_neck_fracture_line"]),
("kx-008", "radiograph", "right", "Right hip: severe joint space narrowing, subchondral sclerosis and cysts.", {"joint_space": "narrowed", "subchondral_sclerosis": P}, []),
("kx-009", "radiograph", "left", "Joint spaces are maintained bilaterally.", {"joint_space": "preserved"}, []),
("kx-010", "radiograph", "right", "Healed right femoral neck fracture from 2019, with mild shortening.", {}, ["femoral_neck_fracture_line"]),
("kx-011", "radiograph", "left", "Lytic lesion with a narrow zone of transition in the left femoral neck.", {"focal_lesion": P}, []),
("kx-012", "radiograph", "left", "Left hip radiograph: no abnormality detected.", {"osteopenia": A, "collapse": A, "femoral_neck_fracture_line": A}, []),
("kx-013", "radiograph", "right", "Right femoral head: flattening of the superolateral surface. Left hip unremarkable.", {"collapse": P}, []),
# --- CT ----------------------------------------------------------------------------------
("kc-001", "ct", "right", "CT: articular surface depression of 3 mm at the superolateral right femoral head, with a subchondral fracture.", {"collapse": P, "collapse_depth_mm": 3.0, "subchondral_fracture_line": P}, []),
("kc-002", "ct", "left", "Acetabular rim fracture on the left with a 3 mm articular step-off.", {}, []),
("kc-003", "ct", "left", "A necrotic segment involving approximately 25% of the left femoral head, no subchondral fracture.", {NE: 25.0, "subchondral_fracture_line": A}, []),
("kc-004", "ct", "right", "No cortical step-off or depression of the right femoral head.", {"collapse": A}, []),
("kc-005", "ct", "right", "Undisplaced fracture through the base of the right femoral neck.", {"femoral_neck_fracture_line": P, "fracture_displaced": A}, []),
("kc-006", "ct", "left", "No lytic or sclerotic lesion in either proximal femur.", {"focal_lesion": A}, []),
("kc-007", "ct", "left", "Gas-containing fluid collection anterior to the left hip joint.", {"soft_tissue_collection": P}, []),
("kc-008", "ct", "right", "Diffuse osteopenia of the pelvis and proximal femora.", {"osteopenia": P}, []),
("kc-009", "ct", "left", "Questionable subtle subchondral lucency in the left femoral head.", {}, ["subchondral_lucency"]),
# --- bone scan ---------------------------------------------------------------------------
("kn-001", "bone_scan", "left", "Three-phase bone scan: increased blood pool and delayed uptake throughout the left femoral head and neck.", {"uptake": "diffuse_increased"}, []),
("kn-002", "bone_scan", "right", "Photopenic defect in the superior right femoral head.", {"uptake": "photopenic"}, []),
("kn-003", "bone_scan", "right", "Linear focal uptake along the medial right femoral neck.", {"uptake": "focal_increased"}, []),
("kn-004", "bone_scan", "left", "Symmetric physiological tracer uptake in both hips.", {"uptake": "normal"}, []),
("kn-005", "bone_scan", "right", "No abnormal tracer accumulation is seen in the right hip.", {"uptake": "normal"}, []),
("kn-006", "bone_scan", "left", "Possible faint focal uptake in the left femoral neck.", {}, ["uptake"]),
("kn-007", "bone_scan", "left", "Right hip: intense diffuse uptake. Left hip: unremarkable.", {"uptake": "normal"}, []),
("kn-008", "bone_scan", "right", "Bilateral diffuse increased femoral head uptake, R>L.", {"uptake": "diffuse_increased"}, []),
]


def _check_labels(rows: list[dict]) -> None:
    """Every row's expected findings must make a valid study of its modality (the case model)."""
    from hipdx.case.studies import ImagingStudy

    for r in rows:
        f = r["findings"]
        contrast = "contrast_pattern" in f
        ImagingStudy(modality=r["modality"], contrast=contrast, findings=f)


def main() -> None:
    rows = [{"id": i, "modality": m, "side": s, "text": t, "findings": f, "to_confirm": sorted(c)} for i, m, s, t, f, c in ROWS]
    assert len({r["id"] for r in rows}) == len(rows)
    _check_labels(rows)
    out = Path(__file__).with_name("fresh-4.json")
    out.write_text(json.dumps({"version": 1, "sentences": rows}, indent=1) + "\n")
    print(f"{len(rows)} sentences -> {out}")


if __name__ == "__main__":
    main()
