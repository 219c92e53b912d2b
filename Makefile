# Accord: `make demo` runs the platform with the demo retailer; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install demo serve test unit lint bench postgres clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/accord demo

serve: install
	$(VENV)/bin/accord serve

# Start the local PostgreSQL cluster if it is installed but down (the state-store tests run on it too).
postgres:
	@if command -v pg_lsclusters >/dev/null 2>&1; then \
	  if ! pg_lsclusters -h | grep -q online; then \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true; \
	  fi; \
	fi

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: install postgres
	ACCORD_TEST_PG_URL=$(PG_URL) $(VENV)/bin/pytest -q -p no:cacheprovider

test: lint unit

bench: install
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .accord .pytest_cache .mypy_cache .ruff_cache
