"""The strict JSON reader and the input-file reader: every JSON document and input file enters here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hipdx.errors import InputError
from hipdx.jsonio import MAX_DEPTH, MAX_INPUT_BYTES, excerpt, loads, read_input_file


def test_a_plain_document_is_read_as_json_reads_it() -> None:
    text = '{"a": [1, 2.5, -3e2, true, null, "x\\u00e9"], "b": {"c": {}}}'
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)
    assert loads("\ufeff[1]".encode()) == [1]  # a UTF-8 byte-order mark is allowed


@pytest.mark.parametrize(
    ("text", "path", "values"),
    [
        ('{"sex": "male", "age_years": 40, "sex": "female"}', "sex", ('"male"', '"female"')),
        ('{"labs": {"crp": {"value": 5, "unit": "mg/L"}, "crp": {"value": 5, "unit": "mg/dL"}}}', "labs.crp", ("mg/L", "mg/dL")),
        ('{"imaging": [{"modality": "mri"}, {"modality": "ct", "modality": "mri"}]}', "imaging.1.modality", ('"ct"', '"mri"')),
        ('[{"id": "v1"}, {"patient": {"sex": "male", "sex": "female"}}]', "1.patient.sex", ('"male"', '"female"')),
    ],
)
def test_a_key_given_twice_is_refused_with_its_path_and_both_values(text: str, path: str, values: tuple[str, str]) -> None:
    with pytest.raises(InputError, match="gives a key twice") as info:
        loads(text)
    (problem,) = info.value.problems
    assert problem.field == path
    assert all(v in problem.reason for v in values)


def test_every_duplicated_key_is_listed() -> None:
    with pytest.raises(InputError) as info:
        loads('{"a": 1, "a": 2, "b": {"c": 1, "c": 1}}')
    assert sorted(p.field for p in info.value.problems) == ["a", "b.c"]


def test_nesting_is_bounded_before_decoding() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads(ok) is not None
    for deep in ("[" * 990 + "]" * 990, '{"a": ' * 990 + "1" + "}" * 990, "[" * 200_000):
        with pytest.raises(InputError, match=f"more than {MAX_DEPTH} levels deep"):
            loads(deep)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"note": "[" * 500 + '\\"{' * 100})
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize(
    "number", ["9" * 4300, "9" * 4301, "-" + "1" * 100, "1." + "0" * 60, "1e" + "0" * 50], ids=["4300", "4301", "-100", "1.0", "1e0"]
)
def test_a_number_of_more_than_40_characters_is_refused(number: str) -> None:
    with pytest.raises(InputError, match="number of .* characters at line 1, column 15"):
        loads('{"age_years": ' + number + "}")


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e400", "[-1e999]"])
def test_nan_infinity_and_overflowing_numbers_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="not a number hipdx accepts|too large"):
        loads(text)


def test_not_utf8_and_lone_surrogates_are_refused() -> None:
    with pytest.raises(InputError, match="not UTF-8"):
        loads(b'{"note": "caf\xe9"}')
    with pytest.raises(InputError, match="surrogate"):
        loads('{"note": "\\ud800"}')
    assert loads('{"note": "\\ud83d\\ude00"}') == {"note": "\U0001f600"}  # a pair is one character


def test_excerpt_is_short_and_escapes_control_characters() -> None:
    assert excerpt("\x1b[8mhidden") == '"\\u001b[8mhidden"'
    assert len(excerpt("x" * 10_000)) <= 40


# -- input files --------------------------------------------------------------------------


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    path.write_bytes(b'{"age_years": 40}')
    assert read_input_file(path) == b'{"age_years": 40}'


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (MAX_INPUT_BYTES + 1))
    with pytest.raises(InputError, match="larger than 5 MB"):
        read_input_file(path)
    assert read_input_file(path, max_bytes=MAX_INPUT_BYTES + 1)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "case.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_input_file(fifo)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_refused_without_reading_it() -> None:
    with pytest.raises(InputError, match="/dev/zero: it is not a regular file"):
        read_input_file("/dev/zero")


def test_a_directory_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="a directory"):
        read_input_file(tmp_path)
    with pytest.raises(InputError, match="cannot read .*nowhere"):
        read_input_file(tmp_path / "nowhere.json")


_PIECES = ['"', "\\", "[", "]", "{", "}", "1", "-", "e", ".", "9" * 45, "x", ":", ",", " ", "\\u", '"a\\"b"']


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=120), st.integers(0, 40))
def test_the_quick_limits_check_never_passes_what_the_token_scan_refuses(pieces: list[str], nesting: int) -> None:
    """The C-speed proof (``_plainly_within_limits``) may send a document to the token scan for nothing,
    but never lets through a document the scan refuses: same strings cut out, same brackets counted."""
    from hipdx.jsonio import _check_tokens, _plainly_within_limits

    text = "[" * nesting + "".join(pieces) + "]" * nesting
    if _plainly_within_limits(text):
        _check_tokens(text, "the input")  # raises InputError if the scan refuses it


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from([*_PIECES, "\n", "\\\n", "\\\\", "]]", '"x"']), max_size=120))
def test_the_quick_cut_of_strings_is_the_pattern_s_cut(pieces: list[str]) -> None:
    """The split on quotes, when it applies, cuts out exactly what the string pattern cuts out."""
    from hipdx.jsonio import _STRINGS, _outside_strings

    text = "".join(pieces)
    assert _outside_strings(text) == _STRINGS.sub("", text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*_PIECES, "é", "\u2028", "[é", "\ud800"]), max_size=80), st.integers(0, 40))
def test_the_quick_limits_check_agrees_with_the_scan_beyond_ascii(pieces: list[str], nesting: int) -> None:
    """Characters beyond ASCII outside strings do not upset the bracket count (they go to the pattern)."""
    from hipdx.jsonio import _check_tokens, _plainly_within_limits

    text = "[" * nesting + "".join(pieces) + "]" * nesting
    if _plainly_within_limits(text):
        _check_tokens(text, "the input")


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(["[", "]", "{", "}", "[]", "{}"]), max_size=80), st.integers(0, 40))
def test_the_quick_depth_proof_proves_only_what_the_running_sum_finds(pieces: list[str], nesting: int) -> None:
    """``_shallow`` (deleting innermost pairs) says True only for brackets that pair up at most MAX_DEPTH deep."""
    from itertools import accumulate

    from hipdx.jsonio import _shallow

    text = "[" * nesting + "".join(pieces) + "]" * nesting
    if _shallow(text):
        depths = list(accumulate(1 if c in "[{" else -1 for c in text))
        assert not depths or (max(depths) <= MAX_DEPTH and min(depths) >= 0 and depths[-1] == 0)
    if nesting <= MAX_DEPTH // 2 and not pieces:
        assert _shallow(text)


def test_the_quick_depth_proof_refuses_to_prove_one_level_too_deep() -> None:
    from hipdx.jsonio import _shallow

    assert _shallow("{[" * (MAX_DEPTH // 2) + "]}" * (MAX_DEPTH // 2))  # two levels a pass: MAX_DEPTH deep
    assert _shallow("[" * (MAX_DEPTH // 2) + "]" * (MAX_DEPTH // 2))  # one level a pass
    assert not _shallow("{[" * (MAX_DEPTH // 2) + "{}" + "]}" * (MAX_DEPTH // 2))  # one level too deep
    assert not _shallow("[" * (MAX_DEPTH // 2 + 1) + "]" * (MAX_DEPTH // 2 + 1))  # not proved: the sum decides
    assert not _shallow("[}")


_KEYS = ['"a"', '"b"', '"a:b"', '"\\""', '"[{"', '"\\\\"', '"\\u0061"', '""']
_VALUES = ["1", '"::"', '"]]}"', '"{[["', '"\\\\\\""', "2.5", '"' + "7" * 45 + '"', "7" * 45, "null", '"x\\u003ay"', "1e400"]
_JSON = st.recursive(
    st.sampled_from(_VALUES),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(_KEYS), st.sampled_from([":", " :", ": ", "\n:\t"]), inner), max_size=3).map(
            lambda ms: "{" + ",".join(k + c + v for k, c, v in ms) + "}"
        ),
    ),
    max_leaves=30,
)


def _verdict(read: object, text: str) -> tuple[object, ...]:
    try:
        return ("read", read(text))  # type: ignore[operator]
    except InputError as err:
        return ("refused", err.message, err.problems)


@settings(max_examples=800, deadline=None)
@given(_JSON, st.integers(0, 34), st.booleans())
def test_the_quick_read_gives_the_verdict_of_the_checked_read(doc: str, nesting: int, as_bytes: bool) -> None:
    """Keys given twice (also behind escapes, colons or brackets in strings, spaces before the colon),
    nesting around the limit, long numbers in and out of strings: the C-speed read (``_plain_loads``)
    returns only what the step-by-step read accepts, and ``loads`` gives the step-by-step verdict."""
    from hipdx.jsonio import _NOT_PROVED, _checked_loads, _plain_loads

    text = "[" * nesting + doc + "]" * nesting
    checked = _verdict(lambda t: _checked_loads(t, "the input"), text)
    assert _verdict(lambda t: loads(t.encode() if as_bytes else t), text) == checked
    plain = _plain_loads(text, text.encode())
    if plain is not _NOT_PROVED:
        assert checked == ("read", plain)


def test_the_quick_read_proves_ordinary_charts() -> None:
    """The FHIR test bundles (Synthea's among them) and a DICOM UID in a string take the C-speed read:
    a change that sent them all to the step-by-step read would be correct but slow."""
    from hipdx.jsonio import _NOT_PROVED, _plain_loads

    folder = Path(__file__).parent / "data" / "fhir"
    raws = [p.read_bytes() for p in sorted(folder.glob("*.json"))]
    raws.append(b'{"uid": "urn:oid:2.16.124.113543.6003.1154777499.30246.19789.3503430045", "n": [1, 2]}')
    assert len(raws) > 5
    for raw in raws:
        assert _plain_loads(raw.decode("utf-8-sig"), raw) is not _NOT_PROVED
