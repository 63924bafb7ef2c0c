"""The HTML report: results CSVs in, reports/index.html and PNG figures out (no server, no network)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

import problems

from bench.analysis import precision
from bench.analysis.findings import CHEAP_GRADIENT_BOUND, DERIVATIVE_NAMES, NEAR, findings, trouble, trust
from bench.analysis.floors import BELOW_FLOOR, roofs_of, with_floors
from bench.analysis.precision import HIGH, has_both
from bench.analysis.summary import (
    NOISY_WIDTH,
    WARN_WIDTH,
    autodiff_ratios,
    best_variants,
    cell_stats,
    grad_over_f,
    hvp_over_grad,
    machines,
    nearest_sizes,
    newton_type_groups,
    noise_flag,
)
from bench.core.formatting import ratio, ratio_interval, seconds, seconds_interval
from bench.core.schema import KEY
from bench.measure.solvers import SOLVERS
from bench.render import plots
from bench.render.catalogue import build_catalogue
from bench.render.peers import SOURCE as PEERS_SOURCE
from bench.sweep.results import read_metadata, read_results


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary table (bench.analysis.summary.summary_table) as a reader scans it: each variant's time and
    paired ratio with their 95% intervals, and the passes behind them."""
    keys = [c for c in ("task", "problem", "derivative", "n", "device", "backend", "mode", "variant")
            if c in summary.columns]
    out = summary[keys].copy()
    out["time [95% interval]"] = [seconds_interval(*v)
                                  for v in summary[["time_s", "time_lo", "time_hi"]].to_numpy()]
    out["autodiff / analytic"] = [ratio_interval(*v) if m == "autodiff" else "–"
                                  for v, m in zip(summary[["ratio", "ratio_lo", "ratio_hi"]].to_numpy(),
                                                  summary["mode"])]
    out["passes"] = summary["passes"]
    return out


def roof_table(roofs: dict[str, dict]) -> str:
    """The measured roofs per device, each with its 95% interval."""
    rows = []
    for device, roof in roofs.items():
        rows.append({"device": device, "threads": roof["threads"],
                     **{f"{kernel} [{unit}]": f"{roof[f'{kernel}_{key}']['estimate']:.1f} "
                                             f"[{roof[f'{kernel}_{key}']['lo']:.1f}, "
                                             f"{roof[f'{kernel}_{key}']['hi']:.1f}]"
                        for kernel, key, unit in (("copy", "GBps", "GB/s"), ("add", "GBps", "GB/s"),
                                                  ("read", "GBps", "GB/s"), ("dgemm", "GFLOPs", "GFLOP/s"),
                                                  *((f"read_{level}", "GBps", "GB/s")
                                                    for level in roof.get("caches", {})))
                        if f"{kernel}_{key}" in roof},
                     "arrays": f"{roof['array_bytes'] / 2**20:.0f} MiB "
                               f"(last-level cache {roof['llc_bytes'] / 2**20:.0f} MiB)",
                     "rounds": roof["rounds"]})
    return _html(pd.DataFrame(rows)) if rows else ""


def roof_notes(roofs: dict[str, dict]) -> list[str]:
    """Per device, the roofs its floors are priced at, in words."""
    return [f"Against the machine ({device}: {roof['bandwidth_GBps']:.1f} GB/s from memory"
            + "".join(f", {c['GBps']:.0f} GB/s from {level} ({c['bytes'] / 2**10:.0f} KiB)"
                      for level, c in roof.get("caches", {}).items())
            + f", {roof['peak_GFLOPs']:.1f} GFLOP/s, measured), a cell's floor is "
            "max(bytes / bandwidth, flops / peak), "
            "the bandwidth that of the smallest level its bytes fit in" for device, roof in roofs.items()
            if "bandwidth_GBps" in roof and "peak_GFLOPs" in roof]


def _written(problem: str, task: str, derivative: str, n: int) -> float:
    """The bytes the formula moves as written over the bytes it must (its cost model), nan where unknown."""
    import problems

    kind = derivative if task == "eval" else "gd" if derivative == "gd" else None
    model = problems.get(problem).cost if problem in problems.names() else None
    try:
        cost = model(kind, int(n)) if model and kind else None
    except Exception:  # a user's cost model that fails: no column value, not a failed report
        cost = None
    return cost.written / cost.bytes if cost and cost.bytes else float("nan")


