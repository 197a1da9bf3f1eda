# The one place that defines how jobyard is set up, run, checked and tested.
# README and .ci/run call these targets.

PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install up serve fmt lint typecheck test test-fast fuzz bench clean browser tmux

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# PyPI xplenty 3.0.0 (the Xplenty dialect's client test) declares Python 3.7 only and
	# pins an old python-dateutil; it runs on 3.11 with the current dateutil (pinned above).
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python "$$(grep -i '^xplenty==' constraints.txt)"
	touch $(STAMP)

install: $(STAMP)

# Run jobyard on this machine: server on embedded SQLite, first admin, a local agent.
# Flags of `jobyard up` go in ARGS: make up ARGS="--host 0.0.0.0 --port 8500".
up: install
	$(BIN)/jobyard up $(ARGS)

serve: install
	$(BIN)/jobyard serve

fmt: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

# Browser tests use Debian's Chromium; install it when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed"

# The command line's live view is tested in a real terminal: tmux.
tmux:
	@command -v tmux >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null) || echo "tmux could not be installed"

test: install browser tmux
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -x -m "not e2e" $(PYTEST_ARGS)

# A longer schemathesis run than the suite's (examples per operation: FUZZ_EXAMPLES).
FUZZ_EXAMPLES ?= 100
fuzz: install
	JOBYARD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider tests/api/test_fuzz_openapi.py

# Benchmarks (bench/, BENCHMARKS.md): the compared queues and py-spy, and Debian's wrk.
bench: install
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) || echo "wrk could not be installed: the asyncio load generator is used"
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .jobyard .mypy_cache .ruff_cache
