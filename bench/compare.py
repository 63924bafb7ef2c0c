"""Regression verdicts between two runs: `slower`, `faster`, `same` or `inconclusive` per cell.

Samples are compared in log space with one-sided Mann-Whitney U tests at level alpha (default
0.005 each side: a 99% two-sided confidence), as asv does where it has raw samples:

- slower: NEW's median is at least `factor` times BASE's, and NEW is slower with p < alpha;
- faster: the mirror image;
- same: an equivalence test (two one-sided tests, TOST) shows the shift lies within
  (1/factor, factor): NEW / factor is faster than BASE with p < alpha, and NEW * factor slower.
  So `same` means the samples could have detected the factor, never merely "no significant change";
- inconclusive: neither. The verdict says about how many samples a side would settle it.

Two kinds of samples are compared:
- within-run ratios: each autodiff sample over the analytic sample of its round (the one
  definition, bench.summary.paired_ratios). They do not move with the machine.
- absolute times: every raw sample. They move with the machine, so they gate only between runs of
  the same setup (bench.environment.setup_fingerprint: CPU, GPU, threads, library versions);
  `--normalise` shows them in units of each cell's drift-monitor reference time, labelled so.
Reads our CSVs (with their .meta.json) and pytest-benchmark JSON saved with --benchmark-save-data.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu, norm

from . import environment
from .defaults import ALPHA, FACTOR
from .cells import VARIANT_KEY
from .results import read_metadata, read_results
from .summary import machines, paired_ratios, with_machine

CELL = VARIANT_KEY
STATUSES = ("slower", "faster", "same", "inconclusive", "only in base", "only in new")


class CompareInputError(ValueError):
    pass


@dataclass(frozen=True)
class Verdict:
    cell: str
    base_median: float
    new_median: float
    ratio: float  # new median / base median
    p_slower: float  # one-sided Mann-Whitney U: new > base
    p_faster: float
    base_samples: int
    new_samples: int
    status: str  # one of STATUSES
    samples_needed: float = math.nan  # inconclusive: about how many samples a side would settle it


def load_samples(path: str | Path) -> pd.DataFrame:
    """Raw samples (ok rows) with the CELL columns, the machine, run_id, repeat, time_s and the drift columns."""
    path = Path(path)
    if path.suffix == ".json":
        return _pytest_benchmark_samples(path)
    df = read_results([path])
    ok = df[df["status"] == "ok"]
    return with_machine(ok[list(CELL) + ["machine", "run_id", "repeat", "time_s", "status", "ref_numpy_s",
                                         "ref_python_s"]].reset_index(drop=True))


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
        # pytest-benchmark takes a benchmark's samples in one block: rounds are not interleaved
        rows.extend(dict(cell, machine="", run_id=path.name, repeat=i, time_s=t, status="ok", ref_numpy_s=math.nan,
                         ref_python_s=math.nan) for i, t in enumerate(data))
    frame = pd.DataFrame(rows)
    frame["n"] = frame["n"].astype("int64")
    return frame


def setup_fingerprint(path: str | Path) -> str | None:
    """The setup a run measured on (bench.environment.setup_fingerprint), from its metadata."""
    path = Path(path)
    if path.suffix == ".json":
        meta = (json.loads(path.read_text()).get("machine_info") or {}).get("nablabench")
        metas = [meta] if meta else []
    else:
        metas = list(read_metadata([path]).values())
    prints = {environment.setup_fingerprint(m) for m in metas}
    return prints.pop() if len(prints) == 1 else None


def by_machine(*frames: pd.DataFrame) -> bool:
    """Whether cells are told apart by machine: where either run has rows from more than one."""
    return any(machines(frame) for frame in frames)


def cell_samples(frame: pd.DataFrame, *, normalise: bool = False, machine: bool = False) -> dict[str, np.ndarray]:
    """Absolute samples per cell (and machine, with `machine`); with `normalise`, each over its
    cell's drift-monitor reference."""
    times = frame["time_s"] / (frame["ref_numpy_s"] + frame["ref_python_s"]) if normalise else frame["time_s"]
    frame = frame.assign(value=times).dropna(subset=["value"])
    keys = list(CELL) + ["machine"]
    return {_label(dict(zip(keys, key)), machine): group["value"].to_numpy(dtype=float)
            for key, group in frame.groupby(keys, observed=True, dropna=False)}


def ratio_samples(frame: pd.DataFrame, *, machine: bool = False) -> dict[str, np.ndarray]:
    """Within-run autodiff / analytic ratios, one per round (bench.summary.paired_ratios)."""
    paired = paired_ratios(frame)
    keys = ["task", "problem", "n", "backend", "device", "machine", "derivative", "variant", "variant_analytic"]
    out = {}
    for key, group in paired.groupby(keys, observed=True):
        values = dict(zip(keys, key))
        out[_label(dict(values, mode=""), machine) + f" / {values['variant_analytic']}"] = group["ratio"].to_numpy(dtype=float)
    return out


