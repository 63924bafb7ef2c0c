# Two commands on a fresh clone: `make bench` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(shell date +%Y%m%d-%H%M%S)
# torch==2.13.0 exactly: the CPU wheel on this machine's disk. Any other spec downloads a CUDA
# build of several GB. On a GPU box with its own torch, run `make TORCH= bench`.
TORCH ?= torch==2.13.0
JAX ?= jax

.PHONY: bench bench-quick test report clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH) $(JAX) -e '.[test]'
	touch $@

bench: venv
	$(PY) -m bench run --preset default --out results/default-$(STAMP).csv --report reports

bench-quick: venv
	$(PY) -m bench run --preset quick --out results/quick-$(STAMP).csv --report reports

test: venv
	$(PY) -m pytest

clean:
	rm -rf $(VENV) reports/*.html reports/*.png reports/*.svg
