"""The CI cells as a pytest-benchmark suite, for `make bench-pytest`: absolute times with raw
samples in pytest-benchmark's JSON, which `nablabench history` and github-action-benchmark read.

Each callable is compiled (JAX: ahead of time), checked against numpy's analytic result and
warmed up before the fixture sees it; its loop count is calibrated by nablabench's timer so that
one round lasts ~5 ms, and pedantic mode then takes exactly ROUNDS rounds. pytest-benchmark takes
a benchmark's rounds in one block, so these samples are not interleaved: the CI gate uses the
`ci` preset of the runner instead (`make bench-ci`). Under `make test` the benchmark plugin is
disabled and each case runs once, as a smoke test.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import backends
import problems

from bench.core import environment
from bench.measure.context import evaluation_point
from bench.measure.timing import measure

ROUNDS = 20
PROBLEMS = ("least_squares", "logistic")
SIZES = (100, 1000)
DERIVATIVES = ("grad", "hvp")


def _cases():
    """Analytic and autodiff of one cell run back to back (numpy next to autograd), so that drift
    on a shared machine moves both sides of a within-run ratio together."""
    # the backends a run selects by default (not those kept for a preset of their own)
    names = [n for n in backends.names() if backends.get(n).available()[0] and backends.get(n).presets is None]
    cases = []
    for problem in PROBLEMS:
        for n in SIZES:
            for derivative in DERIVATIVES:
                for name in names:
                    for mode in backends.get(name).modes:
                        # the first variant of each mode: one line per backend and mode keeps it short
                        variant = next(iter(_functions(name, problem, mode)[derivative]))
                        cases.append(pytest.param(name, problem, n, mode, derivative, variant,
                                                  id=f"{problem}-{n}-{derivative}-{name}-{mode}-{variant}"))
    return cases


@lru_cache(maxsize=None)
def _backend(name):
    b = backends.get(name)
    b.setup(environment.cpu_count())  # JAX: synchronous CPU dispatch, as in the sweep (backends/jax_backend.py)
    return b


@lru_cache(maxsize=None)
def _functions(name, problem, mode):
    return _backend(name).functions(problems.get(problem), mode)


@lru_cache(maxsize=4)
def _inputs(name, problem, n):
    b = _backend(name)
    inst = problems.get(problem).instance(n, seed=0)
    data = {k: b.asarray(v, "cpu") if isinstance(v, np.ndarray) else v for k, v in inst.data.items()}
    x, v = evaluation_point(n, 0, problem)
    return inst, data, b.asarray(x, "cpu"), b.asarray(v, "cpu"), x, v


@pytest.mark.parametrize("backend, problem, n, mode, derivative, variant", _cases())
def test_derivative(benchmark, backend, problem, n, mode, derivative, variant):
    b = _backend(backend)
    inst, data, x, v, x_np, v_np = _inputs(backend, problem, n)
    args = (x, v, data) if derivative == "hvp" else (x, data)
    fn, _ = b.compile(_functions(backend, problem, mode)[derivative][variant], args)
    expected = getattr(problems.get(problem), derivative)(*((x_np, v_np) if derivative == "hvp" else (x_np,)),
                                                          inst.data)
    np.testing.assert_allclose(b.to_numpy(fn(*args)), expected, rtol=1e-8, atol=1e-12)

    def call():
        b.sync(fn(*args))

    loops = measure(call, sync=lambda out: None, samples=1, min_sample_s=0.005, warmup_s=0.02).inner_loops
    benchmark.extra_info.update(task="eval", problem=problem, n=n, backend=backend, device="cpu", mode=mode,
                                derivative=derivative, variant=variant)
    benchmark.pedantic(call, rounds=ROUNDS, iterations=loops, warmup_rounds=2)
