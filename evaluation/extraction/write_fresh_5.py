"""Writes fresh-5.json: report sentences written BEFORE the fifth round of rule changes (session 21),
in wording not used in sentences.json, fresh.json or fresh-2/-3/-4.json. It probes the forms round 4
left unread or read differently, each in new wording with negations, doubt and the other side:
a lesion of the ilium (the case model's iliac_lesion, added in session 20: "lesion or marrow change
of the ilium beyond the acetabular roof"; it is neither a focal lesion of the femoral head or neck nor
a finding of the femur), a chemical-shift statement about the iliac lesion ("no drop in signal of the
iliac lesion": about that lesion, not a focal lesion of the head denied), T1 low signal of the
acetabulum (the acetabulum's, not the femoral head's t1_low), a percentage stated before its phrase
("30% of the head is involved"), a share after a diagnosis ("AVN involving 30% of the head"), a
subchondral line "of low signal on T1 and T2" (t1_low as well as the band), and oedema "surrounding"
a fracture (its extent is the fracture's site). Also: structured "finding: none" lists, verbless
normal statements, "joint space loss/reduction", "bone mineral density appears reduced", segmental
depression, a sclerotic band of a neck stress fracture (not subchondral sclerosis), a cold defect with
a hot rim, comparisons with prior studies ("has now resolved", "interval development", "progressed
from 1 to 3 mm"), indications, and the other hip.

The writer (session 21's extraction helper) had read docs/fhir.md's section on the extraction, the
rule files and the case model (hipdx.case.studies, the knowledge base's label of focal_lesion: "of the
femoral head or neck"), and did not run the extractor on these sentences before they were committed.

Same policy and row format as write_fresh_4.py: id | modality | side asked | text | expected
findings | expected to_confirm (finding names). Negated -> "absent"; uncertain, historical,
hypothetical, conflicting, or no side named anywhere -> to_confirm; a diagnosis is not a finding; "the
X hip is normal" implies normal_implies for that hip; a generic negated "fracture" is both lines; a
measure (a percentage) stated as a bound, a range, in words, or for another bone -> to_confirm; a lesion
or marrow change of the ilium is iliac_lesion, not focal_lesion (which is the femoral head's or neck's);
a finding of the acetabulum or another bone is not the femur's (t1_low, subchondral sclerosis, collapse).
The labels are checked against the case model (every row's findings must make a valid ImagingStudy).
"""
import json
from pathlib import Path

