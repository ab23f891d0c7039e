# One-command development and testing. `make help` lists the targets.
#
#   make dev    install what is missing, start the whole local stack, Ctrl-C stops it
#   make test   install what is missing, then lint + type checks + pytest (what CI runs)
#
# Needs only python3 (3.11+), java (17+) and node/npm (20+) on PATH, plus Google's
# Firestore emulator jar (see README.md). Installs are stamped, so re-runs are instant.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TASKS_VENV := .venv-tasks
PIP_FLAGS := --quiet --disable-pip-version-check
PYTEST_ARGS ?=

# Stamps: a target is rebuilt only when its inputs are newer than its stamp.
PY_STAMP := $(VENV)/.installed
TASKS_STAMP := $(TASKS_VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: help venv dev stop status seed test test-fast lint typecheck pytest fmt clean distclean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort \
	  | awk 'BEGIN {FS = ":.*## "} {printf "  make %-14s %s\n", $$1, $$2}'

# ----------------------------------------------------------------------- install

venv: $(PY_STAMP) $(TASKS_STAMP) $(NODE_STAMP) ## create .venv, .venv-tasks, node_modules (fast when up to date)

python-version:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Python 3.11 or newer is needed as '$(PYTHON)' (set PYTHON=...)" >&2; exit 1; }
.PHONY: python-version

# The functions' packages come from the hashed lock (the very bytes the bundle deploys);
# the dev tools are then installed with the lock's versions as constraints, so nothing
# they pull in can move a runtime package.
$(PY_STAMP): requirements.txt requirements-lock.txt requirements-dev.txt pyproject.toml | python-version
	@echo "==> installing Python dependencies into $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --require-hashes -r requirements-lock.txt
	$(PY) infra/lock.py --constraints > $(VENV)/lock-constraints.txt
	$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt -c $(VENV)/lock-constraints.txt
	@# httpx left the dev tools in session 4; where an older .venv still has it, `import
	@# stripe` loads it (and rich, pygments) where the deployed bundle does not.
	@$(PY) -m pip uninstall -y -q httpx httpcore >/dev/null 2>&1 || true
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -e .
	@touch $@

$(TASKS_STAMP): emulators/requirements-tasks.txt | python-version
	@echo "==> installing the Cloud Tasks emulator into $(TASKS_VENV)"
	@test -x $(TASKS_VENV)/bin/python || $(PYTHON) -m venv $(TASKS_VENV)
	$(TASKS_VENV)/bin/python -m pip install $(PIP_FLAGS) -r emulators/requirements-tasks.txt
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo "==> installing Node dev tools (maildev, axe-core)"
	@command -v npm >/dev/null || { echo "npm (Node 20+) is needed" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# ------------------------------------------------------------------- local stack

dev: venv ## start every emulator, the Stripe double, the functions and the storefront (KEEP_DATA=dir keeps Firestore and Storage data)
	@exec $(PY) -m emulators.stack dev $(if $(KEEP_DATA),--keep-data $(KEEP_DATA))

stop: ## stop a stack started by `make dev` in another terminal
	@$(PYTHON) -m emulators.stack stop

status: ## show each service of the running stack: process alive, port answering
	@$(PYTHON) -m emulators.stack status

seed: venv ## load sample customers and orders (every state) into the running stack
	@$(PY) -m emulators.seed

# ------------------------------------------------------------------------- checks

test: venv lint typecheck pytest checkov ## everything CI checks: format, lint, types, tests, checkov

test-fast: $(PY_STAMP) ## the Java-free tests only (unit + services on the in-memory store), seconds
	@echo "==> fast tests: pytest -W error -m 'not emulators and not e2e and not slow'"
	$(VENV)/bin/pytest -W error -q -m "not emulators and not e2e and not slow" $(PYTEST_ARGS)

lint: $(PY_STAMP) ## ruff format --check and ruff check
	@echo "==> lint: ruff format --check . && ruff check ."
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(PY_STAMP) ## mypy (strict on shared/ and functions/)
	@echo "==> typecheck: mypy shared functions"
	$(VENV)/bin/mypy shared functions

pytest: venv chromium ## pytest with warnings as errors (starts the emulators it needs)
	@echo "==> tests: pytest -W error $(PYTEST_ARGS)"
	$(VENV)/bin/pytest -W error $(PYTEST_ARGS)

fmt: $(PY_STAMP) ## format and auto-fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# ------------------------------------------------------ targets of other features
# Added by the features that own them (keep additions below this line):
#   site, bench, bundle, smoke, stripe-setup, tf-check

# Storefront: the static site and the browser tests (docs/storefront.md).
# Another Chromium: `make test CHROMIUM=/path/to/chromium` (exported to the browser tests).
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
.PHONY: site chromium e2e

site: $(PY_STAMP) ## build the storefront into build/site (MANIFEST=path/to/manifest.json optional)
	@$(PY) -m emulators.storefront_site $(if $(MANIFEST),--manifest $(MANIFEST))

chromium: ## install Debian's Chromium for the browser tests when /usr/bin/chromium is missing (CHROMIUM=path: use that one)
	@test -x "$(CHROMIUM)" || { \
	  test "$(CHROMIUM)" = /usr/bin/chromium || { echo "CHROMIUM=$(CHROMIUM) is not an executable" >&2; exit 1; }; \
	  echo "==> installing chromium (apt-get, about 115 packages)"; \
	  $(SUDO) apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

e2e: venv chromium ## only the end-to-end browser tests (whole stack on free ports, real Chromium)
	$(VENV)/bin/pytest -W error -m e2e $(PYTEST_ARGS)

# Purchase: Stripe product and price (docs/stripe.md).
.PHONY: stripe-setup

stripe-setup: $(PY_STAMP) ## create/update the Stripe product + one-time price (STRIPE_SECRET_KEY, STRIPE_API_BASE)
	@$(PY) -m emulators.stripe_setup

# Infrastructure: deploy bundle and offline Terraform checks (docs/infrastructure.md).
.PHONY: bundle lock tf-check checkov smoke

bundle: $(PY_STAMP) ## build build/functions-source.zip (reproducible, from the hashed lock; Terraform deploys it)
	$(PY) -m infra.bundle

# Not on $(PY_STAMP): right after an edit of requirements.txt the old lock and the new
# pins disagree, so a full `make venv` would fail; uv alone is enough to re-lock.
lock: | python-version ## re-lock requirements.txt into requirements-lock.txt (hashes; needs PyPI; LOCK_ARGS="--upgrade-package P")
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(VENV)/bin/uv || $(PY) -m pip install $(PIP_FLAGS) "$$(grep '^uv==' requirements-dev.txt)"
	$(PY) -m infra.lock $(LOCK_ARGS)

tf-check: $(PY_STAMP) ## offline Terraform checks: fmt, provider schema (cached download on first run), invariants, bundle tests, then checkov
	$(VENV)/bin/pytest -W error -q tests/infra
	infra/checkov.sh

smoke: $(PY_STAMP) ## smoke-test a shop: BASE_URL=https://shop... LICENSE_PUBLIC_KEY=... (or the running `make dev` stack without them)
	$(PY) -m infra.smoke $(if $(BASE_URL),--base-url $(BASE_URL),--local) $(SMOKE_ARGS)

checkov: ## checkov on infra/terraform (installs into .venv-checkov on first run, ~60 s)
	infra/checkov.sh


# Benchmarks (docs/performance.md): ratios against a baseline measured in the same run.
.PHONY: bench bench-launch
LAUNCH_SCALE ?= 1

bench: venv ## run every benchmark and write the results into docs/performance.md
	$(PY) -m bench.webhook_bench
	$(PY) -m bench.download_bench --write-docs
	$(PY) -m bench.license_bench --write-docs
	$(PY) -m bench.resend_bench --write-docs
	$(PY) -m bench.coldstart_bench --write-docs
	$(PY) -m bench.launch_bench --scale $(LAUNCH_SCALE) --write-docs

bench-launch: venv ## launch-day load through the functions' HTTP servers, ops counted, cost table (LAUNCH_SCALE=0.1 for a tenth)
	$(PY) -m bench.launch_bench --scale $(LAUNCH_SCALE) --write-docs

# Hostile input (docs/security.md): `make test` runs the fuzz suite's short profile.
.PHONY: fuzz

fuzz: venv ## fuzz every function with the long Hypothesis profile (1,000 requests each)
	GENX_FUZZ_PROFILE=fuzz-long $(VENV)/bin/pytest -W error -q tests/fuzz $(PYTEST_ARGS)

# -------------------------------------------------------------------------- clean

clean: ## remove caches, build output and .local (local secrets, logs); stops the stack first
	@$(PYTHON) -m emulators.stack stop >/dev/null
	rm -rf .local build .mypy_cache .ruff_cache .pytest_cache .hypothesis test-output
	find . -name __pycache__ -type d -not -path './.venv*' -not -path './node_modules/*' -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv, .venv-tasks, .venv-checkov, node_modules and .cache (provider schemas)
	rm -rf $(VENV) $(TASKS_VENV) .venv-checkov node_modules .cache
