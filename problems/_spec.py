"""The records every problem module ends with: `Problem` (pure functions) and `Instance` (numpy data)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

Array = Any  # an array of any array-API library (numpy, jax, torch, autograd's numpy)
Data = dict[str, Any]  # arrays and python floats; each backend converts the arrays once

# Every derivative kind a problem may define: value, gradient, Hessian, Hessian-vector product,
# Jacobian (vector-valued f), k-th derivative (scalar f of one variable).
DERIVATIVE_KINDS = ("f", "grad", "hess", "hvp", "jac", "dk")


@dataclass(frozen=True)
class Instance:
    """One seeded instance of a problem, as float64 numpy arrays.

    `data` is what every derivative takes besides x; `lipschitz` is the gradient's Lipschitz
    constant (gradient descent uses step 1/lipschitz; nan where it does not run); `f_star` is the
    minimum value, known in closed form or computed once to high accuracy (None where the problem
    has no minimum, or none that gradient descent with a fixed step reaches).
    """

    problem: str
    n: int
    seed: int
    x0: np.ndarray
    data: Data
    lipschitz: float
    solve_f_star: Callable[[], float] | None = field(default=None, repr=False)

    @cached_property
    def f_star(self) -> float | None:
        # Computed on first use: eval cells never pay for an iterative reference solve.
        return None if self.solve_f_star is None else float(self.solve_f_star())

    @property
    def nbytes(self) -> int:
        arrays = [v for v in self.data.values() if isinstance(v, np.ndarray)]
        return int(sum(a.nbytes for a in arrays) + self.x0.nbytes)


@dataclass(frozen=True, kw_only=True)
class Problem:
    """A test problem: flat functions with one signature, plus its instance generator.

    Scalar f (most problems): f(x, data) -> scalar, grad(x, data) -> x's shape,
    hess(x, data) -> (N, N), hvp(x, v, data) -> x's shape, value_and_grad(x, data) ->
    (scalar, gradient) sharing work between the two as a hand-written gradient step would.
    Vector-valued f (tag "vector-valued"): f(x, data) -> (m,) and jac(x, data) -> (m, N), the
    Jacobian over vec(x) row-major. Derivatives of every order of a scalar function of one
    variable: dk(x, data) -> f^(k)(x) elementwise, with k = `order(data)` read from a static
    shape (so that JAX can trace it). A problem defines the derivative kinds it has; the others
    are None, and `derivatives` lists the defined ones. Each is written once against the array
    API standard.
    """

    name: str
    f: Callable[[Array, Data], Array]
    grad: Callable[[Array, Data], Array] | None = None
    hess: Callable[[Array, Data], Array] | None = None
    hvp: Callable[[Array, Array, Data], Array] | None = None
    value_and_grad: Callable[[Array, Data], tuple[Array, Array]] | None = None
    jac: Callable[[Array, Data], Array] | None = None
    dk: Callable[[Array, Data], Array] | None = None
    order: Callable[[Data], int] | None = None  # k for dk, from a static shape in data
    instance: Callable[..., Instance]
    formula: str
    seed_ref: str
    tags: frozenset[str] = frozenset()
    data_matrices: int = 1  # dense n x n matrices in the data (memory estimates)
    # Number of scalar variables at size n: n for vectors, n*n for an n x n matrix variable X
    # (whose Hessian is over vec(X), row-major: entry X[i, j] is variable i * n + j).
    dim: Callable[[int], int] = lambda n: n
    # what the sweep variable n counts, for axis labels: "n" (the size), "k" (an order), "terms"
    size_name: str = "n"
    # point(n, seed) -> (x, v): where derivatives are evaluated, and the HVP direction, inside
    # the domain. None: a generic vector of norm about 1 (see `evaluation_point`).
    point: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = None
    # derivative -> largest n this machine class can afford (e.g. dense Hessians over vec(X));
    # the runner skips larger cells with the reason.
    size_limits: dict[str, int] = field(default_factory=dict)

    @property
    def derivatives(self) -> tuple[str, ...]:
        """The derivative kinds this problem defines, f first (f is always timed too)."""
        return ("f", *(d for d in DERIVATIVE_KINDS[1:] if getattr(self, d) is not None))

    def evaluation_point(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        if self.point is not None:
            return self.point(n, seed)
        rng = np.random.default_rng([seed, n, 99])
        # a generic point: x0 = 0 would hide terms (sigmoid(0) = 1/2, norms undefined)
        return rng.standard_normal(n) / np.sqrt(n), rng.standard_normal(n)

    def data_bytes(self, n: int) -> int:
        """Bytes of float64 data an instance of size n holds: its n x n matrices and a few vectors."""
        return 8 * (self.data_matrices * n * n + 4 * n)
