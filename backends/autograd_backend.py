"""HIPS autograd: reverse-mode autodiff of numpy code.

Its analytic mode is the problems' formulas on numpy arrays, as the numpy backend runs them, but
in this worker: each autodiff sample is paired with an analytic sample of the same round.
"""
from __future__ import annotations

import numpy as np

from ._protocol import Backend, analytic_functions, eager_step, has_module, nested_order_check, no_compile


def setup(threads: int) -> dict:
    import importlib.metadata

    return {"autograd": importlib.metadata.version("autograd"), "numpy": np.__version__}


# Measured here (tanh, one call): k nested elementwise grads took 0.2 s at k = 8, 3.9 s at k = 10
# and 56 s at k = 12 (~4x per order).
NESTED_LIMITS = {"nested-grad": (9, "3.9 s per call at k=10, 56 s at k=12")}


def _functions(problem, mode):
    if mode == "analytic":
        return analytic_functions(problem)
    import autograd

    f = problem.f
    builders = {
        "f": lambda: {},
        "grad": lambda: {"grad": autograd.grad(f)},
        "hess": lambda: {"hessian": autograd.hessian(f)},
        "hvp": lambda: {"rev-rev": _hvp(f)},
        "jac": lambda: {"jacobian": autograd.jacobian(f)},  # reverse mode, one pass per output
        "dk": lambda: {"nested-grad": _nested_grad(problem)},
    }
    return {d: fns for d in problem.derivatives if (fns := builders[d]())}


def _hvp(f):
    import autograd

    hvp = autograd.hessian_vector_product(f)  # reverse-over-reverse: grad of <grad f, v>
    return lambda x, v, data: hvp(x, data, v)


def _nested_grad(problem):
    import autograd

    def nested_grad(x, data):
        k = problem.order(data)
        nested_order_check("autograd", "nested-grad", k, NESTED_LIMITS)
        g = problem.f
        for _ in range(k):
            g = autograd.elementwise_grad(g)
        return g(x, data)

    return nested_grad


def _value_and_grad(problem, mode):
    if problem.value_and_grad is None:  # no gradient (vector-valued f, k-th derivatives)
        return {}
    if mode == "analytic":
        return {"eager": problem.value_and_grad}
    import autograd

    return {"value_and_grad": autograd.value_and_grad(problem.f)}


backend = Backend(
    name="autograd",
    modes=("analytic", "autodiff"),
    available=lambda: has_module("autograd"),
    setup=setup,
    devices=lambda: ["cpu"],
    asarray=lambda a, device: np.array(a, dtype=np.float64, copy=True),
    to_numpy=np.asarray,
    to_float=float,
    sync=lambda out: None,
    functions=_functions,
    value_and_grad=_value_and_grad,
    solvers=lambda problem, mode: {},
    compile=no_compile,
    step=eager_step,
)
