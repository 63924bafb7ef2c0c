"""Problems whose Hessian is sparse: a chained function, a 2-D stencil energy and a separable sum.

Each gives its Hessian two ways: dense (`hess`, for the dense autodiff Hessians beside it, at the sizes
memory allows) and as its nonzeros (`sparse_hess`, in the row-major order of `sparsity(n)`, with a
column colouring that lets a few HVPs check them: problems._spec.Sparsity). Sparse autodiff (asdex:
sparsity detection and colouring, then a few compressed HVPs) is the third way (backends.jax_backend).

- rosenbrock_chain: the chained (extended) Rosenbrock function of n variables, tridiagonal,
      f(x) = sum_{i<n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2,
  with f* = 0 at x = 1. From x0 = (-1.2, 1, -1.2, 1, ...) (Moré, Garbow and Hillstrom's start), Newton
  needs iterations in proportion to n (the chain passes the solution on about one variable a step: 1,512
  to eps at n = 1000 here), so the `sparse` preset times its derivatives per call and solves the others.
- stencil_energy: a p-Laplacian-type energy (p = 2 and 4) of u on an n x n grid, n^2 variables,
  of the displacement w = u - b from data b, with the 5-point stencil's edges e = (i, j),
      f(u) = sum_e phi(w_i - w_j) + mu/2 |w|^2 (mu = 0.1),   phi(t) = t^2/2 + t^4/4,
  strongly convex (mu), f* = 0 at u = b. Its Hessian: mu I + sum_e phi''(w_i - w_j) (e_i - e_j)(e_i - e_j)^T.
- logcosh_sep: a separable robust fit, f(x) = sum_i log cosh(x_i - b_i) + mu/2 (x_i - b_i)^2, diagonal
  Hessian sech^2(x - b) + mu in [mu, 1 + mu], so gradient descent runs too (L = 1 + mu, mu = 0.5);
  f* = 0 at x = b.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ._spec import Cost, Instance, Problem, Sparsity
from ._xp import array_namespace, concat, device

MU = 0.1  # stencil_energy's strong convexity
MU_SEPARABLE = 0.5  # logcosh_sep's: with it, Newton's unit step from anywhere lands within 2 of the minimum


def _pad(x, like, before: bool, axis: int = 0):
    """x with one zero slice before (or after) it along `axis`, the zeros made from `like` (an array of
    x's full extent across that axis, never empty: x may be): its dtype, device and tracing, in every library."""
    zero = 0 * (like[:1] if axis == 0 else like[:, :1])
    return concat((zero, x) if before else (x, zero), axis=axis)


def _eye(x, dim: int, k: int = 0):
    """The dim x dim matrix with ones on diagonal k, of x's dtype and device (cut from a larger identity:
    torch's eye takes no k)."""
    xp = array_namespace(x)
    size = dim + abs(k)
    if xp.__name__.startswith("autograd."):  # autograd's traced arrays carry no device
        eye = xp.eye(size, dtype=x.dtype)
    else:
        eye = xp.eye(size, dtype=x.dtype, device=device(x))
    return eye[k:k + dim, :dim] if k >= 0 else eye[:dim, -k:-k + dim]  # [r, c] = 1 where c = r + k


# --- the chained Rosenbrock function -------------------------------------------------------------

def _rb_parts(x):
    xp = array_namespace(x)
    a, b = x[:-1], x[1:]
    return xp, a, b, b - a * a, 1 - a


def rb_f(x, data):
    xp, _, _, d, e = _rb_parts(x)
    return xp.sum(100 * d * d + e * e)


def rb_grad(x, data):
    _, a, _, d, e = _rb_parts(x)
    return _pad(-400 * a * d - 2 * e, x, before=False) + _pad(200 * d, x, before=True)


def _rb_bands(x):
    """(diagonal, off-diagonal): H[i, i] and H[i, i+1] = H[i+1, i]."""
    xp, a, b, _, _ = _rb_parts(x)
    diagonal = _pad(1200 * a * a - 400 * b + 2, x, before=False) + _pad(200 + 0 * a, x, before=True)
    return xp, diagonal, -400 * a


def rb_hess(x, data):
    xp, diagonal, off = _rb_bands(x)
    n = x.shape[0]
    upper = _pad(off, x, before=False)
    return _eye(x, n) * diagonal + _eye(x, n, 1) * upper[:, None] + _eye(x, n, -1) * upper[None, :]


def rb_hvp(x, v, data):
    xp, diagonal, off = _rb_bands(x)
    return diagonal * v + _pad(off * v[1:], x, before=False) + _pad(off * v[:-1], x, before=True)


def rb_sparse_hess(x, data):
    """Row by row (CSR order), row i's (i-1, i, i+1) entries, the missing ends dropped: 3n - 2 values."""
    xp, diagonal, off = _rb_bands(x)
    rows = xp.stack((_pad(off, x, before=True), diagonal, _pad(off, x, before=False)), axis=1)
    return xp.reshape(rows, (-1,))[1:-1]


@functools.lru_cache(maxsize=8)
def banded_sparsity(n: int) -> Sparsity:
    """The tridiagonal pattern, row by row (CSR order); columns coloured i mod 3."""
    i = np.arange(n)
    return Sparsity(np.repeat(i, 3)[1:-1], (np.repeat(i, 3) + np.tile([-1, 0, 1], n))[1:-1], i % 3)


def rb_instance(n: int, seed: int = 0) -> Instance:
    x0 = np.where(np.arange(n) % 2 == 0, -1.2, 1.0)
    return Instance(problem="rosenbrock_chain", n=n, seed=seed, x0=x0, data={}, solve_f_star=0.0)


def rb_point(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n, 131])
    return 1.0 + 0.5 * rng.standard_normal(n), rng.standard_normal(n)


