"""Functions of a square matrix X (matrix calculus exercises 10, 11, 14, 15, 17, 18, 22, 29, 31;
autodiff exercise 5). n is the side of X; there are N = n^2 variables.

The gradient has X's shape. The Hessian is N x N over vec(X) taken row-major (variable i*n + j is
X[i, j]); `hvp(X, V)` returns X's shape. With Y = X^{-1} and Z = X^{-T}:

trace         f = tr X                     grad = I                    hess = 0
frob_sq       f = ||X||_F^2                grad = 2 X                  hess = 2 I_N
tr_AX         f = tr(A X)                  grad = A^T                  hess = 0
tr_AXB        f = tr(A X B)                grad = A^T B^T              hess = 0
det           f = det X                    grad = det(X) Z             H[ij,ab] = det X (Y_ji Y_ba - Y_bi Y_ja)
logdet        f = log |det X|              grad = Z                    H[ij,ab] = -Y_bi Y_ja
tr_inv        f = tr(X^{-1})               grad = -(X^{-2})^T          HV = (Y V Y^2 + Y^2 V Y)^T
sx_logdet     f = <S, X> - log |det X|     grad = S - Z                H[ij,ab] = Y_bi Y_ja
frob_AX_B     f = ||A X - B||_F, R = AX - B, G = A^T R / ||R||
                                           grad = G                    HV = (A^T A V - G <G, V>) / ||R||
tr_AX2BXinvT  f = tr(A X^2 B X^{-T})       grad = (X B Z A)^T + (B Z A X)^T - Z A X^2 B Z
              (its Hessian: the derivative of each term, with dZ = -Z dX^T Z; see _tr_ax2b_terms)

eig_sum       f = sum eig(S), S = (X + X^T)/2                         grad = I          hess = 0
eig_prod      f = prod eig(S) = det S, Y = S^{-1}   grad = det(S) Y
              H[ij,ab] = det S (Y_ij Y_ab - (Y_ia Y_bj + Y_ib Y_aj)/2)

The seed's exercise 29 matches tr X^{-1} with (X^{-2})^T: the gradient is minus that. The sum
and product of eigenvalues (ex. 14) equal tr X and det X; eig_sum and eig_prod compute them through
a symmetric eigensolver (eigvalsh), whose derivative each framework supplies. Libraries disagree on
what eigvalsh of a non-symmetric X means (numpy and torch read one triangle, JAX symmetrises), so f
symmetrises explicitly: every backend then differentiates the same function of all n^2 entries. X
is evaluated at I + 0.3 R / sqrt(n) (R standard normal): its eigenvalues lie near the disc of
radius 0.3 around 1, so X is invertible with det X > 0. No gradient descent runs on these.
"""
from __future__ import annotations

import math

import numpy as np

from ._matrices import seeded_rng
from ._spec import Instance, Problem
from ._xp import array_namespace, device, linalg


def _point(salt):
    def point(n, seed=0):
        rng = seeded_rng(n, seed, salt)
        x = np.eye(n) + 0.3 * rng.standard_normal((n, n)) / math.sqrt(n)
        return x, rng.standard_normal((n, n)) / math.sqrt(n)

    return point


def _instance(name, salt, make_data=lambda n, rng: {}):
    def instance(n, seed=0):
        return Instance(name, n, seed, _point(salt)(n, seed)[0], make_data(n, seeded_rng(n, seed, salt + 1)), math.nan)

    return instance


def _square(n):
    return n * n


# 4-D Hessian blocks H[i, j, a, b] from two n x n matrices, one per index pattern; flattened
# row-major they are the N x N Hessian over vec(X).
def _ia_bj(p, q):  # P[i, a] Q[b, j]: the derivative of P V Q
    return p[:, None, :, None] * q.T[None, :, None, :]


def _ja_bi(p, q):  # P[j, a] Q[b, i]: of (P V Q)^T
    return p[None, :, :, None] * q.T[:, None, None, :]


def _ib_aj(p, q):  # P[i, b] Q[a, j]: of P V^T Q
    return p[:, None, None, :] * q.T[None, :, :, None]


def _jb_ai(p, q):  # P[j, b] Q[a, i]: of (P V^T Q)^T
    return p[None, :, None, :] * q.T[:, None, :, None]


