# The README's two commands: `make demo` and `make test`. Both make their own .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint demo venv clean dashboard

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

lint: $(STAMP)
	$(VENV)/bin/ruff check ingest tests bench scripts
	$(VENV)/bin/ruff format --check ingest tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
