"""The one policy for tests that read ../shared (conftest.shared_data): fail in CI and beside ../shared, skip elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

import conftest
from conftest import shared_data, shared_files


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """../shared moved to a temporary folder (not created), CI unset, and this test counted as marked real_data."""
    folder = tmp_path / "shared"
    monkeypatch.setattr(conftest, "SHARED", folder)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(conftest, "_running", [])
    return folder


def test_a_file_that_is_there_is_returned(shared: Path) -> None:
    (shared / "data").mkdir(parents=True)
    (shared / "data" / "x.json").write_text("{}")
    assert shared_data("data/x.json") == shared / "data" / "x.json"
    assert shared_data(shared / "data" / "x.json") == shared / "data" / "x.json"


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_missing_in_ci_is_a_failure_naming_the_path(shared: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"missing in CI: .*shared/data/mri/pelvis-t1"):
        shared_data("data/mri/pelvis-t1")


def test_missing_beside_shared_is_a_failure(shared: Path) -> None:
    shared.mkdir()
    with pytest.raises(pytest.fail.Exception, match=r"missing: .*shared/data/fhir .*beside the checkout, but not this file"):
        shared_data("data/fhir")


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_without_shared_and_outside_ci_the_skip_names_the_path(shared: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=r"not found: .*shared/data/fhir \(no \.\./shared beside the checkout\)"):
        shared_data("data/fhir")


def test_a_test_not_marked_real_data_may_not_read_shared(shared: Path, monkeypatch: pytest.MonkeyPatch,
                                                          request: pytest.FixtureRequest) -> None:
    monkeypatch.setattr(conftest, "_running", [request.node])
    with pytest.raises(pytest.fail.Exception, match="reads ../shared but is not marked real_data"):
        shared_data("data/fhir")


def test_shared_files_stand_in_a_missing_folder_by_its_pattern(shared: Path) -> None:
    assert shared_files("data/fhir/synthea-r4", "*.json.gz") == [shared / "data/fhir/synthea-r4/*.json.gz"]
    (shared / "data").mkdir(parents=True)
    for name in ("b.json", "a.json", "c.txt"):
        (shared / "data" / name).write_text("{}")
    assert shared_files("data", "*.json") == [shared / "data" / "a.json", shared / "data" / "b.json"]
