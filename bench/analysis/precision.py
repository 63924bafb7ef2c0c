"""float32 beside float64: what each derivative costs and how accurate it is in each precision.

pandas in, pandas out, from a run with both dtypes (--dtypes float64,float32; the `precision` preset):
- `dtype_ratios`: each variant's float32 time over its float64 time, paired by pass and round, with the
  interval over the passes (the two cells run in the same pass of the sweep, one after the other, not in
  one worker's rounds: the drift between them is in the passes' spread);
- `accuracy`: each variant's error against the higher-precision reference (bench.measure.accuracy), the
  analytic formula's beside autodiff's, per dtype;
- `findings`: the sentences the report opens on.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.findings import DERIVATIVE_NAMES, Sentence
from bench.analysis.summary import _intervals, _timed, best_variants
from bench.core.formatting import ratio_interval, seconds_interval
from bench.core.schema import KEY

LOW, HIGH = "float32", "float64"
APART = 10.0  # analytic and autodiff "differ in accuracy" where one's error is this many times the other's
CELL = [k for k in KEY if k != "dtype"]  # a cell in either precision


def has_both(df: pd.DataFrame) -> bool:
    return {LOW, HIGH} <= set(df["dtype"].dropna().unique())


def dtype_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant timed in both dtypes: its float32 time over its float64 time (dtype_ratio, _lo, _hi),
    paired by run, pass and round, with the passes behind it."""
    ok = _timed(df)
    keys = CELL + ["machine", "mode", "variant"]
    low, high = ok[ok["dtype"] == LOW], ok[ok["dtype"] == HIGH]
    if low.empty or high.empty:
        return pd.DataFrame(columns=keys + ["dtype_ratio", "dtype_ratio_lo", "dtype_ratio_hi", "passes"])
    sides = low.merge(high[keys + ["run_id", "part", "repeat", "time_s"]].rename(columns={"time_s": "time_high"}),
                      on=keys + ["run_id", "part", "repeat"])
    sides = sides.assign(dtype_ratio=sides["time_s"] / sides["time_high"])
    return _intervals(sides, keys, "dtype_ratio", "dtype_ratio").drop(columns=["samples", "dtype_ratio_run_sd"])


def accuracy(df: pd.DataFrame) -> pd.DataFrame:
    """Per eval cell (either dtype) and backend: the largest error against the higher precision among the
    analytic variants and among the autodiff ones (their checks' precise_err), autodiff's over analytic's,
    and the cell's condition."""
    checked = df[(df["task"] == "eval") & df["precise_err"].notna()]
    if checked.empty:
        return pd.DataFrame()
    worst = checked.groupby(list(KEY) + ["mode"], observed=True)["precise_err"].max().unstack("mode")
    condition = checked.groupby(list(KEY), observed=True)["condition"].max()
    out = worst.reindex(columns=["analytic", "autodiff"]).join(condition).reset_index()
    out = out.rename(columns={"analytic": "analytic_err", "autodiff": "autodiff_err"})
    with np.errstate(divide="ignore", invalid="ignore"):
        out["autodiff_over_analytic"] = out["autodiff_err"] / out["analytic_err"]
    return out


def apart(table: pd.DataFrame, dtype: str = LOW) -> pd.DataFrame:
    """The cells of `accuracy` in `dtype` where analytic and autodiff differ in accuracy by APART or more, either
    way, the widest first (errors at roundoff in both, below 10 epsilons, are not told apart)."""
    if table.empty:
        return table
    mine = table[(table["dtype"] == dtype) & table["analytic_err"].notna() & table["autodiff_err"].notna()]
    eps = float(np.finfo(np.dtype(dtype)).eps)
    errors = mine[["analytic_err", "autodiff_err"]].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = errors.max(axis=1) / errors.min(axis=1)
    keep = (errors.max(axis=1) > 10 * eps) & (factor >= APART)
    return mine[keep].assign(factor=factor[keep]).sort_values("factor", ascending=False)


