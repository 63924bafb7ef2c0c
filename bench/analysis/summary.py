"""Tables derived from the tidy results: every time and every ratio with its 95% interval.

pandas in, pandas out. The intervals come from bench.core.intervals (a t-interval over the passes'
medians); the noise flag of a variant is the width of its interval, nothing else.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import spread
from bench.core.intervals import interval
from bench.core.pairing import pass_id, rival, twin
from bench.core.schema import KEY, OK, VARIANT_KEY

WARN_WIDTH = 0.05  # an interval's half-width above this (+-5%): "warn"
NOISY_WIDTH = 0.10  # ... above this: "noisy"; a variant timed in one pass has no interval: "one pass"


def with_machine(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with `machine` filled ("" where a CSV predates it): statistics group by it, so the
    times of two machines never mix, as those of two devices never do; and `dtype` (float64 where rows
    predate it), which the cell key holds."""
    return df.assign(machine=df["machine"].astype("string").fillna("") if "machine" in df else "",
                     dtype=df["dtype"].astype("string").fillna("float64") if "dtype" in df else "float64")


def machines(df: pd.DataFrame) -> list[str]:
    """["machine"] where the rows come from more than one machine: the tables then show it."""
    return ["machine"] if "machine" in df and df["machine"].nunique() > 1 else []


def noise_flag(half_width: float) -> str:
    if not math.isfinite(half_width):
        return "one pass"
    if half_width > NOISY_WIDTH:
        return "noisy"
    return "warn" if half_width > WARN_WIDTH else "ok"


