r"""Gaussian mixture model fitting (ADBench's GMM objective, as corrected by GradBench's `gmm` eval).

f is the negative log posterior of a K-component Gaussian mixture in R^D over N points x_i, with a
Wishart prior on the precision matrices. Peers: microsoft/ADBench src/cpp/shared/gmm.h,
src/python/modules/PyTorch/gmm_objective.py, src/cpp/modules/manual/gmm_d.cpp (hand gradient),
data/gmm/gmm-data-gen.py; gradbench/gradbench evals/gmm/README.md (full specification),
cpp/gradbench/evals/gmm.hpp, tools/manual/gmm_d.hpp, python/gradbench/gradbench/evals/gmm/run.py
(input generator and a naive reference `log_posterior`).

Parameters, one flat vector in ADBench's layout, theta = (alpha, vec(mu), vec(icf)):
alpha in R^K (log weights, unnormalised), mu in R^{K x D} (means, row-major), and per component
icf_k = (q_k, l_k) in R^{D + D(D-1)/2}: Q_k is lower triangular with diagonal exp(q_k) and l_k
below it, column by column (Q[1,0], Q[2,0], ..., Q[D-1,0], Q[2,1], ...). The precision matrix is
Q_k^T Q_k. dim = K (1 + D + D(D+1)/2).

    beta_ik = alpha_k + sum_j q_kj - 1/2 ||y_ik||^2,    y_ik = Q_k z_ik,  z_ik = x_i - mu_k
    F = -N D/2 log 2pi + sum_i lse_k(beta_ik) - N lse(alpha)
        - sum_k (gamma^2/2 ||Q_k||_F^2 - m sum_j q_kj) + K C,
    C = n' D log(gamma / sqrt 2) - log Gamma_D(n'/2),  n' = D + m + 1
    f = -F

F is GradBench's `objective` (its log posterior). ADBench's objective is the same but for the sign
of the Wishart terms (gmm.h `log_wishart_prior` returns out - k C; GradBench's README lists the sign
error as fix 1): F_ADBench = F + 2 sum_k (gamma^2/2 ||Q_k||_F^2 - m sum_j q_kj) - 2 K C. f = -F is
a function to minimise; the flip changes no cost of f or of any derivative.

Gradient (of F; f's is its negative). r_ik = softmax_k(beta_i) (responsibilities), R_k = sum_i r_ik,
phi = softmax(alpha), W_ik = r_ik y_ik, and G_k = -sum_i W_ik z_ik^T (D x D):

    dF/dalpha_k = R_k - N phi_k
    dF/dmu_k    = sum_i r_ik Q_k^T y_ik = Q_k^T (sum_i W_ik)         [d(-1/2||Q(x - mu)||^2)/dmu]
    dF/dq_kj    = R_k + exp(q_kj) G_k[j, j] - gamma^2 exp(2 q_kj) + m   [dQ/dq_kj = exp(q_kj) e_j e_j^T]
    dF/dl_k     = G_k[a, b] (a > b, column order) - gamma^2 l_k

since d(-1/2 ||Q z||^2) = -(Q z)^T dQ z = <-(Q z) z^T, dQ>, and lse_k has derivative r_ik. These are
ADBench's/GradBench's manual gmm_d (compute_q_inner_term: 1 - Qdiag x Qx; compute_L_inner_term:
-x_b (Qx)_a), summed over points with the weights r_ik.

Hessian-vector product, by pushing a tangent (dalpha, dmu, dq, dl) through the gradient above
(forward over the hand-written reverse): dQ from (exp(q) dq, dl); dz = -dmu;
dy = Q dz + dQ z; dbeta = dalpha + sum dq - <y, dy>; dr = r (dbeta - sum_k r dbeta);
dphi = phi (dalpha - <phi, dalpha>); dW = dr y + r dy; dG = -sum_i dW z^T + (sum_i W) dmu^T; then

    d(dF/dalpha) = dR - N dphi,   d(dF/dmu) = dQ^T sum W + Q^T sum dW,
    d(dF/dq) = dR + exp(q) dq G_jj + exp(q) dG_jj - 2 gamma^2 exp(2q) dq,   d(dF/dl) = dG_low - gamma^2 dl.

The same code takes a batch of P tangents: hvp is P = 1, hess is the identity pushed in chunks of
directions (its memory is P K N D per intermediate; jax.hessian pays the same, all at once).

Sizes: the sweep variable n is the number of components K, at D = 10 and N = 1000, m = 0,
gamma = 1: GradBench's defaults are d in {2, 10, 20, 32, 64} x k in {5, 10, 25, 50, 100} at
n = 1000 (evals/gmm/run.py), so n = 5, 10, 25, 50, 100 are exactly its cells d10_K{n}_1000; ADBench's
1k set has the same D = 10 row (K up to 200). dim = 66 n.

Instance: GradBench's `generate` distributions and draw order (x ~ N(0,1)^{N x D}, alpha ~ N(0,1),
mu ~ U[0,1), q ~ N(0,1), l ~ N(0,1)); `draw(rng, d, k, n)` with rng = default_rng(31337) gives its
inputs exactly; here rng = default_rng([seed, n, 122]). The points are the data; the parameters
are the evaluation point and x0. ADBench's generator draws the same distributions from a shared
global stream (and writes 6 decimals). The posterior has no minimum that fixed-step gradient
descent reaches reliably: lipschitz is nan.
"""
from __future__ import annotations

