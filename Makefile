# One place for set-up, checks, tests and benchmarks; CI runs the same targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: help setup serve test check format bench system-deps clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv, install faceflow, pull and verify the models
	$(BIN)/faceflow models pull

serve: setup  ## set up, then start the service on the embedded default (ARGS="--port 9000")
	$(BIN)/faceflow serve $(ARGS)

system-deps:  ## install redis-server and Chromium for the tests (root only; no-op when present)
	scripts/system-deps.sh

test: setup system-deps  ## set up, then run the whole test suite
	scripts/test.sh $(ARGS)

check: $(STAMP)  ## ruff lint + format check, mypy --strict, the import-layer contract
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

BENCH ?= stages

bench: setup  ## run one benchmark of bench/ (BENCH=stages|service|idphoto|jobs, ARGS="--help")
	$(BIN)/python bench/$(BENCH).py $(ARGS)

clean:  ## remove the virtualenv and caches (not the pulled models)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
