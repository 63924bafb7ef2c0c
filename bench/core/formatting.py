"""How a time or a ratio is printed, everywhere: the report's tables, its findings and the notebook.

One digit rule for both: two decimals below 10, one below 100, none from there on (never an
exponent); a time in the largest unit that keeps it at least 1, so that it has three significant
digits; an interval's bounds in the estimate's unit and with the estimate's decimals, so that the
three numbers line up: "5.77 ms [4.88, 6.82]", "1.07× [1.03, 1.12]", "43.0× [38.6, 47.8]". A missing
number (None, NaN, infinite, or no real number at all) prints as "–"; an estimate without bounds (a
variant timed in one pass) says so: "1.07× (one pass)".

Plain floats in, strings out: no pandas here (bench.core is imported by the workers).
"""
from __future__ import annotations

import math
import numbers

MISSING = "–"
ONE_PASS = "(one pass)"  # an estimate whose interval is missing: its variant was timed in one pass
UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))


def number(value) -> float | None:
    """`value` as a finite float, or None where it is missing (None, NaN, infinite, or not a real number)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def decimals(value: float) -> int:
    """The decimals `value` is printed with: two below 10, one below 100, none from there on (as rounded).

    >>> [decimals(v) for v in (0.48, 1.07, 9.996, 12.3, 99.96, 365.0, 0.0)]
    [2, 2, 1, 1, 0, 0, 2]
    """
    if round(abs(value), 2) < 10:
        return 2
    return 1 if round(abs(value), 1) < 100 else 0


def _unit(value: float) -> tuple[str, float]:
    """The largest unit in which `value` (seconds) is at least 1 (ns below 1 ns); one unit up where it
    would print as 1000 (999.96 ms is "1.00 s")."""
    i = next((i for i, (_, scale) in enumerate(UNITS) if abs(value) >= scale), len(UNITS) - 1)
    scaled = abs(value) / UNITS[i][1]
    if i > 0 and round(scaled, decimals(scaled)) >= 1000:
        i -= 1
    return UNITS[i]


def seconds(value) -> str:
    """A time in the largest unit that keeps it at least 1 (so to three significant digits).

    >>> [seconds(v) for v in (1.234, 0.999_96, 0.0123, 4.56e-5, 7e-10, 1234.0, 0.0, None, float("nan"))]
    ['1.23 s', '1.00 s', '12.3 ms', '45.6 µs', '0.70 ns', '1234 s', '0 s', '–', '–']
    """
    value = number(value)
    if value is None:
        return MISSING
    if value == 0:
        return "0 s"
    unit, scale = _unit(value)
    scaled = value / scale
    return f"{scaled:.{decimals(scaled)}f} {unit}"


def ratio(value) -> str:
    """A ratio with its sign ×: two decimals below 10, one below 100, none from there on.

    >>> [ratio(v) for v in (1.0, 1.0704, 0.999, 0.483, 12.34, 365.4, 1234.0, None)]
    ['1.00×', '1.07×', '1.00×', '0.48×', '12.3×', '365×', '1234×', '–']
    """
    value = number(value)
    return MISSING if value is None else f"{value:.{decimals(value)}f}×"


def _bounds(lo, hi, scale: float, places: int) -> str | None:
    lo, hi = number(lo), number(hi)
    if lo is None or hi is None:
        return None
    return f"[{lo / scale:.{places}f}, {hi / scale:.{places}f}]"


def seconds_interval(estimate, lo, hi) -> str:
    """A time and its 95% interval, the bounds in the estimate's unit and with its decimals.

    >>> seconds_interval(0.005_77, 0.004_88, 0.006_82)
    '5.77 ms [4.88, 6.82]'
    >>> seconds_interval(0.008_24, 0.000_91, 0.0747)
    '8.24 ms [0.91, 74.70]'
    >>> seconds_interval(1.5, None, None), seconds_interval(None, 1.0, 2.0)
    ('1.50 s (one pass)', '–')
    """
    value = number(estimate)
    if value is None:
        return MISSING
    if value == 0:
        return seconds(value)
    unit, scale = _unit(value)
    bounds = _bounds(lo, hi, scale, decimals(value / scale))
    return f"{seconds(value)} {bounds or ONE_PASS}"


def ratio_interval(estimate, lo, hi) -> str:
    """A ratio and its 95% interval, the bounds with the estimate's decimals.

    >>> ratio_interval(1.0704, 1.031, 1.1249)
    '1.07× [1.03, 1.12]'
    >>> ratio_interval(15.2, 13.07, 16.19)
    '15.2× [13.1, 16.2]'
    >>> ratio_interval(3.0, float("nan"), float("nan")), ratio_interval(float("nan"), 1.0, 2.0)
    ('3.00× (one pass)', '–')
    """
    value = number(estimate)
    if value is None:
        return MISSING
    bounds = _bounds(lo, hi, 1.0, decimals(value))
    return f"{ratio(value)} {bounds or ONE_PASS}"
