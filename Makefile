# Two commands on a bare machine (Python >= 3.11 and make): `make run` and `make test`.
# `make chaos` runs the chaos runs (CI runs them too, in a step of their own).
# `make bench` runs the two bench scenarios; the BENCH_* variables set their sizes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_PURCHASES ?= 800
BENCH_CONCURRENCY ?= 50
BENCH_FLASH_PURCHASES ?= 1000
BENCH_FLASH_USERS ?= 200
BENCH_FLASH_STOCK ?= 20

.PHONY: run test chaos bench lint clean

run: $(STAMP)
	$(BIN)/python run.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not chaos" $(PYTEST_ARGS)

chaos: $(STAMP)
	$(BIN)/python -m pytest -m chaos $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python run.py bench --purchases $(BENCH_PURCHASES) --concurrency $(BENCH_CONCURRENCY) $(BENCH_ARGS)
	$(BIN)/python run.py bench --scenario flash-sale --purchases $(BENCH_FLASH_PURCHASES) \
		--users $(BENCH_FLASH_USERS) --stock $(BENCH_FLASH_STOCK) --concurrency $(BENCH_CONCURRENCY) $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check sagashop tests run.py
	$(BIN)/mypy

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("sagashop needs Python >= 3.11, this is " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,otel]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
