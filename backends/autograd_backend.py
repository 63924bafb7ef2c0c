"""HIPS autograd: reverse-mode autodiff of numpy code (its analytic twin is the numpy backend)."""
from __future__ import annotations

import numpy as np

from ._protocol import Backend, eager_step, has_module, no_compile


def setup(threads: int) -> dict:
    import importlib.metadata

    return {"autograd": importlib.metadata.version("autograd"), "numpy": np.__version__}


def _functions(problem, mode):
    import autograd

    hvp = autograd.hessian_vector_product(problem.f)  # reverse-over-reverse: grad of <grad f, v>
    return {
        "grad": {"grad": autograd.grad(problem.f)},
        "hess": {"hessian": autograd.hessian(problem.f)},
        "hvp": {"rev-rev": lambda x, v, data: hvp(x, data, v)},
    }


def _value_and_grad(problem, mode):
    import autograd

    return {"value_and_grad": autograd.value_and_grad(problem.f)}


backend = Backend(
    name="autograd",
    modes=("autodiff",),
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
