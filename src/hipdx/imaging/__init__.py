"""Hip MRI: reading DICOM and NIfTI studies, femoral heads, edema and subchondral bands, a phantom."""
