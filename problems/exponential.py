"""Exponentials, logarithms and rational functions of x (matrix calculus ex. 4, 8, 12, 16, 20, 24;
autodiff ex. 7). s = x^T x throughout.

neg_exp_sq       f = -exp(-s)                 grad = 2 e x, e = exp(-s)     hess = 2 e I - 4 e x x^T
inv_quad         f = -1 / (1 + s)             grad = 2 x / (1+s)^2          hess = 2 I / (1+s)^2 - 8 x x^T / (1+s)^3
logsumexp        f = log sum_i exp(a_i^T x + b_i), p = softmax(Ax + b)
                 grad = A^T p                 hess = A^T (diag p - p p^T) A
logistic_single  f = log(1 + exp(a^T x)), t = sigmoid(a^T x)
                 grad = t a                   hess = t (1 - t) a a^T
power_self       f = s^s, phi' = s^s (log s + 1), phi'' = s^s ((log s + 1)^2 + 1/s)
                 grad = 2 phi' x              hess = 2 phi' I + 4 phi'' x x^T
binary_softmax   exercise 16's two-class softmax regression is logistic regression on labels
                 y in {-1, 1}: f = (1/m) sum log(1 + exp(-y_i a_i^T x)) + mu/2 ||x||^2, the
                 `logistic` formulas on rows -y_i a_i.

neg_exp_sq and inv_quad have their minimum -1 at 0 with a 2-Lipschitz gradient (Hessian 2I at
0, smaller elsewhere), so gradient descent runs on them from a unit-norm x0; binary_softmax's f*
is solved once as for `logistic`. The others have no minimum gradient descent with a fixed step
reaches.
"""
from __future__ import annotations

import math

import numpy as np

from . import logistic as _logistic
from ._matrices import seeded_rng, spectrum, unit_vector, with_singular_values
from ._spec import Instance, Problem
from ._xp import array_namespace, eye_like, outer


def _x0(n, seed, salt):
    return unit_vector(n, seed, salt + 100)


# neg_exp_sq ------------------------------------------------------------------------------------
def nes_f(x, data):
    xp = array_namespace(x)
    return -xp.exp(-xp.sum(x * x))


def nes_grad(x, data):
    xp = array_namespace(x)
    return 2.0 * xp.exp(-xp.sum(x * x)) * x


def nes_hess(x, data):
    xp = array_namespace(x)
    e = xp.exp(-xp.sum(x * x))
    return 2.0 * e * eye_like(x) - 4.0 * e * outer(x, x)


def nes_hvp(x, v, data):
    xp = array_namespace(x)
    e = xp.exp(-xp.sum(x * x))
    return 2.0 * e * v - 4.0 * e * x * xp.sum(x * v)


neg_exp_sq = Problem(
    name="neg_exp_sq", f=nes_f, grad=nes_grad, hess=nes_hess, hvp=nes_hvp,
    instance=lambda n, seed=0: Instance("neg_exp_sq", n, seed, _x0(n, seed, 30), {}, 2.0,
                                        solve_f_star=lambda: -1.0),
    formula=r"f(x) = -e^{-x^\top x}", seed_ref="Matrix calculus ex. 4",
    tags=frozenset({"vector", "nonconvex"}), data_matrices=0,
)


# inv_quad --------------------------------------------------------------------------------------
def iq_f(x, data):
    xp = array_namespace(x)
    # Python ints, not floats, beside the 0-d sum: torch.func.jvp gives a Python float combined with a
    # 0-d tensor a float64 zero tangent (pytorch/pytorch#90065), which made float32's forward-over-reverse
    # HVP float64; an int's zero tangent promotes nothing. float64's values are the same.
    return -1 / (1 + xp.sum(x * x))


def iq_grad(x, data):
    xp = array_namespace(x)
    d = 1.0 + xp.sum(x * x)
    return 2.0 * x / (d * d)


def iq_hess(x, data):
    xp = array_namespace(x)
    d = 1.0 + xp.sum(x * x)
    return 2.0 * eye_like(x) / (d * d) - 8.0 * outer(x, x) / (d * d * d)


def iq_hvp(x, v, data):
    xp = array_namespace(x)
    d = 1.0 + xp.sum(x * x)
    return 2.0 * v / (d * d) - 8.0 * x * xp.sum(x * v) / (d * d * d)


inv_quad = Problem(
    name="inv_quad", f=iq_f, grad=iq_grad, hess=iq_hess, hvp=iq_hvp,
    instance=lambda n, seed=0: Instance("inv_quad", n, seed, _x0(n, seed, 31), {}, 2.0,
                                        solve_f_star=lambda: -1.0),
    formula=r"f(x) = \frac{-1}{1 + x^\top x}", seed_ref="Matrix calculus ex. 8",
    tags=frozenset({"vector", "nonconvex"}), data_matrices=0,
)


# logsumexp -------------------------------------------------------------------------------------
def _softmax(x, data):
    xp = array_namespace(x)
    z = data["A"] @ x + data["b"]
    m = xp.max(z)
    e = xp.exp(z - m)
    return xp, z, m, e, e / xp.sum(e)


def lse_f(x, data):
    # m + log sum exp(z - m): no overflow; m's derivative cancels (1 - sum p = 0).
    xp, _, m, e, _ = _softmax(x, data)
    return m + xp.log(xp.sum(e))


def lse_grad(x, data):
    p = _softmax(x, data)[4]
    return p @ data["A"]


