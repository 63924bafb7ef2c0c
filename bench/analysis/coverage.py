"""How often a sweep's intervals hold the truth: its stopping rules and intervals simulated with their own code.

A simulated cell has a true value (log 0) and passes that each draw a drift from it (between-pass
spread B) and rounds about that (within-pass spread W), both spreads drawn per cell over the ranges
seen here, so that quiet and noisy cells mix. Each pass takes rounds as a worker does
(bench.measure.evaluate: at least two, more up to ten while the pass median's standard error exceeds
the target), and gives the median of its rounds. A share of the cells is costly and takes its floor
of passes only (the runner's budget rule). The rest stop by `rule`:

- "planned": the rule the sweep runs (bench.core.stopping.planned_passes, from the first pass's
  within-pass standard error);
- "sequential": the rule before it, for comparison: another pass while the interval over the
  passes so far is wider than the target.

The interval is bench.core.intervals.from_pass_estimates over the passes taken, without the
run-level spread (the truth here is this run's own expected value). `simulate` returns, per number of
passes a cell stopped at, how many cells stopped there and how many of their intervals held the truth.
"""
from __future__ import annotations

import math

import numpy as np

from bench.core import defaults
from bench.core.intervals import LEVEL, from_pass_estimates
from bench.core.stopping import planned_passes

RULES = ("planned", "sequential")
BETWEEN = (0.002, 0.05)  # the range (log-uniform) of a cell's between-pass spread, log scale
WITHIN = (0.005, 0.10)  # ... of its rounds' spread within a pass
COSTLY = 0.2  # the share of cells too costly for a pass beyond their floor


def _mad_se(logs: np.ndarray) -> np.ndarray:
    """bench.core.intervals.within_pass_se along the last axis, for many passes at once."""
    centre = np.median(logs, axis=-1, keepdims=True)
    sd = 1.4826 * np.median(np.abs(logs - centre), axis=-1)
    return 1.2533 * sd / math.sqrt(logs.shape[-1])


def simulate(rule: str = "planned", cells: int = 20_000, seed: int = 0, floor: int = defaults.PASSES,
             most: int = defaults.MAX_PASSES, target: float = defaults.TARGET,
             max_rounds: int = defaults.MAX_ROUNDS) -> dict[int, tuple[int, int]]:
    """{passes: (cells that stopped there, of them the cells whose LEVEL interval held the truth)}."""
    if rule not in RULES:
        raise ValueError(f"rule {rule!r}: choose from {', '.join(RULES)}")
    rng = np.random.default_rng(seed)
    between = np.exp(rng.uniform(*np.log(BETWEEN), size=cells))
    within = np.exp(rng.uniform(*np.log(WITHIN), size=cells))
    drift = rng.normal(0.0, between[:, None], size=(cells, most))
    rounds = drift[..., None] + rng.normal(0.0, within[:, None, None], size=(cells, most, max_rounds))
    goal = math.log1p(target)
    taken = np.full((cells, most), max_rounds)  # a worker's rounds: more while the median's error exceeds the goal
    for r in range(max_rounds - 1, defaults.ROUNDS - 1, -1):
        taken = np.where(_mad_se(rounds[..., :r]) <= goal, r, taken)
    estimates = np.empty((cells, most))
    pilot = np.empty(cells)
    for r in np.unique(taken):
        where = taken == r
        estimates[where] = np.median(rounds[..., :r], axis=-1)[where]
        first = where[:, 0]
        pilot[first] = _mad_se(rounds[first, 0, :r])
    costly = rng.random(cells) < COSTLY
    found: dict[int, list[int]] = {}
    for c in range(cells):
        if costly[c]:
            passes = floor
        elif rule == "planned":
            passes = planned_passes(float(pilot[c]), floor, most, target)
        else:
            passes = next((p for p in range(max(floor, 2), most + 1)
                           if from_pass_estimates(estimates[c, :p], p).half_width <= target), most)
        held = from_pass_estimates(estimates[c, :passes], passes, LEVEL)
        tally = found.setdefault(passes, [0, 0])
        tally[0] += 1
        tally[1] += int(held.lo <= 1.0 <= held.hi)
    return {p: (n, k) for p, (n, k) in sorted(found.items())}


def table(rule: str = "planned", **options) -> str:
    """The simulation as lines: per number of passes, the cells that stopped there and their coverage."""
    found = simulate(rule, **options)
    total = sum(n for n, _ in found.values())
    lines = [f"{rule}: {total} cells, {sum(k for _, k in found.values()) / total:.1%} of intervals held the truth"]
    lines += [f"  {p} passes: {n:6d} cells ({n / total:5.1%}), held {k / n:.1%}" for p, (n, k) in found.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    for name in RULES:
        print(table(name))
