"""Writes fresh-2.json: report sentences written BEFORE the second round of rule changes (session
18), in the wording radiologists use in hip MRI, radiograph, CT and bone-scan reports:
abbreviations (BME, SIF, AVN, ON, TOH, FS, PD), laterality variants (R/L, Rt./Lt., "-sided",
bilateral, "right greater than left", L>R), negation and uncertainty forms ("no evidence of",
"without", "not excluded", "equivocal", "query", "?", "possible"), history ("prior", "known",
"post"), lists, headings, measurements and British spelling (oedema). The writer had read the
policy rows of write_sentences.py and write_fresh.py but not the rule files (targets.yaml,
context.yaml). Scored once before the rule changes and once after; never tuned on (its misses
are not looked at while the rules change).

Same policy and row format as write_sentences.py: id | modality | side asked | text | expected
findings | expected to_confirm (finding names). Negated -> "absent"; uncertain, historical,
hypothetical, conflicting, or no side named anywhere -> to_confirm; a diagnosis (AVN, ON,
osteonecrosis, TOH) is not a finding; "the X hip is normal/unremarkable" implies the findings of
normal_implies for that hip (MRI: no edema; radiograph/CT: no osteopenia, collapse or neck
fracture line; bone scan: normal uptake); a finding the modality does not carry is not expected.
"""
import json
from pathlib import Path

