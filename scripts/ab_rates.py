"""How often the A/B gate raises a false alarm, and how small a slowdown it catches (docs/ci.md).

Each run is `nablabench ab . PLANTED` on the CI cells: PLANTED is a copy of this tree whose
least_squares gradient does real extra work (its products again on a share of A's rows, the result
unchanged), nothing else changed. Every other variant of the run is an A/A comparison (the same code
on both sides): a false alarm is one of them called slower. Prints, per run and in all, the planted
variants' estimates and whether the gate caught them, and the false alarms.

    python scripts/ab_rates.py --runs 20 --extra 0.1                     # wall clock, at AB_FACTOR
    python scripts/ab_rates.py --runs 20 --extra 0 --loop 2 --measure instructions --n 100 --derivatives grad \
        --judged numpy,autograd                                                    # the count gate's cells
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402

PLANTED = "least_squares"


def planted_tree(folder: Path, extra: float, loop: int = 0) -> Path:
    """This tree with least_squares' gradient recomputing A @ x on a share `extra` of A's rows as well,
    and `loop` Python statements first (a tuple built and dropped, each about 280 instructions, as is
    the extra call of the wrapper: 2 of them make numpy's 37,300 instructions a call at n = 100 about
    2.3% more, measured by tests/test_counts.py; nothing of it reaches a compiled graph)."""
    for name in ("problems", "backends", "bench"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    source = folder / "problems" / "least_squares.py"
    text = source.read_text()
    body = ["def grad(x, data):"]
    if loop:
        body += ["    unused = (x, data)"] * loop  # unrolled: no loop's own set-up
    if extra:
        body += [f"    again = data['A'][:max(1, int({extra} * data['A'].shape[0]))] @ x  # real work, none kept",
                 "    return _grad_once(x, data) + 0.0 * array_namespace(x).sum(again)"]
    else:
        body += ["    return _grad_once(x, data)"]
    planted = text.replace("def grad(", "def _grad_once(", 1)
    planted = planted.replace("def hess(", "\n".join(body) + "\n\n\ndef hess(", 1)
    source.write_text(planted)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--extra", type=float, default=0.1, help="share of A's rows the planted gradient redoes")
    parser.add_argument("--loop", type=int, default=0,
                        help="Python statements the planted gradient adds (each about 280 instructions)")
    parser.add_argument("--judged", help="backends whose planted variant must be caught (default: every one; "
                                         "the others' planted variants are neither caught nor false alarms)")
    parser.add_argument("--measure", default="time", choices=("time", "instructions"))
    parser.add_argument("--n", help="sizes (default: the ci preset's)")
    parser.add_argument("--derivatives", help="derivative kinds (default: the ci preset's; the count gate's: grad)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="nablabench-ab-rates-")))
    args = parser.parse_args(argv)
    tree = planted_tree(args.out / "planted", args.extra, args.loop)
    caught, alarms, estimates, moves = 0, 0, [], []
    for run in range(args.runs):
        started = time.monotonic()
        result = bench.ab(".", str(tree), preset="ci", n=args.n, derivatives=args.derivatives, measure=args.measure,
                          out=args.out / f"run{run}.csv", progress=False)
        changed = [v for v in result.verdicts if PLANTED in v.variant and v.mode == "analytic"
                   and " grad " in v.variant + " " and "fused" not in v.variant]  # the fused variant has its own code
        planted = [v for v in changed if not args.judged or v.backend in args.judged.split(",")]
        others = [v for v in result.verdicts if v not in changed]
        hit = [v for v in planted if v.status == "slower"]
        false = [v for v in others if v.status == "slower"]
        caught += len(hit) == len(planted) and bool(planted)
        alarms += bool(false)
        estimates += [v.estimate for v in planted]
        moves += [abs(v.estimate - 1) for v in others if v.estimate == v.estimate]
        widest = max(others, key=lambda v: abs(v.estimate - 1) if v.estimate == v.estimate else 0)
        print(f"run {run}: {time.monotonic() - started:.0f} s; planted "
              + ", ".join(f"{v.backend} n={v.variant.split('n=')[1].split()[0]} {v.estimate:.3f}x {v.status}"
                          for v in planted)
              + f"; false alarms: {', '.join(v.variant for v in false) or 'none'}; failures: {len(result.failures)}"
              + f"; widest unchanged: {widest.backend} {widest.variant} {widest.estimate:.4f}x",
              flush=True)
    print(f"\n{args.runs} runs ({args.measure}, extra {args.extra}): every planted variant caught in {caught}; "
          f"runs with a false alarm among the {len(others)} unchanged variants: {alarms}; planted estimates "
          f"{min(estimates):.3f}x to {max(estimates):.3f}x; unchanged variants' NEW / BASE moved by up to "
          f"{100 * max(moves):.2f}%, over 1% in {sum(m > 0.01 for m in moves)} of {len(moves)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
