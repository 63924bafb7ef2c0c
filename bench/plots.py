"""Figures for the report, one function each: data in, PNG file names out (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
import pandas as pd  # noqa: E402

MODE_COLOURS = {"analytic": "tab:blue", "autodiff": "tab:red"}
STYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D"]
DERIVATIVE_ORDER = ("f", "grad", "hvp", "hess", "jac", "dk")
BACKEND_COLOURS = {"numpy": "tab:gray", "jax": "tab:purple", "torch": "tab:orange", "autograd": "tab:green"}


def _size_name(problem: str) -> str:
    import problems

    try:
        return problems.get(problem).size_name
    except ValueError:  # a CSV from a problem this version no longer has
        return "n"


def _save(fig, folder: Path, name: str) -> str:
    fig.savefig(folder / name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return name


def _band(ax, part: pd.DataFrame, label: str, **style):
    part = part.sort_values("n")
    (line,) = ax.plot(part["n"], part["median"], label=label, markersize=3, **style)
    ax.fill_between(part["n"], part["min"], part["max"], alpha=0.15, color=line.get_color(), linewidth=0)


def _loglog(ax, title: str, ylabel: str | None = None):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    if ylabel:
        ax.set_ylabel(ylabel)


def _variant_lines(ax, part: pd.DataFrame):
    for mode, by_mode in part.groupby("mode", observed=True):
        for i, (variant, line) in enumerate(by_mode.groupby("variant", observed=True)):
            _band(ax, line, f"{mode} ({variant})", color=MODE_COLOURS.get(mode), linestyle=STYLES[i % 4],
                  marker=MARKERS[i % 4])


def headline(stats: pd.DataFrame, folder: Path) -> list[str]:
    """Time to reach f - f* <= eps vs n: one panel per backend, analytic vs autodiff variants."""
    names = []
    solve = stats[stats["task"] == "solve"]
    for (problem, device), part in solve.groupby(["problem", "device"], observed=True):
        backends = sorted(part["backend"].unique())
        fig, axes = plt.subplots(1, len(backends), figsize=(4.2 * len(backends), 3.6), sharey=True,
                                 squeeze=False)
        reference = part[(part["backend"] == "numpy") & (part["mode"] == "analytic")]
        for ax, backend in zip(axes[0], backends):
            if backend != "numpy" and not reference.empty:
                _band(ax, reference, "numpy analytic", color="0.6", linestyle=(0, (1, 1)))
            _variant_lines(ax, part[part["backend"] == backend])
            _loglog(ax, f"{backend} ({device})", "time to eps [s]" if ax is axes[0][0] else None)
            ax.set_xlabel("n")
            ax.legend(fontsize=7)
        fig.suptitle(f"{problem}: gradient descent to f - f* <= eps (median, min-max band)", fontsize=11)
        names.append(_save(fig, folder, f"headline_{problem}_{device}.png"))
    return names


def per_call(stats: pd.DataFrame, folder: Path) -> list[str]:
    """Per-call time vs n: rows are derivatives, columns are backends."""
    names = []
    ev = stats[stats["task"] == "eval"]
    for (problem, device), part in ev.groupby(["problem", "device"], observed=True):
        order = [d for d in DERIVATIVE_ORDER if d in set(part["derivative"])]
        backends = sorted(part["backend"].unique())
        fig, axes = plt.subplots(len(order), len(backends), figsize=(3.6 * len(backends), 2.8 * len(order)),
                                 squeeze=False, sharex=True, sharey="row")
        for r, derivative in enumerate(order):
            for c, backend in enumerate(backends):
                ax = axes[r][c]
                cell = part[(part["derivative"] == derivative) & (part["backend"] == backend)]
                if cell.empty:
                    ax.set_visible(False)
                    continue
                _variant_lines(ax, cell)
                _loglog(ax, f"{derivative} · {backend}", "time per call [s]" if c == 0 else None)
                ax.legend(fontsize=6)
                if r == len(order) - 1:
                    ax.set_xlabel(_size_name(problem))
        fig.suptitle(f"{problem} ({device}): time per call (median, min-max band)", fontsize=11,
                     y=1.0 + 0.06 / len(order))
        names.append(_save(fig, folder, f"per_call_{problem}_{device}.png"))
    return names


def ratios(ratio: pd.DataFrame, folder: Path) -> list[str]:
    """autodiff / analytic time vs n within each backend, one panel per derivative (and the solve)."""
    names = []
    for (problem, device), part in ratio.groupby(["problem", "device"], observed=True):
        derivatives = [d for d in ("gd", *DERIVATIVE_ORDER[1:]) if d in set(part["derivative"])]
        fig, axes = plt.subplots(1, len(derivatives), figsize=(4.2 * len(derivatives), 3.4), squeeze=False)
        for ax, derivative in zip(axes[0], derivatives):
            cell = part[part["derivative"] == derivative]
            for backend, by_backend in cell.groupby("backend", observed=True):
                for i, (variant, line) in enumerate(by_backend.groupby("variant", observed=True)):
                    line = line.sort_values("n")
                    ax.plot(line["n"], line["ratio"], marker=MARKERS[i % 4], markersize=3,
                            linestyle=STYLES[i % 4], label=f"{backend} ({variant})",
                            color=BACKEND_COLOURS.get(backend))
            ax.axhline(1.0, color="black", linewidth=0.8)
            _loglog(ax, "time to eps" if derivative == "gd" else derivative,
                    "autodiff / analytic" if ax is axes[0][0] else None)
            ax.set_xlabel(_size_name(problem))
            ax.legend(fontsize=6)
        fig.suptitle(f"{problem} ({device}): autodiff / analytic, same backend (autograd vs numpy)", fontsize=11)
        names.append(_save(fig, folder, f"ratio_{problem}_{device}.png"))
    return names


def orders(stats: pd.DataFrame, folder: Path) -> list[str]:
    """k-th derivatives (dk) vs the order k, every backend and variant in one panel: time per call,
    and compile time (JAX) or first call minus steady state (others)."""
    names = []
    dk = stats[(stats["task"] == "eval") & (stats["derivative"] == "dk")]
    for (problem, device), part in dk.groupby(["problem", "device"], observed=True):
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8), squeeze=False)
        for ax, column, ylabel in zip(axes[0], ("median", "compile_s"),
                                      ("time per call [s]", "compile or first-call excess [s]")):
            for (backend, mode), by_mode in part.groupby(["backend", "mode"], observed=True):
                for i, (variant, line) in enumerate(by_mode.groupby("variant", observed=True)):
                    line = line.sort_values("n")
                    ax.plot(line["n"], line[column].clip(lower=1e-7), marker="x" if mode == "analytic" else MARKERS[i % 4],
                            markersize=4, linestyle=":" if mode == "analytic" else STYLES[i % 4],
                            color=BACKEND_COLOURS.get(backend), label=f"{backend} {mode} ({variant})")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.25)
            ax.set_xlabel(_size_name(problem))
            ax.set_ylabel(ylabel)
        axes[0][0].legend(fontsize=6)
        fig.suptitle(f"{problem} ({device}): the k-th derivative by order; nested autodiff ends where it declines",
                     fontsize=11)
        names.append(_save(fig, folder, f"orders_{problem}_{device}.png"))
    return names


def cheap_gradient(gf: pd.DataFrame, hg: pd.DataFrame, folder: Path) -> list[str]:
    """grad / f and hvp / grad time ratios per backend: reverse mode's cheap gradient principle."""
    if gf.empty and hg.empty:
        return []
    problems = sorted(set(gf.get("problem", [])) | set(hg.get("problem", [])))
    fig, axes = plt.subplots(2, len(problems), figsize=(4.4 * len(problems), 7.0), squeeze=False, sharey="row")
    for row, (ratios, ylabel, band, band_label) in enumerate((
            (gf, "grad time / f time", (2.0, 4.0), "2 (seed) to 4 (reverse-mode bound)"),
            (hg, "hvp time / grad time", (2.0, 5.0), "2 to 5 (one more sweep, fwd or rev)"))):
        for ax, problem in zip(axes[row], problems):
            part = ratios[ratios["problem"] == problem] if not ratios.empty else ratios
            for (backend, mode), by_mode in part.groupby(["backend", "mode"], observed=True):
                for i, (variant, line) in enumerate(by_mode.groupby("variant", observed=True)):
                    line = line.sort_values("n")
                    ax.plot(line["n"], line["ratio"], marker="x" if mode == "analytic" else MARKERS[i % 4],
                            markersize=3, linestyle=":" if mode == "analytic" else STYLES[i % 2],
                            color=BACKEND_COLOURS.get(backend), label=f"{backend} {mode} ({variant})")
            ax.axhspan(*band, color="tab:green", alpha=0.1, label=band_label)
            _loglog(ax, problem, ylabel if ax is axes[row][0] else None)
            ax.set_xlabel("n")
            ax.legend(fontsize=6)
    fig.suptitle("Cheap gradient principle: a gradient in units of f, an HVP in units of a gradient", fontsize=11)
    return [_save(fig, folder, "cheap_gradient.png")]


