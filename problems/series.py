"""Truncated Taylor series of cos (autodiff exercise 1), the number of terms as the size.

    C_n(x) = sum_{k<n} c_k x^{2k},  c_k = (-1)^k / (2k)!,    f(x) = sum_i C_n(x_i), x in R^64
    grad f = sum_{k>=1} 2k c_k x^{2k-1}          (elementwise)
    hess f = diag(sum_{k>=1} 2k (2k-1) c_k x^{2k-2})

The coefficients are the data (computed by the recursion c_k = -c_{k-1} / ((2k-1) 2k), never by
factorials: 170! overflows); every polynomial is evaluated by Horner's rule in y = x^2. Here n is
the number of terms, not of variables (always 64): a sweep over n shows how autodiff's cost grows
with the length of the computation. JAX unrolls the loop when it traces, so its compile time grows
with n: the problem declares n <= 300.
"""
from __future__ import annotations

import math

import numpy as np

from ._spec import Instance, Problem
from ._xp import array_namespace, device, eye_like, horner

VARIABLES = 64


def _scaled(coef, power):
    """The coefficients of the series differentiated `power` times, as a series in y = x^2."""
    xp = array_namespace(coef)
    k = xp.arange(1, coef.shape[0], dtype=coef.dtype, device=device(coef))
    return coef[1:] * (2.0 * k if power == 1 else 2.0 * k * (2.0 * k - 1.0))


def tc_f(x, data):
    return array_namespace(x).sum(horner(data["coef"], x * x))


def tc_grad(x, data):
    return x * horner(_scaled(data["coef"], 1), x * x)


def tc_hess(x, data):
    return eye_like(x) * horner(_scaled(data["coef"], 2), x * x)


def tc_hvp(x, v, data):
    return horner(_scaled(data["coef"], 2), x * x) * v


def _coefficients(terms):
    coef = np.empty(terms)
    coef[0] = 1.0
    for k in range(1, terms):
        coef[k] = -coef[k - 1] / ((2 * k - 1) * (2 * k))
    return coef


def _point(n, seed=0):
    rng = np.random.default_rng([seed, n, 70])
    return rng.uniform(-math.pi, math.pi, VARIABLES), rng.standard_normal(VARIABLES)


taylor_cos = Problem(
    name="taylor_cos", f=tc_f, grad=tc_grad, hess=tc_hess, hvp=tc_hvp,
    value_and_grad=lambda x, d: (tc_f(x, d), tc_grad(x, d)),
    instance=lambda n, seed=0: Instance("taylor_cos", n, seed, np.zeros(VARIABLES),
                                        {"coef": _coefficients(n)}, math.nan),
    formula=r"f(x) = \sum_i \sum_{k<n} \frac{(-1)^k x_i^{2k}}{(2k)!}",
    seed_ref="Automatic differentiation ex. 1 (gradient of a Taylor series of cos)",
    tags=frozenset({"vector", "nonconvex"}), data_matrices=0, dim=lambda n: VARIABLES, point=_point,
    size_name="terms",
    size_limits={"f": 300, "grad": 300, "hess": 300, "hvp": 300},
)
