"""The timing engine on synthetic callables: calibration, raw samples, compile kept apart, noise."""
from __future__ import annotations

import time

import pytest

from bench.timing import Measurement, measure, noise_flag


def busy(seconds):
    def call():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    return call


def test_inner_loops_reach_the_minimum_sample_time():
    m = measure(busy(0.0005), sync=lambda out: None, samples=5, min_sample_s=0.02)
    assert len(m.times) == 5
    assert 30 <= m.inner_loops <= 60  # 0.02 s / 0.5 ms = 40 calls per sample
    assert all(t * m.inner_loops >= 0.015 for t in m.times)
    assert 0.0005 <= m.median < 0.0008


def test_slow_calls_take_one_call_per_sample():
    m = measure(busy(0.03), sync=lambda out: None, samples=3, min_sample_s=0.02)
    assert m.inner_loops == 1 and len(m.times) == 3


def test_sync_runs_inside_the_timed_region_for_every_call():
    synced = []
    m = measure(lambda: 1, sync=synced.append, samples=4, min_sample_s=0.001)
    calls_in_samples = 4 * m.inner_loops
    assert len(synced) >= calls_in_samples


def test_first_call_is_kept_out_of_the_samples():
    state = {"first": True}

    def call():
        if state["first"]:
            state["first"] = False
            time.sleep(0.2)  # a "compile"

    m = measure(call, sync=lambda out: None, samples=5, min_sample_s=0.001)
    assert m.first_call_s >= 0.2
    assert max(m.times) < 0.01
    assert m.warmup_excess_s == pytest.approx(m.first_call_s - m.median)


def test_statistics_and_noise_flag():
    m = Measurement(times=(1.0, 1.0, 1.2, 1.0, 1.0), inner_loops=1, first_call_s=1.0)
    assert m.median == 1.0 and m.iqr == 0.0 and m.noise == "ok"
    wide = Measurement(times=(1.0, 1.5, 2.0, 2.5, 3.0), inner_loops=1, first_call_s=1.0)
    assert wide.iqr == pytest.approx(1.0) and wide.spread == pytest.approx(0.5) and wide.noise == "noisy"
    assert noise_flag(0.05) == "ok" and noise_flag(0.15) == "warn" and noise_flag(0.3) == "noisy"
