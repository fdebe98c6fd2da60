"""The imaging parameters as data: one home each, schema-checked, every one used and recorded."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from hipdx.errors import KnowledgeBaseError
from hipdx.imaging import parameters as parameters_module
from hipdx.imaging.parameters import PARAMETERS, load_parameters, provenance_parameters

IMAGING = Path(parameters_module.__file__).parent
BUNDLED = IMAGING / "data" / "parameters.yaml"
GOOD_ENTRY = '      value: 1.5\n      unit: "mm"\n      basis: estimate\n      reason: "a reason long enough"\n'


def _keys_read_by_the_code() -> set[str]:
    return {key for path in IMAGING.glob("*.py") for key in re.findall(r'param\("([a-z_]+\.[a-z_0-9]+)"\)', path.read_text())}


def test_every_parameter_in_the_file_is_read_by_the_code_and_every_one_read_is_in_the_file() -> None:
    in_file = set(PARAMETERS.flat())
    read = _keys_read_by_the_code()
    assert read - in_file == set(), "read by the code but not in parameters.yaml"
    assert in_file - read == set(), "in parameters.yaml but read by no module"
    assert len(in_file) >= 100


def test_every_parameter_states_unit_basis_and_reason() -> None:
    for group, entries in PARAMETERS.groups.items():
        for name, entry in entries.items():
            assert entry.unit and entry.basis in {"measured", "derived", "estimate", "literature"}, (group, name)
            assert len(entry.reason) >= 10, (group, name)


def test_the_provenance_records_every_parameter_with_the_file_digest() -> None:
    recorded = provenance_parameters()
    assert recorded["parameters_file"] == f"imaging/data/parameters.yaml sha256:{hashlib.sha256(BUNDLED.read_bytes()).hexdigest()}"
    assert {k: v for k, v in recorded.items() if k != "parameters_file"} == PARAMETERS.flat()


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "parameters.yaml"
    path.write_text("version: 1\nparameters:\n  band:\n" + body)
    return path


def test_a_parameter_given_twice_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "    step_mm:\n" + GOOD_ENTRY + "    step_mm:\n" + GOOD_ENTRY)
    with pytest.raises(KnowledgeBaseError, match="repeats a key") as caught:
        load_parameters(path)
    assert "'step_mm' is given twice" in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (GOOD_ENTRY.replace("value: 1.5", 'value: "1.5"'), "value"),  # a text where a number belongs
        (GOOD_ENTRY.replace("value: 1.5", "value: 1e-3"), "value"),  # YAML 1.1 reads 1e-3 as text
        (GOOD_ENTRY.replace("basis: estimate", "basis: guess"), "basis"),
        (GOOD_ENTRY.replace('      unit: "mm"\n', ""), "unit"),
        (GOOD_ENTRY + "      source: extra\n", "source"),
    ],
)
def test_a_parameter_off_the_schema_is_refused_naming_where(tmp_path: Path, entry: str, field: str) -> None:
    with pytest.raises(KnowledgeBaseError, match="schema") as caught:
        load_parameters(_write(tmp_path, "    step_mm:\n" + entry))
    assert any(f"band.step_mm.{field}" in p.field for p in caught.value.problems), caught.value.problems


def test_the_bundled_file_loads_the_same_values_twice() -> None:
    again = load_parameters()
    assert again.flat() == PARAMETERS.flat() and again.sha256 == PARAMETERS.sha256


def test_the_band_cutoff_has_one_home_the_staging_data() -> None:
    """The imaging wing reads the band's cut-off and margin from staging.yaml, as the staging and the
    encoder do, and not through the reasoning (which no longer exports them)."""
    import hipdx.reasoning.encode as encode
    from hipdx.imaging.parameters import BAND_CUTOFF_MM, BAND_INDETERMINATE_MM
    from hipdx.knowledge import load_knowledge_base

    staging = load_knowledge_base().treatment
    assert (BAND_CUTOFF_MM, BAND_INDETERMINATE_MM) == (
        staging.threshold("band_cutoff_mm").value, staging.threshold("band_indeterminate_margin_mm").value)
    assert not hasattr(encode, "BAND_CUTOFF_MM")
    imports = [path.name for path in IMAGING.glob("*.py") if "hipdx.reasoning.encode" in path.read_text()]
    assert imports == []
