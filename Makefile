# Two entry points (see README): `make demo` runs the main job, `make test` runs the test suite.
# Each creates .venv on first use and is safe to run again. `make lint` is what CI runs before the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: demo test test-all lint venv data clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Fashion-MNIST for the main job, from Debian's package (needs root and apt; else pass --data-root).
data:
	@test -d $(FASHION_MNIST) || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
	  || echo "could not install dataset-fashion-mnist: run 'mambaout demo --data-root DIR' with the IDX files"

demo: $(STAMP) data
	$(PY) -m mambaout demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not gpu"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test-all: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
