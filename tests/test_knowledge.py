"""The knowledge base: it loads, every number is cited or reasoned, and the numbers cohere."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from hipdx.errors import KnowledgeBaseError
from hipdx.knowledge import KnowledgeBase, default_data_dir, load_knowledge_base
from hipdx.knowledge.schema import Basis, Provenance

load_uncached = load_knowledge_base.__wrapped__  # type: ignore[attr-defined]


def all_provenance(kb: KnowledgeBase) -> Iterator[tuple[str, Provenance]]:
    """Every number's provenance in the compiled base, with where it sits."""
    for c in kb.conditions:
        yield f"{c.id}.prior", c.prior_provenance
    for v in kb.variables.values():
        for cond, entry in v.spec.likelihoods.items():
            for i, dist in enumerate(entry if isinstance(entry, list) else [entry]):
                yield f"{v.id}.{cond}[{i}]", dist
    yield "pregnancy_burden_factor", kb.tests_file.pregnancy_provenance
    for t in kb.tests:
        yield f"{t.id}.burden", t.burden_provenance


# --- the bundled base -----------------------------------------------------------------


def test_the_bundled_base_loads_and_is_cached(kb: KnowledgeBase) -> None:
    assert load_knowledge_base() is kb
    assert kb.version and len(kb.digest) == 16
    assert kb.condition_ids == ["toh", "rmo", "onfh", "sif", "fnsf", "septic", "inflammatory", "oa", "neoplasm", "pvns"]


def test_loading_is_deterministic(kb: KnowledgeBase) -> None:
    again = load_uncached(default_data_dir())
    assert again.digest == kb.digest
    np.testing.assert_array_equal(again.log_p, kb.log_p)
    np.testing.assert_array_equal(again.log_p_samples, kb.log_p_samples)


def test_every_condition_has_a_prior_and_the_priors_sum_to_one(kb: KnowledgeBase) -> None:
    for c in kb.conditions:
        assert 0 < c.prior < 1, c.id
        assert c.prior_provenance.n > 0
    assert sum(c.prior for c in kb.conditions) == pytest.approx(1.0)
    np.testing.assert_allclose(kb.prior, [c.prior for c in kb.conditions])
    np.testing.assert_allclose(np.exp(kb.log_prior_samples).sum(axis=1), 1.0, atol=1e-5)


def test_every_published_or_derived_number_cites_a_reference_in_the_bibliography(kb: KnowledgeBase) -> None:
    checked = 0
    for where, prov in all_provenance(kb):
        if prov.basis in (Basis.reported, Basis.derived, Basis.transferred):
            assert prov.refs, f"{where}: {prov.basis.value} without a ref"
            checked += 1
        for ref in prov.refs:
            assert ref in kb.references, f"{where} cites {ref!r}, which is not in the bibliography"
    assert checked > 10


def test_every_estimate_and_derivation_has_a_note(kb: KnowledgeBase) -> None:
    checked = 0
    for where, prov in all_provenance(kb):
        if prov.basis in (Basis.estimate, Basis.derived, Basis.transferred):
            assert prov.note and prov.note.strip(), f"{where}: {prov.basis.value} without a note"
            checked += 1
    assert checked > 100


#: Words in a note that say a figure was measured in another population than the base's.
OTHER_POPULATION = ("knee", "child", "paediatric", "pediatric", "all sites", "any site", "every site", "conscript")


def test_a_figure_from_another_population_is_labelled_transferred(kb: KnowledgeBase) -> None:
    mislabelled = [
        where
        for where, prov in all_provenance(kb)
        if prov.basis in (Basis.reported, Basis.derived) and any(w in (prov.note or "").lower() for w in OTHER_POPULATION)
    ]
    assert mislabelled == []
    transferred = [where for where, prov in all_provenance(kb) if prov.basis is Basis.transferred]
    assert "xr_neck_fracture_line.fnsf[1]" in transferred
    assert {"wbc.septic[0]", "temperature.septic[0]"} <= set(transferred)