P, A = "present", "absent"
FX = {"femoral_neck_fracture_line": A, "subchondral_fracture_line": A}
ROWS = [
# --- MRI ---------------------------------------------------------------------------------
("g-001", "mri", "right", "R hip: extensive BME of the femoral head extending into the neck.", {"edema": P, "edema_extent": "head_and_neck"}, []),
("g-002", "mri", "left", "Rt. hip normal. Lt. femoral head and neck marrow oedema.", {"edema": P, "edema_extent": "head_and_neck"}, []),
("g-003", "mri", "right", "Rt. hip normal. Lt. femoral head and neck marrow oedema.", {"edema": A}, []),
("g-004", "mri", "left", "Bilateral femoral head BME, right greater than left.", {"edema": P, "edema_extent": "femoral_head"}, []),
("g-005", "mri", "right", "No evidence of AVN, SIF or stress fracture on the right.", dict(FX), []),
("g-006", "mri", "left", "? early AVN left femoral head. No double line sign.", {"double_line_sign": A}, []),
("g-007", "mri", "right", "Query subchondral fracture line in the anterosuperior right femoral head.", {}, ["subchondral_fracture_line"]),
("g-008", "mri", "left", "Equivocal subtle marrow oedema in the left femoral neck.", {}, ["edema"]),
("g-009", "mri", "right", "Small R hip effusion. No synovitis.", {"effusion": P, "synovitis": A}, []),
("g-010", "mri", "left", "Moderate left hip joint effusion with synovitis.", {"effusion": P, "synovitis": P}, []),
("g-011", "mri", "right", "Right hip: subchondral fracture line with extensive bone marrow oedema of the femoral head and neck; no collapse.", {"subchondral_fracture_line": P, "edema": P, "edema_extent": "head_and_neck", "collapse": A}, []),
("g-012", "mri", "left", "Left femoral head: geographic area of low T1 signal with a double-line sign on T2, consistent with ON. No collapse.", {"t1_low": P, "double_line_sign": P, "collapse": A}, []),
("g-013", "mri", "right", "Known right hip ON, post core decompression. No marrow oedema. No collapse.", {"edema": A, "collapse": A}, []),
("g-014", "mri", "left", "Prior left femoral neck stress fracture, healed.", {}, ["femoral_neck_fracture_line"]),
("g-015", "mri", "right", "Status post right hip arthroscopy. No fluid collection around the right hip.", {"soft_tissue_collection": A}, []),
("g-016", "mri", "left", "Subchondral insufficiency fracture left femoral head with extensive marrow oedema of the head and neck.", {"subchondral_fracture_line": P, "edema": P, "edema_extent": "head_and_neck"}, []),
("g-017", "mri", "right", "SIF R femoral head.", {"subchondral_fracture_line": P}, []),
("g-018", "mri", "left", "Low signal band in the subchondral left femoral head measuring 3 mm thick.", {"subchondral_band": P, "subchondral_band_thickness_mm": 3.0}, []),
("g-019", "mri", "right", "The right femoral head is of normal signal on all sequences.", {"edema": A}, []),
("g-020", "mri", "left", "Marrow oedema not excluded in the left femoral head.", {}, ["edema"]),
("g-021", "mri", "right", "Possible small joint effusion, R.", {}, ["effusion"]),
("g-022", "mri", "left", "L hip: no effusion, no synovitis, no BME.", {"effusion": A, "synovitis": A, "edema": A}, []),
("g-023", "mri", "right", "Diffuse STIR hyperintensity and T1 hypointensity throughout the right femoral head and neck, in keeping with bone marrow oedema.", {"stir_high": P, "t1_low": P, "edema": P, "edema_extent": "head_and_neck"}, []),
("g-024", "mri", "left", "There is a small focus of marrow oedema in the anterior left femoral head.", {"edema": P, "edema_extent": "focal"}, []),
("g-025", "mri", "right", "Oedema extends from the right femoral head through the neck to the intertrochanteric region.", {"edema": P, "edema_extent": "intertrochanteric"}, []),
("g-026", "mri", "left", "Left acetabular roof BME.", {"acetabular_edema": P}, []),
("g-027", "mri", "right", "No acetabular marrow oedema on the right.", {"acetabular_edema": A}, []),
("g-028", "mri", "left", "Double line sign present in the left femoral head.", {"double_line_sign": P}, []),
("g-029", "mri", "right", "No subchondral fracture line, crescent or collapse on the right.", {"subchondral_fracture_line": A, "collapse": A}, []),
("g-030", "mri", "left", "Left femoral head collapse of approximately 2 mm.", {"collapse": P, "collapse_depth_mm": 2.0}, []),
("g-031", "mri", "right", "Stress reaction of the right femoral neck without a discrete fracture line.", {"femoral_neck_fracture_line": A}, []),
("g-032", "mri", "left", "Incomplete compression-side stress fracture of the left femoral neck, undisplaced.", {"femoral_neck_fracture_line": P, "femoral_neck_fracture_side": "compression", "fracture_displaced": A}, []),
("g-033", "mri", "right", "Tension-sided fracture line of the right femoral neck.", {"femoral_neck_fracture_line": P, "femoral_neck_fracture_side": "tension"}, []),
("g-034", "mri", "left", "Impression: 1. Left hip BME pattern, likely TOH. 2. No SIF. 3. Small effusion.", {"edema": P, "subchondral_fracture_line": A, "effusion": P}, []),
("g-035", "mri", "right", "No significant right hip joint effusion.", {"effusion": A}, []),
("g-036", "mri", "left", "Trace physiological fluid in the left hip joint.", {"effusion": A}, []),
("g-037", "mri", "right", "Right hip synovial thickening and enhancement, consistent with synovitis.", {"synovitis": P, "contrast_pattern": "synovial_or_rim_enhancement"}, []),
("g-038", "mri", "left", "The left femoral head enhances homogeneously following gadolinium.", {"contrast_pattern": "homogeneous_enhancement"}, []),
("g-039", "mri", "right", "Left hip unremarkable. Right: moderate joint effusion and mild synovitis.", {"effusion": P, "synovitis": P}, []),
("g-040", "mri", "left", "Left hip unremarkable. Right: moderate joint effusion and mild synovitis.", {"edema": A}, []),
("g-041", "mri", "right", "Bilateral hip effusions, L>R.", {"effusion": P}, []),
("g-042", "mri", "right", "Intermediate signal lesion in the right femoral neck, ? enchondroma.", {"focal_lesion": P}, []),
("g-043", "mri", "left", "No worrying marrow lesion in the left proximal femur.", {"focal_lesion": A}, []),
("g-044", "mri", "right", "Right femoral head BME has decreased since the prior study.", {"edema": P, "edema_extent": "femoral_head"}, []),
("g-045", "mri", "right", "FINDINGS: Right hip: Marrow: diffuse oedema of the femoral head and neck. Joint: small effusion. Cartilage: preserved.", {"edema": P, "edema_extent": "head_and_neck", "effusion": P}, []),
("g-046", "mri", "left", "Both hips: no BME, no effusion.", {"edema": A, "effusion": A}, []),
("g-047", "mri", "right", "No bone marrow oedema or fracture involving either hip.", {"edema": A, **FX}, []),
("g-048", "mri", "left", "Left femoral head: hyperintense on fat-saturated PD, hypointense on T1.", {"stir_high": P, "t1_low": P}, []),
("g-049", "mri", "right", "Right hip: no SIF, no AVN.", {"subchondral_fracture_line": A}, []),
("g-050", "mri", "left", "Appearances suggest transient osteoporosis of the left hip with marrow oedema of the femoral head; SIF not excluded.", {"edema": P, "edema_extent": "femoral_head"}, ["subchondral_fracture_line"]),
("g-051", "mri", "right", "Right-sided subchondral low signal band with double line sign; collapse not seen.", {"subchondral_band": P, "double_line_sign": P, "collapse": A}, []),
("g-052", "mri", "left", "Query early collapse of the left femoral head.", {}, ["collapse"]),
("g-053", "mri", "right", "R femoral head BME without subchondral fracture or collapse.", {"edema": P, "edema_extent": "femoral_head", "subchondral_fracture_line": A, "collapse": A}, []),
("g-054", "mri", "left", "Left hip joint effusion has resolved.", {"effusion": A}, []),
("g-055", "mri", "right", "Right hip effusion, small-moderate.", {"effusion": P}, []),
# --- radiographs -------------------------------------------------------------------------
("gx-001", "radiograph", "right", "AP pelvis and lateral R hip: no fracture. Joint spaces maintained.", {**FX, "joint_space": "preserved"}, []),
("gx-002", "radiograph", "left", "Lt. hip: regional osteopenia of the femoral head and neck.", {"osteopenia": P}, []),
("gx-003", "radiograph", "right", "Subtle subchondral lucency in the right femoral head, ? crescent sign.", {"subchondral_lucency": P}, ["crescent_sign"]),
("gx-004", "radiograph", "left", "Crescent sign left femoral head with early flattening.", {"crescent_sign": P, "collapse": P}, []),
("gx-005", "radiograph", "right", "Rt hip: no collapse of the femoral head. Preserved joint space.", {"collapse": A, "joint_space": "preserved"}, []),
("gx-006", "radiograph", "left", "Mild osteopenia of the left hip not excluded.", {}, ["osteopenia"]),
("gx-007", "radiograph", "right", "Bone density appears reduced in the right proximal femur relative to the left.", {"osteopenia": P}, []),
("gx-008", "radiograph", "left", "Left hip: sclerosis and flattening of the superior femoral head, in keeping with AVN.", {"subchondral_sclerosis": P, "collapse": P}, []),
("gx-009", "radiograph", "right", "Moderate right hip joint space loss, superolateral.", {"joint_space": "narrowed"}, []),
("gx-010", "radiograph", "left", "No radiographic abnormality of the left hip.", {"osteopenia": A, "collapse": A, "femoral_neck_fracture_line": A}, []),
("gx-011", "radiograph", "right", "Possible fracture of the right femoral neck; MRI recommended.", {}, ["femoral_neck_fracture_line"]),
("gx-012", "radiograph", "left", "Bilateral hip osteopenia, R > L.", {"osteopenia": P}, []),
("gx-013", "radiograph", "right", "Sclerotic lesion in the right intertrochanteric region, likely a bone island.", {"focal_lesion": P}, []),
# --- CT ----------------------------------------------------------------------------------
("gc-001", "ct", "right", "R femoral head: subchondral fracture with 3 mm depression of the articular surface.", {"subchondral_fracture_line": P, "collapse": P, "collapse_depth_mm": 3.0}, []),
("gc-002", "ct", "left", "Left femoral head sphericity maintained; no subchondral fracture.", {"collapse": A, "subchondral_fracture_line": A}, []),
("gc-003", "ct", "right", "Mottled sclerosis and subchondral lucencies in the right femoral head.", {"subchondral_sclerosis": P, "subchondral_lucency": P}, []),
("gc-004", "ct", "left", "No CT evidence of a left femoral neck fracture.", {"femoral_neck_fracture_line": A}, []),
("gc-005", "ct", "right", "Right hip: crescent sign without collapse; joint space preserved.", {"crescent_sign": P, "collapse": A, "joint_space": "preserved"}, []),
("gc-006", "ct", "left", "Diffuse osteopenia of the left femoral head and neck. No fracture.", {"osteopenia": P, **FX}, []),
("gc-007", "ct", "right", "Small rim-enhancing collection adjacent to the right hip.", {"soft_tissue_collection": P}, []),
("gc-008", "ct", "left", "Lucent lesion with sclerotic margin in the left femoral neck.", {"focal_lesion": P}, []),
# --- bone scan ---------------------------------------------------------------------------
("gn-001", "bone_scan", "right", "Three-phase bone scan: intense diffuse uptake in the R femoral head and neck on delayed images.", {"uptake": "diffuse_increased"}, []),
("gn-002", "bone_scan", "left", "Lt hip: normal tracer distribution.", {"uptake": "normal"}, []),
("gn-003", "bone_scan", "right", "Photopenic area in the right femoral head with a rim of increased uptake.", {}, ["uptake"]),
("gn-004", "bone_scan", "left", "Focal increased activity at the left femoral neck.", {"uptake": "focal_increased"}, []),
("gn-005", "bone_scan", "right", "No abnormal increased tracer uptake about the right hip.", {"uptake": "normal"}, []),
("gn-006", "bone_scan", "left", "Bilateral hip uptake is symmetrical and unremarkable.", {"uptake": "normal"}, []),
("gn-007", "bone_scan", "right", "Equivocal mild increased uptake in the right femoral head.", {}, ["uptake"]),
("gn-008", "bone_scan", "left", "Diffusely increased activity in the left femoral head, neck and intertrochanteric region on all three phases.", {"uptake": "diffuse_increased"}, []),
]


def main() -> None:
    rows = [{"id": i, "modality": m, "side": s, "text": t, "findings": f, "to_confirm": sorted(c)} for i, m, s, t, f, c in ROWS]
    assert len({r["id"] for r in rows}) == len(rows)
    out = Path(__file__).with_name("fresh-2.json")
    out.write_text(json.dumps({"version": 1, "sentences": rows}, indent=1) + "\n")
    print(f"{len(rows)} sentences -> {out}")


if __name__ == "__main__":
    main()