def floor_table(floors: pd.DataFrame, roofs: dict[str, dict] | None = None) -> pd.DataFrame:
    """Each variant's time over its floor at each problem and derivative's largest n, the level its
    floor was priced at (the cache its data fit in, or memory: a hierarchical roofline), and the
    bytes the formula moves as written over the bytes it must."""
    cells = floors.dropna(subset=["floor_s"]) if "floor_s" in floors else floors.iloc[0:0]
    if cells.empty:
        return pd.DataFrame()
    largest = cells[cells["n"] == cells.groupby(["task", "problem", "derivative"], observed=True)["n"].transform("max")]
    out = largest[["task", "problem", "derivative", "n", "device", "backend", "mode", "variant"]].copy()
    out["time"] = [seconds_interval(*v) for v in largest[["time_s", "time_lo", "time_hi"]].to_numpy()]
    out["floor"] = largest["floor_s"].map(seconds)
    out["time / floor"] = [ratio_interval(*v)
                           for v in largest[["over_floor", "over_floor_lo", "over_floor_hi"]].to_numpy()]
    out["floor priced at"] = largest["floor_level"]
    out["bytes as written / needed"] = [ratio(_written(*v)) for v in
                                        largest[["problem", "task", "derivative", "n"]].itertuples(index=False)]
    return out.sort_values(["task", "problem", "derivative", "device", "backend"])


def fused_table(df: pd.DataFrame, floors: pd.DataFrame) -> pd.DataFrame:
    """At each problem and derivative's largest n with a fused formula: its time over its floor, and
    each autodiff variant of its backend over it (bench.analysis.summary.fused_gains)."""
    from bench.analysis.summary import FUSED, fused_gains

    gains = fused_gains(df)
    if gains.empty or "over_floor" not in floors:
        return pd.DataFrame()
    gains = gains[gains["n"] == gains.groupby(["task", "problem", "derivative"], observed=True)["n"].transform("max")]
    fused = floors[(floors["variant"] == FUSED) & (floors["mode"] == "analytic")]
    keys = list(KEY)
    rows = gains.merge(fused[keys + ["over_floor", "over_floor_lo", "over_floor_hi"]], on=keys, how="left")
    out = rows[["problem", "derivative", "n", "device", "backend"]].copy()
    out["fused time / floor"] = [ratio_interval(*v) for v in rows[["over_floor", "over_floor_lo", "over_floor_hi"]]
                                 .to_numpy()]
    out["autodiff variant"] = rows["variant"]
    out["autodiff / fused"] = [ratio_interval(*v) for v in rows[["gain", "gain_lo", "gain_hi"]].to_numpy()]
    return out.sort_values(["problem", "derivative", "backend", "autodiff variant"])


def versus_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each autodiff variant measured against another of its backend (Enzyme's against JAX's own
    autodiff of the same f), at every size: their paired ratio with its 95% interval
    (bench.analysis.summary.versus_ratios)."""
    from bench.analysis.summary import versus_ratios

    found = versus_ratios(df)
    if found.empty:
        return pd.DataFrame()
    out = found[["task", "problem", "derivative", "n", "device", "backend", "variant", "variant_versus"]].copy()
    out.columns = ["task", "problem", "derivative", "n", "device", "backend", "variant", "against"]
    out["variant / against"] = [ratio_interval(*v) for v in found[["versus", "versus_lo", "versus_hi"]].to_numpy()]
    out["passes"] = found["passes"]
    return out.sort_values(["task", "problem", "derivative", "backend", "variant", "n"])


def sparse_table(stats: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Three ways to a sparse Hessian at every size: the hand-derived nonzeros (the fastest backend's), sparse
    autodiff (asdex, with its colours) and the fastest dense autodiff Hessian, each with its time (95%
    interval) and peak memory; nnz from the problem's pattern. A way that did not run at a size shows why
    where its rows said so (the memory guard's skip)."""
    ev = stats[(stats["task"] == "eval") & stats["derivative"].isin(["sparse_hess", "hess"])]
    sparse_problems = sorted(set(ev.loc[ev["derivative"] == "sparse_hess", "problem"]))
    if not sparse_problems:
        return pd.DataFrame()
    notes = (df[(df["variant"] == "asdex") & (df["status"] == "ok")].groupby(["problem", "n"], observed=True)["message"]
             .first())
    ways = {"hand-derived sparse": ("sparse_hess", "analytic"), "sparse autodiff (asdex)": ("sparse_hess", "autodiff"),
            "dense autodiff": ("hess", "autodiff")}
    out = []
    for problem in sparse_problems:
        for n in sorted(set(ev.loc[ev["problem"] == problem, "n"])):
            row = {"problem": problem, "n": n, "variables": problems.get(problem).dim(int(n)),
                   "nnz": problems.get(problem).sparsity(int(n)).nnz,
                   "colours": (notes.get((problem, n), "") or "").removeprefix("asdex: ").split(" colours")[0]}
            for way, (derivative, mode) in ways.items():
                part = ev[(ev["problem"] == problem) & (ev["n"] == n) & (ev["derivative"] == derivative)
                          & (ev["mode"] == mode)]
                if part.empty:
                    row[way], row[f"{way}: memory"] = "–", "–"
                    continue
                best = part.loc[part["time_s"].idxmin()]
                row[way] = f"{seconds_interval(best['time_s'], best['time_lo'], best['time_hi'])} ({best['backend']} " \
                           f"{best['variant']})"
                peak = best["peak_mem_bytes"]
                row[f"{way}: memory"] = f"{peak / 2**20:.0f} MiB" if peak > 0 else "–"
            out.append(row)
    return pd.DataFrame(out)


