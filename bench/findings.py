"""What a run found, in sentences computed from its results: the report opens on these.

Every number in a sentence is read from the data passed in; nothing is a fixed claim. Each
sentence links to the figure or table that shows it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .load import BUSY_CPUS
from .summary import NOISY_SPREAD, best_variants

NEAR = 1.1  # "autodiff costs about what the hand-written derivative costs"
CHEAP_GRADIENT_BOUND = 4.0  # reverse mode's bound on grad / f (the course says about 2)
DERIVATIVE_NAMES = {"gd": "gradient descent to ε", "grad": "the gradient", "hvp": "the HVP",
                    "hess": "the dense Hessian", "jac": "the Jacobian", "dk": "the k-th derivative"}
UNSTABLE_DRIFT = 0.25  # the drift monitor's reference moved by more than this: an unsteady machine


@dataclass(frozen=True)
class Sentence:
    text: str
    link: str  # the anchor of the figure or table that shows it


def _times(value: float) -> str:
    digits = 2 if value < 2 else 1 if value < 10 else 0
    return f"{value:.{digits}f}×"


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.3g} ns"


def overhead(ratios: pd.DataFrame) -> list[Sentence]:
    """Per device and derivative: where autodiff comes within NEAR of the hand-written derivative,
    per backend (its fastest autodiff variant, the median over problems at each n)."""
    ratios = ratios[~ratios["stored"].astype(bool)] if "stored" in ratios else ratios
    if ratios.empty:
        return []
    out = []
    by_variant = ratios.groupby(["device", "derivative", "backend", "variant", "n"], observed=True)["ratio"].median()
    for (device, derivative), part in by_variant.groupby(level=["device", "derivative"], observed=True):
        clauses = []
        for backend, lines in part.groupby(level="backend", observed=True):
            # the variant with the lowest ratio in geometric mean over n
            best = lines.groupby(level="variant", observed=True).apply(lambda s: np.log(s).mean()).idxmin()
            line = lines.xs(best, level="variant").droplevel(["device", "derivative", "backend"]).sort_index()
            smallest_n, first = int(line.index[0]), float(line.iloc[0])
            near = line <= NEAR
            tail = np.flatnonzero(~near.to_numpy())
            if not near.any() or len(tail) == len(line):
                where = f"never within {NEAR}× up to n = {int(line.index[-1])} ({_times(float(line.iloc[-1]))} there)"
            elif len(tail) == 0:
                where = f"within {NEAR}× at every n"
            else:
                crossing = int(line.index[tail[-1] + 1]) if tail[-1] + 1 < len(line) else None
                where = (f"within {NEAR}× from n = {crossing} on" if crossing is not None
                         else f"not within {NEAR}× at the largest n ({_times(float(line.iloc[-1]))})")
            clauses.append(f"{backend} ({best}) {_times(first)} at n = {smallest_n}, {where}")
        out.append(Sentence(f"Autodiff against the hand-written formula for {DERIVATIVE_NAMES.get(derivative, derivative)}"
                            f" ({device}): " + "; ".join(clauses) + ".", "ratios"))
    return out


def winners(stats: pd.DataFrame) -> list[Sentence]:
    """Per backend and derivative with several autodiff variants: which is fastest, how often."""
    ad = stats[(stats["mode"] == "autodiff") & (stats["task"] == "eval")]
    clauses = []
    for (backend, device, derivative), part in ad.groupby(["backend", "device", "derivative"], observed=True):
        if part["variant"].nunique() < 2:
            continue
        cells = part.pivot_table(index=["problem", "n"], columns="variant", values="median").dropna()
        if cells.empty:
            continue
        fastest = cells.idxmin(axis=1)
        top = fastest.value_counts().idxmax()
        runner_up = cells.drop(columns=top).min(axis=1)
        factor = float(np.median(runner_up / cells[top]))
        clauses.append(f"{backend} {DERIVATIVE_NAMES.get(derivative, derivative)} ({device}): {top} fastest in "
                       f"{int((fastest == top).sum())} of {len(cells)} cells, {_times(factor)} ahead of the next at the median")
    return [Sentence("Fastest variant: " + "; ".join(clauses) + ".", "per-call")] if clauses else []


def solve(stats: pd.DataFrame) -> list[Sentence]:
    """Time to ε at the largest n, per backend and mode (best variant), and the iteration counts."""
    part = best_variants(stats[stats["task"] == "solve"])
    if part.empty:
        return []
    out = []
    for (problem, device), by in part.groupby(["problem", "device"], observed=True):
        n = int(by["n"].max())
        at = by[by["n"] == n].sort_values("median")
        iterations = sorted({int(i) for i in at["iterations"].dropna()})
        same = (f"{iterations[0]} iterations in every backend and mode" if len(iterations) == 1
                else f"iterations {', '.join(map(str, iterations))} (they differ)")
        times = "; ".join(f"{r.backend} {r.mode} ({r.variant}) {_seconds(r.median)}" for r in at.itertuples())
        out.append(Sentence(f"{problem} ({device}) at n = {n}: gradient descent reached f − f* ≤ ε in {same}; "
                            f"time to ε, fastest first: {times}.", "headline"))
    return out


def cheap_gradient(gf: pd.DataFrame) -> list[Sentence]:
    """grad / f per backend and mode (median over problems and sizes) against the bound."""
    if gf.empty:
        return []
    medians = gf.groupby(["device", "backend", "mode"], observed=True)["ratio"].median()
    beyond = medians[medians > CHEAP_GRADIENT_BOUND]
    listed = "; ".join(f"{b} {m} {v:.1f}" + (f" ({d})" if d != "cpu" else "") for (d, b, m), v in medians.items())
    verdict = ("every backend within it" if beyond.empty else
               "beyond it: " + ", ".join(f"{b} {m}" for (_, b, m) in beyond.index))
    return [Sentence(f"A gradient cost this many evaluations of f (median over problems and sizes): {listed}; "
                     f"reverse mode's bound is about {CHEAP_GRADIENT_BOUND:g} (the course says about 2): {verdict}.",
                     "cheap-gradient")]


def trouble(df: pd.DataFrame, stats: pd.DataFrame) -> list[Sentence]:
    """What failed, was skipped or was noisy, and why (the most common reasons)."""
    cells = df.drop_duplicates(["task", "problem", "n", "backend", "device", "derivative", "mode", "variant", "status"])
    bad = cells[cells["status"] != "ok"]
    parts = []
    for status, group in bad.groupby("status", observed=True):
        reasons = group["message"].fillna("").str.split(":").str[0].str.slice(0, 70).value_counts()
        top = "; ".join(f"{reason or 'no message'} ({count})" for reason, count in reasons.head(2).items())
        parts.append(f"{len(group)} {status} ({top})")
    noisy = int((stats["spread"] > NOISY_SPREAD).sum()) if not stats.empty else 0
    text = ("Every variant was checked and timed" if not parts else "Not timed: " + "; ".join(parts))
    text += f". {noisy} of {len(stats)} timed variants were noisy (IQR/median above {NOISY_SPREAD:.0%})."
    return [Sentence(text, "flagged")]


def trust(df: pd.DataFrame, stats: pd.DataFrame, drift: dict | None) -> str | None:
    """A warning when the run cannot be trusted: a busy or unsteady machine, or mostly noisy cells."""
    reasons = []
    if "load_other_cpus" in df and df["load_other_cpus"].notna().any():
        cells = df.drop_duplicates(["run_id", "task", "problem", "n", "backend", "device", "derivative"])
        other, steal = cells["load_other_cpus"].mean(), cells["load_steal_cpus"].mean()
        if other > BUSY_CPUS:
            reasons.append(f"other processes used {other:.2f} CPUs on average while it ran")
        if steal > BUSY_CPUS:
            reasons.append(f"the hypervisor stole {steal:.2f} CPUs on average")
    if drift and max(drift["numpy"], drift["python"]) > UNSTABLE_DRIFT:
        reasons.append(f"the drift monitor's reference time varied by {100 * max(drift['numpy'], drift['python']):.0f}%")
    if not stats.empty:
        share = float((stats["spread"] > NOISY_SPREAD).mean())
        if share > 0.3:
            reasons.append(f"{share:.0%} of the timed variants were noisy")
    if not reasons:
        return None
    return "This run's times are not to be trusted as they stand: " + "; ".join(reasons) + ". " \
        "Rerun on a quiet machine before you compare its absolute times; within-run ratios suffer less."


def findings(df: pd.DataFrame, stats: pd.DataFrame, ratios: pd.DataFrame, gf: pd.DataFrame) -> list[Sentence]:
    return [*overhead(ratios), *winners(stats), *solve(stats), *cheap_gradient(gf), *trouble(df, stats)]