def _vector_cost(reads: float, flops: float, n: int, writes: float = 1.0) -> Cost:
    return Cost(8.0 * n * (reads + writes), flops * n)


def rb_cost(kind: str, n: int) -> Cost | None:
    """x read (8n bytes) and the result written: about 6 flops an entry for f, 10 for the gradient, 14
    for the HVP (and v read), 8 for the 3n - 2 nonzeros; the dense Hessian writes n x n."""
    return {"f": _vector_cost(1, 6, n, 0), "grad": _vector_cost(1, 10, n), "hvp": _vector_cost(2, 14, n),
            "sparse_hess": Cost(8.0 * 4 * n, 8.0 * n), "hess": Cost(8.0 * n * (n + 1), 8.0 * n)}.get(kind)


rosenbrock_chain = Problem(
    name="rosenbrock_chain", f=rb_f, grad=rb_grad, hess=rb_hess, hvp=rb_hvp, sparse_hess=rb_sparse_hess,
    sparsity=banded_sparsity, instance=rb_instance, point=rb_point, cost=rb_cost,
    formula=r"f(x) = \sum_{i<n-1} 100\,(x_{i+1} - x_i^2)^2 + (1 - x_i)^2",
    seed_ref="the chained Rosenbrock function (Moré, Garbow and Hillstrom 1981; Hill and Dalle 2025's sparse "
             "Hessian benchmarks)",
    tags=frozenset({"nonconvex", "vector", "sparse"}), data_matrices=0,
)


# --- a p-Laplacian-type energy on an n x n grid --------------------------------------------------

def _grid_parts(x, data):
    xp = array_namespace(x)
    side = data["b"].shape[0]
    w = xp.reshape(x, (side, side)) - data["b"]
    return xp, w, w[:, 1:] - w[:, :-1], w[1:, :] - w[:-1, :]


def se_f(x, data):
    xp, w, across, down = _grid_parts(x, data)
    phi = lambda t: xp.sum(t * t / 2 + t ** 4 / 4)  # noqa: E731
    return phi(across) + phi(down) + MU / 2 * xp.sum(w * w)


def _edge_sum(w, across, down):
    """Each node's sum over its edges of the edge's value, signed (+ at the edge's later end); w: a grid."""
    return (_pad(across, w, before=True, axis=1) - _pad(across, w, before=False, axis=1)
            + _pad(down, w, before=True, axis=0) - _pad(down, w, before=False, axis=0))


def se_grad(x, data):
    xp, w, across, down = _grid_parts(x, data)
    dphi = lambda t: t + t ** 3  # noqa: E731
    return xp.reshape(MU * w + _edge_sum(w, dphi(across), dphi(down)), (-1,))


