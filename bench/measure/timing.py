"""Measuring callables: warm-up, calibrated inner loops, raw samples, interleaved rounds.

Nothing here judges the numbers: noise flags and verdicts live in bench.analysis.summary and bench.analysis.compare.
"""
from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

Clock = Callable[[], float]


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
        from scipy import stats  # here, not at the top: every bench worker imports this module, and
        # scipy.stats took 1.3 s of each worker's start

        return float(stats.iqr(self.times))

    @property
    def spread(self) -> float:
        return self.iqr / self.median if self.median > 0 else math.inf

    @property
    def warmup_excess_s(self) -> float:
        """First call minus steady state: the compile/trace cost of frameworks without AOT."""
        return max(self.first_call_s - self.median, 0.0)


def sample(call: Callable[[], Any], sync: Callable[[Any], None], loops: int,
           clock: Clock = time.perf_counter) -> float:
    """Seconds per call over `loops` calls, garbage collection off.

    Every call's output is synchronised inside the timed region: JAX dispatch is asynchronous
    even on the CPU, and CUDA kernels run after their launch returns.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        for _ in range(loops):
            sync(call())
        return (clock() - start) / loops
    finally:
        if gc_was_enabled:
            gc.enable()


def sample_throughput(call: Callable[[], Any], sync: Callable[[Any], None], loops: int,
                      clock: Clock = time.perf_counter) -> float:
    """Seconds per call over `loops` back-to-back calls synchronised once, after the last.

    The device queues the calls and runs them in order, so this is throughput (what a training
    loop sees), where `sample` is latency (what one call costs a caller that waits for it).
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        out = None
        for _ in range(loops):
            out = call()
        sync(out)
        return (clock() - start) / loops
    finally:
        if gc_was_enabled:
            gc.enable()


def first_call(call: Callable[[], Any], sync: Callable[[Any], None],
               clock: Clock = time.perf_counter) -> tuple[Any, float]:
    """The output of one call and its time (compilation, caches): kept apart from the samples."""
    start = clock()
    out = call()
    sync(out)
    return out, clock() - start


def calibrate(call: Callable[[], Any], *, sync: Callable[[Any], None], min_sample_s: float,
              warmup_s: float = 0.05, clock: Clock = time.perf_counter) -> tuple[int, float]:
    """Calls per sample so that one sample lasts at least `min_sample_s`, and the seconds per call
    the last calibration sample took.

    One call that already lasts a sample is the whole calibration (it is the warm-up too). Else
    calls repeat for `warmup_s` untimed first (caches, thread pools, CPU clocks settle; another
    library's spinning threads go idle). Then inner loops double until one loop lasts
    min_sample_s / 4, and scale to min_sample_s, far above perf_counter's resolution (~100 ns).
    """
    per_call = sample(call, sync, 1, clock)
    if per_call >= min_sample_s:
        return 1, per_call
    warm_until = clock() + warmup_s
    while clock() < warm_until:
        sync(call())
    loops, per_call = 1, sample(call, sync, 1, clock)
    while per_call * loops < min_sample_s / 4:
        loops *= 2
        per_call = sample(call, sync, loops, clock)
    # (a hair under the ratio before ceil: 0.02 / 0.01 is 2.0000000000000004 in floats)
    return (max(1, math.ceil(min_sample_s / max(per_call, 1e-9) - 1e-9)) if per_call < min_sample_s else 1), per_call


def measure(
    call: Callable[[], Any],
    *,
    sync: Callable[[Any], None],
    samples: int = 5,
    min_sample_s: float = 0.02,
    first_call_s: float | None = None,
    warmup_s: float = 0.05,
    clock: Clock = time.perf_counter,
) -> Measurement:
    """Time one `call()` on its own: first call apart, warm-up, calibration, then `samples` samples.

    A sweep interleaves the variants of a cell instead (`rounds`); this is for one callable.
    """
    if first_call_s is None:
        first_call_s = first_call(call, sync, clock)[1]
    loops, _ = calibrate(call, sync=sync, min_sample_s=min_sample_s, warmup_s=warmup_s, clock=clock)
    times = tuple(sample(call, sync, loops, clock) for _ in range(samples))
    return Measurement(times=times, inner_loops=loops, first_call_s=first_call_s)


def rounds(count: int, rng: np.random.Generator, names: Sequence) -> Iterator[tuple[int, list]]:
    """(round, names in a fresh random order) for each round: every name is sampled once a round.

    Drift of the machine (clock frequency, neighbours, thread-pool states) then lands on every
    variant alike, and a ratio taken within one round pairs samples taken moments apart (Google
    Benchmark's random interleaving; asv's A B C ... A' B' C').
    """
    for r in range(count):
        yield r, [names[i] for i in rng.permutation(len(names))]
