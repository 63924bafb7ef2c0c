"""Intervals that know the levels of the experiment: rounds within a pass, passes over the sweep.

A cell's variants are sampled in interleaved rounds; its rounds are spread over passes of the
sweep, minutes apart (bench.sweep.runner). On this machine the passes carry most of the variance: in two
back-to-back quick runs (4 passes x 6 rounds), the median cell's paired ratio moved by 1.7% (SD)
from one pass's median to the next, while a pass median's own standard error from its rounds was
0.9%. So each pass gives one estimate, the median of its rounds in log scale, and the interval is
the t-interval over the passes' estimates with P - 1 degrees of freedom: the top level of Kalibera
and Jones, "Rigorous benchmarking in reasonable time" (ISMM 2013, section 5). The rounds enter
through their pass's median. Measured: that interval, combined for two runs as `change` does,
held the run-to-run change of 93-96% of the ratio cells at n >= 100 (4 passes), where an interval
over all rounds as if they were independent held far fewer. One pass gives no interval.

Everything is in log scale: a ratio and a time are positive, their noise multiplicative, and an
interval [est / q, est * q] is the same for a ratio and its inverse. `half_width` is q - 1.

This module imports numpy only (scipy's t quantiles are imported where an interval is computed),
so that a worker can apply the within-pass rule without paying for scipy.stats.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # every interval nablabench prints is a 95% interval


@dataclass(frozen=True)
class Interval:
    """An estimate and its interval (level LEVEL), from `passes` passes and `samples` samples in all."""

    estimate: float
    lo: float
    hi: float
    passes: int
    samples: int

    @property
    def half_width(self) -> float:
        """The interval's relative half-width, sqrt(hi / lo) - 1 (0.03: +-3%); inf with no interval."""
        if not (self.lo > 0 and math.isfinite(self.hi)):
            return math.inf
        return math.sqrt(self.hi / self.lo) - 1.0


def pass_estimates(values, parts) -> np.ndarray:
    """Each pass's estimate: the median of its samples' logs (one value per pass, in pass order)."""
    logs, parts = np.log(np.asarray(values, dtype=float)), np.asarray(parts)
    return np.array([np.median(logs[parts == p]) for p in np.unique(parts)])


@functools.lru_cache(maxsize=4096)
def t_quantile(df: float, level: float = LEVEL) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def _t_half(pass_variance: float, passes: int, run_sd: float, level: float, run_df: float = math.inf,
            rerun: bool = False) -> float:
    """t * sqrt(s^2 / P + run_sd^2), the degrees of freedom Satterthwaite's: the run-level variance is
    a measured constant of the machine class, known to `run_df` degrees of freedom (its uncertainty;
    inf: as if known). `rerun`: the interval in which a rerun's estimate lands, twice the variance
    (this run's and the rerun's, each of its passes and its run)."""
    within = pass_variance / passes
    runs = run_sd ** 2
    total = within + runs
    if total == 0:
        return 0.0
    spent = (within ** 2 / (passes - 1) if within else 0.0) + (runs ** 2 / run_df if runs and math.isfinite(run_df)
                                                               else 0.0)
    df = math.inf if spent == 0 else total ** 2 / spent
    return t_quantile(min(df, 1e6), level) * math.sqrt((2 if rerun else 1) * total)


def from_pass_estimates(estimates: np.ndarray, samples: int, level: float = LEVEL, run_sd: float = 0.0,
                        run_df: float = math.inf, rerun: bool = False) -> Interval:
    """The t-interval over per-pass log estimates (mean +- t s / sqrt(P)), back in linear scale.

    run_sd: the spread (log scale) a whole run adds on this machine class, which no pass within one
    run can see (bench.reproduce measures it from back-to-back runs), known to run_df degrees of
    freedom. With `rerun`, the interval holds a rerun's estimate (both runs' passes and run-level
    spreads), not only this run's own value. 0 and no rerun: the passes alone."""
    passes = len(estimates)
    if passes == 0:
        return Interval(math.nan, math.nan, math.nan, 0, samples)
    centre = float(np.mean(estimates))
    if passes == 1:
        return Interval(math.exp(centre), math.nan, math.nan, 1, samples)
    half = _t_half(float(np.var(estimates, ddof=1)), passes, run_sd, level, run_df, rerun)
    return Interval(math.exp(centre), math.exp(centre - half), _exp(centre + half), passes, samples)


def _exp(log_value: float) -> float:
    """exp, inf past a float's range (a spread known to a fraction of a degree of freedom gives t in the
    thousands)."""
    return math.exp(log_value) if log_value < 709.0 else math.inf


def interval(values, parts, level: float = LEVEL, run_sd: float = 0.0, run_df: float = math.inf,
             rerun: bool = False) -> Interval:
    """The estimate and interval of positive samples (times or paired ratios) taken in passes `parts`."""
    values = np.asarray(values, dtype=float)
    return from_pass_estimates(pass_estimates(values, parts), len(values), level, run_sd, run_df, rerun)