def test_every_red_flag_cites_the_bibliography(kb: KnowledgeBase) -> None:
    for rf in kb.red_flags:
        assert rf.refs
        assert set(rf.refs) <= set(kb.references), rf.id


def test_every_reference_can_be_found(kb: KnowledgeBase) -> None:
    for key, ref in kb.references.items():
        assert ref.pmid or ref.doi or ref.url, key


def test_probabilities_sum_to_one_per_condition_and_time_band(kb: KnowledgeBase) -> None:
    n_conditions = len(kb.conditions)
    for v in kb.variables.values():
        bands = v.n_bands + (1 if v.n_bands > 1 else 0)  # plus the "time not known" mixture
        assert v.probs.shape == (bands, n_conditions, len(v.spec.states)), v.id
        assert np.all(v.probs > 0) and np.all(v.probs < 1), v.id
        np.testing.assert_allclose(v.probs.sum(axis=2), 1.0, atol=1e-9, err_msg=v.id)


def test_every_variable_has_a_likelihood_for_every_condition(kb: KnowledgeBase) -> None:
    for v in kb.variables.values():
        given = set(v.spec.likelihoods)
        assert "default" in given or set(kb.condition_ids) <= given, v.id
        assert given - {"default"} <= set(kb.condition_ids), v.id


def test_compiled_log_likelihoods_are_finite(kb: KnowledgeBase) -> None:
    assert np.all(np.isfinite(kb.log_p)) and np.all(kb.log_p <= 0)
    assert np.all(np.isfinite(kb.log_p_samples)) and np.all(kb.log_p_samples <= 0)


def test_time_bands_give_different_numbers(kb: KnowledgeBase) -> None:
    osteopenia = kb.variables["xr_osteopenia"]
    toh = kb.condition_ids.index("toh")
    present = osteopenia.spec.states.index("present")
    early, middle, late = (osteopenia.probs[osteopenia.band(d), toh, present] for d in (7, 30, 60))
    assert early < middle < late
    assert osteopenia.band(None) == osteopenia.n_bands  # the mixture band


def test_every_red_flag_trigger_names_real_variables_and_states(kb: KnowledgeBase) -> None:
    for rf in kb.red_flags:
        assert rf.condition in kb.condition_ids, rf.id
        for trigger in rf.triggers:
            for variable, states in trigger.all_of.items():
                assert variable in kb.variables, f"{rf.id}: {variable}"
                observable = set(kb.variables[variable].observables)
                assert set(states) <= observable | {"unknown"}, f"{rf.id}: {variable} {states}"


def test_every_must_not_miss_condition_has_a_red_flag(kb: KnowledgeBase) -> None:
    flagged = {rf.condition for rf in kb.red_flags}
    for c in kb.conditions:
        if c.must_not_miss:
            assert c.id in flagged, c.id


_MODALITY_OF_COMPUTED = {"mri_edema": "mri", "subchondral_band": "mri", "contrast_pattern": "mri"}


def test_each_test_reveals_existing_variables_its_modality_can_show(kb: KnowledgeBase) -> None:
    ids = [t.id for t in kb.tests]
    assert len(set(ids)) == len(ids)
    for test in kb.tests:
        assert test.reveals, test.id
        for variable in test.reveals:
            assert variable in kb.variables, f"{test.id} reveals {variable!r}"
            if test.modality is None:
                continue
            source = kb.variables[variable].spec.source
            shown_on = source.imaging or [_MODALITY_OF_COMPUTED.get(source.computed or "")]
            assert test.modality in shown_on, f"{test.id} ({test.modality}) cannot reveal {variable}"
        if test.id == "mri_contrast":
            assert test.contrast and test.gadolinium
        if test.ionising_radiation:
            assert test.modality in (None, "radiograph", "ct", "bone_scan"), test.id


