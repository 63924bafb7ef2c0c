"""Small models from the seed's backpropagation section (parameters as one flat vector theta).

backprop (the seed's worked example, over m samples (x_i, t_i); theta = (w, b), 2 variables):
    z = w x + b, y = sigmoid(z), L = 1/2 (y - t)^2, R = 1/2 w^2, f = mean(L) + lambda R
    With s = sigmoid(z), e = s - t, s' = s (1 - s), c = s'^2 + e s' (1 - 2 s) (= d2L/dz2):
    grad = (mean(e s' x) + lambda w, mean(e s'))
    hess = [[mean(c x^2) + lambda, mean(c x)], [mean(c x), mean(c)]]
    n is the number of samples m; the variables stay 2.

softmax_object (exercise 23: dL/dW, dL/db for one object x in R^n, k = 3 classes, label c):
    z = W x + b, p = softmax(z), f = -log p_c = logsumexp(z) - z_c
    dL/dW = (p - e_c) x^T, dL/db = p - e_c
    theta = (vec(W) row-major, b), 3 (n + 1) variables; with J = dz/dtheta = [I_k (x) x^T, I_k]
    and S = diag(p) - p p^T: hess = J^T S J, hvp = J^T S J v.
"""
from __future__ import annotations

import math

import numpy as np

from ._spec import Instance, Problem
from ._xp import array_namespace, eye_like

LAMBDA = 0.1
CLASSES = 3


def _sigmoid(z, xp):
    return xp.exp(-xp.logaddexp(xp.zeros_like(z), -z))


# backprop --------------------------------------------------------------------------------------
def bp_f(theta, data):
    xp = array_namespace(theta)
    w, b = theta[0], theta[1]
    y = _sigmoid(w * data["x"] + b, xp)
    # the penalty on the 1-vector theta[:1], not on the 0-d w: torch.func.jvp gives a Python float times
    # a 0-d tensor a float64 zero tangent (pytorch/pytorch#90065), which made float32's forward-over-reverse
    # HVP float64 (the sum of one entry is exact: float64's values are the same)
    return 0.5 * xp.mean((y - data["t"]) ** 2) + xp.sum(0.5 * LAMBDA * theta[:1] * theta[:1])


def _bp_parts(theta, data):
    xp = array_namespace(theta)
    w, b = theta[0], theta[1]
    s = _sigmoid(w * data["x"] + b, xp)
    e = s - data["t"]
    ds = s * (1.0 - s)
    c = ds * ds + e * ds * (1.0 - 2.0 * s)
    return xp, w, e * ds, c


def bp_grad(theta, data):
    xp, w, dz, _ = _bp_parts(theta, data)
    return xp.stack([xp.mean(dz * data["x"]) + LAMBDA * w, xp.mean(dz)])


def bp_hess(theta, data):
    xp, _, _, c = _bp_parts(theta, data)
    x = data["x"]
    hww, hwb, hbb = xp.mean(c * x * x) + LAMBDA, xp.mean(c * x), xp.mean(c)
    return xp.stack([xp.stack([hww, hwb]), xp.stack([hwb, hbb])])


def bp_hvp(theta, v, data):
    return bp_hess(theta, data) @ v


def _bp_instance(n, seed=0):
    rng = np.random.default_rng([seed, n, 60])
    x = rng.standard_normal(n)
    t = (x + 0.3 * rng.standard_normal(n) > 0).astype(float)
    return Instance("backprop", n, seed, np.zeros(2), {"x": x, "t": t}, math.nan)


backprop = Problem(
    name="backprop", f=bp_f, grad=bp_grad, hess=bp_hess, hvp=bp_hvp,
    value_and_grad=lambda theta, d: (bp_f(theta, d), bp_grad(theta, d)), instance=_bp_instance,
    formula=r"f(w, b) = \frac{1}{m}\sum_i \frac{1}{2}(\sigma(w x_i + b) - t_i)^2 + \frac{\lambda}{2} w^2",
    seed_ref="Automatic differentiation: the backpropagation example (z = wx + b, y = sigma(z), L + lambda R)",
    tags=frozenset({"vector", "nonconvex"}), data_matrices=0, dim=lambda n: 2,
    point=lambda n, seed=0: (np.array([0.7, -0.2]), np.array([1.0, 0.5])),
)


# softmax_object --------------------------------------------------------------------------------
def _split(theta, n):
    xp = array_namespace(theta)
    return xp, xp.reshape(theta[: CLASSES * n], (CLASSES, n)), theta[CLASSES * n:]


def so_f(theta, data):
    x = data["x"]
    xp, w, b = _split(theta, x.shape[0])
    z = w @ x + b
    m = xp.max(z)
    return m + xp.log(xp.sum(xp.exp(z - m))) - xp.sum(data["onehot"] * z)


def _so_parts(theta, data):
    x = data["x"]
    xp, w, b = _split(theta, x.shape[0])
    z = w @ x + b
    e = xp.exp(z - xp.max(z))
    return xp, x, e / xp.sum(e)


def so_grad(theta, data):
    xp, x, p = _so_parts(theta, data)
    delta = p - data["onehot"]
    return xp.concat([xp.reshape(delta[:, None] * x[None, :], (-1,)), delta])


def _jacobian(x, p):
    """dz/dtheta = [I_k (x) x^T, I_k] (k x (k n + k)), row-major vec(W)."""
    xp = array_namespace(p)
    eye = eye_like(p)
    jw = xp.reshape(eye[:, :, None] * x[None, None, :], (CLASSES, -1))
    return xp.concat([jw, eye], axis=1)


def so_hess(theta, data):
    xp, x, p = _so_parts(theta, data)
    j = _jacobian(x, p)
    s = eye_like(p) * p - p[:, None] * p[None, :]
    return j.T @ s @ j


def so_hvp(theta, v, data):
    xp, x, p = _so_parts(theta, data)
    j = _jacobian(x, p)
    jv = j @ v
    return j.T @ (p * jv - p * xp.sum(p * jv))


def _so_instance(n, seed=0):
    rng = np.random.default_rng([seed, n, 61])
    onehot = np.zeros(CLASSES)
    onehot[rng.integers(CLASSES)] = 1.0
    return Instance("softmax_object", n, seed, np.zeros(CLASSES * (n + 1)),
                    {"x": rng.standard_normal(n) / math.sqrt(n), "onehot": onehot}, math.nan)


def _so_point(n, seed=0):
    rng = np.random.default_rng([seed, n, 62])
    return rng.standard_normal(CLASSES * (n + 1)), rng.standard_normal(CLASSES * (n + 1))


softmax_object = Problem(
    name="softmax_object", f=so_f, grad=so_grad, hess=so_hess, hvp=so_hvp,
    value_and_grad=lambda theta, d: (so_f(theta, d), so_grad(theta, d)), instance=_so_instance,
    formula=r"L(W, b) = -\log \mathrm{softmax}(Wx + b)_c",
    seed_ref="Matrix calculus ex. 23 (dL/dW, dL/db for one object)",
    tags=frozenset({"convex", "vector"}), data_matrices=0, dim=lambda n: CLASSES * (n + 1), point=_so_point,
)
