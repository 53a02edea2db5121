# One venv for everything; every target installs what it needs first, so a fresh clone needs only `make`.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
# Lambda runs Python 3.12; prefer pyenv's 3.12 when it is there, else any python3 >= 3.11.
PYTHON ?= $(shell for p in "$$(pyenv root 2>/dev/null)/versions/3.12"*/bin/python3.12 python3.12 python3; do \
             command -v "$$p" >/dev/null 2>&1 && { echo "$$p"; break; }; done)
PORT ?= 8765
PYTEST_ARGS ?=

.PHONY: help install browser lock check-lock check-build serve test unit integration e2e lint format typecheck validate bench mutants screenshots build deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# uv installs from the lock (uv.lock): exactly the versions CI ran, in seconds. uv itself is pinned and
# lives in .tools, apart from the project's venv, which `uv sync` keeps exactly as the lock says.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
UV_GROUPS := --extra local --group dev --group layer

$(UV):
	@echo "==> installing uv $(UV_VERSION) into .tools with $(PYTHON)"
	@$(PYTHON) -m venv .tools
	@.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(BIN)/.installed: pyproject.toml uv.lock | $(UV)
	@echo "==> installing the locked dependencies into $(VENV) (uv sync --frozen)"
	@$(UV) sync --quiet --frozen $(UV_GROUPS) --python $(PYTHON)
	@touch $@

install: $(BIN)/.installed ## create .venv and install the project with its dev tools, from uv.lock

# The dashboard's browser tests drive Debian's Chromium (Playwright's own browser download cannot reach
# its host here). Installed with apt when missing: as root, or through sudo.
CHROMIUM := $(shell command -v chromium chromium-browser 2>/dev/null | head -n 1)
browser: ## install Debian's Chromium for the dashboard's browser tests, if it is missing
ifeq ($(CHROMIUM),)
	@echo "==> installing Chromium (apt-get install chromium) for the dashboard's browser tests"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	  echo "Chromium is missing and this is not root: install it (apt-get install chromium), then run make again"; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null
endif

lock: $(UV) ## after editing pyproject.toml's dependencies: re-resolve uv.lock, export the layer's requirements
	$(UV) lock --python $(PYTHON)
	$(UV) export --quiet --frozen --only-group layer --no-emit-project > layers/core/requirements.txt

check-lock: $(UV) ## uv.lock agrees with pyproject.toml, and the layer's requirements with uv.lock
	$(UV) lock --locked --python $(PYTHON)
	@$(UV) export --quiet --frozen --only-group layer --no-emit-project | diff -u layers/core/requirements.txt - \
	  || { echo "layers/core/requirements.txt is not what uv.lock says: run \`make lock\`"; exit 1; }

serve: install ## start the local stack: moto on loopback, the HTTP API on :8765, the queue worker
	$(BIN)/pipelinejobs serve --port $(PORT)

test: install browser ## run the whole test suite (unit, integration, end-to-end, the dashboard in Chromium)
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

unit: install ## unit tests only (no AWS at all)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: install ## integration tests (moto in-process)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

e2e: install browser ## end-to-end tests (the local stack over real HTTP, the dashboard in Chromium)
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install ## mypy (strict on the domain core)
	$(BIN)/mypy layers/core/jobcore functions pipelinejobs

validate: install ## cfn-lint and the SAM translator, offline
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python -m pipelinejobs.local.validate template.yaml

# Each benchmark exits 3 when a target is missed (its figures are printed either way); any other
# failure stops the run. Results and how they were obtained: docs/PERFORMANCE.md.
bench: install check-build ## benchmarks: cost per event, cold start (of the built artifacts too), throughput
	@missed=""; for b in benchmarks/[!_]*.py; do echo "==> $$b"; $(BIN)/python $$b; rc=$$?; \
	  if [ $$rc -eq 3 ]; then missed="$$missed $$b"; elif [ $$rc -ne 0 ]; then exit $$rc; fi; echo; done; \
	  if [ -n "$$missed" ]; then echo "targets missed in:$$missed (see docs/PERFORMANCE.md)"; exit 3; fi; \
	  echo "every target met"

screenshots: install browser ## the README's pictures of the dashboard (docs/img/), from a local stack with sample jobs
	$(BIN)/python docs/screenshots.py

mutants: install ## break each guard on purpose, one at a time; the targeted tests must notice (minutes)
	$(BIN)/python tests/mutation/mutants.py

# The AWS SAM CLI, pinned with hashes in .ci/sam-requirements.txt, in its own venv (its pins of boto3
# and click are older than ours, so it cannot share the project's lock).
SAM := .tools/sam/bin/sam
PY312_DIR = $(dir $(shell command -v $(PYTHON)))

$(SAM): .ci/sam-requirements.txt | $(UV)
	@echo "==> installing the AWS SAM CLI into .tools/sam"
	@$(UV) venv --quiet --allow-existing --python $(PYTHON) .tools/sam
	@$(UV) pip install --quiet --python .tools/sam/bin/python --require-hashes -r .ci/sam-requirements.txt
	@touch $@

build: $(SAM) ## sam build: the layer from the lock, compiled to bytecode (needs Python 3.12)
	PATH="$(PY312_DIR):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM) build

check-build: install $(SAM) ## sam build, then check sizes, versions, bytecode and imports of the artifacts
	$(BIN)/python tests/build/check_artifacts.py --sam $(SAM) --python $(PYTHON)

deploy: build ## sam deploy --guided
	SAM_CLI_TELEMETRY=0 $(SAM) deploy --guided

clean: ## remove the venv and caches
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache .aws-sam
