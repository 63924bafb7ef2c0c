"""The progress bar's ETA learns from the parts already done, per task and backend."""
from __future__ import annotations

import pytest

from bench.core.cell import Cell
from bench.sweep.runner import Eta, estimated_seconds


def _cell(task: str, backend: str, n: int) -> Cell:
    return Cell(task=task, problem="least_squares", n=n, backend=backend, device="cpu",
                derivative="gd" if task == "solve" else "grad", modes=("analytic", "autodiff"))


def test_eta_scales_each_task_by_what_its_own_parts_took():
    solve = [_cell("solve", "numpy", n) for n in (3000, 5000, 10000)]
    evals = [_cell("eval", "numpy", n) for n in (10000, 10000)]
    eta = Eta(solve + evals)
    prior = sum(map(estimated_seconds, solve + evals))
    assert eta.seconds_left() == pytest.approx(prior)
    assert min(map(estimated_seconds, solve[:2] + evals[:1])) > 1.0  # enough to learn from (Eta trusts > 1 s)
    eta.done(solve[0], 3 * estimated_seconds(solve[0]))  # the solve ran 3x slower than its model
    eta.done(solve[1], 3 * estimated_seconds(solve[1]))
    left_solve, left_eval = estimated_seconds(solve[2]), sum(map(estimated_seconds, evals))
    # the solve's remaining part is scaled by 3, the eval parts (another model) are not
    assert eta.seconds_left() == pytest.approx(3 * left_solve + left_eval)
    eta.done(evals[0], 0.5 * estimated_seconds(evals[0]))
    assert eta.seconds_left() == pytest.approx(3 * left_solve + 0.5 * estimated_seconds(evals[1]))
    eta.done(solve[2], None)  # skipped: nothing learned, nothing left
    assert eta.seconds_left() == pytest.approx(0.5 * estimated_seconds(evals[1]))


def test_a_cells_later_parts_are_priced_from_its_first_parts_samples():
    from dataclasses import replace

    cell = replace(_cell("eval", "torch", 100), rounds=2, passes=2, max_passes=2)
    first, second = (replace(cell, part=p) for p in (0, 1))
    eta = Eta([first, second])
    rows = [{"status": "ok", "mode": m, "variant": v, "time_s": t, "inner_loops": 10}
            for m, v, t in (("analytic", "eager", 1e-3), ("autodiff", "backward", 3e-3)) for _ in range(2)]
    eta.done(first, 0.5, rows)
    # one round: 10 ms + 30 ms; the second part takes its 2 rounds and a re-warm of about one round
    assert eta.seconds_left() == pytest.approx(3 * 0.04)


def test_what_measured_parts_take_beyond_their_price_is_added_not_multiplied():
    from dataclasses import replace

    cells = [replace(_cell("eval", "torch", n), rounds=2, passes=2, max_passes=2) for n in (100, 101, 102)]
    eta = Eta([replace(c, part=p) for c in cells for p in (0, 1)])
    rows = [{"status": "ok", "mode": "analytic", "variant": "eager", "time_s": 1e-3, "inner_loops": 10}]
    for c in cells:
        eta.done(replace(c, part=0), 0.5, rows)  # each later part is priced 3 rounds of 10 ms
    eta.done(replace(cells[0], part=1), 0.03 + 2.0)  # it took 2 s more than that (an instance built again)
    # the other two: their prices, plus that mean excess each
    assert eta.seconds_left() == pytest.approx(2 * (0.03 + 2.0))


def test_optional_parts_count_at_the_share_that_ran():
    from dataclasses import replace

    cells = [replace(_cell("eval", "numpy", n), passes=1, max_passes=2) for n in (10, 11, 12, 13)]
    parts = [replace(c, part=p) for c in cells for p in (0, 1)]
    eta = Eta(parts)
    optional = [p for p in parts if p.part == 1]
    full = sum(map(estimated_seconds, optional))
    floor = sum(map(estimated_seconds, [p for p in parts if p.part == 0]))
    assert eta.seconds_left() == pytest.approx(floor + 0.5 * full)  # the prior: half of them run
    for part in optional[:2]:
        eta.done(part, None)  # settled: decided without running
    # two decided, none ran: (0 + 0.5 * 20) / (2 + 20) of the rest are expected to run
    assert eta.continuing("eval") == pytest.approx(10 / 22)
    # an optional part of a cell too costly for one (the stopping rule's budget) counts nothing
    costly = replace(_cell("eval", "numpy", 10000), passes=1, max_passes=2)
    assert estimated_seconds(replace(costly, part=1)) > 0.25
    assert Eta([replace(costly, part=1)]).seconds_left() == 0


def test_a_later_part_is_priced_at_what_its_cells_last_later_part_took():
    from dataclasses import replace

    cell = replace(_cell("eval", "torch", 100), rounds=2, passes=2, max_passes=4)
    parts = [replace(cell, part=p) for p in range(4)]
    eta = Eta(parts)
    rows = [{"status": "ok", "mode": "analytic", "variant": "eager", "time_s": 1e-3, "inner_loops": 10}]
    eta.done(parts[0], 0.5, rows)
    eta.done(parts[1], 0.08, rows)  # its second part took 80 ms
    # the two optional parts to come: 80 ms each, at the prior share of such parts that run (a half)
    assert eta.seconds_left() == pytest.approx(2 * 0.08 * 0.5)


def test_the_stopping_rule_prices_a_further_pass_by_the_parts_after_the_first():
    """The first part pays once for checks, compiles and a fresh worker's import of its framework. A
    part's price is its rows' timed seconds (time per call x calls), so that a resumed run prices
    as the run it resumes did."""
    from dataclasses import replace

    from bench.sweep.runner import settled

    cell = replace(_cell("eval", "torch", 16), passes=2, max_passes=6, target=0.03)

    def rows(loops_by_part):
        return [{"backend": "torch", "mode": mode, "variant": variant, "part": part, "repeat": 2 * part + r,
                 "run_id": "a", "inner_loops": loops, "time_s": scale * (1 + 0.01 * r)}
                for part, loops in enumerate(loops_by_part) for r in (0, 1)
                for mode, variant, scale in (("analytic", "eager", 1e-5), ("autodiff", "backward", 3e-5))]

    third = replace(cell, part=2)
    assert not settled(third, rows([10, 10]))  # cheap: its planned passes (more than two) go on
    assert not settled(third, rows([10**5, 10]))  # a costly first part does not make it costly
    assert settled(third, rows([10**5, 10**4]))  # its later parts do: 0.8 s each
    assert settled(third, rows([10**4]))  # no later part yet: the first is all there is
