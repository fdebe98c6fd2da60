"""The ground truth of a phantom, as written to ``truth.json``, and reading it back."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


TRUTH_FORMAT = "hipdx-phantom-truth/1"


MASKS_FILE = "truth_masks.npz"


@dataclass(frozen=True)
class HeadTruth:
    center_mm: tuple[float, float, float]
    radius_mm: float


@dataclass(frozen=True)
class PhantomTruth:
    """Ground truth of one phantom, as written to ``truth.json``.

    Volumes are in mL, lengths in mm, points in DICOM patient LPS mm. ``edema_volume_ml``
    is the rasterised volume (sum of per-voxel edema fractions x voxel volume);
    ``edema_mask_volume_ml`` counts voxels at least half edema. ``band_length_mm`` is the
    arc length on the coronal plane through the head centre, at mid-thickness.
    """

    seed: int
    side: str
    heads: dict[str, HeadTruth]
    edema_requested_ml: float
    edema_volume_ml: float
    edema_mask_volume_ml: float
    edema_extent_ml: dict[str, float]
    band_thickness_mm: float
    band_length_mm: float
    band_volume_ml: float
    series: dict[str, dict[str, str]]
    masks_file: str
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Optional joint findings on ``side`` (0 when not requested; absent from ``truth.json`` then).
    acetabular_edema_ml: float = 0.0
    effusion_ml: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": TRUTH_FORMAT,
            "seed": self.seed,
            "side": self.side,
            "heads": {s: {"center_mm": list(h.center_mm), "radius_mm": h.radius_mm} for s, h in self.heads.items()},
            "edema": {
                "side": self.side if self.edema_volume_ml > 0 else None,
                "requested_ml": self.edema_requested_ml,
                "volume_ml": self.edema_volume_ml,
                "mask_volume_ml": self.edema_mask_volume_ml,
                "extent_ml": self.edema_extent_ml,
            },
            "band": {
                "side": self.side if self.band_thickness_mm > 0 else None,
                "present": self.band_thickness_mm > 0,
                "thickness_mm": self.band_thickness_mm,
                "length_mm": self.band_length_mm,
                "volume_ml": self.band_volume_ml,
            },
            **self._joint_dict(),
            "series": self.series,
            "masks": self.masks_file,
            "parameters": self.parameters,
        }

    def _joint_dict(self) -> dict[str, Any]:
        """Acetabular edema and effusion, only when the phantom has them (older truth files stay as they were)."""
        out: dict[str, Any] = {}
        if self.acetabular_edema_ml > 0:
            out["acetabular_edema"] = {"side": self.side, "volume_ml": self.acetabular_edema_ml}
        if self.effusion_ml > 0:
            out["effusion"] = {"side": self.side, "volume_ml": self.effusion_ml}
        return out


def load_truth(path: str | os.PathLike[str]) -> PhantomTruth:
    """Read ``truth.json`` (or the folder holding it) back into :class:`PhantomTruth`."""
    path = Path(path)
    if path.is_dir():
        path = path / "truth.json"
    data = json.loads(path.read_text())
    return PhantomTruth(
        seed=data["seed"],
        side=data["side"],
        heads={s: HeadTruth(tuple(h["center_mm"]), h["radius_mm"]) for s, h in data["heads"].items()},
        edema_requested_ml=data["edema"]["requested_ml"],
        edema_volume_ml=data["edema"]["volume_ml"],
        edema_mask_volume_ml=data["edema"]["mask_volume_ml"],
        edema_extent_ml=data["edema"]["extent_ml"],
        band_thickness_mm=data["band"]["thickness_mm"],
        band_length_mm=data["band"]["length_mm"],
        band_volume_ml=data["band"]["volume_ml"],
        series=data["series"],
        masks_file=data["masks"],
        parameters=data["parameters"],
        acetabular_edema_ml=data.get("acetabular_edema", {}).get("volume_ml", 0.0),
        effusion_ml=data.get("effusion", {}).get("volume_ml", 0.0),
    )
