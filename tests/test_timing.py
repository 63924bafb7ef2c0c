"""The timing engine on synthetic clocks: calibration, raw samples, compile kept apart, noise."""
from __future__ import annotations

import numpy as np
import pytest

from bench.analysis.summary import noise_flag
from bench.measure.timing import Measurement, measure, rounds


class FakeClock:
    """A clock that moves only when the timed call says so: deterministic on a busy machine."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def callable(self, *durations: float, then: float):
        queue = list(durations)

        def call():
            self.now += queue.pop(0) if queue else then

        return call


def test_inner_loops_reach_the_minimum_sample_time():
    clock = FakeClock()
    m = measure(clock.callable(then=0.0005), sync=lambda out: None, samples=5, min_sample_s=0.02, clock=clock)
    assert len(m.times) == 5
    assert m.inner_loops == 40  # 0.02 s / 0.5 ms
    assert m.times == pytest.approx((0.0005,) * 5)


def test_slow_calls_take_one_call_per_sample():
    clock = FakeClock()
    m = measure(clock.callable(then=0.03), sync=lambda out: None, samples=3, min_sample_s=0.02, clock=clock)
    assert m.inner_loops == 1 and m.times == pytest.approx((0.03,) * 3)


def test_tiny_calls_loop_far_above_the_clock_resolution():
    clock = FakeClock()
    m = measure(clock.callable(then=1e-7), sync=lambda out: None, samples=5, min_sample_s=0.01, clock=clock)
    assert m.inner_loops == 100_000 and m.inner_loops * m.median >= 0.01


def test_sync_runs_inside_the_timed_region_for_every_call():
    clock = FakeClock()
    calls = []

    def sync(out):  # a device that finishes only when synchronised
        calls.append(out)
        clock.now += 0.001

    m = measure(lambda: None, sync=sync, samples=4, min_sample_s=0.01, clock=clock)
    assert m.median == pytest.approx(0.001)
    assert len(calls) >= 4 * m.inner_loops


def test_first_call_is_kept_out_of_the_samples():
    clock = FakeClock()
    m = measure(clock.callable(0.2, then=0.001), sync=lambda out: None, samples=5, min_sample_s=0.001,
                clock=clock)
    assert m.first_call_s == pytest.approx(0.2)
    assert max(m.times) == pytest.approx(0.001)
    assert m.warmup_excess_s == pytest.approx(0.199)


def test_warm_up_runs_untimed_until_its_time_is_spent():
    clock = FakeClock()
    calls = []
    call = clock.callable(then=0.01)
    m = measure(lambda: calls.append(call()), sync=lambda out: None, samples=3, min_sample_s=0.02,
                warmup_s=0.095, clock=clock)
    # first call, the probe, ~0.1 s of warm-up, one calibration sample, 3 samples of 2 calls
    assert len(calls) == 1 + 1 + 10 + 1 + 3 * 2
    assert m.inner_loops == 2 and m.times == pytest.approx((0.01,) * 3)


def test_a_call_that_lasts_a_sample_is_its_own_calibration():
    clock = FakeClock()
    calls = []
    call = clock.callable(then=0.03)
    m = measure(lambda: calls.append(call()), sync=lambda out: None, samples=3, min_sample_s=0.02,
                warmup_s=1.0, clock=clock)
    assert len(calls) == 1 + 1 + 3  # first call, the probe (no warm-up loop: it would be one more call), samples
    assert m.inner_loops == 1


def test_first_call_time_from_the_caller_is_kept():
    clock = FakeClock()
    m = measure(clock.callable(then=0.01), sync=lambda out: None, samples=3, first_call_s=1.5, clock=clock)
    assert m.first_call_s == 1.5


def test_statistics_and_noise_flag():
    m = Measurement(times=(1.0, 1.0, 1.2, 1.0, 1.0), inner_loops=1, first_call_s=1.0)
    assert m.median == 1.0 and m.iqr == 0.0
    wide = Measurement(times=(1.0, 1.5, 2.0, 2.5, 3.0), inner_loops=1, first_call_s=1.0)
    assert wide.iqr == pytest.approx(1.0) and wide.spread == pytest.approx(0.5)
    # the report's flag is the half-width of a 95% interval over passes (bench.analysis.summary)
    assert noise_flag(0.03) == "ok" and noise_flag(0.07) == "warn" and noise_flag(0.2) == "noisy"
    assert noise_flag(float("inf")) == "one pass"


def test_rounds_take_every_variant_once_in_a_fresh_seeded_order():
    names = ["a", "b", "c", "d"]
    orders = [order for _, order in rounds(30, np.random.default_rng(7), names)]
    assert all(sorted(order) == names for order in orders)
    assert len({tuple(o) for o in orders}) > 10  # fresh each round, not one fixed rotation
    assert {o[0] for o in orders} == set(names)  # no variant always goes first
    again = [order for _, order in rounds(30, np.random.default_rng(7), names)]
    assert again == orders  # seeded: the same order on a rerun


def test_noisy_samples_are_flagged():
    clock = FakeClock()
    durations = [0.01] * 2 + [0.01, 0.02, 0.01, 0.03, 0.01]  # first call, calibration, 5 samples
    m = measure(clock.callable(*durations, then=0.01), sync=lambda out: None, samples=5,
                min_sample_s=0.005, warmup_s=0.0, clock=clock)
    assert m.inner_loops == 1 and m.spread > 0.25
