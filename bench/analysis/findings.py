"""What a run found, in sentences computed from its results: the report opens on these.

Every number in a sentence is read from the data passed in; nothing is a fixed claim. A finding is
one sentence with one number and its 95% interval, and links to the figure or table that shows it;
the qualifications (every problem, variant and size, the noise, the cache) are in those tables.
Where a finding quotes one of several problems, it is the median one at that size (of an even
number, the higher middle), and where it quotes a framework, that framework's fastest autodiff
variant (in geometric mean over problems and sizes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.analysis.summary import NOISY_WIDTH, best_variants, newton_type_groups, noise_flag
from bench.core.formatting import ratio_interval, seconds, seconds_interval
from bench.core.load import BUSY_CPUS
from bench.core.schema import KEY, label
from bench.measure.solvers import SOLVERS

NEAR = 1.1  # "autodiff costs about what the hand-written derivative costs"
CHEAP_GRADIENT_BOUND = 4.0  # reverse mode's bound on grad / f (the course says about 2)
DERIVATIVE_NAMES = {"f": "f", "grad": "gradient", "hvp": "HVP", "hess": "dense Hessian",
                    "sparse_hess": "sparse Hessian", "jac": "Jacobian",
                    "dk": "k-th derivative", "newton": "Newton direction"}
NOISY_SHARE = 0.3  # more than this share of the timed variants with no interval (one pass): the report warns


@dataclass(frozen=True)
class Sentence:
    text: str
    link: str  # the anchor of the figure or table that shows it


def _what(task: str, derivative: str) -> str:
    """What a cell times, in words: a derivative kind (eval), or a solver run to eps (solve)."""
    if task == "solve":
        return f"{SOLVERS[derivative].title} to ε" if derivative in SOLVERS else derivative
    return DERIVATIVE_NAMES.get(derivative, derivative)


def _median(rows: pd.DataFrame, column: str) -> pd.Series:
    """The row of the median problem by `column` (of an even number, the higher middle)."""
    ordered = rows.sort_values([column, "problem"])
    return ordered.iloc[len(ordered) // 2]


def _where(device: str, devices: int) -> str:
    """" on cuda" where the run has more than one device; nothing where it has one."""
    return f" on {device}" if devices > 1 else ""


def _verdict(rows: pd.DataFrame) -> str:
    """Whether autodiff comes within NEAR of the hand-written derivative on every problem at one size:
    "within" only where every problem's 95% interval lies below NEAR, "beyond" only where every one
    lies above it."""
    every = "" if len(rows) == 1 else " on both problems" if len(rows) == 2 else f" on all {len(rows)} problems"
    if (rows["ratio_hi"] <= NEAR).all():
        return f"within {NEAR}×{every}"
    if (rows["ratio_lo"] > NEAR).all():
        return f"beyond {NEAR}×{every}"
    return f"not shown to be within {NEAR}×" + ("" if len(rows) == 1 else " on every problem")


def _costs(ratios: pd.DataFrame, task: str, derivative: str) -> pd.DataFrame:
    """The paired ratios of one derivative (or solver), each backend's fastest autodiff variant only,
    where the analytic side is a cost (not stored in the data)."""
    part = ratios[(ratios["task"] == task) & (ratios["derivative"] == derivative)]
    if "stored" in part:
        part = part[~part["stored"].astype(bool)]
    if part.empty:
        return part
    score = part.groupby(["device", "backend", "variant"], observed=True)["ratio"].apply(
        lambda s: np.log(s).mean()).dropna().reset_index()
    best = score.loc[score.groupby(["device", "backend"], observed=True)["ratio"].idxmin(),
                     ["device", "backend", "variant"]]
    return part.merge(best, on=["device", "backend", "variant"])


def _cost_sentence(rows: pd.DataFrame, n: int, where: str, who: str) -> str:
    r = _median(rows, "ratio")
    return (f"At n = {n}{where}, {who} took {ratio_interval(r['ratio'], r['ratio_lo'], r['ratio_hi'])} the "
            f"hand-written one's time ({r['problem']}); {_verdict(rows)}.")


def gradient(ratios: pd.DataFrame) -> list[Sentence]:
    """Per device and framework, at its smallest and at its largest n: what autodiff's gradient costs
    against the hand-written one (the paired ratio), on the median problem."""
    part = _costs(ratios, "eval", "grad")
    devices = part["device"].nunique() if not part.empty else 0
    out = []
    for (device, backend), lines in part.groupby(["device", "backend"], observed=True):
        sizes = sorted(lines["n"].unique())
        for n in dict.fromkeys([sizes[0], sizes[-1]]):
            out.append(Sentence(_cost_sentence(lines[lines["n"] == n], int(n), _where(device, devices),
                                               f"{backend}'s autodiff gradient"), "ratios"))
    return out


def cheapest(ratios: pd.DataFrame, derivative: str) -> list[Sentence]:
    """Per device, at the largest n: the framework whose autodiff comes cheapest against the
    hand-written derivative (on the median problem), e.g. for the HVP and the dense Hessian."""
    part = _costs(ratios, "eval", derivative)
    devices = part["device"].nunique() if not part.empty else 0
    out = []
    for device, lines in part.groupby("device", observed=True):
        n = int(lines["n"].max())
        at = lines[lines["n"] == n]
        medians = {backend: _median(rows, "ratio")["ratio"] for backend, rows in at.groupby("backend", observed=True)}
        backend = min(medians, key=medians.get)
        what = DERIVATIVE_NAMES.get(derivative, derivative)
        out.append(Sentence(_cost_sentence(at[at["backend"] == backend], n, _where(device, devices),
                                           f"the cheapest autodiff {what}, {backend}'s,"), "ratios"))
    return out


def versus(df: pd.DataFrame) -> list[Sentence]:
    """Per backend that measures its autodiff against another autodiff (Enzyme against JAX's own, by
    the same algorithm, paired per round) and per derivative: in how many cells it was faster and
    slower, where its interval excludes 1, each with its extreme; the rest the same within the interval."""
    from bench.analysis.summary import versus_ratios

    found = versus_ratios(df)
    out = []
    for (backend, task, derivative), rows in found.groupby(["backend", "task", "derivative"], observed=True):
        faster, slower = rows[rows["versus_hi"] < 1], rows[rows["versus_lo"] > 1]

        def extreme(part: pd.DataFrame, pick) -> str:
            r = part.loc[pick(part["versus"])]
            return f"{ratio_interval(r['versus'], r['versus_lo'], r['versus_hi'])}, {r['problem']} n={int(r['n'])}"

        rivals = ", ".join(sorted(rows["variant_versus"].unique()))
        parts = [f"faster in {len(faster)} of {len(rows)} cells" + (f" (down to {extreme(faster, pd.Series.idxmin)})"
                                                                     if len(faster) else ""),
                 f"slower in {len(slower)}" + (f" (up to {extreme(slower, pd.Series.idxmax)})" if len(slower) else "")]
        out.append(Sentence(f"{backend}'s {_what(task, derivative)} against {rivals}, same rounds: "
                            + ", ".join(parts) + ".", "versus"))
    return out


def _ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st ..."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def sparse_hessians(stats: pd.DataFrame, ratios: pd.DataFrame) -> list[Sentence]:
    """Per problem with a sparse Hessian: at the largest n where all three ways ran in one backend (JAX:
    its hand-derived nonzeros, asdex's sparse autodiff, its dense autodiff Hessian), asdex and the dense
    Hessian over the hand-derived nonzeros (asdex's paired per round; the dense one's from the two
    intervals' ends, a conservative interval), and after how many Hessians asdex's detection and colouring
    (its compile) are repaid against the dense one; and asdex at the largest n it reached."""
    ev = stats[(stats["task"] == "eval") & (stats["backend"] == "jax")]
    paired = ratios[(ratios["derivative"] == "sparse_hess") & (ratios["variant"] == "asdex")] if not ratios.empty \
        else ratios
    out = []
    for problem in sorted(set(ev.loc[ev["derivative"] == "sparse_hess", "problem"])):
        mine = ev[ev["problem"] == problem]
        hand = mine[(mine["derivative"] == "sparse_hess") & (mine["mode"] == "analytic")].set_index("n")
        asdex = mine[(mine["derivative"] == "sparse_hess") & (mine["variant"] == "asdex")].set_index("n")
        dense = (mine[(mine["derivative"] == "hess") & (mine["mode"] == "autodiff")].sort_values("time_s")
                 .groupby("n").first())
        if hand.empty or asdex.empty:
            continue
        sentence = []
        both = sorted(set(hand.index) & set(asdex.index) & set(dense.index))
        if both:
            n = both[-1]
            a, d, h = asdex.loc[n], dense.loc[n], hand.loc[n]
            pair = paired[(paired["problem"] == problem) & (paired["n"] == n)]
            asdex_ratio = (ratio_interval(*pair[["ratio", "ratio_lo", "ratio_hi"]].iloc[0]) if not pair.empty
                           else ratio_interval(a["time_s"] / h["time_s"], np.nan, np.nan))
            dense_ratio = ratio_interval(d["time_s"] / h["time_s"], d["time_lo"] / h["time_hi"],
                                         d["time_hi"] / h["time_lo"])
            sentence.append(f"at n = {n}, the largest size the dense Hessian reached, asdex's sparse Hessian took "
                            f"{asdex_ratio} the hand-derived nonzeros' time and the dense autodiff Hessian "
                            f"({d['variant']}) {dense_ratio}")
            saved = d["time_s"] - a["time_s"]
            if saved > 0 and np.isfinite(a["compile_s"]):
                repaid = _ordinal(int(np.ceil(a["compile_s"] / saved)))
                sentence.append(f"asdex's detection and colouring ({seconds(a['compile_s'])}) "
                                f"are repaid against the dense Hessian by the {repaid} Hessian")
        n = asdex.index.max()
        a, h = asdex.loc[n], hand.loc[n] if n in hand.index else None
        if h is not None:
            pair = paired[(paired["problem"] == problem) & (paired["n"] == n)]
            shown = (ratio_interval(*pair[["ratio", "ratio_lo", "ratio_hi"]].iloc[0]) if not pair.empty
                     else ratio_interval(a["time_s"] / h["time_s"], np.nan, np.nan))
            sentence.append(f"at its largest n = {n}, asdex took {shown} the hand-derived time, after "
                            f"{seconds(a['compile_s'])} of detection, colouring and compile")
        if sentence:
            out.append(Sentence(f"{problem}'s sparse Hessian in JAX: " + "; ".join(sentence) + ".", "sparse"))
    return out


def descent(stats: pd.DataFrame, ratios: pd.DataFrame) -> list[Sentence]:
    """The seed's experiment, per problem and device at the largest n: gradient descent to eps with
    the fastest autodiff against the same framework's hand-derived gradient (the paired ratio)."""
    runs = best_variants(stats[(stats["task"] == "solve") & (stats["derivative"] == "gd")])
    paired = ratios[(ratios["task"] == "solve") & (ratios["derivative"] == "gd")] if not ratios.empty else ratios
    devices = runs["device"].nunique() if not runs.empty else 0
    out = []
    for (problem, device), by in runs.groupby(["problem", "device"], observed=True):
        n = int(by["n"].max())
        autodiff = by[(by["n"] == n) & (by["mode"] == "autodiff")]
        if autodiff.empty:
            continue
        fastest = autodiff.loc[autodiff["time_s"].idxmin()]
        pair = paired[(paired["problem"] == problem) & (paired["device"] == device) & (paired["n"] == n)
                      & (paired["backend"] == fastest["backend"]) & (paired["variant"] == fastest["variant"])]
        if pair.empty:
            continue
        r = pair.iloc[0]
        out.append(Sentence(f"Gradient descent to ε on {problem} at n = {n}{_where(device, devices)} with the fastest "
                            f"autodiff, {fastest['backend']}'s, took "
                            f"{ratio_interval(r['ratio'], r['ratio_lo'], r['ratio_hi'])} the time with its "
                            "hand-derived gradient.", "headline"))
    return out


def second_order(stats: pd.DataFrame) -> list[Sentence]:
    """Where Newton-type solvers ran (bench.measure.solvers): per problem and device at the largest n,
    the fastest way to eps over solvers, backends and modes, and its time."""
    solve = newton_type_groups(stats)
    devices = solve["device"].nunique() if not solve.empty else 0
    out = []
    for (problem, device), part in solve.groupby(["problem", "device"], observed=True):
        n = int(part["n"].max())
        at = part[part["n"] == n]
        best = at.loc[at["time_s"].idxmin()]
        solver = SOLVERS[best["derivative"]]
        mode = "hand-derived" if best["mode"] == "analytic" else "autodiff"
        kind = DERIVATIVE_NAMES.get(solver.kind, solver.kind)
        out.append(Sentence(f"On {problem} at n = {n}{_where(device, devices)}, the fastest to ε was {solver.title} "
                            f"with {best['backend']}'s {mode} {kind}: "
                            f"{seconds_interval(best['time_s'], best['time_lo'], best['time_hi'])}.", "second-order"))
    return out


def floor(floors: pd.DataFrame) -> list[Sentence]:
    """Per device: the fastest gradient at the largest n, on the median problem, against this
    machine's floor (bench.analysis.floors); in a run without a gradient, the first derivative timed,
    and in one without evaluations, the descent."""
    cells = floors.dropna(subset=["floor_s"]) if "floor_s" in floors else floors.iloc[0:0]
    cells = cells[cells["task"] == "eval"] if (cells["task"] == "eval").any() else cells
    devices = cells["device"].nunique() if not cells.empty else 0
    out = []
    for device, part in cells.groupby("device", observed=True):
        derivative = "grad" if (part["derivative"] == "grad").any() else part["derivative"].iloc[0]
        part = part[part["derivative"] == derivative]
        n = int(part["n"].max())
        at = part[part["n"] == n]
        fastest = at.loc[at.groupby("problem", observed=True)["time_s"].idxmin()]
        r = _median(fastest, "over_floor")
        out.append(Sentence(f"At n = {n}{_where(device, devices)}, the fastest {_what(r['task'], derivative)} "
                            f"({r['backend']}, {r['problem']}) took "
                            f"{ratio_interval(r['over_floor'], r['over_floor_lo'], r['over_floor_hi'])} this "
                            "machine's floor.", "roofline"))
    return out


def trouble(df: pd.DataFrame, stats: pd.DataFrame, ratios: pd.DataFrame) -> str:
    """What failed, was skipped or was noisy, and why (the most common reasons): the note above the
    report's flagged cells."""
    cells = df.drop_duplicates([*KEY, "mode", "variant", "status"])
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
    return text + "."


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
    (naming a cell timed then: its intervals hold the noise of that run, not of this machine), or
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
            named = label({k: busy.iloc[0][k] for k in KEY}) if len(busy) else label(cells.iloc[0])
            what = (f"other processes used {other:.2f} CPUs on average while it ran" if other > BUSY_CPUS
                    else f"the hypervisor stole {steal:.2f} CPUs on average")
            parts = f"{len(busy)} cell part" + ("s" if len(busy) != 1 else "")
            reasons.append(f"{what} ({parts}, e.g. {named}): rerun on a quiet machine")
    if not stats.empty:
        noisy = _noisy(stats, ratios)
        single = noisy[~np.isfinite(noisy["read_width"])]
        share = len(single) / max(_read_count(stats), 1)
        if share > NOISY_SHARE:
            reasons.append(f"{share:.0%} of the timed variants read by a number of their own were timed in one pass, "
                           f"with no interval (e.g. {label(single.iloc[0])}): rerun with two passes or more")
    if not reasons:
        return None
    return "This run's times are not to be trusted as they stand: " + "; ".join(reasons) + "."


def findings(df: pd.DataFrame, stats: pd.DataFrame, ratios: pd.DataFrame, gf: pd.DataFrame,
             floors: pd.DataFrame | None = None, roofs: dict[str, dict] | None = None) -> list[Sentence]:
    """The sentences the report opens on: the gradient's cost per framework at small and large n, the
    seed's descent, the cheapest HVP and dense Hessian, one autodiff against another (Enzyme against
    JAX's own) where a backend measures it, the Newton-type solvers where they ran, and the floor.
    `gf` and `roofs` are accepted for the callers' sake: the cheap-gradient ratios and the roofs are
    tables of the report (bench.render.report)."""
    del gf, roofs
    return [*gradient(ratios), *descent(stats, ratios), *cheapest(ratios, "hvp"), *cheapest(ratios, "hess"),
            *versus(df), *sparse_hessians(stats, ratios), *second_order(stats),
            *(floor(floors) if floors is not None else [])]
