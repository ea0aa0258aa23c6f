# Two commands for a newcomer: `make run` and `make test`. Both create .venv when missing and install the
# package with its dependencies first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help setup run test check-sync nbdev-test pytest lab bench clean-state

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the workspace (only when pyproject.toml changed)

run: setup ## run the whole lifecycle on the default dataset
	$(BIN)/lifecycle run

test: setup check-sync nbdev-test pytest ## the whole test suite: notebook/library sync, notebook asserts, pytest

check-sync: setup ## fail if nbdev-export or nbdev-clean would change any file
	@$(BIN)/python .ci/check_sync.py

nbdev-test: setup ## run the asserts in the library notebooks
	$(BIN)/nbdev-test --n-workers 2

pytest: setup ## end-to-end, integration and reliability tests
	$(BIN)/python -m pytest -q

lab: setup ## JupyterLab on the workspace; stage notebooks run there with the params/ defaults
	$(BIN)/jupyter lab --notebook-dir=.

bench: setup ## time `lifecycle run` cold and warm
	$(BIN)/python benchmarks/pipeline_speed.py

clean-state: ## delete all workspace state and generated reports (asks first)
	@read -p "delete .lifecycle/ and reports/runs, reports/site? [y/N] " a && [ "$$a" = y ] && rm -rf .lifecycle reports/runs reports/site || true
