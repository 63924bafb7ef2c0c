"""Regularised logistic loss: f(x) = (1/m) sum_i log(1 + exp(a_i^T x)) + mu/2 ||x||^2.

Seed: matrix calculus exercises 20 and 28; autodiff exercise 7.

With z = A x, s = sigmoid(z), d = s (1 - s):

    grad f(x) = A^T s / m + mu x
    hess f(x) = A^T diag(d) A / m + mu I
    hess f(x) v = A^T (d * (A v)) / m + mu v

Instance: m = n rows; A / sqrt(m) has singular values spread over [1, 2], so the Hessian lies
between mu I and (1/4 * 4 + mu) I: L = 1 + mu. mu = 0.1 by default. There is no closed-form
minimiser: f* is computed once, on first use, by a trust-region Newton-CG solve (scipy) with the
analytic gradient and HVP to a gradient norm of 1e-11, so f - f* <= ||g||^2 / (2 mu) ~ 1e-21.
x0 = 0.
"""
from __future__ import annotations

import numpy as np

from ._blocks import row_blocks
from ._matrices import spectrum, with_singular_values
from ._spec import Cost, Instance, Problem
from ._xp import array_namespace


def _sigmoid(z, xp):
    # exp(-log(1 + exp(-z))): no overflow for large |z| in either sign.
    return xp.exp(-xp.logaddexp(xp.zeros_like(z), -z))


def f(x, data):
    xp = array_namespace(x)
    z = data["A"] @ x
    m = z.shape[0]
    return xp.sum(xp.logaddexp(xp.zeros_like(z), z)) / m + 0.5 * data["mu"] * xp.sum(x * x)


def grad(x, data):
    xp = array_namespace(x)
    z = data["A"] @ x
    return (_sigmoid(z, xp) @ data["A"]) / z.shape[0] + data["mu"] * x


def grad_fused(x, data):
    """The gradient with A read once: over row blocks that stay in cache between A_k x and s_k A_k."""
    xp = array_namespace(x)
    a = data["A"]
    g = 0.0 * x
    for rows in row_blocks(a):
        block = a[rows]
        g = g + _sigmoid(block @ x, xp) @ block
    return g / a.shape[0] + data["mu"] * x


def hess(x, data):
    xp = array_namespace(x)
    a = data["A"]
    s = _sigmoid(a @ x, xp)
    d = s * (1.0 - s)
    eye = xp.eye(x.shape[0], dtype=x.dtype, device=_device(x))
    return (a.T * d) @ a / a.shape[0] + data["mu"] * eye


def hvp(x, v, data):
    xp = array_namespace(x)
    a = data["A"]
    s = _sigmoid(a @ x, xp)
    return ((s * (1.0 - s) * (a @ v)) @ a) / a.shape[0] + data["mu"] * v


def value_and_grad(x, data):
    xp = array_namespace(x)
    z = data["A"] @ x
    m = z.shape[0]
    value = xp.sum(xp.logaddexp(xp.zeros_like(z), z)) / m + 0.5 * data["mu"] * xp.sum(x * x)
    return value, (_sigmoid(z, xp) @ data["A"]) / m + data["mu"] * x


def _device(x):
    from ._xp import device

    return device(x)


def _minimum(data) -> float:
    from scipy.optimize import minimize

    n = data["A"].shape[1]
    result = minimize(
        f, np.zeros(n), args=(data,), jac=grad, hessp=lambda x, v, d: hvp(x, v, d),
        method="trust-ncg", options={"gtol": 1e-11, "maxiter": 200},
    )
    if np.linalg.norm(grad(result.x, data)) > 1e-9:
        raise RuntimeError(f"logistic f* solve did not converge: {result.message}")
    return float(f(result.x, data))


def instance(n: int, seed: int = 0, *, mu: float = 0.1) -> Instance:
    rng = np.random.default_rng([seed, n, 2])
    a = with_singular_values(np.sqrt(n) * spectrum(n, 1.0, 2.0), rng)
    data = {"A": a, "mu": float(mu)}
    return Instance(
        problem="logistic", n=n, seed=seed, x0=np.zeros(n), data=data,
        lipschitz=1.0 + mu, strong_convexity=mu, solve_f_star=lambda: _minimum(data),
    )


def cost(kind: str, n: int) -> Cost | None:
    """A is n x n (m = n rows, 8 n^2 bytes), read once at least; each matvec 2 n^2 flops. As
    written, the gradient reads it twice (A x, s @ A), the HVP three times (A x, A v, then @ A). The
    Hessian must read A and write n x n; as written it reads A (A x), scales A^T into a temporary (a
    read and a write), multiplies it by A (2 n^3 flops: two reads and a write), and adds mu I (the
    identity written, scaled, added: 6 passes more), about 12 passes of 8 n^2."""
    a = 8.0 * n * n
    return {"f": Cost(a, 2.0 * n * n), "grad": Cost(a, 4.0 * n * n, 2 * a), "hvp": Cost(a, 6.0 * n * n, 3 * a),
            "gd": Cost(a, 4.0 * n * n, 2 * a), "hess": Cost(2 * a, 2.0 * n**3, 12 * a)}.get(kind)


logistic = Problem(
    name="logistic", f=f, grad=grad, hess=hess, hvp=hvp, value_and_grad=value_and_grad, fused={"grad": grad_fused},
    instance=instance, cost=cost,
    formula=r"f(x) = \frac{1}{m}\sum_{i=1}^m \log(1 + e^{a_i^\top x}) + \frac{\mu}{2}\|x\|_2^2",
    seed_ref="Matrix calculus ex. 20, 28; autodiff ex. 7",
    tags=frozenset({"convex", "vector"}),
)
