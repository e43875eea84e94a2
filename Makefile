# `make test` is the one command: it installs what is missing (system packages, .venv), then runs
# lint, type checks and the whole test suite. CI runs it through .ci/run.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test
MAKEFLAGS += --no-print-directory

# The interpreter .venv is made with (3.11 or newer): `make demo PYTHON=python3.12` to choose.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The goal that messages about the interpreter name (make demo PYTHON=...).
VENV_GOAL ?= $(firstword $(MAKECMDGOALS) test)

.PHONY: test demo lint typecheck pytest fmt bench coverage venv system-deps clean

## test: everything CI runs: system deps, venv, ruff, mypy, then pytest (slow tests included)
test: system-deps venv
	@$(MAKE) lint
	@$(MAKE) pytest

## demo: the Django demo on http://127.0.0.1:8000/: migrations, demo data, an admin user with a
## fresh random password (printed once), some traffic, then runserver. SQLite and the in-memory
## backend; set PYTHEUS_REDIS_URL=redis://127.0.0.1:6379/0 for the Redis backend (and a Redis cache).
DEMO_ADDR ?= 127.0.0.1:8000
demo:
	@# A demo already running there: one line, before anything is made, migrated or sent.
	@bash scripts/port-free.sh $(DEMO_ADDR)
	@$(MAKE) venv VENV_GOAL=demo
	@$(BIN)/python manage.py demo_setup --url http://$(DEMO_ADDR)/
	@# The traffic waits for the server to answer, then stops; killed with the server otherwise.
	@$(BIN)/python manage.py generate_traffic --url http://$(DEMO_ADDR)/ --wait 60 \
		--requests 60 --timeout 60 & traffic=$$!; \
	trap 'kill $$traffic 2>/dev/null || true' EXIT; \
	$(BIN)/python manage.py runserver $(DEMO_ADDR)

## system-deps: install redis-server, prometheus (promtool) and chromium (Debian packages, about
## 460 MB installed, chromium alone 355 MB) when they are missing, showing apt's progress
system-deps:
	@bash scripts/install-system-deps.sh

## venv: create .venv with $(PYTHON) (3.11 or newer, checked first; a .venv made by another
## version is made again) and install the project with its dev extras (again when
## pyproject.toml changes), showing pip's progress
venv:
	@bash scripts/venv.sh "$(PYTHON)" "$(VENV)" "$(VENV_GOAL)" "$(origin PYTHON)"

## lint: ruff (lint and format check), the import layers (import-linter) and mypy
lint: venv
	@echo "lint: ruff check"
	@$(BIN)/ruff check --quiet .
	@echo "lint: ruff format --check"
	@$(BIN)/ruff format --check --quiet .
	@echo "lint: import layers"
	@out=$$($(BIN)/lint-imports --no-cache --no-logo 2>&1) || { echo "$$out"; exit 1; }
	@$(MAKE) typecheck

## typecheck: mypy --strict on the files configured in pyproject.toml (pytheus, django_pytheus)
typecheck: venv
	@if [ -d pytheus ]; then \
		echo "lint: mypy"; $(BIN)/mypy; \
	else \
		echo "lint: mypy skipped: there is no pytheus/ package yet"; \
	fi

## pytest: the whole test suite; pass options with ARGS='-k redis -x'
pytest: system-deps venv
	@$(BIN)/pytest $(ARGS)

## fmt: fix what ruff can fix, then format
fmt: venv
	@$(BIN)/ruff check --fix --quiet . || true
	@$(BIN)/ruff format .

## bench: the benchmarks against the peers
bench: venv
	@$(BIN)/python benchmarks/run.py

## coverage: the test suite under coverage, then a report
coverage: system-deps venv
	@$(BIN)/coverage erase
	@$(BIN)/coverage run -m pytest $(ARGS)
	@$(BIN)/coverage combine --quiet
	@$(BIN)/coverage report

## clean: remove the venv and caches
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage .coverage.* htmlcov