@dataclass(frozen=True)
class Change:
    """NEW / BASE for one cell: the estimate, its interval, and the p-value of 'no change'."""

    estimate: float
    lo: float
    hi: float
    p_value: float  # two-sided, Welch's t on the two runs' pass estimates
    df: float
    se: float  # of the log change


def change(base: np.ndarray, new: np.ndarray, level: float = LEVEL, run_sd: float = 0.0,
           run_df: float = math.inf) -> Change:
    """The change between two runs' per-pass log estimates: Welch's t, as the two runs' intervals
    imply it (each run's interval is its own t-interval over its passes, widened by the machine
    class's run-level spread `run_sd`, once for each run, known to `run_df` degrees of freedom). A run
    with one pass gives no interval
    (nan), and a p-value of 1."""
    from scipy.stats import t

    centre = float(np.mean(new) - np.mean(base))
    if len(base) < 2 or len(new) < 2:
        return Change(math.exp(centre), math.nan, math.nan, 1.0, math.nan, math.nan)
    vb, vn = np.var(base, ddof=1) / len(base), np.var(new, ddof=1) / len(new)
    runs = 2 * run_sd ** 2
    se = math.sqrt(vb + vn + runs)
    if se == 0:  # identical passes on both sides: the change is known exactly
        return Change(math.exp(centre), math.exp(centre), math.exp(centre), 1.0 if centre == 0 else 0.0, math.inf, 0.0)
    within = vb ** 2 / (len(base) - 1) + vn ** 2 / (len(new) - 1)
    if runs and math.isfinite(run_df):
        within += runs ** 2 / run_df
    df = min((vb + vn + runs) ** 2 / within, 1e6) if within > 0 else 1e6
    half = float(t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * t.sf(abs(centre) / se, df))
    return Change(math.exp(centre), math.exp(centre - half), math.exp(centre + half), p, df, se)


def paired_change(log_ratios: np.ndarray, level: float = LEVEL) -> Change:
    """NEW / BASE from per-pass paired log ratios (an A/B run: each pass times both sides of a cell one
    after the other): the t-interval over the passes and the p-value of 'no change'. The pairing
    takes out what the machine does between passes; what is left is the two sides' difference and the
    spread within a pass. One pass gives no interval (nan) and a p-value of 1."""
    from scipy.stats import t

    d = np.asarray(log_ratios, dtype=float)
    centre = float(np.mean(d)) if len(d) else math.nan
    if len(d) < 2:
        return Change(math.exp(centre), math.nan, math.nan, 1.0, math.nan, math.nan)
    se = float(np.std(d, ddof=1) / math.sqrt(len(d)))
    if se == 0:
        return Change(math.exp(centre), math.exp(centre), math.exp(centre), 1.0 if centre == 0 else 0.0,
                      len(d) - 1, 0.0)
    half = t_quantile(len(d) - 1, level) * se
    p = float(2 * t.sf(abs(centre) / se, len(d) - 1))
    return Change(math.exp(centre), math.exp(centre - half), math.exp(centre + half), p, len(d) - 1, se)


def passes_to_settle(base: np.ndarray, new: np.ndarray, margin: float, level: float = LEVEL,
                     run_sd: float = 0.0) -> float:
    """About how many passes a side would bring the change's interval within `margin` (log scale)
    of the estimate, at the spread observed: the smallest P with t(2P - 2) sqrt(2 s^2 / P +
    2 run_sd^2) <= margin; inf where the run-level spread alone is wider (more runs, not passes)."""
    spread = [np.var(v, ddof=1) for v in (base, new) if len(v) >= 2]
    if margin <= 0 or not spread:
        return math.inf
    s2 = float(np.mean(spread))
    for p in range(2, 1001):
        if t_quantile(2 * p - 2, level) * math.sqrt(2 * s2 / p + 2 * run_sd ** 2) <= margin:
            return float(p)
    return math.inf


def benjamini_hochberg(p_values, q: float) -> np.ndarray:
    """Which of `p_values` are discoveries at false discovery rate q (Benjamini and Hochberg, 1995)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p)
    passed = p[order] <= q * np.arange(1, m + 1) / m
    found = np.zeros(m, dtype=bool)
    if passed.any():
        found[order[: np.flatnonzero(passed).max() + 1]] = True
    return found


def within_pass_se(values) -> float:
    """The standard error of a pass's median from its rounds (log scale; robust: MAD-based);
    inf with fewer than two. A worker keeps taking rounds while this exceeds its share of the target."""
    logs = np.log(np.asarray(values, dtype=float))
    if logs.size < 2:
        return math.inf
    sd = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
    return 1.2533 * sd / math.sqrt(logs.size)  # the median's efficiency against the mean: sqrt(pi / 2)
