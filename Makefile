# bayes_scaling: `make demo` and `make test` each create/refresh .venv (Python >= 3.12) and install the project.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed
# PyMC 6 / ArviZ 1 need Python >= 3.12: use python3.12 if it runs, else a pyenv 3.12, else python3 if new enough.
PYTHON ?= $(shell for p in python3.12 $$(ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | sort -V | tail -1) python3.13 python3; do \
            $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: demo test test-slow lint bench calibration backtests downstream design recipes datasets clean venv \
	extrapolation-prior scatter curves saturation

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found (install python3.12)"; exit 1; }
	@if [ -x $(VENV)/bin/python ] && ! $(VENV)/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
		echo "recreating $(VENV): it was made with Python < 3.12"; rm -rf $(VENV); fi
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@$(VENV)/bin/python -c 'import pymc, arviz; print("installed pymc", pymc.__version__, "arviz", arviz.__version__)'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayes-scaling demo --seed 1

# Two pytest workers, a test file each at a time (module fixtures fit once): 7.7-8.3 min here with warm numba caches, 13.3-14.2 min
# with empty ones as on a fresh machine (2 cores, 2026-11-30);
# the samplers' chains already use both cores, so most of what is left is compiling each model (PyTensor rewrites, numba).
test: $(STAMP)
	$(VENV)/bin/ruff check bayes_scaling tests
	$(VENV)/bin/python -m pytest -m "not slow" -n 2 --dist loadfile

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -m slow

# The speed benchmark also measures the JAX backends (nutpie-jax, numpyro), so it installs the jax extra.
bench: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e '.[jax,bench]'
	$(VENV)/bin/python -m benchmarks

datasets: $(STAMP)
	$(VENV)/bin/python -m benchmarks.datasets

calibration: $(STAMP)
	$(VENV)/bin/python -m benchmarks.calibration

# The backtests compare against the PyPI package simple-scaling-laws (a benchmark-only dependency).
backtests: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e '.[bench]'
	$(VENV)/bin/python -m benchmarks.backtests --plot backtests_pit.png

# Refresh the extrapolation term's shared prior (bayes_scaling/extrapolation_prior.json) from ../shared/data.
extrapolation-prior: $(STAMP)
	$(VENV)/bin/python -m benchmarks.shared_prior

# Constant scatter against scatter growing toward the sweep's edges, by PSIS-LOO on every shared sweep.
scatter: $(STAMP)
	$(VENV)/bin/python -m benchmarks.scatter

# Point fits: the Chinchilla form against a data term that saturates beyond K tokens per parameter (issue 28).
saturation: $(STAMP)
	$(VENV)/bin/python -m benchmarks.saturation

downstream: $(STAMP)
	$(VENV)/bin/python -m benchmarks.downstream

# Training-loss curves under learning-rate schedules (multipower2025): the authors' protocol and runs in flight;
# runs in flight on li2025_misfitting's checkpoints too.
curves: $(STAMP)
	$(VENV)/bin/python -m benchmarks.curves

# The design benchmark compares against simple-scaling-laws' own suggestion (a benchmark-only dependency).
design: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e '.[bench]'
	$(VENV)/bin/python -m benchmarks.design

recipes: $(STAMP)
	$(VENV)/bin/python -m benchmarks.recipes

lint: $(STAMP)
	$(VENV)/bin/ruff check bayes_scaling tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