def _label(values: dict, machine: bool) -> str:
    where = f"{values['backend']}/{values['device']}" + (f" on {values['machine'] or '?'}" if machine else "")
    mode = f"{values['mode']} " if values["mode"] else ""
    return f"{values['task']} {values['problem']} n={values['n']} {where} {mode}{values['derivative']} {values['variant']}"


def minimum_samples(alpha: float) -> int:
    """Fewest samples a side for which a one-sided Mann-Whitney U test can reach p < alpha."""
    k = 1
    while 1.0 / math.comb(2 * k, k) >= alpha:
        k += 1
    return k


def verdict(cell: str, base: np.ndarray, new: np.ndarray, *, factor: float, alpha: float = ALPHA) -> Verdict:
    """The verdict on one cell's samples (see the module docstring)."""
    x, y = np.log(base), np.log(new)
    shift = math.log(factor)
    ratio = float(np.median(new) / np.median(base))
    p_slower = float(mannwhitneyu(y, x, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(y, x, alternative="less").pvalue)
    needed = math.nan
    if ratio >= factor and p_slower < alpha:
        status = "slower"
    elif ratio <= 1 / factor and p_faster < alpha:
        status = "faster"
    elif (mannwhitneyu(y - shift, x, alternative="less").pvalue < alpha
          and mannwhitneyu(y + shift, x, alternative="greater").pvalue < alpha):
        status = "same"
    else:
        status = "inconclusive"
        needed = samples_to_settle(x, y, shift, alpha)
    return Verdict(cell, float(np.median(base)), float(np.median(new)), ratio, p_slower, p_faster,
                   len(base), len(new), status, needed)


def samples_to_settle(x: np.ndarray, y: np.ndarray, shift: float, alpha: float) -> float:
    """About how many samples a side would settle an inconclusive verdict, at the observed spread.

    The Hodges-Lehmann estimate of the shift has a confidence half-width of about
    z * sigma * sqrt(2 pi / (3 R)) with R samples a side (Mann-Whitney's efficiency, 3/pi,
    against a t-test): R must bring it below the distance from the estimate to what would
    decide (zero for slower or faster, the factor for same).
    """
    estimate = abs(float(np.median(np.subtract.outer(y, x))))
    sigma = math.sqrt((_robust_sd(x) ** 2 + _robust_sd(y) ** 2) / 2)
    margin = estimate if estimate >= shift else shift - estimate
    if margin <= 0:
        return math.inf
    z = norm.ppf(1 - alpha)
    # The formula is asymptotic, optimistic for a few samples: never less than one more than now.
    have = min(len(x), len(y))
    return float(max(minimum_samples(alpha), have + 1, math.ceil(2 * math.pi / 3 * (z * sigma / margin) ** 2)))


def _robust_sd(values: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def compare(base: dict[str, np.ndarray], new: dict[str, np.ndarray], *, factor: float = FACTOR,
            alpha: float = ALPHA) -> list[Verdict]:
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
        verdicts.append(verdict(cell, b, n, factor=factor, alpha=alpha))
    return sorted(verdicts, key=lambda v: -v.ratio if math.isfinite(v.ratio) else math.inf)


def format_table(verdicts: list[Verdict], *, title: str, limit: int = 25) -> str:
    counts = pd.Series([v.status for v in verdicts]).value_counts().to_dict() if verdicts else {}
    lines = [f"== {title}: " + (", ".join(f"{k}: {counts[k]}" for k in STATUSES if k in counts) or "no cells")]
    shown = [v for v in verdicts if v.status in ("slower", "faster")]
    shown += [v for v in verdicts if v.status == "inconclusive"]
    for v in shown[:limit] or verdicts[:5]:
        if v.status == "slower":
            detail = f"p={v.p_slower:.2g}"
        elif v.status == "faster":
            detail = f"p={v.p_faster:.2g}"
        elif v.status == "inconclusive":
            detail = ("the estimate sits on the threshold" if math.isinf(v.samples_needed)
                      else f"~{v.samples_needed:.0f} samples a side would settle it")
        else:
            detail = ""
        lines.append(f"  {v.status:12} {v.ratio:7.3f}x  base {v.base_median:.3g}  new {v.new_median:.3g}  "
                     f"({v.base_samples}/{v.new_samples})  {v.cell}  {detail}")
    if len(shown) > limit:
        lines.append(f"  ... and {len(shown) - limit} more")
    return "\n".join(lines)
