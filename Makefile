# Everything runs from .venv, created on first use; the install is redone only when
# pyproject.toml changes (the stamp file records the last install).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: demo serve test migrate seed schema

## make demo: install if needed, migrate, seed the demo organization, print a token, serve
demo: $(STAMP)
	$(BIN)/pcg serve --demo --host $(HOST) --port $(PORT)

## make serve: install if needed, migrate and serve (no demo data)
serve: $(STAMP)
	$(BIN)/pcg serve --host $(HOST) --port $(PORT)

## make test: install if needed and run the whole test suite
test: $(STAMP)
	$(BIN)/pytest -q

## make migrate: apply pending migrations to PCG_DATABASE_URL
migrate: $(STAMP)
	$(BIN)/pcg migrate

## make seed: create the demo organization (once) and print a token
seed: $(STAMP)
	$(BIN)/pcg seed --demo

## make schema: regenerate schema.graphql from the code
schema: $(STAMP)
	$(BIN)/pcg export-schema --output schema.graphql

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)
