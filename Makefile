# Two commands on a fresh machine: `make setup`, then `make test`.
SHELL := /bin/bash
CORE := .venvs/core/bin
PYTEST_ARGS ?=

.PHONY: setup lock test test-fast run up down status lint bench compare

setup:            ## create the three virtual environments from the lockfiles (idempotent)
	@bash scripts/setup.sh

lock:             ## regenerate requirements/*.txt lockfiles with uv
	@bash scripts/lock.sh

test:             ## run the whole test suite (unit + integration)
	@$(CORE)/python -m pytest $(PYTEST_ARGS)

test-fast:        ## run the unit tests only (no services; seconds)
	@$(CORE)/python -m pytest tests/unit $(PYTEST_ARGS)

run:              ## run the main job (embedded mode by default)
	@$(CORE)/lakehouse run

up:               ## start the local service stack
	@$(CORE)/lakehouse up

down:             ## stop the local service stack
	@$(CORE)/lakehouse down

status:
	@$(CORE)/lakehouse status

lint:
	@$(CORE)/ruff check .

bench:            ## run every benchmark script and print its figures
	@for b in benchmarks/*_bench.py; do echo "== $$b"; $(CORE)/python $$b || exit 1; done

compare:          ## every issue-16 figure beside its anchor in one run (ARGS="--quick --only catalog,ingest")
	@$(CORE)/python benchmarks/compare.py $(ARGS)
