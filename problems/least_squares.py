"""Linear least squares: f(x) = 1/2 ||Ax - b||_2^2.

Seed: the "Automatic differentiation" task (gradient descent for linear regression, manual gradient
vs autodiff, time to f - f* <= 1e-9 over n in np.logspace(1, 4)); autodiff exercise 6; matrix
calculus exercise 5.

    grad f(x) = A^T (Ax - b)        hess f(x) = A^T A        hess f(x) v = A^T (A v)

Instance: A is n x n with singular values spread evenly over [1, sqrt(cond)], so A^T A has
eigenvalues in [1, cond] and step 1/L with L = cond converges at a rate set by `cond` alone,
independent of n. b = A x* for a random unit-norm x*, so x* is the minimiser and f* = 0 exactly.
x0 = 0.

`least_squares_ill` is the same problem at cond = 10^4 (A^T A's eigenvalues in [1, 10^4]): gradient
descent at step 1/L needs about cond/2 x ln((f(x0) - f*) / eps), some 10^5 steps at eps = 1e-9,
where a Newton-type method needs a few (Newton one; Newton-CG about sqrt(cond) CG steps per
iteration). It is where the second-order solvers matter (bench.solvers).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._blocks import row_blocks
from ._matrices import spectrum, with_singular_values
from ._spec import Cost, Instance, Problem
from ._xp import array_namespace


def f(x, data):
    xp = array_namespace(x)
    r = data["A"] @ x - data["b"]
    return 0.5 * xp.sum(r * r)


def grad(x, data):
    # r @ A rather than A.T @ r: same numbers, but JAX materialises A.T (15x slower at n = 10^4).
    return (data["A"] @ x - data["b"]) @ data["A"]


def hess(x, data):
    a = data["A"]
    return a.T @ a


def hvp(x, v, data):
    return (data["A"] @ v) @ data["A"]


def grad_fused(x, data):
    """A^T (A x - b) with A read once: over row blocks that stay in cache between their two products."""
    a, b = data["A"], data["b"]
    g = 0.0 * x
    for rows in row_blocks(a):
        block = a[rows]
        g = g + (block @ x - b[rows]) @ block
    return g


def hvp_fused(x, v, data):
    """A^T (A v) with A read once (row blocks, as grad_fused)."""
    a = data["A"]
    g = 0.0 * v
    for rows in row_blocks(a):
        block = a[rows]
        g = g + (block @ v) @ block
    return g


def value_and_grad(x, data):
    """f and its gradient sharing the residual, as a hand-written gradient step computes them."""
    xp = array_namespace(x)
    r = data["A"] @ x - data["b"]
    return 0.5 * xp.sum(r * r), r @ data["A"]


def instance(n: int, seed: int = 0, *, cond: float = 4.0) -> Instance:
    rng = np.random.default_rng([seed, n])
    a = with_singular_values(np.sqrt(spectrum(n, 1.0, cond)), rng)
    x_star = rng.standard_normal(n)
    x_star /= np.linalg.norm(x_star)
    return Instance(
        problem="least_squares", n=n, seed=seed, x0=np.zeros(n),
        data={"A": a, "b": a @ x_star}, lipschitz=float(cond), strong_convexity=1.0, solve_f_star=lambda: 0.0,
    )


ILL_CONDITION = 1e4


def ill_conditioned_instance(n: int, seed: int = 0) -> Instance:
    return replace(instance(n, seed, cond=ILL_CONDITION), problem="least_squares_ill")


def cost(kind: str, n: int) -> Cost | None:
    """A (8 n^2 bytes) dominates every kind: it must be read once; a matvec is 2 n^2 flops. The
    gradient, the HVP and a descent step as written read it twice (A @ x, then r @ A), where one
    row-blocked pass does (grad_fused, hvp_fused: the floor's bytes); the Hessian A^T A writes n x n,
    and, being symmetric, takes the BLAS's syrk n^3 flops (half a general matmul's; numpy calls syrk
    for A.T @ A)."""
    a = 8.0 * n * n
    return {"f": Cost(a, 2.0 * n * n), "grad": Cost(a, 4.0 * n * n, 2 * a), "hvp": Cost(a, 4.0 * n * n, 2 * a),
            "gd": Cost(a, 4.0 * n * n, 2 * a), "hess": Cost(2 * a, 1.0 * n**3)}.get(kind)


least_squares = Problem(
    name="least_squares", f=f, grad=grad, hess=hess, hvp=hvp, value_and_grad=value_and_grad,
    fused={"grad": grad_fused, "hvp": hvp_fused},
    instance=instance, cost=cost, formula=r"f(x) = \frac{1}{2}\|Ax - b\|_2^2",
    seed_ref="Automatic differentiation: GD for linear regression; autodiff ex. 6; matrix calculus ex. 5",
    tags=frozenset({"convex", "vector"}),
)


least_squares_ill = replace(
    least_squares, name="least_squares_ill", instance=ill_conditioned_instance,
    formula=r"f(x) = \frac{1}{2}\|Ax - b\|_2^2,\ \kappa(A^\top A) = 10^4",
    seed_ref="Automatic differentiation task's problem made ill-conditioned (second-order methods)",
    tags=frozenset({"convex", "vector", "ill-conditioned"}),
)