def test_provenance_counts_add_up(kb: KnowledgeBase) -> None:
    counts = kb.provenance_counts()
    assert set(counts) == {b.value for b in Basis}
    n_conditions = len(kb.conditions)
    expected_total = n_conditions + sum(
        n_conditions * v.n_bands * (len(v.spec.states) - 1) for v in kb.variables.values()
    )
    assert sum(counts.values()) == expected_total
    # recount by basis from the raw entries, each standing for (states - 1) free numbers per band
    by_basis = {b.value: 0 for b in Basis}
    for c in kb.conditions:
        by_basis[c.prior_provenance.basis.value] += 1
    for v in kb.variables.values():
        for cid in kb.condition_ids:
            entry = v.spec.likelihoods.get(cid, v.spec.likelihoods.get("default"))
            entries = entry if isinstance(entry, list) else [entry] * v.n_bands
            for dist in entries:
                by_basis[dist.basis.value] += len(v.spec.states) - 1
    assert counts == by_basis
    assert counts["reported"] > 0 and counts["estimate"] > 0


def test_every_knowledge_file_is_packaged() -> None:
    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["hipdx"]
    package = root / "src" / "hipdx"
    packaged = {path for pattern in patterns for path in package.glob(pattern)}
    data_files = {path for path in (package / "knowledge" / "data").rglob("*") if path.is_file()}
    assert data_files, "no data files found"
    assert sorted(p.relative_to(package).as_posix() for p in data_files - packaged) == []


# --- the schema refuses an uncited number --------------------------------------------


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(default_data_dir(), target)
    return target


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def variable(data: Any, variable_id: str) -> dict:
    return next(v for v in data["variables"] if v["id"] == variable_id)


def load_error(data_dir: Path) -> KnowledgeBaseError:
    with pytest.raises(KnowledgeBaseError) as info:
        load_uncached(data_dir)
    return info.value


def test_an_unmodified_copy_loads(data_copy: Path, kb: KnowledgeBase) -> None:
    assert load_uncached(data_copy).digest == kb.digest


def test_a_probability_flag_whose_last_tier_can_fail_is_refused(data_copy: Path) -> None:
    """The last tier of a probability flag holds always: the flag may change urgency, never vanish."""

    def condition_last(data: Any) -> None:
        tiers = next(pf for pf in data["probability_flags"] if pf["condition"] == "septic")["tiers"]
        tiers[-1]["at_or_above"] = "septic_emergency_probability"

    edit_yaml(data_copy / "red_flags.yaml", condition_last)
    error = load_error(data_copy)
    assert any("probability_flags" in p.field and "never dropped" in p.reason for p in error.problems), error


def test_a_probability_tier_naming_an_unknown_threshold_state_or_reference_is_refused(data_copy: Path) -> None:
    def break_tiers(data: Any) -> None:
        tiers = next(pf for pf in data["probability_flags"] if pf["condition"] == "septic")["tiers"]
        tiers[0]["when"] = {"setting": ["ambulance"]}
        tiers[1]["at_or_above"] = "no_such_threshold"
        tiers[2]["ref"] = ["nobody2099"]

    edit_yaml(data_copy / "red_flags.yaml", break_tiers)
    reasons = " | ".join(p.reason for p in load_error(data_copy).problems)
    assert "ambulance" in reasons and "no_such_threshold" in reasons and "nobody2099" in reasons


def test_a_published_number_without_its_ref_is_refused(data_copy: Path) -> None:
    def drop_ref(data: Any) -> None:
        entry = variable(data, "corticosteroids")["likelihoods"]["onfh"]
        assert entry["basis"] == "reported"
        del entry["ref"]

    edit_yaml(data_copy / "variables" / "patient.yaml", drop_ref)
    error = load_error(data_copy)
    named = [p for p in error.problems if "needs a ref" in p.reason]
    assert named, error
    assert all("variables/patient.yaml" in p.field and "likelihoods.onfh" in p.field for p in named)


def test_a_derived_number_without_its_ref_is_refused(data_copy: Path) -> None:
    def drop_ref(data: Any) -> None:
        entry = variable(data, "bmd_t_score")["likelihoods"]["toh"]
        assert entry["basis"] == "derived"
        del entry["ref"]

    edit_yaml(data_copy / "variables" / "laboratory.yaml", drop_ref)
    error = load_error(data_copy)
    assert any("variables/laboratory.yaml" in p.field and "likelihoods.toh" in p.field for p in error.problems)