P, A = "present", "absent"
FX = {"femoral_neck_fracture_line": A, "subchondral_fracture_line": A}
CS = "chemical_shift_signal_drop_percent"
NE = "necrotic_extent_percent"
IL = "iliac_lesion"
ROWS = [
# --- MRI ---------------------------------------------------------------------------------
("p-001", "mri", "left", "Clinical details: 52F, 3/12 L hip pain, on steroids for SLE. ?AVN.", {}, []),
("p-002", "mri", "right", "Comparison: MRI 14 months ago. The previously noted right femoral head oedema has now resolved.", {"edema": A}, []),
("p-003", "mri", "left", "Geographic subchondral area in the superolateral L femoral head demarcated by a serpiginous low-signal rim with an inner bright rim on T2 (double line sign).", {"double_line_sign": P}, []),
("p-004", "mri", "right", "Approximately 30% of the right femoral head is involved by the necrotic segment.", {NE: 30.0}, []),
("p-005", "mri", "left", "Left femoral head AVN involving approximately 30% of the head, ARCO II, no collapse.", {NE: 30.0, "collapse": A}, []),
("p-006", "mri", "right", "Osteonecrosis involves <15% of the right femoral head.", {}, [NE]),
("p-007", "mri", "left", "30-50% of the left femoral head is involved by osteonecrosis.", {}, [NE]),
("p-008", "mri", "left", "About 40% of the L femoral head is necrotic, without subchondral collapse.", {NE: 40.0, "collapse": A}, []),
("p-009", "mri", "right", "Necrotic segment occupying roughly one third of the right femoral head.", {}, [NE]),
("p-010", "mri", "right", "Left femoral head necrosis involving 25%; the right femoral head is normal.", {"edema": A}, []),
("p-011", "mri", "left", "There is no drop in signal of the left iliac lesion on the opposed-phase sequence.", {IL: P}, [CS]),
("p-012", "mri", "left", "Left iliac wing lesion: no signal loss on out-of-phase images. Both femoral heads are normal.", {IL: P, "edema": A}, [CS]),
("p-013", "mri", "right", "Expansile lytic lesion of the right ilium with cortical breakthrough.", {IL: P}, []),
("p-014", "mri", "left", "Marrow-replacing lesion in the left iliac blade, extending towards the sacroiliac joint; the left femoral head and neck are spared.", {IL: P}, []),
("p-015", "mri", "right", "No lesion of the ilium or proximal femur on the right.", {IL: A, "focal_lesion": A}, []),
("p-016", "mri", "right", "Ill-defined low T1 signal in the right acetabular roof.", {}, []),
("p-017", "mri", "right", "Acetabular T1 hypointensity on the right with STIR hyperintensity, representing acetabular marrow oedema; no femoral head oedema.", {"acetabular_edema": P, "edema": A}, []),
("p-018", "mri", "left", "Subchondral T1 low signal in the left acetabulum with a small cyst; femoral head marrow is normal.", {"edema": A}, []),
("p-019", "mri", "right", "Subchondral low-signal line on both T1- and T2-weighted images in the anterosuperior right femoral head.", {"subchondral_band": P, "t1_low": P}, []),
("p-020", "mri", "left", "Left femoral head: subchondral line of low signal on T1 and T2, 15 mm long.", {"subchondral_band": P, "subchondral_band_length_mm": 15.0, "t1_low": P}, []),
("p-021", "mri", "left", "Left SIF with surrounding marrow oedema.", {"subchondral_fracture_line": P, "edema": P, "edema_extent": "femoral_head"}, []),
("p-022", "mri", "right", "Undisplaced fracture of the right femoral neck, compression side, with surrounding oedema.", {"femoral_neck_fracture_line": P, "femoral_neck_fracture_side": "compression", "fracture_displaced": A, "edema": P, "edema_extent": "femoral_neck"}, []),
("p-023", "mri", "right", "Patchy BME in the right femoral head, sparing the neck.", {"edema": P, "edema_extent": "femoral_head"}, []),
("p-024", "mri", "left", "Marrow oedema is confined to the left femoral neck.", {"edema": P, "edema_extent": "femoral_neck"}, []),
("p-025", "mri", "right", "Oedema extends from the R femoral head to the intertrochanteric line.", {"edema": P, "edema_extent": "intertrochanteric"}, []),
("p-026", "mri", "left", "Small focus of subchondral marrow oedema in the superomedial left femoral head.", {"edema": P, "edema_extent": "focal"}, []),
("p-027", "mri", "right", "There is no convincing marrow oedema in the right hip.", {"edema": A}, []),
("p-028", "mri", "left", "Very subtle, possibly artefactual, STIR hyperintensity in the left femoral neck.", {}, ["stir_high"]),
("p-029", "mri", "right", "Appearances favour transient osteoporosis of the hip on the right; no subchondral fracture line.", {"subchondral_fracture_line": A}, []),
("p-030", "mri", "right", "R hip MRI 12/2026 cf. 09/2026: interval development of flattening of the anterolateral femoral head, now 2 mm.", {"collapse": P, "collapse_depth_mm": 2.0}, []),
("p-031", "mri", "left", "Compared with the prior study, the left femoral head collapse has progressed from 1 to 3 mm.", {"collapse": P, "collapse_depth_mm": 3.0}, []),
("p-032", "mri", "right", "Right hip: no effusion, no synovial thickening, no marrow oedema.", {"effusion": A, "synovitis": A, "edema": A}, []),
("p-033", "mri", "left", "Moderate-sized left hip joint effusion with a few low-signal foci, ? loose bodies.", {"effusion": P}, []),
("p-034", "mri", "right", "A 3 cm multiloculated fluid collection deep to the right gluteus minimus.", {"soft_tissue_collection": P}, []),
("p-035", "mri", "left", "No periarticular collection or abscess on the left.", {"soft_tissue_collection": A}, []),
("p-036", "mri", "left", "Post-gadolinium: the anterosuperior subchondral segment of the left femoral head does not enhance.", {"contrast_pattern": "subchondral_non_enhancement"}, []),
("p-037", "mri", "right", "Following contrast, the right femoral head marrow enhances uniformly.", {"contrast_pattern": "homogeneous_enhancement"}, []),
("p-038", "mri", "left", "Avid synovial enhancement about the left hip after gadolinium.", {"contrast_pattern": "synovial_or_rim_enhancement"}, []),
("p-039", "mri", "right", "Mild superolateral chondral thinning and joint space loss in the right hip.", {"joint_space": "narrowed"}, []),
("p-040", "mri", "left", "Moderate left hip OA with marked superior joint space narrowing and subchondral cyst formation.", {"joint_space": "narrowed"}, []),
("p-041", "mri", "left", "Intra-articular synovial mass with haemosiderin blooming in the left hip.", {"intra_articular_mass": P}, []),
("p-042", "mri", "right", "No intra-articular mass lesion or loose body on the right.", {"intra_articular_mass": A}, []),
("p-043", "mri", "left", "A 12 mm well-defined lesion in the left femoral neck of indeterminate nature; MRI follow-up suggested.", {"focal_lesion": P}, []),
("p-044", "mri", "right", "Impression: likely right femoral neck stress reaction without a discrete fracture line.", {"femoral_neck_fracture_line": A}, []),
("p-045", "mri", "right", "Grade 3 stress injury of the right femoral neck (marrow oedema, no fracture line).", {"edema": P, "edema_extent": "femoral_neck", "femoral_neck_fracture_line": A}, []),
("p-046", "mri", "left", "Fatigue fracture, tension side of the L femoral neck, occupying about 30% of the neck width.", {"femoral_neck_fracture_line": P, "femoral_neck_fracture_side": "tension", "femoral_neck_fracture_width_percent": 30.0}, []),
("p-047", "mri", "right", "Complete fracture line traversing the right femoral neck with varus displacement.", {"femoral_neck_fracture_line": P, "fracture_displaced": P}, []),
("p-048", "mri", "left", "Non-displaced left subcapital fracture.", {"femoral_neck_fracture_line": P, "fracture_displaced": A}, []),
("p-049", "mri", "right", "No subchondral fracture is demonstrated in either femoral head.", {"subchondral_fracture_line": A}, []),
("p-050", "mri", "right", "Thin subchondral fracture line paralleling the articular surface of the right femoral head, no collapse.", {"subchondral_fracture_line": P, "collapse": A}, []),
("p-051", "mri", "left", "LEFT HIP - collapse: none; fracture: none; effusion: small.", {"collapse": A, **FX, "effusion": P}, []),
("p-052", "mri", "right", "Impression: 1. Right femoral head osteonecrosis, ARCO 3A, with 2 mm subchondral collapse. 2. Small effusion.", {"collapse": P, "collapse_depth_mm": 2.0, "effusion": P}, []),
("p-053", "mri", "left", "No evidence of AVN on the left. Femoral head contour smooth.", {"collapse": A}, []),
("p-054", "mri", "right", "Cannot entirely exclude early subchondral collapse of the right femoral head; CT would be helpful.", {}, ["collapse"]),
("p-055", "mri", "left", "Query minimal flattening of the left femoral head superiorly.", {}, ["collapse"]),
("p-056", "mri", "left", "Previous left core decompression tract noted. No new marrow oedema.", {"edema": A}, []),
("p-057", "mri", "left", "History: right THR 2015. Left hip: marrow oedema of femoral head and neck.", {"edema": P, "edema_extent": "head_and_neck"}, []),
("p-058", "mri", "left", "Known sickle cell disease. Bilateral femoral head infarcts, no collapse on either side.", {"collapse": A}, []),
("p-059", "mri", "left", "L>R bilateral trochanteric bursitis; hips otherwise normal.", {"edema": A}, []),
("p-060", "mri", "left", "Right hip unremarkable. Left: femoral head BME, possibly early TOH.", {"edema": P, "edema_extent": "femoral_head"}, []),
("p-061", "mri", "right", "Right hip unremarkable. Left: femoral head BME, possibly early TOH.", {"edema": A}, []),
("p-062", "mri", "right", "Left hip: diffuse oedema of the femoral head. The contralateral femoral head shows a small subchondral area of low T1 signal.", {"t1_low": P}, []),
("p-063", "mri", "right", "Trace fluid in the right hip joint, within normal limits. No bone marrow oedema.", {"effusion": A, "edema": A}, []),
("p-064", "mri", "left", "Small-volume effusion, left > right.", {"effusion": P}, []),
("p-065", "mri", "right", "Both hips: no effusion.", {"effusion": A}, []),
("p-066", "mri", "right", "Appearances in keeping with resolving right-sided transient osteoporosis: residual patchy oedema in the femoral head.", {"edema": P, "edema_extent": "femoral_head"}, []),
("p-067", "mri", "left", "Signal drop of approximately 25% between in- and opposed-phase images within the left femoral head marrow abnormality.", {CS: 25.0}, []),
("p-068", "mri", "right", "Out-of-phase signal loss of less than 20% in the right femoral neck, raising concern for marrow replacement.", {}, [CS]),
("p-069", "mri", "left", "In-phase/opposed-phase signal intensity ratio 0.95 in the left femoral neck (no significant drop).", {}, [CS]),
("p-070", "mri", "right", "Interval resolution of the right femoral head oedema compared to 3 months ago.", {"edema": A}, []),
("p-071", "mri", "left", "Marrow oedema in both femoral heads, more marked on the right.", {"edema": P, "edema_extent": "femoral_head"}, []),
("p-072", "mri", "right", "Oedema involving the right femoral head and neck with a tiny effusion.", {"edema": P, "edema_extent": "head_and_neck", "effusion": P}, []),
("p-073", "mri", "left", "There is a 5 mm thick subchondral band of low signal in the left femoral head.", {"subchondral_band": P, "subchondral_band_thickness_mm": 5.0}, []),
("p-074", "mri", "right", "No subchondral low-signal band, no double-line, no collapse (right femoral head).", {"subchondral_band": A, "double_line_sign": A, "collapse": A}, []),
("p-075", "mri", "right", "Right femoral head: crescentic subchondral fluid signal beneath the articular surface, possibly a subchondral fracture.", {}, ["subchondral_fracture_line"]),
("p-076", "mri", "left", "Edema pattern in the L femoral head; no T1 correlate and no fracture line identified.", {"edema": P, "edema_extent": "femoral_head", "t1_low": A, **FX}, []),
("p-077", "mri", "right", "Exam performed to r/o AVN in a patient on high-dose steroids; no MRI evidence of AVN bilaterally.", {}, []),
("p-078", "mri", "right", "Mild hyperintense signal on fat-saturated PD images in the right femoral neck without a low-signal fracture line.", {"stir_high": P, "femoral_neck_fracture_line": A}, []),
("p-079", "mri", "left", "Small left hip effusion; no evidence of synovitis or intra-articular mass.", {"effusion": P, "synovitis": A, "intra_articular_mass": A}, []),
("p-080", "mri", "right", "Probable small subchondral fracture of the right femoral head.", {}, ["subchondral_fracture_line"]),
("p-081", "mri", "left", "Marrow edema of the left femoral neck is favored to be stress-related; no fracture line is identified.", {"edema": P, "edema_extent": "femoral_neck", "femoral_neck_fracture_line": A}, []),
("p-082", "mri", "left", "MRI L hip: (1) marrow oedema of the femoral head; (2) small joint effusion; (3) no subchondral fracture.", {"edema": P, "edema_extent": "femoral_head", "effusion": P, "subchondral_fracture_line": A}, []),
("p-083", "mri", "right", "Marrow oedema of the right iliac bone adjacent to the sacroiliac joint; femoral heads normal.", {"edema": A}, []),
("p-084", "mri", "left", "Permeative marrow signal change in the left ilium, above the acetabular roof, suspicious for infiltration.", {IL: P}, []),
# --- radiographs -------------------------------------------------------------------------
("px-001", "radiograph", "right", "Radiographs of the right hip: the bones are diffusely demineralised.", {"osteopenia": P}, []),
("px-002", "radiograph", "left", "Bone mineral density appears reduced in the left proximal femur.", {"osteopenia": P}, []),
("px-003", "radiograph", "right", "Subtle lucency beneath the articular surface of the right femoral head, best seen on the frog-leg view.", {"subchondral_lucency": P}, []),
("px-004", "radiograph", "left", "Patchy sclerosis and lucency of the left femoral head; the articular contour is intact and the joint space preserved.", {"subchondral_sclerosis": P, "subchondral_lucency": P, "collapse": A, "joint_space": "preserved"}, []),
("px-005", "radiograph", "right", "Right femoral head has lost its sphericity, with a 3 mm segmental depression of the weight-bearing surface.", {"collapse": P, "collapse_depth_mm": 3.0}, []),
("px-006", "radiograph", "left", "Left hip, frog lateral: no crescent sign.", {"crescent_sign": A}, []),
("px-007", "radiograph", "right", "Lucent line across the right femoral neck, ? undisplaced fracture.", {}, ["femoral_neck_fracture_line"]),
("px-008", "radiograph", "left", "Transcervical fracture of the left femoral neck with superior displacement of the shaft.", {"femoral_neck_fracture_line": P, "fracture_displaced": P}, []),
("px-009", "radiograph", "right", "Sclerotic band across the medial right femoral neck, in keeping with a healing stress fracture.", {"femoral_neck_fracture_line": P, "femoral_neck_fracture_side": "compression"}, []),
("px-010", "radiograph", "right", "Mild degenerative change of both hips with slight joint space reduction on the right.", {"joint_space": "narrowed"}, []),
("px-011", "radiograph", "left", "Mild degenerative change of both hips with slight joint space reduction on the right.", {}, []),
("px-012", "radiograph", "right", "No destructive bone lesion in the pelvis or either proximal femur.", {"focal_lesion": A, IL: A}, []),
("px-013", "radiograph", "left", "Left hip joint normal.", {"osteopenia": A, "collapse": A, "femoral_neck_fracture_line": A}, []),
("px-014", "radiograph", "right", "Well-defined lytic lesion in the right iliac wing with a sclerotic margin.", {IL: P}, []),
("px-015", "radiograph", "left", "Radiograph left hip: osteopenia of the femoral head relative to the right, no fracture seen.", {"osteopenia": P, **FX}, []),
# --- CT ----------------------------------------------------------------------------------
("pc-001", "ct", "right", "CT right hip: subchondral fracture of the anterosuperior femoral head with 2 mm depression of the articular surface.", {"subchondral_fracture_line": P, "collapse": P, "collapse_depth_mm": 2.0}, []),
("pc-002", "ct", "left", "CT: no articular collapse of either femoral head; patchy sclerosis in the left femoral head.", {"collapse": A, "subchondral_sclerosis": P}, []),
("pc-003", "ct", "right", "CT: no articular collapse of either femoral head; patchy sclerosis in the left femoral head.", {"collapse": A}, []),
("pc-004", "ct", "left", "Permeative lytic lesion of the left ilium with an associated soft-tissue mass.", {IL: P}, []),
("pc-005", "ct", "right", "Lucent lesion with a sclerotic rim in the right femoral neck, likely a benign fibro-osseous lesion.", {"focal_lesion": P}, []),
("pc-006", "ct", "left", "Nondisplaced basicervical fracture of the left femoral neck, no intertrochanteric extension.", {"femoral_neck_fracture_line": P, "fracture_displaced": A}, []),
("pc-007", "ct", "right", "Right hip CT: no fracture; bones normally mineralised.", {**FX, "osteopenia": A}, []),
("pc-008", "ct", "right", "Large gas- and fluid-containing collection in the right gluteal muscles.", {"soft_tissue_collection": P}, []),
("pc-009", "ct", "left", "CT arthrogram of the left hip: no intra-articular body or mass.", {"intra_articular_mass": A}, []),
("pc-010", "ct", "right", "Flattening of the superior right femoral head (1.5 mm) with subchondral sclerosis.", {"collapse": P, "collapse_depth_mm": 1.5, "subchondral_sclerosis": P}, []),
("pc-011", "ct", "left", "Cortical breach of the acetabular roof on the left with a small articular depression.", {}, []),
# --- bone scan ---------------------------------------------------------------------------
("pn-001", "bone_scan", "right", "Delayed images: intense tracer localisation throughout the right femoral head and neck.", {"uptake": "diffuse_increased"}, []),
("pn-002", "bone_scan", "left", "Cold area in the superolateral left femoral head surrounded by a rim of increased activity.", {"uptake": "photopenic"}, []),
("pn-003", "bone_scan", "left", "Tracer distribution about both hips is normal.", {"uptake": "normal"}, []),
("pn-004", "bone_scan", "left", "Focal intense uptake at the medial cortex of the L femoral neck.", {"uptake": "focal_increased"}, []),
("pn-005", "bone_scan", "right", "No scintigraphic abnormality at the right hip.", {"uptake": "normal"}, []),
("pn-006", "bone_scan", "left", "Equivocal mildly increased activity in the left femoral head, ? early AVN.", {}, ["uptake"]),
("pn-007", "bone_scan", "right", "Right hip: diffusely increased uptake on all three phases.", {"uptake": "diffuse_increased"}, []),
("pn-008", "bone_scan", "left", "Left hip: no abnormal uptake. Right hip: focal increased activity in the femoral neck.", {"uptake": "normal"}, []),
("pn-009", "bone_scan", "right", "Left hip: no abnormal uptake. Right hip: focal increased activity in the femoral neck.", {"uptake": "focal_increased"}, []),
("pn-010", "bone_scan", "right", "Previously photopenic right femoral head now shows normal activity.", {"uptake": "normal"}, []),
]


