# Two commands do all the set-up: `make serve` runs the server, `make test` passes the tests.
#
# Everything installs from the lock: uv itself from requirements/uv.txt (exact version, hashes),
# then every Python package from uv.lock (exact versions, hashes). pyproject.toml keeps the
# ranges a user of the package gets; `make lock` refreshes the lock, in a commit of its own.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
# uv never downloads an interpreter: it uses the one named here (and scripts/find-python's).
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
SYNC := $(UV) sync --locked --python $(PYTHON)

.PHONY: serve test lint unit conformance conformance-server conformance-client wstest clean lock \
	sync-serve sync-dev test-pythons test-bounds soak bench bench-all

# uv, pinned by hash, in a venv of its own: the one tool that installs the rest from uv.lock.
$(UV): requirements/uv.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "rawws needs Python 3.11 or newer")'
	rm -rf $(UV_HOME)
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/uv.txt

# Serving needs rawws and its own dependencies only (`--inexact`: a venv made by `make test` keeps its tools).
sync-serve: $(UV)
	@$(SYNC) --quiet --no-default-groups --inexact

# The tests, lint and bench need every group of pyproject.toml's [dependency-groups] on top.
sync-dev: $(UV)
	@$(SYNC) --quiet --all-groups

## serve: run `rawws serve` on 127.0.0.1:8765 (ARGS="--echo --port 9000" to change it)
serve: sync-serve
	$(BIN)/rawws serve $(ARGS)

## test: lint and types, the tests on this Python, the tests on 3.12 and 3.13, then both Autobahn suites
test: lint unit test-pythons conformance

## lint: ruff format --check and ruff check over the tree, mypy --strict over the package
lint: sync-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy --strict rawws

unit: sync-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-pythons: the unit and integration tests again on every other supported Python (3.12, 3.13),
## each in its own venv from the same lock; one not found is skipped, except under CI=true
test-pythons: $(UV)
	@$(PYTHON) scripts/test_pythons.py --skip "$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" $(PYTEST_ARGS)

## test-bounds: the tests with the lowest and with the newest versions pyproject.toml's ranges allow
test-bounds: $(UV)
	@$(PYTHON) scripts/test_bounds.py $(PYTEST_ARGS)

conformance: conformance-server conformance-client

conformance-server: sync-dev
	$(BIN)/python -m conformance server

conformance-client: sync-dev
	$(BIN)/python -m conformance client

## wstest: install the Autobahn TestSuite (Python 2.7) into its cache, once, from requirements/wstest-py27.txt
wstest: sync-dev
	$(BIN)/python -m conformance.wstest

## soak: the reliability suite's short profile (PROFILE=long for a release; ARGS for more)
PROFILE ?= short
soak: sync-dev
	$(BIN)/python -m soak --profile $(PROFILE) $(ARGS)

## bench: the benchmark harness (bench/): every echo server, round by round → bench/RESULTS.md + bench/plots/
## (ARGS="--quick" for a smoke run; `python -m bench --help` lists the rest)
bench: sync-dev
	$(BIN)/python -m bench $(ARGS)

## bench-all: the whole page in one go (~45 min, quiet machine): the bench, then the studies that write
## their blocks into bench/RESULTS.md (the chat's authenticated handshake, a room of 100,000, steady rates)
bench-all: sync-dev
	$(BIN)/python -m bench
	$(BIN)/python -m experiments.perf.auth_handshake --rounds 7 --handshakes 3000 --results bench/RESULTS.md
	$(BIN)/python -m experiments.scale big --members 100000 --workers 6 --messages 20 --interval 2 --results bench/RESULTS.md
	$(BIN)/python -m experiments.scale rate --members 1000 --rates 50,100,150,200,400 --duration 10 --postgres --results bench/RESULTS.md

## lock: resolve the newest versions the ranges allow into uv.lock and requirements/uv.txt (commit it alone)
lock: $(UV)
	$(UV) lock --upgrade
	$(UV) pip compile --quiet --upgrade --universal --generate-hashes --no-header requirements/uv.in -o requirements/uv.txt

clean:
	rm -rf $(VENV) $(VENV)-3.* $(VENV)-bounds-* $(UV_HOME) .pytest_cache .hypothesis dist build
