"""Regression verdicts between two runs: `slower`, `faster`, `same` or `inconclusive` per cell,
and the structural failures a gate must not pass (cells gone, cells turned `wrong`, backends gone).

Each run gives a cell one estimate per pass (the median of its rounds, log scale: bench.core.intervals).
The change NEW / BASE has the interval that the two runs' own intervals imply: Welch's t over the
two sets of pass estimates, with the machine class's run-level spread where one was measured
(bench.analysis.spread; `intervals.change`). At level 1 - alpha (95% by default):

- slower: the change is a discovery (its p-value survives Benjamini-Hochberg at false discovery
  rate alpha across all the cells of the comparison: the interval clears 1 after that control),
  and its estimate is at least `factor`;
- faster: the mirror image;
- same: the whole interval lies within (1/factor, factor): the runs could have seen the factor,
  and did not. A cell whose samples are identical in both runs (a run compared with itself) is
  `same` with no statistics: its change is exactly 1;
- inconclusive: neither; the verdict says about how many passes a side would settle it.

Two kinds of samples are compared:
- within-run ratios: each autodiff sample over the analytic sample of its round (the one
  definition, bench.analysis.summary.paired_ratios). They do not move with the machine.
- absolute times: every raw sample. They move with the machine, so they gate only between runs of
  the same setup (bench.core.environment.setup_fingerprint: CPU, GPU, threads, library versions);
  `--normalise` shows them in units of each cell's drift-monitor reference time, labelled so.
Reads our CSVs (with their .meta.json) and pytest-benchmark JSON saved with --benchmark-save-data
(whose samples are one block each: every sample is taken as its own pass, which is optimistic).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import spread
from bench.analysis.summary import machines, paired_ratios, threads_of, with_machine
from bench.core import environment
from bench.core.defaults import ALPHA, FACTOR
from bench.core.intervals import Change, benjamini_hochberg, change, pass_estimates, passes_to_settle
from bench.core.schema import FAILED, KEY, OK, VARIANT_KEY, label
from bench.sweep.results import read_metadata, read_results

STATUSES = ("slower", "faster", "same", "inconclusive", "only in base", "only in new")


class CompareInputError(ValueError):
    pass


@dataclass(frozen=True)
class Samples:
    """One cell's samples in one run: positive values, the pass each was taken in, and the run-level
    spread of its machine class and its degrees of freedom (bench.analysis.spread; 0 where none was
    measured)."""

    values: np.ndarray
    parts: np.ndarray
    run_sd: float = 0.0
    run_df: float = math.inf
    where: dict = field(default_factory=dict, compare=False)  # its key's fields: task, problem, backend, ...

    def estimates(self) -> np.ndarray:
        return pass_estimates(self.values, self.parts)

    def same_as(self, other: "Samples") -> bool:
        return np.array_equal(self.values, other.values) and np.array_equal(self.parts, other.parts)


@dataclass(frozen=True)
class Verdict:
    cell: str
    base: float  # each run's estimate (bench.core.intervals: over its passes)
    new: float
    ratio: float  # NEW / BASE, the change's estimate
    lo: float  # ... its interval
    hi: float
    p_value: float  # two-sided, of "no change", before the control across cells
    base_passes: int
    new_passes: int
    status: str  # one of STATUSES
    passes_needed: float = math.nan  # inconclusive: about how many passes a side would settle it


def load_samples(path: str | Path) -> pd.DataFrame:
    """Raw samples (ok rows) with the VARIANT_KEY columns, the machine, run_id, part, repeat, time_s, the
    drift columns and the run's thread count."""
    path = Path(path)
    if path.suffix == ".json":
        return _pytest_benchmark_samples(path)
    df = read_results([path])
    ok = df[df["status"] == OK]
    ok = ok.assign(part=ok["part"].fillna(0).astype(int))
    columns = [*VARIANT_KEY, "machine", "run_id", "part", "repeat", "time_s", "status", "ref_numpy_s", "ref_python_s",
               "threads"]
    return with_machine(ok[columns].reset_index(drop=True))


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
        cell = {k: info.get(k, "") for k in VARIANT_KEY}
        if not cell["problem"]:
            cell.update(task="pytest", problem=b.get("fullname", b.get("name", "?")), n=0)
        # pytest-benchmark takes a benchmark's samples in one block: each is taken as its own pass
        rows.extend(dict(cell, machine="", run_id=path.name, part=i, repeat=i, time_s=t, status=OK,
                         ref_numpy_s=math.nan, ref_python_s=math.nan) for i, t in enumerate(data))
    frame = pd.DataFrame(rows)
    frame["n"] = frame["n"].astype("int64")
    return frame


