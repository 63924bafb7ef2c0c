"""Tables derived from the tidy results: medians, spreads, ratios. pandas in, pandas out."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .timing import noise_flag

# The array library an autodiff-only backend's analytic twin runs on.
ANALYTIC_TWIN = {"autograd": "numpy"}
CELL = ["task", "problem", "n", "backend", "device", "mode", "derivative", "variant"]


def _q(p):
    def quantile(s):
        return s.quantile(p)

    quantile.__name__ = f"q{int(p * 100)}"
    return quantile


def cell_stats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per measured cell and variant: median, min, max, IQR/median, noise flag."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=CELL + ["median", "min", "max", "spread", "noise", "samples"])
    g = ok.groupby(CELL, observed=True, dropna=False)
    stats = g["time_s"].agg(median="median", min="min", max="max", q25=_q(0.25), q75=_q(0.75),
                            samples="count").reset_index()
    extra = g.agg(compile_s=("compile_s", "median"), iterations=("iterations", "median"),
                  rel_err=("rel_err", "max")).reset_index(drop=True)
    stats = pd.concat([stats, extra], axis=1)
    stats["spread"] = (stats["q75"] - stats["q25"]) / stats["median"]
    stats["noise"] = stats["spread"].map(noise_flag)
    return stats


def best_variants(stats: pd.DataFrame) -> pd.DataFrame:
    """Per (task, problem, backend, device, mode, derivative): the variant fastest in geometric mean."""
    if stats.empty:
        return stats
    keys = ["task", "problem", "backend", "device", "mode", "derivative"]
    score = (stats.assign(log_t=np.log(stats["median"]))
             .groupby(keys + ["variant"], observed=True)["log_t"].mean().reset_index())
    best = score.loc[score.groupby(keys, observed=True)["log_t"].idxmin(), keys + ["variant"]]
    return stats.merge(best, on=keys + ["variant"])


def autodiff_ratios(stats: pd.DataFrame) -> pd.DataFrame:
    """autodiff / analytic median time within each backend (autograd against numpy).

    Each autodiff variant is paired with the analytic variant of the same name where there is one
    (JAX's jit with jit, while-loop with while-loop), else with the fastest analytic variant.
    """
    side = ["task", "problem", "n", "device", "derivative"]
    analytic = stats[stats["mode"] == "analytic"][side + ["backend", "variant", "median"]]
    analytic = analytic.rename(columns={"backend": "twin", "variant": "variant_analytic",
                                        "median": "median_analytic"})
    fastest = analytic.loc[analytic.groupby(side + ["twin"], observed=True)["median_analytic"].idxmin()]
    autodiff = stats[stats["mode"] == "autodiff"].copy()
    autodiff["twin"] = autodiff["backend"].map(lambda b: ANALYTIC_TWIN.get(b, b))
    same = autodiff.merge(analytic, left_on=side + ["twin", "variant"],
                          right_on=side + ["twin", "variant_analytic"])
    rest = autodiff.merge(same[side + ["backend", "variant"]], how="left", indicator=True)
    rest = rest[rest["_merge"] == "left_only"].drop(columns="_merge").merge(fastest, on=side + ["twin"])
    merged = pd.concat([same, rest], ignore_index=True)
    merged["ratio"] = merged["median"] / merged["median_analytic"]
    return merged


def grad_over_f(stats: pd.DataFrame) -> pd.DataFrame:
    """grad time / f time per backend: the cheap gradient principle (f from the same array library)."""
    ev = stats[stats["task"] == "eval"]
    f = ev[ev["derivative"] == "f"][["problem", "n", "backend", "device", "median"]]
    g = ev[ev["derivative"] == "grad"].copy()
    g["twin"] = g["backend"].map(lambda b: ANALYTIC_TWIN.get(b, b))
    merged = g.merge(f, left_on=["problem", "n", "twin", "device"],
                     right_on=["problem", "n", "backend", "device"], suffixes=("", "_f"))
    merged["ratio"] = merged["median"] / merged["median_f"]
    return merged.drop(columns=["backend_f"])


def hvp_over_grad(stats: pd.DataFrame) -> pd.DataFrame:
    """HVP time / gradient time per backend and mode (the fastest gradient variant as the unit)."""
    ev = stats[stats["task"] == "eval"]
    keys = ["problem", "n", "backend", "device", "mode"]
    grad = ev[ev["derivative"] == "grad"]
    grad = grad.loc[grad.groupby(keys, observed=True)["median"].idxmin(), keys + ["median"]]
    hvp = ev[ev["derivative"] == "hvp"]
    merged = hvp.merge(grad, on=keys, suffixes=("", "_grad"))
    merged["ratio"] = merged["median"] / merged["median_grad"]
    return merged


def nearest_sizes(sizes, targets=(10, 1000, 10000)) -> dict[int, int]:
    """For each target size, the measured size closest to it in log scale."""
    sizes = np.asarray(sorted(set(int(s) for s in sizes)))
    if sizes.size == 0:
        return {}
    return {t: int(sizes[np.argmin(np.abs(np.log(sizes) - np.log(t)))]) for t in targets}
