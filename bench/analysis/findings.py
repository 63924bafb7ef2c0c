"""What a run found, in sentences computed from its results: the report opens on these.

Every number in a sentence is read from the data passed in; nothing is a fixed claim. Each
sentence links to the figure or table that shows it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import problems

from bench.analysis.summary import NOISY_WIDTH, best_variants, newton_type_groups, noise_flag
from bench.core.load import BUSY_CPUS
from bench.core.schema import KEY, label
from bench.measure.solvers import SOLVERS

NEAR = 1.1  # "autodiff costs about what the hand-written derivative costs"
CHEAP_GRADIENT_BOUND = 4.0  # reverse mode's bound on grad / f (the course says about 2)
DERIVATIVE_NAMES = {"grad": "the gradient", "hvp": "the HVP",
                    "hess": "the dense Hessian", "jac": "the Jacobian", "dk": "the k-th derivative"}
NOISY_SHARE = 0.3  # more than this share of the timed variants with no interval (one pass): the report warns


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


def _what(task: str, derivative: str) -> str:
    """What a cell times, in words: a derivative kind (eval), or a solver run to eps (solve)."""
    if task == "solve":
        return f"{SOLVERS[derivative].title} to ε" if derivative in SOLVERS else derivative
    return DERIVATIVE_NAMES.get(derivative, derivative)


def _interval(estimate: float, lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{_times(estimate)} (one pass, no interval)"
    return f"{_times(estimate)} [{lo:.2f}, {hi:.2f}]"


def _across(rows: pd.DataFrame) -> str:
    """One size's ratios: one problem with its interval, or several as their median, their range
    and the widest of their intervals."""
    if len(rows) == 1:
        r = rows.iloc[0]
        return _interval(r["ratio"], r["ratio_lo"], r["ratio_hi"])
    widths = np.sqrt(rows["ratio_hi"] / rows["ratio_lo"]) - 1
    precision = (f"each within ±{100 * widths.max():.0f}%" if np.isfinite(widths).all() and widths.notna().all()
                 else "not all with an interval")
    return (f"{_times(float(rows['ratio'].median()))} (median of {len(rows)} problems, "
            f"{_times(float(rows['ratio'].min()))} to {_times(float(rows['ratio'].max()))}; {precision})")


def overhead(ratios: pd.DataFrame) -> list[Sentence]:
    """Per device and derivative: where autodiff comes within NEAR of the hand-written derivative,
    per backend (its fastest autodiff variant, over the problems at each n). "Within" is said only
    where every problem's 95% interval lies below NEAR, "beyond" only where every one lies above it."""
    ratios = ratios[~ratios["stored"].astype(bool)] if "stored" in ratios else ratios
    if ratios.empty:
        return []
    out = []
    for (device, task, derivative), part in ratios.groupby(["device", "task", "derivative"], observed=True):
        clauses = []
        for backend, lines in part.groupby("backend", observed=True):
            # the variant with the lowest ratio in geometric mean over problems and n
            best = lines.groupby("variant", observed=True)["ratio"].apply(lambda s: np.log(s).mean()).idxmin()
            line = lines[lines["variant"] == best]
            by_n = line.groupby("n", observed=True)
            within = (by_n["ratio_hi"].max() <= NEAR).sort_index()
            beyond = (by_n["ratio_lo"].min() > NEAR).sort_index()
            sizes = within.index
            smallest, largest = line[line["n"] == sizes[0]], line[line["n"] == sizes[-1]]
            if within.all():
                where = f"within {NEAR}× at every n"
            elif within.iloc[-1]:
                start = len(within) - int(np.argmin(within.to_numpy()[::-1]))
                where = f"within {NEAR}× from n = {int(sizes[start])} on"
            elif beyond.all():
                where = f"beyond {NEAR}× at every n up to n = {int(sizes[-1])} ({_across(largest)} there)"
            else:
                where = f"not shown to be within {NEAR}× at the largest n, {int(sizes[-1])} ({_across(largest)})"
            clauses.append(f"{backend} ({best}) {_across(smallest)} at n = {int(sizes[0])}, {where}")
        out.append(Sentence(f"Autodiff against the hand-written formula for {_what(task, derivative)}"
                            f" ({device}; 95% intervals): " + "; ".join(clauses) + ".", "ratios"))
    return out


