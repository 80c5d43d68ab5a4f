# Two commands do all the set-up: `make serve` runs the server, `make test` passes the tests.
# Each bootstraps .venv from pyproject.toml on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.installed-serve

.PHONY: serve test lint unit conformance conformance-server conformance-client wstest clean

# Serving needs rawws and its own dependencies only; the tests (and the bench tests they include)
# need the test and bench extras on top: two stamps, so `make serve` never installs Playwright & co.
$(SERVE_STAMP): pyproject.toml setup.py rawws/core/_mask.c
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "rawws needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(STAMP): $(SERVE_STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $@

## serve: run `rawws serve` on 127.0.0.1:8765 (ARGS="--echo --port 9000" to change it)
serve: $(SERVE_STAMP)
	$(BIN)/rawws serve $(ARGS)

## soak: the reliability suite's short profile (PROFILE=long for a release; ARGS for more)
.PHONY: soak
PROFILE ?= short
soak: $(STAMP)
	$(BIN)/python -m soak --profile $(PROFILE) $(ARGS)

## test: lint and types, the unit and integration tests, then the Autobahn conformance suites
test: lint unit conformance

## lint: ruff over the tree and mypy --strict over the package
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict rawws

unit: $(STAMP)
	$(BIN)/python -m pytest

conformance: conformance-server conformance-client

conformance-server: $(STAMP)
	$(BIN)/python -m conformance server

conformance-client: $(STAMP)
	$(BIN)/python -m conformance client

## wstest: install the Autobahn TestSuite (Python 2.7) into its cache, once
wstest: $(STAMP)
	$(BIN)/python -m conformance.wstest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

## bench: the benchmark harness (bench/): every echo server, round by round → bench/RESULTS.md + bench/plots/
## (ARGS="--quick" for a smoke run; `python -m bench --help` lists the rest)
.PHONY: bench
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[bench]'
	@touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(ARGS)