def test_an_estimate_added_without_a_note_is_refused(data_copy: Path) -> None:
    def add_estimate(data: Any) -> None:
        variable(data, "alcohol_excess")["likelihoods"]["toh"] = {"p": {"present": 0.05}, "basis": "estimate", "n": 10}

    edit_yaml(data_copy / "variables" / "patient.yaml", add_estimate)
    error = load_error(data_copy)
    named = [p for p in error.problems if "needs a note" in p.reason]
    assert named, error
    assert all("variables/patient.yaml" in p.field and "likelihoods.toh" in p.field for p in named)


def test_a_prior_estimate_without_a_note_is_refused(data_copy: Path) -> None:
    def drop_note(data: Any) -> None:
        del data["conditions"][0]["prior_provenance"]["note"]

    edit_yaml(data_copy / "conditions.yaml", drop_note)
    error = load_error(data_copy)
    assert any(p.field.startswith("conditions.yaml") and "prior_provenance" in p.field for p in error.problems)


def test_a_transferred_number_needs_its_ref_and_the_population_in_a_note(data_copy: Path) -> None:
    def transfer_without_note_or_ref(data: Any) -> None:
        entry = variable(data, "collapse")["likelihoods"]["onfh"]
        entry["basis"] = "transferred"
        del entry["note"], entry["ref"]

    edit_yaml(data_copy / "variables" / "imaging.yaml", transfer_without_note_or_ref)
    reasons = [p.reason for p in load_error(data_copy).problems if "likelihoods.onfh" in p.field]
    assert any("a transferred item needs a ref" in r for r in reasons), reasons


def test_a_transferred_item_without_a_note_is_refused() -> None:
    with pytest.raises(ValueError, match="naming the population"):
        Provenance(basis="transferred", ref="kiuru2002", n=50)


def test_a_transferred_number_is_drawn_wider_than_the_same_number_reported(data_copy: Path, kb: KnowledgeBase) -> None:
    def transfer(data: Any) -> None:
        entry = variable(data, "collapse")["likelihoods"]["onfh"]
        assert entry["basis"] == "reported"
        entry["basis"] = "transferred"
        entry["note"] = "Measured in another population (test)."

    edit_yaml(data_copy / "variables" / "imaging.yaml", transfer)
    transferred = load_uncached(data_copy)
    onfh = kb.condition_ids.index("onfh")
    row = kb.variables["collapse"].keys[(0, "present")]
    spread = {}
    for name, base in (("reported", kb), ("transferred", transferred)):
        low, high = np.percentile(np.exp(base.log_p_samples[row, :, onfh]), [5, 95])
        spread[name] = high - low
    assert spread["transferred"] > 2 * spread["reported"], spread
    assert transferred.provenance_counts()["transferred"] == kb.provenance_counts()["transferred"] + 1
    np.testing.assert_array_equal(transferred.log_p, kb.log_p)  # the point probabilities stay


def test_transferred_uncertainty_is_below_both_the_study_and_the_transfer_size() -> None:
    from hipdx.knowledge.schema import TRANSFER_N

    for n in (5, 20, 50, 1844):
        transferred = Provenance(basis="transferred", ref="x", note="another population", n=n).effective_n
        assert transferred < min(n, TRANSFER_N)
        assert Provenance(basis="reported", ref="x", n=n).effective_n == n