def below_floor_table(floors: pd.DataFrame, roofs: dict[str, dict] | None = None) -> pd.DataFrame:
    """Every cell that ran faster than BELOW_FLOOR times its floor, with the cost model it was priced
    by and the level its floor was priced at: a wrong cost model or roof for that cell, named."""
    if "below_floor" not in floors or not floors["below_floor"].any():
        return pd.DataFrame()
    cells = floors[floors["below_floor"]]
    out = cells[["task", "problem", "derivative", "n", "device", "backend", "mode", "variant"]].copy()
    out["time / floor"] = [ratio_interval(*v)
                           for v in cells[["over_floor", "over_floor_lo", "over_floor_hi"]].to_numpy()]
    out["floor priced at"] = cells["floor_level"]
    out["cost model"] = [f"problems.get({p!r}).cost" for p in cells["problem"]]
    return out.sort_values(["task", "problem", "derivative", "n", "backend"])


def headline_table(stats: pd.DataFrame) -> pd.DataFrame:
    """Time to eps at n near 10, 1000 and 10^4 with its 95% interval, best variant each."""
    solve = best_variants(stats[(stats["task"] == "solve") & (stats["derivative"] == "gd")])
    if solve.empty:
        return pd.DataFrame()
    sizes = nearest_sizes(solve["n"])
    keys = ["problem", "device", *machines(solve), "backend", "mode", "variant"]
    rows = []
    for values, part in solve.groupby(keys, observed=True):
        row = dict(zip(keys, values))
        for n in sizes.values():
            hit = part[part["n"] == n]
            row[f"n={n}"] = (seconds_interval(hit["time_s"].iloc[0], hit["time_lo"].iloc[0], hit["time_hi"].iloc[0])
                             if len(hit) else "–")
        row["iterations"] = "/".join(str(int(i)) for i in sorted(part["iterations"].dropna().unique())[:3])
        row["compile"] = seconds(part["compile_s"].median())
        rows.append(row)
    return pd.DataFrame(rows)


def second_order_table(stats: pd.DataFrame) -> pd.DataFrame:
    """Time to eps per problem, n, solver, backend and mode (best variant each), fastest first within
    each size, with the calls a run made and its time over the size's winner."""
    solve = best_variants(newton_type_groups(stats))
    if solve.empty:
        return pd.DataFrame()
    solve = solve.sort_values(["problem", "device", "n", "time_s"])
    fastest = solve.groupby(["problem", "device", "n"], observed=True)["time_s"].transform("min")
    out = solve[["problem", "device", "n"]].copy()
    out["solver"] = solve["derivative"].map(lambda d: SOLVERS[d].title if d in SOLVERS else d)
    out["backend · mode (variant)"] = solve["backend"] + " · " + solve["mode"] + " (" + solve["variant"] + ")"
    out["time to ε"] = [seconds_interval(*v) for v in solve[["time_s", "time_lo", "time_hi"]].to_numpy()]
    out["× fastest"] = (solve["time_s"] / fastest).map(ratio)
    out["iterations"] = solve["iterations"].map(lambda v: "–" if pd.isna(v) else str(int(v)))
    out["HVPs"] = solve["hvp_calls"].map(lambda v: "–" if pd.isna(v) or v == 0 else str(int(v)))
    out["Hessians"] = solve["hess_calls"].map(lambda v: "–" if pd.isna(v) or v == 0 else str(int(v)))
    out["compile"] = solve["compile_s"].map(seconds)
    return out


