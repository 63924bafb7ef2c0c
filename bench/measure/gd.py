"""Gradient descent to f(x_k) - f* <= eps: the seed's headline task, one loop for every backend."""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from backends._protocol import DIVERGENCE_FACTOR
from backends._protocol import SOLVE_STATUSES as STATUS_CODES  # noqa: F401 (re-exported: bench.measure.solve)


def descend(
    step: Callable[[Any], tuple[Any, Any]],
    x0: Any,
    *,
    to_float: Callable[[Any], float],
    f_star: float,
    eps: float,
    max_iter: int,
    max_time_s: float = math.inf,
) -> tuple[int, float, str]:
    """Run x_{k+1} = x_k - step_size * grad f(x_k) until f(x_k) - f* <= eps.

    `step(x)` returns (f(x), x - step_size * grad f(x)) in one call, as a hand-written loop
    computes both from one residual. Reading f on the host each iteration is part of the task:
    the stopping rule needs it. Returns (iterations taken, f at the last iterate, status).
    """
    deadline = time.perf_counter() + max_time_s
    x, k, gap0 = x0, 0, None
    while True:
        value, x_next = step(x)
        f = to_float(value)
        gap = f - f_star
        gap0 = gap if gap0 is None else gap0
        if gap <= eps:
            return k, f, "ok"
        if not math.isfinite(gap):
            return k, f, "nan"
        if gap > DIVERGENCE_FACTOR * (1.0 + abs(gap0)):
            return k, f, "diverged"
        if k >= max_iter:
            return k, f, "not_converged"
        if time.perf_counter() > deadline:
            return k, f, "timeout"
        x, k = x_next, k + 1
