# Two entry points: `make demo` (the main job) and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: demo test venv lock bench lint clean

venv: $(STAMP)

# Installs exactly the versions in requirements.lock; bytecode is compiled because Prefect's
# imports cost seconds without it when PYTHONDONTWRITEBYTECODE is set.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --no-deps -e .
	touch $(STAMP)

# Screens the example portfolio against the SYNTHETIC demo pack (built on first use), as a
# Prefect flow run on a temporary server, so the main job shows the flow and its artifacts.
demo: $(STAMP)
	$(BIN)/sitescreen screen sites.geojson --demo --prefect --out results

# The project's own modules are compiled first: with PYTHONDONTWRITEBYTECODE set, every
# subprocess of the tests (CLI runs, Prefect flow runs, Dask workers) would compile them again.
test: $(STAMP)
	$(BIN)/python -m compileall -q sitescreen flows tests
	$(BIN)/python -m pytest -q

# BENCH_SITES=1000000 measures the 1,000,000-site goal (benchmarks/run.py, the scale case).
bench: $(STAMP)
	BENCH_SITES=$(BENCH_SITES) BENCH_DASK=$(BENCH_DASK) $(BIN)/python benchmarks/run.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# Regenerates requirements.lock from pyproject.toml (needs the registry).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --no-header -q -o requirements.lock

clean:
	rm -rf results cache/demo-pack
