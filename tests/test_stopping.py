"""The stopping rule: how many passes a cell takes, and whether its intervals hold what they claim."""
import pytest

from bench.analysis.coverage import simulate
from bench.core import defaults
from bench.core.stopping import planned_passes

CELLS = 20_000


@pytest.fixture(scope="module")
def planned():
    return simulate("planned", cells=CELLS)


def test_the_sweeps_intervals_hold_the_truth_at_every_number_of_passes(planned):
    """Simulated with the intervals' own code: 95% intervals that hold the truth in 93% of cells or
    more, overall and among the cells that stopped at each number of passes."""
    total, held = (sum(v[i] for v in planned.values()) for i in (0, 1))
    assert total == CELLS
    assert held / total >= 0.93
    for passes, (n, k) in planned.items():
        assert n >= 1000, (passes, n)  # enough cells that the share is measured
        assert k / n >= 0.93, (passes, n, k)
    assert set(planned) >= {defaults.PASSES, defaults.MAX_PASSES}


def test_stopping_on_the_intervals_own_spread_narrows_them():
    """The rule it replaced, simulated the same way: cells that stopped early because their passes
    happened to agree hold the truth far less often than 95%: the simulation can fail a rule."""
    found = simulate("sequential", cells=5_000)
    early = [(n, k) for p, (n, k) in found.items() if 2 < p < defaults.MAX_PASSES and n >= 100]
    assert early and min(k / n for n, k in early) < 0.93


def test_a_plan_takes_more_passes_where_the_first_pass_was_noisier():
    quiet, noisy = (planned_passes(se, 2, 6, 0.03) for se in (0.0, 0.02))
    assert 2 <= quiet < noisy <= 6
    assert planned_passes(0.5, 2, 6, 0.03) == 6  # none would do: the most
    assert planned_passes(0.0, 3, 3, 0.03) == 3  # no pass beyond the floor to plan
    assert planned_passes(0.0, 2, 6, 0.03, pass_sd=0.001) == 2  # a quiet machine: the floor does


def test_the_plan_reads_the_first_pass_only():
    """Passes after the first, however they spread, do not change the plan: the values of the
    interval play no part in how many passes it gets."""
    from dataclasses import replace

    from bench.core.cell import Cell
    from bench.sweep.runner import settled

    cell = Cell(task="eval", problem="least_squares", n=16, backend="torch", device="cpu", derivative="grad",
                modes=("analytic", "autodiff"), passes=2, max_passes=6, target=0.03)

    def rows(later_spread):
        return [{"backend": "torch", "mode": mode, "variant": variant, "part": part, "repeat": 4 * part + r,
                 "run_id": "a", "time_s": scale * (1 + 0.01 * r) * (1 + later_spread * part * (mode == "autodiff"))}
                for part in range(4) for r in range(4)
                for mode, variant, scale in (("analytic", "eager", 1e-5), ("autodiff", "backward", 3e-5))]

    plan = [p for p in range(2, 7) if settled(replace(cell, part=p), rows(0.0))][0]
    assert plan == [p for p in range(2, 7) if settled(replace(cell, part=p), rows(0.5))][0]
