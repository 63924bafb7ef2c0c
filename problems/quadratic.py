"""Quadratic form: f(x) = 1/2 x^T A x + b^T x + c, A symmetric positive definite.

Seed: autodiff exercise 4 (analytic vs autodiff Hessian); matrix calculus exercise 3.

    grad f(x) = 1/2 (A + A^T) x + b = A x + b      hess f(x) = A      hess f(x) v = A v

Instance: A = H diag(lam) H with eigenvalues spread evenly over [1, cond]; x* a random unit
vector, b = -A x*, c = 0, so x* is the minimiser and f* = -1/2 x*^T A x*. x0 = 0.
"""
from __future__ import annotations

import numpy as np

from ._matrices import spectrum, with_eigenvalues
from ._spec import Cost, Instance, Problem
from ._xp import array_namespace


def f(x, data):
    xp = array_namespace(x)
    return 0.5 * xp.sum(x * (data["A"] @ x)) + xp.sum(data["b"] * x) + data["c"]


def grad(x, data):
    return data["A"] @ x + data["b"]


def hess(x, data):
    return data["A"]


def hvp(x, v, data):
    return data["A"] @ v


def value_and_grad(x, data):
    xp = array_namespace(x)
    ax = data["A"] @ x
    return 0.5 * xp.sum(x * ax) + xp.sum(data["b"] * x) + data["c"], ax + data["b"]


def instance(n: int, seed: int = 0, *, cond: float = 4.0) -> Instance:
    rng = np.random.default_rng([seed, n, 1])
    a = with_eigenvalues(spectrum(n, 1.0, cond), rng)
    x_star = rng.standard_normal(n)
    x_star /= np.linalg.norm(x_star)
    b = -(a @ x_star)
    f_star = -0.5 * float(x_star @ (a @ x_star))
    return Instance(
        problem="quadratic", n=n, seed=seed, x0=np.zeros(n),
        data={"A": a, "b": b, "c": 0.0}, lipschitz=float(cond), strong_convexity=1.0,
        solve_f_star=lambda: f_star,
    )


def cost(kind: str, n: int) -> Cost | None:
    """One pass over A (8 n^2 bytes, a 2 n^2-flop matvec) for f, the gradient, the HVP and a step;
    the Hessian is A itself (stored: no cost model)."""
    a = 8.0 * n * n
    return {"f": Cost(a, 2.0 * n * n), "grad": Cost(a, 2.0 * n * n), "hvp": Cost(a, 2.0 * n * n),
            "gd": Cost(a, 2.0 * n * n)}.get(kind)


quadratic = Problem(
    name="quadratic", f=f, grad=grad, hess=hess, hvp=hvp, value_and_grad=value_and_grad,
    instance=instance, cost=cost, formula=r"f(x) = \frac{1}{2}x^\top A x + b^\top x + c,\ A \in \mathbb{S}^n_{++}",
    seed_ref="Autodiff ex. 4; matrix calculus ex. 3",
    tags=frozenset({"convex", "vector"}), stored=frozenset({"hess"}),
)