def se_hvp(x, v, data):
    xp, _, across, down = _grid_parts(x, data)
    side = data["b"].shape[0]
    y = xp.reshape(v, (side, side))
    weight = lambda t: 1 + 3 * t * t  # noqa: E731  phi''
    return xp.reshape(MU * y + _edge_sum(y, weight(across) * (y[:, 1:] - y[:, :-1]),
                                         weight(down) * (y[1:, :] - y[:-1, :])), (-1,))


def _stencil(x, data):
    """(diagonal, across, down): H[k, k] and the entries of the edges to the right and below, as grids."""
    xp, w, across, down = _grid_parts(x, data)
    a, d = -(1 + 3 * across * across), -(1 + 3 * down * down)
    off = _pad(a, w, before=True, axis=1) + _pad(a, w, before=False, axis=1) \
        + _pad(d, w, before=True, axis=0) + _pad(d, w, before=False, axis=0)
    return xp, MU - off, a, d


def _without(flat, first: int, second: int):
    """A 1-d array less two of its entries (static positions, first < second)."""
    return concat((flat[:first], flat[first + 1:second], flat[second + 1:]))


def se_sparse_hess(x, data):
    """Row by row (CSR order), each node's up, left, own, right and down entries where the grid has them."""
    xp, diagonal, a, d = _stencil(x, data)
    side = diagonal.shape[0]
    if side == 1:  # one node: its own entry only
        return xp.reshape(diagonal, (-1,))
    left, right = _pad(a, diagonal, before=True, axis=1), _pad(a, diagonal, before=False, axis=1)
    up, below = _pad(d, diagonal, before=True, axis=0), _pad(d, diagonal, before=False, axis=0)
    slots = [up, left, diagonal, right, below]
    row = lambda i, kept: xp.reshape(xp.stack([s[i] for s in kept], axis=1), (-1,))  # noqa: E731
    first = _without(row(0, slots[1:]), 0, 4 * side - 2)  # no up; no left at its start, no right at its end
    last = _without(row(side - 1, slots[:4]), 1, 4 * side - 1)  # no down
    middle = xp.reshape(xp.stack([s[1:-1] for s in slots], axis=2), (side - 2, 5 * side))
    middle = concat((middle[:, :1], middle[:, 2:5 * side - 2], middle[:, 5 * side - 1:]), axis=1)
    return concat((first, xp.reshape(middle, (-1,)), last))


def se_hess(x, data):
    xp, diagonal, a, d = _stencil(x, data)
    side = data["b"].shape[0]
    dim = side * side
    right = xp.reshape(_pad(a, diagonal, before=False, axis=1), (-1,))  # H[k, k + 1], 0 at a row's end
    below = xp.reshape(_pad(d, diagonal, before=False, axis=0), (-1,))  # H[k, k + side], 0 on the last row
    upper = _eye(x, dim, 1) * right[:, None] + _eye(x, dim, side) * below[:, None]
    return _eye(x, dim) * xp.reshape(diagonal, (-1,)) + upper + xp.matrix_transpose(upper)


