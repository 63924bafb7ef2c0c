"""HIPS autograd: reverse-mode autodiff of numpy code.

Its analytic mode is the problems' formulas on numpy arrays, as the numpy backend runs them, but
in this worker: each autodiff sample is paired with an analytic sample of the same round.
"""
from __future__ import annotations

import numpy as np

from ._protocol import (
    LACKING,
    Backend,
    analytic_functions,
    eager_step,
    has_module,
    lacking,
    nested_order_check,
    no_compile,
)


def setup(threads: int, device: str = "cpu") -> dict:
    import importlib.metadata

    _dtype_preserving_vjps()
    return {"autograd": importlib.metadata.version("autograd"), "numpy": np.__version__}


_PATCHED = []


def _dtype_preserving_vjps() -> None:
    """autograd's own VJPs of where and of max/min make float64 of float32 cotangents (autograd 1.x:
    where's pads with `zeros(g.shape)`, float64; max's divides by an integer count of the maxima, which
    numpy 2 promotes to float64): a float32 gradient or Hessian of lse, logsumexp, kmeans or logcosh_sep
    came out float64, computed in float64. These are the same VJPs in the cotangent's dtype, the
    zeros and the count made in it: float64's values are unchanged (an integer count is exact in
    float64 either way). Once per process, before the first autodiff function is made."""
    if _PATCHED:
        return
    import autograd.numpy as anp
    from autograd.extend import defvjp
    from autograd.numpy.numpy_vjps import repeat_to_match_shape

    def chooser(ans, x, axis=None, keepdims=None, **kwargs):
        shape, dtype = anp.shape(x), anp.result_type(x)

        def vjp(g):
            g_repeated, _ = repeat_to_match_shape(g, shape, dtype, axis, keepdims)
            chosen = x == repeat_to_match_shape(ans, shape, dtype, axis, keepdims)[0]
            return g_repeated * chosen / np.sum(chosen, axis=axis, keepdims=True).astype(dtype)

        return vjp

    for fn in (anp.max, anp.min, anp.amax, anp.amin):
        defvjp(fn, chooser)
    where = getattr(anp, "_original_where", anp.where)  # the primitive: anp.where wraps it for Python types
    defvjp(where, None,
           lambda ans, c, x=None, y=None: lambda g: where(c, g, anp.zeros(g.shape, dtype=g.dtype)),
           lambda ans, c, x=None, y=None: lambda g: where(c, anp.zeros(g.shape, dtype=g.dtype), g))
    _PATCHED.append(True)


# Measured here (tanh, one call): k nested elementwise grads took 0.2 s at k = 8, 3.9 s at k = 10
# and 56 s at k = 12 (~4x per order).
NESTED_LIMITS = {"nested-grad": (9, "3.9 s per call at k=10, 56 s at k=12")}


def _functions(problem, mode):
    if mode == "analytic":
        return analytic_functions(problem)
    _dtype_preserving_vjps()
    return {d: _AUTODIFF[d](problem) for d in problem.derivatives if d in _AUTODIFF}


def _grad(problem):
    import autograd

    return {"grad": autograd.grad(problem.f)}


def _hess(problem):
    import autograd

    return {"hessian": autograd.hessian(problem.f)}


def _hvp(problem):
    import autograd

    hvp = autograd.hessian_vector_product(problem.f)  # reverse-over-reverse: grad of <grad f, v>
    return {"rev-rev": lambda x, v, data: hvp(x, data, v)}


def _jac(problem):
    import autograd

    return {"jacobian": autograd.jacobian(problem.f)}  # reverse mode, one pass per output


def _dk(problem):
    import autograd

    def nested_grad(x, data):
        k = problem.order(data)
        nested_order_check("autograd", "nested-grad", k, NESTED_LIMITS)
        g = problem.f
        for _ in range(k):
            g = autograd.elementwise_grad(g)
        return g(x, data)

    return {"nested-grad": nested_grad}


def _newton(problem):
    """grad / (H 1): one forward and reverse pass for the gradient, then its VJP with ones."""
    from autograd.differential_operators import make_hvp

    def rev_rev(x, data):
        hvp, g = make_hvp(lambda y: problem.f(y, data))(x)
        return g / hvp(np.ones_like(x))

    return {"rev-rev": rev_rev}


_AUTODIFF = {"grad": _grad, "hvp": _hvp, "hess": _hess, "jac": _jac, "dk": _dk, "newton": _newton,
             "sparse_hess": lambda problem: lacking(
                 "autograd has no sparse autodiff: it detects no sparsity pattern and colours none (its dense "
                 "Hessian is the `hess` cell)")}


def _value_and_grad(problem, mode):
    if problem.value_and_grad is None:  # no gradient (vector-valued f, k-th derivatives)
        return {}
    if mode == "analytic":
        return {"eager": problem.value_and_grad}
    import autograd

    _dtype_preserving_vjps()
    return {"value_and_grad": autograd.value_and_grad(problem.f)}


backend = Backend(
    name="autograd",
    modes=("analytic", "autodiff"),
    available=lambda: has_module("autograd"),
    setup=setup,
    devices=lambda: ["cpu"],
    # the instance's own arrays, shared read-only as torch shares them (the formulas write nothing):
    # a copy of A at n = 10^4 cost 0.2 s, and 1.2 s where its 0.75 GiB were new pages to the process;
    # in their own dtype (float32 stays float32), as every backend's asarray
    asarray=lambda a, device: np.asarray(a),
    to_numpy=np.asarray,
    to_float=float,
    sync=lambda out: None,
    functions=_functions,
    value_and_grad=_value_and_grad,
    solvers=lambda problem, mode: {},
    compile=no_compile,
    step=eager_step,
    pairs=dict.fromkeys(("grad", "hessian", "rev-rev", "jacobian", "nested-grad", "value_and_grad", LACKING), "eager"),
    kinds=tuple(_AUTODIFF),
    data_copies=1,  # shares the instance's arrays
    colour="tab:green",
    packages=("autograd", "numpy"),
    imports=("autograd",),
)