def winners(stats: pd.DataFrame) -> list[Sentence]:
    """Per backend and derivative with several autodiff variants: which is fastest, how often, and
    in how many of those cells its interval lies clear below the next one's."""
    ad = stats[(stats["mode"] == "autodiff") & (stats["task"] == "eval")]
    clauses = []
    for (backend, device, derivative), part in ad.groupby(["backend", "device", "derivative"], observed=True):
        if part["variant"].nunique() < 2:
            continue
        cells = part.pivot_table(index=["problem", "n"], columns="variant", values="time_s").dropna()
        if cells.empty:
            continue
        hi = part.pivot_table(index=["problem", "n"], columns="variant", values="time_hi").reindex(cells.index)
        lo = part.pivot_table(index=["problem", "n"], columns="variant", values="time_lo").reindex(cells.index)
        fastest = cells.idxmin(axis=1)
        top = fastest.value_counts().idxmax()
        runner_up = cells.drop(columns=top).idxmin(axis=1)
        factor = float(np.median(cells.drop(columns=top).min(axis=1) / cells[top]))
        clear = sum(bool(hi.loc[i, top] < lo.loc[i, runner_up[i]]) for i in cells.index[fastest == top])
        clauses.append(f"{backend} {DERIVATIVE_NAMES.get(derivative, derivative)} ({device}): {top} fastest in "
                       f"{int((fastest == top).sum())} of {len(cells)} cells (its interval clear below the next one's "
                       f"in {clear}), {_times(factor)} ahead of the next at the median")
    return [Sentence("Fastest variant: " + "; ".join(clauses) + ".", "per-call")] if clauses else []


def solve(stats: pd.DataFrame) -> list[Sentence]:
    """Time to ε at the largest n, per backend and mode (best variant), with intervals, and the iteration counts."""
    part = best_variants(stats[(stats["task"] == "solve") & (stats["derivative"] == "gd")])
    if part.empty:
        return []
    out = []
    for (problem, device), by in part.groupby(["problem", "device"], observed=True):
        n = int(by["n"].max())
        at = by[by["n"] == n].sort_values("time_s")
        iterations = sorted({int(i) for i in at["iterations"].dropna()})
        same = (f"{iterations[0]} iterations in every backend and mode" if len(iterations) == 1
                else f"iterations {', '.join(map(str, iterations))} (they differ)")
        times = "; ".join(f"{r.backend} {r.mode} ({r.variant}) {_seconds_interval(r.time_s, r.time_lo, r.time_hi)}"
                          for r in at.itertuples())
        out.append(Sentence(f"{problem} ({device}) at n = {n}: gradient descent reached f − f* ≤ ε in {same}; "
                            f"time to ε, fastest first (95% intervals): {times}.", "headline"))
    return out


def _calls(row) -> str:
    """A solve's calls per run, in words: "5 iterations, 8 HVPs"."""
    counts = [(row.get("iterations"), "iteration"), (row.get("hvp_calls"), "HVP"), (row.get("hess_calls"), "Hessian")]
    return ", ".join(f"{int(v)} {what}{'s' if v != 1 else ''}" for v, what in counts
                     if pd.notna(v) and v > 0) or "0 iterations"


def _pays_off(row) -> str:
    """A paired autodiff / analytic ratio of a solve, read by its interval."""
    ratio = _interval(row["ratio"], row["ratio_lo"], row["ratio_hi"])
    if not (np.isfinite(row["ratio_lo"]) and np.isfinite(row["ratio_hi"])):
        return f"{row['backend']}: not read (autodiff {row['variant']} {ratio})"
    if row["ratio_lo"] > 1:
        return f"{row['backend']}: the hand-derived one is faster (autodiff {row['variant']} {ratio})"
    if row["ratio_hi"] < 1:
        return f"{row['backend']}: autodiff is faster ({row['variant']} {ratio})"
    return f"{row['backend']}: no difference shown ({row['variant']} {ratio})"