def payoff_table(ratios: pd.DataFrame) -> pd.DataFrame:
    """Do the hand-derived derivatives pay off in a Newton-type solver? Per problem, device and solver
    at the largest n, each backend's fastest autodiff variant: time to eps, autodiff / hand-derived
    paired within the backend, read by its 95% interval."""
    part = ratios[(ratios["task"] == "solve") & (ratios["derivative"] != "gd")] if not ratios.empty else ratios
    rows = []
    for (problem, device, solver), by in part.groupby(["problem", "device", "derivative"], observed=True):
        at = by[by["n"] == by["n"].max()]
        for _, r in at.loc[at.groupby("backend", observed=True)["ratio"].idxmin()].iterrows():
            verdict = ("no interval (one pass)" if not (np.isfinite(r["ratio_lo"]) and np.isfinite(r["ratio_hi"]))
                       else "hand-derived faster" if r["ratio_lo"] > 1
                       else "autodiff faster" if r["ratio_hi"] < 1 else "no difference shown")
            rows.append({"problem": problem, "device": device, "n": int(r["n"]),
                         "solver": SOLVERS[solver].title if solver in SOLVERS else solver,
                         "hand-derived": DERIVATIVE_NAMES.get(SOLVERS[solver].kind, "–") if solver in SOLVERS else "–",
                         "backend": r["backend"], "autodiff variant": r["variant"],
                         "autodiff / hand-derived": ratio_interval(r["ratio"], r["ratio_lo"], r["ratio_hi"]),
                         "pays off?": verdict})
    return pd.DataFrame(rows)


def variant_table(stats: pd.DataFrame) -> pd.DataFrame:
    """Per backend, device and derivative with several autodiff variants: which is fastest, in how
    many cells (problem and n), in how many of those its 95% interval lies clear below the next
    one's, and how far ahead of the next it is at the median."""
    ad = stats[(stats["mode"] == "autodiff") & (stats["task"] == "eval")]
    rows = []
    for (backend, device, derivative), part in ad.groupby(["backend", "device", "derivative"], observed=True):
        if part["variant"].nunique() < 2:
            continue
        cells = part.pivot_table(index=["problem", "n"], columns="variant", values="time_s").dropna()
        if cells.empty:
            continue
        # (a variant timed in one pass everywhere has no interval: all its ends are nan, kept as columns)
        hi, lo = (part.pivot_table(index=["problem", "n"], columns="variant", values=end, dropna=False)
                  .reindex(index=cells.index, columns=cells.columns) for end in ("time_hi", "time_lo"))
        fastest = cells.idxmin(axis=1)
        top = fastest.value_counts().idxmax()
        runner_up = cells.drop(columns=top).idxmin(axis=1)
        factor = float(np.median(cells.drop(columns=top).min(axis=1) / cells[top]))
        clear = sum(bool(hi.loc[i, top] < lo.loc[i, runner_up[i]]) for i in cells.index[fastest == top])
        rows.append({"derivative": derivative, "backend": backend, "device": device, "fastest variant": top,
                     "fastest in": f"{int((fastest == top).sum())} of {len(cells)} cells",
                     "its interval clear below the next one's": clear, "ahead of the next (median)": ratio(factor)})
    return pd.DataFrame(rows)


def cheap_gradient_table(gf: pd.DataFrame) -> pd.DataFrame:
    """Gradient time over f's time per device, backend and mode (median over problems, sizes and
    variants) against reverse mode's bound of about CHEAP_GRADIENT_BOUND."""
    if gf.empty:
        return pd.DataFrame()
    medians = gf.groupby(["device", "backend", "mode"], observed=True)["ratio"].median().reset_index()
    verdict = np.where(medians["ratio"] > CHEAP_GRADIENT_BOUND, "beyond", "within")
    return medians.assign(**{"gradient / f (median)": medians["ratio"].map(ratio),
                             f"against the bound of about {CHEAP_GRADIENT_BOUND:g}": verdict}).drop(columns="ratio")


def within(part: pd.DataFrame) -> str:
    """Over one line's sizes: where autodiff comes within NEAR of the hand-written derivative, by its
    intervals ("within" only where the interval lies below NEAR, "beyond" only where it lies above)."""
    part = part.sort_values("n")
    inside = (part["ratio_hi"] <= NEAR).to_numpy()
    if inside.all():
        return "every n"
    if inside[-1]:
        return f"n ≥ {int(part['n'].iloc[len(inside) - int(np.argmin(inside[::-1]))])}"
    if (part["ratio_lo"] > NEAR).all():
        return "beyond at every n"
    return "not shown"


