# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSTRAINTS := .ci/constraints.txt
PYTEST_ARGS ?=

.PHONY: install demo test test-all lint bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[test,distributed,napari]"
	touch $(STAMP)

install: $(STAMP)

# The 2D nuclei model trained here (tuned watershed params travel in the package) on six bundled DSB2018
# images: instances, metrics and overlay figures land in demo_output/.
DEMO_MODEL ?= zoo_packages/unet2d_bcd_nuclei_dsb2018.zip
DEMO_ARGS ?=
demo: $(STAMP)
	rm -rf demo_output
	$(VENV)/bin/runner predict $(DEMO_MODEL) --input zoo_packages/examples/dsb2018/x \
		--gt zoo_packages/examples/dsb2018/y --output demo_output --overlays --measure --report $(DEMO_ARGS)
	@echo "overlays (green matched, blue false positive, red missed): demo_output/overlays/; all on one page: demo_output/report.html"

# make test and make test-all lint first (ruff check, ruff format --check, mypy), so CI keeps the tree clean.
test: lint
	$(PY) -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS)

test-all: lint
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not gpu" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check runner exporters tests benchmarks
	$(VENV)/bin/ruff format --check runner exporters tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo_output .pytest_cache
