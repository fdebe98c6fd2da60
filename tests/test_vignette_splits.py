"""Every project vignette file is scored by evaluation/split_score.py and every vignette sits in
exactly one fixed split.

A new held-out set (literature-hipdx-N.json with its split-M.json) that is committed but not wired
into split_score.py would silently never be scored; a vignette in two parts, or an id used twice,
would leak a held-out case into development. These tests read the files and map each record into a
case (``vignette_to_case``); they never run the model, so no held-out result is printed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from hipdx.evaluation.run import read_vignette_file
from hipdx.evaluation.vignette import vignette_to_case

ROOT = Path(__file__).resolve().parent.parent
EVALUATION = ROOT / "evaluation"


def _split_score():
    spec = importlib.util.spec_from_file_location("split_score", EVALUATION / "split_score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SPLIT_SCORE = _split_score()
SHARED_DEV = SPLIT_SCORE.FILES[0]
needs_shared = pytest.mark.skipif(not SHARED_DEV.exists(), reason="the shared development set is not present")


def test_every_project_vignette_file_is_scored() -> None:
    project_files = {p.name for p in EVALUATION.glob("literature-hipdx*.json")}
    scored = {Path(p).name for p in SPLIT_SCORE.FILES}
    assert project_files <= scored, f"not in split_score.FILES: {sorted(project_files - scored)}"


def test_every_split_file_is_wired() -> None:
    on_disk = {p.name for p in EVALUATION.glob("split*.json")}
    assert on_disk == set(SPLIT_SCORE.SPLITS.values())


@needs_shared
def test_every_vignette_is_in_exactly_one_split_and_ids_are_unique() -> None:
    ids = [r["id"] for path in SPLIT_SCORE.FILES for r in read_vignette_file(Path(path))]
    assert len(ids) == len(set(ids)), "a vignette id is used twice"
    placed: list[str] = []
    for name in SPLIT_SCORE.SPLITS.values():
        split = json.loads((EVALUATION / name).read_text(encoding="utf-8"))
        placed += split["development"] + split["held_out"]
    assert len(placed) == len(set(placed)), "a vignette is in two split parts"
    assert set(placed) == set(ids)


def test_the_sixth_set_is_all_held_out_and_maps_into_cases() -> None:
    records = read_vignette_file(EVALUATION / "literature-hipdx-6.json")
    split = json.loads((EVALUATION / "split-5.json").read_text(encoding="utf-8"))
    assert split["development"] == []
    assert split["held_out"] == [r["id"] for r in records]
    assert len(records) >= 30
    for record in records:
        case, _, _ = vignette_to_case(record)  # mapping only: the model is not run
        assert case is not None


def test_the_seventh_set_is_all_held_out_and_maps_into_cases() -> None:
    records = read_vignette_file(EVALUATION / "literature-hipdx-7.json")
    split = json.loads((EVALUATION / "split-6.json").read_text(encoding="utf-8"))
    assert split["development"] == []
    assert split["held_out"] == [r["id"] for r in records]
    assert len(records) >= 30
    assert SPLIT_SCORE.SPLITS["-6"] == "split-6.json"
    for record in records:
        case, _, _ = vignette_to_case(record)  # mapping only: the model is not run
        assert case is not None
