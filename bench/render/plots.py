"""Figures for the report, one function each: data in, PNG file names out (matplotlib).

One style in every figure: a backend has its record's colour; a mode has its line style
(analytic solid, autodiff dashed); a variant has its marker. Each figure has one legend, outside
its panels, and the panels are spaced for their titles and tick labels, so that no legend covers
data and no title runs into another panel. Figures are made per device (CPU and GPU never share a line).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Figure objects, not pyplot: no global backend is chosen, so a notebook that calls the report or
# the results' display keeps its own (matplotlib: "Embedding in a web application server").
from matplotlib.figure import Figure

from problems import DERIVATIVE_KINDS

from bench.core.schema import KEY

MODE_STYLES = {"analytic": "-", "autodiff": "--"}
MARKERS = ["o", "s", "^", "D", "v", "P"]
DERIVATIVE_ORDER = DERIVATIVE_KINDS
PANEL = (3.6, 2.8)  # inches per panel


def colour(backend: str) -> str:
    """A backend's colour in every figure, from its record (a backend no longer registered: grey)."""
    import backends

    try:
        return backends.get(backend).colour
    except ValueError:
        return "0.5"


def _size_name(problem: str) -> str:
    import problems

    try:
        return problems.get(problem).size_name
    except ValueError:  # a CSV from a problem this version no longer has
        return "n"


def _style(backend: str, mode: str, variant_index: int) -> dict:
    return dict(color=colour(backend), linestyle=MODE_STYLES.get(mode, ":"),
                marker=MARKERS[variant_index % len(MARKERS)], markersize=3.5, linewidth=1.2)


def _figure(rows: int, columns: int, *, sharey=False, sharex=False):
    fig = Figure(figsize=(PANEL[0] * columns, PANEL[1] * rows + 0.5))
    axes = fig.subplots(rows, columns, squeeze=False, sharey=sharey, sharex=sharex)
    return fig, axes


def _save(fig, folder: Path, name: str, title: str) -> str:
    """One legend for the whole figure, right of the panels; hidden panels removed; then save."""
    handles = {}
    for ax in fig.axes:
        if not ax.get_visible():
            fig.delaxes(ax)
            continue
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    # fixed spacing with room for each panel's title and tick labels (cheaper than a layout engine,
    # which renders the figure once more)
    fig.subplots_adjust(hspace=0.5, wspace=0.3, left=0.5 / fig.get_figwidth(), right=0.99,
                        top=1 - 0.55 / fig.get_figheight())
    fig.suptitle(title, fontsize=11, y=1 - 0.15 / fig.get_figheight())
    if handles:  # beside the panels; the saved image grows to hold it (bbox_inches="tight")
        fig.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.97), fontsize=7,
                   frameon=False)
    fig.savefig(folder / name, dpi=100, bbox_inches="tight")
    return name


def _band(ax, part: pd.DataFrame, label: str, column: str = "time_s", **style):
    """The estimate as a line, its 95% interval as a band (where it has one: two passes or more)."""
    part = part.sort_values("n")
    ax.plot(part["n"], part[column], label=label, **style)
    if f"{column.removesuffix('_s')}_lo" in part:
        lo, hi = part[f"{column.removesuffix('_s')}_lo"], part[f"{column.removesuffix('_s')}_hi"]
        ax.fill_between(part["n"], lo, hi, alpha=0.15, color=style.get("color"), linewidth=0)


def _loglog(ax, title: str, ylabel: str | None = None, xlabel: str | None = None):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(which="both", labelsize=7)


def _variant_lines(ax, part: pd.DataFrame, column: str = "time_s"):
    for (backend, mode), by_mode in part.groupby(["backend", "mode"], observed=True):
        for i, (variant, line) in enumerate(by_mode.groupby("variant", observed=True)):
            _band(ax, line, f"{backend} {mode} ({variant})", column, **_style(backend, mode, i))


