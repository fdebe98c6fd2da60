"""Writes fresh-3.json: report sentences written BEFORE the third round of rule changes (session
19), in wording not used in sentences.json, fresh.json or fresh-2.json: clinical indications with
"r/o" and "?" ("MRI to r/o occult fracture."), "cannot exclude", "no (MR/CT) evidence of" with
lists of diagnoses and findings, "either side", "Bilat", "contralateral", comparisons with a prior
study ("interval development", "has progressed", "no longer present", "largely resolved"),
numbered impressions, abbreviations (AVN, ONFH, SIF, BME, TOH, OA, DDx), slashes ("head/neck"),
and measurements (band length and thickness, collapse and step-off depth, necrotic extent, neck
fracture width, chemical-shift signal drop). The writer had read the policy rows of the other
sets and docs/fhir.md, not the rule files (targets.yaml, context.yaml). Scored once before the
third round changed any rule (scores-fresh-3-before-round-3.txt: the judged figure); never tuned
on for recall.

Same policy and row format as write_sentences.py: id | modality | side asked | text | expected
findings | expected to_confirm (finding names). Negated -> "absent"; uncertain, historical,
hypothetical (an "r/o" or "?" in an indication included), conflicting, or no side named anywhere
-> to_confirm; an explicit statement answers the question of an indication; a diagnosis (AVN,
ONFH, SIF as a diagnosis of a fracture is a fracture line, TOH, OA) is not a finding; "the X hip
is normal/unremarkable", "the contralateral hip is normal" imply the findings of normal_implies
for that hip; a generic "fracture" is both fracture lines; a finding the modality does not carry
is not expected.
"""
import json
from pathlib import Path

