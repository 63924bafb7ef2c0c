"""The records every problem module ends with: `Problem` (pure functions) and `Instance` (numpy data)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

from ._xp import separate

Array = Any  # an array of any array-API library (numpy, jax, torch, autograd's numpy)
Data = dict[str, Any]  # arrays and python floats; each backend converts the arrays once



@dataclass(frozen=True)
class Kind:
    """A derivative kind: what a problem may define (a field of `Problem` of the same name), what a
    backend may differentiate, what a sweep times.

    working_bytes(n, dim): bytes a cell of this kind may hold beyond its data at size n with dim
    variables (its outputs, the reference it is checked against, autodiff's intermediates): the
    memory guard skips a cell before it allocates them.
    """

    name: str
    summary: str
    takes_direction: bool = False  # called as fn(x, v, data) rather than fn(x, data)
    working_bytes: Callable[[int, int], int] = lambda n, dim: 8 * dim * 16


# Each kind once, in the order figures and tables show them. A dense autodiff Hessian builds up to
# ~5 N x N intermediates: peaks measured at n = 1500 were 3.6 N^2 x 8 bytes (numpy), 4.5
# (jax.hessian), 5.0 (torch.func.hessian), 3.5-4.9 (autograd), plus the reference. A Jacobian by
# forward mode pushes an N x N identity of tangents.
KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("f", "the value f(x)"),
    Kind("grad", "the gradient"),
    Kind("hvp", "a Hessian-vector product", takes_direction=True),
    Kind("hess", "the dense Hessian (over vec(x))", working_bytes=lambda n, dim: 8 * dim * dim * 8),
    # the nonzeros of a sparse Hessian, in the order of the problem's pattern (`Sparsity`): a few per
    # row; sparse autodiff pushes one vector a colour (a few dozen at most) through an HVP
    Kind("sparse_hess", "the sparse Hessian's nonzeros, in its pattern's order",
         working_bytes=lambda n, dim: 8 * dim * 64),
    Kind("jac", "the Jacobian of a vector-valued f (over vec(x))",
         working_bytes=lambda n, dim: 8 * (dim * dim + 4 * n * dim)),
    Kind("dk", "the k-th derivative of a function of one variable (k = n)"),
    # GradBench's k-means `dir`: a problem defines it only where its Hessian is diagonal, so that
    # autodiff's H 1 (one HVP with the ones vector) is that diagonal
    Kind("newton", "the Newton direction with a diagonal Hessian, grad / (H 1)"),
)}
DERIVATIVE_KINDS = tuple(KINDS)


@dataclass(frozen=True)
class Sparsity:
    """Where a Hessian's nonzeros are: entry k of a `sparse_hess` result is H[rows[k], cols[k]], row by
    row and by column within a row (CSR order, as scipy and asdex give them), every entry the structure
    allows (one that is zero at some x is kept, so that the pattern does not depend on x). colors: a
    colouring of the columns in which no two columns of one colour have a nonzero in the same row (a
    distance-2 colouring), so that one HVP with the sum of a colour's unit vectors gives each of its
    columns' entries (Curtis, Powell and Reid): how a sparse Hessian is checked against a backend's HVPs
    (bench.measure.checks)."""

    rows: np.ndarray
    cols: np.ndarray
    colors: np.ndarray

    def __post_init__(self):
        keys = self.rows.astype(np.int64) * self.colors.size + self.cols
        if np.any(np.diff(keys) <= 0):
            raise ValueError("a Sparsity's entries must be in CSR order (by row, then column), each once")

    @property
    def nnz(self) -> int:
        return int(self.rows.size)

    @cached_property
    def indptr(self) -> np.ndarray:
        """Where each row's entries start, and the end: the CSR row pointer."""
        return np.concatenate(([0], np.cumsum(np.bincount(self.rows, minlength=self.colors.size))))

    def matrix(self, values):
        """The values as a scipy.sparse CSR array, on the pattern's own index arrays (no sort, no copy of
        them): what a Newton step with the sparse Hessian pays (newton-sparse), and the checks use. In the
        values' floating dtype (float32 stays float32); other values as float64."""
        from scipy.sparse import csr_array

        dim = self.colors.size
        values = np.asarray(values)
        if not np.issubdtype(values.dtype, np.floating):
            values = values.astype(np.float64)
        return csr_array((values, self.cols, self.indptr), shape=(dim, dim))

    def directions(self, dtype=np.float64) -> np.ndarray:
        """(colours, dim): the sum of each colour's unit vectors, one HVP's direction each, in `dtype`."""
        count = int(self.colors.max()) + 1 if self.colors.size else 0
        return (self.colors[None, :] == np.arange(count)[:, None]).astype(dtype)

    def decompress(self, products: np.ndarray) -> np.ndarray:
        """The values from H d_c for each colour c (rows of `products`, as `directions` orders them)."""
        return np.asarray(products)[self.colors[self.cols], self.rows]


@dataclass(frozen=True)
class Cost:
    """What one call of a derivative must move and compute at size n: its floor on a machine is
    max(bytes / bandwidth, flops / peak FLOP/s) (bench.roofline).

    bytes: float64 data that any implementation must read or write at least once (the inputs it
    depends on, its output); flops: the floating-point operations of the formula (a multiply-add
    is 2; an exp or log counts 1); bytes_as_written: what the formula as written moves through
    memory, where it reads its data more than once (least squares' gradient reads A twice, in
    A @ x and r @ A: 2 x 8n^2 against 8n^2 for a fused pass). A measurement of a memory-bound cell
    checks bytes_as_written (`nablabench check --cost`).
    """

    bytes: float
    flops: float
    bytes_as_written: float | None = None

    @property
    def written(self) -> float:
        return self.bytes if self.bytes_as_written is None else self.bytes_as_written


@dataclass(frozen=True)
class Instance:
    """One seeded instance of a problem, as float64 numpy arrays.

    `data` is what every derivative takes besides x; `lipschitz` is the gradient's Lipschitz
    constant (gradient descent uses step 1/lipschitz; nan where it does not run); `strong_convexity`
    the constant mu of f's strong convexity where it is known (nan elsewhere): with lipschitz it says
    how many steps gradient descent needs (bench.cells skips a descent that cannot reach eps within
    its iterations); `f_star` is the
    minimum value, known in closed form or computed once to high accuracy (None where the problem
    has no known minimum): `solve_f_star` gives it, as a number or as a function computing it on
    first use (for a nonconvex f, the local minimum a documented method reaches from x0, certified
    as one). Gradient descent runs where both lipschitz and f_star are given; the Newton-type
    solvers (bench.solvers) where f_star is.
    """

    problem: str
    n: int
    seed: int
    x0: np.ndarray
    data: Data
    lipschitz: float = math.nan
    strong_convexity: float = math.nan
    solve_f_star: Callable[[], float] | float | None = field(default=None, repr=False)

    @cached_property
    def f_star(self) -> float | None:
        # Computed on first use: eval cells never pay for an iterative reference solve.
        if self.solve_f_star is None:
            return None
        return float(self.solve_f_star() if callable(self.solve_f_star) else self.solve_f_star)

    @property
    def nbytes(self) -> int:
        arrays = [v for v in self.data.values() if isinstance(v, np.ndarray)]
        return int(sum(a.nbytes for a in arrays) + self.x0.nbytes)


@dataclass(frozen=True, kw_only=True)
class Problem:
    """A test problem: flat functions with one signature, plus its instance generator.

    Scalar f (most problems): f(x, data) -> scalar, grad(x, data) -> x's shape,
    hess(x, data) -> (N, N), hvp(x, v, data) -> x's shape, value_and_grad(x, data) ->
    (scalar, gradient) sharing work between the two as a hand-written gradient step would.
    Vector-valued f (tag "vector-valued"): f(x, data) -> (m,) and jac(x, data) -> (m, N), the
    Jacobian over vec(x) row-major. Derivatives of every order of a scalar function of one
    variable: dk(x, data) -> f^(k)(x) elementwise, with k = `order(data)` read from a static
    shape (so that JAX can trace it). A problem defines the derivative kinds it has; the others
    are None, and `derivatives` lists the defined ones. Each is written once against the array
    API standard. Only name, f, instance and the derivatives are required: a problem with a
    gradient and no value_and_grad gets one that calls f and grad apart.
    """

    name: str
    f: Callable[[Array, Data], Array]
    grad: Callable[[Array, Data], Array] | None = None
    hess: Callable[[Array, Data], Array] | None = None
    hvp: Callable[[Array, Array, Data], Array] | None = None
    value_and_grad: Callable[[Array, Data], tuple[Array, Array]] | None = None
    jac: Callable[[Array, Data], Array] | None = None
    dk: Callable[[Array, Data], Array] | None = None
    newton: Callable[[Array, Data], Array] | None = None  # grad / diag(hess), for a diagonal Hessian
    # the nonzeros of a sparse Hessian in `sparsity(n)`'s order; sparsity(n) -> Sparsity where it is defined
    sparse_hess: Callable[[Array, Data], Array] | None = None
    sparsity: Callable[[int], Sparsity] | None = None
    order: Callable[[Data], int] | None = None  # k for dk, from a static shape in data
    instance: Callable[..., Instance]
    formula: str = ""  # LaTeX (matplotlib mathtext) for the report's catalogue
    seed_ref: str = ""  # where it comes from: the course's exercise, a paper, a peer benchmark
    tags: frozenset[str] = frozenset()
    data_matrices: int = 1  # dense n x n matrices in the data (memory estimates)
    # float64 numbers in the data at size n, where they are not data_matrices n x n matrices and a
    # few vectors (gmm's N x D points at every K); None: the data_matrices estimate
    data_size: Callable[[int], int] | None = None
    # Number of scalar variables at size n: n for vectors, n*n for an n x n matrix variable X
    # (whose Hessian is over vec(X), row-major: entry X[i, j] is variable i * n + j).
    dim: Callable[[int], int] = lambda n: n
    # what the sweep variable n counts, for axis labels: "n" (the size), "k" (an order), "terms"
    size_name: str = "n"
    # point(n, seed) -> (x, v): where derivatives are evaluated, and the HVP direction, inside
    # the domain. None: a generic vector of norm about 1 (see `evaluation_point`).
    point: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = None
    # derivative -> largest n this machine class can afford (e.g. dense Hessians over vec(X));
    # the runner skips larger cells with the reason.
    size_limits: dict[str, int] = field(default_factory=dict)
    # derivative kinds whose analytic result is read from the data, not computed (the quadratic's
    # Hessian is its matrix A): free by construction, so a ratio against it is no cost ratio
    stored: frozenset[str] = frozenset()
    # derivative kind -> the same derivative restructured for the memory hierarchy by hand (the
    # `fused` analytic variant of the eager backends: A read once where the formula as written reads
    # it twice; problems._blocks). Optional; checked and timed like the formula.
    fused: dict[str, Callable] = field(default_factory=dict)
    # cost(kind, n) -> Cost of one call of that derivative kind at size n ("gd": one iteration of
    # gradient descent, its value_and_grad), or None where it declares none: the floor of a cell on
    # the machine (bench.roofline). Optional.
    cost: Callable[[str, int], Cost | None] | None = None

    def __post_init__(self):
        if self.value_and_grad is None and self.grad is not None:
            object.__setattr__(self, "value_and_grad", separate(self.f, self.grad))

    @property
    def derivatives(self) -> tuple[str, ...]:
        """The derivative kinds this problem defines, f first (f is always timed too)."""
        return ("f", *(d for d in DERIVATIVE_KINDS[1:] if getattr(self, d) is not None))

    def size_for(self, dim: int) -> int:
        """The size n with `dim` variables: dim itself for a vector, its square root for n x n variables."""
        return next(n for n in (dim, math.isqrt(dim)) if self.dim(n) == dim)

    def evaluation_point(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        if self.point is not None:
            return self.point(n, seed)
        rng = np.random.default_rng([seed, n, 99])
        # a generic point: x0 = 0 would hide terms (sigmoid(0) = 1/2, norms undefined)
        dim = self.dim(n)
        return rng.standard_normal(dim) / np.sqrt(dim), rng.standard_normal(dim)

    def data_bytes(self, n: int) -> int:
        """Bytes of float64 data an instance of size n holds: its n x n matrices and a few vectors."""
        if self.data_size is not None:
            return 8 * self.data_size(n)
        return 8 * (self.data_matrices * n * n + 4 * n)