def _check_labels(rows: list[dict]) -> None:
    """Every row's expected findings must make a valid study of its modality (the case model)."""
    from hipdx.case.studies import ImagingStudy

    for r in rows:
        f = r["findings"]
        contrast = "contrast_pattern" in f
        ImagingStudy(modality=r["modality"], contrast=contrast, findings=f)


def _check_new(rows: list[dict]) -> None:
    """No text repeats a sentence of the earlier sets."""
    here = Path(__file__).parent
    seen: set[str] = set()
    for name in ("sentences", "fresh", "fresh-2", "fresh-3", "fresh-4"):
        seen |= {r["text"].lower() for r in json.loads((here / f"{name}.json").read_text())["sentences"]}
    repeated = [r["id"] for r in rows if r["text"].lower() in seen]
    assert not repeated, f"texts of earlier sets: {repeated}"


def main() -> None:
    rows = [{"id": i, "modality": m, "side": s, "text": t, "findings": f, "to_confirm": sorted(c)} for i, m, s, t, f, c in ROWS]
    assert len({r["id"] for r in rows}) == len(rows)
    _check_labels(rows)
    _check_new(rows)
    out = Path(__file__).with_name("fresh-5.json")
    out.write_text(json.dumps({"version": 1, "sentences": rows}, indent=1) + "\n")
    print(f"{len(rows)} sentences -> {out}")


if __name__ == "__main__":
    main()
