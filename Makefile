# Two commands on a fresh machine: `make run` (the service, embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml client/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test test-fast lint typecheck contracts bench clean openapi

# Two distributions: the client (client/, shears-client) and the server, which depends on it; one
# pip call installs both from this checkout. The mcu extra (tflite-micro) installs only on x86_64 Linux.
$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./client -e '.[dev,mcu]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/shears serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy contract app workers pruning shears client/shears_client

contracts: install
	$(BIN)/lint-imports

# The suite in TEST_WORKERS processes (pytest-xdist): most of its time is live services waiting on
# each other, so two processes on two cores take about half the time. Each process starts its own
# services on free ports, a database and a Redis database number of its own (tests/services.py).
TEST_WORKERS ?= 2

test: lint typecheck contracts
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# While working: unit and in-process tests only, no subprocess services (see README, "Test tiers").
test-fast: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not service and not slow" -q

bench: install
	$(BIN)/python bench/service_overhead.py
	$(BIN)/python bench/upload_memory.py

# The published API document (docs/openapi.json); tests/api/test_openapi.py fails when it is stale.
openapi: install
	$(BIN)/python -c 'import json; from app.api.main import app; print(json.dumps(app.openapi(), indent=2))' > docs/openapi.json

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