def test_a_citation_missing_from_the_bibliography_is_refused(data_copy: Path) -> None:
    def cite_nothing(data: Any) -> None:
        variable(data, "collapse")["likelihoods"]["onfh"]["ref"] = "nobody2099"

    edit_yaml(data_copy / "variables" / "imaging.yaml", cite_nothing)
    error = load_error(data_copy)
    assert [p.field for p in error.problems] == ["variables: collapse.onfh[0]"]
    assert "nobody2099" in error.problems[0].reason


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"p: {a: 1, a: 2}\n", "key 'a' is given twice, on line 1"),
        (b"p: {a: 1, b: 2,\n    a: 3}\n", "key 'a' is given twice, on line 1 and line 2"),
        (b"- {x: 1, y: 2, x: 3}\n", "key 'x' is given twice, on line 1"),
    ],
)
def test_a_key_given_twice_on_one_line_is_refused(text: bytes, problem: str) -> None:
    """Flow mappings put both keys on one line: the repeat is still found."""
    from hipdx.knowledge.files import load_yaml

    with pytest.raises(KnowledgeBaseError) as err:
        load_yaml(text, "x.yaml")
    assert [p.reason for p in err.value.problems] == [problem]


def test_a_key_given_twice_in_any_knowledge_file_is_refused(data_copy: Path) -> None:
    path = data_copy / "variables" / "laboratory.yaml"
    text = path.read_text(encoding="utf-8")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.lstrip().startswith("septic: {p: {raised: 0.36}"))
    # the same condition twice in one likelihoods mapping: the second would silently win
    duplicated = text.replace(
        "      septic: {p: {raised: 0.36}",
        "      septic: {p: {raised: 0.90}, basis: estimate, n: 5, note: shadow}\n      septic: {p: {raised: 0.36}",
        1,
    )
    path.write_text(duplicated, encoding="utf-8")
    error = load_error(data_copy)
    assert "variables/laboratory.yaml" in error.message
    assert [str(p) for p in error.problems] == [
        f"variables/laboratory.yaml: key 'septic' is given twice, on line {line} and line {line + 1}"
    ]


def test_the_bundled_files_repeat_no_key() -> None:
    from hipdx.knowledge.files import load_yaml

    for path in sorted(default_data_dir().rglob("*.yaml")):
        load_yaml(path.read_bytes(), path.name)  # raises on a repeated key


def _same_parse(path: Path) -> None:
    from hipdx.knowledge.files import _FastUniqueKeyLoader, _parse, _UniqueKeyLoader

    assert _FastUniqueKeyLoader is not None, "PyYAML without libyaml: the knowledge base loads about three times slower"
    fast, pure = _parse(path.read_bytes(), _FastUniqueKeyLoader), _parse(path.read_bytes(), _UniqueKeyLoader)
    assert (fast.data, fast.duplicates) == (pure.data, pure.duplicates), path


def test_the_fast_parser_reads_a_knowledge_file_and_refuses_bad_yaml_as_the_pure_python_one_does() -> None:
    """libyaml parses when PyYAML has it: the same data as the pure-Python parser (every file: below)."""
    from hipdx.knowledge.files import _FastUniqueKeyLoader, _parse, _UniqueKeyLoader

    _same_parse(default_data_dir() / "staging.yaml")
    text = b"a: 1\nb: {c: 2\nd: 3\n"
    fast, pure = _parse(text, _FastUniqueKeyLoader), _parse(text, _UniqueKeyLoader)
    assert isinstance(fast, yaml.YAMLError) and isinstance(pure, yaml.YAMLError)


@pytest.mark.slow  # the pure-Python parser on every file: about a second and a half
def test_the_fast_parser_reads_every_bundled_file_as_the_pure_python_one_does() -> None:
    """The same data and the same repeated keys from both parsers on every bundled YAML file
    (knowledge, imaging parameters, FHIR tables, extraction rules)."""
    files = sorted(default_data_dir().parents[1].rglob("*.yaml"))
    assert len(files) > 15
    for path in files:
        _same_parse(path)


def test_invalid_yaml_is_named_with_the_pure_python_parsers_message() -> None:
    from hipdx.knowledge.files import _parse, _UniqueKeyLoader, load_yaml

    text = b"a: 1\nb: {c: 2\nd: 3\n"
    with pytest.raises(KnowledgeBaseError) as err:
        load_yaml(text, "x.yaml")
    assert err.value.message == f"x.yaml is not valid YAML: {_parse(text, _UniqueKeyLoader)}"
    assert "line 3" in err.value.message  # it quotes where


