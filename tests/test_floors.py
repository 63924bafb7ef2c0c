"""A cell faster than its floor is flagged, with the cost model it was priced by named (issue 34)."""
from __future__ import annotations

import numpy as np
import pandas as pd

import problems

from bench.analysis.floors import BELOW_FLOOR, with_floors
from bench.render.report import below_floor_table

ROOFS = {"cpu": {"bandwidth_GBps": 30.0, "peak_GFLOPs": 50.0, "llc_bytes": 32e6, "machine": ""}}


def _stats(times: dict[str, float], n: int = 1000) -> pd.DataFrame:
    rows = [dict(task="eval", problem="least_squares", derivative="grad", n=n, device="cpu", machine="",
                 iterations=np.nan, backend=backend, mode="analytic", variant="eager", time_s=t, time_lo=0.95 * t,
                 time_hi=1.05 * t) for backend, t in times.items()]
    return pd.DataFrame(rows)


def test_a_cell_faster_than_its_floor_is_flagged_with_its_cost_model_named():
    floor = problems.get("least_squares").cost("grad", 1000).bytes / 30e9  # memory-bound: bytes over bandwidth
    priced = with_floors(_stats({"numpy": 0.5 * floor, "torch": 2.0 * floor}), ROOFS).set_index("backend")
    assert priced.loc["numpy", "floor_s"] == floor
    assert bool(priced.loc["numpy", "below_floor"]) and not bool(priced.loc["torch", "below_floor"])
    assert priced.loc["numpy", "over_floor"] < BELOW_FLOOR <= priced.loc["torch", "over_floor"]
    table = below_floor_table(priced.reset_index(), ROOFS)
    assert table["backend"].tolist() == ["numpy"]
    assert table["cost model"].tolist() == ["problems.get('least_squares').cost"]
    assert table["data in cache"].tolist() == ["yes"]  # 8 MB in a 32 MB last-level cache: priced at DRAM, served faster


def test_nothing_below_its_floor_gives_no_table():
    floor = problems.get("least_squares").cost("grad", 1000).bytes / 30e9
    assert below_floor_table(with_floors(_stats({"numpy": 1.2 * floor}), ROOFS), ROOFS).empty
