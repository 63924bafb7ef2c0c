"""The HTML report: results CSVs in, reports/index.html and PNG figures out (no server, no network)."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from . import plots
from .catalogue import build_catalogue
from .cells import KEY
from .results import read_metadata, read_results
from .summary import autodiff_ratios, best_variants, cell_stats, grad_over_f, hvp_over_grad, nearest_sizes


def seconds(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def _ratio(value) -> str:
    return "–" if pd.isna(value) else f"{value:.2f}×"


def headline_table(stats: pd.DataFrame) -> pd.DataFrame:
    """Time to eps and autodiff/analytic ratio at n near 10, 1000 and 10^4, best variant each."""
    solve = best_variants(stats[stats["task"] == "solve"])
    if solve.empty:
        return pd.DataFrame()
    sizes = nearest_sizes(solve["n"])
    rows = []
    for (problem, device, backend, mode, variant), part in solve.groupby(
            ["problem", "device", "backend", "mode", "variant"], observed=True):
        row = {"problem": problem, "device": device, "backend": backend, "mode": mode, "variant": variant}
        for n in sizes.values():
            hit = part[part["n"] == n]
            row[f"n={n}"] = seconds(hit["median"].iloc[0]) if len(hit) else "–"
        row["iterations"] = "/".join(str(int(i)) for i in sorted(part["iterations"].dropna().unique())[:3])
        row["compile"] = seconds(part["compile_s"].median())
        rows.append(row)
    return pd.DataFrame(rows)


def ratio_table(ratios: pd.DataFrame) -> pd.DataFrame:
    """Median autodiff/analytic ratio at small, medium and large n, per backend and derivative."""
    if ratios.empty:
        return pd.DataFrame()
    rows = []
    for (task, problem, device, derivative, backend, variant), part in ratios.groupby(
            ["task", "problem", "device", "derivative", "backend", "variant"], observed=True):
        sizes = nearest_sizes(part["n"])
        row = {"task": task, "problem": problem, "derivative": derivative, "device": device,
               "backend": backend, "autodiff variant": variant}
        for label, target in (("small n", 10), ("medium n", 1000), ("large n", 10000)):
            n = sizes.get(target)
            hit = part[part["n"] == n]
            row[label] = f"{_ratio(hit['ratio'].iloc[0])} (n={n})" if len(hit) else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def compile_table(stats: pd.DataFrame) -> pd.DataFrame:
    if stats.empty:
        return pd.DataFrame()
    g = stats.groupby(["task", "backend", "mode", "variant", "derivative"], observed=True)["compile_s"]
    table = g.agg(["median", "max"]).reset_index()
    table = table[table["max"] > 0]
    table["median"] = table["median"].map(seconds)
    table["max"] = table["max"].map(seconds)
    return table.rename(columns={"median": "median compile", "max": "max compile"})


def correctness_table(df: pd.DataFrame) -> pd.DataFrame:
    measured = df[df["rel_err"].notna()]
    if measured.empty:
        return pd.DataFrame()
    g = measured.groupby(["problem", "backend", "mode", "derivative"], observed=True)
    table = g.agg(max_rel_err=("rel_err", "max"), largest_n=("n", "max")).reset_index()
    wrong = df[df["status"] == "wrong"].groupby(["problem", "backend", "mode", "derivative"],
                                                 observed=True).size().rename("wrong cells")
    table = table.merge(wrong.reset_index(), how="left").fillna({"wrong cells": 0})
    table["max_rel_err"] = table["max_rel_err"].map(lambda e: f"{e:.1e}")
    return table


def flagged_table(df: pd.DataFrame, stats: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    failed = df[df["status"] != "ok"]
    failed = (failed.groupby(["task", "problem", "n", "backend", "device", "mode", "derivative", "variant",
                              "status"], observed=True, dropna=False)["message"].first().reset_index())
    noisy = stats[stats["noise"] != "ok"][["task", "problem", "n", "backend", "mode", "derivative", "variant",
                                           "median", "spread", "samples", "noise"]].copy()
    noisy["median"] = noisy["median"].map(seconds)
    noisy["spread"] = noisy["spread"].map(lambda s: f"{100 * s:.0f}%")
    noisy["rank"] = noisy["noise"].map({"noisy": 0, "warn": 1})
    return failed, noisy.sort_values(["rank", "task", "problem", "n"]).drop(columns="rank")


def drift_summary(df: pd.DataFrame) -> dict | None:
    """How much the machine's speed varied during the run, from the drift monitor's columns."""
    from .drift import variation

    cells = df.drop_duplicates(["run_id"] + list(KEY)).dropna(subset=["ref_numpy_s", "ref_python_s"])
    if cells.empty:
        return None
    workers = {f"{b}/{d}": (variation(part["ref_numpy_s"]), variation(part["ref_python_s"]))
               for (b, d), part in cells.groupby(["backend", "device"], observed=True)}
    worst = max(workers, key=lambda w: max(workers[w]))
    return {"numpy": variation(cells["ref_numpy_s"]), "python": variation(cells["ref_python_s"]),
            "cells": len(cells), "worst": worst, "worst_numpy": workers[worst][0],
            "worst_python": workers[worst][1]}


def _html(table: pd.DataFrame) -> str:
    if table is None or table.empty:
        return "<p class='empty'>nothing to show</p>"
    return table.to_html(index=False, classes="data", border=0, na_rep="–", escape=True)


def build_report(csv_paths: list[Path], out: Path) -> Path:
    """Write out/index.html and its figures; returns the index path."""
    out.mkdir(parents=True, exist_ok=True)
    df = read_results(csv_paths)
    stats = cell_stats(df)
    ratios = autodiff_ratios(df)
    gf = grad_over_f(stats)
    hg = hvp_over_grad(stats)
    figures = {
        "headline": plots.headline(stats, out),
        "per_call": plots.per_call(stats, out),
        "ratios": plots.ratios(ratios, out),
        "orders": plots.orders(stats, out),
        "cheap_gradient": plots.cheap_gradient(gf, hg, out),
        "memory": plots.memory(df, out),
        "devices": plots.devices(stats, out),
        "drift": plots.drift(df, out),
    }
    failed, noisy = flagged_table(df, stats)
    catalogue = build_catalogue(out, {name for names in figures.values() for name in names})
    meta = read_metadata(csv_paths)
    env = Environment(loader=PackageLoader("bench", "templates"), autoescape=select_autoescape())
    html = env.get_template("report.html.j2").render(
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sources=[str(p) for p in csv_paths],
        rows=len(df),
        status_counts=df["status"].value_counts().to_dict(),
        figures=figures,
        headline=_html(headline_table(stats)),
        ratios=_html(ratio_table(ratios)),
        compile=_html(compile_table(stats)),
        correctness=_html(correctness_table(df)),
        failed=_html(failed),
        noisy=_html(noisy),
        noisy_count=len(noisy),
        drift=drift_summary(df),
        catalogue=catalogue,
        metadata={run_id: json.dumps(m, indent=2, sort_keys=True, default=str) for run_id, m in meta.items()},
    )
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