def test_removing_a_cited_reference_is_refused_wherever_it_is_cited(data_copy: Path) -> None:
    """rmo2008 is cited by a prior, a likelihood, the staging data and the course data."""

    def remove(data: Any) -> None:
        del data["references"]["rmo2008"]

    edit_yaml(data_copy / "bibliography.yaml", remove)
    error = load_error(data_copy)
    citing = [p.field for p in error.problems if "'rmo2008'" in p.reason and "not in bibliography.yaml" in p.reason]
    for where in ("conditions.yaml: rmo.prior", "variables: sex_pregnancy.rmo", "staging.yaml: migratory_pattern", "course.yaml"):
        assert any(field.startswith(where) for field in citing), (where, citing)


def test_the_unidentified_migratory_series_is_no_longer_cited(kb: KnowledgeBase) -> None:
    """rmo_series pointed at a catalogue abstract with no title, authors or journal."""
    assert "rmo_series" not in kb.references
    rmo_sex = kb.variables["sex_pregnancy"].spec.likelihoods["rmo"]
    assert rmo_sex.basis is Basis.estimate and "could not be identified" in (rmo_sex.note or "")


def test_probabilities_that_do_not_sum_to_one_are_refused(data_copy: Path) -> None:
    def break_sum(data: Any) -> None:
        variable(data, "joint_space")["likelihoods"]["oa"]["p"] = {"preserved": 0.5, "narrowed": 0.4, "destroyed": 0.3}

    edit_yaml(data_copy / "variables" / "imaging.yaml", break_sum)
    error = load_error(data_copy)
    assert any("variables/imaging.yaml" in p.field and "sum to" in p.reason for p in error.problems)


def test_a_red_flag_on_a_state_that_does_not_exist_is_refused(data_copy: Path) -> None:
    def misspell(data: Any) -> None:
        data["red_flags"][0]["triggers"][0]["all_of"] = {"temperature": ["feverish"]}

    edit_yaml(data_copy / "red_flags.yaml", misspell)
    error = load_error(data_copy)
    assert any(p.field == "red_flags.yaml: septic_signs" and "feverish" in p.reason for p in error.problems)


def test_an_early_study_condition_off_the_variables_time_bands_is_refused(data_copy: Path) -> None:
    """``before_day`` names a boundary of the variable's time bands and a state the trigger lists."""

    def misplace(data: Any) -> None:
        rule = next(rf for rf in data["red_flags"] if rf["id"] == "stress_fracture_pattern")
        early = next(t for t in rule["triggers"] if "before_day" in t)
        early["before_day"] = {"mri_edema": 3, "xr_neck_fracture_line": 2}

    edit_yaml(data_copy / "red_flags.yaml", misplace)
    reasons = [p.reason for p in load_error(data_copy).problems if p.field == "red_flags.yaml: stress_fracture_pattern"]
    assert any("before_day mri_edema: 3" in r for r in reasons), reasons
    assert any("before_day xr_neck_fracture_line: 2" in r for r in reasons), reasons


def test_a_test_revealing_an_unknown_variable_is_refused(data_copy: Path) -> None:
    def misspell(data: Any) -> None:
        data["tests"][0]["reveals"] = ["temperatur"]

    edit_yaml(data_copy / "tests.yaml", misspell)
    error = load_error(data_copy)
    assert any("temperatur" in p.reason for p in error.problems)


def test_priors_that_do_not_sum_to_one_are_refused(data_copy: Path) -> None:
    def raise_prior(data: Any) -> None:
        data["conditions"][0]["prior"] = 0.5

    edit_yaml(data_copy / "conditions.yaml", raise_prior)
    error = load_error(data_copy)
    assert any(p.field == "conditions.yaml" and "sum to" in p.reason for p in error.problems)


# --- corrections of the literature (issue 11) --------------------------------------------


