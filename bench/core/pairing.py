"""Which analytic variant an autodiff variant is divided by, and how wide a cell's intervals are:
plain Python, read by the sweep's stopping rule between parts and by the analysis alike."""
from __future__ import annotations

import math

import numpy as np

from bench.core.intervals import interval


def twin(variant: str, analytic_medians: dict[str, float]) -> str:
    """The analytic variant an autodiff variant is paired with: the one of the same name where there
    is one (JAX's jit with jit, while-loop with while-loop), else the fastest (lowest median)."""
    return variant if variant in analytic_medians else min(analytic_medians, key=analytic_medians.get)



def widest(timed: list[dict]) -> float:
    """The widest relative half-width among the intervals a cell is read by: its autodiff variants'
    paired ratios (`twin`, per round), or, in a cell without autodiff (numpy's formulas), its
    variants' times; inf while any has one pass only. The sweep gives a cell another pass while
    this exceeds its target: a rule on spread alone, never on the values. Absolute times move with
    the machine from pass to pass far more than ratios do (bench.core.intervals); their intervals are
    reported as they come, not chased. The run-level spread (bench.analysis.spread) is left out: more passes
    cannot narrow it. `timed`: the cell's ok samples as dicts (mode, variant, part, repeat, time_s,
    run_id, machine); plain Python, as it runs between every two parts."""
    series: dict[tuple, dict] = {}  # (machine, mode, variant) -> {(run_id, repeat): (part, time)}
    for row in timed:
        series.setdefault((row.get("machine") or "", row["mode"], row["variant"]), {})[
            row.get("run_id"), row["repeat"]] = (row["part"] or 0, row["time_s"])
    ratios, times = [], []
    for (machine, mode, variant), samples in series.items():
        parts, values = zip(*samples.values())
        times.append(interval(values, parts).half_width)
        analytic = {v: float(np.median([t for _, t in s.values()])) for (m, md, v), s in series.items()
                    if m == machine and md == "analytic"}
        if mode != "autodiff" or not analytic:
            continue
        other = series[machine, "analytic", twin(variant, analytic)]
        pairs = [(part, t / other[k][1]) for k, (part, t) in samples.items() if k in other]
        ratios.append(interval(*zip(*[(r, p) for p, r in pairs])).half_width if pairs else math.inf)
    widths = ratios or times
    return max(widths) if widths else 0.0
