"""Regression checks between two runs: ratio of medians AND a Mann-Whitney U test on raw samples.

A cell is a regression only when NEW's median is at least `factor` times BASE's and the one-sided
Mann-Whitney U test says NEW is slower with p < alpha (asv's rule; its defaults are 1.1 and
0.002). With 5 samples a side no p-value can reach 0.002 (the smallest one-sided p is 1/252), so
runs meant for comparison take 20 or more samples.

Absolute times on a shared machine drift; the within-run ratios (autodiff / analytic of the same
backend, measured minutes apart in one run) do not move with the machine, so CI gates on those.
Reads our CSVs and pytest-benchmark JSON saved with --benchmark-save-data.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from .results import read_results
from .summary import ANALYTIC_TWIN

CELL = ("task", "problem", "n", "backend", "device", "mode", "derivative", "variant")


class CompareInputError(ValueError):
    pass


@dataclass(frozen=True)
class Verdict:
    cell: str
    base_median: float
    new_median: float
    ratio: float  # new / base
    p_slower: float  # one-sided Mann-Whitney U: new > base
    p_faster: float
    base_samples: int
    new_samples: int
    status: str  # regression | improvement | same | only in base | only in new


def load_samples(path: str | Path) -> pd.DataFrame:
    """Long table of raw samples with the CELL columns and time_s, from a CSV or pytest-benchmark JSON."""
    path = Path(path)
    if path.suffix == ".json":
        return _pytest_benchmark_samples(path)
    df = read_results([path])
    ok = df[df["status"] == "ok"]
    return ok[list(CELL) + ["time_s"]].reset_index(drop=True)


def _pytest_benchmark_samples(path: Path) -> pd.DataFrame:
    try:
        report = json.loads(path.read_text())
        benchmarks = report["benchmarks"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CompareInputError(f"`{path}` is not a pytest-benchmark JSON file.") from None
    rows = []
    for b in benchmarks:
        data = b.get("stats", {}).get("data")
        if not data:
            raise CompareInputError(f"`{path}` has no raw samples for `{b.get('name')}`: "
                                    "save it with --benchmark-save-data.")
        info = b.get("extra_info", {})
        cell = {k: info.get(k, "") for k in CELL}
        if not cell["problem"]:
            cell.update(task="pytest", problem=b.get("fullname", b.get("name", "?")), n=0)
        rows.extend(dict(cell, time_s=t) for t in data)
    frame = pd.DataFrame(rows)
    frame["n"] = frame["n"].astype("int64")
    return frame


def cell_samples(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {_label(key): group["time_s"].to_numpy(dtype=float)
            for key, group in frame.groupby(list(CELL), observed=True, dropna=False)}


def ratio_samples(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Within-run autodiff / analytic ratios: each autodiff sample over the analytic twin's median."""
    out = {}
    analytic = frame[frame["mode"] == "analytic"]
    twin_median = analytic.groupby(["task", "problem", "n", "backend", "device", "derivative"],
                                   observed=True)["time_s"].median()
    autodiff = frame[frame["mode"] == "autodiff"]
    for key, group in autodiff.groupby(list(CELL), observed=True, dropna=False):
        task, problem, n, backend, device, _, derivative, variant = key
        twin = (task, problem, n, ANALYTIC_TWIN.get(backend, backend), device, derivative)
        if twin in twin_median.index:
            label = f"{problem} n={n} {backend}/{device} {derivative} {variant} autodiff/analytic"
            out[label] = group["time_s"].to_numpy(dtype=float) / twin_median[twin]
    return out


def _label(key) -> str:
    task, problem, n, backend, device, mode, derivative, variant = key
    return f"{task} {problem} n={n} {backend}/{device} {mode} {derivative} {variant}"


def compare(base: dict[str, np.ndarray], new: dict[str, np.ndarray], *, factor: float = 1.1,
            alpha: float = 0.002) -> list[Verdict]:
    """One verdict per cell in either run, sorted by ratio (worst first)."""
    verdicts = []
    for cell in sorted(set(base) | set(new)):
        b, n = base.get(cell), new.get(cell)
        if b is None or n is None:
            only_new = b is None
            verdicts.append(Verdict(
                cell, base_median=math.nan if only_new else float(np.median(b)),
                new_median=float(np.median(n)) if only_new else math.nan, ratio=math.nan,
                p_slower=math.nan, p_faster=math.nan, base_samples=0 if only_new else len(b),
                new_samples=len(n) if only_new else 0, status="only in new" if only_new else "only in base"))
            continue
        ratio = float(np.median(n) / np.median(b))
        p_slower = float(mannwhitneyu(n, b, alternative="greater").pvalue)
        p_faster = float(mannwhitneyu(n, b, alternative="less").pvalue)
        if ratio >= factor and p_slower < alpha:
            status = "regression"
        elif ratio <= 1 / factor and p_faster < alpha:
            status = "improvement"
        else:
            status = "same"
        verdicts.append(Verdict(cell, float(np.median(b)), float(np.median(n)), ratio, p_slower, p_faster,
                                len(b), len(n), status))
    return sorted(verdicts, key=lambda v: -v.ratio if math.isfinite(v.ratio) else math.inf)


def minimum_samples(alpha: float) -> int:
    """Fewest samples a side for which a one-sided Mann-Whitney U test can reach p < alpha."""
    k = 1
    while 1.0 / math.comb(2 * k, k) >= alpha:
        k += 1
    return k


def format_table(verdicts: list[Verdict], *, title: str, limit: int = 25) -> str:
    counts = pd.Series([v.status for v in verdicts]).value_counts().to_dict() if verdicts else {}
    lines = [f"== {title}: " + (", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no cells")]
    shown = [v for v in verdicts if v.status != "same"][:limit] or verdicts[:5]
    for v in shown:
        p = v.p_faster if v.status == "improvement" else v.p_slower
        lines.append(f"  {v.status:12} {v.ratio:7.3f}x  p={p:.2g}  "
                     f"base {v.base_median:.3g}  new {v.new_median:.3g}  ({v.base_samples}/{v.new_samples})  {v.cell}")
    return "\n".join(lines)
