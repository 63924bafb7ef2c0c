"""The drift monitor: a fixed reference workload, timed in every worker before each cell.

Its time moves only with the machine (clock frequency, neighbours on the host, throttling), never
with the code under test, so a run can say how much the machine's speed varied while it ran, and
`compare --normalise` can set two runs' absolute times in units of it.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

REPEATS = 5  # median of five short timings of each part: ~5 ms in all here
_MATRIX = np.random.default_rng(12345).standard_normal((96, 96))


def _numpy_part() -> None:
    # A small matrix product: the CPU's arithmetic and its cache, on one thread (too small for
    # OpenBLAS to start its pool).
    a = _MATRIX
    for _ in range(8):
        a = np.tanh(a @ _MATRIX)


def _python_part() -> None:
    # The interpreter: what dispatch-bound small calls pay.
    total = 0
    for i in range(10_000):
        total += i * i % 7


def reference_times() -> dict[str, float]:
    """Seconds of one numpy part and one pure-Python part (medians of REPEATS timings each)."""
    out = {}
    for name, part in (("ref_numpy_s", _numpy_part), ("ref_python_s", _python_part)):
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            part()
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def variation(values) -> float:
    """How much the reference time moved: 95th over 5th percentile, minus one (0.1 = 10%)."""
    values = np.asarray([v for v in values if v == v and v > 0], dtype=float)
    if values.size < 2:
        return float("nan")
    low, high = np.percentile(values, [5, 95])
    return float(high / low - 1.0)