def memory(df: pd.DataFrame, folder: Path) -> list[str]:
    """Peak extra memory per eval variant vs n: one panel per derivative, all problems and backends."""
    if "peak_mem_bytes" not in df:
        return []
    ev = df[(df["task"] == "eval") & (df["status"] == "ok") & (df["peak_mem_bytes"] > 0)]
    if ev.empty:
        return []
    peaks = (ev.groupby(["problem", "n", "backend", "mode", "derivative", "variant"], observed=True)
             ["peak_mem_bytes"].max().reset_index())
    order = [d for d in DERIVATIVE_ORDER if d in set(peaks["derivative"])]
    fig, axes = plt.subplots(1, len(order), figsize=(4.2 * len(order), 3.6), squeeze=False)
    for ax, derivative in zip(axes[0], order):
        # one problem per panel: least squares where it has this derivative, else the first that does
        having = sorted(set(peaks[peaks["derivative"] == derivative]["problem"]))
        problem = "least_squares" if "least_squares" in having else having[0]
        part = peaks[(peaks["derivative"] == derivative) & (peaks["problem"] == problem)]
        for (backend, mode), by_mode in part.groupby(["backend", "mode"], observed=True):
            for i, (variant, line) in enumerate(by_mode.groupby("variant", observed=True)):
                line = line.sort_values("n")
                ax.plot(line["n"], line["peak_mem_bytes"] / 2**20, marker=MARKERS[i % 4], markersize=3,
                        linestyle=":" if mode == "analytic" else STYLES[i % 2],
                        color=BACKEND_COLOURS.get(backend), label=f"{backend} {mode} ({variant})")
        _loglog(ax, f"{derivative} ({problem})", "peak extra memory [MiB]" if ax is axes[0][0] else None)
        ax.set_xlabel(_size_name(problem))
        ax.legend(fontsize=6)
    fig.suptitle("Peak memory of each variant beyond what its worker held before it", fontsize=11)
    return [_save(fig, folder, "memory.png")]


