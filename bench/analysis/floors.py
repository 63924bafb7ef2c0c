"""Each cell's floor: its cost model's bytes and flops over the roofs a run measured (bench.measure.roofline)."""
from __future__ import annotations

import math
from dataclasses import replace

from bench.core import precision
from bench.measure.roofline import floor_seconds, level_of

# time over floor below this: the cell ran faster than its floor, so its cost model (or the roof it is
# priced at: the level its data were taken to live in) is wrong for it; flagged, never hidden
BELOW_FLOOR = 0.9


def roofs_of(meta: dict) -> dict[str, dict]:
    """device -> its roofs, from the metadata of the runs read (bench.sweep.results.read_metadata): the
    earliest run that measured each device."""
    out: dict[str, dict] = {}
    for run in sorted(meta.values(), key=lambda m: m.get("started") or ""):
        for device, roofs in (run.get("roofs") or {}).items():
            if "bandwidth_GBps" in roofs:
                out.setdefault(device, roofs)
    return out


def with_floors(stats, roofs: dict[str, dict]):
    """`stats` (bench.analysis.summary.cell_stats rows) with each cell's floor: the minimum bytes and flops
    of its cost model (a descent's: all its iterations), floor_s, the level its data were priced at
    (floor_level: a cache level or memory; bench.measure.roofline.level_of), and time over floor with the time's
    interval (over_floor, over_floor_lo, over_floor_hi); nan where the problem declares no cost for
    the kind (or its cost model fails), where the device has no roofs, or where the cell ran on
    another machine than the one the roofs were measured on (a cluster's other hosts); below_floor
    where its time is under BELOW_FLOOR times its floor."""
    import problems

    rows = []
    stats = stats if "dtype" in stats else stats.assign(dtype="float64")  # (a table that predates the dtype axis)
    for task, problem, derivative, n, device, dtype, machine, iterations in stats[
            ["task", "problem", "derivative", "n", "device", "dtype", "machine", "iterations"]].itertuples(index=False):
        roof = roofs.get(device)
        if roof and roof.get("machine") and machine and machine != roof["machine"]:
            roof = None
        model = problems.get(problem).cost if problem in problems.names() else None
        # a solve's floor is the descent's (its iterations times a step's); a Newton-type solve
        # (bench.measure.solvers) has none here: its calls are of several kinds
        kind = derivative if task == "eval" else "gd" if derivative == "gd" else None
        try:
            cost = in_dtype(model(kind, int(n)), dtype) if model and kind else None
        except Exception:  # a user's cost model that fails: no floor for the cell, not a failed summary
            cost = None
        steps = iterations if task == "solve" else 1.0
        floor = floor_seconds(cost, roof, steps, dtype)
        floor = floor if floor > 0 else math.nan
        level = level_of(cost, roof)[0] if cost and roof else ""
        rows.append((cost.bytes * steps if cost else math.nan, cost.flops * steps if cost else math.nan, floor, level))
    out = stats.copy()
    out["floor_bytes"], out["floor_flops"], out["floor_s"], out["floor_level"] = (
        (list(c) for c in zip(*rows)) if rows else ([], [], [], []))
    for suffix in ("", "_lo", "_hi"):
        out[f"over_floor{suffix}"] = out["time" + (suffix or "_s")] / out["floor_s"]
    out["below_floor"] = out["over_floor"] < BELOW_FLOOR
    return out


def in_dtype(cost, dtype: str):
    """A cost model's Cost (its bytes counted as float64, 8 a number) for data in `dtype`: the bytes scaled by
    its size (float32: half), the flops as they are; None stays None."""
    if cost is None or dtype == "float64":
        return cost
    scale = precision.itemsize(dtype) / 8
    written = None if cost.bytes_as_written is None else cost.bytes_as_written * scale
    return replace(cost, bytes=cost.bytes * scale, bytes_as_written=written)
