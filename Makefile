# `make demo` and `make test` work on a fresh machine: both install what they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install debian-packages lint test test-unit test-integration demo bench bench-quick clean

install: $(VENV)/.installed debian-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[test,bench,train]'
	touch $@

# promtool (alert rule tests) and the Prometheus server (real-scrape test) come from Debian.
debian-packages:
	@command -v promtool >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: install
	$(VENV)/bin/ruff check screener tests benchmarks

test-unit: install
	$(PY) -m pytest -q tests/unit

test-integration: install
	$(PY) -m pytest -q tests/integration

# The demo needs the package alone: no test, benchmark or training extras, no Prometheus.
$(VENV)/.installed-runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e .
	touch $@

demo: $(VENV)/.installed-runtime
	$(VENV)/bin/screener demo

bench: install
	$(PY) -m benchmarks.run --full

bench-quick: install
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) .screener-data .pytest_cache .hypothesis
