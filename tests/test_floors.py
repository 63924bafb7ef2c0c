"""A cell faster than its floor is flagged, with the cost model it was priced by named (issue 34)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
    assert table["floor priced at"].tolist() == ["memory"]  # no cache levels measured: priced at memory


def test_a_cell_whose_data_fit_in_a_cache_is_priced_at_that_caches_bandwidth():
    """A hierarchical roofline: 8 MB of A fit in a 32 MB L3, not in a 1 MB L2, so the floor is the
    L3's; a larger A is priced at memory's."""
    roofs = {"cpu": dict(ROOFS["cpu"], caches={"L2": {"bytes": 2**20, "GBps": 200.0},
                                                 "L3": {"bytes": 32 * 2**20, "GBps": 90.0}})}
    priced = with_floors(pd.concat([_stats({"numpy": 1e-3}, n) for n in (1000, 10000)]), roofs).set_index("n")
    bytes_ = {n: problems.get("least_squares").cost("grad", n).bytes for n in (1000, 10000)}
    assert priced.loc[1000, "floor_level"] == "L3" and priced.loc[1000, "floor_s"] == bytes_[1000] / 90e9
    assert priced.loc[10000, "floor_level"] == "memory" and priced.loc[10000, "floor_s"] == bytes_[10000] / 30e9


@pytest.mark.slow  # arrays of 4x the last-level cache: 5.6 GB on the Intel class
def test_the_roofs_measure_every_cache_level_and_price_none_below_memory():
    """Every data cache sysfs lists is measured (a read pass in it, with its interval), and a level
    whose reads came out slower than memory's (at L1, a numpy call's overhead is most of a sample) is
    priced at memory's bandwidth, never below it. How much faster each level is: the roofs table."""
    from bench.measure.roofline import cache_levels, measure

    roofs = measure("cpu", 1, rounds=3)
    assert cache_levels() and set(roofs["caches"]) == set(cache_levels())
    for level, cache in roofs["caches"].items():
        read = roofs[f"read_{level}_GBps"]
        assert 0 < read["lo"] <= read["estimate"] <= read["hi"], (level, read)
        assert cache["bytes"] == cache_levels()[level]
        assert cache["GBps"] == max(read["estimate"], roofs["bandwidth_GBps"]), (level, cache)


def test_nothing_below_its_floor_gives_no_table():
    floor = problems.get("least_squares").cost("grad", 1000).bytes / 30e9
    assert below_floor_table(with_floors(_stats({"numpy": 1.2 * floor}), ROOFS), ROOFS).empty


def test_the_fused_formulas_gain_over_autodiff_is_paired_per_round_within_its_backend():
    from bench.analysis.summary import fused_gains
    from bench.core.schema import KEY

    base = dict(task="eval", problem="least_squares", n=1000, backend="torch", device="cpu", derivative="grad",
                status="ok", run_id="r", machine="m")
    rows = [dict(base, mode=mode, variant=variant, part=part, repeat=2 * part + r,
                 time_s=scale * (1 + 0.3 * part) * (1 + 0.01 * r))  # the machine drifts 30% a pass: paired out
            for part in range(3) for r in range(2)
            for mode, variant, scale in (("analytic", "fused", 1e-3), ("analytic", "eager", 2e-3),
                                         ("autodiff", "backward", 2.1e-3))]
    gains = fused_gains(pd.DataFrame(rows))
    assert list(gains["variant"]) == ["backward"] and set(KEY) <= set(gains)
    assert gains["gain"].iloc[0] == pytest.approx(2.1)
    assert gains["gain_lo"].iloc[0] == pytest.approx(2.1) == gains["gain_hi"].iloc[0]  # paired: no drift left
    assert fused_gains(pd.DataFrame([r for r in rows if r["variant"] != "fused"])).empty