def lse_hess(x, data):
    p = _softmax(x, data)[4]
    a = data["A"]
    g = p @ a
    return (a.T * p) @ a - outer(g, g)


def lse_hvp(x, v, data):
    xp, _, _, _, p = _softmax(x, data)
    a = data["A"]
    av = a @ v
    return (p * av) @ a - (p @ a) * xp.sum(p * av)


def _lse_instance(n, seed=0):
    rng = seeded_rng(n, seed, 32)
    a = with_singular_values(spectrum(n, 1.0, 2.0), rng)
    return Instance("logsumexp", n, seed, np.zeros(n), {"A": a, "b": rng.standard_normal(n)}, math.nan)


logsumexp = Problem(
    name="logsumexp", f=lse_f, grad=lse_grad, hess=lse_hess, hvp=lse_hvp, instance=_lse_instance,
    formula=r"f(x) = \log \sum_{i=1}^m e^{a_i^\top x + b_i}", seed_ref="Matrix calculus ex. 12",
    tags=frozenset({"convex", "vector"}),
)


# logistic_single -------------------------------------------------------------------------------
def ls_f(x, data):
    xp = array_namespace(x)
    z = xp.sum(data["a"] * x)
    return xp.logaddexp(xp.zeros_like(z), z)


def _sigmoid_of(x, data):
    xp = array_namespace(x)
    z = xp.sum(data["a"] * x)
    return xp, xp.exp(-xp.logaddexp(xp.zeros_like(z), -z))


def ls_grad(x, data):
    _, t = _sigmoid_of(x, data)
    return t * data["a"]


def ls_hess(x, data):
    _, t = _sigmoid_of(x, data)
    return t * (1.0 - t) * outer(data["a"], data["a"])


def ls_hvp(x, v, data):
    xp, t = _sigmoid_of(x, data)
    return t * (1.0 - t) * xp.sum(data["a"] * v) * data["a"]


logistic_single = Problem(
    name="logistic_single", f=ls_f, grad=ls_grad, hess=ls_hess, hvp=ls_hvp,
    instance=lambda n, seed=0: Instance("logistic_single", n, seed, np.zeros(n),
                                        {"a": seeded_rng(n, seed, 33).standard_normal(n) / math.sqrt(n)}, math.nan),
    formula=r"f(x) = \ln(1 + e^{\langle a, x\rangle})", seed_ref="Matrix calculus ex. 20; autodiff ex. 7",
    tags=frozenset({"convex", "vector"}), data_matrices=0,
)


# power_self ------------------------------------------------------------------------------------
def ps_f(x, data):
    xp = array_namespace(x)
    s = xp.sum(x * x)
    return xp.exp(s * xp.log(s))


def _ps_parts(x):
    xp = array_namespace(x)
    s = xp.sum(x * x)
    phi = xp.exp(s * xp.log(s))
    d1 = phi * (xp.log(s) + 1.0)
    d2 = phi * ((xp.log(s) + 1.0) ** 2 + 1.0 / s)
    return xp, d1, d2


def ps_grad(x, data):
    _, d1, _ = _ps_parts(x)
    return 2.0 * d1 * x


def ps_hess(x, data):
    _, d1, d2 = _ps_parts(x)
    return 2.0 * d1 * eye_like(x) + 4.0 * d2 * outer(x, x)


def ps_hvp(x, v, data):
    xp, d1, d2 = _ps_parts(x)
    return 2.0 * d1 * v + 4.0 * d2 * x * xp.sum(x * v)


power_self = Problem(
    name="power_self", f=ps_f, grad=ps_grad, hess=ps_hess, hvp=ps_hvp,
    instance=lambda n, seed=0: Instance("power_self", n, seed, _x0(n, seed, 34), {}, math.nan),
    formula=r"f(x) = \langle x, x\rangle^{\langle x, x\rangle},\ x \neq 0", seed_ref="Matrix calculus ex. 24",
    tags=frozenset({"vector", "nonconvex"}), data_matrices=0,
)


# binary_softmax --------------------------------------------------------------------------------
def _binary_softmax_instance(n, seed=0, *, mu=0.1):
    rng = seeded_rng(n, seed, 35)
    a = with_singular_values(np.sqrt(n) * spectrum(n, 1.0, 2.0), rng)
    w = rng.standard_normal(n) / math.sqrt(n)
    # labels from a planted model with 10% flipped: not separable, so the minimum is interior
    y = np.where(a @ w > 0, 1.0, -1.0) * np.where(rng.random(n) < 0.1, -1.0, 1.0)
    data = {"A": -y[:, None] * a, "mu": float(mu)}
    return Instance("binary_softmax", n, seed, np.zeros(n), data, 1.0 + mu,
                    solve_f_star=lambda: _logistic._minimum(data))


binary_softmax = Problem(
    name="binary_softmax", f=_logistic.f, grad=_logistic.grad, hess=_logistic.hess, hvp=_logistic.hvp,
    value_and_grad=_logistic.value_and_grad, instance=_binary_softmax_instance,
    formula=r"f(\theta) = \frac{1}{m}\sum_{i=1}^m \log(1 + e^{-y_i a_i^\top \theta}) + \frac{\mu}{2}\|\theta\|_2^2",
    seed_ref="Matrix calculus ex. 16 (two-class softmax = logistic regression)",
    tags=frozenset({"convex", "vector"}),
)
