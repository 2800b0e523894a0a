# The README's quick start: `make demo` and `make test`. Everything else is set up here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-duckdb test-postgres test-clickhouse bench clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "paydash needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# PORT=8600 make demo (or make demo PORT=8600) serves on that port; it prints the address it serves at
demo: $(STAMP)
	$(BIN)/paydash demo$(if $(PORT), --port $(PORT))

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-duckdb: $(STAMP)
	$(BIN)/python -m pytest -m "not postgres and not clickhouse" $(PYTEST_ARGS)

test-postgres: $(STAMP)
	$(BIN)/python -m pytest -m postgres $(PYTEST_ARGS)

# real ClickHouse SQL, embedded (chdb, installed by setup): never skipped
test-clickhouse: $(STAMP)
	$(BIN)/python -m pytest -m clickhouse $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache test-artifacts
