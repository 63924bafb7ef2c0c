"""How well a run reproduces: run the same sweep back to back and print how far its numbers moved.

    python -m bench.reproduce                       (make reproducibility: two quick eval runs)
    python -m bench.reproduce --runs 3 -- --threads 1 --samples 20
    python -m bench.reproduce --csv A.csv B.csv     (the tables for runs already made)
    python -m bench.reproduce --runs 8 --record     (measure this machine class's run-to-run spread:
                                                     bench.analysis.spread)

For every pair of consecutive runs, per cell at n >= --min-n: the within-run autodiff / analytic
ratio (bench.analysis.summary.autodiff_ratios: ratios paired per round, estimated over the passes; kinds
whose analytic result is stored in the data are no cost ratio and left out) and the absolute time
of every variant, as run2 / run1. Printed: the share of cells that moved by less than 10%, the
5th, 50th and 95th percentiles and the extremes of run2 / run1; and whether the intervals hold
it: the share of ratio cells whose change lies inside the interval the two runs' own intervals
imply for it (bench.core.intervals.change, the interval `compare` prints), and the median half-width
of the runs' ratio intervals.
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.spread import COVERAGE
from bench.analysis.summary import RATIO_KEYS, autodiff_ratios, cell_stats, stored
from bench.core.schema import KEY, VARIANT_KEY
from bench.sweep.results import read_results

TOLERANCE = 0.10


def within_run_ratios(df: pd.DataFrame) -> pd.Series:
    """Per autodiff variant: its within-run ratio. CSVs of schema 1 (no rounds, autograd timed
    without an analytic mode) get the ratio of medians, against numpy's analytic for autograd."""
    index = list(KEY) + ["variant"]
    if df["position"].notna().any():
        ratios = autodiff_ratios(df)
        return ratios[~ratios["stored"]].set_index(index)["ratio"]
    medians = absolute_medians(df).reset_index()
    analytic = medians[medians["mode"] == "analytic"].drop(columns="mode")
    autodiff = medians[medians["mode"] == "autodiff"].drop(columns="mode")
    autodiff = autodiff.assign(twin=autodiff["backend"].replace({"autograd": "numpy"}))
    cell = ["task", "problem", "n", "device", "dtype", "derivative"]
    fastest = (analytic.groupby(cell + ["backend"], observed=True)["time_s"].min().rename("fastest")
               .reset_index().rename(columns={"backend": "twin"}))
    same = autodiff.merge(analytic.rename(columns={"backend": "twin", "time_s": "same_name"}),
                          on=cell + ["twin", "variant"], how="left").merge(fastest, on=cell + ["twin"], how="left")
    same["ratio"] = same["time_s"] / same["same_name"].fillna(same["fastest"])
    free = [stored(*cell) for cell in zip(same["problem"], same["task"], same["derivative"])]
    return same[~pd.Series(free, index=same.index)].set_index(index)["ratio"]


def absolute_medians(df: pd.DataFrame) -> pd.Series:
    """Each variant's time: its estimate over the passes (bench.analysis.summary.cell_stats)."""
    return cell_stats(df).set_index(list(VARIANT_KEY))["time_s"]


def movement(first: pd.Series, second: pd.Series, *, min_n: int) -> pd.Series:
    """second / first for the cells both have, at n >= min_n."""
    joined = pd.concat([first.rename("a"), second.rename("b")], axis=1, join="inner").dropna()
    joined = joined[joined.index.get_level_values("n") >= min_n]
    return (joined["b"] / joined["a"]).rename("moved")


def describe(moved: pd.Series) -> str:
    if moved.empty:
        return "no cells in common"
    within = float(np.mean(np.abs(moved - 1) <= TOLERANCE))
    p5, p50, p95 = np.percentile(moved, [5, 50, 95])
    return (f"{len(moved):4d} cells, {within:6.1%} within {TOLERANCE:.0%}; run2/run1 p5 {p5:.3f}, "
            f"median {p50:.3f}, p95 {p95:.3f}, range {moved.min():.3f} to {moved.max():.3f}")