def ratio_table(ratios: pd.DataFrame):
    """autodiff / analytic with its 95% interval at small, medium and large n per backend and
    derivative, and the sizes where its interval lies within NEAR: a heat map, the largest ratio at the
    largest n first. Kinds whose analytic result is stored in the data read "free by construction",
    never a cost ratio."""
    if ratios.empty:
        return None
    rows = []
    keys = ["task", "problem", "derivative", "device", *machines(ratios), "backend", "variant"]
    for values, part in ratios.groupby(keys, observed=True):
        sizes = nearest_sizes(part["n"])
        row = dict(zip(keys, values))
        row.update({"autodiff variant": row.pop("variant"), "free": bool(part["stored"].any())})
        for label, target in (("small n", 10), ("medium n", 1000), ("large n", 10000)):
            hit = part[part["n"] == sizes.get(target)]
            found = len(hit) > 0
            row[label] = float(hit["ratio"].iloc[0]) if found else float("nan")
            row[f"{label} text"] = (ratio_interval(hit["ratio"].iloc[0], hit["ratio_lo"].iloc[0],
                                                   hit["ratio_hi"].iloc[0])
                                    + f" (n={int(sizes[target])})") if found else "–"
        row[f"within {NEAR}×"] = within(part)
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(["free", "large n"], ascending=[True, False])
    labels = ("small n", "medium n", "large n")
    shown = table.drop(columns=["free", *labels]).rename(columns={f"{label} text": label for label in labels})
    shown = shown.reset_index(drop=True)
    for label in labels:
        shown.loc[table["free"].to_numpy(), label] = "free by construction"
    shown.loc[table["free"].to_numpy(), f"within {NEAR}×"] = "–"
    heat = table[list(labels)].reset_index(drop=True)
    heat.loc[table["free"].to_numpy(), :] = np.nan

    def colour(column):
        import matplotlib

        logs = np.log10(heat[column.name].clip(lower=0.5, upper=100.0))
        cmap = matplotlib.colormaps["YlOrRd"]
        styles = []
        for v in logs:
            if v != v:
                styles.append("")
                continue
            r, g, b, _ = cmap((v + 0.3) / 2.3)
            # dark text on light cells, white on dark ones (relative luminance, WCAG's weights)
            text = "#000" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "#fff"
            styles.append(f"background-color: {matplotlib.colors.to_hex((r, g, b))}; color: {text}")
        return styles

    return (shown.style.apply(colour, subset=list(labels)).hide(axis="index")
            .set_table_attributes('class="data"'))


FIELD_DERIVATIVES = ("grad", "newton", "hvp")  # what the peers time, and the HVP beside them


