"""Tables derived from the tidy results: medians, spreads, ratios. pandas in, pandas out."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .cells import KEY, VARIANT_KEY

WARN_SPREAD = 0.10  # IQR / median above this: "warn"
NOISY_SPREAD = 0.25  # ... above this: "noisy"
CELL = list(VARIANT_KEY)


def with_machine(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with `machine` filled ("" where a CSV predates it): statistics group by it, so the
    times of two machines never mix, as those of two devices never do."""
    return df.assign(machine=df["machine"].astype("string").fillna("") if "machine" in df else "")


def machines(df: pd.DataFrame) -> list[str]:
    """["machine"] where the rows come from more than one machine: the tables then show it."""
    return ["machine"] if "machine" in df and df["machine"].nunique() > 1 else []


def noise_flag(spread: float) -> str:
    if spread > NOISY_SPREAD:
        return "noisy"
    return "warn" if spread > WARN_SPREAD else "ok"


def _q(p):
    def quantile(s):
        return s.quantile(p)

    quantile.__name__ = f"q{int(p * 100)}"
    return quantile


def cell_stats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per measured cell and variant: median, min, max, IQR/median, noise flag."""
    ok = with_machine(df[df["status"] == "ok"])
    if ok.empty:
        return pd.DataFrame(columns=CELL + ["machine", "median", "min", "max", "spread", "noise", "samples"])
    g = ok.groupby(CELL + ["machine"], observed=True, dropna=False)
    stats = g["time_s"].agg(median="median", min="min", max="max", q25=_q(0.25), q75=_q(0.75),
                            samples="count").reset_index()
    extra = g.agg(compile_s=("compile_s", "median"), iterations=("iterations", "median"),
                  rel_err=("rel_err", "max"), throughput=("throughput_s", "median")).reset_index(drop=True)
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


def paired_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """THE autodiff / analytic ratio: one per autodiff sample, over the analytic sample of its round.

    Both sides ran in the same worker, in the same round, moments apart (bench.cells interleaves
    them), so drift of the machine cancels in the ratio. Each autodiff variant is paired with
    the analytic variant of the same name where there is one (JAX's jit with jit, while-loop
    with while-loop), else with the cell's fastest analytic variant (lowest median). Columns:
    the cell key, run_id, variant, variant_analytic, repeat, time_s, time_analytic, ratio.
    The report, `compare` and the CI gate all use this one definition.
    """
    cell = list(KEY) + ["run_id", "machine"]
    ok = with_machine(df[(df["status"] == "ok") & df["time_s"].notna()])
    analytic = ok[ok["mode"] == "analytic"]
    autodiff = ok[ok["mode"] == "autodiff"]
    columns = cell + ["variant", "variant_analytic", "repeat", "time_s", "time_analytic", "ratio"]
    if analytic.empty or autodiff.empty:
        return pd.DataFrame(columns=columns)
    medians = analytic.groupby(cell + ["variant"], observed=True)["time_s"].median().reset_index()
    fastest = medians.loc[medians.groupby(cell, observed=True)["time_s"].idxmin(), cell + ["variant"]]
    variants = autodiff[cell + ["variant"]].drop_duplicates()
    same = variants.merge(medians[cell + ["variant"]], on=cell + ["variant"])
    same["variant_analytic"] = same["variant"]
    other = variants.merge(same[cell + ["variant"]], how="left", indicator=True)
    other = other[other["_merge"] == "left_only"].drop(columns="_merge").merge(
        fastest.rename(columns={"variant": "variant_analytic"}), on=cell)
    twins = pd.concat([same, other], ignore_index=True)
    sides = autodiff.merge(twins, on=cell + ["variant"]).merge(
        analytic[cell + ["variant", "repeat", "time_s"]].rename(
            columns={"variant": "variant_analytic", "time_s": "time_analytic"}),
        on=cell + ["variant_analytic", "repeat"])
    sides["ratio"] = sides["time_s"] / sides["time_analytic"]
    return sides[columns].reset_index(drop=True)


def autodiff_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Per autodiff variant: the median of its paired per-round ratios, their IQR and count."""
    paired = paired_ratios(df)
    keys = list(KEY) + ["machine", "variant", "variant_analytic"]
    if paired.empty:
        return pd.DataFrame(columns=keys + ["ratio", "q25", "q75", "rounds", "stored"])
    g = paired.groupby(keys, observed=True)["ratio"]
    out = g.agg(ratio="median", q25=_q(0.25), q75=_q(0.75), rounds="count").reset_index()
    out["stored"] = [derivative in _stored(problem) for problem, derivative in zip(out["problem"], out["derivative"])]
    return out


def _stored(problem: str) -> frozenset:
    """The kinds a problem's formula reads from its data (free by construction); none if unknown here."""
    import problems

    try:
        return problems.get(problem).stored
    except ValueError:
        return frozenset()


def grad_over_f(stats: pd.DataFrame) -> pd.DataFrame:
    """grad time / f time per backend: the cheap gradient principle (f from the same array library)."""
    ev = stats[stats["task"] == "eval"]
    f = ev[ev["derivative"] == "f"][["problem", "n", "backend", "device", "machine", "median"]]
    g = ev[ev["derivative"] == "grad"]
    merged = g.merge(f, on=["problem", "n", "backend", "device", "machine"], suffixes=("", "_f"))
    merged["ratio"] = merged["median"] / merged["median_f"]
    return merged


def hvp_over_grad(stats: pd.DataFrame) -> pd.DataFrame:
    """HVP time / gradient time per backend and mode (the fastest gradient variant as the unit)."""
    ev = stats[stats["task"] == "eval"]
    keys = ["problem", "n", "backend", "device", "machine", "mode"]
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