def _flat(h4):
    xp = array_namespace(h4)
    n = h4.shape[0]
    return xp.reshape(h4, (n * n, n * n))


def _eye(x):
    from ._xp import eye_like

    return eye_like(x)


def _inv(x):
    return linalg(x).inv(x)


def _logabsdet(x):
    return linalg(x).slogdet(x)[1]


def _make(name, f, grad, hess, hvp, formula, seed_ref, salt, *, data=lambda n, rng: {}, tags=()):
    return Problem(
        name=name, f=f, grad=grad, hess=hess, hvp=hvp,
        value_and_grad=lambda x, d: (f(x, d), grad(x, d)), instance=_instance(name, salt, data),
        formula=formula, seed_ref=seed_ref, tags=frozenset({"matrix-variable", *tags}),
        data_matrices=len(data(1, seeded_rng(1, 0, 0))), dim=_square, point=_point(salt),
        # an autodiff Hessian over vec(X) is n^2 x n^2 built from n^2 passes of O(n^3) each
        size_limits={"hess": 32},
    )


def _zeros_n2(x):
    """The n^2 x n^2 zero Hessian of a function linear in X, with X's dtype and device."""
    xp = array_namespace(x)
    size = x.shape[0] * x.shape[1]
    if xp.__name__.startswith("autograd."):  # autograd's arrays carry no device
        return xp.zeros((size, size), dtype=x.dtype)
    return xp.zeros((size, size), dtype=x.dtype, device=device(x))


# trace, frob_sq, tr_AX, tr_AXB -----------------------------------------------------------------
trace = _make(
    "trace", lambda x, d: array_namespace(x).sum(x * _eye(x)), lambda x, d: _eye(x) + 0.0 * x,
    lambda x, d: _zeros_n2(x), lambda x, v, d: 0.0 * v,
    r"f(X) = \mathrm{tr}\,X = \sum \mathrm{eig}(X)", "Matrix calculus ex. 14, 29; worked example", 40,
    tags=("convex",))

frob_sq = _make(
    "frob_sq", lambda x, d: array_namespace(x).sum(x * x), lambda x, d: 2.0 * x,
    lambda x, d: 2.0 * _flat(_ia_bj(_eye(x), _eye(x))), lambda x, v, d: 2.0 * v,
    r"f(X) = \|X\|_F^2", "Matrix calculus ex. 15", 41, tags=("convex",))


def _a(n, rng):
    return {"A": rng.standard_normal((n, n)) / math.sqrt(n)}


def _ab(n, rng):
    return {"A": rng.standard_normal((n, n)) / math.sqrt(n), "B": rng.standard_normal((n, n)) / math.sqrt(n)}


tr_ax = _make(
    "tr_AX", lambda x, d: array_namespace(x).sum(d["A"].T * x), lambda x, d: d["A"].T + 0.0 * x,
    lambda x, d: _zeros_n2(x), lambda x, v, d: 0.0 * v,
    r"f(X) = \mathrm{tr}(AX)", "Matrix calculus ex. 17", 42, data=_a, tags=("convex",))

tr_axb = _make(
    "tr_AXB", lambda x, d: array_namespace(x).sum((d["A"] @ x @ d["B"]) * _eye(x)),
    lambda x, d: d["A"].T @ d["B"].T + 0.0 * x, lambda x, d: _zeros_n2(x), lambda x, v, d: 0.0 * v,
    r"f(X) = \mathrm{tr}(AXB)", "Autodiff ex. 5", 43, data=_ab, tags=("convex",))


# det, logdet, tr_inv, sx_logdet ----------------------------------------------------------------
def det_f(x, d):
    return linalg(x).det(x)


def det_grad(x, d):
    return det_f(x, d) * _inv(x).T


def det_hess(x, d):
    y = _inv(x)
    # det X (Y_ji Y_ba - Y_bi Y_ja): the first term is vec(Y^T) vec(Y^T)^T
    yt = y.T
    return det_f(x, d) * _flat(yt[:, :, None, None] * yt[None, None, :, :] - _ja_bi(y, y))


