# Two commands on a fresh clone: `make bench` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(shell date +%Y%m%d-%H%M%S)
# torch==2.13.0 exactly: the CPU wheel on this machine's disk. Any other spec downloads a CUDA
# build of several GB. On a GPU box with its own torch, run `make TORCH= bench`.
TORCH ?= torch==2.13.0
JAX ?= jax
# tensorflow: the CPU build of TensorFlow for its backend (a GPU box: `make EXTRAS=test,dask
# TORCH= JAX='jax[cuda12]' bench` after `pip install 'tensorflow[and-cuda]'`)
EXTRAS ?= test,dask,tensorflow,enzyme,sparse,docs
# the pinned versions of the libraries the numbers depend on (a GPU box with its own builds: CONSTRAINTS=/dev/null)
CONSTRAINTS ?= constraints.txt

.PHONY: bench bench-quick test test-slow lint docs clean venv validate-timing bench-ci bench-ci-accept bench-ci-baseline bench-pytest reproducibility \
	reproducibility-record

venv: $(VENV)/.installed

# uv installs (a fresh .venv in 35 s where pip took 130 s here), reading pip's settings of this machine:
# its wheel folders (PIP_FIND_LINKS: the CPU torch) and its index (PIP_INDEX_URL), where they are set.
UV_SOURCES := $(foreach folder,$(PIP_FIND_LINKS),--find-links $(folder)) $(if $(PIP_INDEX_URL),--index-url $(PIP_INDEX_URL))

$(VENV)/.installed: pyproject.toml Makefile $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	$(PY) -m uv pip install --quiet --python $(PY) $(UV_SOURCES) -c $(CONSTRAINTS) $(TORCH) $(JAX) -e '.[$(EXTRAS)]'
	touch $@

# auto: the CPU, plus CUDA for jax and torch where they see a GPU (a GPU box: `make TORCH= bench`)
DEVICES ?= auto

bench: venv
	$(PY) -m bench run --preset default --devices $(DEVICES) --out results/default-$(STAMP).csv --report reports

bench-quick: venv
	$(PY) -m bench run --preset quick --devices $(DEVICES) --out results/quick-$(STAMP).csv --report reports

# Two tiers (docs/testing.md). `make test`, after every change: every problem and backend checked,
# small real sweeps, the API, the CLI, the gates' logic; three minutes or less on two cores. Two pytest
# processes (pytest-xdist); the files with module fixtures (real sweeps) stay in one each.
test: venv
	$(PY) -m pytest -n 2 --dist loadgroup --durations=10 -m "not slow"

# `make test-slow`, in CI after `make test`: TensorFlow and torch.compile on every problem, the full
# sweeps, Dask clusters, the report in Chromium, faults and resumes, the notebook. The instruction-count
# tests run apart, after: their valgrind workers would load the machine under the suite's measuring tests
# (a declared cost model's bandwidth check failed beside them). Beside them, as nothing there is timed: the
# results file's Hypothesis properties at 1,000 examples.
test-slow: venv
	$(PY) -m pytest -n 2 --dist loadgroup --durations=10 -m slow --ignore=tests/test_counts.py
	$(PY) -m pytest -q -n 2 --dist loadgroup --hypothesis-profile=thorough tests/test_counts.py tests/test_results_file.py \
		-k "test_counts or any_option or any_row or any_truncation"

# The layer contracts of bench/ (import-linter, pyproject.toml) and ruff.
lint: venv
	$(PY) -m ruff check bench problems backends scripts tests docs
	$(VENV)/bin/lint-imports

# The documentation site (MkDocs), strict: a broken link or a page left out of the nav fails.
docs: venv
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) site reports/*.html reports/*.png reports/*.svg

validate-timing: venv
	$(PY) -m bench.validate

# CI regression tracking (bench/ci.py; docs/ci.md): this tree against the base commit named in
# baselines/ab-base, both measured in this run (an A/B run: the `ci` preset's cells, each variant's own
# time paired per pass, gated at 1.05x; and its gradient cells at n = 100 counted under callgrind, at 1.01x).
bench-ci: venv
	$(PY) -m bench.ci

# A change of speed is meant: HEAD becomes the base commit (then commit baselines/ab-base).
bench-ci-accept: venv
	$(PY) -m bench.ci --accept

# The stored-baseline gate's target, retired: says what replaced it.
bench-ci-baseline:
	@echo "make bench-ci-baseline is now make bench-ci-accept (the gate measures its base in the same run)"; exit 2

# The same cells as a pytest-benchmark suite: absolute times as pytest-benchmark JSON (raw samples
# kept), for `nablabench history` and github-action-benchmark. Not a gate: samples come in blocks.
bench-pytest: venv
	mkdir -p results
	$(PY) -m pytest tests/benchmarks -q -p no:cacheprovider --benchmark-enable --benchmark-only \
		--benchmark-save-data --benchmark-json=results/bench-pytest-$(STAMP).json

# How well a run reproduces: two quick eval runs back to back, and how far their numbers moved.
reproducibility: venv
	$(PY) -m bench.reproduce

# This machine class's run-to-run spread (eight quick eval runs of every backend the presets run: six
# set it, two held out measure it), which every interval of a run here then includes
# (bench/analysis/spread.py): baselines/spread-<fingerprint>.json, to commit.
reproducibility-record: venv
	$(PY) -m bench.reproduce --runs 8 --record -- --backends numpy,jax,torch,autograd,tensorflow,torch-compile