def headline(stats: pd.DataFrame, folder: Path) -> list[str]:
    """Time to reach f - f* <= eps vs n: one panel per backend, analytic vs autodiff variants."""
    names = []
    solve = stats[(stats["task"] == "solve") & (stats["derivative"] == "gd")]
    for (problem, device), part in solve.groupby(["problem", "device"], observed=True):
        backends = sorted(part["backend"].unique())
        fig, axes = _figure(1, len(backends), sharey=True)
        reference = part[(part["backend"] == "numpy") & (part["mode"] == "analytic")]
        for ax, backend in zip(axes[0], backends):
            if backend != "numpy" and not reference.empty:
                _band(ax, reference, "numpy analytic (reference)", color="0.6", linestyle=":", linewidth=1.0)
            _variant_lines(ax, part[part["backend"] == backend])
            _loglog(ax, f"{backend}", "time to ε [s]" if ax is axes[0][0] else None, "n")
        names.append(_save(fig, folder, f"headline_{problem}_{device}.png",
                           f"{problem} ({device}): gradient descent to f − f* ≤ ε (estimate, 95% interval band)"))
    return names


def second_order(stats: pd.DataFrame, folder: Path) -> list[str]:
    """Time to eps vs n per solver (bench.measure.solvers): one panel per solver, every backend, mode and
    variant in each, on a shared axis, so that solvers compare across panels."""
    from bench.analysis.summary import newton_type_groups
    from bench.measure.solvers import SOLVERS

    names = []
    for (problem, device), part in newton_type_groups(stats).groupby(["problem", "device"], observed=True):
        solvers = [s for s in SOLVERS if s in set(part["derivative"])]
        fig, axes = _figure(1, len(solvers), sharey=True)
        for ax, solver in zip(axes[0], solvers):
            _variant_lines(ax, part[part["derivative"] == solver])
            _loglog(ax, SOLVERS[solver].title, "time to ε [s]" if ax is axes[0][0] else None, _size_name(problem))
        names.append(_save(fig, folder, f"second_order_{problem}_{device}.png",
                           f"{problem} ({device}): time to f − f* ≤ ε per solver (estimate, 95% interval band)"))
    return names


def per_call(stats: pd.DataFrame, folder: Path) -> list[str]:
    """Per-call time vs n: rows are derivatives, columns are backends (latency on a GPU)."""
    names = []
    ev = stats[stats["task"] == "eval"]
    for (problem, device), part in ev.groupby(["problem", "device"], observed=True):
        order = [d for d in DERIVATIVE_ORDER if d in set(part["derivative"])]
        backends = sorted(part["backend"].unique())
        fig, axes = _figure(len(order), len(backends), sharex=True, sharey="row")
        for r, derivative in enumerate(order):
            for c, backend in enumerate(backends):
                ax = axes[r][c]
                cell = part[(part["derivative"] == derivative) & (part["backend"] == backend)]
                if cell.empty:
                    ax.set_visible(False)
                    continue
                _variant_lines(ax, cell)
                _loglog(ax, f"{derivative} · {backend}", "time per call [s]" if c == 0 else None,
                        _size_name(problem) if r == len(order) - 1 else None)
        what = ("latency, synchronised every call; " if device != "cpu" else "") + "estimate, 95% interval band"
        names.append(_save(fig, folder, f"per_call_{problem}_{device}.png",
                           f"{problem} ({device}): time per call ({what})"))
    return names


