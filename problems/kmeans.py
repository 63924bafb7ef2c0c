"""k-means cost and its Newton direction: GradBench's `kmeans` eval.

    f(C) = sum_i min_j ||c_j - p_i||^2,     C = (c_1 .. c_k) in R^{k x d}, variables vec(C) row-major

Peers: gradbench/gradbench evals/kmeans/README.md, cpp/gradbench/evals/kmeans.hpp (reference cost),
tools/manual/kmeans.cpp (hand `dir`), python/gradbench/gradbench/tools/{jax,pytorch}/kmeans.py
(autodiff `dir`), python/gradbench/gradbench/evals/kmeans/run.py (inputs). After Bottou and
Bengio, "Convergence properties of the k-means algorithms" (NIPS 1994).

GradBench times two functions: `cost` (= f) and `dir`, the Newton direction J H^{-1} with J the
gradient and H the Hessian, which is diagonal. With S_j the points whose nearest centroid is c_j
(f is piecewise quadratic; on each piece the assignment is fixed):

    grad_j f = 2 (|S_j| c_j - sum_{i in S_j} p_i)
    hess f   = diag(2 |S_j|, each repeated d times)    (diagonal: no coupling between coordinates,
                                                        not just between centroids)
    hess f v = 2 |S_j| v_j
    dir_j    = grad_j / diag_j = c_j - mean_{i in S_j} p_i      (C - dir is Lloyd's update)

The autodiff tools form the diagonal as one HVP with the all-ones vector (JAX: jvp of grad; PyTorch:
vhp), which is exact only because H is diagonal. Every centroid must own a point (|S_j| > 0):
GradBench guarantees it by taking the centroids to be the last k points.

Distances are expanded, ||c||^2 + ||p||^2 - 2 c.p (k x n, as GradBench's JAX and PyTorch tools
do), not summed over (c - p)^2 as the C++ reference does: a (k, n, d) difference array is too big at
k = 1000, n = 10^4. The values agree to ~1e-15 relative; the assignment can differ only for points
equidistant to ~1e-16.

Sizes: GradBench sweeps k in {10, 100, 1000} x n in {1000, 10000} x d in {8, 16}. Here the sweep
variable n is the number of centroids k, at d = 8 and N = 10^4 points: n = 10, 100, 1000 are exactly
its cells k={n},n=10000,d=8. dim = 8 n; k <= N (at k = N every point is its own centroid, dir = 0).

Instance: the points are the data, GradBench's U[0, 1)^{N x d} (`np.random.rand`, seed 31337,
one draw per cell), here from `default_rng([seed, n, 124])`; the evaluation point and x0 are the
last k points, as GradBench's inputs. f is nonconvex with many local minima: lipschitz is nan, and
gradient descent does not run. f* is the local minimum that Lloyd's algorithm reaches from x0, which
is Newton's method with the exact (diagonal) Hessian at unit steps: iterated until the assignment no
longer changes, where every centroid is its points' mean, the exact minimum of f's quadratic piece
there and so a local minimum (certified: every point is strictly nearer its own centroid). A
Newton-type solver "reached eps" when it is within eps of that minimum; Newton-CG, whose inexact steps
take another path through the pieces, may reach another local minimum or none (bench.solvers).
"""
from __future__ import annotations

import math

import numpy as np

from ._spec import Cost, Instance, Problem
from ._xp import array_namespace, eye_like

DIM = 8  # d, the dimension of the points
POINTS = 10_000  # GradBench's larger n


def _distances(x, data):
    """Squared distances (k, N) from each centroid to each point, and the centroids (k, d)."""
    xp = array_namespace(x)
    points = data["points"]
    c = xp.reshape(x, (-1, points.shape[1]))
    # c @ points_t: the transpose is stored in the data, so JAX never copies an N x d array
    cross = c @ data["points_t"]
    dist = xp.sum(c * c, axis=1)[:, None] + xp.sum(points * points, axis=1)[None, :] - 2.0 * cross
    return xp, c, dist


def _assignment(xp, dist):
    """One-hot nearest centroid per point (k, N), from equality with the minimum (no scatter).

    Ties (probability zero for continuous data) would count a point twice; autodiff's min splits
    (JAX) or picks one (torch).
    """
    return xp.astype(dist == xp.min(dist, axis=0, keepdims=True), dist.dtype)


def f(x, data):
    xp, _, dist = _distances(x, data)
    return xp.sum(xp.min(dist, axis=0))


def _counts_and_sums(x, data):
    xp, c, dist = _distances(x, data)
    a = _assignment(xp, dist)
    # |S_j| and sum_{i in S_j} p_i: the histogram of GradBench's manual tool, as a matmul
    return xp, c, dist, xp.sum(a, axis=1), a @ data["points"]


def grad(x, data):
    xp, c, _, counts, sums = _counts_and_sums(x, data)
    return xp.reshape(2.0 * (counts[:, None] * c - sums), (-1,))


def _hess_diagonal(xp, c, counts):
    # 2 |S_j| for each of the d coordinates of c_j, in vec(C) order (row-major)
    return xp.reshape(2.0 * counts[:, None] * xp.ones_like(c), (-1,))


def hess(x, data):
    xp, c, _, counts, _ = _counts_and_sums(x, data)
    return eye_like(x) * _hess_diagonal(xp, c, counts)


