# Two set-up commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run test test-fast bench fuzz fuzz-imaging clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TSTAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

run: $(STAMP)  ## assess the bundled example cases and print their differentials
	$(BIN)/hipdx demo examples

test: $(TSTAMP)  ## install with test extras and run the whole suite
	$(BIN)/python -m pytest

test-fast: $(TSTAMP)  ## the fast suite to run after every change (under a minute): no `slow`, no `real_data` tests (docs/testing.md)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not real_data"

bench: $(STAMP)  ## speed benchmarks (ratios against baselines measured in the same run); fails if a target fails
	$(BIN)/python benchmarks/bench_reasoning.py; r1=$$?; $(BIN)/python benchmarks/bench_mri.py; r2=$$?; exit $$(( r1 || r2 ))

FUZZ_EXAMPLES ?= 20000
fuzz: $(TSTAMP)  ## the fuzz targets of tests/test_fuzz.py with FUZZ_EXAMPLES random inputs each (docs/reliability.md)
	HIPDX_HYPOTHESIS_PROFILE=fuzz HIPDX_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py -q \
		-p no:cacheprovider --hypothesis-show-statistics

fuzz-imaging: $(TSTAMP)  ## a longer run of the imaging readers' fuzz targets (docs/reliability.md, "Imaging readers")
	HIPDX_FUZZ_EXAMPLES=$${HIPDX_FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest tests/test_fuzz_imaging.py -q --hypothesis-show-statistics

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