def test_the_sif_arthroplasty_share_cites_the_series_that_counted_it(kb: KnowledgeBase) -> None:
    """15 of 44 SIF hips needed THA in Shimizu 2020 (Arthritis Res Ther), not in Ikemura 2016 or Yamamoto 2000."""
    option = kb.treatment.treatments.options["refer_sif"]
    assert "15 of 44" in " ".join(option.regimen.split())
    assert option.refs[0] == "shimizu2020"
    shimizu = kb.references["shimizu2020"]
    assert shimizu.doi == "10.1186/s13075-020-02243-7" and "15 of the 44 hips" in (shimizu.note or "")


def test_the_pvns_incidence_is_not_attributed_to_the_radiographic_series(kb: KnowledgeBase) -> None:
    """1.8 per million and the hip's 15% are stated by Fukui 2013 and Levy 2016 citing earlier work, not by Cotten 1995."""
    prior = kb.condition("pvns").prior_provenance
    assert prior.basis is Basis.estimate
    assert "cotten1995" not in prior.refs
    assert {"fukui2013", "levy2016"} <= set(prior.refs)
    assert "1.8 per million" in (kb.references["fukui2013"].note or "")


def test_a_reference_url_points_at_a_page_not_a_whole_site(kb: KnowledgeBase) -> None:
    """A site's home page identifies no article (rheumatologist_vitd once cited only the-rheumatologist.org)."""
    from urllib.parse import urlparse

    bare = [key for key, ref in kb.references.items() if ref.url and urlparse(ref.url).path in ("", "/") and not urlparse(ref.url).query]
    assert bare == []
    vitamin_d = kb.references["rheumatologist_vitd"]
    assert vitamin_d.authors and vitamin_d.title and vitamin_d.year == 2012


def test_the_vitamin_d_threshold_is_expert_opinion_not_a_reported_cut_off(kb: KnowledgeBase) -> None:
    """25-OH vitamin D of 20 ng/mL before an IV bisphosphonate: no study measured it."""
    rule = next(r for r in kb.treatment.safety.rules if r.id == "iv_bisphosphonate_vitamin_d")
    option = kb.treatment.treatments.options["calcium_vitamin_d"]
    for item in (rule, option):
        assert item.basis is Basis.estimate
        assert "expert opinion" in (item.note or "")


def test_calcium_and_vitamin_d_are_not_presented_as_trial_evidence_for_toh(kb: KnowledgeBase) -> None:
    """The doses come from the background arms of trials in other conditions."""
    from hipdx.knowledge.treatment import Evidence

    option = kb.treatment.treatments.options["calcium_vitamin_d"]
    assert option.evidence is Evidence.expert_opinion
    assert "background" in (option.note or "")


def test_holzer_counts_nine_men_among_twenty_six_patients_with_dxa() -> None:
    """Holzer 2009: 26 patients had DXA, which 'revealed nine men with abnormal bone density'."""
    for path in sorted(default_data_dir().rglob("*.yaml")):
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert "of 26 men" not in text, path.name


def test_vande_berg_2011_carries_its_french_title(kb: KnowledgeBase) -> None:
    ref = kb.references["vandeberg2011"]
    assert ref.title == "Le syndrome d'œdème médullaire de la tête fémorale"
    assert (ref.journal, ref.volume_pages, ref.pmid) == ("J Radiol", "92(6):557-566", "21704251")


def test_a_result_in_words_must_map_to_a_state_of_its_variable(data_copy: Path) -> None:
    edit_yaml(data_copy / "variables" / "laboratory.yaml", lambda d: variable(d, "crp")["source"]["qualitative"].update(raised="very_high"))
    error = load_error(data_copy)
    assert any("crp" in p.field and "very_high" in p.reason for p in error.problems), error


def test_a_raised_crp_in_words_counts_as_both_raised_bins(kb: KnowledgeBase) -> None:
    crp = kb.variables["crp"]
    assert crp.spec.source.qualitative == {"normal": "normal", "raised": "above_normal"}
    assert crp.observables["above_normal"] == ("raised", "high")
    assert kb.variables["temperature"].observables[kb.variables["temperature"].spec.source.qualitative["raised"]] == ("low_grade", "fever")