def ratios(ratio: pd.DataFrame, folder: Path) -> list[str]:
    """autodiff / analytic within each backend vs n, one panel per derivative (and the solve).

    The ratio paired per round (its estimate over the passes), with its 95% interval as a band. A
    kind whose analytic result is stored in the data (free by construction) has no cost ratio: it
    is left out."""
    names = []
    ratio = ratio[~ratio["stored"].astype(bool)] if "stored" in ratio else ratio
    from bench.measure.solvers import SOLVERS

    for (problem, device), part in ratio.groupby(["problem", "device"], observed=True):
        present = set(zip(part["task"], part["derivative"]))
        panels = [p for p in (*(("solve", s) for s in SOLVERS), *(("eval", d) for d in DERIVATIVE_ORDER[1:]))
                  if p in present]
        fig, axes = _figure(1, len(panels))
        for ax, (task, derivative) in zip(axes[0], panels):
            cell = part[(part["task"] == task) & (part["derivative"] == derivative)]
            for backend, by_backend in cell.groupby("backend", observed=True):
                for i, (variant, line) in enumerate(by_backend.groupby("variant", observed=True)):
                    line = line.sort_values("n")
                    style = _style(backend, "autodiff", i)
                    ax.plot(line["n"], line["ratio"], label=f"{backend} ({variant})", **style)
                    ax.fill_between(line["n"], line["ratio_lo"], line["ratio_hi"], alpha=0.15, color=style["color"],
                                    linewidth=0)
            ax.axhline(1.0, color="black", linewidth=0.8)
            _loglog(ax, f"{SOLVERS[derivative].title} to ε" if task == "solve" else derivative,
                    "autodiff / analytic" if ax is axes[0][0] else None, _size_name(problem))
        names.append(_save(fig, folder, f"ratio_{problem}_{device}.png",
                           f"{problem} ({device}): autodiff / analytic in the same backend, "
                           "paired per round (95% interval band)"))
    return names