@functools.lru_cache(maxsize=8)
def stencil_sparsity(n: int) -> Sparsity:
    """The 5-point stencil's pattern on an n x n grid, row by row (CSR order); node (i, j) coloured
    (i + 5 j) mod 13, which tells apart every two nodes within two steps of each other (all 12 such
    offsets are nonzero mod 13)."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ni, nj = i[..., None] + np.array([-1, 0, 0, 0, 1]), j[..., None] + np.array([0, -1, 0, 1, 0])
    inside = ((ni >= 0) & (ni < n) & (nj >= 0) & (nj < n)).ravel()
    rows = np.broadcast_to((i * n + j)[..., None], ni.shape).ravel()[inside]
    return Sparsity(rows, (ni * n + nj).ravel()[inside], ((i + 5 * j) % 13).ravel())


def se_instance(n: int, seed: int = 0) -> Instance:
    rng = np.random.default_rng([seed, n, 137])
    return Instance(problem="stencil_energy", n=n, seed=seed, x0=np.zeros(n * n),
                    data={"b": rng.standard_normal((n, n))}, strong_convexity=MU, solve_f_star=0.0)


def se_point(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n, 139])
    return rng.standard_normal(n * n), rng.standard_normal(n * n)


def se_cost(kind: str, n: int) -> Cost | None:
    """u and b read (16 n^2 bytes), the result written: about 14 flops a node for f, 20 for the
    gradient, 24 for the HVP (and v read); 5 nonzeros a node (and the index of which are inside)."""
    dim = n * n
    return {"f": Cost(16.0 * dim, 14.0 * dim), "grad": Cost(24.0 * dim, 20.0 * dim),
            "hvp": Cost(32.0 * dim, 24.0 * dim), "sparse_hess": Cost(16.0 * dim + 16.0 * 5 * dim, 16.0 * dim),
            "hess": Cost(16.0 * dim + 8.0 * dim * dim, 16.0 * dim)}.get(kind)


stencil_energy = Problem(
    name="stencil_energy", f=se_f, grad=se_grad, hess=se_hess, hvp=se_hvp, sparse_hess=se_sparse_hess,
    sparsity=stencil_sparsity, instance=se_instance, point=se_point, cost=se_cost,
    formula=r"f(u) = \sum_{(i,j)} \phi(w_i - w_j) + \frac{\mu}{2}\|w\|^2,\ w = u - b,\ \phi(t) = t^2/2 + t^4/4",
    seed_ref="a discretised p-Laplacian energy on a 5-point stencil (Hill and Dalle 2025; the course's "
             "quadratic forms, made nonquadratic)",
    tags=frozenset({"convex", "grid", "sparse"}), data_matrices=1, dim=lambda n: n * n, size_name="side n",
    data_size=lambda n: 6 * n * n,
)


# --- a separable robust fit ------------------------------------------------------------------------

def lc_f(x, data):
    xp = array_namespace(x)
    r = x - data["b"]
    # log cosh r = |r| + log(1 + e^{-2|r|}) - log 2, stable for large |r|
    return xp.sum(xp.abs(r) + xp.log1p(xp.exp(-2 * xp.abs(r))) - math.log(2) + MU_SEPARABLE / 2 * r * r)


def lc_grad(x, data):
    xp = array_namespace(x)
    r = x - data["b"]
    return xp.tanh(r) + MU_SEPARABLE * r


def lc_sparse_hess(x, data):
    xp = array_namespace(x)
    t = xp.tanh(x - data["b"])
    return 1 - t * t + MU_SEPARABLE


def lc_hess(x, data):
    return _eye(x, x.shape[0]) * lc_sparse_hess(x, data)


def lc_hvp(x, v, data):
    return lc_sparse_hess(x, data) * v


@functools.lru_cache(maxsize=8)
def diagonal_sparsity(n: int) -> Sparsity:
    i = np.arange(n)
    return Sparsity(i, i, np.zeros(n, dtype=np.int64))


def lc_instance(n: int, seed: int = 0) -> Instance:
    rng = np.random.default_rng([seed, n, 149])
    return Instance(problem="logcosh_sep", n=n, seed=seed, x0=np.zeros(n), data={"b": 3 * rng.standard_normal(n)},
                    lipschitz=1 + MU_SEPARABLE, strong_convexity=MU_SEPARABLE, solve_f_star=0.0)


def lc_cost(kind: str, n: int) -> Cost | None:
    """x and b read (16n bytes), the result written; about 8 flops an entry (tanh counted 1)."""
    return {"f": _vector_cost(2, 8, n, 0), "grad": _vector_cost(2, 5, n), "hvp": _vector_cost(3, 6, n),
            "sparse_hess": _vector_cost(2, 5, n), "hess": Cost(16.0 * n + 8.0 * n * n, 5.0 * n)}.get(kind)


logcosh_sep = Problem(
    name="logcosh_sep", f=lc_f, grad=lc_grad, hess=lc_hess, hvp=lc_hvp, sparse_hess=lc_sparse_hess,
    sparsity=diagonal_sparsity, instance=lc_instance, cost=lc_cost,
    formula=r"f(x) = \sum_i \log\cosh(x_i - b_i) + \frac{\mu}{2}(x_i - b_i)^2",
    seed_ref="a separable robust fit (the course's elementwise functions; its Hessian is diagonal)",
    tags=frozenset({"convex", "vector", "sparse"}), data_matrices=0,
)

SPARSE_PROBLEMS = (rosenbrock_chain, stencil_energy, logcosh_sep)
