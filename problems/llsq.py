"""Linear least squares on a monomial basis: GradBench's `llsq` eval, from cmpad's `llsq_obj`.

    y(x) = 1/2 sum_{i<n} (s_i - sum_{j<m} x_j t_i^j)^2,    t_i = -1 + 2 i / (n - 1),  s_i = sign(t_i)

Peers: gradbench/gradbench evals/llsq/README.md, cpp/gradbench/evals/llsq.hpp (reference primal),
tools/manual/llsq.cpp (hand gradient); bradbell/cmpad xrst/algorithm.xrst (`llsq_obj`, with the
derivative below) and python/cmpad/llsq_obj.py.

sign(0) = 0: both peers say so (cmpad's cases; GradBench's C++ `s(t) = (0 < t) - (t < 0)`), so for
odd n the middle point, where t = 0 exactly in floating point, has s = 0. With the n x m
Vandermonde matrix V_ij = t_i^j and the residual r = s - V x:

    grad y = -V^T r        hess y = V^T V        hess y v = V^T (V v)

Sizes: GradBench's own family. evals/llsq sweeps n = 16 ... 16392 points at m = 128 fixed; here the
sweep variable n is the number of points and x always has M = 128 variables (so the Hessian is
128 x 128 at every n and the cost grows as n m). n = 1 follows cmpad (t = [0], s = [0]), since
GradBench's formula divides by n - 1 = 0 there.

Work split as in cmpad: t and s are the data (cmpad's untimed `setup`); the powers t_i^j are formed
in every call, as both peers' timed functions do (GradBench's C++ by a running product, its JAX
tool by cumprod). Here by doubling: [t^0 .. t^(w-1)] -> [.., t^w * (t^0 .. t^(w-1))], 7 concats for
m = 128 (the array API has no cumulative product in every library); equal to the running product
to a few ulps.

Instance: the data are deterministic. The evaluation point is GradBench's distribution,
x ~ U[0, 1)^m (its `np.random.rand(m)` after `np.random.seed(31337)`, one draw per size in
sorted order); here `default_rng([seed, n, 120])`, independent across sizes. The monomial basis of
degree 127 is numerically singular, so gradient descent with a fixed step reaches no useful f*:
lipschitz is nan and f* is not given.
"""
from __future__ import annotations

import math

import numpy as np

from ._spec import Cost, Instance, Problem
from ._xp import array_namespace, concat

M = 128  # GradBench's m: the number of variables at every n


def _vandermonde(data):
    """V_ij = t_i^j (n x M), formed in every call as the peers' timed functions do."""
    xp = array_namespace(data["t"])
    t = data["t"][:, None]
    v = xp.ones_like(t)
    while v.shape[1] < M:  # M = 2^7: each pass doubles the width, t^w = t^(w-1) * t
        v = concat([v, v * (v[:, -1:] * t)], axis=1)
    return v


def f(x, data):
    xp = array_namespace(x)
    r = data["s"] - _vandermonde(data) @ x
    return 0.5 * xp.sum(r * r)


def grad(x, data):
    # -(r @ V) rather than -V.T @ r: same numbers, no transposed copy of V in JAX.
    v = _vandermonde(data)
    return -((data["s"] - v @ x) @ v)


def hess(x, data):
    v = _vandermonde(data)
    return v.T @ v


def hvp(x, w, data):
    v = _vandermonde(data)
    return (v @ w) @ v


def value_and_grad(x, data):
    """y and its gradient sharing V and the residual, as GradBench's manual tool shares the sums."""
    xp = array_namespace(x)
    v = _vandermonde(data)
    r = data["s"] - v @ x
    return 0.5 * xp.sum(r * r), -(r @ v)


def points(n: int) -> np.ndarray:
    """GradBench's t_i = -1 + i * 2 / (n - 1), bit for bit (llsq.hpp); cmpad's t = [0] at n = 1."""
    if n == 1:
        return np.zeros(1)
    return -1.0 + np.arange(n) * 2.0 / (n - 1)


def instance(n: int, seed: int = 0) -> Instance:
    t = points(n)
    data = {"t": t, "s": np.sign(t)}
    return Instance(problem="llsq", n=n, seed=seed, x0=np.zeros(M), data=data, lipschitz=math.nan)


def point(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n, 120])
    return rng.random(M), rng.standard_normal(M)


def cost(kind: str, n: int) -> Cost | None:
    """The data are t and s (16 n bytes); V (n x 128, v = 1024 n bytes) can be formed on the fly, so
    that is all a fused pass must read. As written, V is formed in memory by doubling: each of its 7
    steps writes a product w wide, reads it and the w columns before, and writes 2w (about 5 v in
    all); each product with V reads it once more. Flops: forming V 128 n, each product with V 256 n;
    the Hessian V^T V is symmetric, the BLAS's syrk at 128^2 n, and writes 128 x 128."""
    v = 8.0 * M * n
    return {"f": Cost(16.0 * n, 3.0 * M * n, 6 * v), "grad": Cost(16.0 * n, 5.0 * M * n, 7 * v),
            "hvp": Cost(16.0 * n, 5.0 * M * n, 7 * v),
            "hess": Cost(16.0 * n + 8.0 * M * M, 1.0 * M * M * n + M * n, 6 * v)}.get(kind)


llsq = Problem(
    name="llsq", f=f, grad=grad, hess=hess, hvp=hvp, value_and_grad=value_and_grad,
    instance=instance, cost=cost,
    formula=r"y(x) = \frac{1}{2}\sum_{i<n}\left(\mathrm{sign}(t_i) - \sum_{j<128} x_j t_i^j\right)^2,\ "
            r"t_i = -1 + \frac{2i}{n-1}",
    seed_ref="GradBench evals/llsq (from cmpad llsq_obj): m = 128 coefficients, n points",
    tags=frozenset({"convex", "vector", "gradbench"}), data_matrices=0, dim=lambda n: M,
    size_name="points", point=point,
)
