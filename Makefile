# Two commands on a fresh clone: `make bench` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(shell date +%Y%m%d-%H%M%S)
# torch==2.13.0 exactly: the CPU wheel on this machine's disk. Any other spec downloads a CUDA
# build of several GB. On a GPU box with its own torch, run `make TORCH= bench`.
TORCH ?= torch==2.13.0
JAX ?= jax

.PHONY: bench bench-quick test clean venv validate-timing bench-ci bench-ci-baseline

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH) $(JAX) -e '.[test]'
	touch $@

# auto: the CPU, plus CUDA for jax and torch where they see a GPU (a GPU box: `make TORCH= bench`)
DEVICES ?= auto

bench: venv
	$(PY) -m bench run --preset default --devices $(DEVICES) --out results/default-$(STAMP).csv --report reports

bench-quick: venv
	$(PY) -m bench run --preset quick --devices $(DEVICES) --out results/quick-$(STAMP).csv --report reports

test: venv
	$(PY) -m pytest

clean:
	rm -rf $(VENV) reports/*.html reports/*.png reports/*.svg

validate-timing: venv
	$(PY) -m bench.validate

# CI regression tracking: a pytest-benchmark suite with raw samples, compared with the committed
# baseline of this machine class. Gating on within-run ratios (autodiff / analytic); absolute
# times are printed as advisory. Refresh the baseline with `make bench-ci-baseline`.
CI_BASELINE ?= baselines/ci-cpu.json
CI_FACTOR ?= 2.0
BENCH_CI_PYTEST := -m pytest tests/benchmarks -q -p no:cacheprovider --benchmark-enable --benchmark-only --benchmark-save-data

bench-ci: venv
	mkdir -p results
	$(PY) $(BENCH_CI_PYTEST) --benchmark-json=results/bench-ci.json
	$(PY) -m bench compare $(CI_BASELINE) results/bench-ci.json --gate ratios --factor $(CI_FACTOR)

bench-ci-baseline: venv
	mkdir -p $(dir $(CI_BASELINE))
	$(PY) $(BENCH_CI_PYTEST) --benchmark-json=$(CI_BASELINE)
