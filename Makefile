# Quick start: `make demo` then `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := -q --disable-pip-version-check
# TF/XLA print pages of start-up notes on stderr; keep warnings and errors.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-tf test-jax bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip

$(VENV)/.kzoo: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.kzoo-test: $(VENV)/.kzoo
	$(BIN)/pip install $(PIP_FLAGS) -e ".[test]"
	touch $@

demo: $(VENV)/.kzoo
	$(BIN)/kzoo train --out runs/demo

test: test-tf test-jax

test-tf: $(VENV)/.kzoo-test
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -q tests

test-jax: $(VENV)/.kzoo-test
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -m backend_agnostic tests

clean:
	rm -rf $(VENV) runs .pytest_cache
