"""Linear and quadratic forms and their ratios (matrix calculus exercises 2, 9/19, 25, 26).

linear      f = c^T x                      grad = c                  hess = 0
log_quad    f = log(x^T A x), A SPD, q = x^T A x
            grad = 2 A x / q               hess = 2 A / q - 4 (Ax)(Ax)^T / q^2
rayleigh    f = (x^T A x) / (x^T x), A symmetric, s = x^T x, r = Ax - f x
            grad = 2 r / s                 hess = 2 (A - f I) / s - 4 (r x^T + x r^T) / s^2
frob_sym    f = 1/2 ||A - x x^T||_F^2, A symmetric, s = x^T x
            grad = 2 s x - 2 A x           hess = 2 s I + 4 x x^T - 2 A

A = H diag(lam) H with exactly known eigenvalues (O(n^2), see _matrices). None of these is solved
by gradient descent with a fixed step: linear and log_quad have no minimum; rayleigh's minimum
(lam_min, at its eigenvector) and frob_sym's are not reached at a rate a fixed step controls.
"""
from __future__ import annotations

import math

import numpy as np

from ._matrices import seeded_rng, spectrum, unit_vector, with_eigenvalues
from ._spec import Instance, Problem
from ._xp import array_namespace, eye_like, outer


def _x0(n, seed, salt):
    return unit_vector(n, seed, salt + 100)


# linear ----------------------------------------------------------------------------------------
def linear_f(x, data):
    xp = array_namespace(x)
    return xp.sum(data["c"] * x)


def linear_grad(x, data):
    return data["c"] + 0.0 * x  # a fresh array on x's device, as autodiff returns


def linear_hess(x, data):
    return 0.0 * eye_like(x)


def linear_hvp(x, v, data):
    return 0.0 * v


linear = Problem(
    name="linear", f=linear_f, grad=linear_grad, hess=linear_hess, hvp=linear_hvp,
    instance=lambda n, seed=0: Instance("linear", n, seed, np.zeros(n),
                                        {"c": seeded_rng(n, seed, 20).standard_normal(n)}, math.nan),
    formula=r"f(x) = c^\top x", seed_ref="Matrix calculus ex. 2",
    tags=frozenset({"convex", "vector"}), data_matrices=0,
)


# log_quad --------------------------------------------------------------------------------------
def log_quad_f(x, data):
    xp = array_namespace(x)
    return xp.log(xp.sum(x * (data["A"] @ x)))


def log_quad_grad(x, data):
    xp = array_namespace(x)
    ax = data["A"] @ x
    return 2.0 * ax / xp.sum(x * ax)


def log_quad_hess(x, data):
    xp = array_namespace(x)
    ax = data["A"] @ x
    q = xp.sum(x * ax)
    return 2.0 * data["A"] / q - 4.0 * outer(ax, ax) / (q * q)


def log_quad_hvp(x, v, data):
    xp = array_namespace(x)
    ax = data["A"] @ x
    q = xp.sum(x * ax)
    return 2.0 * (data["A"] @ v) / q - 4.0 * ax * (xp.sum(ax * v) / (q * q))


def _log_quad_instance(n, seed=0):
    a = with_eigenvalues(spectrum(n, 1.0, 4.0), seeded_rng(n, seed, 21))
    return Instance("log_quad", n, seed, _x0(n, seed, 21), {"A": a}, math.nan)


log_quad = Problem(
    name="log_quad", f=log_quad_f, grad=log_quad_grad, hess=log_quad_hess, hvp=log_quad_hvp,
    instance=_log_quad_instance,
    formula=r"f(x) = \log(x^\top A x),\ A \in \mathbb{S}^n_{++}", seed_ref="Matrix calculus ex. 9, 19",
    tags=frozenset({"vector", "nonconvex"}),
)


# rayleigh --------------------------------------------------------------------------------------
def rayleigh_f(x, data):
    xp = array_namespace(x)
    return xp.sum(x * (data["A"] @ x)) / xp.sum(x * x)


def _rayleigh_parts(x, data):
    xp = array_namespace(x)
    ax = data["A"] @ x
    s = xp.sum(x * x)
    f = xp.sum(x * ax) / s
    return xp, ax, s, f, ax - f * x


def rayleigh_grad(x, data):
    _, _, s, _, r = _rayleigh_parts(x, data)
    return 2.0 * r / s


def rayleigh_hess(x, data):
    _, _, s, f, r = _rayleigh_parts(x, data)
    return 2.0 * (data["A"] - f * eye_like(x)) / s - 4.0 * (outer(r, x) + outer(x, r)) / (s * s)


def rayleigh_hvp(x, v, data):
    xp, _, s, f, r = _rayleigh_parts(x, data)
    return 2.0 * (data["A"] @ v - f * v) / s - 4.0 * (r * xp.sum(x * v) + x * xp.sum(r * v)) / (s * s)


def _rayleigh_instance(n, seed=0):
    a = with_eigenvalues(spectrum(n, -1.0, 3.0), seeded_rng(n, seed, 22))
    return Instance("rayleigh", n, seed, _x0(n, seed, 22), {"A": a}, math.nan)


rayleigh = Problem(
    name="rayleigh", f=rayleigh_f, grad=rayleigh_grad, hess=rayleigh_hess, hvp=rayleigh_hvp,
    instance=_rayleigh_instance,
    formula=r"f(x) = \frac{\langle Ax, x\rangle}{\|x\|_2^2},\ A \in \mathbb{S}^n,\ x \neq 0",
    seed_ref="Matrix calculus ex. 25", tags=frozenset({"vector", "nonconvex"}),
)


# frob_sym --------------------------------------------------------------------------------------
def frob_f(x, data):
    xp = array_namespace(x)
    d = data["A"] - outer(x, x)
    return 0.5 * xp.sum(d * d)


def frob_grad(x, data):
    xp = array_namespace(x)
    return 2.0 * xp.sum(x * x) * x - 2.0 * (data["A"] @ x)


def frob_hess(x, data):
    xp = array_namespace(x)
    return 2.0 * xp.sum(x * x) * eye_like(x) + 4.0 * outer(x, x) - 2.0 * data["A"]


def frob_hvp(x, v, data):
    xp = array_namespace(x)
    return 2.0 * xp.sum(x * x) * v + 4.0 * x * xp.sum(x * v) - 2.0 * (data["A"] @ v)


def _frob_instance(n, seed=0):
    a = with_eigenvalues(spectrum(n, -1.0, 2.0), seeded_rng(n, seed, 23))
    return Instance("frob_sym", n, seed, _x0(n, seed, 23), {"A": a}, math.nan)


frob_sym = Problem(
    name="frob_sym", f=frob_f, grad=frob_grad, hess=frob_hess, hvp=frob_hvp, instance=_frob_instance,
    formula=r"f(x) = \frac{1}{2}\|A - x x^\top\|_F^2,\ A \in \mathbb{S}^n", seed_ref="Matrix calculus ex. 26",
    tags=frozenset({"vector", "nonconvex"}),
)
