"""numpy: the classic baseline, analytic derivatives only."""
from __future__ import annotations

import numpy as np

from ._protocol import Backend, analytic_functions, eager_step, no_compile


def setup(threads: int, device: str = "cpu") -> dict:
    return {"numpy": np.__version__}


def _value_and_grad(problem, mode):
    if problem.value_and_grad is None:  # no gradient (vector-valued f, k-th derivatives)
        return {}
    return {"eager": problem.value_and_grad}


backend = Backend(
    name="numpy",
    modes=("analytic",),
    available=lambda: (True, ""),
    setup=setup,
    devices=lambda: ["cpu"],
    asarray=lambda a, device: np.array(a, dtype=np.float64, copy=True),
    to_numpy=np.asarray,
    to_float=float,
    sync=lambda out: None,
    functions=lambda problem, mode: analytic_functions(problem),
    value_and_grad=_value_and_grad,
    solvers=lambda problem, mode: {},
    compile=no_compile,
    step=eager_step,
    checked_by="autograd",
    colour="tab:gray",
    packages=("numpy",),
)
