"""How honest a run's progress-bar ETA was: from its metadata's eta_trace (seconds spent, seconds the
ETA said were left, every few seconds; bench.sweep.runner), the ratio said / actual remaining time at each
point from 5% of the run on, its worst, and the share of points within 1.25x.

    python scripts/eta_accuracy.py results/default-*.meta.json
"""
from __future__ import annotations

import json
import sys


def accuracy(trace: list[list[float]], start: float = 0.05) -> list[tuple[float, float]]:
    """(share of the run done, said / actual remaining) at each point from `start` on, until the
    last 2% (where a few seconds either way make any ratio)."""
    total = trace[-1][0]
    return [(spent / total, left / (total - spent)) for spent, left in trace
            if start * total <= spent <= 0.98 * total]


def main(paths: list[str]) -> None:
    for path in paths:
        for run_id, meta in json.load(open(path)).items():
            trace = meta.get("eta_trace")
            if not trace:
                print(f"{path} {run_id}: no eta_trace (a run before it was recorded)")
                continue
            points = accuracy(trace)
            within = sum(1 / 1.25 <= r <= 1.25 for _, r in points) / len(points)
            worst = max(points, key=lambda p: max(p[1], 1 / p[1]))
            print(f"{path} {run_id}: {trace[-1][0]:.0f} s; from 5% on, said/actual remaining within 1.25x at "
                  f"{within:.0%} of {len(points)} points; worst {worst[1]:.2f}x at {worst[0]:.0%}")
            for share in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
                done, ratio = min(points, key=lambda p: abs(p[0] - share))
                print(f"  at {done:4.0%}: {ratio:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