def interval_check(first: pd.DataFrame, second: pd.DataFrame, *, min_n: int) -> str:
    """How well the runs' ratio intervals hold a rerun: the share of cells whose change lies inside the
    interval the two runs imply for it (`compare`'s), the share whose second estimate lies inside the
    first run's own interval (the summary's and the report's), and the median half-width of each run's
    intervals."""
    from bench.analysis.compare import ratio_samples
    from bench.core.intervals import change

    a, b = (ratio_samples(f[f["n"] >= min_n]) for f in (first, second))
    shared = [c for c in sorted(set(a) & set(b))
              if not stored(*(a[c].where[k] for k in ("problem", "task", "derivative")))]
    held = [(lambda c: c.lo <= 1.0 <= c.hi)(change(a[c].estimates(), b[c].estimates(), 0.95,
                                                   (a[c].run_sd ** 2 / 2 + b[c].run_sd ** 2 / 2) ** 0.5,
                                                   min(a[c].run_df, b[c].run_df))) for c in shared]
    widths = [autodiff_ratios(f[f["n"] >= min_n]) for f in (first, second)]
    widths = [w[~w["stored"].astype(bool)] for w in widths]
    medians = [float(w["half_width"].replace(np.inf, np.nan).median()) for w in widths]
    keys = [k for k in RATIO_KEYS if k != "machine"]
    rerun = widths[0].merge(widths[1][keys + ["ratio"]], on=keys, suffixes=("", "_rerun"))
    inside = (rerun["ratio_lo"] <= rerun["ratio_rerun"]) & (rerun["ratio_rerun"] <= rerun["ratio_hi"])
    return (f"{len(shared)} ratio cells: the change inside the interval the two runs imply in {np.mean(held):.1%}; "
            f"the second run's estimate inside the first run's interval in {inside.mean():.1%} of {len(rerun)}; "
            f"median half-width of the ratio intervals {medians[0]:.1%} and {medians[1]:.1%}")


def report(paths: list[Path], *, min_n: int) -> str:
    frames = [read_results([p]) for p in paths]
    lines = []
    for (a, fa), (b, fb) in zip(zip(paths, frames), zip(paths[1:], frames[1:])):
        lines.append(f"{a.name} -> {b.name} (n >= {min_n})")
        ratios = movement(within_run_ratios(fa), within_run_ratios(fb), min_n=min_n)
        lines.append("  within-run ratios: " + describe(ratios))
        if fa["part"].notna().any() and fb["part"].notna().any():
            lines.append("  intervals:         " + interval_check(fa, fb, min_n=min_n))
        lines.append("  absolute medians:  "
                     + describe(movement(absolute_medians(fa), absolute_medians(fb), min_n=min_n)))
        worst = ratios.sort_values(key=lambda s: -np.abs(np.log(s))).head(5)
        for key, value in worst.items():
            lines.append(f"    moved {value:6.3f}x  " + " ".join(str(k) for k in key))
    return "\n".join(lines)


BOOTSTRAP = 30  # resamples of the calibration cells behind a spread's degrees of freedom
HELD_OUT = 2  # runs that measure a recorded spread's coverage and did not set it


def _pairs(frames: list[pd.DataFrame], samples) -> dict[tuple, list]:
    """(task, threads, backend) -> the per-pass estimates (a, b) of every cell two consecutive runs share
    (two passes or more each), where both ran at one known thread count."""
    from bench.analysis.summary import threads_of

    found: dict[tuple, list] = {}
    for a, b in zip(frames, frames[1:]):
        threads = threads_of(a)
        if threads is None or threads != threads_of(b):
            continue
        sa, sb = samples(a), samples(b)
        for cell in set(sa) & set(sb):
            ea, eb = sa[cell].estimates(), sb[cell].estimates()
            if len(ea) >= 2 and len(eb) >= 2:
                where = sa[cell].where
                found.setdefault((where["task"], threads, where["backend"]), []).append((ea, eb))
    return found


def _held(sd: float, cells: list, df: float = math.inf) -> float:
    """The share of cells whose change lies inside `compare`'s interval with run-level spread sd."""
    from bench.core.intervals import change

    return float(np.mean([(lambda c: c.lo <= 1.0 <= c.hi)(change(ea, eb, run_sd=sd, run_df=df)) for ea, eb in cells]))


def _calibrated(cells: list) -> float:
    """The smallest spread with which the change interval holds COVERAGE of the cells' changes (bisection:
    coverage grows with the spread); 0 where their passes alone hold that many."""
    low, high = 0.0, 0.5
    if _held(low, cells) >= COVERAGE:
        return 0.0
    for _ in range(20):
        middle = (low + high) / 2
        low, high = (low, middle) if _held(middle, cells) >= COVERAGE else (middle, high)
    return high


