"""The CI gate's false alarms and detection, measured: quiet `ci` runs against a fresh baseline.

    python scripts/gate_rates.py --runs 20 [--out results/gate]      (about a minute a run here)
    python scripts/gate_rates.py --csv BASE RUN1 RUN2 ...              (runs already made)

Runs the `ci` preset once as the baseline and --runs more times, nothing else changed. Then, at
each factor: a false alarm is a quiet run in which the gate (bench.analysis.compare on the within-run
ratios, as bench.ci runs it) calls any cell slower; with the confirmation bench.ci makes, one that
run i and run i + 1 both call slower in the same cell. Detection: for every quiet run and every
ratio cell, a copy of the run with that cell's autodiff samples slowed by --plant (1.2), planted
into run i + 1 as well for the confirmed figure; the share of copies the gate calls slower.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.analysis.compare import Samples, compare, load_samples, ratio_samples  # noqa: E402,F401

FACTORS = (1.1, 1.15, 1.2)


def run_ci(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "bench", "run", "--preset", "ci", "--threads", "1", "--no-progress",
                    "--overwrite", "--out", str(out)], check=True, cwd=ROOT)
    return out


ALPHA = 0.05


def slower(base: dict, new: dict, factor: float) -> set[str]:
    return {v.cell for v in compare(base, new, factor=factor, alpha=ALPHA) if v.status == "slower"}


def planted(run: dict[str, Samples], cell: str, by: float) -> dict[str, Samples]:
    """The run with one ratio cell's samples `by` times larger (its autodiff variant that much slower)."""
    return {c: replace(s, values=s.values * by) if c == cell else s for c, s in run.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--plant", type=float, default=1.2)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gate")
    parser.add_argument("--csv", nargs="+", type=Path, help="BASE RUN1 RUN2 ...: runs already made")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="compare's --alpha (default: %(default)s)")
    parser.add_argument("--factors", default=",".join(map(str, FACTORS)), help="factors to try (default: %(default)s)")
    args = parser.parse_args(argv)
    globals()["ALPHA"] = args.alpha
    if args.csv:
        paths = args.csv
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        paths = [run_ci(args.out / f"ci-{i:02d}.csv") for i in range(args.runs + 1)]
    base = ratio_samples(load_samples(paths[0]))
    runs = [ratio_samples(load_samples(p)) for p in paths[1:]]
    cells = sorted(base)
    widths = [np.sqrt(v.hi / v.lo) - 1 for r in runs for v in compare(base, r) if np.isfinite(v.lo)]
    print(f"baseline {paths[0].name}, {len(runs)} quiet runs, {len(cells)} ratio cells, alpha {args.alpha:g}; "
          f"median half-width of the change's interval {np.median(widths):.1%}")
    print(f"{'factor':>7} {'false alarms':>14} {'confirmed':>10} {'caught':>16} {'caught, confirmed':>18}")
    for factor in (float(f) for f in args.factors.split(",")):
        alarms = [slower(base, r, factor) for r in runs]
        confirmed = [a & b for a, b in zip(alarms, alarms[1:])]
        caught = caught_confirmed = copies = 0
        for i, run in enumerate(runs):
            for cell in cells:
                copies += 1
                first = cell in slower(base, planted(run, cell, args.plant), factor)
                caught += first
                if i + 1 < len(runs):
                    caught_confirmed += first and cell in slower(base, planted(runs[i + 1], cell, args.plant), factor)
        pairs = len(runs) - 1
        print(f"{factor:7.2f} {sum(map(bool, alarms)):>6} of {len(runs):<6} "
              f"{sum(map(bool, confirmed)):>3} of {pairs:<4}"
              f" {caught:>6} of {copies:<7} {caught_confirmed:>7} of {copies - len(cells):<7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
