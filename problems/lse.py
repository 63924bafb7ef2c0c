"""LogSumExp with the max-shift trick: GradBench's `lse` eval.

    f(x) = a + log sum_i exp(x_i - a),   a = max_i x_i

Peers: gradbench/gradbench evals/lse/README.md (asks for the max-shift form, built from its
primitives, not a library logsumexp), cpp/gradbench/evals/lse.hpp (reference primal),
tools/manual/lse.cpp (hand gradient), python/gradbench/gradbench/tools/{jax,pytorch}/lse.py.

The shift a is any constant mathematically (f does not depend on it), so its derivative cancels:
autodiff sends d/da = 1 - sum_i p_i (zero up to rounding) to the arg max. With p = softmax(x):

    grad f = p        hess f = diag(p) - p p^T        hess f v = p * v - p (p^T v)

Sizes: GradBench's family has one size, the length of x (n = 2500 ... 1280000 by doubling); here
n is that length, dim = n. Inputs: GradBench's x ~ U[0, 1)^n (`np.random.rand(n)` after
`np.random.seed(31337)`; its run.py parses --min -100 / --max 100 but never uses them), here from
`default_rng([seed, n, 121])`. x is the evaluation point; there are no data. f has no minimum
(it decreases without bound along -1), so gradient descent does not run: lipschitz is nan.
"""
from __future__ import annotations

import math

import numpy as np

from ._spec import Cost, Instance, Problem
from ._xp import array_namespace, eye_like, outer


def _softmax(x):
    xp = array_namespace(x)
    e = xp.exp(x - xp.max(x))
    return xp, e / xp.sum(e)


def f(x, data):
    xp = array_namespace(x)
    a = xp.max(x)
    return a + xp.log(xp.sum(xp.exp(x - a)))


def grad(x, data):
    # GradBench's manual tool: exp(x - max) then divide by the sum.
    return _softmax(x)[1]


def hess(x, data):
    _, p = _softmax(x)
    return eye_like(x) * p - outer(p, p)


def hvp(x, v, data):
    xp, p = _softmax(x)
    return p * v - p * xp.sum(p * v)


def value_and_grad(x, data):
    """f and p sharing exp(x - a) and its sum."""
    xp = array_namespace(x)
    a = xp.max(x)
    e = xp.exp(x - a)
    s = xp.sum(e)
    return a + xp.log(s), e / s


def instance(n: int, seed: int = 0) -> Instance:
    return Instance(problem="lse", n=n, seed=seed, x0=point(n, seed)[0], data={}, lipschitz=math.nan)


def point(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n, 121])
    return rng.random(n), rng.standard_normal(n)


def cost(kind: str, n: int) -> Cost | None:
    """x (8 n bytes) read, the gradient and HVP written (and v read); about 4 flops an entry for f
    (max, shift, exp, sum), 5 for p, 9 for the HVP. The Hessian must write n x n (8 n^2 bytes,
    2 n^2 flops); as written it makes three n x n arrays (the identity, its product with p, the outer
    product) and their difference: 7 passes of 8 n^2, and 4 more as the kernel zero-fills each of
    those fresh arrays when first touched."""
    x = 8.0 * n
    return {"f": Cost(x, 4.0 * n), "grad": Cost(2 * x, 5.0 * n), "hvp": Cost(3 * x, 9.0 * n),
            "hess": Cost(x + 8.0 * n * n, 2.0 * n * n, x + 11 * 8.0 * n * n)}.get(kind)

lse = Problem(
    name="lse", f=f, grad=grad, hess=hess, hvp=hvp, value_and_grad=value_and_grad, instance=instance, cost=cost,
    formula=r"f(x) = a + \log \sum_i e^{x_i - a},\ a = \max_i x_i",
    seed_ref="GradBench evals/lse (LogSumExp with the max-shift trick)",
    tags=frozenset({"convex", "vector", "gradbench"}), data_matrices=0, point=point,
)
