"""The count gate's reproducibility, false alarms and detection, measured for real.

    python scripts/count_gate_rates.py --runs 10 [--out results/count-gate]   (about 2.5 minutes a run here)
    python scripts/count_gate_rates.py --csv BASE RUN1 ... [--planted PLANTED]  (runs already made)

Counts the CI gate's cells (bench.ci.COUNT_RUN) once as the baseline and --runs more times, nothing
else changed, then once more with 3% extra work planted in one variant of each backend (for real:
NABLABENCH_PLANT, bench.measure.counting). Prints, per backend, how far the quiet runs' counts moved from the
baseline (the largest |new / base - 1| over its variants and runs), the quiet runs the gate
(bench.analysis.counts.compare_counts at COUNT_FACTOR) flagged, and whether it caught each planted variant
and nothing else. Counts do not move with the machine's load, so this may run beside other work.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.analysis.counts import COUNT_FACTOR, compare_counts  # noqa: E402
from bench.ci import COUNT_RUN  # noqa: E402

# one variant of each backend, 3% more work each
PLANTS = ("numpy:least_squares:100:grad:analytic/eager:3", "torch:logistic:100:hvp:autodiff/rev-rev:3",
          "jax:logistic:100:grad:autodiff/jit:3", "autograd:least_squares:100:hvp:autodiff/rev-rev:3")
PLANTED_LABELS = ("eval least_squares n=100 numpy/cpu analytic grad eager",
                  "eval logistic n=100 torch/cpu autodiff hvp rev-rev",
                  "eval logistic n=100 jax/cpu autodiff grad jit",
                  "eval least_squares n=100 autograd/cpu autodiff hvp rev-rev")


def count(out: Path, plant: str = "") -> Path:
    env = dict(os.environ, NABLABENCH_PLANT=plant)
    subprocess.run([sys.executable, "-m", "bench", *COUNT_RUN, "--out", str(out)], check=True, cwd=ROOT, env=env)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "count-gate")
    parser.add_argument("--csv", type=Path, nargs="+", help="BASE RUN1 ...: counted runs already made")
    parser.add_argument("--planted", type=Path, help="with --csv: the planted run")
    args = parser.parse_args()
    if args.csv:
        base, quiet, planted = args.csv[0], args.csv[1:], args.planted
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        base = count(args.out / "base.csv")
        quiet = [count(args.out / f"quiet-{i}.csv") for i in range(args.runs)]
        planted = count(args.out / "planted.csv", ";".join(PLANTS))
    moved = defaultdict(float)  # backend -> largest |ratio - 1|
    alarms = []
    for path in quiet:
        verdicts = compare_counts(base, path)
        for v in verdicts:
            moved[v.backend] = max(moved[v.backend], abs(v.ratio - 1))
        flagged = [v.variant for v in verdicts if v.status != "same"]
        alarms.append(flagged)
        print(f"{path.name}: {len(verdicts)} variants, {len(flagged)} flagged {flagged or ''}")
    print(f"\nquiet runs against the baseline: {sum(bool(a) for a in alarms)} of {len(quiet)} with a false alarm "
          f"at {COUNT_FACTOR}x")
    for backend, value in sorted(moved.items()):
        print(f"  {backend:9} largest |new / base - 1| over its variants and runs: {value:.3%}")
    if planted is not None:
        verdicts = {v.variant: v for v in compare_counts(base, planted)}
        print(f"\nplanted 3% in {len(PLANTED_LABELS)} variants ({planted.name}):")
        for name in PLANTED_LABELS:
            v = verdicts[name]
            print(f"  {v.status:>8} {v.ratio:.4f}x  {name}")
        others = [v for name, v in verdicts.items() if name not in PLANTED_LABELS and v.status != "same"]
        print(f"  other variants flagged: {len(others)} {[v.variant for v in others] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
