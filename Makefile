# Two commands for a newcomer: `make run` and `make test`. Both create .venv when missing and install the
# package with its dependencies first.
PYTHON ?= python3
# no usage reports to vendors from any target (the notebook tests import onnxruntime and MLflow without `lifecycle`);
# the values of lifecycle.core.vendors.NO_TELEMETRY
export ORT_DISABLE_TELEMETRY ?= 1
export MLFLOW_DISABLE_TELEMETRY ?= true
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# On AMD Zen 4, the tests' numpy sorts with its AVX2 kernels as the `lifecycle` command's does (lifecycle.core.cpu:
# its AVX-512 sort is six times slower there); evaluated for each recipe, once .venv exists; a value of yours is kept
ifeq ($(origin NPY_DISABLE_CPU_FEATURES),undefined)
export NPY_DISABLE_CPU_FEATURES = $(shell test -x $(BIN)/python && $(BIN)/python -c \
  'from lifecycle.core.cpu import avx2_sort; print(avx2_sort().get("NPY_DISABLE_CPU_FEATURES", ""))' 2>/dev/null)
endif

.PHONY: help setup constraints run test test-fast lint check-sync nbdev-test pytest test-parallel lab bench clean-state

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# uv installs the same tested set as pip in a fraction of the time (it downloads in parallel); pip is the fallback.
# --compile-bytecode: like pip, write the .pyc files at install time. Without them, where PYTHONDONTWRITEBYTECODE is set
# (as on the CI machines), every process compiles MLflow, scikit-learn and pandas from source at each import.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet uv \
	  && $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -c constraints.txt -e ".[dev]" \
	  || $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# Every recipe writes .pyc files (under __pycache__/, ignored by git) even where PYTHONDONTWRITEBYTECODE is set: the
# tests start hundreds of Python processes (CLI calls, stage kernels, servers), and without them each compiles the
# lifecycle package from source again and each pytest worker rewrites the asserts of every test module again.
unexport PYTHONDONTWRITEBYTECODE

# The test targets write their temporary files in RAM where /dev/shm allows it (why, and when not: tests/in_ram.sh);
# LIFECYCLE_TEST_TMP=disk, or a TMPDIR of yours, keeps them on disk.
IN_RAM := bash tests/in_ram.sh

setup: $(STAMP) ## create .venv and install the workspace (only when pyproject.toml changed)

run: setup ## run the whole lifecycle on the default dataset
	$(BIN)/lifecycle run

test: setup lint check-sync test-parallel ## everything CI runs: lint, notebook/library sync, notebook asserts and pytest

# --dist loadfile: each test file runs on one worker, so a module's fixtures and heavy imports (Evidently, MLflow) are
# paid once, not on every worker (115 s against 129 s here). Three workers on two cores, as `make pytest`: an in-process
# server's test waits for its log's writer process to start (0.2 s), a test for a file's lock or a thread (run in turn
# on 7 December: 112-131 s against 127-142 s with two, each of three pairs faster with three, at about the same CPU).
test-fast: setup ## the fast tier: unit tests, three-row frames, in-process server; no pipeline run (under two minutes)
	$(IN_RAM) $(BIN)/python -m pytest -m "not slow" -n 3 --dist loadfile

lint: setup ## ruff (rules in pyproject.toml [tool.ruff]) on the notebooks, library, tests, benchmarks and CI scripts
	$(BIN)/ruff check .

# The notebook asserts and the pytest suite side by side, each output kept together; either failing fails `make test`.
# Both write their temporary files in one folder in RAM (tests/in_ram.sh).
test-parallel: setup
	@$(IN_RAM) $(MAKE) --no-print-directory -j2 --output-sync=target nbdev-test pytest

check-sync: setup ## fail if nbdev-export or nbdev-clean would change any file
	@$(BIN)/python .ci/check_sync.py

nbdev-test: setup ## run the asserts in the library notebooks
	$(IN_RAM) $(BIN)/nbdev-test --n-workers 2

pytest: setup ## every pytest tier (end-to-end, servers, reliability), three workers on two cores (many tests wait on a server or a subprocess), random order (seed in the header)
	$(IN_RAM) $(BIN)/python -m pytest -n 3 --dist loadfile -p randomly --durations=15

lab: setup ## JupyterLab on the workspace (installed on first use: the `lab` extra); stage notebooks run there with the params/ defaults
	@test -x $(BIN)/jupyter-lab || $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -c constraints.txt -e ".[lab]" \
	  || $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[lab]"
	$(BIN)/jupyter lab --notebook-dir=.

constraints: ## re-resolve pyproject.toml with pip in a throw-away venv and write the tested set to constraints.txt
	@rm -rf .venv-resolve && $(PYTHON) -m venv .venv-resolve
	.venv-resolve/bin/python -m pip install --quiet -e ".[dev,lab]"
	@{ sed -n 1,2p constraints.txt; .venv-resolve/bin/python -m pip freeze --exclude-editable \
	  | grep -v -i -E '^(pip|setuptools|wheel)=='; } > constraints.txt.tmp \
	  && mv constraints.txt.tmp constraints.txt && rm -rf .venv-resolve

bench: setup ## time `lifecycle run` cold and warm
	$(BIN)/python benchmarks/pipeline_speed.py

clean-state: ## delete all workspace state and generated reports (asks first; settings.ini's trust pins stay)
	@read -p "delete .lifecycle/ and reports/runs, reports/site? [y/N] " a && [ "$$a" = y ] && rm -rf .lifecycle reports/runs reports/site \
	  && { ! grep -qiE '^[[:space:]]*administrator[[:space:]]*[=:]' settings.ini || echo "settings.ini still pins the trust administrator's key: remove its [trust] administrator line by hand to run lifecycle trust init again"; } || true
