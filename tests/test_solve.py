"""Gradient descent: same iterations for analytic and autodiff, statuses instead of hangs."""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import converted

import backends

from bench.measure.gd import descend


@pytest.mark.parametrize("n", [10, 120])
def test_analytic_and_autodiff_take_the_same_iterations(backend, solvable, n):
    problem = solvable
    inst = problem.instance(n, seed=0)
    data, x0 = converted(backend, inst, inst.x0)
    step_size = 1.0 / inst.lipschitz
    iterations = {}
    for mode in backend.modes:
        for variant, vg in backend.value_and_grad(problem, mode).items():
            try:  # compiled as the sweep compiles it (torch-compile: its formula called eagerly first)
                step, _ = backend.compile(backend.step(vg), (x0, data, step_size))
                k, f, status = descend(lambda x, step=step: step(x, data, step_size), x0,
                                       to_float=backend.to_float, f_star=inst.f_star, eps=1e-9, max_iter=5000)
            except backends.Infeasible as exc:  # torch.compile: `backward` is no single graph (a skipped row)
                assert backend.name == "torch-compile" and "one graph" in str(exc), exc
                continue
            assert status == "ok" and f - inst.f_star <= 1e-9
            iterations[mode, variant] = k
        for variant, solve in backend.solvers(problem, mode).items():
            compiled, _ = backend.compile(solve, (x0, data, step_size, inst.f_star, 1e-9, 5000))
            k, f, code = compiled(x0, data, step_size, inst.f_star, 1e-9, 5000)
            assert int(code) == 1 and float(f) - inst.f_star <= 1e-9, (variant, code)
            iterations[mode, variant] = int(k)
    assert len(set(iterations.values())) == 1, iterations
    assert 1 <= next(iter(iterations.values())) < 200


def _quadratic_step(step_size, a=2.0):
    # f(x) = a/2 x^2, minimum 0 at 0
    return lambda x: (0.5 * a * x * x, x - step_size * a * x)


def test_descend_converges_on_a_known_quadratic():
    k, f, status = descend(_quadratic_step(0.25), 1.0, to_float=float, f_star=0.0, eps=1e-9, max_iter=100)
    # each step halves x, so f = x^2 quarters: 1 * 4^-k <= 1e-9 first at k = 15
    assert (k, status) == (15, "ok")


def test_descend_reports_divergence_instead_of_running_on():
    k, f, status = descend(_quadratic_step(1.5), 1.0, to_float=float, f_star=0.0, eps=1e-9, max_iter=10_000)
    assert status == "diverged" and k < 30


def test_descend_reports_nan():
    step = lambda x: (math.nan, x)  # noqa: E731
    assert descend(step, 1.0, to_float=float, f_star=0.0, eps=1e-9, max_iter=10)[2] == "nan"


def test_descend_stops_at_the_iteration_and_time_budgets():
    slow = _quadratic_step(1e-6)
    assert descend(slow, 1.0, to_float=float, f_star=0.0, eps=1e-9, max_iter=50)[:3:2] == (50, "not_converged")
    k, _, status = descend(slow, 1.0, to_float=float, f_star=0.0, eps=1e-9, max_iter=10**9, max_time_s=0.05)
    assert status == "timeout" and k > 0


def test_jax_while_loop_reports_not_converged():
    from helpers import ready as _ready

    import problems

    b = _ready("jax")
    p = problems.get("least_squares")
    inst = p.instance(20)
    data, x0 = converted(b, inst, inst.x0)
    (solve,) = b.solvers(p, "analytic").values()
    args = (x0, data, 1.0 / inst.lipschitz, inst.f_star, 1e-9, 10_000)
    compiled, _ = b.compile(solve, args)
    k, f, code = compiled(*args[:-1], 3)  # max_iter is an argument: one program, any limit
    assert (int(k), int(code)) == (3, 4)
    assert np.isfinite(float(f))