def setup_fingerprint(path: str | Path) -> str | None:
    """The setup a run measured on (bench.core.environment.setup_fingerprint), from its metadata."""
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


def cell_samples(frame: pd.DataFrame, *, normalise: bool = False, machine: bool = False) -> dict[str, Samples]:
    """Absolute samples per cell (and machine, with `machine`); with `normalise`, each over its
    cell's drift-monitor reference."""
    times = frame["time_s"] / (frame["ref_numpy_s"] + frame["ref_python_s"]) if normalise else frame["time_s"]
    frame = frame.assign(value=times).dropna(subset=["value"])
    keys = list(VARIANT_KEY) + ["machine"]
    out = {}
    for key, group in frame.groupby(keys, observed=True, dropna=False):
        where = dict(zip(keys, key))
        run = spread.lookup(where["machine"], where["backend"], "time", where["task"], threads_of(group))
        out[label(where, machine=machine)] = Samples(group["value"].to_numpy(dtype=float), group["part"].to_numpy(),
                                                     *((run.sd, run.df) if run else ()), where=where)
    return out


def ratio_samples(frame: pd.DataFrame, *, machine: bool = False) -> dict[str, Samples]:
    """Within-run autodiff / analytic ratios, one per round (bench.analysis.summary.paired_ratios)."""
    paired = paired_ratios(frame)
    keys = ["task", "problem", "n", "backend", "device", "dtype", "machine", "derivative", "variant",
            "variant_analytic"]
    out = {}
    for key, group in paired.groupby(keys, observed=True):
        values = dict(zip(keys, key))
        name = label(dict(values, mode=""), machine=machine) + f" / {values['variant_analytic']}"
        run = spread.lookup(values["machine"], values["backend"], "ratio", values["task"], threads_of(group))
        out[name] = Samples(group["ratio"].to_numpy(dtype=float), group["part"].to_numpy(),
                            *((run.sd, run.df) if run else ()), where=values)
    return out


def compare(base: dict[str, Samples], new: dict[str, Samples], *, factor: float = FACTOR,
            alpha: float = ALPHA) -> list[Verdict]:
    """One verdict per cell in either run (see the module docstring), worst first."""
    level = 1 - alpha
    shared = sorted(set(base) & set(new))
    run_sd = {cell: math.sqrt((base[cell].run_sd ** 2 + new[cell].run_sd ** 2) / 2) for cell in shared}
    run_df = {cell: min(base[cell].run_df, new[cell].run_df) for cell in shared}
    changes = {cell: change(base[cell].estimates(), new[cell].estimates(), level, run_sd[cell], run_df[cell])
               for cell in shared}
    found = dict(zip(shared, benjamini_hochberg([changes[c].p_value for c in shared], alpha)))
    verdicts = []
    for cell in shared:
        b, n, c = base[cell], new[cell], changes[cell]
        eb, en = b.estimates(), n.estimates()
        needed = math.nan
        if b.same_as(n):  # the same measurement: its change is exactly 1, whatever its spread
            status, c = "same", Change(1.0, 1.0, 1.0, 1.0, math.inf, 0.0)
        elif found[cell] and c.estimate >= factor:
            status = "slower"
        elif found[cell] and c.estimate <= 1 / factor:
            status = "faster"
        elif c.lo >= 1 / factor and c.hi <= factor:
            status = "same"
        else:
            status = "inconclusive"
            shift, distance = math.log(factor), abs(math.log(c.estimate))
            needed = passes_to_settle(eb, en, distance if distance >= shift else shift - distance, level, run_sd[cell])
        verdicts.append(Verdict(cell, math.exp(float(np.mean(eb))), math.exp(float(np.mean(en))), c.estimate,
                                c.lo, c.hi, c.p_value, len(eb), len(en), status, needed))
    for cell in sorted(set(base) ^ set(new)):
        only_new = cell in new
        side = new[cell] if only_new else base[cell]
        estimate = math.exp(float(np.mean(side.estimates())))
        verdicts.append(Verdict(cell, math.nan if only_new else estimate, estimate if only_new else math.nan,
                                math.nan, math.nan, math.nan, math.nan, 0 if only_new else len(side.estimates()),
                                len(side.estimates()) if only_new else 0,
                                "only in new" if only_new else "only in base"))
    return sorted(verdicts, key=lambda v: -v.ratio if math.isfinite(v.ratio) else math.inf)


