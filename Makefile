VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# The middleware's request path, compiled with mypyc (docs/adr/0012): set
# FAIRMETER_PURE_PYTHON=1 to skip it (the sources then run as they are).
COMPILED := fairmeter/storage/counters_local.py fairmeter/embedded.py \
	fairmeter/sdk/_refusals.py fairmeter/sdk/middleware.py
COMPILED_STAMP := src/build/.compiled
# what `make test` runs again on the sources alone
PURE_TESTS := tests/sdk tests/services/test_limits_lanes.py \
	tests/services/test_limits_policies.py tests/storage/test_counters_local.py \
	tests/storage/test_counters_contract.py tests/api/test_entitlements_api.py
ifeq ($(FAIRMETER_PURE_PYTHON),1)
BUILT :=
else
BUILT := $(COMPILED_STAMP)
endif

.PHONY: install compile test lint demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

$(COMPILED_STAMP): $(STAMP) $(addprefix src/,$(COMPILED))
	cd src && ../$(VENV)/bin/mypyc $(COMPILED) > build.log 2>&1 || (cat build.log; exit 1)
	rm -f src/build.log
	# mypyc reuses an unchanged build, copied with its old times: mark it as current
	find src -name '*.so' -exec touch {} +
	touch $(COMPILED_STAMP)

install: $(STAMP) $(BUILT)

compile: $(COMPILED_STAMP)

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy examples
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest -n 2 --dist loadgroup
	# the compiled modules' sources, as they run where nothing was compiled
	FAIRMETER_PURE_PYTHON=1 $(VENV)/bin/pytest -n 2 --dist loadgroup -q $(PURE_TESTS)

demo: install
	$(PY) -m fairmeter.cli.main demo

bench: install
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) fairmeter.db* .pytest_cache .mypy_cache .ruff_cache src/build
	find src -name '*.so' -delete