def det_hvp(x, v, d):
    xp = array_namespace(x)
    y = _inv(x)
    return det_f(x, d) * (xp.sum(y.T * v) * y.T - (y @ v @ y).T)


det = _make("det", det_f, det_grad, det_hess, det_hvp, r"f(X) = \det X = \prod \mathrm{eig}(X)",
            "Matrix calculus ex. 10, 14, 29", 44)


def logdet_f(x, d):
    return _logabsdet(x)


def logdet_grad(x, d):
    return _inv(x).T


def logdet_hess(x, d):
    y = _inv(x)
    return -_flat(_ja_bi(y, y))


def logdet_hvp(x, v, d):
    y = _inv(x)
    return -(y @ v @ y).T


logdet = _make("logdet", logdet_f, logdet_grad, logdet_hess, logdet_hvp, r"f(X) = \log\det X",
               "Matrix calculus ex. 11, 29", 45)


def tr_inv_f(x, d):
    return array_namespace(x).sum(_inv(x) * _eye(x))


def tr_inv_grad(x, d):
    y = _inv(x)
    return -(y @ y).T


def tr_inv_hess(x, d):
    y = _inv(x)
    y2 = y @ y
    return _flat(_ja_bi(y, y2) + _ja_bi(y2, y))


def tr_inv_hvp(x, v, d):
    y = _inv(x)
    y2 = y @ y
    return (y @ v @ y2 + y2 @ v @ y).T


tr_inv = _make("tr_inv", tr_inv_f, tr_inv_grad, tr_inv_hess, tr_inv_hvp, r"f(X) = \mathrm{tr}\,X^{-1}",
               "Matrix calculus ex. 29 (the gradient is -(X^{-2})^T)", 46)


def _s(n, rng):
    m = rng.standard_normal((n, n)) / math.sqrt(n)
    return {"S": m @ m.T + np.eye(n)}


sx_logdet = _make(
    "sx_logdet", lambda x, d: array_namespace(x).sum(d["S"] * x) - _logabsdet(x),
    lambda x, d: d["S"] - _inv(x).T, lambda x, d: -logdet_hess(x, d), lambda x, v, d: -logdet_hvp(x, v, d),
    r"f(X) = \langle S, X\rangle - \log\det X", "Matrix calculus ex. 18; worked example", 47, data=_s)


# frob_AX_B -------------------------------------------------------------------------------------
def _frob_parts(x, d):
    xp = array_namespace(x)
    r = d["A"] @ x - d["B"]
    norm = xp.sqrt(xp.sum(r * r))
    return xp, norm, (d["A"].T @ r) / norm


def fab_f(x, d):
    return _frob_parts(x, d)[1]


def fab_grad(x, d):
    return _frob_parts(x, d)[2]


def fab_hess(x, d):
    _, norm, g = _frob_parts(x, d)
    # A^T A V / ||R|| - G <G, V> / ||R||: the first is P V Q with P = A^T A, Q = I
    return _flat(_ia_bj(d["A"].T @ d["A"], _eye(x)) - g[:, :, None, None] * g[None, None, :, :]) / norm


def fab_hvp(x, v, d):
    xp, norm, g = _frob_parts(x, d)
    return (d["A"].T @ (d["A"] @ v) - g * xp.sum(g * v)) / norm


frob_ax_b = _make("frob_AX_B", fab_f, fab_grad, fab_hess, fab_hvp, r"f(X) = \|AX - B\|_F",
                  "Matrix calculus ex. 22", 48, data=_ab, tags=("convex",))


# tr_AX2BXinvT ----------------------------------------------------------------------------------
def tr_ax2b_f(x, d):
    xp = array_namespace(x)
    return xp.sum((d["A"] @ x @ x @ d["B"] @ _inv(x).T) * _eye(x))


def tr_ax2b_grad(x, d):
    a, b, z = d["A"], d["B"], _inv(x).T
    return (x @ b @ z @ a).T + (b @ z @ a @ x).T - z @ a @ x @ x @ b @ z


