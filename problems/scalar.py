"""Functions of one real variable: det(A - tI) (matrix calculus ex. 30) and the k-th derivative
of tanh (autodiff ex. 3).

det_shift   f(t) = det(M), M = A - t I, Y = M^{-1}, t stored as x = [t]
            f'(t)  = -det(M) tr(Y)                              (Jacobi's formula, dM = -I dt)
            f''(t) = det(M) (tr(Y)^2 - tr(Y^2))                 (d tr(Y) = tr(Y^2) dt)
            n is the side of A: every derivative is O(n^3) (an inverse and a determinant). A is
            t0 I + H T H with T upper triangular, its diagonal mu in pairs (r, 1/r), H a
            Householder reflection: A is not symmetric, its eigenvalues are exactly t0 + mu, and
            at the evaluation point t = t0 the determinant is exactly 1 for every n (no overflow).

tanh_dk     f(x) = tanh(x) elementwise; dk = f^(k)(x), with k = n the sweep variable.
            With y = tanh x, f^(k) = P_k(y) where P_0(y) = y and P_{k+1}(y) = (1 - y^2) P_k'(y)
            (because dy/dx = 1 - y^2). The integer coefficients of P_k are the data, derived
            once per instance as a derivation by hand is; each call evaluates P_k(tanh x) by
            Horner's rule: O(k). Nested autodiff (k levels of grad) grows exponentially in k;
            Taylor mode (JAX's jet) polynomially. k is read from the coefficients' static shape.
            The recurrence is exact, its evaluation in float64 is not: see size_limits.
"""
from __future__ import annotations

import math

import numpy as np

from ._matrices import householder_similar, seeded_rng
from ._spec import Instance, Problem
from ._xp import array_namespace, eye_like, horner, linalg

# det(A - tI) -----------------------------------------------------------------------------------
T0 = 0.5  # the evaluation point t


def _shifted(t, data):
    a = data["A"]
    return a - t[0] * eye_like(a)


def _det_and_traces(t, data):
    xp = array_namespace(t)
    m = _shifted(t, data)
    y = linalg(m).inv(m)
    eye = eye_like(m)
    return linalg(m).det(m), xp.sum(y * eye), xp.sum(y * y.T)


def det_shift_f(t, data):
    m = _shifted(t, data)
    return linalg(m).det(m)


def det_shift_grad(t, data):
    det, tr_y, _ = _det_and_traces(t, data)
    return -det * tr_y + 0.0 * t


def det_shift_hess(t, data):
    xp = array_namespace(t)
    det, tr_y, tr_y2 = _det_and_traces(t, data)
    return xp.reshape(det * (tr_y * tr_y - tr_y2) + 0.0 * t, (1, 1))


def det_shift_hvp(t, v, data):
    det, tr_y, tr_y2 = _det_and_traces(t, data)
    return det * (tr_y * tr_y - tr_y2) * v


def det_shift_value_and_grad(t, data):
    det, tr_y, _ = _det_and_traces(t, data)
    return det, -det * tr_y + 0.0 * t


def _det_shift_instance(n, seed=0):
    rng = seeded_rng(n, seed, 84)
    r = np.exp(rng.uniform(-0.7, 0.7, n // 2))
    mu = np.concatenate([r, 1.0 / r, np.ones(n % 2)])
    core = np.triu(rng.standard_normal((n, n)) * (0.5 / math.sqrt(n)), 1)
    core.flat[:: n + 1] = rng.permutation(mu)
    a = householder_similar(core, rng)
    a.flat[:: n + 1] += T0
    return Instance("det_shift", n, seed, np.array([T0]), {"A": a}, math.nan)


det_shift = Problem(
    name="det_shift", f=det_shift_f, grad=det_shift_grad, hess=det_shift_hess, hvp=det_shift_hvp,
    value_and_grad=det_shift_value_and_grad, instance=_det_shift_instance,
    formula=r"f(t) = \det(A - tI_n)", seed_ref="Matrix calculus ex. 30 (first and second derivative in t)",
    tags=frozenset({"scalar"}), dim=lambda n: 1,
    point=lambda n, seed=0: (np.array([T0]), np.array([1.0])),
    # an inverse and a determinant per call, autodiff differentiates through the LU
    size_limits={d: 3162 for d in ("f", "grad", "hess", "hvp")},
)


# k-th derivative of tanh -----------------------------------------------------------------------
POINTS = 16  # evaluation points, elementwise


def tanh_polynomial(k: int) -> np.ndarray:
    """The coefficients c_0..c_{k+1} of P_k (f^(k) = P_k(tanh x)), exact integers, as float64."""
    coef = [0, 1]  # P_0(y) = y
    for _ in range(k):
        derivative = [i * c for i, c in enumerate(coef)][1:]  # P'
        # (1 - y^2) P'(y)
        coef = [(derivative[i] if i < len(derivative) else 0) - (derivative[i - 2] if i >= 2 else 0)
                for i in range(len(derivative) + 2)]
    # beyond float64's range (k > ~150) the entries are +-inf: far past the declared size limit
    return np.array([float(c) if abs(c) < 2**1023 else (math.inf if c > 0 else -math.inf) for c in coef])


def tanh_f(x, data):
    return array_namespace(x).tanh(x)


def tanh_dk(x, data):
    return horner(data["coef"], array_namespace(x).tanh(x))


def tanh_order(data) -> int:
    return data["coef"].shape[0] - 2


def tanh_dk_cauchy(x: np.ndarray, k: int, radius: float = 1.4, points: int = 1024) -> np.ndarray:
    """f^(k)(x) by Cauchy's integral formula on a circle (trapezoidal rule, exponentially
    accurate), independent of the recurrence: a check for tests. tanh's poles are at +-i pi/2,
    so the radius must stay below pi/2 (at 1.4, within 1e-14 of JAX's jet up to k = 40)."""
    theta = 2 * np.pi * np.arange(points) / points
    z = radius * np.exp(1j * theta)
    values = np.tanh(x[:, None] + z[None, :])
    coefficient = np.mean(values * np.exp(-1j * k * theta)[None, :], axis=1) / radius**k
    return (coefficient * math.factorial(k)).real


def _tanh_instance(n, seed=0):
    x0 = seeded_rng(n, seed, 86).uniform(-1.5, 1.5, POINTS)
    return Instance("tanh_dk", n, seed, x0, {"coef": tanh_polynomial(n)}, math.nan)


tanh_dk_problem = Problem(
    name="tanh_dk", f=tanh_f, dk=tanh_dk, order=tanh_order, instance=_tanh_instance,
    formula=r"\frac{d^k}{dx^k}\tanh x = P_k(\tanh x),\ P_{k+1}(y) = (1 - y^2) P_k'(y)",
    seed_ref="Automatic differentiation ex. 3 (4th derivative of tanh), k-th as the sweep variable",
    tags=frozenset({"scalar"}), data_matrices=0, dim=lambda n: POINTS, size_name="k",
    point=lambda n, seed=0: (_tanh_instance(n, seed).x0, np.ones(POINTS)),
    # P_k's coefficients alternate in sign and grow like k!: Horner's rule in y = tanh x cancels
    # digits (relative error 3e-11 at k = 24, 1.5e-8 at k = 32, 4e-6 at k = 40, measured against
    # Cauchy's formula; jet stays within 2e-14): beyond k = 24 the formula fails rtol 1e-8.
    size_limits={"f": 24, "dk": 24},
)
