# Quick start: `make demo` then `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := -q --disable-pip-version-check
# TF/XLA print pages of start-up notes on stderr; keep warnings and errors.
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Tests compile many tiny networks: LLVM level 0 compiles them ~4x faster and changes no result
# the tests check (measured on the JAX model suite). Not used by `make demo`.
TEST_ENV := XLA_FLAGS="--xla_backend_optimization_level=0 $(XLA_FLAGS)"

.PHONY: demo test test-tf test-jax bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip

$(VENV)/.kzoo: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.kzoo-test: $(VENV)/.kzoo
	$(BIN)/pip install $(PIP_FLAGS) -e ".[test,export,serve,browser]"
	touch $@

demo: $(VENV)/.kzoo
	$(BIN)/kzoo train --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# --durations: every log names the 25 slowest tests, since the suite must stay under 30 minutes on CI.
# --dist worksteal: an idle worker takes queued tests from the busy one, so the long end-to-end tests
# do not leave a core idle at the end.
test: test-tf test-jax

test-tf: $(VENV)/.kzoo-test
	$(TEST_ENV) KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=25 tests

test-jax: $(VENV)/.kzoo-test
	$(TEST_ENV) KERAS_BACKEND=jax $(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=25 -m backend_agnostic tests

clean:
	rm -rf $(VENV) runs .pytest_cache