def _timed(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[(df["status"] == OK) & df["time_s"].notna()]
    return with_machine(ok.assign(part=ok["part"].fillna(0).astype(int)))


def _intervals(frame: pd.DataFrame, keys: list[str], column: str, prefix: str) -> pd.DataFrame:
    """Per group of `keys`: the interval of `column` over its passes, as PREFIX, PREFIX_lo, PREFIX_hi.
    Where its machine class's run-level spread was measured for its backend, task and thread count
    (bench.analysis.spread), the interval holds a rerun's estimate, and PREFIX_run_sd gives the spread;
    elsewhere it holds this run's passes only (PREFIX_run_sd empty).
    A pass is a run's pass (run_id and part): several runs read together keep their passes apart,
    never pooling pass p of one with pass p of another."""
    rows = []
    for values, group in frame.groupby(keys, observed=True, dropna=False):
        where = dict(zip(keys, values))
        run = spread.lookup(where["machine"], where["backend"], prefix, where["task"], threads_of(group))
        found = (interval(group[column].to_numpy(dtype=float), pass_ids(group)) if run is None else
                 interval(group[column].to_numpy(dtype=float), pass_ids(group), run_sd=run.sd, run_df=run.df,
                          rerun=True))
        rows.append((*values, found.estimate, found.lo, found.hi, found.passes, found.samples,
                     math.nan if run is None else run.sd))
    return pd.DataFrame(rows, columns=[*keys, prefix, f"{prefix}_lo", f"{prefix}_hi", "passes", "samples",
                                       f"{prefix}_run_sd"])


def threads_of(rows: pd.DataFrame):
    """The thread count the rows were timed at, where their runs' metadata says one (None otherwise)."""
    if "threads" not in rows:
        return None
    found = rows["threads"].dropna().unique()
    return int(found[0]) if len(found) == 1 and len(rows["threads"].dropna()) == len(rows) else None


def pass_ids(rows: pd.DataFrame) -> np.ndarray:
    """Each row's pass: its run and its part (bench.core.pairing.pass_id)."""
    runs = rows["run_id"] if "run_id" in rows else pd.Series("", index=rows.index)
    return np.array([pass_id(run, part) for run, part in zip(runs, rows["part"])])


def half_width(lo, hi) -> np.ndarray:
    """The relative half-width sqrt(hi / lo) - 1 of intervals (inf where there is none)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        width = np.sqrt(hi / lo) - 1.0
    return np.where(np.isfinite(width), width, np.inf)


CALLS = ("grad_calls", "hvp_calls", "hess_calls")  # a solve's calls per run (bench.measure.solvers.Run)


def cell_stats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per timed cell and variant (and machine): time_s with its interval [time_lo,
    time_hi] over the passes, the passes and samples behind it, min and max, the interval's
    half-width and noise flag, and the variant's compile time, iterations, error and memory."""
    ok = _timed(df)
    columns = [*VARIANT_KEY, "machine", "time_s", "time_lo", "time_hi", "passes", "samples", "time_run_sd", "min",
               "max", "half_width", "noise", "compile_s", "iterations", *CALLS, "rel_err", "throughput",
               "peak_mem_bytes", "precise_err", "condition"]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    keys = list(VARIANT_KEY) + ["machine"]
    ok = ok.assign(**{c: np.nan for c in ("precise_err", "condition") if c not in ok})  # (rows that predate them)
    stats = _intervals(ok, keys, "time_s", "time")
    stats = stats.rename(columns={"time": "time_s"})
    g = ok.groupby(keys, observed=True, dropna=False)
    extra = g.agg(min=("time_s", "min"), max=("time_s", "max"), compile_s=("compile_s", "median"),
                  iterations=("iterations", "median"), **{c: (c, "median") for c in CALLS}, rel_err=("rel_err", "max"),
                  throughput=("throughput_s", "median"), peak_mem_bytes=("peak_mem_bytes", "max"),
                  precise_err=("precise_err", "max"), condition=("condition", "max")).reset_index()
    stats = stats.merge(extra, on=keys, how="left")
    stats["half_width"] = half_width(stats["time_lo"], stats["time_hi"])
    stats["noise"] = stats["half_width"].map(noise_flag)
    return stats[columns]


def best_variants(stats: pd.DataFrame) -> pd.DataFrame:
    """Per (task, problem, backend, device, mode, derivative): the variant fastest in geometric mean."""
    if stats.empty:
        return stats
    keys = ["task", "problem", "backend", "device", "mode", "derivative"]
    score = (stats.assign(log_t=np.log(stats["time_s"]))
             .groupby(keys + ["variant"], observed=True)["log_t"].mean().reset_index())
    best = score.loc[score.groupby(keys, observed=True)["log_t"].idxmin(), keys + ["variant"]]
    return stats.merge(best, on=keys + ["variant"])


def paired_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """THE autodiff / analytic ratio: one per autodiff sample, over the analytic sample of its round.

    Both sides ran in the same worker, in the same round, moments apart (bench.measure.cells interleaves
    them), so drift of the machine cancels in the ratio. Each autodiff variant is paired with the
    analytic variant its backend declares (`twin`: same regime); one without a declared twin gets no
    ratio. Columns: the cell key, run_id, machine, variant, variant_analytic, part, repeat,
    time_s, time_analytic, ratio. The report, `compare`, the CI gate and the sweep's own stopping
    rule (bench.core.pairing.read_by) all use this one definition.
    """
    cell = list(KEY) + ["run_id", "machine"]
    ok = _timed(df)
    analytic = ok[ok["mode"] == "analytic"]
    autodiff = ok[ok["mode"] == "autodiff"]
    columns = cell + ["variant", "variant_analytic", "part", "repeat", "time_s", "time_analytic", "ratio"]
    columns += ["threads"] if "threads" in ok else []
    if analytic.empty or autodiff.empty:
        return pd.DataFrame(columns=columns)
    twins = autodiff[cell + ["variant"]].drop_duplicates()
    twins = twins.assign(variant_analytic=[twin(str(backend), str(variant))
                                           for backend, variant in zip(twins["backend"], twins["variant"])])
    twins = twins.dropna(subset=["variant_analytic"])
    sides = autodiff.merge(twins, on=cell + ["variant"]).merge(
        analytic[cell + ["variant", "repeat", "time_s"]].rename(
            columns={"variant": "variant_analytic", "time_s": "time_analytic"}),
        on=cell + ["variant_analytic", "repeat"])
    sides["ratio"] = sides["time_s"] / sides["time_analytic"]
    return sides[columns].reset_index(drop=True)


RATIO_KEYS = list(KEY) + ["machine", "variant", "variant_analytic"]


FUSED = "fused"  # the analytic variant restructured by hand for the memory hierarchy (problems._blocks)


def fused_gains(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell with a FUSED analytic variant: each autodiff variant of the same backend over it, paired
    per round as `paired_ratios` pairs (gain, gain_lo, gain_hi over the passes): what restructuring
    the formula by hand gains over autodiff."""
    cell = list(KEY) + ["run_id", "machine"]
    ok = _timed(df)
    fused = ok[(ok["mode"] == "analytic") & (ok["variant"] == FUSED)]
    autodiff = ok[ok["mode"] == "autodiff"]
    keys = list(KEY) + ["machine", "variant"]
    if fused.empty or autodiff.empty:
        return pd.DataFrame(columns=keys + ["gain", "gain_lo", "gain_hi", "passes"])
    sides = autodiff.merge(fused[cell + ["repeat", "time_s"]].rename(columns={"time_s": "time_fused"}),
                           on=cell + ["repeat"])
    sides = sides.assign(gain=sides["time_s"] / sides["time_fused"])
    return _intervals(sides, keys, "gain", "gain").drop(columns=["samples", "gain_run_sd"])


def versus_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Per autodiff variant that its backend measures against another of its autodiff variants
    (backends.Backend.versus: Enzyme's against JAX's own): its time over the other's, paired per round
    as `paired_ratios` pairs (versus, versus_lo, versus_hi over the passes), with the other's name
    (variant_versus). Both ran in the same worker and rounds, so the machine's drift cancels."""
    cell = list(KEY) + ["run_id", "machine"]
    keys = list(KEY) + ["machine", "variant", "variant_versus"]
    ok = _timed(df)
    autodiff = ok[ok["mode"] == "autodiff"]
    pairs = autodiff[["backend", "variant"]].drop_duplicates()
    pairs = pairs.assign(variant_versus=[rival(str(b), str(v)) for b, v in zip(pairs["backend"], pairs["variant"])])
    pairs = pairs.dropna(subset=["variant_versus"])
    if pairs.empty:
        return pd.DataFrame(columns=keys + ["versus", "versus_lo", "versus_hi", "passes"])
    sides = autodiff.merge(pairs, on=["backend", "variant"]).merge(
        autodiff[cell + ["variant", "repeat", "time_s"]].rename(
            columns={"variant": "variant_versus", "time_s": "time_versus"}),
        on=cell + ["variant_versus", "repeat"])
    sides = sides.assign(versus=sides["time_s"] / sides["time_versus"])
    return _intervals(sides, keys, "versus", "versus").drop(columns=["samples", "versus_run_sd"])


def autodiff_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Per autodiff variant: its paired ratio with the 95% interval over the passes (ratio,
    ratio_lo, ratio_hi), the passes and rounds behind it, and whether the analytic side is
    stored in the data (free by construction: no cost ratio)."""
    paired = paired_ratios(df)
    columns = RATIO_KEYS + ["ratio", "ratio_lo", "ratio_hi", "passes", "rounds", "ratio_run_sd", "half_width", "stored"]
    if paired.empty:
        return pd.DataFrame(columns=columns)
    out = _intervals(paired, RATIO_KEYS, "ratio", "ratio").rename(columns={"samples": "rounds"})
    out["half_width"] = half_width(out["ratio_lo"], out["ratio_hi"])
    out["stored"] = [stored(*cell) for cell in zip(out["problem"], out["task"], out["derivative"])]
    return out[columns]


def summary_table(df: pd.DataFrame, roofs: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per cell and variant: its time with the interval (time_s, time_lo, time_hi), its
    paired ratio with the interval where it is an autodiff variant (ratio, ratio_lo, ratio_hi,
    against variant_analytic), the passes and samples behind them, and its floor on the machine
    (floor_s, over_floor with its interval: bench.measure.roofline, from the run's measured `roofs` by
    device). NAME.summary.csv."""
    from bench.analysis.floors import with_floors

    stats = with_floors(cell_stats(df), roofs or {})
    ratios = autodiff_ratios(df).drop(columns=["passes", "half_width"]).assign(mode="autodiff")
    table = stats.merge(ratios, on=list(KEY) + ["machine", "mode", "variant"], how="left")
    return table.rename(columns={"half_width": "time_half_width"})


def summary_path(csv_path: Path) -> Path:
    return Path(csv_path).with_suffix(".summary.csv")


def write_summary(csv_paths: list[Path], out: Path | None = None) -> Path:
    """NAME.summary.csv beside the (first) results CSV, from all of them."""
    from bench.analysis.floors import roofs_of
    from bench.sweep.results import read_metadata, read_results

    out = out or summary_path(csv_paths[0])
    summary_table(read_results(csv_paths), roofs_of(read_metadata(csv_paths))).to_csv(out, index=False)
    return out


def newton_type_groups(stats: pd.DataFrame) -> pd.DataFrame:
    """The solve rows of each (problem, device) where a Newton-type solver ran (bench.measure.solvers),
    gradient descent's among them: what the report's "Second-order methods" compares."""
    solve = stats[stats["task"] == "solve"]
    ran = solve[solve["derivative"] != "gd"][["problem", "device"]].drop_duplicates()
    return solve.merge(ran, on=["problem", "device"])


def stored(problem: str, task: str, derivative: str) -> bool:
    """Whether a cell's analytic side reads what it times from the problem's data (free by
    construction: the quadratic's Hessian, for its dense Hessian and for Newton's method); False for
    a problem not known here. A solve times its solver's kind (bench.measure.solvers.measured_kind)."""
    import problems

    from bench.measure.solvers import measured_kind

    try:
        return measured_kind(task, derivative) in problems.get(problem).stored
    except (ValueError, KeyError):
        return False


def grad_over_f(stats: pd.DataFrame) -> pd.DataFrame:
    """grad time / f time per backend: the cheap gradient principle (f from the same array library)."""
    ev = stats[stats["task"] == "eval"]
    f = ev[ev["derivative"] == "f"][["problem", "n", "backend", "device", "machine", "time_s"]]
    g = ev[ev["derivative"] == "grad"]
    merged = g.merge(f, on=["problem", "n", "backend", "device", "machine"], suffixes=("", "_f"))
    merged["ratio"] = merged["time_s"] / merged["time_s_f"]
    return merged


def hvp_over_grad(stats: pd.DataFrame) -> pd.DataFrame:
    """HVP time / gradient time per backend and mode (the fastest gradient variant as the unit)."""
    ev = stats[stats["task"] == "eval"]
    keys = ["problem", "n", "backend", "device", "machine", "mode"]
    grad = ev[ev["derivative"] == "grad"]
    grad = grad.loc[grad.groupby(keys, observed=True)["time_s"].idxmin(), keys + ["time_s"]]
    hvp = ev[ev["derivative"] == "hvp"]
    merged = hvp.merge(grad, on=keys, suffixes=("", "_grad"))
    merged["ratio"] = merged["time_s"] / merged["time_s_grad"]
    return merged


def nearest_sizes(sizes, targets=(10, 1000, 10000)) -> dict[int, int]:
    """For each target size, the measured size closest to it in log scale."""
    sizes = np.asarray(sorted(set(int(s) for s in sizes)))
    if sizes.size == 0:
        return {}
    return {t: int(sizes[np.argmin(np.abs(np.log(sizes) - np.log(t)))]) for t in targets}
