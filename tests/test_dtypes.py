"""The dtype axis: every backend runs every problem's derivatives in the dtype of the arrays it is given.

float32 inputs (x, v and the instance's floating arrays cast, Python numbers left as they are, as the
harness casts them) must give float32 results from every variant of every mode, from value_and_grad
(through a gradient-descent step) and the whole-loop solvers, nothing promoted to float64 inside a call, and
agree with the same variant's float64 result to a loose tolerance (a sanity check, not the accuracy
gate: tests/test_backends.py holds float64 to 1e-10). float64 inputs still give float64 results.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import ready

import backends
import problems

from bench.measure.check import sizes_for

BACKENDS = ("numpy", "autograd", "jax", "torch", "tensorflow", "torch-compile", "enzyme")
N = 4
SMALLER = {"gmm": 2}  # 2 components: 42 variables over 1000 points
SEED = 1
# float32's error against float64 of the same variant, in norm, relative to max(|float64's|, FLOOR): where
# a derivative is exactly zero (eig_sum's Hessian), float64's roundoff (~1e-16) is no scale to divide by
RTOL, FLOOR = 1e-2, 1e-3
# What an autodiff backend cannot differentiate in either dtype (tests/test_backends.py pins the same)
CANNOT_DIFFERENTIATE = {("autograd", "eig_sum"): "VJP of eigvalsh", ("autograd", "eig_prod"): "VJP of eigvalsh"}
# (backend, problem, variant) that decline float32 alone (backends.Infeasible), with the reason: none
FLOAT64_ONLY: dict[tuple[str, str, str], str] = {}
# The frameworks that compile every variant cold (XLA, torch.compile, Enzyme-JAX: up to 90 s a problem here,
# 15 minutes over the library) are the slow tier, on least squares (every kind of variant: eval, step, whole
# loop); numpy, autograd and torch (about 10 s) run every problem in the fast tier, and JAX (80 s over the
# library: each variant compiled twice; gmm alone 15 s) the default preset's problems, lse, and those whose
# float32 results a framework once promoted (autograd's where and max in lse, logsumexp, kmeans and
# logcosh_sep; torch.func's jvp in inv_quad and backprop). A sweep refuses a promoted result whatever the
# problem (bench.measure.checks.check_result: `wrong`).
SLOW = {"tensorflow", "torch-compile", "enzyme"}
JAX_PROBLEMS = ("least_squares", "quadratic", "logistic", "lse", "logsumexp", "logcosh_sep", "inv_quad",
                "backprop")
COMPILED_PROBLEMS = ("least_squares",)


def _tier(name: str) -> list:
    return [pytest.mark.slow] if name in SLOW else []


def _problems(name: str) -> tuple[str, ...]:
    return {"jax": JAX_PROBLEMS, **dict.fromkeys(SLOW, COMPILED_PROBLEMS)}.get(name, tuple(problems.built_in()))


CASES = [pytest.param(b, p, marks=_tier(b)) for b in BACKENDS for p in _problems(b)]


def _cast(a, dtype):
    """What the harness gives a backend for a float32 cell: floating arrays cast, others (integers, Python
    numbers) as they are."""
    return a.astype(dtype) if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating) else a


def _inputs(backend, problem, n, dtype):
    inst = problem.instance(n, seed=SEED)
    x, v = problem.evaluation_point(n, seed=SEED)
    data = {k: backend.asarray(_cast(a, dtype), "cpu") if isinstance(a, np.ndarray) else a
            for k, a in inst.data.items()}
    return inst, data, backend.asarray(_cast(x, dtype), "cpu"), backend.asarray(_cast(v, dtype), "cpu")


def _calls(backend, problem, inst):
    """(label, fn, args(x, v, data, step_size), outputs(result) -> the arrays to check): every variant of
    every mode, each value_and_grad through the descent step the sweep runs (jitted where the framework
    jits: Enzyme's value_and_grad runs only so), and each whole-loop solve (its f; where the instance gives
    the solve a step and f*)."""
    out = []
    for mode in backend.modes:
        for derivative, variants in backend.functions(problem, mode).items():
            with_v = problems.KINDS[derivative].takes_direction
            for variant, fn in variants.items():
                out.append((f"{mode} {derivative} {variant}", fn,
                            lambda x, v, data, step, with_v=with_v: (x, v, data) if with_v else (x, data),
                            lambda result: (result,)))
        for variant, vg in backend.value_and_grad(problem, mode).items():
            out.append((f"{mode} step {variant}", backend.step(vg), lambda x, v, data, step: (x, data, step), tuple))
        if inst.f_star is not None and math.isfinite(inst.lipschitz):
            for variant, solve in backend.solvers(problem, mode).items():
                out.append((f"{mode} solve {variant}", solve,
                            lambda x, v, data, step: (x, data, step, inst.f_star, 1e-12, 20),
                            lambda result: (result[1],)))
    return out


def _run(backend, fn, args):
    """As the sweep calls a variant: compiled by the backend first (JAX ahead of time; torch.compile after
    one eager call, which keeps the formulas' namespace lookup out of its trace), then called."""
    compiled, _ = backend.compile(fn, args)
    return compiled(*args)


def _numpy(backend, out) -> np.ndarray:
    backend.sync(out)
    return np.asarray(backend.to_numpy(out))


@pytest.mark.parametrize("name, problem_name", CASES)
def test_float32_in_float32_out(name, problem_name):
    backend, problem = ready(name), problems.get(problem_name)
    (n,) = sizes_for(problem, (SMALLER.get(problem_name, N),))
    inputs = {}
    for dtype in (np.float64, np.float32):
        inst, data, x, v = _inputs(backend, problem, n, dtype)
        assert backend.to_numpy(x).dtype == dtype
        step = backend.asarray(np.asarray(0.5 / inst.lipschitz if math.isfinite(inst.lipschitz) else 0.01, dtype=dtype),
                               "cpu")
        inputs[dtype] = (x, v, data, step)
    checked = 0
    known = CANNOT_DIFFERENTIATE.get((name, problem_name))
    for label, fn, args, outputs in _calls(backend, problem, problem.instance(n, seed=SEED)):
        variant = label.rsplit(" ", 1)[-1]
        try:
            reference = outputs(_run(backend, fn, args(*inputs[np.float64])))
        except backends.Infeasible:
            continue  # a variant that declines the size (nested autodiff), or what a compiler cannot compile
        except NotImplementedError as exc:
            assert known and known in str(exc), (label, exc)
            with pytest.raises(NotImplementedError, match=known):
                _run(backend, fn, args(*inputs[np.float32]))
            continue
        try:
            result = outputs(_run(backend, fn, args(*inputs[np.float32])))
        except backends.Infeasible as exc:
            assert (name, problem_name, variant) in FLOAT64_ONLY, f"{label} declines float32 alone: {exc}"
            continue
        for i, (out, ref) in enumerate(zip(result, reference, strict=True)):
            out, ref = _numpy(backend, out), _numpy(backend, ref)
            where = f"{name} {problem_name} {label} (output {i})"
            assert ref.dtype == np.float64, f"{where}: float64 in, {ref.dtype} out"
            assert out.dtype == np.float32, f"{where}: float32 in, {out.dtype} out"
            assert np.all(np.isfinite(out)), f"{where}: float32 result not finite"
            out, ref = out.astype(np.float64).reshape(-1), ref.reshape(-1)
            error = np.linalg.norm(out - ref) / max(np.linalg.norm(ref), FLOOR)
            assert error < RTOL, f"{where}: float32 differs from float64 by {error:.2g} (relative)"
        checked += 1
    assert checked, f"{name} {problem_name}: no variant ran"


@pytest.mark.parametrize("name", BACKENDS)
def test_asarray_keeps_the_dtype(name):
    backend = ready(name)
    for a in (np.linspace(0, 1, 3), np.linspace(0, 1, 3, dtype=np.float32), np.eye(2, dtype=np.float32),
              np.arange(3), np.asarray(0.25, dtype=np.float32)):
        out = backend.to_numpy(backend.asarray(a, "cpu"))
        assert out.dtype == a.dtype and out.shape == a.shape, (name, a.dtype, out.dtype)
        np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("name", [pytest.param(b, marks=_tier(b)) for b in ("jax", "tensorflow", "enzyme")])
def test_whole_loop_solve_runs_in_x0s_dtype(name):
    """The solvers' loop state (x, f, the gap) is x0's: float32 stays float32, whatever the step's dtype."""
    backend, problem = ready(name), problems.get("least_squares")
    inst = problem.instance(N, seed=SEED)
    data = {k: backend.asarray(_cast(a, np.float32), "cpu") if isinstance(a, np.ndarray) else a
            for k, a in inst.data.items()}
    x0 = backend.asarray(inst.x0.astype(np.float32), "cpu")
    for mode in backend.modes:
        for variant, solve in backend.solvers(problem, mode).items():
            for step_dtype in (np.float32, np.float64):
                step = backend.asarray(np.asarray(1.0 / inst.lipschitz, dtype=step_dtype), "cpu")
                try:
                    iterations, value, status = solve(x0, data, step, inst.f_star, 1e-4, 10_000)
                except backends.Infeasible:
                    continue
                assert _numpy(backend, value).dtype == np.float32, (name, mode, variant, step_dtype)
                assert int(backend.to_numpy(status)) == 1, (name, mode, variant, step_dtype)  # ok: converged
                assert 0 < int(backend.to_numpy(iterations)) < 10_000
