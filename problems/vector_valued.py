"""The vector-valued f(x) = Ax of matrix calculus exercise 1, differentiated in x and in A.

matvec     variable x in R^n, data A (n x n)   f = A x   J = df/dx = A                    (n x n)
matvec_A   variable A (n x n), data x in R^n   f = A x   J = df/dvec(A) = I_n (kron) x^T  (n x n^2)

For matvec_A, vec(A) is row-major (variable i * n + j is A[i, j]), so J[i, j * n + k] = delta_ij x_k:
row i holds x in the block of A's row i. Both Jacobians are exact formulas with no arithmetic
to speak of (matvec's is the stored A itself); what autodiff pays to rebuild them depends on the
mode: forward mode (jacfwd) pushes one tangent per input, reverse mode (jacrev) one cotangent per
output. For matvec both are n; for matvec_A there are n^2 inputs and n outputs, so jacfwd does n
times the work of jacrev and materialises an n^2 x n^2 identity as its tangent basis (hence
matvec_A declares jac only up to n = 100). No gradient descent: f is not scalar.
"""
from __future__ import annotations

import math

import numpy as np

from ._matrices import seeded_rng
from ._spec import Instance, Problem
from ._xp import array_namespace, eye_like


def matvec_f(x, data):
    return data["A"] @ x


def matvec_jac(x, data):
    return data["A"]


def matvec_a_f(a, data):
    return a @ data["x"]


def matvec_a_jac(a, data):
    xp = array_namespace(a)
    n = a.shape[0]
    return xp.reshape(eye_like(a)[:, :, None] * data["x"][None, None, :], (n, n * n))


def _matvec_instance(n, seed=0):
    rng = seeded_rng(n, seed, 80)
    return Instance("matvec", n, seed, np.zeros(n), {"A": rng.standard_normal((n, n)) / math.sqrt(n)}, math.nan)


def _matvec_a_point(n, seed=0):
    rng = seeded_rng(n, seed, 83)
    return rng.standard_normal((n, n)) / math.sqrt(n), rng.standard_normal((n, n)) / math.sqrt(n)


def _matvec_a_instance(n, seed=0):
    rng = seeded_rng(n, seed, 82)
    return Instance("matvec_A", n, seed, np.zeros((n, n)), {"x": rng.standard_normal(n)}, math.nan)


matvec = Problem(
    name="matvec", f=matvec_f, jac=matvec_jac, instance=_matvec_instance,
    formula=r"f(x) = Ax,\ J_x = A", seed_ref="Matrix calculus ex. 1 (in x)",
    tags=frozenset({"vector-valued", "linear"}), stored=frozenset({"jac"}),
)

matvec_a = Problem(
    name="matvec_A", f=matvec_a_f, jac=matvec_a_jac, instance=_matvec_a_instance,
    formula=r"f(A) = Ax,\ J_A = I_n \otimes x^\top", seed_ref="Matrix calculus ex. 1 (in A)",
    tags=frozenset({"vector-valued", "matrix-variable", "linear"}), data_matrices=0,
    dim=lambda n: n * n, point=_matvec_a_point, size_limits={"jac": 100},
)
