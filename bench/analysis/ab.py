"""An A/B run read back (bench.api.ab): per variant, NEW / BASE of its own time, paired per pass (or of
its instructions per call, for a counted run), with false-discovery control across the variants; and
what fails the gate whatever the times: a failure on the new side, a variant or backend missing there,
an empty comparison.

Rows of side S carry the backend name `BACKEND@S` (bench.sweep.runner); both sides of a cell run one
after the other in every pass, in an order drawn per pass, so that each pass gives one paired ratio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.analysis.counts import count_of
from bench.core.intervals import benjamini_hochberg, paired_change
from bench.core.schema import FAILED, KEY, OK, VARIANT_KEY, label

SIDES = ("base", "new")
STATUSES = ("slower", "faster", "same", "inconclusive")
# a worker's facts that are not library versions
NOT_VERSIONS = ("cpu_affinity", "device", "gpu_env", "threadpools", "drift_start")


@dataclass(frozen=True)
class AbVerdict:
    variant: str  # schema.label of the variant
    backend: str
    mode: str
    base: float  # its median seconds (or instructions) per call on the base side
    new: float
    estimate: float  # NEW / BASE
    lo: float  # the interval (nan for counts, and with one pass)
    hi: float
    passes: int
    p_value: float
    status: str  # one of STATUSES


def with_sides(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with `side` apart from `backend` (torch@new: torch, new); ValueError if a row has none."""
    if "dtype" not in df:  # rows from before the dtype axis: float64
        df = df.assign(dtype="float64")
    if df.empty:
        return df.assign(side=pd.Series(dtype="string"))
    parts = df["backend"].astype(str).str.rsplit("@", n=1, expand=True)
    if parts.shape[1] != 2 or parts[1].isna().any() or not set(parts[1]) <= set(SIDES):
        raise ValueError("not an A/B run: its backends are not named BACKEND@base and BACKEND@new")
    return df.assign(backend=parts[0], side=parts[1], dtype=df["dtype"].astype("string").fillna("float64"))


def verdicts(df: pd.DataFrame, *, factor: float, alpha: float) -> list[AbVerdict]:
    """Each variant timed (or counted) on both sides: NEW / BASE and its verdict. Times: the per-pass
    medians paired by pass, a t-interval over the passes (bench.core.intervals.paired_change); `slower`
    where the change survives Benjamini-Hochberg at `alpha` and its estimate is `factor` or more,
    `same` where the whole interval is within the factor. Counts (deterministic to a fraction of a
    percent): the sides' counts (bench.analysis.counts.count_of), `slower` beyond the factor."""
    ok = with_sides(df[df["status"] == OK])
    counted = ok["instructions"].notna().any()
    metric = "instructions" if counted else "time_s"
    keys = [k for k in VARIANT_KEY]
    found = []
    for key, rows in ok.groupby(keys, observed=True, sort=True):
        by_side = {side: group for side, group in rows.groupby("side")}
        if set(by_side) != set(SIDES):
            continue
        if counted:
            base, new = (count_of(by_side[s][metric]) for s in SIDES)
            estimate = new / base
            found.append((key, base, new, estimate, math.nan, math.nan, 1, 0.0 if estimate != 1 else 1.0))
            continue
        base, new = (float(by_side[s][metric].median()) for s in SIDES)
        medians = {s: by_side[s].groupby(by_side[s]["part"].fillna(0).astype(int))[metric].median() for s in SIDES}
        common = medians["base"].index.intersection(medians["new"].index)
        change = paired_change(np.log(medians["new"][common].to_numpy() / medians["base"][common].to_numpy()),
                               level=1 - alpha)
        found.append((key, base, new, change.estimate, change.lo, change.hi, len(common), change.p_value))
    discovered = benjamini_hochberg([f[-1] for f in found], alpha) if found else []
    out = []
    for (key, base, new, estimate, lo, hi, passes, p), significant in zip(found, discovered):
        row = dict(zip(keys, key))
        if counted:
            status = "slower" if estimate > factor else "faster" if estimate < 1 / factor else "same"
        elif significant and estimate >= factor:
            status = "slower"
        elif significant and estimate <= 1 / factor:
            status = "faster"
        elif lo >= 1 / factor and hi <= factor:
            status = "same"
        else:
            status = "inconclusive"
        out.append(AbVerdict(label(row), row["backend"], row["mode"], base, new, estimate, lo, hi, passes, p, status))
    return out


def failures(df: pd.DataFrame) -> list[str]:
    """What fails an A/B gate whatever the times: a variant (or a whole cell) `ok` on the base side
    with a failure status in any pass on the new side, or with no row there at all (its backend
    missing, or the cell not run); and a comparison with nothing on both sides."""
    sided = with_sides(df)
    cells = list(VARIANT_KEY)
    out = []
    base_ok = sided[(sided["side"] == "base") & (sided["status"] == OK)]
    new = sided[sided["side"] == "new"]
    for key, rows in base_ok.groupby(cells, observed=True, sort=True):
        row = dict(zip(cells, key))
        cell = cells[:len(KEY)]
        theirs = new[(new[cell] == pd.Series(key[:len(KEY)], index=cell)).all(axis=1)]
        mine = theirs[(theirs["mode"] == row["mode"]) & (theirs["variant"] == row["variant"])]
        cell_failed = theirs[(theirs["mode"].fillna("") == "") & theirs["status"].isin(FAILED)]
        bad = pd.concat([mine[mine["status"].isin(FAILED)], cell_failed])
        if len(bad):
            first = bad.iloc[0]
            out.append(f"{label(row)}: `{first['status']}` on the new side ({first['message'] or 'no message'})")
        elif not len(mine):
            out.append(f"{label(row)}: ok on the base side, not on the new side"
                       + ("" if len(theirs) else f" (no row of {row['backend']} there)"))
        elif not (mine["status"] == OK).any():
            out.append(f"{label(row)}: `{mine['status'].iloc[0]}` on the new side ({mine['message'].iloc[0]})")
    if base_ok.empty:
        out.append("nothing to compare: no variant was timed on the base side")
    return out


def versions(meta: dict) -> dict[str, dict[str, tuple]]:
    """backend/device -> {library: (base version, new version)} where the sides differ: the subject of
    an A/B between environments (never a reason to pass)."""
    workers: dict[str, dict] = {}
    for block in meta.values():
        workers.update(block.get("backends") or {})
    out: dict[str, dict[str, tuple]] = {}
    for name, info in workers.items():
        if not name.endswith("@base"):
            continue
        stem = name[: -len("@base")]
        other = workers.get(f"{stem}@new") or {}
        moved = {lib: (version, other.get(lib)) for lib, version in info.items()
                 if lib not in NOT_VERSIONS and isinstance(version, str) and other.get(lib) != version}
        if moved:
            out[stem] = moved
    return out


def frame(found: list[AbVerdict]) -> pd.DataFrame:
    return pd.DataFrame([v.__dict__ for v in found], columns=list(AbVerdict.__dataclass_fields__))
