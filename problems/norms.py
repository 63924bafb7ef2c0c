"""Norms of vectors (matrix calculus exercises 6, 7, 21, 27), s = x^T x throughout.

norm2       f = ||x||_2              grad = x / ||x||             hess = (I - x x^T / s) / ||x||
norm_Ax     f = ||Ax||_2, y = Ax     grad = g = A^T y / ||y||     hess = (A^T A - g g^T) / ||y||
cube_norm   f = ||x||^3 / 3          grad = ||x|| x               hess = ||x|| I + x x^T / ||x||
norm_outer  f = ||x x^T||_2 = s      grad = 2 x                   hess = 2 I

All but norm_outer are not differentiable at x = 0 (the domain excludes it; instances put the
evaluation point away from it). Gradient descent runs on norm_outer only (minimum 0 at 0,
gradient 2-Lipschitz); the others have no smooth minimum or no global Lipschitz constant.
"""
from __future__ import annotations

import math

from ._matrices import seeded_rng, spectrum, unit_vector, with_singular_values
from ._spec import Instance, Problem
from ._xp import array_namespace, eye_like, outer


def _x0(n, seed, salt):
    return unit_vector(n, seed, salt)


# norm2 -----------------------------------------------------------------------------------------
def norm2_f(x, data):
    xp = array_namespace(x)
    return xp.sqrt(xp.sum(x * x))


def norm2_grad(x, data):
    xp = array_namespace(x)
    return x / xp.sqrt(xp.sum(x * x))


def norm2_hess(x, data):
    xp = array_namespace(x)
    s = xp.sum(x * x)
    return (eye_like(x) - outer(x, x) / s) / xp.sqrt(s)


def norm2_hvp(x, v, data):
    xp = array_namespace(x)
    s = xp.sum(x * x)
    return (v - x * (xp.sum(x * v) / s)) / xp.sqrt(s)


norm2 = Problem(
    name="norm2", f=norm2_f, grad=norm2_grad, hess=norm2_hess, hvp=norm2_hvp,
    instance=lambda n, seed=0: Instance("norm2", n, seed, _x0(n, seed, 10), {}, math.nan),
    formula=r"f(x) = \|x\|_2,\ x \neq 0", seed_ref="Matrix calculus ex. 6",
    tags=frozenset({"convex", "vector"}), data_matrices=0,
)


# norm_Ax ---------------------------------------------------------------------------------------
def norm_ax_f(x, data):
    xp = array_namespace(x)
    y = data["A"] @ x
    return xp.sqrt(xp.sum(y * y))


def norm_ax_grad(x, data):
    xp = array_namespace(x)
    y = data["A"] @ x
    return (y @ data["A"]) / xp.sqrt(xp.sum(y * y))


def norm_ax_hess(x, data):
    xp = array_namespace(x)
    a = data["A"]
    y = a @ x
    r = xp.sqrt(xp.sum(y * y))
    g = (y @ a) / r
    return (a.T @ a - outer(g, g)) / r


def norm_ax_hvp(x, v, data):
    xp = array_namespace(x)
    a = data["A"]
    y = a @ x
    r = xp.sqrt(xp.sum(y * y))
    g = (y @ a) / r
    return ((a @ v) @ a - g * xp.sum(g * v)) / r


def _norm_ax_instance(n, seed=0):
    a = with_singular_values(spectrum(n, 1.0, 2.0), seeded_rng(n, seed, 11))
    return Instance("norm_Ax", n, seed, _x0(n, seed, 11), {"A": a}, math.nan)


norm_ax = Problem(
    name="norm_Ax", f=norm_ax_f, grad=norm_ax_grad, hess=norm_ax_hess, hvp=norm_ax_hvp, instance=_norm_ax_instance,
    formula=r"f(x) = \|Ax\|_2,\ x \neq 0", seed_ref="Matrix calculus ex. 7",
    tags=frozenset({"convex", "vector"}),
)


# cube_norm -------------------------------------------------------------------------------------
def cube_f(x, data):
    xp = array_namespace(x)
    s = xp.sum(x * x)
    return s * xp.sqrt(s) / 3.0


def cube_grad(x, data):
    xp = array_namespace(x)
    return xp.sqrt(xp.sum(x * x)) * x


def cube_hess(x, data):
    xp = array_namespace(x)
    r = xp.sqrt(xp.sum(x * x))
    return r * eye_like(x) + outer(x, x) / r


def cube_hvp(x, v, data):
    xp = array_namespace(x)
    r = xp.sqrt(xp.sum(x * x))
    return r * v + x * (xp.sum(x * v) / r)


cube_norm = Problem(
    name="cube_norm", f=cube_f, grad=cube_grad, hess=cube_hess, hvp=cube_hvp,
    instance=lambda n, seed=0: Instance("cube_norm", n, seed, _x0(n, seed, 12), {}, math.nan),
    formula=r"f(x) = \frac{1}{3}\|x\|_2^3", seed_ref="Matrix calculus ex. 21",
    tags=frozenset({"convex", "vector"}), data_matrices=0,
)


# norm_outer ------------------------------------------------------------------------------------
def outer_f(x, data):
    # ||x x^T||_2 = ||x||_2^2: a rank-one matrix's only nonzero singular value.
    xp = array_namespace(x)
    return xp.sum(x * x)


def outer_grad(x, data):
    return 2.0 * x


def outer_hess(x, data):
    return 2.0 * eye_like(x)


def outer_hvp(x, v, data):
    return 2.0 * v


norm_outer = Problem(
    name="norm_outer", f=outer_f, grad=outer_grad, hess=outer_hess, hvp=outer_hvp,
    instance=lambda n, seed=0: Instance("norm_outer", n, seed, _x0(n, seed, 13), {}, 2.0,
                                        solve_f_star=lambda: 0.0),
    formula=r"f(x) = \|x x^\top\|_2 = \|x\|_2^2", seed_ref="Matrix calculus ex. 27",
    tags=frozenset({"convex", "vector"}), data_matrices=0,
)
