# One entry point per task; CI (.ci/run) calls `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install bench openapi samples screenshots

$(BIN)/gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[server,test]'
	@touch $(BIN)/gateway

install: $(BIN)/gateway

## Install, then start the gateway on the embedded default (SQLite and keys under ./var).
run: install
	$(BIN)/gateway serve

## Install, then run lint, type checks and the whole test suite (SQLite and a throwaway PostgreSQL).
test: install lint
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check src tests migrations $(wildcard scripts bench)
	$(BIN)/mypy

openapi: install
	$(BIN)/gateway openapi

samples: install
	$(BIN)/python scripts/make_samples.py

## The README's console screenshots (docs/console-*.png), from the demo's data in a headless Chromium.
screenshots: install
	$(BIN)/python scripts/console_screenshots.py

bench: install
	$(BIN)/python -m bench
