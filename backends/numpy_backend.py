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
    # the instance's own arrays, shared read-only as torch shares them (the formulas write nothing):
    # a copy of A at n = 10^4 cost 0.2 s, and 1.2 s where its 0.75 GiB were new pages to the process;
    # in their own dtype (float32 stays float32), as every backend's asarray
    asarray=lambda a, device: np.asarray(a),
    to_numpy=np.asarray,
    to_float=float,
    sync=lambda out: None,
    functions=lambda problem, mode: analytic_functions(problem),
    value_and_grad=_value_and_grad,
    solvers=lambda problem, mode: {},
    compile=no_compile,
    step=eager_step,
    checked_by="autograd",
    data_copies=1,  # shares the instance's arrays
    colour="tab:gray",
    packages=("numpy",),
)