def hvp(x, v, data):
    xp, c, _, counts, _ = _counts_and_sums(x, data)
    return _hess_diagonal(xp, c, counts) * v


def value_and_grad(x, data):
    """f and its gradient sharing the distances (GradBench's README: reuse work between the two)."""
    xp, c, dist, counts, sums = _counts_and_sums(x, data)
    return xp.sum(xp.min(dist, axis=0)), xp.reshape(2.0 * (counts[:, None] * c - sums), (-1,))


def newton(x, data):
    """GradBench's `dir` by hand: grad / diag(hess) = c_j - mean(S_j) (tools/manual/kmeans.cpp).

    Needs every |S_j| > 0. Autodiff forms the diagonal as H 1 (see problems.KINDS["newton"]).
    """
    xp, c, _, counts, sums = _counts_and_sums(x, data)
    return xp.reshape(c - sums / counts[:, None], (-1,))


# instances -------------------------------------------------------------------------------------
def _points(n, seed):
    if n > POINTS:
        raise ValueError(f"kmeans needs k <= {POINTS} centroids; got n={n}.")
    return np.random.default_rng([seed, n, 124]).random((POINTS, DIM))


def instance(n: int, seed: int = 0) -> Instance:
    p = _points(n, seed)
    data = {"points": p, "points_t": np.ascontiguousarray(p.T)}
    # GradBench: centroids = points[-k:], so that every centroid owns at least one point
    x0 = p[-n:].ravel()
    return Instance(problem="kmeans", n=n, seed=seed, x0=x0, data=data, lipschitz=math.nan,
                    solve_f_star=lambda: _lloyd_minimum(x0, data))


def _lloyd_minimum(x0: np.ndarray, data, max_steps: int = 10_000) -> float:
    """f at the fixed point of Lloyd's algorithm from x0 (x <- x - dir(x)): see the module docstring.
    Refuses a centroid that lost its points (no Newton step there) and a fixed point where a point is
    as near to a second centroid as to its own (no local minimum certified)."""
    x = x0
    for _ in range(max_steps):
        _, _, dist, counts, _ = _counts_and_sums(x, data)
        if not np.all(counts > 0):
            raise RuntimeError("kmeans f*: a centroid lost all its points during Lloyd's algorithm")
        x_next = x - newton(x, data)
        if np.array_equal(x_next, x):
            nearest = np.sort(dist, axis=0)[:2]
            if len(nearest) == 2 and np.any(nearest[1] - nearest[0] <= 1e-12 * (1.0 + nearest[1])):
                raise RuntimeError("kmeans f*: a point is equidistant to two centroids at Lloyd's fixed point")
            return float(f(x, data))
        x = x_next
    raise RuntimeError(f"kmeans f*: Lloyd's algorithm did not reach a fixed point in {max_steps} steps")


def point(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    p = _points(n, seed)
    return p[-n:].ravel(), np.random.default_rng([seed, n, 125]).standard_normal(n * DIM)


def cost(kind: str, n: int) -> Cost | None:
    """At k = n centroids: the points (N x d, kept twice: as given and transposed) and C must be
    read; the cross products C P^T are 2 k N d flops and the distances about 5 k N more. As written,
    the k x N distances (8 k N bytes a pass) take about 7 passes (the cross products written, the
    broadcast norms written, 2 * cross read and written, the difference: two reads and a write) and
    the minimum one more; the derivatives add the one-hot assignment (the comparison, its float
    copy, its row sums, and a @ P at 2 k N d flops): about 12 passes in all. Each fresh k x N
    temporary (4 for f, 5 more or less for the derivatives) is also zero-filled by the kernel when
    first touched, one write pass more each: 12 passes for f, 17 for the derivatives."""
    points, c, kn = 16.0 * POINTS * DIM, 8.0 * n * DIM, 8.0 * n * POINTS
    f_flops = 2.0 * n * POINTS * DIM + 5.0 * n * POINTS
    derivative = Cost(points + 2 * c, 2 * f_flops, points + 2 * c + 17 * kn)
    return {"f": Cost(points + c, f_flops, points + c + 12 * kn), "grad": derivative, "hvp": derivative,
            "newton": derivative,
            "hess": Cost(points + c + 8.0 * (n * DIM) ** 2, 2 * f_flops,
                         points + c + 17 * kn + 4 * 8.0 * (n * DIM) ** 2)}.get(kind)

kmeans = Problem(
    name="kmeans", f=f, grad=grad, hess=hess, hvp=hvp, newton=newton, value_and_grad=value_and_grad,
    instance=instance, cost=cost,
    formula=r"f(C) = \sum_{i=1}^{N} \min_j \|c_j - p_i\|_2^2",
    seed_ref="GradBench evals/kmeans (cost and Newton direction): d = 8, N = 10^4 points, k = n",
    tags=frozenset({"nonconvex", "vector", "gradbench"}), data_matrices=0,
    data_size=lambda n: 2 * POINTS * DIM, dim=lambda n: DIM * n,
    # The dense Hessian is diagonal here and autodiff builds it one HVP per variable, each over all
    # N = 10^4 points: at k = 100 (800 variables) torch's took over 80 s per cell here.
    point=point, size_name="k", size_limits={"hess": 32, "f": 3162, "grad": 3162, "hvp": 3162, "newton": 3162},
)
