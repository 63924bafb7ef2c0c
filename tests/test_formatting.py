"""One formatter for times and ratios (bench.core.formatting): exact output, units at their
boundaries, missing values, and estimates from one pass, which have no interval."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.core.formatting import MISSING, ratio, ratio_interval, seconds, seconds_interval


@pytest.mark.parametrize("value, text", [
    (1.0, "1.00 s"), (9.994, "9.99 s"), (9.996, "10.0 s"), (99.96, "100 s"), (1234.5, "1234 s"),
    (0.999_6, "1.00 s"), (0.999_4, "999 ms"), (0.012_34, "12.3 ms"), (0.001, "1.00 ms"),
    (0.000_999_6, "1.00 ms"), (4.567e-5, "45.7 µs"), (1e-6, "1.00 µs"), (9.99e-7, "999 ns"),
    (3.2e-9, "3.20 ns"), (7e-10, "0.70 ns"), (0.0, "0 s"), (-0.002, "-2.00 ms"),
])
def test_seconds_in_the_largest_unit_that_keeps_them_at_least_one(value, text):
    assert seconds(value) == text


@pytest.mark.parametrize("value, text", [
    (1.0, "1.00×"), (1.0704, "1.07×"), (0.999, "1.00×"), (0.483, "0.48×"), (9.996, "10.0×"),
    (12.34, "12.3×"), (99.96, "100×"), (365.4, "365×"), (1234.0, "1234×"),
])
def test_ratios_two_decimals_below_ten_one_below_a_hundred_none_above(value, text):
    assert ratio(value) == text


def test_an_interval_has_the_estimates_unit_and_decimals():
    assert seconds_interval(0.005_77, 0.004_88, 0.006_82) == "5.77 ms [4.88, 6.82]"
    assert seconds_interval(0.008_24, 0.000_91, 0.0747) == "8.24 ms [0.91, 74.70]"
    assert seconds_interval(2.98, 2.91, 3.05) == "2.98 s [2.91, 3.05]"
    assert seconds_interval(0.0999, 0.095, 0.105) == "99.9 ms [95.0, 105.0]"
    assert ratio_interval(1.0704, 1.031, 1.1249) == "1.07× [1.03, 1.12]"
    assert ratio_interval(15.2, 13.07, 16.19) == "15.2× [13.1, 16.2]"
    assert ratio_interval(365.4, 321.2, 410.6) == "365× [321, 411]"
    assert ratio_interval(0.479, 0.406, 0.565) == "0.48× [0.41, 0.56]"


@pytest.mark.parametrize("lo, hi", [(math.nan, math.nan), (None, None), (math.inf, math.inf), (1.0, math.nan)])
def test_an_estimate_from_one_pass_says_it_has_no_interval(lo, hi):
    assert seconds_interval(1.5, lo, hi) == "1.50 s (one pass)"
    assert ratio_interval(3.0, lo, hi) == "3.00× (one pass)"


@pytest.mark.parametrize("missing", [None, math.nan, math.inf, -math.inf, np.nan, "1.5", True])
def test_a_missing_number_is_a_dash(missing):
    assert MISSING == "–"
    assert seconds(missing) == ratio(missing) == MISSING
    assert seconds_interval(missing, 1.0, 2.0) == ratio_interval(missing, 1.0, 2.0) == MISSING


def test_numpy_and_pandas_scalars_are_numbers_and_pandas_missing_values_are_missing():
    pd = pytest.importorskip("pandas")
    assert seconds(np.float64(0.002)) == "2.00 ms" and ratio(np.float32(1.5)) == "1.50×"
    assert ratio(np.int64(3)) == "3.00×"
    assert seconds(pd.NA) == ratio(pd.NaT) == MISSING
    assert ratio_interval(1.07, pd.NA, pd.NA) == "1.07× (one pass)"


def test_the_docstrings_examples_are_exact():
    import doctest

    import bench.core.formatting

    failed, tried = doctest.testmod(bench.core.formatting)
    assert tried >= 5 and failed == 0
