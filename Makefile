# Everything runs from .venv, created on first use; the install is redone only when
# pyproject.toml changes (the stamp file records the last install). GraphiQL's assets are
# built into graphiql/dist/ when npm is there, again only when their sources or lock changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
GRAPHIQL_STAMP := graphiql/dist/.built
GRAPHIQL_SOURCES := graphiql/package.json graphiql/package-lock.json graphiql/build.mjs $(wildcard graphiql/src/*)
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: demo serve test lint typecheck migrate seed schema graphiql graphiql-if-npm

## make demo: install if needed, migrate, seed the demo organization, print a token, serve
demo: $(STAMP) graphiql-if-npm
	$(BIN)/pcg serve --demo --host $(HOST) --port $(PORT)

## make serve: install if needed, migrate and serve (no demo data)
serve: $(STAMP) graphiql-if-npm
	$(BIN)/pcg serve --host $(HOST) --port $(PORT)

## make test: install if needed and run the whole test suite
test: $(STAMP) graphiql-if-npm
	$(BIN)/pytest -q

## make lint: ruff over the whole tree (configured in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .

## make typecheck: mypy, strict, over models/ and resolvers/ ([tool.mypy] in pyproject.toml)
typecheck: $(STAMP)
	$(BIN)/mypy

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

## make graphiql: build GraphiQL's assets from the pinned lock file (needs Node.js 20+ and npm)
graphiql: $(GRAPHIQL_STAMP)

$(GRAPHIQL_STAMP): $(GRAPHIQL_SOURCES)
	cd graphiql && npm ci --no-audit --no-fund --loglevel=error && npm run build
	touch $(GRAPHIQL_STAMP)

# demo, serve and test build GraphiQL when they can; without npm (or when the build fails) the
# page at /graphql falls back to GraphiQL from unpkg and says how to build it.
graphiql-if-npm:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory graphiql || echo "make: GraphiQL's build failed; /graphql falls back to unpkg (retry with: make graphiql)" >&2; \
	else \
		echo "make: npm not found; /graphql falls back to GraphiQL from unpkg (install Node.js 20+ and npm, then: make graphiql)" >&2; \
	fi