import math

import numpy as np

from ._spec import Cost, Instance, Problem
from ._xp import array_namespace, concat, eye_like, matrix_transpose

D = 10  # dimension of the space
N = 1000  # number of points (GradBench's default; ADBench's "1k" set)
WISHART_M = 0  # extra degrees of freedom (both peers' default)
WISHART_GAMMA = 1.0  # prior precision (both peers' default)
CHUNK = 1 << 22  # hess: tangent intermediates hold at most P K N D <= CHUNK numbers each
# `l` (Q's strict lower part) is the name in the formulas above and in both peers' code: E741 is
# silenced on each line that binds it rather than renamed.


def _tri(d: int) -> int:
    return d * (d - 1) // 2


def _sizes(theta, data):
    n_points, d = data["points"].shape
    k = theta.shape[0] // (1 + d + d * (d + 1) // 2)
    return n_points, d, k


def _split(theta, d, k):
    """theta -> alpha (K,), mu (K, D), q (K, D), l (K, D(D-1)/2); leading batch axes pass through."""
    xp = array_namespace(theta)
    batch = theta.shape[:-1]
    alpha = theta[..., :k]
    mu = xp.reshape(theta[..., k:k + k * d], (*batch, k, d))
    icf = xp.reshape(theta[..., k + k * d:], (*batch, k, d + _tri(d)))
    return alpha, mu, icf[..., :d], icf[..., d:]


def _join(alpha, mu, q, l):  # noqa: E741
    xp = array_namespace(alpha)
    batch = alpha.shape[:-1]
    icf = concat([q, l], axis=-1)
    return concat([alpha, xp.reshape(mu, (*batch, -1)), xp.reshape(icf, (*batch, -1))], axis=-1)


def _q_transposed(diag, low):
    """Q^T (..., K, D, D) from its diagonal (..., K, D) and strict lower part (..., K, D(D-1)/2).

    Row i of Q^T is column i of Q: i zeros, diag_i, then the next D-1-i entries of `low`. Built by
    slicing and stacking (no scatter: JAX arrays are immutable, autograd cannot trace one); D is
    static, so the loop unrolls once when JAX traces.
    """
    xp = array_namespace(diag)
    d = diag.shape[-1]
    rows, start = [], 0
    for i in range(d):
        stop = start + d - 1 - i
        rows.append(concat([xp.zeros_like(diag[..., :i]), diag[..., i:i + 1], low[..., start:stop]], axis=-1))
        start = stop
    return xp.stack(rows, axis=-2)


def _lower(g):
    """The strict lower part of (..., D, D) matrices, column by column (ADBench's order)."""
    d = g.shape[-1]
    return concat([g[..., i + 1:, i] for i in range(d - 1)], axis=-1)


def _diagonal(g):
    xp = array_namespace(g)
    return xp.sum(g * eye_like(g[0, 0] if g.ndim > 3 else g[0]), axis=-1)


def _lse(v, axis):
    xp = array_namespace(v)
    a = xp.max(v, axis=axis, keepdims=True)
    return xp.squeeze(a, axis=axis) + xp.log(xp.sum(xp.exp(v - a), axis=axis))