def second_order(stats: pd.DataFrame, ratios: pd.DataFrame) -> list[Sentence]:
    """Where Newton-type solvers ran (bench.measure.solvers): per problem and device at the largest n, the
    fastest way to eps over solvers, backends and modes against the best of each other solver and
    mode; and per Newton-type solver, whether the hand-derived HVP or Hessian pays off within each
    backend (its paired autodiff / analytic ratio, best autodiff variant, read by its interval)."""
    solve = newton_type_groups(stats)
    out = []
    for (problem, device), part in solve.groupby(["problem", "device"], observed=True):
        n = int(part["n"].max())
        at = part[part["n"] == n]
        best = at.loc[at["time_s"].idxmin()]
        clauses = []
        for (solver, mode), by in at.groupby(["derivative", "mode"], observed=True):
            other = by.loc[by["time_s"].idxmin()]
            if other.name == best.name:
                continue
            clauses.append(f"{_what('solve', solver)} with {mode} at best "
                           f"{_times(other['time_s'] / best['time_s'])} that time "
                           f"({other['backend']} {other['variant']}, "
                           f"{_seconds_interval(other['time_s'], other['time_lo'], other['time_hi'])}, "
                           f"{_calls(other)})")
        out.append(Sentence(
            f"{problem} ({device}) at n = {n}: fastest to ε was {SOLVERS[best['derivative']].title} "
            f"with {best['backend']}'s {best['mode']} {SOLVERS[best['derivative']].kind} ({best['variant']}), "
            f"{_seconds_interval(best['time_s'], best['time_lo'], best['time_hi'])} ({_calls(best)}); "
            + "; ".join(clauses) + ".", "second-order"))
    paired = ratios[(ratios["task"] == "solve") & (ratios["derivative"] != "gd")] if not ratios.empty else ratios
    for (problem, device, solver), part in paired.groupby(["problem", "device", "derivative"], observed=True):
        n = int(part["n"].max())
        at = part[part["n"] == n]
        best = at.loc[at.groupby("backend", observed=True)["ratio"].idxmin()]
        what = {"hvp": "gradient and HVP", "hess": "gradient and Hessian"}[SOLVERS[solver].kind]
        out.append(Sentence(f"Do the hand-derived {what} pay off in {SOLVERS[solver].title} on {problem} ({device}, "
                            f"n = {n}; time to ε, autodiff / analytic paired within each backend)? "
                            + "; ".join(_pays_off(r) for _, r in best.iterrows()) + ".", "second-order"))
    return out