def orders(stats: pd.DataFrame, folder: Path) -> list[str]:
    """k-th derivatives (dk) vs the order k, every backend and variant: time per call, and compile
    time (JAX) or first call minus steady state (others)."""
    names = []
    dk = stats[(stats["task"] == "eval") & (stats["derivative"] == "dk")]
    for (problem, device), part in dk.groupby(["problem", "device"], observed=True):
        fig, axes = _figure(1, 2)
        for ax, column, ylabel in zip(axes[0], ("time_s", "compile_s"),
                                      ("time per call [s]", "compile or first-call excess [s]")):
            for (backend, mode), by_mode in part.groupby(["backend", "mode"], observed=True):
                for i, (variant, line) in enumerate(by_mode.groupby("variant", observed=True)):
                    line = line.sort_values("n")
                    ax.plot(line["n"], line[column].clip(lower=1e-7), label=f"{backend} {mode} ({variant})",
                            **_style(backend, mode, i))
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.25)
            ax.set_xlabel(_size_name(problem), fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(which="both", labelsize=7)
        names.append(_save(fig, folder, f"orders_{problem}_{device}.png",
                           f"{problem} ({device}): the k-th derivative by order; "
                           "nested autodiff ends where it declines"))
    return names


def cheap_gradient(gf: pd.DataFrame, hg: pd.DataFrame, folder: Path) -> list[str]:
    """grad / f and hvp / grad time ratios per backend, one figure per device."""
    names = []
    devices = sorted(set(gf.get("device", [])) | set(hg.get("device", [])))
    for device in devices:
        g = gf[gf["device"] == device] if not gf.empty else gf
        h = hg[hg["device"] == device] if not hg.empty else hg
        problems = sorted(set(g.get("problem", [])) | set(h.get("problem", [])))
        fig, axes = _figure(2, len(problems), sharey="row")
        for row, (ratios_, ylabel, band) in enumerate((
                (g, "grad time / f time", (2.0, 4.0)), (h, "hvp time / grad time", (2.0, 5.0)))):
            for ax, problem in zip(axes[row], problems):
                part = ratios_[ratios_["problem"] == problem] if not ratios_.empty else ratios_
                if part.empty:
                    ax.set_visible(False)
                    continue
                for (backend, mode), by_mode in part.groupby(["backend", "mode"], observed=True):
                    for i, (variant, line) in enumerate(by_mode.groupby("variant", observed=True)):
                        line = line.sort_values("n")
                        ax.plot(line["n"], line["ratio"], label=f"{backend} {mode} ({variant})",
                                **_style(backend, mode, i))
                ax.axhspan(*band, color="tab:green", alpha=0.08,
                           label="grad/f: 2 (the course) to 4 (reverse mode's bound); hvp/grad: 2 to 5")
                _loglog(ax, problem if row == 0 else "", ylabel if ax is axes[row][0] else None,
                        "n" if row == 1 else None)
        names.append(_save(fig, folder, f"cheap_gradient_{device}.png",
                           f"Cheap gradient principle ({device}): a gradient in units of f, "
                           "an HVP in units of a gradient"))
    return names


def memory(df: pd.DataFrame, folder: Path) -> list[str]:
    """Peak extra memory per eval variant vs n: one row per device, one panel per derivative."""
    ev = df[(df["task"] == "eval") & (df["status"] == "ok") & (df["peak_mem_bytes"] > 0)]
    if ev.empty:
        return []
    peaks = (ev.groupby(["problem", "n", "backend", "device", "mode", "derivative", "variant"], observed=True)
             ["peak_mem_bytes"].max().reset_index())
    order = [d for d in DERIVATIVE_ORDER if d in set(peaks["derivative"])]
    devices = sorted(peaks["device"].unique())
    fig, axes = _figure(len(devices), len(order))
    for r, device in enumerate(devices):
        for ax, derivative in zip(axes[r], order):
            # one problem per panel: least squares where it has this derivative, else the first that does
            having = sorted(set(peaks[(peaks["derivative"] == derivative) & (peaks["device"] == device)]["problem"]))
            if not having:
                ax.set_visible(False)
                continue
            problem = "least_squares" if "least_squares" in having else having[0]
            part = peaks[(peaks["derivative"] == derivative) & (peaks["problem"] == problem)
                         & (peaks["device"] == device)]
            for (backend, mode), by_mode in part.groupby(["backend", "mode"], observed=True):
                for i, (variant, line) in enumerate(by_mode.groupby("variant", observed=True)):
                    line = line.sort_values("n")
                    ax.plot(line["n"], line["peak_mem_bytes"] / 2**20, label=f"{backend} {mode} ({variant})",
                            **_style(backend, mode, i))
            _loglog(ax, f"{derivative} ({problem}, {device})", "peak extra memory [MiB]" if ax is axes[r][0] else None,
                    _size_name(problem))
    return [_save(fig, folder, "memory.png", "Peak memory of each variant beyond what its worker held before it "
                                             "(CPU: resident set; GPU: allocator peak, or XLA's plan for JAX)")]


def devices(stats: pd.DataFrame, folder: Path) -> list[str]:
    """CPU vs GPU per backend: time to eps (solve) and gradient time (eval), best variant each;
    on the GPU, latency (sync every call) and throughput (sync once per sample)."""
    from bench.analysis.summary import best_variants

    if stats.empty or stats["device"].nunique() < 2:
        return []
    names = []
    for task, derivative, ylabel in (("solve", "gd", "time to ε [s]"), ("eval", "grad", "time per gradient [s]")):
        part = best_variants(stats[(stats["task"] == task) & (stats["derivative"] == derivative)])
        part = part[part["backend"].isin(part[part["device"] != "cpu"]["backend"].unique())]
        if part.empty:
            continue
        for problem, by_problem in part.groupby("problem", observed=True):
            backends = sorted(by_problem["backend"].unique())
            fig, axes = _figure(1, len(backends), sharey=True)
            for ax, backend in zip(axes[0], backends):
                mine = by_problem[by_problem["backend"] == backend]
                for i, ((device, mode), line) in enumerate(mine.groupby(["device", "mode"], observed=True)):
                    style = _style(backend, mode, 0 if device == "cpu" else 1)
                    _band(ax, line, f"{device} {mode} ({line['variant'].iloc[0]})", **style)
                    if device != "cpu" and line["throughput"].notna().any():
                        ax.plot(line.sort_values("n")["n"], line.sort_values("n")["throughput"], alpha=0.7,
                                label=f"{device} {mode} throughput", **dict(style, marker="x", linestyle=":"))
                _loglog(ax, backend, ylabel if ax is axes[0][0] else None, "n")
            names.append(_save(fig, folder, f"devices_{task}_{problem}.png",
                               f"{problem}: CPU (o) vs GPU (s) latency, and GPU throughput (x), best variant per mode"))
    return names


def machine(df: pd.DataFrame, folder: Path) -> list[str]:
    """The machine during the run: the drift monitor's reference time over its median, per worker,
    and the CPUs other processes used and the hypervisor stole during each cell."""
    cells = df.drop_duplicates(["run_id", "part", *KEY])
    cells = cells.dropna(subset=["ref_numpy_s", "ref_python_s"])
    if cells.empty:
        return []
    fig, axes = _figure(1, 3)
    for ax, column, title in zip(axes[0], ("ref_numpy_s", "ref_python_s"),
                                 ("drift: numpy part (96x96 products)", "drift: pure-Python part (a loop)")):
        for (backend, device), part in cells.groupby(["backend", "device"], observed=True):
            ax.plot(range(len(part)), part[column] / part[column].median(), marker=".", markersize=3, linewidth=0.8,
                    color=colour(backend), linestyle="-" if device == "cpu" else "--", label=f"{backend} ({device})")
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("cells, in the order the worker ran them", fontsize=8)
        ax.grid(True, alpha=0.25)
    axes[0][0].set_ylabel("reference time / its median", fontsize=8)
    load = df.drop_duplicates(["run_id", *KEY])
    ax = axes[0][2]
    if load["load_other_cpus"].notna().any():
        ax.plot(range(len(load)), load["load_other_cpus"], color="tab:red", linewidth=0.8, label="other processes")
        ax.plot(range(len(load)), load["load_steal_cpus"], color="tab:blue", linewidth=0.8,
                label="stolen by the hypervisor")
    ax.set_title("load during each cell", fontsize=9)
    ax.set_ylabel("CPUs", fontsize=8)
    ax.set_xlabel("cells, in run order", fontsize=8)
    ax.grid(True, alpha=0.25)
    return [_save(fig, folder, "machine.png", "The machine during the run: drift monitor and load")]


def roofline(floors: pd.DataFrame, roofs: dict[str, dict], folder: Path) -> list[str]:
    """Per device: each variant at each problem and derivative's largest n, as arithmetic intensity
    (its cost model's flops / bytes) against the GFLOP/s it achieved (flops / time), under the
    machine's two measured roofs, bandwidth x intensity and peak. A marker's distance below its
    roof is its time over its floor."""
    names = []
    cells = floors.dropna(subset=["floor_s"])
    cells = cells[cells["floor_bytes"] > 0]
    for device, part in cells.groupby("device", observed=True):
        roof = roofs.get(device)
        if not roof or part.empty:
            continue
        largest = part[
            part["n"] == part.groupby(["task", "problem", "derivative"], observed=True)["n"].transform("max")]
        fig = Figure(figsize=(8.0, 5.0))
        ax = fig.subplots()
        intensity = largest["floor_flops"] / largest["floor_bytes"]
        achieved = largest["floor_flops"] / largest["time_s"] / 1e9
        xs = np.logspace(np.log10(max(intensity.min() / 3, 1e-3)), np.log10(max(intensity.max() * 3, 10)), 200)
        bandwidth, peak = roof["bandwidth_GBps"], roof["peak_GFLOPs"]
        ax.plot(xs, np.minimum(peak, bandwidth * xs), color="black", linewidth=1.2,
                label=f"roofs: {bandwidth:.1f} GB/s, {peak:.1f} GFLOP/s (measured)")
        for i, ((backend, mode), group) in enumerate(largest.groupby(["backend", "mode"], observed=True)):
            ax.scatter(intensity[group.index], achieved[group.index], s=18, color=colour(backend),
                       marker="o" if mode == "analytic" else "^", label=f"{backend} {mode}", alpha=0.8)
        for _, group in largest.groupby(["task", "problem", "derivative"], observed=True):
            best = group["time_s"].idxmin()  # one label per derivative, at its fastest variant
            ax.annotate(f"{group.loc[best, 'problem']} {group.loc[best, 'derivative']}",
                        (intensity[best], achieved[best]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        _loglog(ax, f"{device}: every variant at its problem's largest n", "achieved GFLOP/s",
                "arithmetic intensity [flop/byte, of the cost model's minimum bytes]")
        names.append(_save(fig, folder, f"roofline_{device}.png",
                           f"Roofline ({device}): how far each derivative is from what the machine allows"))
    return names