P, A = "present", "absent"
FX = {"femoral_neck_fracture_line": A, "subchondral_fracture_line": A}
FXC = ["femoral_neck_fracture_line", "subchondral_fracture_line"]
ROWS = [
# --- MRI ---------------------------------------------------------------------------------
("h-001", "mri", "right", "Clinical indication: R hip pain, r/o AVN. Findings: no BME. No subchondral fracture.", {"edema": A, "subchondral_fracture_line": A}, []),
("h-002", "mri", "left", "Indication: Lt hip pain x 6/52, ?SIF vs early ONFH.", {}, ["subchondral_fracture_line"]),
("h-003", "mri", "right", "MRI to r/o occult fracture.", {}, FXC),
("h-004", "mri", "left", "Large area of BME in the L femoral head and neck, extending to the intertrochanteric line, with no discrete fracture line or subchondral collapse.", {"edema": P, "edema_extent": "intertrochanteric", **FX, "collapse": A}, []),
("h-005", "mri", "right", "Marrow oedema R femoral head (STIR hyperintense, T1 hypointense), no crescent, no double line.", {"edema": P, "edema_extent": "femoral_head", "stir_high": P, "t1_low": P, "double_line_sign": A}, []),
("h-006", "mri", "left", "TOH L hip. BME head/neck. No SIF.", {"edema": P, "edema_extent": "head_and_neck", "subchondral_fracture_line": A}, []),
("h-007", "mri", "right", "Impression: Right femoral head ONFH, ARCO II: subchondral low signal band 5 mm thick, double-line sign, no collapse.", {"subchondral_band": P, "subchondral_band_thickness_mm": 5.0, "double_line_sign": P, "collapse": A}, []),
("h-008", "mri", "left", "No evidence of AVN, SIF or stress fracture of either hip.", dict(FX), []),
("h-009", "mri", "right", "No MR evidence of osteonecrosis, subchondral insufficiency fracture or femoral neck stress fracture on the right.", dict(FX), []),
("h-010", "mri", "left", "Moderate L hip effusion, no synovial thickening.", {"effusion": P, "synovitis": A}, []),
("h-011", "mri", "right", "Bilateral hip joint effusions, small on the right and moderate on the left.", {"effusion": P}, []),
("h-012", "mri", "left", "Contralateral (left) hip: no marrow oedema, no effusion.", {"edema": A, "effusion": A}, []),
("h-013", "mri", "left", "Right hip: diffuse marrow oedema of femoral head and neck. Contralateral hip unremarkable.", {"edema": A}, []),
("h-014", "mri", "right", "Right hip: diffuse marrow oedema of femoral head and neck. Contralateral hip unremarkable.", {"edema": P, "edema_extent": "head_and_neck"}, []),
("h-015", "mri", "right", "Compared to the prior MRI of 03/2026, the R femoral head BME has progressed to involve the neck.", {"edema": P, "edema_extent": "head_and_neck"}, []),
("h-016", "mri", "left", "Interval development of a subchondral fracture in the left femoral head since the previous study.", {"subchondral_fracture_line": P}, []),
("h-017", "mri", "right", "Previously seen right hip effusion is no longer present.", {"effusion": A}, []),
("h-018", "mri", "left", "Marrow oedema in the L femoral head has largely resolved, with a small residual focus anterosuperiorly.", {"edema": P, "edema_extent": "focal"}, []),
("h-019", "mri", "right", "Subchondral linear T1 low signal in the R femoral head measuring 14 mm in length, compatible with SIF.", {"subchondral_band": P, "subchondral_band_length_mm": 14.0, "t1_low": P, "subchondral_fracture_line": P}, []),
("h-020", "mri", "left", "Cannot exclude a tiny subchondral fracture line in the L femoral head; follow-up recommended.", {}, ["subchondral_fracture_line"]),
("h-021", "mri", "right", "Right femoral head BME could reflect early AVN; no double line sign at present.", {"edema": P, "edema_extent": "femoral_head", "double_line_sign": A}, []),
("h-022", "mri", "left", "Small left hip effusion, probably reactive.", {"effusion": P}, []),
("h-023", "mri", "right", "No significant BME either side.", {"edema": A}, []),
("h-024", "mri", "left", "Bone marrow signal is normal in both proximal femora.", {"edema": A}, []),
("h-025", "mri", "right", "Rt acetabular BME adjacent to the femoral head BME.", {"acetabular_edema": P, "edema": P, "edema_extent": "femoral_head"}, []),
("h-026", "mri", "left", "No periarticular fluid collection or abscess about the L hip.", {"soft_tissue_collection": A}, []),
("h-027", "mri", "right", "Post-contrast: absent enhancement of the subchondral R femoral head segment.", {"contrast_pattern": "subchondral_non_enhancement"}, []),
("h-028", "mri", "left", "Necrotic segment involving approximately 30% of the left femoral head, without collapse.", {"necrotic_extent_percent": 30.0, "collapse": A}, []),
("h-029", "mri", "right", "Undisplaced fracture line at the inferomedial R femoral neck (compression side), extending approx. 40% of the neck width.", {"femoral_neck_fracture_line": P, "femoral_neck_fracture_side": "compression", "fracture_displaced": A, "femoral_neck_fracture_width_percent": 40.0}, []),
("h-030", "mri", "left", "Complete displaced L femoral neck fracture.", {"femoral_neck_fracture_line": P, "fracture_displaced": P}, []),
("h-031", "mri", "right", "Femoral neck stress reaction on the right, without a fracture line; r/o progression on follow-up.", {"femoral_neck_fracture_line": A}, []),
("h-032", "mri", "left", "L hip MRI: subtle BME of the femoral neck, r/o early stress fracture.", {"edema": P, "edema_extent": "femoral_neck"}, ["femoral_neck_fracture_line"]),
("h-033", "mri", "right", "Double-line sign R femoral head, ? early collapse.", {"double_line_sign": P}, ["collapse"]),
("h-034", "mri", "left", "Femoral head collapse on the left measures 3 mm.", {"collapse": P, "collapse_depth_mm": 3.0}, []),
("h-035", "mri", "right", "Bilateral ONFH: R femoral head with 2 mm collapse; L femoral head without collapse.", {"collapse": P, "collapse_depth_mm": 2.0}, []),
("h-036", "mri", "left", "Bilateral ONFH: R femoral head with 2 mm collapse; L femoral head without collapse.", {"collapse": A}, []),
("h-037", "mri", "right", "Chemical shift imaging: 40% signal drop on opposed-phase in the R femoral head.", {"chemical_shift_signal_drop_percent": 40.0}, []),
("h-038", "mri", "left", "No intra-articular loose body or mass in the left hip.", {"intra_articular_mass": A}, []),
("h-039", "mri", "right", "Impression: 1. R hip BME pattern. DDx TOH vs early AVN. 2. Small joint effusion. 3. No fracture.", {"edema": P, "effusion": P, **FX}, []),
("h-040", "mri", "left", "1. Extensive L femoral head/neck BME. 2. SIF not identified. 3. Trace effusion, physiologic.", {"edema": P, "edema_extent": "head_and_neck", "subchondral_fracture_line": A, "effusion": A}, []),
("h-041", "mri", "right", "Hip effusion, R>L.", {"effusion": P}, []),
("h-042", "mri", "left", "Mild synovitis of the left hip, cannot exclude inflammatory arthropathy.", {"synovitis": P}, []),
("h-043", "mri", "right", "Periarticular soft tissue oedema around the right hip; marrow normal.", {"edema": A}, []),
("h-044", "mri", "left", "Left: T1 hypointense and STIR hyperintense throughout the femoral head extending into the neck.", {"t1_low": P, "stir_high": P}, []),
("h-045", "mri", "right", "r/o SIF right hip. No subchondral fracture line identified.", {"subchondral_fracture_line": A}, []),
("h-046", "mri", "left", "Indication: L hip pain. ? AVN. Findings: L femoral head normal in signal and contour.", {"edema": A, "collapse": A}, []),
("h-047", "mri", "right", "The right hip demonstrates no abnormality.", {"edema": A}, []),
("h-048", "mri", "left", "Both hips: normal appearances.", {"edema": A}, []),
("h-049", "mri", "right", "No focal marrow lesion to suggest metastasis in the R proximal femur.", {"focal_lesion": A}, []),
("h-050", "mri", "left", "Possible early synovitis L hip.", {}, ["synovitis"]),
("h-051", "mri", "right", "MRI R hip: equivocal tiny effusion.", {}, ["effusion"]),
("h-052", "mri", "right", "Bilat femoral heads: no BME.", {"edema": A}, []),
("h-053", "mri", "left", "L femoral head: no double line sign, no band, no collapse; BME present.", {"double_line_sign": A, "subchondral_band": A, "collapse": A, "edema": P, "edema_extent": "femoral_head"}, []),
("h-054", "mri", "right", "There is a 12 mm long, 3 mm thick subchondral low-signal band in the right femoral head.", {"subchondral_band": P, "subchondral_band_length_mm": 12.0, "subchondral_band_thickness_mm": 3.0}, []),
("h-055", "mri", "left", "No right or left hip effusion.", {"effusion": A}, []),
("h-056", "mri", "right", "Oedema of the R femoral neck and intertrochanteric region.", {"edema": P, "edema_extent": "intertrochanteric"}, []),
# --- radiographs -------------------------------------------------------------------------
("hx-001", "radiograph", "left", "AP pelvis and frog-leg lateral L hip: no fracture or dislocation. Joint space preserved.", {**FX, "joint_space": "preserved"}, []),
("hx-002", "radiograph", "right", "Rt femoral head: subchondral lucency with flattening of the weight-bearing surface (collapse approx 3 mm).", {"subchondral_lucency": P, "collapse": P, "collapse_depth_mm": 3.0}, []),
("hx-003", "radiograph", "left", "Disuse osteopenia L proximal femur.", {"osteopenia": P}, []),
("hx-004", "radiograph", "right", "No periarticular osteopenia on the right.", {"osteopenia": A}, []),
("hx-005", "radiograph", "left", "Cannot exclude subtle subchondral collapse of the left femoral head; CT suggested.", {}, ["collapse"]),
("hx-006", "radiograph", "right", "Right hip: r/o occult fracture - MRI advised.", {}, FXC),
("hx-007", "radiograph", "left", "Comparison: radiograph 2 months ago. Interval development of subchondral sclerosis in the left femoral head.", {"subchondral_sclerosis": P}, []),
("hx-008", "radiograph", "right", "Joint space narrowing superiorly, R worse than L.", {"joint_space": "narrowed"}, []),
("hx-009", "radiograph", "left", "Joint space narrowing superiorly, R worse than L.", {"joint_space": "narrowed"}, []),
("hx-010", "radiograph", "right", "No crescent sign seen R.", {"crescent_sign": A}, []),
("hx-011", "radiograph", "left", "Mixed lytic and sclerotic lesion in the L femoral neck, aggressive appearance.", {"focal_lesion": P}, []),
("hx-012", "radiograph", "right", "Left hip: regional osteopenia. Contralateral hip normal.", {"osteopenia": A, "collapse": A, "femoral_neck_fracture_line": A}, []),
("hx-013", "radiograph", "left", "Left hip: regional osteopenia. Contralateral hip normal.", {"osteopenia": P}, []),
# --- CT ----------------------------------------------------------------------------------
("hc-001", "ct", "right", "CT R hip: subchondral fracture anterosuperior femoral head, 2 mm step-off of the articular surface.", {"subchondral_fracture_line": P, "collapse": P, "collapse_depth_mm": 2.0}, []),
("hc-002", "ct", "left", "No cortical breach or fracture of the L femoral neck.", {"femoral_neck_fracture_line": A}, []),
("hc-003", "ct", "right", "Femoral head sphericity preserved bilaterally. No subchondral lucency.", {"collapse": A, "subchondral_lucency": A}, []),
("hc-004", "ct", "left", "Ill-defined sclerosis in the subchondral L femoral head, may represent early AVN.", {"subchondral_sclerosis": P}, []),
("hc-005", "ct", "right", "Small fluid collection posterior to the R hip, ? abscess.", {"soft_tissue_collection": P}, []),
("hc-006", "ct", "left", "Moderate L hip OA with joint space narrowing and subchondral cysts.", {"joint_space": "narrowed"}, []),
("hc-007", "ct", "right", "Impression: no CT evidence of femoral head collapse on either side.", {"collapse": A}, []),
("hc-008", "ct", "left", "Possible subtle fracture line through the L femoral neck.", {}, ["femoral_neck_fracture_line"]),
# --- bone scan ---------------------------------------------------------------------------
("hn-001", "bone_scan", "right", "Intensely increased uptake on all phases throughout the R femoral head and neck.", {"uptake": "diffuse_increased"}, []),
("hn-002", "bone_scan", "left", "Cold area in the left femoral head.", {"uptake": "photopenic"}, []),
("hn-003", "bone_scan", "right", "Tracer uptake in the hips is within normal limits bilaterally.", {"uptake": "normal"}, []),
("hn-004", "bone_scan", "left", "Focal intense uptake at the medial cortex of the left femoral neck, consistent with a stress fracture.", {"uptake": "focal_increased"}, []),
("hn-005", "bone_scan", "right", "Questionable photopenia in the right femoral head.", {}, ["uptake"]),
("hn-006", "bone_scan", "left", "Diffuse increased activity L hip extending from the femoral head to the intertrochanteric region, in keeping with TOH.", {"uptake": "diffuse_increased"}, []),
("hn-007", "bone_scan", "right", "Left hip: diffusely increased uptake. Right hip: normal.", {"uptake": "normal"}, []),
("hn-008", "bone_scan", "left", "No focal abnormality on whole-body bone scan; specifically no increased uptake in the left hip.", {"uptake": "normal"}, []),
]


def main() -> None:
    rows = [{"id": i, "modality": m, "side": s, "text": t, "findings": f, "to_confirm": sorted(c)} for i, m, s, t, f, c in ROWS]
    assert len({r["id"] for r in rows}) == len(rows)
    out = Path(__file__).with_name("fresh-3.json")
    out.write_text(json.dumps({"version": 1, "sentences": rows}, indent=1) + "\n")
    print(f"{len(rows)} sentences -> {out}")


if __name__ == "__main__":
    main()
