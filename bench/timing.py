"""Measuring one callable: warm-up, calibrated inner loops, raw samples. Nothing else."""
from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import stats

WARN_SPREAD = 0.10  # IQR / median above this: "warn"
NOISY_SPREAD = 0.25  # ... above this: "noisy"


@dataclass(frozen=True)
class Measurement:
    """Raw per-call times (seconds), one per sample of `inner_loops` calls each."""

    times: tuple[float, ...]
    inner_loops: int
    first_call_s: float

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def iqr(self) -> float:
        return float(stats.iqr(self.times))

    @property
    def spread(self) -> float:
        return self.iqr / self.median if self.median > 0 else math.inf

    @property
    def noise(self) -> str:
        return noise_flag(self.spread)

    @property
    def warmup_excess_s(self) -> float:
        """First call minus steady state: the compile/trace cost of frameworks without AOT."""
        return max(self.first_call_s - self.median, 0.0)


def noise_flag(spread: float) -> str:
    if spread > NOISY_SPREAD:
        return "noisy"
    return "warn" if spread > WARN_SPREAD else "ok"


def _sample(call: Callable[[], Any], sync: Callable[[Any], None], loops: int,
            clock: Callable[[], float]) -> float:
    # Every call's output is synchronised inside the timed region: JAX dispatch is asynchronous
    # even on the CPU, and CUDA kernels run after their launch returns.
    start = clock()
    for _ in range(loops):
        sync(call())
    return (clock() - start) / loops


def measure(
    call: Callable[[], Any],
    *,
    sync: Callable[[Any], None],
    samples: int = 5,
    min_sample_s: float = 0.02,
    first_call_s: float | None = None,
    warmup_s: float = 0.05,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Time `call()` per call.

    The first call (compilation, caches) is timed apart, unless the caller already made it and
    passes its time as `first_call_s`. Then calls repeat for `warmup_s` untimed (caches, thread
    pools, CPU clocks settle; another library's spinning threads go idle). Inner loops double until one loop lasts min_sample_s / 4,
    then scale to min_sample_s, far above perf_counter's resolution (~100 ns). Garbage
    collection is off while samples are taken.
    """
    if first_call_s is None:
        first_call_s = _sample(call, sync, 1, clock)
    warm_until = clock() + warmup_s
    while clock() < warm_until:
        sync(call())
    loops, per_call = 1, _sample(call, sync, 1, clock)
    while per_call * loops < min_sample_s / 4:
        loops *= 2
        per_call = _sample(call, sync, loops, clock)
    loops = max(1, math.ceil(min_sample_s / max(per_call, 1e-9)) if per_call < min_sample_s else 1)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        times = tuple(_sample(call, sync, loops, clock) for _ in range(samples))
    finally:
        if gc_was_enabled:
            gc.enable()
    return Measurement(times=times, inner_loops=loops, first_call_s=first_call_s)