def measure_spread(calibration: list[Path], held_out: list[Path]) -> dict:
    """The run-level spread (log scale), of paired ratios and of times, per task, thread count and
    backend (bench.analysis.spread), from back-to-back runs: calibrated on the consecutive pairs of
    `calibration` (the smallest spread with which the change interval `compare` gives holds the change
    of COVERAGE of the cells they share; cell by cell, because the cells differ: a moments estimate let
    the noisy cells' wide intervals hide the steady cells' shifts); its degrees of freedom from a
    bootstrap over those cells (sd^2 / (2 se^2)); and its coverage measured on the pairs of `held_out`,
    runs that did not set it."""
    from bench.analysis.compare import cell_samples, load_samples, ratio_samples

    calibrating, holding = ([load_samples(p) for p in paths] for paths in (calibration, held_out))
    rng = np.random.default_rng(0)
    entries = []
    for kind, samples in (("ratio", ratio_samples), ("time", cell_samples)):
        fresh = _pairs(holding, samples)
        for (task, threads, backend), cells in sorted(_pairs(calibrating, samples).items(), key=str):
            sd = _calibrated(cells)
            again = [_calibrated([cells[i] for i in rng.integers(0, len(cells), len(cells))]) for _ in range(BOOTSTRAP)]
            se = float(np.std(again, ddof=1))
            df = min(sd ** 2 / (2 * se ** 2), 1e6) if se > 0 and sd > 0 else None  # None: as if known
            checked = fresh.get((task, threads, backend), [])
            entries.append(dict(kind=kind, task=task, threads=threads, backend=backend, sd=round(sd, 5),
                                df=None if df is None else round(df, 1), sd_bootstrap_se=round(se, 5), cells=len(cells),
                                held_out_cells=len(checked),
                                held_out_coverage=round(_held(sd, checked, df), 3) if checked else None))
    return {"entries": entries, "coverage": COVERAGE}


def record_spread(paths: list[Path]) -> Path:
    """Measure the run-level spread from `paths` (runs of one machine class, the last HELD_OUT of them
    held out) and store it (bench.analysis.spread)."""
    from bench.analysis import spread
    from bench.core import environment
    from bench.sweep.results import read_metadata

    if len(paths) < 2 + HELD_OUT:
        raise SystemExit(f"bench.reproduce --record: {len(paths)} runs; it needs {2 + HELD_OUT} or more "
                         f"(two or more to calibrate the spread on, then {HELD_OUT} held out to measure it)")
    metas = [m for p in paths for m in read_metadata([p]).values()]
    prints = {environment.machine_fingerprint(m) for m in metas}
    if len(prints) != 1:
        raise SystemExit(f"bench.reproduce: the runs come from {len(prints)} machine classes; record one at a time")
    calibration, held_out = paths[:-HELD_OUT], paths[-HELD_OUT:]
    record = dict(measure_spread(calibration, held_out), machine=environment.machine_label(metas[0]),
                  runs=[p.name for p in calibration], held_out_runs=[p.name for p in held_out],
                  measured=max(str(m.get("started", "")) for m in metas),
                  command="python -m bench.reproduce --record")
    return spread.write(record, prints.pop())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", nargs="+", type=Path, help="compare these runs instead of making new ones")
    parser.add_argument("--runs", type=int, default=2, help="runs back to back (default: %(default)s)")
    parser.add_argument("--min-n", type=int, default=100, help="smallest n counted (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=Path("results/reproduce"))
    parser.add_argument("--record", action="store_true",
                        help="store the runs' run-to-run spread as this machine class's (baselines/spread-*.json)")
    parser.add_argument("run_args", nargs="*", help="after --: extra `nablabench run` options")
    args = parser.parse_args(argv)
    paths = args.csv
    if not paths:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        paths = []
        for i in range(args.runs):
            out = args.out_dir / f"quick-{stamp}-{i + 1}.csv"
            command = [sys.executable, "-m", "bench", "run", "--preset", "quick", "--tasks", "eval",
                       "--no-progress", "--out", str(out), *args.run_args]
            start = time.perf_counter()
            subprocess.run(command, check=True)
            print(f"run {i + 1}: {time.perf_counter() - start:.0f} s -> {out}", file=sys.stderr)
            paths.append(out)
    if len(paths) < 2:
        parser.error("two or more runs are needed")
    if args.record:
        path = record_spread(paths)
        print(f"run-to-run spread of this machine class -> {path} (commit it): {path.read_text()}")
        return 0
    print(report(paths, min_n=args.min_n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
