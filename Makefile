# Two set-up commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run demo test test-fast bench fuzz fuzz-imaging fuzz-api bench-service clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TSTAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

run: $(STAMP)  ## the web pages, REST API and CDS services on http://127.0.0.1:8000 with the example cases and a demo sign-in; Ctrl-C stops
	$(BIN)/hipdx run --port 8000 --data-dir .hipdx-run --examples examples

demo: $(STAMP)  ## assess the bundled example cases and print their differentials
	$(BIN)/hipdx demo examples

test: $(TSTAMP)  ## install with test extras and run the whole suite
	$(BIN)/python -m pytest

test-fast: $(TSTAMP)  ## the fast suite to run after every change (53 s on an idle 2-CPU machine, more beside other work): no `slow`, no `real_data` tests (docs/testing.md)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not real_data"

bench: $(STAMP)  ## speed benchmarks (ratios against baselines measured in the same run); fails if a target fails
	$(BIN)/python benchmarks/bench_reasoning.py; r1=$$?; $(BIN)/python benchmarks/bench_mri.py; r2=$$?; \
	$(BIN)/python benchmarks/bench_web.py; r3=$$?; exit $$(( r1 || r2 || r3 ))

FUZZ_EXAMPLES ?= 20000
fuzz: $(TSTAMP)  ## the fuzz targets of tests/test_fuzz.py with FUZZ_EXAMPLES random inputs each (docs/reliability.md)
	HIPDX_HYPOTHESIS_PROFILE=fuzz HIPDX_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py -q \
		-p no:cacheprovider --hypothesis-show-statistics

fuzz-imaging: $(TSTAMP)  ## a longer run of the imaging readers' fuzz targets (docs/reliability.md, "Imaging readers")
	HIPDX_FUZZ_EXAMPLES=$${HIPDX_FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest tests/test_fuzz_imaging.py -q --hypothesis-show-statistics

API_FUZZ_EXAMPLES ?= 120
fuzz-api: $(TSTAMP)  ## requests generated from /openapi.json (schemathesis: coverage phase + fuzzing, > 10,000) on SQLite and PostgreSQL; fails on any 5xx
	for db in sqlite postgresql; do \
		HIPDX_API_FUZZ_DATABASE=$$db HIPDX_API_FUZZ_PHASES=examples,coverage,fuzzing HIPDX_API_FUZZ_EXAMPLES=$(API_FUZZ_EXAMPLES) \
		$(BIN)/python -m pytest tests/test_api_schema.py -q -s -p no:cacheprovider || exit 1; done

bench-service: $(STAMP)  ## patient-view under load (16 clients, 60 s) beside a no-op endpoint of the same server (benchmarks/README.md)
	$(BIN)/python benchmarks/bench_service.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis .hipdx-run

# -- printable reports (hipdx report, hipdx patient-sheet) -----------------------------------------
# WeasyPrint lays the PDF out with the system's Pango; the tests turn a page into PNG with pdftoppm.
.PHONY: report-deps report-images
# libharfbuzz-subset0: without it WeasyPrint 70 warns at its import, which the strict tests turn into an error
REPORT_DEBS := poppler-utils libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core

report-deps:  ## the Debian packages the PDF reports and their tests need (Pango, HarfBuzz's subsetter, poppler-utils, DejaVu fonts)
	@if ! command -v pdftoppm >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so' \
	    || ! ldconfig -p 2>/dev/null | grep -q 'libharfbuzz-subset.so'; then \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $(REPORT_DEBS); \
	fi

report-images: $(STAMP) report-deps  ## docs/report-page1.png and docs/patient-sheet.png from the example cases
	$(BIN)/hipdx report examples/toh_pregnancy_34_weeks.json --today 2026-11-25 --out build/report.pdf --force
	pdftoppm -png -r 80 -f 1 -l 1 -singlefile build/report.pdf docs/report-page1
	$(BIN)/hipdx patient-sheet --out build/patient-sheet.pdf --force
	pdftoppm -png -r 80 -singlefile build/patient-sheet.pdf docs/patient-sheet