def _tr_ax2b_terms(x, d):
    """(kind, P, Q) per term of the gradient's derivative along V, with dZ = -Z V^T Z."""
    a, b, z = d["A"], d["B"], _inv(x).T
    eye = _eye(x)
    x2 = x @ x
    return [
        ("ja_bi", eye, b @ z @ a, 1.0),           # (V B Z A)^T
        ("jb_ai", x @ b @ z, z @ a, -1.0),        # (X B dZ A)^T
        ("jb_ai", b @ z, z @ a @ x, -1.0),        # (B dZ A X)^T
        ("ja_bi", b @ z @ a, eye, 1.0),           # (B Z A V)^T
        ("ib_aj", z, z @ a @ x2 @ b @ z, 1.0),    # -dZ A X^2 B Z
        ("ia_bj", z @ a, x @ b @ z, -1.0),        # -Z A V X B Z
        ("ia_bj", z @ a @ x, b @ z, -1.0),        # -Z A X V B Z
        ("ib_aj", z @ a @ x2 @ b @ z, z, 1.0),    # -Z A X^2 B dZ
    ]


_BLOCKS = {"ia_bj": _ia_bj, "ja_bi": _ja_bi, "ib_aj": _ib_aj, "jb_ai": _jb_ai}


def tr_ax2b_hess(x, d):
    total = None
    for kind, p, q, sign in _tr_ax2b_terms(x, d):
        block = sign * _BLOCKS[kind](p, q)
        total = block if total is None else total + block
    return _flat(total)


def _apply(kind, p, q, v):
    return {"ia_bj": lambda: p @ v @ q, "ja_bi": lambda: (p @ v @ q).T,
            "ib_aj": lambda: p @ v.T @ q, "jb_ai": lambda: (p @ v.T @ q).T}[kind]()


def tr_ax2b_hvp(x, v, d):
    total = None
    for kind, p, q, sign in _tr_ax2b_terms(x, d):
        term = sign * _apply(kind, p, q, v)
        total = term if total is None else total + term
    return total


tr_ax2bxinvt = _make("tr_AX2BXinvT", tr_ax2b_f, tr_ax2b_grad, tr_ax2b_hess, tr_ax2b_hvp,
                     r"f(X) = \mathrm{tr}(A X^2 B X^{-\top})", "Matrix calculus ex. 31", 49, data=_ab)

# eig_sum, eig_prod (ex. 14): through a symmetric eigensolver -----------------------------------
def _sym(x):
    return 0.5 * (x + x.T)


def _eigvalsh_sym(x):
    s = _sym(x)
    return linalg(s).eigvalsh(s)


def eig_sum_f(x, d):
    return array_namespace(x).sum(_eigvalsh_sym(x))


def eig_prod_f(x, d):
    return array_namespace(x).prod(_eigvalsh_sym(x))


def eig_prod_grad(x, d):
    return eig_prod_f(x, d) * _inv(_sym(x))


def eig_prod_hess(x, d):
    xp = array_namespace(x)
    y = _inv(_sym(x))
    n2 = x.shape[0] * x.shape[0]
    vec_y = xp.reshape(y, (n2,))
    return eig_prod_f(x, d) * (vec_y[:, None] * vec_y[None, :] - 0.5 * (_flat(_ia_bj(y, y)) + _flat(_ib_aj(y, y))))


def eig_prod_hvp(x, v, d):
    xp = array_namespace(x)
    y = _inv(_sym(x))
    vs = _sym(v)
    return eig_prod_f(x, d) * (xp.sum(y * vs) * y - y @ vs @ y)


eig_sum = _make(
    "eig_sum", eig_sum_f, lambda x, d: _eye(x) + 0.0 * x, lambda x, d: _zeros_n2(x), lambda x, v, d: 0.0 * v,
    r"f(X) = \sum \mathrm{eig}(S),\ S = \frac{1}{2}(X + X^\top)", "Matrix calculus ex. 14 (via eigvalsh)", 50)

eig_prod = _make(
    "eig_prod", eig_prod_f, eig_prod_grad, eig_prod_hess, eig_prod_hvp,
    r"f(X) = \prod \mathrm{eig}(S),\ S = \frac{1}{2}(X + X^\top)", "Matrix calculus ex. 14 (via eigvalsh)", 52)

MATRIX_PROBLEMS = (trace, frob_sq, tr_ax, tr_axb, det, logdet, tr_inv, sx_logdet, frob_ax_b, tr_ax2bxinvt,
                   eig_sum, eig_prod)
