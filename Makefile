# Every target creates .venv on first use and installs into it: a fresh machine needs only
# Python 3.11+ and make. Installs are pinned by constraints.txt (regenerate with `make lock`).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

.PHONY: help serve check test lint unit system docs train promote evaluate bench container-check kube-check lock clean

# `make` alone only lists the targets below: the first rule would otherwise build the venv.
.DEFAULT_GOAL := help

## help: list these targets (what `make` alone does)
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); name = $$0; sub(/:.*/, "", name); \
		sub(/^[^:]*: /, ""); printf "  make %-16s %s\n", name, $$0 }' $(firstword $(MAKEFILE_LIST))
# Coverage floor of `make test`: branch coverage of app/ and model/ in the test processes of
# both tiers (85.2% measured on a clean clone; the live servers run in subprocesses, not measured).
COVERAGE_FLOOR ?= 84

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11+ is required (found: $$($(PYTHON) --version))" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	@touch $@

$(VENV)/.train: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e ".[train]"
	@touch $@

$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e ".[dev]"
	@touch $@

## serve: install the runtime and start the service on http://$(HOST):$(PORT)
serve: $(VENV)/.runtime
	HOST=$(HOST) PORT=$(PORT) WORKERS=$(WORKERS) $(BIN)/python -m app

## check: the fast loop: ruff, mypy, the import contracts and the in-process unit tests
check: lint unit

## test: install the dev extras, then `make check` and the system tests (in parallel), with coverage
test: $(VENV)/.dev lint
	$(BIN)/python -m pytest -n 2 --cov --cov-report=term:skip-covered --cov-report=xml \
		--cov-fail-under=$(COVERAGE_FLOOR); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; fi; \
	exit $$rc

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(VENV)/.dev
	$(BIN)/python -m pytest -n 2 -q -m "not slow" tests/unit

system: $(VENV)/.dev
	$(BIN)/python -m pytest -n 2 tests/system

## docs: build the documentation site into site/ (mkdocs --strict, offline: no CDN or web fonts)
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

## train: retrain with the served defaults into model/weights.candidate.json (and docs/plots/)
train: $(VENV)/.train
	$(BIN)/python scripts/train.py $(ARGS)

## promote: serve the trained candidate: replace model/weights.json, print both content hashes
promote: $(VENV)/.runtime
	$(BIN)/python scripts/train.py --promote $(ARGS)

## evaluate: CV beside scikit-learn peers, grouped, temporal, conformal, scaling, regularisation (ARGS="--parts cv" for one part)
evaluate: $(VENV)/.dev
	$(BIN)/python -m scripts.evaluate $(ARGS)
	$(if $(ARGS),,$(BIN)/python -m scripts.monitoring_live)

## bench: HTTP, inference and training benchmarks; writes bench-results/BENCH.md
bench: $(VENV)/.dev
	$(BIN)/python -m scripts.bench.report $(ARGS)

## container-check: build the Dockerfile with buildah and compare its answers with `make serve`'s
container-check: $(VENV)/.runtime
	bash scripts/container_check.sh

## kube-check: play deploy/kubernetes/deployment.yaml's pod with podman, on container-check's image
kube-check: container-check $(VENV)/.dev
	bash scripts/kube_check.sh

## lock: re-pin constraints.txt from the dev environment, the image's hashed runtime and build locks, and KServe's client's
lock: $(VENV)/.dev
	$(BIN)/python -m pip freeze --exclude-editable > constraints.txt
	PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet --generate-hashes --strip-extras \
		--extra postgres --no-emit-index-url --no-emit-find-links -c constraints.txt \
		-o requirements/runtime.txt pyproject.toml
	PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet --generate-hashes --strip-extras \
		--no-emit-index-url --no-emit-find-links -o requirements/kserve-client.txt requirements/kserve-client.in
	PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o requirements/build.txt requirements/build.in

clean:
	rm -rf $(VENV) .venv-kserve .mypy_cache .ruff_cache .pytest_cache bench-results test-artifacts .coverage* coverage.xml site