def gate_failures(base_path: str | Path, new_path: str | Path) -> list[str]:
    """What a gate must fail on whatever the times say: a backend of BASE absent from NEW, and each
    variant timed (`ok`) in BASE that NEW did not time, with what NEW has instead: a failure status
    (bench.core.schema.FAILED), a skip and its reason, or nothing. pytest-benchmark JSON: missing cells only."""
    base, new = _statuses(base_path), _statuses(new_path)
    name = Path(new_path).name
    timed = {k for k, status, _ in base if status == OK}
    absent = sorted({k[3] for k in timed} - {k[3] for k, _, _ in new})
    failures = [f"backend `{b}` is absent from {name}: every one of its cells is missing" for b in absent]
    timed_new = {k for k, status, _ in new if status == OK}
    instead: dict[tuple, tuple[str, str]] = {}  # variant key, or cell key (mode ""): what NEW has instead
    for k, status, message in new:
        if status != OK and (k not in instead or status in FAILED):
            instead[k] = (status, message)
    for k in sorted(timed - timed_new, key=str):
        if k[3] in absent:
            continue
        row = dict(zip(VARIANT_KEY, k))
        found = instead.get(k) or instead.get((*k[:len(KEY)], "", ""))
        if found is None:
            failures.append(f"{label(row)}: `ok` in the baseline, missing from {name}")
        elif found[0] in FAILED:
            failures.append(f"{label(row)}: `ok` in the baseline, now `{found[0]}` ({found[1]})")
        else:
            failures.append(f"{label(row)}: `ok` in the baseline, now not timed: `{found[0]}` ({found[1]})")
    return failures


def _statuses(path: str | Path) -> list[tuple[tuple, str, str]]:
    """(variant key, status, message) of every row (CSV), or of every sample (pytest-benchmark JSON)."""
    path = Path(path)
    if path.suffix == ".json":
        frame = _pytest_benchmark_samples(path).assign(message="")
    else:
        frame = read_results([path])
    frame = frame[list(VARIANT_KEY) + ["status", "message"]].astype(object).fillna("").drop_duplicates()
    return [(tuple(r[:-2]), r[-2], r[-1]) for r in frame.itertuples(index=False, name=None)]


def _interval(v: Verdict) -> str:
    if not math.isfinite(v.lo):
        return "(no interval: one pass)"
    return f"[{v.lo:.3f}, {v.hi:.3f}]"


def format_table(verdicts: list[Verdict], *, title: str, limit: int = 25) -> str:
    counts = pd.Series([v.status for v in verdicts]).value_counts().to_dict() if verdicts else {}
    lines = [f"== {title}: " + (", ".join(f"{k}: {counts[k]}" for k in STATUSES if k in counts) or "no cells")]
    shown = [v for v in verdicts if v.status in ("slower", "faster")]
    shown += [v for v in verdicts if v.status == "inconclusive"]
    shown += [v for v in verdicts if v.status == "only in base"]
    for v in shown[:limit] or verdicts[:5]:
        if v.status in ("slower", "faster"):
            detail = f"p={v.p_value:.2g} before the control across cells"
        elif v.status == "inconclusive":
            detail = ("the estimate sits on the threshold" if math.isinf(v.passes_needed)
                      else f"~{v.passes_needed:.0f} passes a side would settle it")
        else:
            detail = ""
        if v.status in ("only in base", "only in new"):
            lines.append(f"  {v.status:12}  base {v.base:.3g}  new {v.new:.3g}  {v.cell}")
            continue
        lines.append(f"  {v.status:12} {v.ratio:7.3f}x {_interval(v):18} base {v.base:.3g}  new {v.new:.3g}  "
                     f"({v.base_passes}/{v.new_passes} passes)  {v.cell}  {detail}")
    if len(shown) > limit:
        lines.append(f"  ... and {len(shown) - limit} more")
    return "\n".join(lines)