def _seconds_interval(estimate: float, lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{_seconds(estimate)} (one pass)"
    return f"{_seconds(estimate)} [{_seconds(lo)}, {_seconds(hi)}]"


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


def trouble(df: pd.DataFrame, stats: pd.DataFrame, ratios: pd.DataFrame) -> list[Sentence]:
    """What failed, was skipped or was noisy, and why (the most common reasons)."""
    cells = df.drop_duplicates(["task", "problem", "n", "backend", "device", "derivative", "mode", "variant", "status"])
    bad = cells[cells["status"] != "ok"]
    parts = []
    for status, group in bad.groupby("status", observed=True):
        reasons = group["message"].fillna("").str.split(":").str[0].str.slice(0, 70).value_counts()
        top = "; ".join(f"{reason or 'no message'} ({count})" for reason, count in reasons.head(2).items())
        parts.append(f"{len(group)} {status} ({top})")
    noisy = _noisy(stats, ratios)
    text = ("Every variant was checked and timed" if not parts else "Not timed: " + "; ".join(parts))
    ratio_widths = (ratios["half_width"][np.isfinite(ratios["half_width"])] if not ratios.empty
                    else pd.Series(dtype=float))
    time_widths = stats["half_width"][np.isfinite(stats["half_width"])] if not stats.empty else pd.Series(dtype=float)
    if not time_widths.empty:
        ratio_part = f"±{100 * ratio_widths.median():.1f}% for paired ratios and " if not ratio_widths.empty else ""
        text += (f". The 95% intervals had a median half-width of {ratio_part}±{100 * time_widths.median():.1f}% for "
                 f"times; {len(noisy)} of {_read_count(stats)} timed variants read by a number of their own had one "
                 f"wider than ±{NOISY_WIDTH:.0%}")
        if len(noisy):
            two = int((noisy["passes"] == 2).sum())
            by_time = int((noisy["mode"] != "autodiff").sum())
            text += (f" ({two} of them in cells that took two passes, too costly for more, whose t-interval has "
                     f"one degree of freedom; {by_time} read by their absolute time, which moves with the machine "
                     "between passes)")
    return [Sentence(text + ".", "flagged")]


def _noisy(stats: pd.DataFrame, ratios: pd.DataFrame) -> pd.DataFrame:
    """The timed variants whose interval of the number they are read by is noisy (or absent), with
    that interval's half-width as `read_width` (inf: one pass): an autodiff variant's paired ratio;
    the time of a variant in a cell with no autodiff (numpy's formulas). An analytic variant beside
    autodiff is read through the ratio, and absolute times move with the machine from pass to pass
    as they should (the stopping rule does not chase them)."""
    if stats.empty:
        return stats.assign(read_width=pd.Series(dtype=float))
    keys = [*KEY, "machine", "mode", "variant"]
    merged = stats[keys].merge(ratios.assign(mode="autodiff")[keys + ["half_width"]], on=keys, how="left") \
        if not ratios.empty else stats[keys].assign(half_width=np.nan)
    cell_keys = [*KEY, "machine"]
    with_autodiff = set(map(tuple, stats[stats["mode"] == "autodiff"][cell_keys].to_numpy()))
    cell = [tuple(k) for k in stats[cell_keys].to_numpy()]
    read = [r if m == "autodiff" else (t if c not in with_autodiff else np.nan)
            for r, t, m, c in zip(merged["half_width"], stats["half_width"], stats["mode"], cell)]
    read = pd.Series(read, index=stats.index)
    flags = read.map(lambda w: "ok" if w != w else noise_flag(w))
    return stats.assign(read_width=read)[flags.isin(["noisy", "one pass"])]


def _read_count(stats: pd.DataFrame) -> int:
    """The timed variants that are read by a number of their own (not an analytic variant beside
    autodiff, which is read through its twin's ratio): the denominator of a share of `_noisy`."""
    if stats.empty:
        return 0
    with_autodiff = stats.groupby([*KEY, "machine"], observed=True, dropna=False)["mode"].transform(
        lambda m: (m == "autodiff").any())
    return int(((stats["mode"] == "autodiff") | ~with_autodiff.astype(bool)).sum())


def trust(df: pd.DataFrame, stats: pd.DataFrame, ratios: pd.DataFrame) -> str | None:
    """A warning when the run's intervals cannot be taken as they stand: a busy machine while it ran
    (naming the cells timed then: its intervals hold the noise of that run, not of this machine), or
    too many variants timed in one pass (no interval at all). A wide interval is no reason: every
    number carries its own, the findings claim only what the intervals support, and `trouble` says
    how many are wide and why. Nor is the drift of the machine's speed between passes: the
    intervals over passes hold it."""
    reasons = []
    if "load_other_cpus" in df and df["load_other_cpus"].notna().any():
        cells = df.drop_duplicates(["run_id", "part", *KEY])
        other, steal = cells["load_other_cpus"].mean(), cells["load_steal_cpus"].mean()
        busy = cells[(cells["load_other_cpus"] > BUSY_CPUS) | (cells["load_steal_cpus"] > BUSY_CPUS)]
        if other > BUSY_CPUS or steal > BUSY_CPUS:
            named = ", ".join(label(r) for r in busy.drop_duplicates(list(KEY)).head(5).to_dict("records"))
            what = (f"other processes used {other:.2f} CPUs on average while it ran" if other > BUSY_CPUS
                    else f"the hypervisor stole {steal:.2f} CPUs on average")
            reasons.append(f"{what}; {len(busy)} cell parts were timed beside more than {BUSY_CPUS:g} CPUs of other "
                           f"work, e.g. {named}")
    if not stats.empty:
        noisy = _noisy(stats, ratios)
        single = noisy[~np.isfinite(noisy["read_width"])]
        share = len(single) / max(_read_count(stats), 1)
        if share > NOISY_SHARE:
            named = ", ".join(label(r) for r in single.head(5).to_dict("records"))
            reasons.append(f"{share:.0%} of the timed variants read by a number of their own were timed in one pass, "
                           f"so that number has no interval, e.g. {named}")
    if not reasons:
        return None
    return "This run's times are not to be trusted as they stand: " + "; ".join(reasons) + ". " \
        "Rerun on a quiet machine before you compare its absolute times; within-run ratios suffer less."


def floor(floors: pd.DataFrame, roofs: dict[str, dict]) -> list[Sentence]:
    """Per device, against its measured roofs: how close the best variant of each derivative (and of
    the descent) comes to its floor at the largest n, its best autodiff variant, and where the
    formula as written moves more than it must. Cells whose data fit in the last-level cache can
    run under a floor priced at DRAM bandwidth; they are said to."""
    out = []
    cells = floors.dropna(subset=["floor_s"]) if "floor_s" in floors else floors.iloc[0:0]
    for device, part in cells.groupby("device", observed=True):
        roof = roofs.get(device, {})
        clauses = []
        largest = part[
            part["n"] == part.groupby(["task", "problem", "derivative"], observed=True)["n"].transform("max")]
        for (task, problem, derivative), cell in largest.groupby(["task", "problem", "derivative"], observed=True):
            best = cell.loc[cell["time_s"].idxmin()]
            kind = _what(task, derivative)
            clause = (f"{problem} {kind} (n = {int(best['n'])}) "
                      f"{_interval(best['over_floor'], best['over_floor_lo'], best['over_floor_hi'])} "
                      f"its floor ({best['backend']} {best['variant']})")
            autodiff = cell[cell["mode"] == "autodiff"]
            if not autodiff.empty and best["mode"] != "autodiff":
                a = autodiff.loc[autodiff["time_s"].idxmin()]
                clause += (f", autodiff at best {_interval(a['over_floor'], a['over_floor_lo'], a['over_floor_hi'])} "
                           f"({a['backend']} {a['variant']})")
            model = problems.get(problem).cost if problem in problems.names() else None
            cost = model(derivative, int(best["n"])) if model else None
            if cost is not None and cost.written > 1.01 * cost.bytes:
                clause += f"; as written it moves {cost.written / cost.bytes:.1f}× the bytes it must"
            if best["floor_bytes"] / (best["iterations"] if task == "solve" else 1) < roof.get("llc_bytes", 0):
                clause += " (its data fit in the last-level cache, faster than the DRAM floor)"
            clauses.append(clause)
        if clauses:
            head = (f"Against the machine ({device}: {roof['bandwidth_GBps']:.1f} GB/s, {roof['peak_GFLOPs']:.1f} "
                    "GFLOP/s, measured; a floor is max(bytes / bandwidth, flops / peak) of the problem's cost model), "
                    "the best variant at the largest n took: ")
            out.append(Sentence(head + "; ".join(clauses) + ".", "roofline"))
    return out


def findings(df: pd.DataFrame, stats: pd.DataFrame, ratios: pd.DataFrame, gf: pd.DataFrame,
             floors: pd.DataFrame | None = None, roofs: dict[str, dict] | None = None) -> list[Sentence]:
    return [*overhead(ratios), *winners(stats), *solve(stats), *second_order(stats, ratios), *cheap_gradient(gf),
            *(floor(floors, roofs or {}) if floors is not None else []), *trouble(df, stats, ratios)]
