"""Writes fresh.json: 40 more report sentences, written AFTER the rules were tuned, in wording the
rules were not written for; scored once, to estimate how the rules generalise (never tuned on).
Same policy and row format as write_sentences.py."""
import json
from pathlib import Path

P, A = "present", "absent"
ROWS = [
("f-001", "mri", "right", "R hip: diffuse BME involving the femoral head and neck.", {"edema": P, "edema_extent": "head_and_neck"}, []),
("f-002", "mri", "left", "L femoral head shows ill-defined T2 hyperintense marrow signal.", {"edema": P, "edema_extent": "femoral_head"}, []),
("f-003", "mri", "right", "There is no evidence of AVN or fracture involving the right hip.", {"femoral_neck_fracture_line": A, "subchondral_fracture_line": A}, []),
("f-004", "mri", "left", "Left femoral head is intact without evidence of collapse.", {"collapse": A}, []),
("f-005", "mri", "right", "Right-sided hip effusion, moderate in size.", {"effusion": P}, []),
("f-006", "mri", "left", "A thin subchondral fracture cleft is seen in the weight-bearing left femoral head.", {"subchondral_fracture_line": P}, []),
("f-007", "mri", "right", "Marrow oedema of the right femoral neck is noted.", {"edema": P, "edema_extent": "femoral_neck"}, []),
("f-008", "mri", "left", "Appearances are in keeping with transient osteoporosis of the left hip; no fracture line identified.", {"femoral_neck_fracture_line": A, "subchondral_fracture_line": A}, []),
("f-009", "mri", "right", "Absent double line sign on the right.", {"double_line_sign": A}, []),
("f-010", "mri", "left", "Left hip joint: small volume joint fluid, likely physiological.", {}, ["effusion"]),
("f-011", "mri", "right", "There is a serpiginous low-signal band in the right femoral head with an inner high-signal rim (double line sign).", {"subchondral_band": P, "double_line_sign": P}, []),
("f-012", "mri", "left", "Left acetabulum is unremarkable.", {}, []),
("f-013", "mri", "right", "Mild degenerative change of the right hip with chondral thinning.", {}, []),
("f-014", "mri", "left", "Suspected stress fracture of the left femoral neck, compression side.", {}, ["femoral_neck_fracture_line"]),
("f-015", "mri", "right", "Right femoral neck stress fracture extending more than 50% across the neck.", {"femoral_neck_fracture_line": P}, []),
("f-016", "mri", "left", "Edema seen on the left side extends into the intertrochanteric region.", {"edema": P, "edema_extent": "intertrochanteric"}, []),
("f-017", "mri", "right", "No marrow oedema in either femoral head.", {"edema": A}, []),
("f-018", "mri", "left", "Bone marrow edema within both femoral heads, left more than right.", {"edema": P, "edema_extent": "femoral_head"}, []),
("f-019", "mri", "right", "There is marrow edema of the left femoral head. Right hip unremarkable.", {"edema": A}, []),
("f-020", "mri", "left", "Interval resolution of the left femoral head marrow edema.", {"edema": A}, []),
("f-021", "mri", "right", "The previously described right hip effusion is unchanged.", {"effusion": P}, []),
("f-022", "mri", "left", "Cannot rule out an early subchondral insufficiency fracture on the left.", {}, ["subchondral_fracture_line"]),
("f-023", "mri", "right", "Findings compatible with synovitis of the right hip.", {"synovitis": P}, []),
("f-024", "mri", "left", "No joint effusion or synovial thickening on the left.", {"effusion": A, "synovitis": A}, []),
("f-025", "mri", "right", "Right femoral head demonstrates normal marrow signal.", {"edema": A}, []),
("xf-001", "radiograph", "right", "Right hip: mild periarticular osteopenia.", {"osteopenia": P}, []),
("xf-002", "radiograph", "left", "No radiographic evidence of left femoral head collapse.", {"collapse": A}, []),
("xf-003", "radiograph", "right", "Right femoral head maintains its normal contour.", {"collapse": A}, []),
("xf-004", "radiograph", "left", "There is a subchondral radiolucent line (crescent sign) in the left femoral head.", {"crescent_sign": P}, []),
("xf-005", "radiograph", "right", "Right hip joint space appears well maintained.", {"joint_space": "preserved"}, []),
("xf-006", "radiograph", "left", "Left hip radiographs are within normal limits.", {"osteopenia": A, "collapse": A, "femoral_neck_fracture_line": A}, []),
("xf-007", "radiograph", "right", "Possible subtle loss of bone density in the right femoral head.", {}, ["osteopenia"]),
("xf-008", "radiograph", "left", "Sclerotic changes of the left femoral head without articular collapse.", {"subchondral_sclerosis": P, "collapse": A}, []),
("cf-001", "ct", "right", "Right femoral head: subchondral fracture without depression.", {"subchondral_fracture_line": P, "collapse": A}, []),
("cf-002", "ct", "left", "No destructive osseous lesion of the left proximal femur.", {"focal_lesion": A}, []),
("cf-003", "ct", "right", "Early articular collapse of the right femoral head, approximately 2 mm.", {"collapse": P, "collapse_depth_mm": 2.0}, []),
("nf-001", "bone_scan", "right", "Markedly increased tracer uptake throughout the right femoral head and neck.", {"uptake": "diffuse_increased"}, []),
("nf-002", "bone_scan", "left", "Left hip uptake is symmetric with the right and within normal limits.", {"uptake": "normal"}, []),
("nf-003", "bone_scan", "right", "A cold defect is present in the right femoral head.", {"uptake": "photopenic"}, []),
("nf-004", "bone_scan", "left", "No scintigraphic abnormality of the left hip.", {"uptake": "normal"}, []),
]


def main() -> None:
    rows = [{"id": i, "modality": m, "side": s, "text": t, "findings": f, "to_confirm": sorted(c)} for i, m, s, t, f, c in ROWS]
    assert len({r["id"] for r in rows}) == len(rows)
    out = Path(__file__).with_name("fresh.json")
    out.write_text(json.dumps({"version": 1, "sentences": rows}, indent=1) + "\n")
    print(f"{len(rows)} sentences -> {out}")


if __name__ == "__main__":
    main()
