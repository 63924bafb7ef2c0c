"""How many passes a cell takes: planned from its first pass, before the values of its interval are seen.

A cell's interval is the t-interval over its passes' estimates (bench.core.intervals). Until
2026-12-05 a cell took another pass while that interval was wider than its target, which stops on
the very spread the interval is made of: it stops where the passes happened to agree, and its
intervals are too narrow there. Simulated with the intervals' own code, that rule's 95% intervals held
the truth in 92.7% of cells, and in 68.8% of those that stopped at two passes.

Here the number of passes is planned from the pilot, the cell's first pass: the spread of that pass's
rounds about their median (its standard error, bench.core.intervals.within_pass_se), plus a prior for the drift between
passes that no single pass can see (defaults.PASS_SD). The plan is the fewest passes whose t-interval
would be within the target at that spread. Neither the passes after the first nor the spread between
passes enters the decision, so the t-interval over the planned passes keeps its level: simulated, it
held the truth in 95% of cells, at every number of passes a cell can stop at
(bench.analysis.coverage, tests/test_stopping.py). The decision is still made between parts (the
sweep's runner asks `planned_passes` once the cell's floor of passes has run).

Plain Python; scipy's t quantile through bench.core.intervals.
"""
from __future__ import annotations

import math

from bench.core import defaults
from bench.core.intervals import t_quantile


def planned_passes(pilot_se: float, floor: int, most: int, target: float, pass_sd: float = defaults.PASS_SD) -> int:
    """The passes a cell takes: the fewest from `floor` to `most` whose 95% t-interval would be within
    +-`target` if its passes' estimates spread by sqrt(pilot_se^2 + pass_sd^2) (log scale); `most`
    where none would be; `floor` where `most` is no more."""
    if most <= floor:
        return floor
    spread, goal = math.hypot(pilot_se, pass_sd), math.log1p(target)
    for passes in range(max(floor, 2), most + 1):
        if t_quantile(passes - 1) * spread / math.sqrt(passes) <= goal:
            return passes
    return most