def findings(df: pd.DataFrame, stats: pd.DataFrame, floors: pd.DataFrame) -> list[Sentence]:
    """float32 against float64 at the largest n of each problem's gradient (the fastest analytic variant per
    backend, paired; what the floor predicts), the widest accuracy gap between analytic and autodiff in
    float32 (or, measured, that none reached APART), and gradient descent's iterations and time in each."""
    if not has_both(df):
        return []
    out = []
    ratios = dtype_ratios(df)
    grads = ratios[(ratios["task"] == "eval") & (ratios["derivative"] == "grad") & (ratios["mode"] == "analytic")]
    for problem, mine in grads.groupby("problem", observed=True):
        n = mine["n"].max()
        at = mine[mine["n"] == n].sort_values("dtype_ratio")
        parts = []
        for backend, rows in at.groupby("backend", observed=True, sort=False):
            best = rows.iloc[0]
            shown = ratio_interval(best["dtype_ratio"], best["dtype_ratio_lo"], best["dtype_ratio_hi"])
            parts.append(f"{backend} {shown}")
        predicted = _floor_ratio(floors, problem, "grad", n)
        floor_text = f"; its floor predicts {predicted:.2f}×" if np.isfinite(predicted) else ""
        out.append(Sentence(f"{problem}'s hand-derived gradient at n = {n}: float32 took " + ", ".join(parts)
                            + f" its float64 time{floor_text}.", "precision"))
    table = accuracy(df)
    gaps = apart(table)
    if not table.empty:
        low = table[table["dtype"] == LOW]
        if gaps.empty:
            ratio = low["autodiff_over_analytic"].to_numpy(dtype=float)
            widest = np.nanmax(np.maximum(ratio, 1 / ratio)) if np.isfinite(ratio).any() else float("nan")
            out.append(Sentence(f"In float32, analytic and autodiff errors against the float64 reference never "
                                f"differed by {APART:g}× or more in these cells (the widest: {widest:.1f}×).",
                                "precision"))
        else:
            g = gaps.iloc[0]
            worse = "autodiff" if g["autodiff_over_analytic"] > 1 else "the hand-derived formula"
            what = DERIVATIVE_NAMES.get(g["derivative"], g["derivative"])
            out.append(Sentence(
                f"In float32, {worse} lost the most digits on {g['problem']}'s {what} at n = {g['n']} "
                f"({g['backend']}): errors {g['analytic_err']:.1e} (analytic) and {g['autodiff_err']:.1e} (autodiff) "
                f"against float64, {g['factor']:.0f}× apart; {len(gaps)} cells differ by {APART:g}× or more.",
                "precision"))
    solves = stats[(stats["task"] == "solve") & (stats["derivative"] == "gd")]
    for problem, mine in solves.groupby("problem", observed=True):
        n = mine["n"].max()
        best = best_variants(mine[mine["n"] == n]).sort_values("time_s").groupby("dtype", observed=True).first()
        if not {LOW, HIGH} <= set(best.index):
            continue
        lo, hi = best.loc[LOW], best.loc[HIGH]
        took = {d: seconds_interval(r["time_s"], r["time_lo"], r["time_hi"]) for d, r in ((LOW, lo), (HIGH, hi))}
        out.append(Sentence(
            f"Gradient descent on {problem} at n = {n}: float32 reached its ε = {_eps(df, LOW):.1e} in "
            f"{lo['iterations']:.0f} iterations and {took[LOW]} ({lo['backend']} {lo['variant']}); float64 its "
            f"ε = {_eps(df, HIGH):.0e} in {hi['iterations']:.0f} and {took[HIGH]} ({hi['backend']} {hi['variant']}).",
            "precision"))
    return out


def _eps(df: pd.DataFrame, dtype: str) -> float:
    found = df.loc[(df["task"] == "solve") & (df["dtype"] == dtype), "eps"].dropna()
    return float(found.iloc[0]) if len(found) else float("nan")


def _floor_ratio(floors: pd.DataFrame, problem: str, derivative: str, n: int) -> float:
    """float32's floor over float64's for a cell (half where it is memory-bound), nan without floors."""
    if floors is None or "floor_s" not in floors:
        return float("nan")
    at = floors[(floors["problem"] == problem) & (floors["derivative"] == derivative) & (floors["n"] == n)
                & (floors["task"] == "eval")].groupby("dtype", observed=True)["floor_s"].first()
    return float(at[LOW] / at[HIGH]) if {LOW, HIGH} <= set(at.index) else float("nan")


def time_table(df: pd.DataFrame, floors: pd.DataFrame) -> pd.DataFrame:
    """Per eval cell and variant timed in both dtypes: float64's and float32's time with their intervals, float32
    over float64 paired, and what the floor predicts for it."""
    ratios = dtype_ratios(df)
    if ratios.empty:
        return pd.DataFrame()
    ratios = ratios[ratios["task"] == "eval"]
    times = floors.set_index(list(KEY) + ["machine", "mode", "variant"])
    rows = []
    for r in ratios.itertuples(index=False):
        key = {k: getattr(r, k) for k in CELL + ["machine", "mode", "variant"]}
        found = {d: times.loc[tuple({**key, "dtype": d}[k] for k in list(KEY) + ["machine", "mode", "variant"])]
                 for d in (HIGH, LOW)}
        floor = found[LOW]["floor_s"] / found[HIGH]["floor_s"]
        rows.append({"problem": r.problem, "derivative": r.derivative, "n": r.n, "backend": r.backend,
                     "mode": r.mode, "variant": r.variant,
                     **{d: seconds_interval(f["time_s"], f["time_lo"], f["time_hi"]) for d, f in found.items()},
                     "float32 / float64": ratio_interval(r.dtype_ratio, r.dtype_ratio_lo, r.dtype_ratio_hi),
                     "floor's ratio": f"{floor:.2f}" if np.isfinite(floor) else "–"})
    return pd.DataFrame(rows).sort_values(["problem", "derivative", "backend", "mode", "variant", "n"])


def ratio_by_dtype(ratios: pd.DataFrame) -> pd.DataFrame:
    """autodiff / analytic (paired per round, bench.analysis.summary.autodiff_ratios) in each precision side by side."""
    if ratios.empty:
        return pd.DataFrame()
    ev = ratios[ratios["task"] == "eval"]
    keys = ["problem", "derivative", "n", "backend", "variant", "variant_analytic"]
    shown = ev.assign(text=[ratio_interval(*v) for v in ev[["ratio", "ratio_lo", "ratio_hi"]].to_numpy()])
    out = shown.pivot_table(index=keys, columns="dtype", values="text", aggfunc="first", observed=True)
    out = out.reindex(columns=[d for d in (HIGH, LOW) if d in out.columns]).dropna()
    return out.rename(columns=lambda d: f"autodiff / analytic, {d}").reset_index()


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """`accuracy` for the report: per cell and backend, analytic's and autodiff's error in float32 beside float64's."""
    table = accuracy(df)
    if table.empty:
        return table
    keys = ["problem", "derivative", "n", "backend"]
    wide = table.pivot_table(index=keys, columns="dtype", values=["analytic_err", "autodiff_err"], observed=True)
    wide.columns = [f"{mode.removesuffix('_err')}, {dtype}" for mode, dtype in wide.columns]
    order = [f"{m}, {d}" for d in (LOW, HIGH) for m in ("analytic", "autodiff")]
    wide = wide.reindex(columns=[c for c in order if c in wide.columns])
    return wide.map(lambda e: f"{e:.1e}" if np.isfinite(e) else "–").reset_index()