def _softmax(v, axis):
    xp = array_namespace(v)
    e = xp.exp(v - xp.max(v, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _forward(theta, data):
    """Shared primal: parameters, Q^T, z (K, N, D), y = Q z (K, N, D), beta (K, N)."""
    xp = array_namespace(theta)
    _, d, k = _sizes(theta, data)
    alpha, mu, q, l = _split(theta, d, k)  # noqa: E741
    qdiag = xp.exp(q)
    qt = _q_transposed(qdiag, l)
    z = data["points"][None, :, :] - mu[:, None, :]
    y = z @ qt  # y_ik = Q_k z_ik, batched over k: (K, N, D) @ (K, D, D)
    beta = alpha[:, None] + xp.sum(q, axis=1)[:, None] - 0.5 * xp.sum(y * y, axis=2)
    return xp, alpha, mu, q, l, qdiag, qt, z, y, beta


def _prior(xp, q, l, qdiag, data):  # noqa: E741
    # -log prior up to the constant: gamma^2/2 ||Q||_F^2 - m sum q
    return 0.5 * data["gamma"] ** 2 * (xp.sum(qdiag * qdiag) + xp.sum(l * l)) - data["m"] * xp.sum(q)


def f(theta, data):
    xp, alpha, _, q, l, qdiag, _, _, _, beta = _forward(theta, data)  # noqa: E741
    n_points = beta.shape[1]
    log_likelihood = xp.sum(_lse(beta, 0)) - n_points * _lse(alpha, 0)
    return data["offset"] - log_likelihood + _prior(xp, q, l, qdiag, data)


def _gradient_parts(theta, data):
    xp, alpha, mu, q, l, qdiag, qt, z, y, beta = _forward(theta, data)  # noqa: E741
    n_points = beta.shape[1]
    r = _softmax(beta, 0)  # responsibilities (K, N)
    phi = _softmax(alpha, 0)
    w = r[:, :, None] * y
    ws = xp.sum(w, axis=1)  # (K, D)
    g = -(matrix_transpose(w) @ z)  # G_k = -sum_i W_ik z_ik^T
    big_r = xp.sum(r, axis=1)
    gamma2 = data["gamma"] ** 2
    d_alpha = big_r - n_points * phi
    d_mu = xp.sum(qt * ws[:, None, :], axis=2)  # Q_k^T ws_k, (Q^T)[b, a] ws[a]
    d_q = big_r[:, None] + qdiag * _diagonal(g) - gamma2 * qdiag * qdiag + data["m"]
    d_l = _lower(g) - gamma2 * l
    parts = (xp, alpha, mu, q, l, qdiag, qt, z, y, beta, r, phi, w, ws, g)
    return parts, _join(d_alpha, d_mu, d_q, d_l)


def grad(theta, data):
    return -_gradient_parts(theta, data)[1]


def value_and_grad(theta, data):
    """f and its gradient sharing z, y, beta and the responsibilities."""
    (xp, alpha, _, q, l, qdiag, _, _, _, beta, *_), g = _gradient_parts(theta, data)  # noqa: E741
    n_points = beta.shape[1]
    log_likelihood = xp.sum(_lse(beta, 0)) - n_points * _lse(alpha, 0)
    return data["offset"] - log_likelihood + _prior(xp, q, l, qdiag, data), -g


def _tangents(parts, directions, data):
    """Hessian of f applied to P directions (P, dim) -> (P, dim): the tangent of the gradient."""
    xp, alpha, mu, q, l, qdiag, qt, z, y, beta, r, phi, w, ws, g = parts  # noqa: E741
    k, n_points, d = z.shape
    gamma2 = data["gamma"] ** 2
    da, dmu, dq, dl = _split(directions, d, k)  # (P, K), (P, K, D), (P, K, D), (P, K, L)
    dqdiag = qdiag * dq
    dqt = _q_transposed(dqdiag, dl)  # (P, K, D, D)
    dy = (-dmu)[:, :, None, :] @ qt + z @ dqt  # (P, K, 1, D) + (P, K, N, D)
    dbeta = (da + xp.sum(dq, axis=2))[:, :, None] - xp.sum(y * dy, axis=3)  # (P, K, N)
    dr = r * (dbeta - xp.sum(r * dbeta, axis=1, keepdims=True))
    dphi = phi * (da - xp.sum(phi * da, axis=1, keepdims=True))
    dw = dr[..., None] * y + r[:, :, None] * dy
    dws = xp.sum(dw, axis=2)  # (P, K, D)
    dg = -(matrix_transpose(dw) @ z) + ws[:, :, None] * dmu[:, :, None, :]
    dbig_r = xp.sum(dr, axis=2)
    dd_alpha = dbig_r - n_points * dphi
    dd_mu = xp.sum(dqt * ws[:, None, :], axis=3) + xp.sum(qt * dws[:, :, None, :], axis=3)
    dd_q = (dbig_r[..., None] + dqdiag * _diagonal(g) + qdiag * _diagonal(dg)
            - 2.0 * gamma2 * qdiag * dqdiag)
    dd_l = _lower(dg) - gamma2 * dl
    return -_join(dd_alpha, dd_mu, dd_q, dd_l)


def hvp(theta, v, data):
    parts, _ = _gradient_parts(theta, data)
    return _tangents(parts, v[None, :], data)[0]


def hess(theta, data):
    parts, _ = _gradient_parts(theta, data)
    k, n_points, d = parts[7].shape
    dim = theta.shape[0]
    eye = eye_like(theta)
    step = max(1, CHUNK // (k * n_points * d))
    return concat([_tangents(parts, eye[i:i + step], data) for i in range(0, dim, step)], axis=0)


# instances -------------------------------------------------------------------------------------
def draw(rng: np.random.Generator, d: int, k: int, n: int) -> dict:
    """GradBench's `generate` (evals/gmm/run.py): same distributions, same draw order."""
    return {
        "x": rng.normal(size=(n, d)), "alpha": rng.normal(size=k), "mu": rng.uniform(size=(k, d)),
        "q": rng.normal(size=(k, d)), "l": rng.normal(size=(k, _tri(d))),
    }


def flatten(alpha, mu, q, l) -> np.ndarray:  # noqa: E741
    """GradBench's separate (alpha, mu, q, l) -> theta in ADBench's layout."""
    return np.concatenate([alpha, mu.ravel(), np.concatenate([q, l], axis=1).ravel()])


def offset(d: int, k: int, n: int, *, m: int = WISHART_M, gamma: float = WISHART_GAMMA) -> float:
    """The constant of f = -F: N D/2 log 2pi - K C (C of the Wishart normaliser)."""
    from scipy.special import multigammaln

    dof = d + m + 1
    c = dof * d * math.log(gamma / math.sqrt(2.0)) - multigammaln(0.5 * dof, d)
    # a Python float (multigammaln's is numpy's float64, which would promote float32 arrays to float64)
    return float(0.5 * n * d * math.log(2.0 * math.pi) - k * c)


def _draw(n, seed):
    return draw(np.random.default_rng([seed, n, 122]), D, n, N)


def instance(n: int, seed: int = 0) -> Instance:
    a = _draw(n, seed)
    data = {"points": a["x"], "m": float(WISHART_M), "gamma": WISHART_GAMMA, "offset": offset(D, n, N)}
    theta = flatten(a["alpha"], a["mu"], a["q"], a["l"])
    return Instance(problem="gmm", n=n, seed=seed, x0=theta, data=data, lipschitz=math.nan)


def point(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    a = _draw(n, seed)
    v = np.random.default_rng([seed, n, 123]).standard_normal(dim(n))
    return flatten(a["alpha"], a["mu"], a["q"], a["l"]), v


def dim(n: int) -> int:
    return n * (1 + D + D * (D + 1) // 2)


def cost(kind: str, n: int) -> Cost | None:
    """Leading order, at K = n components: the points (N x D) and the parameters (dim) must be read,
    the gradient (dim) written; each point and component costs about D^2 flops for Q z (triangular,
    as a multiply-add over D(D+1)/2 entries) and 3D more for the shift and the norm; the gradient
    about three times f (the responsibilities, then G_k = -sum W z^T), the HVP twice the gradient,
    the Hessian dim HVPs writing dim x dim."""
    dim = n * (1 + D + D * (D + 1) // 2)
    data = 8.0 * (N * D + dim)
    f_flops = N * n * (D * D + 3.0 * D)
    return {"f": Cost(data, f_flops), "grad": Cost(data + 8.0 * dim, 3 * f_flops),
            "hvp": Cost(data + 16.0 * dim, 6 * f_flops),
            "hess": Cost(data + 8.0 * dim * dim, 6 * f_flops * dim)}.get(kind)


gmm = Problem(
    name="gmm", f=f, grad=grad, hess=hess, hvp=hvp, value_and_grad=value_and_grad, instance=instance, cost=cost,
    formula=r"f = -\sum_i \mathrm{lse}_k\left(\alpha_k + \sum_j q_{kj} - \frac{1}{2}\|Q_k(x_i - \mu_k)\|^2\right)"
            r" + N\,\mathrm{lse}(\alpha) + \sum_k \left(\frac{\gamma^2}{2}\|Q_k\|_F^2 - m \sum_j q_{kj}\right) + c",
    seed_ref="ADBench GMM objective (with GradBench's sign fix): D = 10, N = 1000, K = n components",
    tags=frozenset({"nonconvex", "vector", "gradbench"}), data_matrices=0, data_size=lambda n: N * D,
    dim=dim, point=point,
    size_name="K", size_limits={"hess": 5, "f": 1000, "grad": 1000, "hvp": 1000},
)