def field_tables(ratios: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The field's workloads (problems tagged "gradbench"): autodiff / hand-derived per backend
    and device at the smallest and largest n; and the peers' own published ratios as context."""
    import problems as registry

    from bench.render.peers import PUBLISHED

    field = {p for p in ratios["problem"].unique() if p in registry.names() and "gradbench" in registry.get(p).tags}
    part = ratios[(ratios["task"] == "eval") & ratios["problem"].isin(field)
                  & ratios["derivative"].isin(FIELD_DERIVATIVES)]
    rows = []
    for (problem, derivative, device, backend, variant), line in part.groupby(
            ["problem", "derivative", "device", "backend", "variant"], observed=True):
        line = line.sort_values("n")
        size = registry.get(problem).size_name
        first, last = line.iloc[0], line.iloc[-1]
        rows.append({"workload": problem, "derivative": derivative, "device": device, "backend": backend,
                     "autodiff variant": variant,
                     "smallest": f"{ratio_interval(first['ratio'], first['ratio_lo'], first['ratio_hi'])} "
                                 f"({size}={first['n']})",
                     "largest": f"{ratio_interval(last['ratio'], last['ratio_lo'], last['ratio_hi'])} "
                                f"({size}={last['n']})"})
    peers = [{"workload": workload, "what GradBench times": what, "tool": tool,
              "tool / manual C++": ", ".join(f"{cell} {ratio(value)}" for cell, value in cells)}
             for workload, (what, tools) in PUBLISHED.items() if workload in field for tool, cells in tools.items()]
    return pd.DataFrame(rows), pd.DataFrame(peers)


def compile_table(stats: pd.DataFrame) -> pd.DataFrame:
    if stats.empty:
        return pd.DataFrame()
    g = stats.groupby(["task", "backend", "device", "mode", "variant", "derivative"], observed=True)["compile_s"]
    table = g.agg(["median", "max"]).reset_index()
    table = table[table["max"] > 0]
    table["median"] = table["median"].map(seconds)
    table["max"] = table["max"].map(seconds)
    return table.rename(columns={"median": "median compile", "max": "max compile"})


def correctness_tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One line per backend and device (the largest relative error, and where), and the full table."""
    measured = df[df["rel_err"].notna()]
    if measured.empty:
        return pd.DataFrame(), pd.DataFrame()
    keys = ["task", "problem", "backend", "device", "mode", "derivative"]
    full = (measured.groupby(keys, observed=True)
            .agg(max_rel_err=("rel_err", "max"), largest_n=("n", "max")).reset_index())
    wrong = df[df["status"] == "wrong"].groupby(keys, observed=True).size().rename("wrong cells")
    full = full.merge(wrong.reset_index(), how="left", on=keys).fillna({"wrong cells": 0})
    lines = []
    for (backend, device), part in full.groupby(["backend", "device"], observed=True):
        rows = measured[(measured["backend"] == backend) & (measured["device"] == device)]
        worst = rows.loc[rows["rel_err"].idxmax()]
        lines.append({"backend": backend, "device": device, "checked": len(part),
                      "wrong": int(part["wrong cells"].sum()), "largest relative error": f"{worst['rel_err']:.1e}",
                      "where": f"{worst['problem']} n={worst['n']} {worst['mode']} {worst['derivative']} "
                               f"({worst['variant']})"})
    full["max_rel_err"] = full["max_rel_err"].map(lambda e: f"{e:.1e}")
    return pd.DataFrame(lines), full


def flagged_table(df: pd.DataFrame, stats: pd.DataFrame, ratios: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What was not timed (with the reason), and the variants whose time or paired ratio has a
    95% interval wider than +-WARN_WIDTH (noisy: +-NOISY_WIDTH; or timed in one pass only)."""
    failed = df[df["status"] != "ok"]
    failed = (failed.groupby(["task", "problem", "n", "backend", "device", "mode", "derivative", "variant",
                              "status"], observed=True, dropna=False)["message"].first().reset_index())
    keys = ["task", "problem", "n", "backend", "device", "mode", "derivative", "variant"]
    wide = stats[["task", "problem", "n", "backend", "device", "mode", "derivative", "variant", "time_s", "time_lo",
                  "time_hi", "half_width", "passes"]]
    if not ratios.empty:
        wide = wide.merge(ratios.assign(mode="autodiff")[keys + ["ratio", "ratio_lo", "ratio_hi", "half_width"]],
                          on=keys, how="left", suffixes=("", "_ratio"))
    else:
        wide = wide.assign(ratio=np.nan, ratio_lo=np.nan, ratio_hi=np.nan, half_width_ratio=np.nan)
    width = wide[["half_width", "half_width_ratio"]].max(axis=1)
    wide = wide.assign(width=width, noise=width.map(noise_flag))
    wide = wide[wide["noise"] != "ok"].sort_values("width", ascending=False)
    shown = wide[keys + ["passes", "noise"]].copy()
    shown["time"] = [seconds_interval(*v) for v in zip(wide["time_s"], wide["time_lo"], wide["time_hi"])]
    shown["ratio"] = [ratio_interval(*v) for v in zip(wide["ratio"], wide["ratio_lo"], wide["ratio_hi"])]
    return failed, shown


def drift_summary(df: pd.DataFrame) -> dict | None:
    """How much the machine's speed varied during the run, from the drift monitor's columns."""
    from bench.measure.drift import variation

    cells = df.drop_duplicates(["run_id", "part"] + list(KEY)).dropna(subset=["ref_numpy_s", "ref_python_s"])
    if cells.empty:
        return None
    cells = cells.assign(host=cells["host"].fillna(""))  # machines differ: each varies on its own
    workers = {f"{b}/{d}" + (f" on {h}" if h else ""): (variation(part["ref_numpy_s"]), variation(part["ref_python_s"]))
               for (h, b, d), part in cells.groupby(["host", "backend", "device"], observed=True)}
    hosts = [(variation(part["ref_numpy_s"]), variation(part["ref_python_s"])) for _, part in cells.groupby("host")]
    worst = max(workers, key=lambda w: max(workers[w]))
    return {"numpy": max(h[0] for h in hosts), "python": max(h[1] for h in hosts),
            "cells": len(cells), "worst": worst, "worst_numpy": workers[worst][0],
            "worst_python": workers[worst][1]}


def spread_notes(df: pd.DataFrame) -> list[str]:
    """Per machine class in the results: which cells' intervals include a measured run-to-run spread
    (and so hold a rerun's estimate), and which hold this run's passes only."""
    from bench.analysis import spread
    from bench.analysis.summary import threads_of

    notes = []
    for machine, rows in df[df["status"] == "ok"].groupby("machine"):
        if not str(machine):
            continue
        record = spread.measured(str(machine))
        threads = threads_of(rows)
        groups = sorted({(str(t), str(b)) for t, b in zip(rows["task"], rows["backend"])})
        covered = [g for g in groups if record and spread.lookup(str(machine), g[1], "ratio", g[0], threads)]
        bare = [f"{b} {t}" for t, b in groups if (t, b) not in covered]
        if covered:
            notes.append(f"{machine}: the intervals of {', '.join(f'{b} {t}' for t, b in covered)} include this "
                         f"machine class's run-to-run spread, measured {record['measured'][:10]} "
                         f"({' '.join(_held_out(record))}), so that they hold a rerun's estimate in the same "
                         "session, not only this run's passes")
        if bare:
            failed = sorted(f"{e['backend']} {e['task']}" for e in (record or {}).get("entries", [])
                            if e["kind"] == "ratio" and spread.failed_held_out(e))
            notes.append(f"{machine}: the intervals of {', '.join(bare)} hold the passes of this run only: no "
                         f"run-to-run spread was measured for them at {threads or 'this'} thread(s) "
                         + (f"(or, for {', '.join(failed)}, the one measured did not hold on the runs held out) "
                            if failed else "")
                         + "(make reproducibility-record), so a rerun may fall outside them")
    return notes


def _held_out(record: dict) -> list[str]:
    """How a spread record was measured, in words."""
    held = [e for e in record.get("entries", []) if e.get("held_out_coverage") is not None and e["kind"] == "ratio"]
    if not held:
        return [f"from {len(record.get('runs', []))} back-to-back runs, in sample"]
    cells = sum(e["held_out_cells"] for e in held)
    inside = sum(e["held_out_coverage"] * e["held_out_cells"] for e in held)
    return [f"on {len(record['runs'])} runs; on {len(record['held_out_runs'])} runs held out, the change "
            f"intervals held {inside / cells:.0%} of {cells} paired ratios"]


def shared_hosts(df: pd.DataFrame) -> str | None:
    """A warning naming the cells timed on a host that other Dask workers shared at the time."""
    shared = df[df["host_workers"].fillna(1) > 1].drop_duplicates(["run_id", "part"] + list(KEY))
    if shared.empty:
        return None
    hosts = ", ".join(f"{h} ({int(k)} workers)" for h, k in
                      shared.groupby("host", observed=True)["host_workers"].max().items())
    return (f"{len(shared)} cell parts ran on a host shared with other Dask workers: {hosts}. Their times "
            "include the neighbours' load (column host_workers); give each machine one worker to time alone.")


def precision_section(everything: pd.DataFrame, roofs: dict[str, dict]) -> dict:
    """The tables and findings of "float32 beside float64" (bench.analysis.precision), from both dtypes' rows."""
    stats = cell_stats(everything)
    floors = with_floors(stats, roofs)
    return {"times": _html(precision.time_table(everything, floors)),
            "ratios": _html(precision.ratio_by_dtype(autodiff_ratios(everything))),
            "accuracy": _html(precision.accuracy_table(everything)),
            "apart": _html(precision.apart(precision.accuracy(everything)).drop(columns=["task", "device"])),
            "solves": _html(_solve_by_dtype(stats)),
            "findings": precision.findings(everything, stats, floors), "factor": precision.APART,
            "eps": {d: precision._eps(everything, d) for d in (precision.LOW, HIGH)}}


def _solve_by_dtype(stats: pd.DataFrame) -> pd.DataFrame:
    """Each solve cell's fastest variant per backend in each dtype: iterations and time to its dtype's eps."""
    solves = stats[stats["task"] == "solve"]
    if solves.empty:
        return pd.DataFrame()
    keys = ["problem", "derivative", "n", "backend", "dtype"]
    best = solves.sort_values("time_s").groupby(keys, observed=True).first().reset_index()
    return pd.DataFrame({"problem": best["problem"], "solver": best["derivative"], "n": best["n"],
                         "backend": best["backend"], "dtype": best["dtype"], "variant": best["variant"],
                         "iterations": best["iterations"],
                         "time to ε": [seconds_interval(*v) for v in best[["time_s", "time_lo", "time_hi"]].to_numpy()]}
                        ).sort_values(["problem", "solver", "n", "backend", "dtype"])


def _html(table) -> str:
    if table is None or (isinstance(table, pd.DataFrame) and table.empty):
        return "<p class='empty'>nothing to show</p>"
    if not isinstance(table, pd.DataFrame):  # a pandas Styler
        return table.to_html()
    return table.to_html(index=False, classes="data", border=0, na_rep="–", escape=True)


def build_report(csv_paths: list[Path], out: Path) -> Path:
    """Write out/index.html and its figures; returns the index path."""
    out.mkdir(parents=True, exist_ok=True)
    everything = read_results(csv_paths)
    meta = read_metadata(csv_paths)
    roofs = roofs_of(meta)
    # every section but the precisions' shows one dtype (float64 where the run has it), so that no figure draws
    # two precisions as one line; "float32 beside float64" puts them side by side
    main_dtype = HIGH if HIGH in set(everything["dtype"].dropna()) else str(everything["dtype"].dropna().iloc[0]) \
        if everything["dtype"].notna().any() else HIGH
    df = everything[everything["dtype"].fillna(HIGH) == main_dtype]
    precisions = precision_section(everything, roofs) if has_both(everything) else None
    stats = cell_stats(df)
    floors = with_floors(stats, roofs)
    ratios = autodiff_ratios(df)
    gf = grad_over_f(stats)
    hg = hvp_over_grad(stats)
    figures = {
        "headline": plots.headline(stats, out),
        "second_order": plots.second_order(stats, out),
        "per_call": plots.per_call(stats, out),
        "ratios": plots.ratios(ratios, out),
        "orders": plots.orders(stats, out),
        "cheap_gradient": plots.cheap_gradient(gf, hg, out),
        "memory": plots.memory(df, out),
        "devices": plots.devices(stats, out),
        "machine": plots.machine(df, out),
        "roofline": plots.roofline(floors, roofs, out),
    }
    failed, noisy = flagged_table(df, stats, ratios)
    correctness, correctness_full = correctness_tables(df)
    field, field_peers = field_tables(ratios)
    second_order = second_order_table(stats)
    payoff = payoff_table(ratios)
    versus = versus_table(df)
    sparse = sparse_table(stats, df)
    drift = drift_summary(df)
    spreads = spread_notes(df)
    catalogue = build_catalogue(out, {name for names in figures.values() for name in names})
    env = Environment(loader=PackageLoader("bench", "templates"), autoescape=select_autoescape())
    html = env.get_template("report.html.j2").render(
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sources=[str(p) for p in csv_paths],
        rows=len(df),
        status_counts=df["status"].value_counts().to_dict(),
        findings=findings(df, stats, ratios, gf, floors, roofs) + (precisions or {}).get("findings", []),
        precisions=precisions,
        main_dtype=main_dtype if precisions else None,
        roofs=roof_table(roofs),
        roof_notes=roof_notes(roofs),
        floors=_html(floor_table(floors, roofs)),
        below_floor=_html(below_floor_table(floors, roofs)),
        fused=_html(fused_table(df, floors)),
        versus=_html(versus) if not versus.empty else None,
        sparse=_html(sparse) if not sparse.empty else None,
        below_floor_factor=BELOW_FLOOR,
        warning=" ".join(filter(None, [trust(df, stats, ratios), shared_hosts(df)])) or None,
        figures=figures,
        headline=_html(headline_table(stats)),
        second_order=_html(second_order) if not second_order.empty else None,
        payoff=_html(payoff) if not payoff.empty else None,
        variants=_html(variant_table(stats)),
        cheap_gradient=_html(cheap_gradient_table(gf)),
        trouble=trouble(df, stats, ratios),
        near=NEAR,
        ratios=_html(ratio_table(ratios)),
        compile=_html(compile_table(stats)),
        field=_html(field) if not field.empty else None,
        field_peers=_html(field_peers),
        peers_source=PEERS_SOURCE,
        correctness=_html(correctness),
        correctness_full=_html(correctness_full),
        failed=_html(failed),
        noisy=_html(noisy),
        noisy_count=len(noisy),
        warn_width=WARN_WIDTH,
        noisy_width=NOISY_WIDTH,
        drift=drift,
        spreads=spreads,
        catalogue=catalogue,
        metadata={run_id: json.dumps(m, indent=2, sort_keys=True, default=str) for run_id, m in meta.items()},
    )
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