def devices(stats: pd.DataFrame, folder: Path) -> list[str]:
    """CPU vs GPU per backend: time to eps (solve) and gradient time (eval), best variant each."""
    from .summary import best_variants

    if stats.empty or stats["device"].nunique() < 2:
        return []
    names = []
    for task, derivative, ylabel in (("solve", "gd", "time to eps [s]"), ("eval", "grad", "time per gradient [s]")):
        part = best_variants(stats[(stats["task"] == task) & (stats["derivative"] == derivative)])
        part = part[part["backend"].isin(part[part["device"] == "cuda"]["backend"].unique())]
        if part.empty:
            continue
        for problem, by_problem in part.groupby("problem", observed=True):
            backends = sorted(by_problem["backend"].unique())
            fig, axes = plt.subplots(1, len(backends), figsize=(4.4 * len(backends), 3.6), sharey=True, squeeze=False)
            for ax, backend in zip(axes[0], backends):
                for (device, mode), line in by_problem[by_problem["backend"] == backend].groupby(["device", "mode"], observed=True):
                    _band(ax, line, f"{device} {mode} ({line['variant'].iloc[0]})", color=MODE_COLOURS.get(mode),
                          linestyle="-" if device == "cuda" else ":", marker="o" if device == "cuda" else "x")
                _loglog(ax, backend, ylabel if ax is axes[0][0] else None)
                ax.set_xlabel("n")
                ax.legend(fontsize=7)
            fig.suptitle(f"{problem}: CPU (dotted) vs GPU (solid), best variant per mode", fontsize=11)
            names.append(_save(fig, folder, f"devices_{task}_{problem}.png"))
    return names


def drift(df: pd.DataFrame, folder: Path) -> list[str]:
    """The drift monitor over the run: each worker's reference time before each cell, over its median."""
    cells = df.drop_duplicates(["run_id", "task", "problem", "n", "backend", "device", "derivative"])
    cells = cells.dropna(subset=["ref_numpy_s", "ref_python_s"])
    if cells.empty:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.2), sharey=True, squeeze=False)
    for ax, column, title in zip(axes[0], ("ref_numpy_s", "ref_python_s"),
                                 ("numpy part (96x96 products)", "pure-Python part (a loop)")):
        for (backend, device), part in cells.groupby(["backend", "device"], observed=True):
            ax.plot(range(len(part)), part[column] / part[column].median(), marker=".", markersize=3,
                    linewidth=0.8, color=BACKEND_COLOURS.get(backend), label=f"{backend} ({device})")
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("cells, in the order the worker ran them")
        ax.grid(True, alpha=0.25)
    axes[0][0].set_ylabel("reference time / its median")
    axes[0][1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Drift monitor: the same reference workload before every cell, per worker", fontsize=11)
    return [_save(fig, folder, "drift.png")]
