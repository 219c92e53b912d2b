# Accord: `make demo` runs the platform with the demo retailer; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install demo serve test unit lint bench postgres clean web-assets chromium web-messages

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Front-end libraries (htmx, Vega, Vega-Lite, vega-embed; world-atlas's country outlines) come from npm at build
# time, pinned by web-assets/package-lock.json, and are copied into the package's static dir (not committed; served
# locally).
VENDOR := src/accord/web/static/vendor
VENDOR_STAMP := $(VENDOR)/.built

$(VENDOR_STAMP): web-assets/package.json web-assets/package-lock.json
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq npm; }
	cd web-assets && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp web-assets/node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/
	cp web-assets/node_modules/vega/build/vega.min.js $(VENDOR)/
	cp web-assets/node_modules/vega-lite/build/vega-lite.min.js $(VENDOR)/
	cp web-assets/node_modules/vega-embed/build/vega-embed.min.js $(VENDOR)/
	cp web-assets/node_modules/world-atlas/countries-110m.json $(VENDOR)/
	touch $(VENDOR_STAMP)

web-assets: $(VENDOR_STAMP)

# Refresh the web app's message catalogs after changing texts (then translate the new entries of each .po).
web-messages: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k N_ -k gettext --no-location --sort-output -o web-assets/messages.pot .
	$(PY) web-assets/update_catalogs.py

# The browser tests drive Debian's Chromium through Playwright (never `playwright install`).
# fonts-noto-cjk: the demo's Chinese store and customer names in the screenshots (Debian's chromium has no CJK font).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }
	@fc-list 2>/dev/null | grep -qi "noto sans cjk" || { apt-get update -qq && apt-get install -y -qq fonts-noto-cjk; }

install: $(STAMP) $(VENDOR_STAMP)

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

unit: install postgres chromium
	ACCORD_TEST_PG_URL=$(PG_URL) $(VENV)/bin/pytest -q -p no:cacheprovider

test: lint unit

bench: install
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .accord .pytest_cache .mypy_cache .ruff_cache
